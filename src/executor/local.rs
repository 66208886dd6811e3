//! The local executor: each attempt is a `bash -e -o pipefail` process in its own process group, so a cancel
//! or timeout reaches every grandchild; stdout/stderr go to files in the attempt dir; the step's shell writes
//! its exit code to a file from an EXIT trap, so an engine that died can learn later how the step ended.
//! The engine's beater ([`super::beater`]) keeps a heartbeat file beside it, so an engine on another host
//! can tell that it still runs (and cancel it through a file: see [`crate::runlog::liveness`]).

use super::beater::{self, Keeper};
use super::{Executor, Finished, LaunchSpec, Launched, Outcome};
use crate::runlog::liveness::{self, AttemptRef, CANCEL_FILE, Liveness};
use crate::runlog::state::AttemptFold;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// The environment variable that sets the grace between SIGTERM and SIGKILL (seconds, 0 allowed).
pub const KILL_GRACE_ENV: &str = "SORTIE_KILL_GRACE";

/// Grace between SIGTERM and SIGKILL. `SORTIE_KILL_GRACE` (seconds) changes it; the CLI refuses a bad
/// value at startup, so here one only falls back to the default.
pub fn kill_grace() -> Duration {
    crate::util::env_seconds(KILL_GRACE_ENV, true)
        .ok()
        .flatten()
        .unwrap_or(Duration::from_secs(10))
}

/// How a cancel reaches an attempt.
enum Target {
    /// Its process group, on this host.
    Group(i32),
    /// Its attempt dir: it runs on another host, whose beater reads the cancel file.
    Files(PathBuf),
}

struct Attempt {
    target: Target,
    cancelled: Arc<AtomicBool>,
    /// The write end of the pipe the step's shell waits on before it runs anything (see `release`).
    gate: Option<std::io::PipeWriter>,
}

pub struct LocalExecutor {
    /// Live attempts: how to reach them, and whether a cancel was asked for.
    groups: Arc<Mutex<HashMap<(String, u32), Attempt>>>,
    /// bash, found on PATH once rather than searched for at every step.
    bash: std::path::PathBuf,
    /// How old another host's heartbeat may be before its attempt is taken as lost.
    grace: Duration,
    /// The process that beats this host's steps, started before the first one runs.
    beater: Keeper,
}

impl LocalExecutor {
    /// The executor of the run in `run_dir`. `grace`: see [`liveness::heartbeat_grace`]; it also sets
    /// how often steps beat.
    pub fn new(grace: Duration, run_dir: &Path) -> Self {
        let bash = std::env::var_os("PATH")
            .and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join("bash"))
                    .find(|b| b.is_file())
            })
            .unwrap_or_else(|| "bash".into());
        LocalExecutor {
            groups: Default::default(),
            bash,
            grace,
            beater: Keeper::new(run_dir, grace),
        }
    }
}

/// The file the attempt runs: the step's script behind traps that record how it ended. A normal exit writes
/// its status; a terminating signal writes `signal:N` and then re-raises it, so neither the engine nor a
/// later one that adopts the step can take a killed step for a success. Kept in the attempt dir so a user
/// can read exactly what ran. The header uses Rust's escaped form of the names: a newline in a matrix
/// value must never become a line of the script.
fn command_file(spec: &LaunchSpec) -> String {
    let mut s = format!(
        "# sortie: run {:?} step {:?} attempt {}\n",
        spec.run_id, spec.step, spec.attempt
    );
    // Nothing runs before the engine has logged the attempt: it writes a line on our stdin then. If the
    // engine dies first the pipe closes, and the shell leaves (125, no exit-code file: the next engine
    // takes the attempt as never run) instead of running a step the log does not know of. A builtin
    // `read`: waiting costs no process.
    s.push_str("IFS= read -r __sortie_gate || exit 125\n");
    // The step's shell opens its own log files: that work then runs beside the engine, not on its thread.
    s.push_str(
        "exec </dev/null >\"$SORTIE_STEP_DIR/stdout.log\" 2>\"$SORTIE_STEP_DIR/stderr.log\"\n",
    );
    // One short write(2): a reader sees the whole code or an empty file, which reads as "not yet".
    s.push_str("__sortie_exit() { printf '%s\\n' \"$1\" > \"$SORTIE_STEP_DIR/exit_code\"; }\n");
    s.push_str("trap '__sortie_exit \"$?\"' EXIT\n");
    for (sig, n) in [("TERM", 15), ("INT", 2), ("HUP", 1)] {
        s.push_str(&format!(
            "trap '__sortie_exit signal:{n}; trap - EXIT {sig}; kill -{sig} $$' {sig}\n"
        ));
    }
    s.push_str(&spec.script);
    s
}

fn group_exists(pgid: i32) -> bool {
    u32::try_from(pgid).is_ok_and(liveness::group_running)
}

/// Asks the host that runs an attempt to cancel it: its beater reads this file.
fn request_cancel(dir: &Path) {
    let body = format!("{} {}\n", crate::util::host(), crate::util::now());
    let _ = crate::util::write_atomic(&dir.join(CANCEL_FILE), body.as_bytes());
}

/// SIGTERM the group, then SIGKILL whatever is left after the kill grace. `record`: the attempt dir of a
/// shell no engine waits for (the beater's cancel), which gets `signal:9` in its exit-code file when it
/// is still there for the SIGKILL, since it cannot write one itself then.
pub(super) fn stop_group(pgid: i32, record: Option<&Path>) {
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
    let deadline = std::time::Instant::now() + kill_grace();
    while std::time::Instant::now() < deadline {
        if !group_exists(pgid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Some(dir) = record
        && crate::runlog::lease::process_alive(pgid as u32, None)
    {
        super::write_exit_file(dir, &Outcome::Signaled(9));
    }
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
}

/// [`stop_group`] off the engine's thread.
async fn terminate_group(pgid: i32) {
    let _ = tokio::task::spawn_blocking(move || stop_group(pgid, None)).await;
}

impl Executor for LocalExecutor {
    fn launch(
        &self,
        spec: LaunchSpec,
        done: UnboundedSender<Finished>,
    ) -> std::io::Result<Launched> {
        // The beater runs before any step may: an engine killed once the step runs leaves it beaten.
        self.beater.ensure()?;
        let script_path = spec.dir.join("command.sh");
        std::fs::write(&script_path, command_file(&spec))?;
        // std's pipes are close-on-exec: only the step's shell (as its stdin) holds the read end.
        let (gate_rx, gate_tx) = std::io::pipe()?;
        let mut cmd = tokio::process::Command::new(&self.bash);
        cmd.arg("--noprofile")
            .arg("--norc")
            .arg("-e")
            .arg("-o")
            .arg("pipefail")
            .arg(&script_path)
            .current_dir(&spec.workdir)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::from(gate_rx))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(false);
        let mut child = cmd.spawn().map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot start bash for {}: {e}", spec.step),
            )
        })?;
        let pid = child.id().unwrap_or(0);
        let pgid = pid as i32;
        let key = (spec.step.clone(), spec.attempt);
        let cancelled = Arc::new(AtomicBool::new(false));
        self.groups.lock().unwrap().insert(
            key.clone(),
            Attempt {
                target: Target::Group(pgid),
                cancelled: cancelled.clone(),
                gate: Some(gate_tx),
            },
        );
        let groups = self.groups.clone();
        let timeout = spec.timeout;
        let dir = spec.dir.clone();
        tokio::spawn(async move {
            let status = match timeout {
                Some(t) => match tokio::time::timeout(t, child.wait()).await {
                    Ok(s) => Some(s),
                    Err(_) => {
                        terminate_group(pgid).await;
                        let _ = child.wait().await;
                        None
                    }
                },
                None => Some(child.wait().await),
            };
            let outcome = match status {
                None => Outcome::TimedOut,
                Some(Ok(st)) => {
                    use std::os::unix::process::ExitStatusExt;
                    match (st.code(), st.signal()) {
                        (Some(c), _) => Outcome::Exited(c),
                        (None, Some(s)) => Outcome::Signaled(s),
                        (None, None) => Outcome::Lost("no exit status".into()),
                    }
                }
                Some(Err(e)) => Outcome::Lost(format!("wait failed: {e}")),
            };
            // A cancelled step is over only when its whole group is: grandchildren that ignore SIGTERM
            // get their SIGKILL before the engine reports the end (and perhaps exits).
            if cancelled.load(Ordering::SeqCst) && group_exists(pgid) {
                terminate_group(pgid).await;
            }
            super::write_exit_file(&dir, &outcome);
            groups.lock().unwrap().remove(&key);
            let _ = done.send(Finished {
                step: key.0,
                attempt: key.1,
                outcome,
                facts: None,
            });
        });
        Ok(Launched {
            pid: Some(pid),
            job_id: None,
        })
    }

    fn cancel(&self, step: &str, attempt: u32) {
        let groups = self.groups.lock().unwrap();
        let Some(a) = groups.get(&(step.to_string(), attempt)) else {
            return;
        };
        a.cancelled.store(true, Ordering::SeqCst);
        match &a.target {
            Target::Group(pgid) => {
                tokio::spawn(terminate_group(*pgid));
            }
            Target::Files(dir) => request_cancel(dir),
        }
    }

    fn release(&self, step: &str, attempt: u32, go: bool) {
        let gate = self
            .groups
            .lock()
            .unwrap()
            .get_mut(&(step.to_string(), attempt))
            .and_then(|a| a.gate.take());
        if let Some(mut gate) = gate
            && go
        {
            use std::io::Write;
            // A shell that already died (killed before it read) makes this fail: its end reports that.
            let _ = gate.write_all(b"go\n");
        }
    }

    fn adopt(&self, step: &str, a: &AttemptFold, done: UnboundedSender<Finished>) {
        let key = (step.to_string(), a.attempt);
        let dir = PathBuf::from(&a.dir);
        let here = a.host == crate::util::host();
        let pgid = a.pid.and_then(|p| i32::try_from(p).ok()).filter(|p| *p > 0);
        // Only this host's process table can signal the attempt; another host's is reached by file.
        let target = match (here, pgid) {
            (true, Some(p)) => {
                // Its beater may have died with its engine: heartbeats go on from this engine's.
                if let Err(e) = self.beater.ensure() {
                    beater::note(&self.beater.run_dir(), &e.to_string());
                }
                Some(Target::Group(p))
            }
            (true, None) => None,
            (false, _) => Some(Target::Files(dir.clone())),
        };
        let cancelled = Arc::new(AtomicBool::new(false));
        if let Some(target) = target {
            self.groups.lock().unwrap().insert(
                key.clone(),
                Attempt {
                    target,
                    cancelled: cancelled.clone(),
                    gate: None,
                },
            );
        }
        let groups = self.groups.clone();
        let grace = self.grace;
        let a = a.clone();
        // Another host's heartbeat changes every few seconds: looking more often than this buys nothing.
        let every = Duration::from_millis(if here { 200 } else { 1000 });
        tokio::spawn(async move {
            let outcome = loop {
                let seen = liveness::liveness(
                    &AttemptRef {
                        dir: &dir,
                        host: &a.host,
                        boot_id: a.boot_id.as_deref(),
                        pid: a.pid,
                        started: a.started,
                    },
                    grace,
                );
                let why = match seen {
                    Liveness::Ended { exit, .. } => break exit.into(),
                    Liveness::Alive { .. } => {
                        tokio::time::sleep(every).await;
                        continue;
                    }
                    Liveness::Lost(why) => why,
                    Liveness::Unknown => "the process ended while no engine watched it".into(),
                };
                // The exit file may land just as the group goes away.
                tokio::time::sleep(Duration::from_millis(100)).await;
                break super::read_exit_file(&dir).unwrap_or(Outcome::Lost(why));
            };
            // As for our own children: a cancelled step is over only when its whole group is.
            if let Some(p) = pgid.filter(|_| here && cancelled.load(Ordering::SeqCst))
                && group_exists(p)
            {
                terminate_group(p).await;
            }
            groups.lock().unwrap().remove(&key);
            let _ = done.send(Finished {
                step: key.0,
                attempt: key.1,
                outcome,
                facts: None,
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runlog::liveness::ExitRecord;

    /// Runs a command file as the executor does, opening its gate (`go`) or closing it unopened.
    fn run_gated(
        script: &std::path::Path,
        dir: &std::path::Path,
        go: bool,
    ) -> std::process::ExitStatus {
        use std::io::Write;
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("bash")
            .args(["--noprofile", "--norc", "-e", "-o", "pipefail"])
            .arg(script)
            .env("SORTIE_STEP_DIR", dir)
            .stdin(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut gate = child.stdin.take().unwrap();
        if go {
            gate.write_all(b"go\n").unwrap();
        }
        drop(gate);
        child.wait().unwrap()
    }

    #[test]
    fn a_gate_closed_unopened_runs_nothing_and_leaves_no_exit_code() {
        let d = tempfile::tempdir().unwrap();
        let marker = d.path().join("ran");
        let spec = LaunchSpec {
            run_id: "r".into(),
            step: "s".into(),
            attempt: 1,
            script: format!("touch {}\n", marker.display()),
            env: vec![],
            workdir: d.path().into(),
            dir: d.path().into(),
            timeout: None,
        };
        let script = d.path().join("command.sh");
        std::fs::write(&script, command_file(&spec)).unwrap();
        // The engine died before logging the attempt: its end of the pipe closed without a word.
        assert_eq!(run_gated(&script, d.path(), false).code(), Some(125));
        assert!(!marker.exists(), "the step ran unlogged");
        assert_eq!(liveness::read_exit_code(d.path()), None);
        assert!(!d.path().join("stdout.log").exists());
        assert_eq!(run_gated(&script, d.path(), true).code(), Some(0));
        assert!(marker.exists());
    }

    #[test]
    fn the_wrapper_keeps_the_exit_code_and_starts_nothing_of_its_own() {
        let d = tempfile::tempdir().unwrap();
        let spec = LaunchSpec {
            run_id: "r".into(),
            step: "s".into(),
            attempt: 1,
            script: "sleep 0.2 &\nwait\nread -r x || echo no-stdin\nexit 7\n".into(),
            env: vec![],
            workdir: d.path().into(),
            dir: d.path().into(),
            timeout: None,
        };
        let script = d.path().join("command.sh");
        std::fs::write(&script, command_file(&spec)).unwrap();
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("bash")
            .args(["--noprofile", "--norc", "-e", "-o", "pipefail"])
            .arg(&script)
            .env("SORTIE_STEP_DIR", d.path())
            .stdin(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = child.id();
        // The gate stays open, as while the engine lives: the step still reads no stdin.
        let mut gate = child.stdin.take().unwrap();
        std::io::Write::write_all(&mut gate, b"go\n").unwrap();
        assert_eq!(child.wait().unwrap().code(), Some(7));
        assert_eq!(
            liveness::read_exit_code(d.path()),
            Some(ExitRecord::Exited(7))
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("stdout.log")).unwrap(),
            "no-stdin\n"
        );
        // No heartbeat loop of its own (the beater beats): nothing is left in the group.
        assert!(!liveness::group_running(pgid));
        assert!(liveness::read_heartbeat(d.path()).is_none());
        drop(gate);
    }
}
