//! Ingesting a run's `events.jsonl`: in one `BEGIN IMMEDIATE` transaction, read the stored offset, read
//! the complete lines after it, fold them into the run's state (`runlog::state`), write the rows they
//! changed, store the new offset. Two processes syncing the same run therefore apply each event exactly
//! once between them. The fold is kept between syncs, so new events cost only themselves; a process
//! that has none yet (or whose fold lags another process's writes) reads the lines before the stored
//! offset once, without writing.

use super::apply;
use super::error::{IndexError, Result};
use super::sources::{self, Kind, Progress, SourceKey};
use crate::runlog::RunDir;
use crate::runlog::events::{read_from, read_range};
use crate::runlog::state::{RunFold, fold_one};
use rusqlite::{Connection, TransactionBehavior};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Ingested {
    pub events: u64,
    pub bad_lines: u64,
}

/// Each run's fold as far as this process has read its log (by run id).
#[derive(Debug, Default)]
pub struct Folds(HashMap<String, Folded>);

#[derive(Debug)]
struct Folded {
    inode: u64,
    offset: u64,
    fold: Option<RunFold>,
}

impl Folds {
    /// The fold of `path` up to `offset` (a line boundary): the kept one, caught up if another process
    /// ingested lines since, or folded from the start.
    fn take(
        &mut self,
        id: &str,
        path: &Path,
        inode: u64,
        offset: u64,
    ) -> std::io::Result<Option<RunFold>> {
        let (from, mut fold) = match self.0.remove(id) {
            Some(f) if f.inode == inode && f.offset <= offset => (f.offset, f.fold),
            _ => (0, None),
        };
        if from < offset {
            for rec in read_range(path, from, offset)? {
                fold_one(&mut fold, &rec);
            }
        }
        Ok(fold)
    }
}

pub fn ingest(
    conn: &mut Connection,
    db: &Path,
    run: &RunDir,
    folds: &mut Folds,
) -> Result<Ingested> {
    let id = run.id();
    let path = run.events();
    let key = SourceKey {
        kind: Kind::Events,
        run: &id,
        step: "",
        attempt: 0,
    };
    let sql = |e| IndexError::sqlite(db, format!("ingesting {}", path.display()), e);
    let io = |e| IndexError::io(&path, "reading the run log", e);
    let meta = std::fs::metadata(&path).map_err(io)?;
    // Cheap check without the write lock: nothing new since the last sync.
    let seen = sources::load(conn, key).map_err(sql)?;
    if seen.inode == Some(meta.ino()) && seen.offset == meta.len() {
        return Ok(Ingested::default());
    }
    let dir = std::path::absolute(&run.path).unwrap_or_else(|_| run.path.clone());
    let dir = dir.to_string_lossy();

    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql)?;
    let mut p = sources::load(&tx, key).map_err(sql)?;
    let meta = std::fs::metadata(&path).map_err(io)?;
    let reset = p.is_stale(meta.ino(), meta.len());
    if reset {
        // The log was replaced (a run dir deleted and made again under the same id): start over.
        apply::forget_run(&tx, &id).map_err(sql)?;
        p = Progress::default();
    }
    p.inode = Some(meta.ino());
    let batch = read_from(&path, p.offset).map_err(io)?;
    if batch.offset == p.offset && !reset {
        return Ok(Ingested::default()); // only a partial line so far; dropping `tx` rolls back
    }
    let mut fold = folds.take(&id, &path, meta.ino(), p.offset).map_err(io)?;
    let mut dirty = apply::Dirty::default();
    for rec in &batch.records {
        dirty.add(fold_one(&mut fold, rec));
    }
    if let Some(f) = &fold {
        apply::write(&tx, &id, &dir, f, &dirty).map_err(sql)?;
    }
    let got = Ingested {
        events: batch.records.len() as u64,
        bad_lines: batch.bad_lines,
    };
    p.offset = batch.offset;
    p.lines += got.events + got.bad_lines;
    p.bad_lines += got.bad_lines;
    sources::store(&tx, key, &path.to_string_lossy(), &p).map_err(sql)?;
    tx.commit().map_err(sql)?;
    // Kept only once its rows are committed: a failed sync folds again from what the index holds.
    folds.0.insert(
        id,
        Folded {
            inode: meta.ino(),
            offset: batch.offset,
            fold,
        },
    );
    Ok(got)
}
