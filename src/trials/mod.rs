//! Optuna studies, read live from the storages researchers already have: the RDB storage in SQLite
//! (`rdb`) and `JournalFileBackend` files (`journal`), without Python and without disturbing the workers
//! that write them. `model` is what both give; `discover` finds study files in a folder.

pub mod discover;
pub mod distribution;
pub mod importance;
pub mod journal;
pub mod model;
pub mod pyjson;
pub mod rdb;
pub mod report;

pub use model::{
    Attrs, Direction, Distribution, Intermediate, ParamSpace, Params, Study, Trial, TrialState,
};

use std::path::{Path, PathBuf};

/// How naive timestamps are read. Optuna 4.x and older write the writing process's local time, 5.0
/// writes UTC (in the RDB without saying so; in the journal with a `+00:00`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeBasis {
    Utc,
    Local,
}

impl TimeBasis {
    /// The basis of an RDB file's trial times, from the Optuna version that made or last upgraded it.
    pub fn for_rdb_library(version: Option<&str>) -> TimeBasis {
        let major = version
            .and_then(|v| v.split('.').next())
            .and_then(|m| m.parse::<u32>().ok());
        match major {
            Some(m) if m >= 5 => TimeBasis::Utc,
            _ => TimeBasis::Local,
        }
    }

    /// Unix seconds of a naive `YYYY-MM-DD HH:MM:SS[.ffffff]` (or `T`-separated) time.
    pub fn naive(self, text: &str) -> Option<f64> {
        let t = text.trim();
        let naive = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
            .iter()
            .find_map(|f| chrono::NaiveDateTime::parse_from_str(t, f).ok())?;
        let utc = match self {
            TimeBasis::Utc => naive.and_utc(),
            TimeBasis::Local => naive
                .and_local_timezone(chrono::Local)
                .earliest()?
                .with_timezone(&chrono::Utc),
        };
        Some(utc.timestamp_micros() as f64 / 1e6)
    }

    pub fn naive_opt(self, text: Option<String>) -> Option<f64> {
        self.naive(&text?)
    }

    /// Unix seconds of an ISO 8601 time: converted when it carries an offset, else read on this basis.
    pub fn iso(self, text: &str) -> Option<f64> {
        match chrono::DateTime::parse_from_rfc3339(text.trim()) {
            Ok(t) => Some(t.timestamp_micros() as f64 / 1e6),
            Err(_) => self.naive(text),
        }
    }
}

/// Studies read from one storage, and what was odd about it (never fatal).
#[derive(Debug, Default)]
pub struct Loaded {
    pub studies: Vec<Study>,
    pub warnings: Vec<String>,
}

/// An open storage, kept between polls so a change is noticed cheaply.
pub enum Storage {
    Rdb(Box<rdb::RdbReader>),
    Journal(Box<journal::JournalReader>),
}

impl Storage {
    /// Opens a study file of either kind; `sqlite:///path` URLs are accepted as Optuna spells them. The
    /// error is one line naming the file.
    pub fn open(spec: &str, basis: Option<TimeBasis>) -> Result<Storage, String> {
        let path = path_of(spec);
        let meta = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if !meta.is_file() {
            return Err(format!("{}: not a study file", path.display()));
        }
        if rdb::looks_like_sqlite(&path) {
            return rdb::RdbReader::open(&path, basis).map(|r| Storage::Rdb(Box::new(r)));
        }
        journal::JournalReader::open(&path).map(|j| Storage::Journal(Box::new(j)))
    }

    /// Everything the storage holds now (sharing the trials with the reader), and the warnings.
    pub fn load(&mut self) -> Result<Loaded, String> {
        self.refresh()?;
        Ok(Loaded {
            studies: self.snapshot(),
            warnings: self.take_warnings(),
        })
    }

    /// Reads what changed since the last refresh (cheaply nothing when nothing did). Returns whether the
    /// studies changed.
    pub fn refresh(&mut self) -> Result<bool, String> {
        match self {
            Storage::Rdb(r) => r.refresh(),
            Storage::Journal(j) => j.read_new(),
        }
    }

    /// The studies as the last refresh left them.
    pub fn studies(&self) -> Vec<&Study> {
        match self {
            Storage::Rdb(r) => r.studies().iter().collect(),
            Storage::Journal(j) => j.studies(),
        }
    }

    /// The studies as the last refresh left them, for another thread: the trials are shared, not
    /// copied (a pointer each), and a later refresh leaves them as they are.
    pub fn snapshot(&self) -> Vec<Study> {
        self.studies().into_iter().cloned().collect()
    }

    /// What was odd about the file since the last call: reported once, never fatal.
    pub fn take_warnings(&mut self) -> Vec<String> {
        match self {
            Storage::Rdb(r) => r.take_warnings(),
            Storage::Journal(j) => j.take_warnings(),
        }
    }
}

/// The file a storage spec names: `sqlite:///abs/path` or `sqlite:///rel/path` (SQLAlchemy's three
/// slashes, then the path), or a plain path.
pub fn path_of(spec: &str) -> PathBuf {
    match spec.strip_prefix("sqlite:///") {
        Some(rest) => PathBuf::from(rest),
        None => Path::new(spec).to_path_buf(),
    }
}
