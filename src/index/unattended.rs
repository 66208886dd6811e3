//! What the files say of a run's attempts that no live engine on their own host watches, applied to
//! the index's rows for a view (`sortie status` and the TUI alike): the one place that turns
//! [`liveness`] verdicts into step states nobody logged yet. The log itself is never written here.

use super::{AttemptRow, RunRow, StepRow};
use crate::runlog::liveness::{AttemptRef, ExitRecord, Liveness, liveness};
use crate::runlog::{RunState, StepState};
use std::collections::BTreeMap;
use std::time::Duration;

/// A running step of another host (or of a run nobody drives), as views show it.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteRunning {
    pub host: String,
    /// When its heartbeat was last renewed (`None`: no beat read yet).
    pub heartbeat: Option<f64>,
}

impl RemoteRunning {
    /// `running on hosta (heartbeat 3 s ago)`.
    pub fn describe(&self, now: f64) -> String {
        match self.heartbeat {
            Some(t) => format!(
                "running on {} (heartbeat {:.0} s ago)",
                self.host,
                (now - t).max(0.0)
            ),
            None => format!("running on {} (no heartbeat yet)", self.host),
        }
    }
}

/// What the files say of a run's attempts that no live engine on their own host watches.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Unattended {
    /// Steps whose end is not in the log yet (read from exit-code files, or lost).
    pub unrecorded: usize,
    /// Steps that run on another host than the engine that drives the run (or with none driving it).
    pub remote: BTreeMap<String, RemoteRunning>,
}

/// Brings `steps` (and `run`) up to what the files say, for a view: the ends of attempts nobody recorded
/// (their exit-code files), attempts lost, and where the running ones of other hosts run. With a live
/// engine the log is left to it: only where its steps run is added. `attempts` are the run's attempts
/// (any order); the log itself is never written.
pub fn read_unattended(
    run: &mut RunRow,
    steps: &mut [StepRow],
    attempts: &[AttemptRow],
    grace: Duration,
) -> Unattended {
    let mut out = Unattended::default();
    if run.state != RunState::Running {
        return out;
    }
    let driver = crate::runlog::lease::current(&crate::runlog::RunDir::new(run.dir.clone()))
        .filter(|l| l.is_alive());
    for s in steps.iter_mut().filter(|s| s.state == StepState::Running) {
        let Some(a) = attempts
            .iter()
            .filter(|a| a.step == s.name)
            .max_by_key(|a| a.attempt)
        else {
            continue;
        };
        // Ended in the log, or watched by a live engine on its own host: the log says it all.
        let engine_on_its_host = driver.as_ref().is_some_and(|l| l.host == a.host);
        if a.ended.is_some() || engine_on_its_host {
            continue;
        }
        let seen = liveness(
            &AttemptRef {
                dir: &a.dir,
                host: &a.host,
                boot_id: None,
                pid: a.pid,
                started: a.started,
            },
            grace,
        );
        match seen {
            Liveness::Alive { host, heartbeat } if host != crate::util::host() => {
                out.remote
                    .insert(s.name.clone(), RemoteRunning { host, heartbeat });
            }
            Liveness::Ended { exit, at } if driver.is_none() => {
                s.ended = at.or(s.ended);
                s.reason =
                    Some("ended while no engine was running; not yet in the run's log".into());
                s.state = StepState::Failed;
                match exit {
                    ExitRecord::Exited(0) => s.state = StepState::Succeeded,
                    ExitRecord::Exited(c) => s.exit_code = Some(c),
                    ExitRecord::Signaled(sig) => s.signal = Some(sig),
                    ExitRecord::TimedOut => {}
                }
                out.unrecorded += 1;
            }
            Liveness::Lost(why) if driver.is_none() => {
                s.state = StepState::Failed;
                s.reason = Some(format!("lost: {why}; not yet in the run's log"));
                out.unrecorded += 1;
            }
            _ => {}
        }
    }
    if out.unrecorded > 0 && steps.iter().all(|s| s.state.is_done_ok()) {
        run.state = RunState::Succeeded;
        run.ended = steps.iter().filter_map(|s| s.ended).reduce(f64::max);
    }
    out
}
