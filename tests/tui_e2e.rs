//! The real binary's TUI in a real terminal: `sortie demo` runs inside a detached tmux session (its own
//! server socket, no user config), the test types keys with `tmux send-keys` and reads the screen with
//! `tmux capture-pane`. It cancels a running train instance from the DAG, re-runs it, opens help, quits,
//! and checks the terminal was restored and the run kept going.

mod common;

use common::{Project, shell_quote};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const TMUX: &str = "tmux";
/// How long any one thing may take to show up on screen.
const SCREEN_LIMIT: Duration = Duration::from_secs(20);

fn tmux_available() -> bool {
    Command::new(TMUX)
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A tmux server of our own (its socket in a temp dir) with one session, killed on drop together with
/// the engine of the demo run (found through the run's lease file).
struct Session {
    socket: PathBuf,
    name: String,
    project_root: PathBuf,
}

impl Session {
    fn tmux(&self, args: &[&str]) -> Output {
        Command::new(TMUX)
            .arg("-f")
            .arg("/dev/null")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux")
    }

    fn send(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", self.name.as_str()];
        args.extend_from_slice(keys);
        let out = self.tmux(&args);
        assert!(
            out.status.success(),
            "tmux send-keys {keys:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn capture(&self) -> String {
        let out = self.tmux(&["capture-pane", "-p", "-t", &self.name]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn display(&self, format: &str) -> String {
        let out = self.tmux(&["display-message", "-p", "-t", &self.name, format]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Polls the screen every 200 ms until `pred` holds; fails with the last screen after `limit`.
    #[track_caller]
    fn wait_screen(&self, what: &str, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.capture();
            if pred(&screen) {
                return screen;
            }
            if start.elapsed() > limit {
                panic!("timed out after {limit:?} waiting for {what}; the screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    #[track_caller]
    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait_screen(what, SCREEN_LIMIT, pred)
    }

    /// Pids of the engines holding the leases of the project's runs.
    fn engine_pids(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        let Ok(runs) = std::fs::read_dir(self.project_root.join(".sortie/runs")) else {
            return pids;
        };
        for run in runs.flatten() {
            let Ok(leases) = std::fs::read_dir(run.path().join("lease")) else {
                continue;
            };
            for l in leases.flatten() {
                if l.path().extension().is_some_and(|e| e == "json")
                    && let Some(pid) = std::fs::read(l.path())
                        .ok()
                        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                        .and_then(|v| v["pid"].as_i64())
                {
                    pids.push(pid as i32);
                }
            }
        }
        pids
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
        let root = self.project_root.to_string_lossy().into_owned();
        for pid in self.engine_pids() {
            // Only a process that is really this project's engine (pids get reused).
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                .unwrap_or_default();
            if pid > 1 && cmdline.contains(&root) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
    }
}

/// The state shown on the DAG row of one instance of the expanded train group (the row reads
/// `▶ [model=gcn,seed=0]  running  3.0s`; the chart legend's `train[model=gcn,seed=0] 1.75` is skipped).
fn instance_state<'a>(screen: &'a str, label: &str) -> Option<&'a str> {
    let needle = format!(" {label}  ");
    screen.lines().find_map(|l| {
        let at = l.find(&needle)?;
        l[at + needle.len()..].split_whitespace().next()
    })
}

/// The TUI's borders are gone and the shell's line is back.
fn tui_gone(screen: &str) -> bool {
    !screen.contains('┌') && !screen.contains('└') && !screen.contains('│')
}

#[test]
fn demo_tui_cancel_rerun_help_and_quit_in_tmux() {
    if !tmux_available() {
        println!("SKIPPED: tmux is not installed");
        return;
    }
    let p = Project::new();
    let root = p.root().to_path_buf();
    let tmp = tempfile::tempdir().unwrap();
    let session = Session {
        socket: tmp.path().join("tmux.sock"),
        name: format!("sortie-e2e-{}", std::process::id()),
        project_root: root.clone(),
    };
    let command = format!(
        "cd {root} && env -u SORTIE_PROJECT -u SORTIE_HOST -u SORTIE_CONFIG_DIR SORTIE_DEMO_SECONDS=40 \
         SORTIE_STATE_DIR={state} XDG_CONFIG_HOME={cfg} {bin} demo {root}; echo EXITED $?; sleep 30",
        root = shell_quote(&root),
        state = shell_quote(p.state_dir()),
        cfg = shell_quote(tmp.path()),
        bin = shell_quote(Path::new(env!("CARGO_BIN_EXE_sortie"))),
    );
    let out = session.tmux(&[
        "new-session",
        "-d",
        "-s",
        &session.name,
        "-x",
        "160",
        "-y",
        "48",
        &command,
    ]);
    assert!(
        out.status.success(),
        "tmux new-session: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The TUI is up with the demo run in the Runs pane.
    let screen = session.wait_for("the Runs pane with the demo run", |s| {
        s.contains("1 Runs") && s.contains("gnn-demo")
    });
    assert_eq!(session.display("#{alternate_on}"), "1", "{screen}");
    let run = p.only_run();
    assert!(screen.contains(&run), "run {run} not on screen:\n{screen}");

    // Enter focuses the run's DAG; j moves to the train group, Enter expands it.
    session.wait_for("the DAG", |s| s.contains("train") && s.contains("prepare"));
    session.send(&["Enter"]);
    session.send(&["j"]);
    session.send(&["Enter"]);
    let label = "[model=gcn,seed=0]";
    session.wait_for("the train group expanded", |s| s.contains(label));
    // The train instances start once prepare is done; then move onto the first one.
    session.wait_screen(
        "train[model=gcn,seed=0] to run",
        Duration::from_secs(40),
        |s| instance_state(s, label) == Some("running"),
    );
    session.send(&["j"]);
    session.send(&["c"]);
    let screen = session.wait_for("the confirm overlay", |s| {
        s.contains("confirm") && s.contains("Cancel train")
    });
    assert!(
        screen.contains(&format!("Cancel train{label}")),
        "the confirmation does not name the instance:\n{screen}"
    );
    assert!(
        screen.contains(&run),
        "the confirmation does not name the run:\n{screen}"
    );
    session.send(&["y"]);
    session.wait_for("the instance to be cancelled", |s| {
        instance_state(s, label) == Some("cancelled")
    });
    // Only that instance: its siblings keep running.
    let screen = session.capture();
    assert_eq!(
        instance_state(&screen, "[model=gcn,seed=1]"),
        Some("running"),
        "{screen}"
    );

    // r re-runs it (after a confirmation naming it).
    session.send(&["r"]);
    let screen = session.wait_for("the re-run confirmation", |s| s.contains("Re-run train"));
    assert!(screen.contains(&format!("Re-run train{label}")), "{screen}");
    session.send(&["y"]);
    session.wait_for("the instance to run again", |s| {
        instance_state(s, label) == Some("running")
    });

    // ? shows help generated from the keymap; Esc closes it.
    session.send(&["?"]);
    let screen = session.wait_for("the help overlay", |s| s.contains("keys (Esc closes)"));
    for key in [
        "quit (runs keep going)",
        "move down",
        "cancel the selected run, step or job",
    ] {
        assert!(screen.contains(key), "help lacks {key:?}:\n{screen}");
    }
    session.send(&["Escape"]);
    session.wait_for("help to close", |s| !s.contains("keys (Esc closes)"));

    // q leaves: exit code 0, the alternate screen is gone, the shell line is back.
    session.send(&["q"]);
    let screen = session.wait_for("sortie to exit", |s| s.contains("EXITED"));
    assert!(screen.contains("EXITED 0"), "{screen}");
    assert!(
        tui_gone(&screen),
        "TUI borders left on the screen:\n{screen}"
    );
    assert_eq!(session.display("#{alternate_on}"), "0");
    assert!(
        screen.contains("goes on in the background"),
        "no hint that the run goes on:\n{screen}"
    );

    // Quitting did not stop the run.
    let status = p.sortie(&["-C", &root.to_string_lossy(), "status", &run, "--json"]);
    status.ok();
    let v = status.json();
    assert!(
        v["state"] == "running" || v["state"] == "succeeded",
        "the run is {} after quitting the TUI",
        v["state"]
    );
    let step = common::step_of(&v, &format!("train{label}"));
    assert_ne!(
        step["state"], "cancelled",
        "the re-run did not stick: {step}"
    );
}
