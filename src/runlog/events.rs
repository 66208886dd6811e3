//! The engine's event log: one JSON line per change, appended to `events.jsonl` by the one engine that
//! holds the run's lease. Everything else (status, the index, resume) is a fold over these lines.

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The state of one step instance.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Pending,
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Cached,
    /// An upstream step failed or was cancelled.
    Blocked,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Queued => "queued",
            StepState::Running => "running",
            StepState::Succeeded => "succeeded",
            StepState::Failed => "failed",
            StepState::Cancelled => "cancelled",
            StepState::Cached => "cached",
            StepState::Blocked => "blocked",
        }
    }

    pub fn parse(s: &str) -> Option<StepState> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }

    /// Succeeded or cached: dependents may run.
    pub fn is_done_ok(self) -> bool {
        matches!(self, StepState::Succeeded | StepState::Cached)
    }

    /// Nothing more will happen to this step unless someone asks for a retry or re-run.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            StepState::Succeeded
                | StepState::Failed
                | StepState::Cancelled
                | StepState::Cached
                | StepState::Blocked
        )
    }

    /// A one-character glyph so state never rests on colour alone.
    pub fn glyph(self) -> char {
        match self {
            StepState::Pending => '·',
            StepState::Queued => '◦',
            StepState::Running => '▶',
            StepState::Succeeded => '✓',
            StepState::Failed => '✗',
            StepState::Cancelled => '⊘',
            StepState::Cached => '≡',
            StepState::Blocked => '⊣',
        }
    }
}

impl std::fmt::Display for StepState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of a whole run.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<RunState> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A step instance as announced when the run is created.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct StepInfo {
    /// Instance name, e.g. `train[model=gcn,seed=0]`.
    pub name: String,
    /// The `[[step]]` it was expanded from, e.g. `train`.
    pub group: String,
    /// Matrix parameters (empty for plain steps).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Names of the `[[step]]` groups it needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
}

/// One change. New variants may appear in later versions; readers skip lines they do not understand.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The first line of every log.
    RunCreated {
        run: String,
        pipeline: String,
        /// The pipeline file the run was made from (absolute).
        file: String,
        workdir: String,
        host: String,
        user: String,
        steps: Vec<StepInfo>,
    },
    /// An engine took the lease and drives the run from here on.
    EngineStarted {
        host: String,
        pid: u32,
        generation: u64,
    },
    /// The engine stopped driving (run finished, lost its lease, or was told to stop).
    EngineStopped {
        host: String,
        pid: u32,
        reason: String,
    },
    /// A step changed state without an attempt: queued, cached, blocked, cancelled, or reset to pending.
    StepState {
        step: String,
        state: StepState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// With `pending`: the next attempt must run even if the cache has its result (a re-run).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        force: bool,
    },
    /// The cache decision for a step about to run.
    Cache {
        step: String,
        key: String,
        hit: bool,
        /// The attempt dir whose result is reused, on a hit.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        reason: String,
    },
    /// An attempt was started (or, for SLURM, submitted).
    AttemptStarted {
        step: String,
        attempt: u32,
        host: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
        dir: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_key: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        job_id: Option<String>,
        /// The boot id of `host` when a local attempt started: the same host name with another boot id
        /// has rebooted, so the attempt's processes are gone. Absent in logs of older versions.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        boot_id: Option<String>,
    },
    /// An attempt ended. `state` is succeeded, failed or cancelled.
    AttemptEnded {
        step: String,
        attempt: u32,
        state: StepState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Whether the engine will try again (after a backoff).
        #[serde(default)]
        will_retry: bool,
        /// How a Slurm attempt failed (`oom`, `timeout`, `node_fail`, `preempted`, `dependency`,
        /// `cancelled`): it decides what the next attempt asks for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        class: Option<String>,
    },
    /// Written after `attempt_started` and before `sbatch` runs: the job this attempt is about to become.
    /// An engine that dies before `job_submitted` is written finds the job by this name, so an attempt is
    /// never submitted twice.
    SubmitIntent {
        step: String,
        attempt: u32,
        /// The Slurm job name (unique per submission).
        name: String,
        /// The element's index when the job is an array.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        array_index: Option<u32>,
        /// What the job asks for beyond the step's resources (after escalations).
        #[serde(default)]
        request: SlurmRequest,
        /// The jobs it waits on (`--dependency=afterok:...`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        after: Vec<String>,
    },
    /// `sbatch` answered: the attempt is this job (`123`, or `123_4` for an array element).
    JobSubmitted {
        step: String,
        attempt: u32,
        job_id: String,
    },
    /// A control request was handled (or refused).
    Request {
        id: String,
        kind: String,
        ok: bool,
        message: String,
    },
    /// The run's state changed (back to running on retry/rerun, or to its final state).
    RunState { state: RunState },
}

/// A Slurm attempt's request where it differs from the step's resources: grown after running out of
/// memory or time, or avoiding nodes that failed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct SlurmRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_mb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// An event with its time.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Record {
    /// Unix seconds.
    pub ts: f64,
    #[serde(flatten)]
    pub event: Event,
}

/// Appends events. Only the lease holder writes; each line goes out in one `write` call on an
/// `O_APPEND` file so a reader never sees half of an event followed by another.
pub struct EventWriter {
    file: File,
    path: PathBuf,
}

impl EventWriter {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(EventWriter {
            file,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(&mut self, event: Event) -> std::io::Result<Record> {
        let rec = Record {
            ts: crate::util::now(),
            event,
        };
        let mut line = serde_json::to_vec(&rec).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        Ok(rec)
    }

    /// Flush to stable storage: used at run boundaries, not for every line.
    pub fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }
}

/// What an incremental read returned.
#[derive(Debug, Default)]
pub struct ReadBatch {
    pub records: Vec<Record>,
    /// Offset just after the last complete line consumed; pass it to the next read.
    pub offset: u64,
    /// Complete lines that did not parse (skipped, never fatal).
    pub bad_lines: u64,
}

/// Reads the complete lines after `offset`. A partial last line (the engine is mid-write, or NFS has not
/// shown all of it yet) is left for the next read.
pub fn read_from(path: &Path, offset: u64) -> std::io::Result<ReadBatch> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    if len <= offset {
        return Ok(ReadBatch {
            offset,
            ..Default::default()
        });
    }
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity((len - offset) as usize);
    f.take(len - offset).read_to_end(&mut buf)?;
    Ok(parse_batch(&buf, offset))
}

/// Parses the complete lines of `buf`, the log's bytes from `offset` on; a partial last line is left
/// out of the records and of the returned offset. Also the fuzzing entry point for the log format.
pub fn parse_batch(buf: &[u8], offset: u64) -> ReadBatch {
    let complete = match buf.iter().rposition(|&b| b == b'\n') {
        Some(i) => i + 1,
        None => 0,
    };
    let mut batch = ReadBatch {
        offset: offset + complete as u64,
        ..Default::default()
    };
    for line in buf[..complete].split(|&b| b == b'\n') {
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        match serde_json::from_slice::<Record>(line) {
            Ok(r) => batch.records.push(r),
            Err(_) => batch.bad_lines += 1,
        }
    }
    batch
}

/// The records between two line boundaries `start` and `end` an earlier read returned (a reader catching
/// up with what another process already consumed).
pub fn read_range(path: &Path, start: u64, end: u64) -> std::io::Result<Vec<Record>> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity(end.saturating_sub(start) as usize);
    f.take(end.saturating_sub(start)).read_to_end(&mut buf)?;
    Ok(parse_batch(&buf, start).records)
}

/// Every record of a run's log.
pub fn read_all(path: &Path) -> std::io::Result<Vec<Record>> {
    Ok(read_from(path, 0)?.records)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Floats read back bit for bit (serde_json's `float_roundtrip`): without it 17-digit values such
    /// as these came back one unit in the last place off (found by tests/properties.rs).
    #[test]
    fn floats_read_back_exactly() {
        let mut params = serde_json::Map::new();
        params.insert("lr".into(), serde_json::json!(100072.70009119339));
        params.insert("wd".into(), serde_json::json!(-120245.44759821765));
        let rec = Record {
            ts: 1796184205.6840897,
            event: Event::RunCreated {
                run: "r".into(),
                pipeline: "p".into(),
                file: "f".into(),
                workdir: "w".into(),
                host: "h".into(),
                user: "u".into(),
                steps: vec![StepInfo {
                    name: "a".into(),
                    group: "a".into(),
                    params,
                    needs: Vec::new(),
                }],
            },
        };
        let mut line = serde_json::to_vec(&rec).unwrap();
        line.push(b'\n');
        assert_eq!(parse_batch(&line, 0).records, vec![rec]);
    }

    #[test]
    fn round_trip_and_partial_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        let mut w = EventWriter::open(&p).unwrap();
        w.append(Event::RunState {
            state: RunState::Running,
        })
        .unwrap();
        w.append(Event::StepState {
            step: "a".into(),
            state: StepState::Queued,
            reason: None,
            force: false,
        })
        .unwrap();
        // A half-written line and a garbage line.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"not json\n{\"ts\":1,\"type\":\"run_st")
            .unwrap();
        let b = read_from(&p, 0).unwrap();
        assert_eq!(b.records.len(), 2);
        assert_eq!(b.bad_lines, 1);
        let again = read_from(&p, b.offset).unwrap();
        assert!(again.records.is_empty());
        assert_eq!(again.offset, b.offset);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"ate\",\"state\":\"failed\"}\n")
            .unwrap();
        let rest = read_from(&p, b.offset).unwrap();
        assert_eq!(
            rest.records[0].event,
            Event::RunState {
                state: RunState::Failed
            }
        );
    }
}
