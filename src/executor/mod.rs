//! Executors run one attempt of a step somewhere and report how it ended. The local one runs a process
//! group on this host and is driven through [`Executor`]; the SLURM one submits batch jobs and is driven
//! through [`slurm::SlurmExecutor`]'s own methods (submit, track, find by name, cancel), because arrays,
//! `afterok` dependencies and intent records need more than `launch`. The engine names the two paths
//! (`engine::scheduler::Launch`); both report ends on the same channel as [`Finished`].

pub mod beater;
pub mod local;
pub mod slurm;

use crate::runlog::liveness::ExitRecord;
use crate::runlog::state::AttemptFold;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

pub use local::LocalExecutor;

/// Everything needed to start one attempt.
#[derive(Clone, Debug)]
pub struct LaunchSpec {
    pub run_id: String,
    pub step: String,
    pub attempt: u32,
    /// The bash script (setup, wrap, command) to run under `bash -e -o pipefail`.
    pub script: String,
    /// Variables added to the inherited environment.
    pub env: Vec<(String, String)>,
    pub workdir: PathBuf,
    /// The attempt directory (created by the engine): logs, metrics, exit-code file.
    pub dir: PathBuf,
    pub timeout: Option<Duration>,
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Exited(i32),
    Signaled(i32),
    TimedOut,
    /// Nobody knows: the process vanished without leaving an exit code.
    Lost(String),
    /// Killed for using more memory than it asked for (Slurm OUT_OF_MEMORY, or exit 137 under Slurm).
    OutOfMemory,
    /// Slurm lost the node (NODE_FAIL, BOOT_FAIL); the nodes it ran on, if known.
    NodeFailed(Option<String>),
    /// Preempted by a higher-priority job: not the step's fault.
    Preempted,
    /// Slurm cancelled the job because a job it depends on failed (`--kill-on-invalid-dep`).
    DependencyFailed,
    /// Cancelled outside sortie (scancel by a user or an admin).
    CancelledOutside(String),
}

impl Outcome {
    /// The failure class recorded in the event log, which decides how the next attempt differs.
    pub fn class(&self) -> Option<&'static str> {
        match self {
            Outcome::TimedOut => Some("timeout"),
            Outcome::OutOfMemory => Some("oom"),
            Outcome::NodeFailed(_) => Some("node_fail"),
            Outcome::Preempted => Some("preempted"),
            Outcome::DependencyFailed => Some("dependency"),
            Outcome::CancelledOutside(_) => Some("cancelled"),
            _ => None,
        }
    }
}

/// What Slurm said about the job an attempt ran in, for the next attempt's resources.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobFacts {
    pub job_id: Option<String>,
    pub mem_mb: Option<u64>,
    pub time_limit_s: Option<u64>,
    pub nodes: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Finished {
    pub step: String,
    pub attempt: u32,
    pub outcome: Outcome,
    /// Set by the SLURM executor.
    pub facts: Option<JobFacts>,
}

#[derive(Clone, Debug, Default)]
pub struct Launched {
    pub pid: Option<u32>,
    pub job_id: Option<String>,
}

pub trait Executor: Send + Sync {
    /// Starts an attempt; its end is sent on `done`. Must be called inside a tokio runtime.
    fn launch(
        &self,
        spec: LaunchSpec,
        done: UnboundedSender<Finished>,
    ) -> std::io::Result<Launched>;

    /// Stops an attempt: SIGTERM to its whole process group, SIGKILL after a grace period.
    fn cancel(&self, step: &str, attempt: u32);

    /// Lets a launched attempt's command begin (`go`), or makes it exit without running (`!go`). The
    /// engine calls it once the attempt's start is in the run's log, so an engine killed in between
    /// leaves no step running that the log does not know of. Executors whose launch is already
    /// recorded before it happens (Slurm's submit intent) need not wait.
    fn release(&self, _step: &str, _attempt: u32, _go: bool) {}

    /// Watches an attempt started by an engine that died (a resume), on this host or another: reports
    /// its end from the exit-code file, or `Lost` once [`crate::runlog::liveness`] says it is gone.
    fn adopt(&self, step: &str, attempt: &AttemptFold, done: UnboundedSender<Finished>);
}

impl From<ExitRecord> for Outcome {
    fn from(e: ExitRecord) -> Outcome {
        match e {
            ExitRecord::Exited(c) => Outcome::Exited(c),
            ExitRecord::Signaled(s) => Outcome::Signaled(s),
            ExitRecord::TimedOut => Outcome::TimedOut,
        }
    }
}

/// The exit-code file's contents: a number written by the step's own shell, or `signal:N` written by the
/// engine when the shell was killed before it could write.
pub fn read_exit_file(dir: &Path) -> Option<Outcome> {
    crate::runlog::liveness::read_exit_code(dir).map(Outcome::from)
}

/// Writes the exit-code file unless the step's shell already did.
pub fn write_exit_file(dir: &Path, outcome: &Outcome) {
    let path = dir.join(crate::runlog::paths::EXIT_CODE_FILE);
    let existing = std::fs::read_to_string(&path).unwrap_or_default();
    if !existing.trim().is_empty() && !matches!(outcome, Outcome::TimedOut) {
        return;
    }
    let text = match outcome {
        Outcome::Exited(c) => c.to_string(),
        Outcome::Signaled(s) => format!("signal:{s}"),
        Outcome::TimedOut => "timeout".to_string(),
        _ => return,
    };
    // A resumed engine may read it at any moment: complete or absent, never empty.
    let _ = crate::util::write_atomic(&path, format!("{text}\n").as_bytes());
}
