//! Optuna's RDB storage in SQLite, read without disturbing the workers that write it: a read-only
//! connection that never changes the journal mode (Optuna's files are in rollback mode, where a reader's
//! lock blocks a writer's commit), one short read transaction per load, and a cheap change check
//! (`PRAGMA data_version` and the file's size and mtime) before any real read.

use super::model::{Direction, Distribution, Study, Trial, TrialState};
use super::{Loaded, TimeBasis, distribution, pyjson};
use indexmap::IndexMap;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
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
            warnings,
        })
    }

    pub fn basis(&self) -> TimeBasis {
        self.basis
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

    /// Whether the file changed since the last load (another connection committed, or the file's size or
    /// mtime moved: NFS clients' writes may show only there).
    pub fn changed(&mut self) -> Result<bool, String> {
        Ok(self.seen != Some(self.stamp()?))
    }

    /// Reads every study in one short read transaction.
    pub fn load(&mut self) -> Result<Loaded, String> {
        let stamp = self.stamp()?;
        self.conn
            .execute_batch("BEGIN")
            .map_err(|e| sql_err(&self.path, e))?;
        let read = self.read_all();
        // End the read whatever happened, so the writers' next commit is not blocked by this reader.
        let _ = self.conn.execute_batch("COMMIT");
        let studies = read.map_err(|e| sql_err(&self.path, e))?;
        self.seen = Some(stamp);
        Ok(Loaded {
            studies,
            warnings: std::mem::take(&mut self.warnings),
        })
    }

    fn read_all(&self) -> rusqlite::Result<Vec<Study>> {
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

        // Trials, then their rows, grouped in memory by trial id (one bulk query per table).
        let mut trials: Vec<(usize, Trial)> = Vec::new();
        let mut trial_at: HashMap<i64, usize> = HashMap::new();
        let mut st = c.prepare_cached(
            "SELECT trial_id, number, study_id, state, datetime_start, datetime_complete \
             FROM trials ORDER BY trial_id",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let Some(&si) = study_at.get(&r.get::<_, i64>(2)?) else {
                continue;
            };
            let id: i64 = r.get(0)?;
            let state: String = r.get(3)?;
            let mut t = Trial::new(
                id,
                r.get::<_, Option<i64>>(1)?.unwrap_or(-1),
                TrialState::from_name(&state).unwrap_or(TrialState::Fail),
            );
            t.start = self.time(r.get(4)?);
            t.end = self.time(r.get(5)?);
            trial_at.insert(id, trials.len());
            trials.push((si, t));
        }
        let mut dists: HashMap<String, Option<Distribution>> = HashMap::new();
        let mut st = c.prepare_cached(
            "SELECT trial_id, param_name, param_value, distribution_json FROM trial_params \
             ORDER BY param_id",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let Some(&ti) = trial_at.get(&r.get::<_, i64>(0)?) else {
                continue;
            };
            let name: String = r.get(1)?;
            let internal: Option<f64> = r.get(2)?;
            let json: String = r.get(3)?;
            let d = dists
                .entry(json)
                .or_insert_with_key(|j| distribution::decode(j).ok())
                .clone();
            let t = &mut trials[ti].1;
            match (d, internal) {
                (Some(d), Some(v)) => {
                    if let Some(ext) = d.external(v) {
                        t.params.insert(name.clone(), ext);
                    }
                    t.distributions.insert(name, d);
                }
                _ => {
                    t.params.insert(name, serde_json::Value::Null);
                }
            }
        }
        let typed = self.schema.value_type;
        let sql = if typed {
            "SELECT trial_id, value, value_type FROM trial_values ORDER BY trial_id, objective"
        } else {
            "SELECT trial_id, value, NULL FROM trial_values ORDER BY trial_id, objective"
        };
        let mut st = c.prepare_cached(sql)?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            if let Some(&ti) = trial_at.get(&r.get::<_, i64>(0)?) {
                let v = typed_value(r.get(1)?, r.get::<_, Option<String>>(2)?.as_deref());
                trials[ti].1.values.push(v);
            }
        }
        let sql = if self.schema.intermediate_type {
            "SELECT trial_id, step, intermediate_value, intermediate_value_type \
             FROM trial_intermediate_values ORDER BY trial_id, step"
        } else {
            "SELECT trial_id, step, intermediate_value, NULL \
             FROM trial_intermediate_values ORDER BY trial_id, step"
        };
        let mut st = c.prepare_cached(sql)?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            if let Some(&ti) = trial_at.get(&r.get::<_, i64>(0)?) {
                let v = typed_value(r.get(2)?, r.get::<_, Option<String>>(3)?.as_deref());
                trials[ti].1.intermediate.insert(r.get(1)?, v);
            }
        }
        for (table, key, system) in [
            ("trial_user_attributes", "trial_user_attribute_id", false),
            ("trial_system_attributes", "trial_system_attribute_id", true),
        ] {
            let mut st = c.prepare_cached(&format!(
                "SELECT trial_id, key, value_json FROM {table} ORDER BY {key}"
            ))?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                if let Some(&ti) = trial_at.get(&r.get::<_, i64>(0)?) {
                    let (k, v) = attr(r.get(1)?, r.get(2)?);
                    let t = &mut trials[ti].1;
                    if system {
                        &mut t.system_attrs
                    } else {
                        &mut t.user_attrs
                    }
                    .insert(k, v);
                }
            }
        }
        if self.schema.heartbeats {
            let mut st = c.prepare_cached("SELECT trial_id, heartbeat FROM trial_heartbeats")?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                if let Some(&ti) = trial_at.get(&r.get::<_, i64>(0)?) {
                    // CURRENT_TIMESTAMP: always UTC, whatever wrote the trials.
                    trials[ti].1.heartbeat = TimeBasis::Utc.naive(&r.get::<_, String>(1)?);
                }
            }
        }
        // A PRUNED or COMPLETE trial that lost its value row keeps an empty list, as Optuna shows it.
        for (si, t) in trials {
            studies[si].trials.push(t);
        }
        for s in &mut studies {
            s.trials.sort_by_key(|t| (t.number, t.id));
        }
        Ok(studies)
    }

    fn time(&self, text: Option<String>) -> Option<f64> {
        self.basis.naive(&text?)
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
    let v = pyjson::parse(&json).unwrap_or(serde_json::Value::String(json));
    (key, v)
}
