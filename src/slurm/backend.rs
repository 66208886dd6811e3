//! What sortie asks of Slurm, independent of how it is asked (`CliBackend` runs the commands,
//! `RestBackend` talks to slurmrestd).
//!
//! The trait is synchronous: every call blocks on a process or an HTTP request, so call it from a
//! blocking thread (`tokio::task::spawn_blocking`), never directly on an async worker.

use std::path::Path;
use std::time::Duration;

use super::error::Result;
use super::model::{Job, Partition};
use super::scontrol::JobDetails;

/// Which jobs `jobs()` returns. Empty lists mean "no filter". Prefer one query per user (`squeue
/// --me` style) filtered locally over many `ids`: several ids without a user make the controller
/// load the whole job table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobQuery {
    pub user: Option<String>,
    /// `123`, `123_4` or an array's `123` (all of its tasks).
    pub ids: Vec<String>,
    pub names: Vec<String>,
}

/// Which jobs `history()` returns from accounting.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryQuery {
    /// Unix seconds. Always sent: without it sacct starts at midnight today.
    pub since: i64,
    pub until: Option<i64>,
    pub user: Option<String>,
    pub ids: Vec<String>,
    pub names: Vec<String>,
}

pub trait SlurmBackend: Send + Sync {
    /// Jobs the controller still knows (queued, running, and ended within MinJobAge).
    fn jobs(&self, query: &JobQuery) -> Result<Vec<Job>>;
    /// Jobs from accounting (sacct), with MaxRSS/TotalCPU folded in from their steps.
    fn history(&self, query: &HistoryQuery) -> Result<Vec<Job>>;
    /// `sbatch --parsable [extra_args] script`; returns the job id. A `TimedOut` error is ambiguous:
    /// the job may exist, so look for it (by name) before submitting again.
    fn submit(&self, script: &Path, extra_args: &[String]) -> Result<String>;
    fn cancel(&self, ids: &[String]) -> Result<()>;
    /// Sends `signal` to the batch shell and every step (`scancel --full -s`).
    fn signal(&self, id: &str, signal: i32) -> Result<()>;
    fn hold(&self, ids: &[String]) -> Result<()>;
    fn release(&self, ids: &[String]) -> Result<()>;
    fn requeue(&self, ids: &[String]) -> Result<()>;
    /// `None` sets UNLIMITED. Users can usually only lower a limit.
    fn update_time_limit(&self, id: &str, limit: Option<Duration>) -> Result<()>;
    /// Everything the controller knows about a job; empty once it was purged. An array id gives
    /// one entry per task record.
    fn job_details(&self, id: &str) -> Result<Vec<JobDetails>>;
    fn partitions(&self) -> Result<Vec<Partition>>;
    /// The scheduler's expected start (unix seconds) of a pending job, if it has one.
    fn start_estimate(&self, id: &str) -> Result<Option<i64>>;
    /// How many Slurm commands or requests this backend has made; each is at least one RPC.
    fn rpc_count(&self) -> u64;
    /// The most one call may cost before it has been made once (a JSON→text fallback makes two
    /// commands; a REST backend's first request may mint a token and read the API list).
    fn first_call_cost(&self) -> u64 {
        3
    }
}

/// `sbatch --parsable` prints `id` or `id;cluster`.
pub fn parse_parsable(stdout: &str) -> Option<String> {
    let line = stdout.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    let id = line.split(';').next()?.trim();
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit())).then(|| id.to_string())
}

/// A time limit as `scontrol update` takes it: `D-HH:MM:SS`, whole minutes rounded up (Slurm
/// keeps minutes), or `UNLIMITED`.
pub fn format_time_limit(limit: Option<Duration>) -> String {
    let Some(limit) = limit else {
        return "UNLIMITED".to_string();
    };
    let minutes = limit.as_secs().div_ceil(60).max(1);
    format!(
        "{}-{:02}:{:02}:00",
        minutes / 1440,
        minutes / 60 % 24,
        minutes % 60
    )
}

/// Keeps the jobs a query asks for: the controller may return more (JSON ignores some filters,
/// REST returns everything).
pub fn matches(job: &Job, query: &JobQuery) -> bool {
    let user_ok = query
        .user
        .as_ref()
        .is_none_or(|u| job.user.as_ref() == Some(u));
    let name_ok = query.names.is_empty() || query.names.contains(&job.name);
    let id_ok = query.ids.is_empty() || query.ids.iter().any(|id| id_matches(job, id));
    user_ok && name_ok && id_ok
}

/// `id` names this job: its own id, its raw numeric id, or its array (all tasks).
pub fn id_matches(job: &Job, id: &str) -> bool {
    let num = id.parse::<u64>().ok();
    job.id == id || (num.is_some() && (job.job_id_raw == num || job.array_job_id == num))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsable_ids() {
        assert_eq!(parse_parsable("123\n").as_deref(), Some("123"));
        assert_eq!(parse_parsable("123;cluster\n").as_deref(), Some("123"));
        assert_eq!(
            parse_parsable("warning first\n456\n").as_deref(),
            Some("456")
        );
        assert_eq!(parse_parsable("Submitted batch job 7\n"), None);
        assert_eq!(parse_parsable(""), None);
    }

    #[test]
    fn time_limits() {
        assert_eq!(format_time_limit(None), "UNLIMITED");
        assert_eq!(
            format_time_limit(Some(Duration::from_secs(90))),
            "0-00:02:00"
        );
        assert_eq!(
            format_time_limit(Some(Duration::from_secs(26 * 3600 + 60))),
            "1-02:01:00"
        );
        assert_eq!(format_time_limit(Some(Duration::ZERO)), "0-00:01:00");
    }

    #[test]
    fn query_matching() {
        let job = Job {
            id: "19_3".into(),
            job_id_raw: Some(30),
            array_job_id: Some(19),
            name: "train".into(),
            user: Some("ana".into()),
            ..Job::default()
        };
        assert!(matches(&job, &JobQuery::default()));
        assert!(matches(
            &job,
            &JobQuery {
                ids: vec!["19".into()],
                ..JobQuery::default()
            }
        ));
        assert!(matches(
            &job,
            &JobQuery {
                ids: vec!["30".into()],
                ..JobQuery::default()
            }
        ));
        assert!(matches(
            &job,
            &JobQuery {
                ids: vec!["19_3".into()],
                ..JobQuery::default()
            }
        ));
        assert!(!matches(
            &job,
            &JobQuery {
                ids: vec!["19_4".into()],
                ..JobQuery::default()
            }
        ));
        assert!(!matches(
            &job,
            &JobQuery {
                user: Some("bo".into()),
                ..JobQuery::default()
            }
        ));
        assert!(!matches(
            &job,
            &JobQuery {
                names: vec!["eval".into()],
                ..JobQuery::default()
            }
        ));
    }
}
