//! Optuna's RDB storage in SQLite, read without disturbing the workers that write it: a read-only
//! connection that never changes the journal mode (Optuna's files are in rollback mode, where a reader's
//! lock blocks a writer's commit), one short read transaction per load, and a cheap change check
//! (`PRAGMA data_version` and the file's size and mtime) before any real read.

use super::model::{Direction, Interner, Study, Trial, TrialState};
use super::{TimeBasis, pyjson};
use indexmap::IndexMap;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Schema revisions sortie reads (section 1 of the Optuna reference): v2.6.0.a is the oldest, the one
/// optuna-dashboard's own reader still accepts; every Optuna from 3.2 to 5.0 writes v3.2.0.a.
const SUPPORTED: &[&str] = &[
    "v2.6.0.a", "v3.0.0.a", "v3.0.0.b", "v3.0.0.c", "v3.0.0.d", "v3.2.0.a",
];
const TOO_OLD: &[&str] = &["v0.9.0.a", "v1.2.0.a", "v1.3.0.a", "v2.4.0.a"];

/// How long a read waits for a writer's commit before giving up on this poll.
const BUSY_TIMEOUT: Duration = Duration::from_millis(2000);

/// What the file's schema has, so older revisions read with their fallbacks.
#[derive(Clone, Debug)]
struct Schema {
    /// `trial_values.value_type` (v3.0.0.d): without it values are finite or a REAL infinity.
    value_type: bool,
    /// `trial_intermediate_values.intermediate_value_type` (v3.0.0.c).
    intermediate_type: bool,
    /// `trial_heartbeats`, which no revision creates (only `create_all` does).
    heartbeats: bool,
}

pub struct RdbReader {
    path: PathBuf,
    conn: Connection,
    schema: Schema,
    basis: TimeBasis,
    /// The last load's `data_version` and file size/mtime: unchanged means nothing to read.
    seen: Option<(i64, u64, Option<std::time::SystemTime>)>,
    /// The studies as last read, kept so a poll reads only what changed.
    cache: Option<Cache>,
    /// The file's device and inode when last read.
    ident: Option<(u64, u64)>,
    /// Param spaces and attribute keys, shared by the trials (thousands of trials share a handful).
    interner: Interner,
    pub warnings: Vec<String>,
}

/// Whether a file starts like a SQLite database.
pub fn looks_like_sqlite(path: &Path) -> bool {
    let mut head = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok()
        && &head == b"SQLite format 3\0"
}

fn sql_err(path: &Path, e: rusqlite::Error) -> String {
    format!("{}: cannot read it as SQLite: {e}", path.display())
}

impl RdbReader {
    /// Opens an Optuna SQLite file read-only and checks its schema revision. `basis` overrides how naive
    /// trial timestamps are read (default: UTC when Optuna 5 or later made the file, else local time).
    pub fn open(path: &Path, basis: Option<TimeBasis>) -> Result<RdbReader, String> {
        if !looks_like_sqlite(path) {
            return Err(format!("{}: not a SQLite database", path.display()));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| sql_err(path, e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| sql_err(path, e))?;
        // A second guard beside the read-only open: this connection never writes.
        conn.execute_batch("PRAGMA query_only = 1")
            .map_err(|e| sql_err(path, e))?;
        let table = |name: &str| -> Result<bool, String> {
            conn.query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [name],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
            .map_err(|e| sql_err(path, e))
        };
        if !table("alembic_version")? || !table("studies")? {
            return Err(format!(
                "{}: a SQLite database, but not an Optuna storage (no alembic_version or studies table)",
                path.display()
            ));
        }
        let revision: String = conn
            .query_row("SELECT version_num FROM alembic_version", [], |r| r.get(0))
            .map_err(|e| sql_err(path, e))?;
        let mut warnings = Vec::new();
        if TOO_OLD.contains(&revision.as_str()) {
            return Err(format!(
                "{}: Optuna schema revision {revision} is older than v2.6.0.a, the oldest sortie reads; \
                 upgrade a copy with `optuna storage upgrade --storage sqlite:///{}`",
                path.display(),
                path.display()
            ));
        }
        if !SUPPORTED.contains(&revision.as_str()) {
            warnings.push(format!(
                "{}: unknown Optuna schema revision {revision} (newest known: v3.2.0.a); reading it as that",
                path.display()
            ));
        }
        let column = |t: &str, c: &str| -> Result<bool, String> {
            let mut st = conn
                .prepare(&format!("PRAGMA table_info({t})"))
                .map_err(|e| sql_err(path, e))?;
            let names = st
                .query_map([], |r| r.get::<_, String>(1))
                .map_err(|e| sql_err(path, e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| sql_err(path, e))?;
            Ok(names.iter().any(|n| n == c))
        };
        for t in [
            "trials",
            "trial_params",
            "trial_values",
            "study_directions",
            "trial_intermediate_values",
        ] {
            if !table(t)? {
                return Err(format!(
                    "{}: Optuna storage without a {t} table (revision {revision}): damaged or not Optuna's",
                    path.display()
                ));
            }
        }
        let schema = Schema {
            value_type: column("trial_values", "value_type")?,
            intermediate_type: column("trial_intermediate_values", "intermediate_value_type")?,
            heartbeats: table("trial_heartbeats")?,
        };
        let basis = match basis {
            Some(b) => b,
            None => {
                let version: Option<String> = if table("version_info")? {
                    conn.query_row("SELECT library_version FROM version_info", [], |r| r.get(0))
                        .optional()
                        .map_err(|e| sql_err(path, e))?
                        .flatten()
                } else {
                    None
                };
                TimeBasis::for_rdb_library(version.as_deref())
            }
        };
        Ok(RdbReader {
            path: path.to_path_buf(),
            conn,
            schema,
            basis,
            seen: None,
            cache: None,
            ident: None,
            interner: Interner::default(),
            warnings,
        })
    }

    fn stamp(&self) -> Result<(i64, u64, Option<std::time::SystemTime>), String> {
        let dv: i64 = self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(|e| sql_err(&self.path, e))?;
        let meta =
            std::fs::metadata(&self.path).map_err(|e| format!("{}: {e}", self.path.display()))?;
        Ok((dv, meta.len(), meta.modified().ok()))
    }

    /// A study file replaced by another (a copy put in place, an `optuna storage upgrade` of a copy)
    /// is a new inode that the open connection does not see: open the new file and read it whole.
    fn reopen_if_replaced(&mut self) -> Result<(), String> {
        use std::os::unix::fs::MetadataExt;
        let meta =
            std::fs::metadata(&self.path).map_err(|e| format!("{}: {e}", self.path.display()))?;
        let ident = (meta.dev(), meta.ino());
        if self.ident.is_some_and(|i| i != ident) {
            let fresh = RdbReader::open(&self.path, Some(self.basis))?;
            let mut warnings = std::mem::take(&mut self.warnings);
            *self = fresh;
            warnings.push(format!(
                "{}: the file was replaced; reading it again",
                self.path.display()
            ));
            self.warnings.extend(warnings);
        }
        self.ident = Some(ident);
        Ok(())
    }

    /// Brings the studies up to date in one short read transaction: the first time everything, then only
    /// what can have changed (trials newer than the newest seen, and the ones not finished then: Optuna
    /// updates rows in place, but never those of a finished trial). Returns whether anything was read.
    pub fn refresh(&mut self) -> Result<bool, String> {
        self.reopen_if_replaced()?;
        let stamp = self.stamp()?;
        if self.cache.is_some() && self.seen == Some(stamp) {
            return Ok(false);
        }
        self.conn
            .execute_batch("BEGIN")
            .map_err(|e| sql_err(&self.path, e))?;
        let read = self.read_changes();
        // End the read whatever happened, so the writers' next commit is not blocked by this reader.
        let _ = self.conn.execute_batch("COMMIT");
        read.map_err(|e| sql_err(&self.path, e))?;
        self.seen = Some(stamp);
        Ok(true)
    }

    /// The studies as the last refresh left them.
    pub fn studies(&self) -> &[Study] {
        self.cache.as_ref().map_or(&[], |c| c.studies.as_slice())
    }

    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    fn read_changes(&mut self) -> rusqlite::Result<()> {
        let mut studies = self.read_studies()?;
        // Trials go only with their study (Optuna deletes no single trial), so the study ids and the
        // newest trial id (the rowid: no scan) are all a poll needs to know what to read.
        let max_id: i64 =
            self.conn
                .query_row("SELECT coalesce(max(trial_id), -1) FROM trials", [], |r| {
                    r.get(0)
                })?;
        let same_studies = self.cache.as_ref().is_some_and(|c| {
            c.studies.len() == studies.len()
                && c.studies.iter().zip(&studies).all(|(a, b)| a.id == b.id)
        });
        let Some(cache) = self.cache.as_mut().filter(|_| same_studies) else {
            // First read, or a study came or went: read everything.
            let trials = self.read_trials("1")?;
            self.cache = Some(Cache::build(studies, trials, max_id));
            return Ok(());
        };
        for (old, new) in cache.studies.iter_mut().zip(&mut studies) {
            old.name = std::mem::take(&mut new.name);
            old.directions = std::mem::take(&mut new.directions);
            old.user_attrs = std::mem::take(&mut new.user_attrs);
            old.system_attrs = std::mem::take(&mut new.system_attrs);
        }
        let mut filter = format!("trial_id > {}", cache.max_id);
        if !cache.unfinished.is_empty() {
            let mut ids: Vec<i64> = cache.unfinished.keys().copied().collect();
            ids.sort_unstable();
            let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
            filter.push_str(&format!(" OR trial_id IN ({})", ids.join(",")));
        }
        let trials = self.read_trials(&filter)?;
        let Some(cache) = self.cache.as_mut() else {
            return Ok(());
        };
        cache.upsert(trials, max_id);
        Ok(())
    }

    /// Studies with their directions and attributes, no trials.
    fn read_studies(&self) -> rusqlite::Result<Vec<Study>> {
        let c = &self.conn;
        let mut studies: Vec<Study> = Vec::new();
        let mut study_at: HashMap<i64, usize> = HashMap::new();
        let mut st =
            c.prepare_cached("SELECT study_id, study_name FROM studies ORDER BY study_id")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            study_at.insert(id, studies.len());
            studies.push(Study {
                id,
                name: r.get(1)?,
                directions: Vec::new(),
                user_attrs: IndexMap::new(),
                system_attrs: IndexMap::new(),
                trials: Vec::new(),
            });
        }
        let mut st = c.prepare_cached(
            "SELECT study_id, direction FROM study_directions ORDER BY study_id, objective",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            if let Some(&i) = study_at.get(&r.get::<_, i64>(0)?) {
                let d: String = r.get(1)?;
                studies[i]
                    .directions
                    .push(Direction::from_name(&d).unwrap_or(Direction::NotSet));
            }
        }
        for (table, key, system) in [
            ("study_user_attributes", "study_user_attribute_id", false),
            ("study_system_attributes", "study_system_attribute_id", true),
        ] {
            let mut st = c.prepare_cached(&format!(
                "SELECT study_id, key, value_json FROM {table} ORDER BY {key}"
            ))?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                if let Some(&i) = study_at.get(&r.get::<_, i64>(0)?) {
                    let (k, v) = attr(r.get(1)?, r.get(2)?);
                    let s = &mut studies[i];
                    if system {
                        &mut s.system_attrs
                    } else {
                        &mut s.user_attrs
                    }
                    .insert(k, v);
                }
            }
        }
        Ok(studies)
    }

    /// The trials that `filter` (an SQL condition on `trial_id`) selects, with every row of theirs, as
    /// (study id, trial): one bulk query per table. Rows come grouped by trial, so each trial's params,
    /// values and series are allocated once, at their size.
    fn read_trials(&mut self, filter: &str) -> rusqlite::Result<Vec<(i64, Arc<Trial>)>> {
        let RdbReader {
            conn: c,
            schema,
            basis,
            interner,
            ..
        } = self;
        let mut batch = Batch::default();
        let mut st = c.prepare(&format!(
            "SELECT trial_id, number, study_id, state, datetime_start, datetime_complete \
             FROM trials WHERE {filter} ORDER BY trial_id"
        ))?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let mut t = Trial::new(
                id,
                r.get::<_, Option<i64>>(1)?.unwrap_or(-1),
                TrialState::from_name(r.get_ref(3)?.as_str()?).unwrap_or(TrialState::Fail),
            );
            t.start = basis.naive_opt(r.get(4)?);
            t.end = basis.naive_opt(r.get(5)?);
            batch.ids.push(id);
            batch.trials.push((r.get(2)?, Arc::new(t)));
        }
        if batch.trials.is_empty() {
            return Ok(batch.trials);
        }
        // A NULL value has no user's value: the param shows as null, as a broken distribution does.
        grouped(
            c,
            &format!(
                "SELECT trial_id, param_name, param_value, distribution_json FROM trial_params \
                 WHERE {filter} ORDER BY param_id"
            ),
            |r| {
                let name = r.get_ref(1)?.as_str()?;
                let internal: Option<f64> = r.get(2)?;
                let json = r.get_ref(3)?.as_str()?;
                let space = interner.space(name, internal.map(|_| json));
                Ok((r.get(0)?, (space, internal.unwrap_or(f64::NAN))))
            },
            |id, run| {
                if let Some(t) = batch.get(id) {
                    t.params.extend(run.drain(..));
                }
            },
        )?;
        let kind = if schema.value_type {
            "value_type"
        } else {
            "NULL"
        };
        grouped(
            c,
            &format!(
                "SELECT trial_id, value, {kind} FROM trial_values WHERE {filter} \
                 ORDER BY trial_id, objective"
            ),
            |r| {
                Ok((
                    r.get(0)?,
                    typed_value(r.get(1)?, r.get_ref(2)?.as_str_or_null()?),
                ))
            },
            |id, run| {
                if let Some(t) = batch.get(id) {
                    t.values = t.values.iter().copied().chain(run.drain(..)).collect();
                }
            },
        )?;
        let kind = if schema.intermediate_type {
            "intermediate_value_type"
        } else {
            "NULL"
        };
        grouped(
            c,
            &format!(
                "SELECT trial_id, step, intermediate_value, {kind} FROM trial_intermediate_values \
                 WHERE {filter} ORDER BY trial_id, step"
            ),
            |r| {
                let v = typed_value(r.get(2)?, r.get_ref(3)?.as_str_or_null()?);
                Ok((r.get(0)?, (r.get(1)?, v)))
            },
            |id, run| {
                if let Some(t) = batch.get(id) {
                    if t.intermediate.is_empty() {
                        t.intermediate = run.drain(..).collect();
                    } else {
                        run.drain(..).for_each(|(s, v)| t.intermediate.insert(s, v));
                    }
                }
            },
        )?;
        for (table, key, system) in [
            ("trial_user_attributes", "trial_user_attribute_id", false),
            ("trial_system_attributes", "trial_system_attribute_id", true),
        ] {
            grouped(
                c,
                &format!(
                    "SELECT trial_id, key, value_json FROM {table} WHERE {filter} ORDER BY {key}"
                ),
                |r| {
                    let k = interner.key(r.get_ref(1)?.as_str()?);
                    Ok((r.get(0)?, (k, attr_value(r.get_ref(2)?.as_str()?))))
                },
                |id, run| {
                    if let Some(t) = batch.get(id) {
                        if system {
                            &mut t.system_attrs
                        } else {
                            &mut t.user_attrs
                        }
                        .extend(run.drain(..));
                    }
                },
            )?;
        }
        if schema.heartbeats {
            let mut st = c.prepare(&format!(
                "SELECT trial_id, heartbeat FROM trial_heartbeats WHERE {filter}"
            ))?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                if let Some(t) = batch.get(r.get(0)?) {
                    // CURRENT_TIMESTAMP: always UTC, whatever wrote the trials.
                    t.heartbeat = TimeBasis::Utc.naive(r.get_ref(1)?.as_str()?);
                }
            }
        }
        for (_, t) in &mut batch.trials {
            Arc::make_mut(t).shrink_to_fit();
        }
        Ok(batch.trials)
    }
}

/// The trials one read makes, found by id (they are sorted by it) for the rows of the other tables.
#[derive(Default)]
struct Batch {
    ids: Vec<i64>,
    trials: Vec<(i64, Arc<Trial>)>,
    /// Where the next lookup most likely lands: rows ordered by trial ask for one trial after another.
    next: usize,
}

impl Batch {
    fn get(&mut self, id: i64) -> Option<&mut Trial> {
        let i = match self.ids.get(self.next) {
            Some(&at) if at == id => self.next,
            _ => self.ids.binary_search(&id).ok()?,
        };
        self.next = i + 1;
        // Nobody else holds a trial being read: this never copies.
        Some(Arc::make_mut(&mut self.trials[i].1))
    }
}

/// Runs `sql`, turns each row into (trial id, item), and hands each run of consecutive rows of one
/// trial to `apply` at once (which takes the items out of the run).
fn grouped<X>(
    c: &Connection,
    sql: &str,
    mut item: impl FnMut(&rusqlite::Row) -> rusqlite::Result<(i64, X)>,
    mut apply: impl FnMut(i64, &mut Vec<X>),
) -> rusqlite::Result<()> {
    let mut st = c.prepare(sql)?;
    let mut rows = st.query([])?;
    let mut run: Vec<X> = Vec::new();
    let mut of: Option<i64> = None;
    while let Some(r) = rows.next()? {
        let (id, x) = item(r)?;
        if let Some(prev) = of.filter(|&p| p != id) {
            apply(prev, &mut run);
            run.clear();
        }
        of = Some(id);
        run.push(x);
    }
    if let Some(prev) = of {
        apply(prev, &mut run);
    }
    Ok(())
}

/// The studies as last read, and where the trials that may still change sit.
struct Cache {
    studies: Vec<Study>,
    /// Trials that were not finished when last read (their rows may still change): trial id → (study
    /// index, trial index). A finished trial is never read again, so it needs no entry.
    unfinished: HashMap<i64, (usize, usize)>,
    /// The newest trial id seen.
    max_id: i64,
}

impl Cache {
    fn build(studies: Vec<Study>, trials: Vec<(i64, Arc<Trial>)>, max_id: i64) -> Cache {
        let mut c = Cache {
            studies,
            unfinished: HashMap::new(),
            max_id: -1,
        };
        c.upsert(trials, max_id);
        c
    }

    fn upsert(&mut self, trials: Vec<(i64, Arc<Trial>)>, max_id: i64) {
        let index: HashMap<i64, usize> = self
            .studies
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id, i))
            .collect();
        let mut unsorted = std::collections::BTreeSet::new();
        for (sid, t) in trials {
            let (id, finished) = (t.id, t.state.is_finished());
            // Read before: it takes its old self's place (a snapshot holding that one keeps it).
            let at = match self.unfinished.remove(&id) {
                Some((si, ti)) => {
                    self.studies[si].trials[ti] = t;
                    (si, ti)
                }
                None => {
                    let Some(&si) = index.get(&sid) else { continue };
                    let trials = &mut self.studies[si].trials;
                    if trials.last().is_some_and(|l| l.number > t.number) {
                        unsorted.insert(si);
                    }
                    trials.push(t);
                    (si, trials.len() - 1)
                }
            };
            if !finished {
                self.unfinished.insert(id, at);
            }
        }
        for si in unsorted {
            let s = &mut self.studies[si];
            s.trials.sort_by_key(|t| (t.number, t.id));
            for (ti, t) in s.trials.iter().enumerate() {
                if let Some(at) = self.unfinished.get_mut(&t.id) {
                    *at = (si, ti);
                }
            }
        }
        self.max_id = self.max_id.max(max_id);
    }
}

/// A stored value and its type column (absent before v3.0.0.c/d: then a REAL, possibly ±inf, and NULL
/// for a NaN that revision could not type).
fn typed_value(value: Option<f64>, kind: Option<&str>) -> f64 {
    match kind {
        Some("INF_POS") => f64::INFINITY,
        Some("INF_NEG") => f64::NEG_INFINITY,
        Some("NAN") => f64::NAN,
        _ => value.unwrap_or(f64::NAN),
    }
}

/// An attribute row: Python JSON, kept as its raw text when even that does not parse.
fn attr(key: String, json: String) -> (String, serde_json::Value) {
    (key, attr_value(&json))
}

fn attr_value(json: &str) -> serde_json::Value {
    pyjson::parse(json).unwrap_or_else(|_| serde_json::Value::String(json.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copy of the real Optuna 5 fixture cut back to its first trials, with one finished trial set
    /// back to RUNNING, plus the original attached so its rows can be put back as a writer would.
    fn cut_copy(dir: &Path, keep_below: i64, reopened: i64) -> PathBuf {
        let orig = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/optuna/v5.db");
        let path = dir.join("study.db");
        std::fs::copy(&orig, &path).unwrap();
        let c = Connection::open(&path).unwrap();
        for t in TRIAL_TABLES {
            c.execute(
                &format!("DELETE FROM {t} WHERE trial_id >= ?1"),
                [keep_below],
            )
            .unwrap();
        }
        c.execute("DELETE FROM trials WHERE trial_id >= ?1", [keep_below])
            .unwrap();
        c.execute(
            "UPDATE trials SET state = 'RUNNING', datetime_complete = NULL WHERE trial_id = ?1",
            [reopened],
        )
        .unwrap();
        c.execute("DELETE FROM trial_values WHERE trial_id = ?1", [reopened])
            .unwrap();
        path
    }

    /// Studies as comparable JSON (NaN is not equal to itself as a float, but is as "NaN").
    fn json(studies: &[Study]) -> Vec<serde_json::Value> {
        studies
            .iter()
            .map(|s| crate::trials::report::study_json("", s, &s.trials))
            .collect()
    }

    const TRIAL_TABLES: [&str; 6] = [
        "trial_params",
        "trial_values",
        "trial_intermediate_values",
        "trial_user_attributes",
        "trial_system_attributes",
        "trial_heartbeats",
    ];

    /// Puts the original's rows back: the reopened trial's end, then every later trial.
    fn write_back(path: &Path, keep_below: i64, reopened: i64) {
        let orig = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/optuna/v5.db");
        let c = Connection::open(path).unwrap();
        c.execute("ATTACH ?1 AS orig", [orig.to_str().unwrap()])
            .unwrap();
        c.execute(
            "UPDATE trials SET (state, datetime_complete) = \
             (SELECT state, datetime_complete FROM orig.trials o WHERE o.trial_id = ?1) \
             WHERE trial_id = ?1",
            [reopened],
        )
        .unwrap();
        c.execute(
            "INSERT INTO trial_values SELECT * FROM orig.trial_values WHERE trial_id = ?1",
            [reopened],
        )
        .unwrap();
        c.execute(
            "INSERT INTO trials SELECT * FROM orig.trials WHERE trial_id >= ?1",
            [keep_below],
        )
        .unwrap();
        for t in TRIAL_TABLES {
            c.execute(
                &format!("INSERT INTO {t} SELECT * FROM orig.{t} WHERE trial_id >= ?1"),
                [keep_below],
            )
            .unwrap();
        }
    }

    #[test]
    fn a_poll_reads_new_trials_and_the_ends_of_running_ones_and_equals_a_full_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = cut_copy(dir.path(), 20, 12);
        let mut r = RdbReader::open(&path, None).unwrap();
        assert!(r.refresh().unwrap());
        let tune = |r: &RdbReader| r.studies()[0].trials.clone();
        // SQLite's ids start at 1: ids 1..19 are numbers 0..18, and id 12 is number 11.
        assert_eq!(tune(&r).len(), 19);
        assert_eq!(tune(&r)[11].state, TrialState::Running);
        assert!(!r.refresh().unwrap(), "nothing changed, nothing read");
        write_back(&path, 20, 12);
        assert!(r.refresh().unwrap());
        let orig = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/optuna/v5.db");
        let mut full = RdbReader::open(&orig, None).unwrap();
        full.refresh().unwrap();
        assert!(
            json(r.studies()) == json(full.studies()),
            "a poll differs from a full read"
        );
        assert_ne!(tune(&r)[11].state, TrialState::Running);
    }

    #[test]
    fn a_replaced_file_is_read_again_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = cut_copy(dir.path(), 5, 1);
        let mut r = RdbReader::open(&path, None).unwrap();
        r.refresh().unwrap();
        let orig = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/optuna/v5.db");
        let tmp = dir.path().join("new.db");
        std::fs::copy(&orig, &tmp).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert!(r.refresh().unwrap());
        let mut full = RdbReader::open(&orig, None).unwrap();
        full.refresh().unwrap();
        assert!(
            json(r.studies()) == json(full.studies()),
            "differs from a full read"
        );
        assert!(r.take_warnings().iter().any(|w| w.contains("replaced")));
    }
}
