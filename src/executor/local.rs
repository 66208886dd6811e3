//! The local executor: each attempt is a `bash -e -o pipefail` process in its own process group, so a cancel
//! or timeout reaches every grandchild; stdout/stderr go to files in the attempt dir; the step's shell writes
//! its exit code to a file from an EXIT trap, so an engine that died can learn later how the step ended.

use super::{Executor, Finished, LaunchSpec, Launched, Outcome};
use crate::runlog::paths::{STDERR_FILE, STDOUT_FILE};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// Grace between SIGTERM and SIGKILL. `SORTIE_KILL_GRACE` (seconds) changes it.
pub fn kill_grace() -> Duration {
    std::env::var("SORTIE_KILL_GRACE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s >= 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(10))
}

#[derive(Default)]
pub struct LocalExecutor {
    /// Process-group ids of live attempts.
    groups: Arc<Mutex<HashMap<(String, u32), i32>>>,
}

impl LocalExecutor {
    pub fn new() -> Self {
        Self::default()
    }
}

/// The file the attempt runs: the step's script behind a trap that records its exit code. Kept in the attempt
/// dir so a user can read exactly what ran.
fn command_file(spec: &LaunchSpec) -> String {
    format!(
        "# sortie: run {} step {} attempt {}\n\
         trap 'printf \"%s\\n\" \"$?\" > \"$SORTIE_STEP_DIR/exit_code\"' EXIT\n{}",
        spec.run_id, spec.step, spec.attempt, spec.script
    )
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
        let stdout = std::fs::File::create(spec.dir.join(STDOUT_FILE))?;
        let stderr = std::fs::File::create(spec.dir.join(STDERR_FILE))?;
        let mut cmd = tokio::process::Command::new("bash");
        cmd.arg("--noprofile")
            .arg("--norc")
            .arg("-e")
            .arg("-o")
            .arg("pipefail")
            .arg(&script_path)
            .current_dir(&spec.workdir)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
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
        self.groups.lock().unwrap().insert(key.clone(), pgid);
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
            super::write_exit_file(&dir, &outcome);
            groups.lock().unwrap().remove(&key);
            let _ = done.send(Finished {
                step: key.0,
                attempt: key.1,
                outcome,
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
            .copied();
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
        if let Some(p) = pgid {
            self.groups.lock().unwrap().insert(key.clone(), p);
        }
        let groups = self.groups.clone();
        let dir = dir.to_path_buf();
        tokio::spawn(async move {
            let outcome = loop {
                if let Some(o) = super::read_exit_file(&dir) {
                    break o;
                }
                let alive = pgid.is_some_and(group_exists);
                if !alive {
                    // The exit file may land just as the group goes away.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    break super::read_exit_file(&dir).unwrap_or_else(|| {
                        Outcome::Lost("the process ended while no engine watched it".into())
                    });
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            };
            groups.lock().unwrap().remove(&key);
            let _ = done.send(Finished {
                step: key.0,
                attempt: key.1,
                outcome,
            });
        });
    }
}
