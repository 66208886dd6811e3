//! Ingesting one attempt's `metrics.jsonl` into `series` and `points`, batch by batch.
//!
//! Each batch is one short `BEGIN IMMEDIATE` transaction that re-reads the stored offset, reads about one
//! chunk of complete lines from it, inserts their points and stores the new offset; so two processes
//! syncing the same file never insert a line twice, and readers are never shut out for long. Keys and
//! series are interned once per batch.
//!
//! Points are only ever appended: each gets the next rowid, so every insert takes SQLite's fastest path
//! (append to the last leaf; no key comparison, no page split in the middle of the tree). To keep one
//! series' points together, a batch buffers them per series and writes series by series; each such run
//! of consecutive ids is recorded in `point_ranges`, and reading a series is a few range scans.

use super::error::{IndexError, Result};
use super::sources::{self, Kind, Progress, SourceKey};
use crate::metrics::{Scratch, Tailer, scan_line};
use rusqlite::{Connection, Transaction, TransactionBehavior, params};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Which attempt a metrics file belongs to.
#[derive(Debug, Clone, Copy)]
pub struct MetricFile<'a> {
    pub run: &'a str,
    pub step: &'a str,
    pub attempt: u32,
    pub path: &'a Path,
}

impl MetricFile<'_> {
    fn key(&self) -> SourceKey<'_> {
        SourceKey {
            kind: Kind::Metrics,
            run: self.run,
            step: self.step,
            attempt: self.attempt,
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Ingested {
    pub points: u64,
    pub bad_lines: u64,
}

/// Buffers kept between batches and files so that steady-state ingest does not allocate.
pub struct Buffers {
    /// Bytes of file per batch (one transaction).
    pub chunk: usize,
    scratch: Scratch,
    /// Metric key → index into `series`, for the current batch.
    by_key: HashMap<String, usize, BuildHasherDefault<Fnv>>,
    series: Vec<SeriesBuf>,
    /// The current line's (series index, value) pairs.
    line: Vec<(usize, f64)>,
    /// Emptied row buffers of earlier batches, reused to avoid reallocating (and page-faulting) them.
    spare: Vec<Vec<PointRow>>,
}

struct SeriesBuf {
    id: i64,
    /// Number of the line that last added a row, so that a key repeated within a line overwrites it.
    last_line: u64,
    rows: Vec<PointRow>,
}

struct PointRow {
    line_no: u64,
    x: f64,
    epoch: Option<f64>,
    time: Option<f64>,
    value: f64,
}

/// FNV-1a: keys are short and looked up several times per line, where SipHash's setup cost shows.
/// Flooding resistance is not needed; the keys come from the user's own training code.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for Buffers {
    fn default() -> Self {
        Buffers {
            chunk: crate::metrics::tailer::DEFAULT_CHUNK,
            scratch: Scratch::default(),
            by_key: HashMap::default(),
            series: Vec::new(),
            line: Vec::new(),
            spare: Vec::new(),
        }
    }
}

impl Buffers {
    fn clear(&mut self) {
        self.by_key.clear();
        for s in self.series.drain(..) {
            self.spare.push(s.rows);
        }
    }
}

/// Ingests what is new in one metrics file. A missing file is not an error: the step may not write
/// metrics, or has not started writing yet.
pub fn ingest(
    conn: &mut Connection,
    db: &Path,
    f: &MetricFile,
    bufs: &mut Buffers,
) -> Result<Ingested> {
    let sql = |e| IndexError::sqlite(db, format!("ingesting {}", f.path.display()), e);
    let io = |e| IndexError::io(f.path, "reading metrics", e);
    // Cheap check first, without opening the file or taking the write lock: nothing new since the
    // last sync (the common case for finished attempts).
    let meta = match std::fs::metadata(f.path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ingested::default()),
        Err(e) => return Err(io(e)),
    };
    let seen = sources::load(conn, f.key()).map_err(sql)?;
    if seen.inode == Some(meta.ino()) && seen.offset == meta.len() {
        return Ok(Ingested::default());
    }
    let mut tail = match Tailer::open(f.path) {
        Ok(t) => t.with_chunk(bufs.chunk),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ingested::default()),
        Err(e) => return Err(io(e)),
    };
    let mut end = tail.file_len().map_err(io)?;
    let mut inode = tail.inode().map_err(io)?;
    let path_text = f.path.to_string_lossy();
    let mut total = Ingested::default();
    loop {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        let mut p = sources::load(&tx, f.key()).map_err(sql)?;
        // Judge staleness by the file as it is now: another process may have read past our `end`.
        let meta = match std::fs::metadata(f.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return Err(io(e)),
        };
        if meta.ino() != inode {
            // The path now names another file (rewritten and renamed into place): read that one.
            tail = Tailer::open(f.path).map_err(io)?.with_chunk(bufs.chunk);
            inode = meta.ino();
            end = meta.len();
        }
        let reset = p.is_stale(inode, meta.len());
        if reset {
            forget_attempt(&tx, f).map_err(sql)?;
            p = Progress::default();
            end = meta.len();
        }
        p.inode = Some(inode);
        let chunk = tail.read(p.offset, end).map_err(io)?;
        if chunk.is_empty() {
            if reset {
                sources::store(&tx, f.key(), &path_text, &p).map_err(sql)?;
                tx.commit().map_err(sql)?;
            }
            break;
        }
        let next = chunk.next_offset();
        let got = ingest_lines(&tx, f, chunk.lines(), &mut p, bufs).map_err(sql)?;
        p.offset = next;
        sources::store(&tx, f.key(), &path_text, &p).map_err(sql)?;
        tx.commit().map_err(sql)?;
        total.points += got.points;
        total.bad_lines += got.bad_lines;
    }
    Ok(total)
}

/// Removes an attempt's points and series, before re-reading a replaced or truncated file.
pub fn forget_attempt(conn: &Connection, f: &MetricFile) -> rusqlite::Result<()> {
    let which = params![f.run, f.step, f.attempt];
    forget_points(conn, "run = ?1 AND step = ?2 AND attempt = ?3", which)?;
    conn.execute(
        "DELETE FROM series WHERE run = ?1 AND step = ?2 AND attempt = ?3",
        which,
    )?;
    Ok(())
}

/// Deletes the points and point ranges of the series matching `filter` (a condition on `series`).
pub fn forget_points(
    conn: &Connection,
    filter: &str,
    args: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<()> {
    let ranges = format!(
        "SELECT r.series, r.lo, r.hi FROM point_ranges r JOIN series s ON s.id = r.series WHERE s.{filter}"
    );
    let ranges: Vec<(i64, i64, i64)> = conn
        .prepare(&ranges)?
        .query_map(args, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut points = conn.prepare_cached("DELETE FROM points WHERE id BETWEEN ?1 AND ?2")?;
    let mut range =
        conn.prepare_cached("DELETE FROM point_ranges WHERE series = ?1 AND lo = ?2")?;
    for (series, lo, hi) in ranges {
        points.execute([lo, hi])?;
        range.execute([series, lo])?;
    }
    Ok(())
}

/// Parses `lines` (numbered from `p.lines`) and writes their points; advances `p.lines`/`p.bad_lines`.
fn ingest_lines<'a>(
    tx: &Transaction,
    f: &MetricFile,
    lines: impl Iterator<Item = &'a [u8]>,
    p: &mut Progress,
    bufs: &mut Buffers,
) -> rusqlite::Result<Ingested> {
    bufs.clear();
    let Buffers {
        chunk: _,
        scratch,
        by_key,
        series,
        line,
        spare,
    } = bufs;
    let mut got = Ingested::default();
    let mut failed: Option<rusqlite::Error> = None;
    for text in lines {
        let line_no = p.lines;
        p.lines += 1;
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        line.clear();
        let parsed = scan_line(text, scratch, |key, v| {
            let idx = match by_key.get(key) {
                Some(&i) => i,
                None => match series_id(tx, f, key) {
                    Ok(id) => {
                        series.push(SeriesBuf {
                            id,
                            last_line: u64::MAX,
                            rows: spare.pop().unwrap_or_default(),
                        });
                        by_key.insert(key.to_owned(), series.len() - 1);
                        series.len() - 1
                    }
                    Err(e) => {
                        failed.get_or_insert(e);
                        return;
                    }
                },
            };
            line.push((idx, v));
        });
        if let Some(e) = failed.take() {
            return Err(e);
        }
        let Ok(axes) = parsed else {
            p.bad_lines += 1;
            got.bad_lines += 1;
            continue;
        };
        let x = axes.step.unwrap_or(line_no as f64);
        for &(i, value) in line.iter() {
            let s = &mut series[i];
            match s.rows.last_mut() {
                // The same key twice in one line: the last value wins.
                Some(last) if s.last_line == line_no => last.value = value,
                _ => {
                    s.rows.push(PointRow {
                        line_no,
                        x,
                        epoch: axes.epoch,
                        time: axes.time,
                        value,
                    });
                    s.last_line = line_no;
                    got.points += 1;
                }
            }
        }
    }
    flush(tx, series)?;
    Ok(got)
}

/// The id of this attempt's series for `key`, creating the key and the series if new.
fn series_id(tx: &Transaction, f: &MetricFile, key: &str) -> rusqlite::Result<i64> {
    tx.prepare_cached("INSERT INTO metric_keys (key) VALUES (?1) ON CONFLICT (key) DO NOTHING")?
        .execute([key])?;
    let key_id: i64 = tx
        .prepare_cached("SELECT id FROM metric_keys WHERE key = ?1")?
        .query_row([key], |r| r.get(0))?;
    let ids = params![f.run, f.step, f.attempt, key_id];
    tx.prepare_cached(
        "INSERT INTO series (run, step, attempt, key_id) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (run, step, attempt, key_id) DO NOTHING",
    )?
    .execute(ids)?;
    tx.prepare_cached(
        "SELECT id FROM series WHERE run = ?1 AND step = ?2 AND attempt = ?3 AND key_id = ?4",
    )?
    .query_row(ids, |r| r.get(0))
}

/// Rows per multi-row INSERT: one statement run per this many points amortises SQLite's per-statement
/// work (opening a cursor, seeking from the root) that dominates single-row inserts.
const ROWS_PER_INSERT: usize = 64;

fn insert_sql(rows: usize) -> String {
    // OR FAIL rather than the default ABORT: a conflict fails the whole transaction either way (it is
    // rolled back), and FAIL spares SQLite a statement journal for every multi-row statement.
    let mut sql = String::from("INSERT OR FAIL INTO points (line, x, epoch, time, value) VALUES ");
    for i in 0..rows {
        let b = i * 5;
        if i > 0 {
            sql.push(',');
        }
        sql += &format!("(?{},?{},?{},?{},?{})", b + 1, b + 2, b + 3, b + 4, b + 5);
    }
    sql
}

/// Writes the buffered points and folds them into each series' summary.
fn flush(tx: &Transaction, series: &mut [SeriesBuf]) -> rusqlite::Result<()> {
    let mut many = tx.prepare_cached(&insert_sql(ROWS_PER_INSERT))?;
    let mut one = tx.prepare_cached(&insert_sql(1))?;
    let mut range =
        tx.prepare_cached("INSERT INTO point_ranges (series, lo, hi) VALUES (?1, ?2, ?3)")?;
    // NULL min/max means "no non-NaN value yet"; SQLite's two-argument min() would return NULL.
    let mut summary = tx.prepare_cached(
        "UPDATE series SET count = count + ?2, last = ?3, last_x = ?4, \
         min = CASE WHEN ?5 IS NULL THEN min WHEN min IS NULL OR ?5 < min THEN ?5 ELSE min END, \
         max = CASE WHEN ?6 IS NULL THEN max WHEN max IS NULL OR ?6 > max THEN ?6 ELSE max END \
         WHERE id = ?1",
    )?;
    for s in series.iter_mut() {
        let Some(last) = s.rows.last() else { continue };
        let mut groups = s.rows.chunks_exact(ROWS_PER_INSERT);
        for group in &mut groups {
            for (i, r) in group.iter().enumerate() {
                bind_point(&mut many, i * 5, r)?;
            }
            many.raw_execute()?;
        }
        for r in groups.remainder() {
            bind_point(&mut one, 0, r)?;
            one.raw_execute()?;
        }
        // Rowids of one batch are consecutive: each insert took max(rowid) + 1 while we hold the lock.
        let hi = tx.last_insert_rowid();
        range.execute([s.id, hi - s.rows.len() as i64 + 1, hi])?;
        // f64::min/max ignore a NaN operand, so NaN values never become the min or max.
        let (lo, hi) = s.rows.iter().fold((f64::NAN, f64::NAN), |(lo, hi), r| {
            (lo.min(r.value), hi.max(r.value))
        });
        let non_nan = |v: f64| (!v.is_nan()).then_some(v);
        summary.execute(params![
            s.id,
            s.rows.len() as i64,
            non_nan(last.value),
            last.x,
            non_nan(lo),
            non_nan(hi)
        ])?;
        s.rows.clear();
    }
    Ok(())
}

/// Binds one point to parameters `at + 1 ..= at + 5`.
fn bind_point(
    stmt: &mut rusqlite::CachedStatement,
    at: usize,
    r: &PointRow,
) -> rusqlite::Result<()> {
    stmt.raw_bind_parameter(at + 1, r.line_no as i64)?;
    stmt.raw_bind_parameter(at + 2, r.x)?;
    stmt.raw_bind_parameter(at + 3, r.epoch)?;
    stmt.raw_bind_parameter(at + 4, r.time)?;
    // SQLite would store a bound NaN as NULL anyway; do it explicitly. Readers map NULL back to NaN.
    stmt.raw_bind_parameter(at + 5, (!r.value.is_nan()).then_some(r.value))
}
