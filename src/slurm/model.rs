//! The typed view of a Slurm job and a partition that every decoder produces, whatever the source
//! (`squeue`/`sacct` JSON of any version, their text formats, `scontrol`, slurmrestd).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One job, or one task of an array job, or (while pending) the collapsed rest of an array.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Job {
    /// What `scancel` and the UI use: `"123"`, `"123_4"`, or `"123_[5-9%2]"` for a pending array.
    pub id: String,
    /// Slurm's own numeric id of this record (an array task has one of its own once it starts).
    pub job_id_raw: Option<u64>,
    pub array_job_id: Option<u64>,
    pub array_task_id: Option<u32>,
    /// The task range of a pending array record, e.g. `"5-9%2"`.
    pub array_task_str: Option<String>,
    pub name: String,
    pub user: Option<String>,
    pub account: Option<String>,
    pub partition: Option<String>,
    pub state: JobState,
    /// State flags shown beside the base state (`COMPLETING`, `REQUEUED`, `CONFIGURING`, ...).
    pub flags: Vec<String>,
    /// The pending or end reason (`Priority`, `DependencyNeverSatisfied`, ...); `None` for "None".
    pub reason: Option<String>,
    /// Unix seconds. For a pending job `start`/`end` are Slurm's estimates when it has any.
    pub submit: Option<i64>,
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub time_used_s: Option<u64>,
    /// `None` means unlimited or unknown.
    pub time_limit_s: Option<u64>,
    pub nodes: Option<String>,
    pub cpus: Option<u32>,
    /// Memory requested (allocated once running) for the whole job, in MiB.
    pub mem_mb: Option<u64>,
    pub gpus: Option<u32>,
    pub gres: Option<String>,
    pub work_dir: Option<String>,
    /// Paths with Slurm's `%` patterns expanded, absolute when the work dir is known.
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    /// Exit status of the batch script; `None` when unknown (still running, or a source that lies).
    pub exit_code: Option<i32>,
    /// Signal that ended the batch script, if any.
    pub signal: Option<i32>,
    pub dependency: Option<String>,
    pub comment: Option<String>,
    /// From accounting (sacct) once steps have run: CPU time summed over steps.
    pub total_cpu_s: Option<f64>,
    /// Largest resident set of any step, in MiB.
    pub max_rss_mb: Option<f64>,
    pub elapsed_s: Option<u64>,
}

impl Job {
    /// The job has ended and its outcome is final. A completing job (`CG`, or any state with the
    /// `COMPLETING` flag) still holds nodes and runs its epilog, so it is not finished yet.
    pub fn is_finished(&self) -> bool {
        self.state.is_terminal() && !self.has_flag("COMPLETING")
    }

    /// Queued, running, suspended or completing: Slurm still manages it. An unknown state is
    /// neither active nor finished.
    pub fn is_active(&self) -> bool {
        !matches!(self.state, JobState::Unknown(_)) && !self.is_finished()
    }

    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
    }

    /// TotalCPU / (Elapsed × CPUs), as seff computes it.
    pub fn cpu_efficiency(&self) -> Option<f64> {
        let cpu = self.total_cpu_s?;
        let wall = self.elapsed_s? as f64 * f64::from(self.cpus?);
        (wall > 0.0).then(|| cpu / wall)
    }

    /// MaxRSS / requested memory.
    pub fn mem_efficiency(&self) -> Option<f64> {
        let rss = self.max_rss_mb?;
        let req = self.mem_mb? as f64;
        (req > 0.0).then(|| rss / req)
    }

    pub fn submit_time(&self) -> Option<DateTime<Utc>> {
        self.submit.and_then(|s| DateTime::from_timestamp(s, 0))
    }

    pub fn start_time(&self) -> Option<DateTime<Utc>> {
        self.start.and_then(|s| DateTime::from_timestamp(s, 0))
    }

    pub fn end_time(&self) -> Option<DateTime<Utc>> {
        self.end.and_then(|s| DateTime::from_timestamp(s, 0))
    }
}

/// Job states from `squeue.1` "JOB STATE CODES". The first twelve are Slurm's base states; the rest
/// are flags that text output shows in place of the base state. Anything else is kept verbatim.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum JobState {
    #[default]
    Pending,
    Running,
    Suspended,
    Completed,
    Cancelled,
    Failed,
    Timeout,
    NodeFail,
    Preempted,
    BootFail,
    Deadline,
    OutOfMemory,
    Completing,
    Configuring,
    Stopped,
    Requeued,
    RequeueHold,
    RequeueFed,
    Resizing,
    Revoked,
    SpecialExit,
    Signaling,
    StageOut,
    ResvDelHold,
    Unknown(String),
}

/// The coarse class sortie shows and acts on.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub enum StateClass {
    Queued,
    Running,
    Suspended,
    Succeeded,
    Failed,
    Cancelled,
    Preempted,
    Unknown,
}

/// (state, long name, short code); one table so parsing and printing cannot disagree.
const STATES: &[(JobState, &str, &str)] = &[
    (JobState::Pending, "PENDING", "PD"),
    (JobState::Running, "RUNNING", "R"),
    (JobState::Suspended, "SUSPENDED", "S"),
    (JobState::Completed, "COMPLETED", "CD"),
    (JobState::Cancelled, "CANCELLED", "CA"),
    (JobState::Failed, "FAILED", "F"),
    (JobState::Timeout, "TIMEOUT", "TO"),
    (JobState::NodeFail, "NODE_FAIL", "NF"),
    (JobState::Preempted, "PREEMPTED", "PR"),
    (JobState::BootFail, "BOOT_FAIL", "BF"),
    (JobState::Deadline, "DEADLINE", "DL"),
    (JobState::OutOfMemory, "OUT_OF_MEMORY", "OOM"),
    (JobState::Completing, "COMPLETING", "CG"),
    (JobState::Configuring, "CONFIGURING", "CF"),
    (JobState::Stopped, "STOPPED", "ST"),
    (JobState::Requeued, "REQUEUED", "RQ"),
    (JobState::RequeueHold, "REQUEUE_HOLD", "RH"),
    (JobState::RequeueFed, "REQUEUE_FED", "RF"),
    (JobState::Resizing, "RESIZING", "RS"),
    (JobState::Revoked, "REVOKED", "RV"),
    (JobState::SpecialExit, "SPECIAL_EXIT", "SE"),
    (JobState::Signaling, "SIGNALING", "SI"),
    (JobState::StageOut, "STAGE_OUT", "SO"),
    (JobState::ResvDelHold, "RESV_DEL_HOLD", "RD"),
];

impl JobState {
    /// Parses a long name (`RUNNING`) or a short code (`R`), case-insensitively. sacct's
    /// `CANCELLED by 1234` keeps only its first word. Unknown text is kept verbatim.
    pub fn parse(text: &str) -> JobState {
        let word = text.split_whitespace().next().unwrap_or("");
        STATES
            .iter()
            .find(|(_, long, code)| {
                word.eq_ignore_ascii_case(long) || word.eq_ignore_ascii_case(code)
            })
            .map(|(s, _, _)| s.clone())
            .unwrap_or_else(|| JobState::Unknown(text.trim().to_string()))
    }

    /// One of the twelve base states (as opposed to a flag printed in their place).
    pub fn is_base(&self) -> bool {
        matches!(
            self,
            JobState::Pending
                | JobState::Running
                | JobState::Suspended
                | JobState::Completed
                | JobState::Cancelled
                | JobState::Failed
                | JobState::Timeout
                | JobState::NodeFail
                | JobState::Preempted
                | JobState::BootFail
                | JobState::Deadline
                | JobState::OutOfMemory
        )
    }

    pub fn name(&self) -> &str {
        match self {
            JobState::Unknown(s) => s,
            s => STATES
                .iter()
                .find(|(t, _, _)| t == s)
                .map_or("", |(_, n, _)| n),
        }
    }

    /// The squeue compact code; `?` for an unknown state.
    pub fn code(&self) -> &'static str {
        STATES
            .iter()
            .find(|(t, _, _)| t == self)
            .map_or("?", |(_, _, c)| c)
    }

    /// The job will not run again in this incarnation (a requeue starts a new one as pending).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self.class(),
            StateClass::Succeeded
                | StateClass::Failed
                | StateClass::Cancelled
                | StateClass::Preempted
        )
    }

    pub fn class(&self) -> StateClass {
        use JobState::*;
        match self {
            Pending | Configuring | Requeued | RequeueHold | RequeueFed | ResvDelHold
            | SpecialExit => StateClass::Queued,
            Running | Completing | Signaling | StageOut | Stopped | Resizing => StateClass::Running,
            Suspended => StateClass::Suspended,
            Completed => StateClass::Succeeded,
            Failed | OutOfMemory | Timeout | NodeFail | BootFail | Deadline => StateClass::Failed,
            Cancelled | Revoked => StateClass::Cancelled,
            Preempted => StateClass::Preempted,
            Unknown(_) => StateClass::Unknown,
        }
    }

    /// A one-cell symbol for tables.
    pub fn glyph(&self) -> char {
        use JobState::*;
        match self {
            Pending | Requeued | RequeueFed | ResvDelHold => '○',
            RequeueHold | SpecialExit => '⏸',
            Configuring => '◌',
            Running | Signaling | Resizing => '●',
            Completing | StageOut => '◐',
            Suspended | Stopped => '‖',
            Completed => '✓',
            Failed | BootFail | NodeFail | Deadline => '✗',
            OutOfMemory => 'M',
            Timeout => 'T',
            Cancelled | Revoked => '⊘',
            Preempted => '↺',
            Unknown(_) => '?',
        }
    }
}

/// One partition as `sinfo` reports it, summed over its nodes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Partition {
    pub name: String,
    /// `up`, `down`, `drain`, `inact`.
    pub state: String,
    /// The partition jobs land in without `-p`.
    pub default: bool,
    pub nodes_total: u32,
    pub nodes_idle: u32,
    pub cpus_total: u32,
    pub cpus_idle: u32,
    pub gpus_total: u32,
    /// GPUs not in use on nodes that can take jobs (not down or drained).
    pub gpus_idle: u32,
    /// `None` means unlimited.
    pub max_time_s: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_from_names_and_codes() {
        assert_eq!(JobState::parse("RUNNING"), JobState::Running);
        assert_eq!(JobState::parse("oom"), JobState::OutOfMemory);
        assert_eq!(JobState::parse("CANCELLED by 1234"), JobState::Cancelled);
        assert_eq!(JobState::parse("CG"), JobState::Completing);
        assert_eq!(
            JobState::parse("LAUNCH_FAILED"),
            JobState::Unknown("LAUNCH_FAILED".into())
        );
        for (s, long, code) in STATES {
            assert_eq!(&JobState::parse(long), s);
            assert_eq!(&JobState::parse(code), s);
            assert_eq!(s.name(), *long);
            assert_eq!(s.code(), *code);
        }
    }

    #[test]
    fn classes_follow_the_reference_mapping() {
        assert_eq!(JobState::Timeout.class(), StateClass::Failed);
        assert_eq!(JobState::Completing.class(), StateClass::Running);
        assert_eq!(JobState::RequeueHold.class(), StateClass::Queued);
        assert_eq!(JobState::Revoked.class(), StateClass::Cancelled);
        assert!(JobState::Preempted.is_terminal());
        assert!(!JobState::Unknown("X".into()).is_terminal());
        assert_eq!(JobState::Unknown("X".into()).code(), "?");
    }

    #[test]
    fn completing_jobs_are_not_finished() {
        let mut job = Job {
            state: JobState::Completed,
            flags: vec!["COMPLETING".into()],
            ..Job::default()
        };
        assert!(!job.is_finished());
        assert!(job.is_active());
        job.flags.clear();
        assert!(job.is_finished());
        assert!(!job.is_active());
        job.state = JobState::Unknown("WEIRD".into());
        assert!(!job.is_finished() && !job.is_active());
    }

    #[test]
    fn efficiencies() {
        let job = Job {
            total_cpu_s: Some(30.0),
            elapsed_s: Some(20),
            cpus: Some(2),
            max_rss_mb: Some(250.0),
            mem_mb: Some(1000),
            ..Job::default()
        };
        assert_eq!(job.cpu_efficiency(), Some(0.75));
        assert_eq!(job.mem_efficiency(), Some(0.25));
        let empty = Job {
            elapsed_s: Some(0),
            cpus: Some(1),
            total_cpu_s: Some(1.0),
            ..Job::default()
        };
        assert_eq!(empty.cpu_efficiency(), None);
    }
}
