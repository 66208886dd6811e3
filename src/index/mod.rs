//! The per-host SQLite index of runs, steps, attempts and metrics.
//!
//! The run directories are the truth; the index is a cache of them that every sortie process (engine,
//! CLI, TUI) fills by tailing the files incrementally. Deleting it loses nothing: the next sync rebuilds
//! it. Several processes on one host may sync the same index at once; each file's progress is advanced
//! inside the same transaction as the rows it produced, so ingest is idempotent. Tables are described in
//! `docs/schema.md`.

mod apply;
mod error;
mod hashcache;
mod ingest_events;
mod ingest_metrics;
mod open;
mod query;
mod rows;
mod schema;
mod sources;
mod sync;
#[cfg(test)]
pub(crate) mod test_support;
pub mod unattended;
pub mod worker;

pub use error::{IndexError, Result};
pub use open::{BUSY_TIMEOUT, JOURNAL_ENV, Journal, is_network_fs};
pub use query::PointsTail;
pub use rows::{AttemptRow, JobLink, MetricSummary, Point, RunRow, StepRow};
pub use schema::current_version as schema_version;
pub use sync::{DamagedRun, SyncReport, damaged_runs};

use crate::runlog::Project;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Index {
    conn: Connection,
    path: PathBuf,
    journal: String,
    bufs: ingest_metrics::Buffers,
    /// Each run's event fold, kept so that a sync folds only the new lines.
    folds: ingest_events::Folds,
    /// How many files `hash_file` actually read (the rest came from the cache).
    hashes_computed: u64,
    /// Set (by the engine, on SIGINT/SIGTERM) to stop a hash between chunks.
    interrupt: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Index {
    /// Opens or creates the index at `path`, choosing the journal mode from the filesystem (or
    /// `SORTIE_INDEX_JOURNAL`).
    pub fn open(path: &Path) -> Result<Index> {
        Index::open_with(path, None)
    }

    /// Like [`Index::open`] with an explicit journal mode (`None`: decide as `open` does).
    pub fn open_with(path: &Path, journal: Option<Journal>) -> Result<Index> {
        let opened = open::open(path, journal)?;
        Ok(Index {
            conn: opened.conn,
            path: path.to_path_buf(),
            journal: opened.journal,
            bufs: Default::default(),
            folds: Default::default(),
            hashes_computed: 0,
            interrupt: Default::default(),
        })
    }

    /// This host's index of `project`.
    pub fn open_project(project: &Project) -> Result<Index> {
        if let Some(m) = crate::util::host_problem() {
            return Err(IndexError::BadHost(m));
        }
        Index::open(&project.index_path(&crate::util::host()))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `wal` or `delete`.
    pub fn journal_mode(&self) -> String {
        self.journal.clone()
    }

    /// A flag that, once set, makes [`Index::hash_file`] stop at its next chunk with an error.
    pub fn set_interrupt(&mut self, flag: std::sync::Arc<std::sync::atomic::AtomicBool>) {
        self.interrupt = flag;
    }

    /// Files read by [`Index::hash_file`] since this handle was opened (cache misses).
    pub fn hashes_computed(&self) -> u64 {
        self.hashes_computed
    }

    fn sql_err(&self, what: &str) -> impl FnOnce(rusqlite::Error) -> IndexError + '_ {
        let what = what.to_string();
        move |e| IndexError::sqlite(&self.path, what, e)
    }
}

/// Runs `f` again while it fails with SQLITE_BUSY. The busy timeout covers almost every wait; this is
/// for the few cases where SQLite reports BUSY without waiting (e.g. while another process recovers a
/// WAL), so that a reader never surfaces "database is locked".
pub(crate) fn retry_busy<T>(mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let mut delay = Duration::from_millis(5);
    for _ in 0..12 {
        match f() {
            Err(e) if e.is_busy() => {
                std::thread::sleep(
                    delay + Duration::from_millis(fastrand::u64(0..=delay.as_millis() as u64)),
                );
                delay = (delay * 2).min(Duration::from_secs(1));
            }
            other => return other,
        }
    }
    f()
}
