//! The local executor: each attempt is a `bash -e -o pipefail` process in its own process group, so a cancel
//! or timeout reaches every grandchild; stdout/stderr go to files in the attempt dir; the step's shell writes
//! its exit code to a file from an EXIT trap, so an engine that died can learn later how the step ended.

use super::{Executor, Finished, LaunchSpec, Launched, Outcome};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::path::Path;
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

struct Attempt {
    pgid: i32,
    cancelled: Arc<AtomicBool>,
}

pub struct LocalExecutor {
    /// Live attempts: their process-group id, and whether a cancel was asked for.
    groups: Arc<Mutex<HashMap<(String, u32), Attempt>>>,
    /// bash, found on PATH once rather than searched for at every step.
    bash: std::path::PathBuf,
}

impl Default for LocalExecutor {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalExecutor {
    pub fn new() -> Self {
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
    // The step's shell opens its own log files: that work then runs beside the engine, not on its thread.
    s.push_str("exec >\"$SORTIE_STEP_DIR/stdout.log\" 2>\"$SORTIE_STEP_DIR/stderr.log\"\n");
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
    !matches!(
        killpg(Pid::from_raw(pgid), None),
        Err(nix::errno::Errno::ESRCH)
    ) && crate::runlog::lease::group_alive(pgid as u32)
}

/// SIGTERM the group, then SIGKILL whatever is left after the grace period.
async fn terminate_group(pgid: i32) {
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + kill_grace();
    while tokio::time::Instant::now() < deadline {
        if !group_exists(pgid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
}

impl Executor for LocalExecutor {
    fn launch(
        &self,
        spec: LaunchSpec,
        done: UnboundedSender<Finished>,
    ) -> std::io::Result<Launched> {
        let script_path = spec.dir.join("command.sh");
        std::fs::write(&script_path, command_file(&spec))?;
        let mut cmd = tokio::process::Command::new(&self.bash);
        cmd.arg("--noprofile")
            .arg("--norc")
            .arg("-e")
            .arg("-o")
            .arg("pipefail")
            .arg(&script_path)
            .current_dir(&spec.workdir)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
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
                pgid,
                cancelled: cancelled.clone(),
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
        let pgid = self
            .groups
            .lock()
            .unwrap()
            .get(&(step.to_string(), attempt))
            .map(|a| {
                a.cancelled.store(true, Ordering::SeqCst);
                a.pgid
            });
        if let Some(pgid) = pgid {
            tokio::spawn(terminate_group(pgid));
        }
    }

    fn adopt(
        &self,
        step: &str,
        attempt: u32,
        pid: Option<u32>,
        dir: &Path,
        done: UnboundedSender<Finished>,
    ) {
        let key = (step.to_string(), attempt);
        let pgid = pid.map(|p| p as i32).filter(|p| *p > 0);
        let cancelled = Arc::new(AtomicBool::new(false));
        if let Some(p) = pgid {
            self.groups.lock().unwrap().insert(
                key.clone(),
                Attempt {
                    pgid: p,
                    cancelled: cancelled.clone(),
                },
            );
        }
        let groups = self.groups.clone();
        let dir = dir.to_path_buf();
        tokio::spawn(async move {
            let outcome = loop {
                if let Some(o) = super::read_exit_file(&dir) {
                    break o;
                }
                if !pgid.is_some_and(group_exists) {
                    // The exit file may land just as the group goes away.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    break super::read_exit_file(&dir).unwrap_or_else(|| {
                        Outcome::Lost("the process ended while no engine watched it".into())
                    });
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            // As for our own children: a cancelled step is over only when its whole group is.
            if let Some(p) = pgid.filter(|_| cancelled.load(Ordering::SeqCst))
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
