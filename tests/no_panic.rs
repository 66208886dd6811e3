//! Bad and extreme inputs end as clear errors, never as panics: every flag at its limits (chart sizes,
//! attempt numbers, job counts, durations, empty strings) on a project with a finished run, settings
//! from the environment that are not numbers or modes (refused at startup, exit 2, the variable and the
//! value named), and the TUI losing its terminal while it is stopped in a background process group.

mod common;

use common::{Out, Project, proc_state, shell_quote, wait_for};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const PIPELINE: &str = r#"[pipeline]
name = "np"

[[step]]
name = "train"
run = '''
for i in 1 2 3; do
  echo "{\"step\": $i, \"loss\": 0.$i}" >> "$SORTIE_METRICS"
done
echo hello
'''
"#;

/// No panic: not the code a Rust panic exits with, no panic message.
#[track_caller]
fn assert_no_panic(out: &Out) {
    assert_ne!(
        out.code,
        Some(101),
        "`{}` panicked:\n{}",
        out.what,
        out.stderr
    );
    assert!(
        !out.stderr.contains("panicked"),
        "`{}` panicked:\n{}",
        out.what,
        out.stderr
    );
    assert!(
        out.code.is_some(),
        "`{}` died of a signal:\n{}",
        out.what,
        out.stderr
    );
}

#[test]
fn extreme_flag_values_are_usage_errors_or_work_but_never_panic() {
    let p = Project::with_pipeline(PIPELINE);
    p.sortie(&["run"]).ok();
    let run = p.only_run();
    let run_dir = p.run_dir(&run).to_string_lossy().into_owned();
    // (arguments, the exit code they must give; None: anything but a panic)
    let cases: &[(&[&str], Option<i32>)] = &[
        (&["plot", "loss", "--width", "0", "--height", "0"], Some(2)),
        (
            &["plot", "loss", "--width", "100000", "--height", "100000"],
            Some(2),
        ),
        (&["plot", "loss", "--width", "15"], Some(2)),
        (&["plot", "loss", "--height", "2"], Some(2)),
        (&["plot", "loss", "--width", "4294967295"], Some(2)),
        (&["plot", "loss", "--width", "-1"], Some(2)),
        (&["plot", "loss", "--width", "16", "--height", "3"], Some(0)),
        (
            &["plot", "loss", "--width", "1000", "--height", "500"],
            Some(0),
        ),
        (&["plot", "", ""], Some(2)),
        (&["plot", "loss", "--step", ""], None),
        (&["logs", "train", "--attempt", "0"], Some(2)),
        (&["logs", "train", "--attempt", "4294967295"], Some(2)),
        (&["logs", "train", "--attempt", "99999999999"], Some(2)),
        (&["logs", "", ""], Some(2)),
        (&["logs", "train"], Some(0)),
        (&["status", ""], None),
        (&["status", "train", "--json"], None),
        (&["metrics", "", ""], Some(2)),
        (&["why", ""], None),
        (&["rerun", ""], None),
        (&["cancel", ""], None),
        (&["resume", ""], None),
        (&["run", "-j", "0"], Some(2)),
        (&["run", ""], Some(2)),
        (&["check", ""], Some(2)),
        (&["job", ""], Some(2)),
        (&["job", "99999999999999999999999"], None),
        (&["job-cancel", ""], Some(2)),
        (&["jobs", "--watch", "--budget", "0", "--for", "0s"], None),
        (
            &["jobs", "--watch", "--interval", "0s", "--for", "0s"],
            None,
        ),
        (&["--theme", "", "runs"], None),
        (&["-C", "", "runs"], Some(2)),
        (&["engine", "-j", "0", &run_dir], None),
        (&["engine", ""], None),
    ];
    for (args, want) in cases {
        let out = p.sortie(args);
        assert_no_panic(&out);
        if let Some(code) = want {
            out.expect_code(*code);
        }
    }
}

#[test]
fn bad_duration_and_journal_settings_are_refused_at_startup() {
    let p = Project::with_pipeline(PIPELINE);
    let cases = [
        ("SORTIE_LEASE_TIMEOUT", "abc"),
        ("SORTIE_LEASE_TIMEOUT", "0"),
        ("SORTIE_LEASE_TIMEOUT", "-5"),
        ("SORTIE_LEASE_TIMEOUT", "NaN"),
        ("SORTIE_LEASE_TIMEOUT", "inf"),
        ("SORTIE_KILL_GRACE", "ten"),
        ("SORTIE_KILL_GRACE", "-1"),
        ("SORTIE_INDEX_JOURNAL", "wall"),
    ];
    for (var, value) in cases {
        for args in [&["run"][..], &["runs"][..]] {
            let out = p.sortie_env(args, &[(var, value)]);
            assert_no_panic(&out);
            out.expect_code(2);
            let line = out.stderr.trim();
            assert_eq!(line.lines().count(), 1, "{line}");
            assert!(
                line.contains(var) && line.contains(value),
                "the error does not name {var}={value}: {line}"
            );
            if var == "SORTIE_INDEX_JOURNAL" {
                assert!(line.contains("wal, delete"), "{line}");
            }
        }
    }
    // Nothing was started with a bad value.
    assert!(
        p.run_ids().is_empty(),
        "a run was created: {:?}",
        p.run_ids()
    );
    // Good values (and a kill grace of 0: kill at once) still work.
    let out = p.sortie_env(
        &["run"],
        &[
            ("SORTIE_LEASE_TIMEOUT", "2.5"),
            ("SORTIE_KILL_GRACE", "0"),
            ("SORTIE_INDEX_JOURNAL", "DELETE"),
        ],
    );
    out.ok();
}

/// The foreground process group of a process's terminal (`-1`: it has none, or no terminal).
fn tpgid(pid: u32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.get(stat.rfind(')')? + 2..)?
        .split_whitespace()
        .nth(5)?
        .parse()
        .ok()
}

/// `sortie` started in the background of a job-control shell in tmux (SIGTTOU back to its default: the
/// shell ignores it for its children) stops when it tries to put the terminal in raw mode; then the
/// terminal goes away (the tmux server is killed: the pty hangs up) and the test resumes it with
/// SIGCONT. The shell ignores SIGHUP and waits for it, so the test gets
/// its exit code and stderr from files. Every step waits for the state it needs: no sleeps.
#[test]
fn the_tui_losing_its_terminal_in_the_background_exits_cleanly() {
    if !Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        println!("SKIPPED: tmux is not installed");
        return;
    }
    let p = Project::new();
    let tmp = tempfile::tempdir().unwrap();
    let (pid_file, rc_file, err_file) = (
        tmp.path().join("pid"),
        tmp.path().join("rc"),
        tmp.path().join("err"),
    );
    let socket = tmp.path().join("tmux.sock");
    let script = format!(
        "trap '' HUP; set -m; cd {root}; SORTIE_STATE_DIR={state} XDG_CONFIG_HOME={cfg} env --default-signal=TTOU,TTIN {bin} 0<&1 2>{err} & \
         echo $! > {pid}.tmp && mv {pid}.tmp {pid}; wait -f $!; echo $? > {rc}.tmp; mv {rc}.tmp {rc}",
        root = shell_quote(p.root()),
        state = shell_quote(p.state_dir()),
        cfg = shell_quote(tmp.path()),
        bin = shell_quote(Path::new(common::BIN)),
        err = shell_quote(&err_file),
        pid = shell_quote(&pid_file),
        rc = shell_quote(&rc_file),
    );
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .arg("-f")
            .arg("/dev/null")
            .arg("-S")
            .arg(&socket)
            .args(args)
            .env_remove("SORTIE_PROJECT")
            .env_remove("SORTIE_HOST")
            .env_remove("SORTIE_CONFIG_DIR")
            .output()
            .expect("run tmux")
    };
    let out = tmux(&[
        "new-session",
        "-d",
        "-x",
        "100",
        "-y",
        "30",
        "bash",
        "--noprofile",
        "--norc",
        "-c",
        &script,
    ]);
    assert!(
        out.status.success(),
        "tmux new-session: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid: u32 = wait_for(Duration::from_secs(20), "the TUI's pid", || {
        std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok()
    });
    // Stopped by SIGTTOU: a background process may not change the terminal's mode.
    wait_for(Duration::from_secs(20), "the TUI to stop (SIGTTOU)", || {
        (proc_state(pid) == Some('T')).then_some(())
    });
    let server: u32 = String::from_utf8_lossy(&tmux(&["display-message", "-p", "#{pid}"]).stdout)
        .trim()
        .parse()
        .expect("the tmux server's pid");
    let _ = tmux(&["kill-server"]);
    // A process that has exited (even a zombie) has closed its files: the pty's master is closed and
    // the terminal hung up.
    wait_for(Duration::from_secs(20), "the tmux server to exit", || {
        (!common::alive(server)).then_some(())
    });
    // The kernel's word that the terminal is gone: the session has no foreground process group.
    wait_for(Duration::from_secs(20), "the terminal to hang up", || {
        (tpgid(pid) == Some(-1)).then_some(())
    });
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGCONT,
    );
    let rc: i32 = wait_for(Duration::from_secs(60), "the TUI to exit", || {
        std::fs::read_to_string(&rc_file).ok()?.trim().parse().ok()
    });
    let err = std::fs::read_to_string(&err_file).unwrap_or_default();
    assert!(
        !err.contains("panicked") && rc != 101,
        "the TUI panicked (exit {rc}):\n{err}"
    );
    assert!(rc == 1 || rc == 2, "exit {rc}, expected 1 or 2:\n{err}");
    let line = err.trim();
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(line.contains("terminal"), "{line}");
}
