//! Errors from talking to Slurm, classified so callers know whether to back off, submit later, or
//! give up. Classification reads Slurm's own messages (`slurm_errno.c` strings).

use std::fmt;
use std::time::Duration;

use super::decode::DecodeError;

#[derive(Debug, Clone, PartialEq)]
pub enum SlurmError {
    /// The controller or database is overloaded or unreachable, or rate-limits us: back off and retry.
    Transient { cmd: String, message: String },
    /// The command did not answer in time. Also transient, but for `sbatch` it is ambiguous: the job
    /// may exist, so look it up by name before submitting again.
    TimedOut { cmd: String, after: Duration },
    /// A submission limit (QOS/association MaxSubmitJobs, MaxJobCount): submit later, not a failure.
    SubmitLimit { cmd: String, message: String },
    /// The controller does not know the job (never existed, or purged after MinJobAge): ask sacct.
    InvalidJob { cmd: String, message: String },
    /// Anything else Slurm refused.
    Failed {
        cmd: String,
        status: Option<i32>,
        stderr: String,
    },
    /// The program could not be started (Slurm not installed, not in PATH).
    Spawn { cmd: String, message: String },
    /// The output could not be understood.
    Decode { cmd: String, error: DecodeError },
    /// This backend cannot do that (e.g. submitting through slurmrestd).
    Unsupported { what: String },
}

pub type Result<T, E = SlurmError> = std::result::Result<T, E>;

impl SlurmError {
    /// Worth retrying the same call after a pause.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SlurmError::Transient { .. } | SlurmError::TimedOut { .. }
        )
    }

    /// Turns a failed command's exit status and stderr into the right class.
    pub fn classify(cmd: &str, status: Option<i32>, stderr: &str) -> SlurmError {
        let text = stderr.trim();
        let lower = text.to_ascii_lowercase();
        let has = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
        let (cmd, message) = (cmd.to_string(), text.to_string());
        if has(SUBMIT_LIMIT) {
            SlurmError::SubmitLimit { cmd, message }
        } else if has(TRANSIENT) {
            SlurmError::Transient { cmd, message }
        } else if lower.contains("invalid job id specified") {
            SlurmError::InvalidJob { cmd, message }
        } else {
            SlurmError::Failed {
                cmd,
                status,
                stderr: message,
            }
        }
    }
}

/// Back-pressure: retry the submission later. Checked before TRANSIENT because "Unable to create
/// job record, try again" means MaxJobCount is reached, not a hiccup.
const SUBMIT_LIMIT: &[&str] = &[
    "maxsubmitjob", // QOSMaxSubmitJobPerUserLimit, AssocMaxSubmitJobLimit, ...PerAccount
    "job submit limit",
    "unable to create job record",
];

const TRANSIENT: &[&str] = &[
    "socket timed out",
    "unable to contact slurm controller",
    "rate limit exceeded",
    "zero bytes were transmitted or received",
    "communication connection failure",
    "slurmctld not responding",
    "slurmdbd: connection refused",
    "problem talking to the database",
    "connection refused",
    "resource temporarily unavailable",
];

impl fmt::Display for SlurmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlurmError::Transient { cmd, message } => {
                write!(f, "{cmd}: transient Slurm error: {message}")
            }
            SlurmError::TimedOut { cmd, after } => {
                write!(
                    f,
                    "{cmd}: no answer after {}",
                    humantime::format_duration(*after)
                )
            }
            SlurmError::SubmitLimit { cmd, message } => {
                write!(f, "{cmd}: submission limit reached: {message}")
            }
            SlurmError::InvalidJob { cmd, message } => write!(f, "{cmd}: {message}"),
            SlurmError::Failed {
                cmd,
                status,
                stderr,
            } => {
                let code = status.map_or_else(|| "killed".to_string(), |s| format!("exit {s}"));
                write!(f, "{cmd} failed ({code}): {stderr}")
            }
            SlurmError::Spawn { cmd, message } => write!(f, "cannot run {cmd}: {message}"),
            SlurmError::Decode { cmd, error } => write!(f, "{cmd}: {error}"),
            SlurmError::Unsupported { what } => {
                write!(f, "not supported by this Slurm backend: {what}")
            }
        }
    }
}

impl std::error::Error for SlurmError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(stderr: &str) -> SlurmError {
        SlurmError::classify("squeue", Some(1), stderr)
    }

    #[test]
    fn transient_messages() {
        for msg in [
            "slurm_load_jobs error: Socket timed out on send/recv operation",
            "squeue: error: Unable to contact slurm controller (connect failure)",
            "sbatch: error: Rate limit exceeded, please retry momentarily",
            "sacct: error: Problem talking to the database: Connection refused",
        ] {
            assert!(class(msg).is_transient(), "{msg}");
        }
    }

    #[test]
    fn submit_limits() {
        for msg in [
            "sbatch: error: QOSMaxSubmitJobPerUserLimit",
            "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)",
            "sbatch: error: AssocMaxSubmitJobLimit",
            "sbatch: error: Batch job submission failed: Unable to create job record, try again",
        ] {
            assert!(
                matches!(class(msg), SlurmError::SubmitLimit { .. }),
                "{msg}"
            );
        }
    }

    #[test]
    fn invalid_job_and_others() {
        // Captured from the 22.05 test cluster: `squeue -j 999999`.
        let live = include_str!("../../fixtures/slurm/live-stderr-invalid-job.txt");
        assert!(matches!(class(live), SlurmError::InvalidJob { .. }));
        let e = class("sbatch: error: Batch job submission failed: Job dependency problem");
        assert!(matches!(
            e,
            SlurmError::Failed {
                status: Some(1),
                ..
            }
        ));
        assert!(!e.is_transient());
        assert!(e.to_string().contains("Job dependency problem"));
        let t = SlurmError::TimedOut {
            cmd: "squeue".into(),
            after: Duration::from_secs(30),
        };
        assert!(t.is_transient());
        assert_eq!(t.to_string(), "squeue: no answer after 30s");
    }
}
