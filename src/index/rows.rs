//! The rows the index hands out, and how each is read from its SELECT. Each `*_COLUMNS` constant is the
//! column list its `from_row` expects, so a query and its reader cannot drift apart.

use crate::runlog::{RunState, StepState};
use rusqlite::Row;
use serde::Serialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunRow {
    pub id: String,
    pub dir: PathBuf,
    pub pipeline: String,
    pub file: String,
    pub workdir: String,
    pub host: String,
    pub user: String,
    pub created: f64,
    pub ended: Option<f64>,
    pub state: RunState,
    pub engine_host: Option<String>,
    pub engine_pid: Option<u32>,
    pub steps_total: u32,
    /// Succeeded or cached.
    pub steps_done: u32,
    pub steps_failed: u32,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepRow {
    pub run: String,
    pub name: String,
    pub group: String,
    pub params: serde_json::Value,
    pub needs: Vec<String>,
    pub state: StepState,
    pub reason: Option<String>,
    pub attempts: u32,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub started: Option<f64>,
    pub ended: Option<f64>,
    /// The latest attempt's dir, or the reused dir of a cache hit.
    pub dir: Option<PathBuf>,
    pub cache_key: Option<String>,
    pub job_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AttemptRow {
    pub run: String,
    pub step: String,
    pub attempt: u32,
    pub state: StepState,
    pub host: String,
    pub pid: Option<u32>,
    pub dir: PathBuf,
    pub started: f64,
    pub ended: Option<f64>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub cache_key: Option<String>,
    pub job_id: Option<String>,
    pub reason: Option<String>,
}

/// A Slurm job one of the index's runs submitted, and the step attempt it ran.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct JobLink {
    /// As Slurm shows it: `123`, or `123_4` for a task of an array job.
    pub job: String,
    pub run: String,
    pub step: String,
}

/// One metric of one attempt. Non-finite values count; `min`/`max` skip NaN and are NaN only when every
/// value was NaN.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MetricSummary {
    pub step: String,
    pub attempt: u32,
    pub key: String,
    pub count: u64,
    #[serde(serialize_with = "non_finite_as_text")]
    pub last: f64,
    #[serde(serialize_with = "non_finite_as_text")]
    pub min: f64,
    #[serde(serialize_with = "non_finite_as_text")]
    pub max: f64,
    /// The x of the last point (see [`Point::x`]).
    pub last_x: Option<f64>,
}

/// JSON has no infinities: serde would print them as `null`, which means NaN here. They are written
/// as the strings `"Infinity"` / `"-Infinity"` (the metric protocol's own spelling); NaN stays `null`.
fn non_finite_as_text<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    match *v {
        f64::INFINITY => s.serialize_str("Infinity"),
        f64::NEG_INFINITY => s.serialize_str("-Infinity"),
        v => s.serialize_f64(v),
    }
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Point {
    /// The line's `step` axis if it had one, else its 0-based line number in the file.
    pub x: f64,
    pub epoch: Option<f64>,
    pub time: Option<f64>,
    pub value: f64,
}

/// SQLite stores a bound NaN as NULL; every stored metric value reads NULL back as NaN.
pub(crate) fn nan_if_null(v: Option<f64>) -> f64 {
    v.unwrap_or(f64::NAN)
}

fn step_state(s: String) -> StepState {
    StepState::parse(&s).unwrap_or(StepState::Pending)
}

pub(crate) const RUN_COLUMNS: &str = "r.id, r.dir, r.pipeline, r.file, r.workdir, r.host, r.user, \
    r.created, r.ended, r.state, r.engine_host, r.engine_pid, \
    (SELECT count(*) FROM steps s WHERE s.run = r.id), \
    (SELECT count(*) FROM steps s WHERE s.run = r.id AND s.state IN ('succeeded', 'cached')), \
    (SELECT count(*) FROM steps s WHERE s.run = r.id AND s.state = 'failed')";

impl RunRow {
    pub(crate) fn from_row(r: &Row) -> rusqlite::Result<RunRow> {
        Ok(RunRow {
            id: r.get(0)?,
            dir: PathBuf::from(r.get::<_, String>(1)?),
            pipeline: r.get(2)?,
            file: r.get(3)?,
            workdir: r.get(4)?,
            host: r.get(5)?,
            user: r.get(6)?,
            created: r.get(7)?,
            ended: r.get(8)?,
            state: RunState::parse(&r.get::<_, String>(9)?).unwrap_or(RunState::Running),
            engine_host: r.get(10)?,
            engine_pid: r.get(11)?,
            steps_total: r.get(12)?,
            steps_done: r.get(13)?,
            steps_failed: r.get(14)?,
        })
    }
}

pub(crate) const STEP_COLUMNS: &str = "run, name, step_group, params, needs, state, reason, attempts, \
    exit_code, signal, started, ended, dir, cache_key, job_id";

impl StepRow {
    pub(crate) fn from_row(r: &Row) -> rusqlite::Result<StepRow> {
        let params: String = r.get(3)?;
        let needs: String = r.get(4)?;
        Ok(StepRow {
            run: r.get(0)?,
            name: r.get(1)?,
            group: r.get(2)?,
            params: serde_json::from_str(&params).unwrap_or_default(),
            needs: serde_json::from_str(&needs).unwrap_or_default(),
            state: step_state(r.get(5)?),
            reason: r.get(6)?,
            attempts: r.get(7)?,
            exit_code: r.get(8)?,
            signal: r.get(9)?,
            started: r.get(10)?,
            ended: r.get(11)?,
            dir: r.get::<_, Option<String>>(12)?.map(PathBuf::from),
            cache_key: r.get(13)?,
            job_id: r.get(14)?,
        })
    }
}

pub(crate) const ATTEMPT_COLUMNS: &str = "a.run, a.step, a.attempt, a.state, a.host, a.pid, a.dir, \
    a.started, a.ended, a.exit_code, a.signal, a.cache_key, a.job_id, a.reason";

impl AttemptRow {
    pub(crate) fn from_row(r: &Row) -> rusqlite::Result<AttemptRow> {
        Ok(AttemptRow {
            run: r.get(0)?,
            step: r.get(1)?,
            attempt: r.get(2)?,
            state: step_state(r.get(3)?),
            host: r.get(4)?,
            pid: r.get(5)?,
            dir: PathBuf::from(r.get::<_, String>(6)?),
            started: r.get(7)?,
            ended: r.get(8)?,
            exit_code: r.get(9)?,
            signal: r.get(10)?,
            cache_key: r.get(11)?,
            job_id: r.get(12)?,
            reason: r.get(13)?,
        })
    }
}
