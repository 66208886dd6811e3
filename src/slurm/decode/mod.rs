//! Decoders from raw Slurm output bytes to [`Job`]s. JSON (`json` entry points here, per-record
//! logic in `squeue`/`sacct`) covers data_parser v0.0.37 → v0.0.45; `text` covers the `squeue -O` and
//! `sacct -P` fallback. Input is bytes because job names can hold invalid UTF-8: it is replaced, and
//! no input makes a decoder panic; failures are a [`DecodeError`] saying what and where.

pub mod fields;
pub mod meta;
pub mod nodes;
pub mod sacct;
pub mod squeue;
pub mod text;
pub mod value;

use std::fmt;

use serde_json::Value;

pub use meta::Dialect;

use super::model::{Job, JobState};

#[derive(Debug, Clone, PartialEq)]
pub struct DecodeError {
    pub what: String,
    /// A JSON path (`jobs[3].job_id`), a `line:column`, or a text line number.
    pub at: String,
}

impl DecodeError {
    pub fn new(what: impl Into<String>, at: impl Into<String>) -> DecodeError {
        DecodeError {
            what: what.into(),
            at: at.into(),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot decode Slurm output at {}: {}",
            self.at, self.what
        )
    }
}

impl std::error::Error for DecodeError {}

/// A decoded `--json` reply.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobList {
    pub dialect: Dialect,
    pub jobs: Vec<Job>,
    /// Slurm's own `errors[]`, as text (a reply can carry both jobs and errors).
    pub errors: Vec<String>,
}

/// `squeue --json`, or slurmrestd `GET /slurm/v0.0.NN/jobs` and `/job/{id}`.
pub fn squeue_json(bytes: &[u8]) -> Result<JobList, DecodeError> {
    squeue_json_at(bytes, chrono::Utc::now().timestamp())
}

/// As [`squeue_json`], with "now" given (run times of running jobs are computed from it).
pub fn squeue_json_at(bytes: &[u8], now: i64) -> Result<JobList, DecodeError> {
    decode_reply(bytes, |rec, dialect, path| {
        squeue::job(rec, dialect, now, path)
    })
}

/// `sacct --json`, or slurmrestd `GET /slurmdb/v0.0.NN/jobs`.
pub fn sacct_json(bytes: &[u8]) -> Result<JobList, DecodeError> {
    decode_reply(bytes, sacct::job)
}

fn decode_reply(
    bytes: &[u8],
    record: impl Fn(&Value, &Dialect, &str) -> Result<Job, DecodeError>,
) -> Result<JobList, DecodeError> {
    let root = parse_json(bytes)?;
    if !root.is_object() {
        return Err(DecodeError::new("reply is not a JSON object", "$"));
    }
    let dialect = Dialect::from_reply(&root);
    let errors = slurm_errors(&root);
    let jobs = match root.get("jobs") {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, rec)| {
                let path = format!("jobs[{i}]");
                if rec.is_object() {
                    record(rec, &dialect, &path)
                } else {
                    Err(DecodeError::new("job record is not an object", path))
                }
            })
            .collect::<Result<Vec<_>, _>>()?,
        None | Some(Value::Null) if !errors.is_empty() => Vec::new(),
        Some(_) => return Err(DecodeError::new("`jobs` is not an array", "jobs")),
        None => return Err(DecodeError::new("no `jobs` array in the reply", "$")),
    };
    Ok(JobList {
        dialect,
        jobs,
        errors,
    })
}

/// Parses JSON from raw bytes, replacing invalid UTF-8. Anything printed before the first `{` (a
/// warning on stdout) is skipped.
pub fn parse_json(bytes: &[u8]) -> Result<Value, DecodeError> {
    let text = String::from_utf8_lossy(bytes);
    let err = |e: serde_json::Error| {
        DecodeError::new(
            e.to_string(),
            format!("line {} column {}", e.line(), e.column()),
        )
    };
    match serde_json::from_str(&text) {
        Ok(v) => Ok(v),
        Err(first) => match text.find('{') {
            Some(i) if i > 0 => serde_json::from_str(&text[i..]).map_err(|_| err(first)),
            _ => Err(err(first)),
        },
    }
}

/// `errors: [{error, description, error_number, source}]` as readable lines.
pub fn slurm_errors(root: &Value) -> Vec<String> {
    let Some(items) = root.get("errors").and_then(Value::as_array) else {
        return Vec::new();
    };
    items
        .iter()
        .map(|e| {
            let part = |k: &str| e.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
            let parts: Vec<&str> = ["description", "error", "source"]
                .iter()
                .filter_map(|k| part(k))
                .collect();
            if parts.is_empty() {
                e.to_string()
            } else {
                parts.join(": ")
            }
        })
        .collect()
}

/// A state list (`["RUNNING", "COMPLETING"]`, or one string) → the base state and the other flags.
/// When only flags are present (text output prints `COMPLETING` in place of the base), the first
/// one is the state.
pub(crate) fn split_state(items: &[String]) -> (JobState, Vec<String>) {
    let parsed: Vec<JobState> = items.iter().map(|s| JobState::parse(s)).collect();
    let Some(base) = parsed
        .iter()
        .position(JobState::is_base)
        .or((!items.is_empty()).then_some(0))
    else {
        return (JobState::Unknown(String::new()), Vec::new());
    };
    let flags = items
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != base)
        .map(|(_, s)| s.trim().to_string())
        .collect();
    (parsed[base].clone(), flags)
}

/// The id users and `scancel` see: `123`, `123_4`, or `123_[5-9%2]` for a pending array.
pub(crate) fn array_id(
    job_id: u64,
    array_job: Option<u64>,
    task: Option<u32>,
    task_str: Option<&str>,
) -> String {
    match (array_job, task, task_str) {
        (Some(a), Some(t), _) => format!("{a}_{t}"),
        (Some(a), None, Some(s)) if !s.is_empty() => {
            if s.starts_with('[') {
                format!("{a}_{s}")
            } else {
                format!("{a}_[{s}]")
            }
        }
        _ => job_id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_lists() {
        let (s, f) = split_state(&["RUNNING".into(), "COMPLETING".into()]);
        assert_eq!((s, f), (JobState::Running, vec!["COMPLETING".to_string()]));
        let (s, f) = split_state(&["REQUEUED".into(), "PENDING".into()]);
        assert_eq!((s, f), (JobState::Pending, vec!["REQUEUED".to_string()]));
        let (s, f) = split_state(&["COMPLETING".into()]);
        assert_eq!((s, f), (JobState::Completing, vec![]));
        let (s, _) = split_state(&["LAUNCH_FAILED".into()]);
        assert_eq!(s, JobState::Unknown("LAUNCH_FAILED".into()));
        assert_eq!(split_state(&[]).0, JobState::Unknown(String::new()));
    }

    #[test]
    fn array_ids() {
        assert_eq!(array_id(5, None, None, None), "5");
        assert_eq!(array_id(27, Some(19), Some(0), None), "19_0");
        assert_eq!(array_id(19, Some(19), None, Some("0-5%1")), "19_[0-5%1]");
        assert_eq!(array_id(19, Some(19), None, Some("[3-5]")), "19_[3-5]");
    }

    #[test]
    fn replies_with_only_errors_are_not_decode_errors() {
        let reply = br#"{"meta": {}, "errors": [{"error": "Invalid job id specified", "error_number": 2017}]}"#;
        let list = squeue_json(reply).unwrap();
        assert!(list.jobs.is_empty());
        assert_eq!(list.errors, vec!["Invalid job id specified".to_string()]);
        let e = squeue_json(br#"{"jobs": 3}"#).unwrap_err();
        assert_eq!(e.at, "jobs");
        let e = squeue_json(br#"{"jobs": [{"name": "x"}]}"#).unwrap_err();
        assert_eq!(e.at, "jobs[0].job_id");
        let e = sacct_json(br#"{"jobs": [1]}"#).unwrap_err();
        assert_eq!(e.at, "jobs[0]");
        let e = sacct_json(b"{\"jobs\": [").unwrap_err();
        assert!(e.at.starts_with("line 1 column"), "{e}");
        assert!(
            squeue_json(b"squeue: warning: x\n{\"jobs\": []}")
                .unwrap()
                .jobs
                .is_empty()
        );
    }
}
