//! Reading runs, steps, attempts and metrics back out of the index.

use super::error::{IndexError, Result};
use super::rows::{
    ATTEMPT_COLUMNS, AttemptRow, JobLink, MetricSummary, Point, RUN_COLUMNS, RunRow, STEP_COLUMNS,
    StepRow, nan_if_null,
};
use super::{Index, retry_busy};
use rusqlite::{OptionalExtension, Params, Row};

/// Points of a series stored after a given point: see [`Index::metric_points_since`].
#[derive(Clone, Debug, PartialEq)]
pub struct PointsTail {
    /// The attempt read (the latest, unless one was asked for).
    pub attempt: u32,
    /// The series' row id: a series forgotten and read again gets a new one.
    pub series: i64,
    pub points: Vec<Point>,
    /// The id of the last point read, or the `after` given when there was none: pass it next time.
    pub last_id: Option<i64>,
}

/// How many candidates an ambiguous prefix lists.
const MAX_CANDIDATES: usize = 10;

impl Index {
    /// Every run, newest first.
    pub fn runs(&self) -> Result<Vec<RunRow>> {
        self.rows(
            "listing runs",
            &format!("SELECT {RUN_COLUMNS} FROM runs r ORDER BY r.created DESC, r.id DESC"),
            [],
            RunRow::from_row,
        )
    }

    pub fn run(&self, id: &str) -> Result<Option<RunRow>> {
        self.row(
            "reading a run",
            &format!("SELECT {RUN_COLUMNS} FROM runs r WHERE r.id = ?1"),
            [id],
            RunRow::from_row,
        )
    }

    /// `None` or `"latest"`: the newest run. Otherwise the run whose id is `spec`, or the only one whose
    /// id starts with it.
    pub fn resolve_run(&self, spec: Option<&str>) -> Result<RunRow> {
        let spec = spec
            .map(str::trim)
            .filter(|s| !s.is_empty() && *s != "latest");
        let Some(spec) = spec else {
            return self
                .row(
                    "finding the latest run",
                    &format!(
                        "SELECT {RUN_COLUMNS} FROM runs r ORDER BY r.created DESC, r.id DESC LIMIT 1"
                    ),
                    [],
                    RunRow::from_row,
                )?
                .ok_or(IndexError::NoRuns);
        };
        if let Some(run) = self.run(spec)? {
            return Ok(run);
        }
        // substr() rather than LIKE: ids may contain `_` and `%`.
        let mut found = self.rows(
            "resolving a run id",
            &format!(
                "SELECT {RUN_COLUMNS} FROM runs r WHERE substr(r.id, 1, length(?1)) = ?1 \
                 ORDER BY r.created DESC, r.id DESC LIMIT {}",
                MAX_CANDIDATES + 1
            ),
            [spec],
            RunRow::from_row,
        )?;
        match found.len() {
            0 if self.is_empty()? => Err(IndexError::NoRuns),
            0 => Err(IndexError::NoMatch {
                spec: spec.to_string(),
            }),
            1 => Ok(found.remove(0)),
            n => {
                let mut candidates: Vec<String> = found
                    .into_iter()
                    .take(MAX_CANDIDATES)
                    .map(|r| r.id)
                    .collect();
                if n > MAX_CANDIDATES {
                    candidates.push("…".to_string());
                }
                Err(IndexError::Ambiguous {
                    spec: spec.to_string(),
                    candidates,
                })
            }
        }
    }

    fn is_empty(&self) -> Result<bool> {
        let n = self.row("counting runs", "SELECT count(*) FROM runs", [], |r| {
            r.get::<_, i64>(0)
        })?;
        Ok(n.unwrap_or(0) == 0)
    }

    /// The run's step instances, in the order its `run_created` event listed them.
    pub fn steps(&self, run: &str) -> Result<Vec<StepRow>> {
        self.rows(
            "listing steps",
            &format!("SELECT {STEP_COLUMNS} FROM steps WHERE run = ?1 ORDER BY ord"),
            [run],
            StepRow::from_row,
        )
    }

    /// Every Slurm job the index's runs submitted, sorted by job id (for a binary search), each with
    /// the run and step instance it ran.
    pub fn job_links(&self) -> Result<Vec<JobLink>> {
        self.rows(
            "listing Slurm jobs of runs",
            "SELECT job_id, run, step FROM attempts WHERE job_id IS NOT NULL ORDER BY job_id",
            [],
            |r| {
                Ok(JobLink {
                    job: r.get(0)?,
                    run: r.get(1)?,
                    step: r.get(2)?,
                })
            },
        )
    }

    /// Attempts of a run (of one step if given), by step order then attempt number.
    pub fn attempts(&self, run: &str, step: Option<&str>) -> Result<Vec<AttemptRow>> {
        self.rows(
            "listing attempts",
            &format!(
                "SELECT {ATTEMPT_COLUMNS} FROM attempts a \
                 LEFT JOIN steps s ON s.run = a.run AND s.name = a.step \
                 WHERE a.run = ?1 AND (?2 IS NULL OR a.step = ?2) \
                 ORDER BY s.ord, a.step, a.attempt"
            ),
            rusqlite::params![run, step],
            AttemptRow::from_row,
        )
    }

    /// The most recent succeeded attempt, in any run, whose cache key is `key`.
    pub fn cache_hit(&self, key: &str) -> Result<Option<AttemptRow>> {
        self.row(
            "looking up the cache",
            &format!(
                "SELECT {ATTEMPT_COLUMNS} FROM attempts a \
                 WHERE a.cache_key = ?1 AND a.state = 'succeeded' \
                 ORDER BY a.ended DESC LIMIT 1"
            ),
            [key],
            AttemptRow::from_row,
        )
    }

    /// Every succeeded attempt that has a cache key, oldest first (so later ones win when collected into a
    /// map): what an engine loads once instead of asking per step.
    pub fn successes(&self) -> Result<Vec<AttemptRow>> {
        self.rows(
            "listing successes",
            &format!(
                "SELECT {ATTEMPT_COLUMNS} FROM attempts a \
                 WHERE a.state = 'succeeded' AND a.cache_key IS NOT NULL \
                 ORDER BY a.ended"
            ),
            [],
            AttemptRow::from_row,
        )
    }

    /// The most recent succeeded attempt, in any run, of a step instance named `step`.
    pub fn last_success(&self, step: &str) -> Result<Option<AttemptRow>> {
        self.row(
            "finding the last success",
            &format!(
                "SELECT {ATTEMPT_COLUMNS} FROM attempts a \
                 WHERE a.step = ?1 AND a.state = 'succeeded' \
                 ORDER BY a.ended DESC LIMIT 1"
            ),
            [step],
            AttemptRow::from_row,
        )
    }

    /// Per (step, attempt, metric key): count, last value, min, max and last x, in step order.
    pub fn metric_summaries(&self, run: &str, step: Option<&str>) -> Result<Vec<MetricSummary>> {
        self.rows(
            "summarising metrics",
            "SELECT se.step, se.attempt, k.key, se.count, se.last, se.min, se.max, se.last_x \
             FROM series se \
             JOIN metric_keys k ON k.id = se.key_id \
             LEFT JOIN steps st ON st.run = se.run AND st.name = se.step \
             WHERE se.run = ?1 AND (?2 IS NULL OR se.step = ?2) AND se.count > 0 \
             ORDER BY st.ord, se.step, se.attempt, k.key",
            rusqlite::params![run, step],
            |r| {
                Ok(MetricSummary {
                    step: r.get(0)?,
                    attempt: r.get(1)?,
                    key: r.get(2)?,
                    count: r.get::<_, i64>(3)? as u64,
                    last: nan_if_null(r.get(4)?),
                    min: nan_if_null(r.get(5)?),
                    max: nan_if_null(r.get(6)?),
                    last_x: r.get(7)?,
                })
            },
        )
    }

    /// The points of metric `key` of one step instance (its latest attempt unless `attempt` is given),
    /// in the order they were written.
    pub fn metric_points(
        &self,
        run: &str,
        step: &str,
        attempt: Option<u32>,
        key: &str,
    ) -> Result<Vec<Point>> {
        Ok(self
            .metric_points_since(run, step, attempt, key, None)?
            .map(|t| t.points)
            .unwrap_or_default())
    }

    /// Like [`Index::metric_points`], but only the points stored after the point `after` (a
    /// [`PointsTail::last_id`] from an earlier call; `None` for all), so that a growing series is read
    /// a little at a time. `None` when the step has no attempt or the attempt no such series.
    pub fn metric_points_since(
        &self,
        run: &str,
        step: &str,
        attempt: Option<u32>,
        key: &str,
        after: Option<i64>,
    ) -> Result<Option<PointsTail>> {
        let attempt = match attempt {
            Some(a) => a,
            None => {
                let latest = self.row(
                    "finding the latest attempt",
                    "SELECT max(attempt) FROM attempts WHERE run = ?1 AND step = ?2",
                    [run, step],
                    |r| r.get::<_, Option<u32>>(0),
                )?;
                match latest.flatten() {
                    Some(a) => a,
                    None => return Ok(None),
                }
            }
        };
        let series = self.row(
            "finding a metric series",
            "SELECT se.id FROM series se JOIN metric_keys k ON k.id = se.key_id \
             WHERE se.run = ?1 AND se.step = ?2 AND se.attempt = ?3 AND k.key = ?4",
            rusqlite::params![run, step, attempt, key],
            |r| r.get::<_, i64>(0),
        )?;
        let Some(series) = series else {
            return Ok(None);
        };
        let from = after.map_or(i64::MIN, |a| a.saturating_add(1));
        let rows = self.rows(
            "reading metric points",
            "SELECT p.id, p.x, p.epoch, p.time, p.value FROM point_ranges r \
             JOIN points p ON p.id BETWEEN max(r.lo, ?2) AND r.hi \
             WHERE r.series = ?1 AND r.hi >= ?2 ORDER BY r.lo, p.id",
            rusqlite::params![series, from],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    Point {
                        x: r.get(1)?,
                        epoch: r.get(2)?,
                        time: r.get(3)?,
                        value: nan_if_null(r.get(4)?),
                    },
                ))
            },
        )?;
        let last_id = rows.last().map(|(id, _)| *id).or(after);
        Ok(Some(PointsTail {
            attempt,
            series,
            points: rows.into_iter().map(|(_, p)| p).collect(),
            last_id,
        }))
    }

    /// Every metric key recorded for a run (of one step if given), sorted.
    pub fn metric_keys(&self, run: &str, step: Option<&str>) -> Result<Vec<String>> {
        self.rows(
            "listing metric keys",
            "SELECT DISTINCT k.key FROM series se JOIN metric_keys k ON k.id = se.key_id \
             WHERE se.run = ?1 AND (?2 IS NULL OR se.step = ?2) AND se.count > 0 ORDER BY k.key",
            rusqlite::params![run, step],
            |r| r.get(0),
        )
    }

    /// Runs a query that returns many rows, retrying if the database stays busy.
    fn rows<T, P: Params + Clone>(
        &self,
        what: &str,
        sql: &str,
        params: P,
        map: impl Fn(&Row) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        retry_busy(|| {
            let mut stmt = self.conn.prepare_cached(sql).map_err(self.sql_err(what))?;
            stmt.query_map(params.clone(), &map)
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<T>>>())
                .map_err(self.sql_err(what))
        })
    }

    /// Runs a query that returns at most one row.
    fn row<T, P: Params + Clone>(
        &self,
        what: &str,
        sql: &str,
        params: P,
        map: impl Fn(&Row) -> rusqlite::Result<T>,
    ) -> Result<Option<T>> {
        retry_busy(|| {
            let mut stmt = self.conn.prepare_cached(sql).map_err(self.sql_err(what))?;
            stmt.query_row(params.clone(), &map)
                .optional()
                .map_err(self.sql_err(what))
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::index::test_support::*;

    #[test]
    fn job_links_name_each_jobs_run_and_step_sorted_by_job() {
        let fx = Fixture::new();
        let a = fx.new_run("ra", 1.0, &["prep", "train"]);
        start_attempt(&a, 2.0, "prep", 2);
        start_attempt(&a, 3.0, "train", 1);
        let b = fx.new_run("rb", 1.0, &["prep"]);
        start_attempt(&b, 2.0, "prep", 3);
        let mut ix = fx.index(Journal::Wal);
        ix.sync_run(&a).unwrap();
        ix.sync_run(&b).unwrap();
        let links: Vec<(String, String, String)> = ix
            .job_links()
            .unwrap()
            .into_iter()
            .map(|l| (l.job, l.run, l.step))
            .collect();
        let own = |j: &str, r: &str, s: &str| (j.to_string(), r.to_string(), s.to_string());
        assert_eq!(
            links,
            [
                own("job1", "ra", "train"),
                own("job2", "ra", "prep"),
                own("job3", "rb", "prep")
            ]
        );
    }

    /// What a live view does every few seconds (ingest a few lines, then read summaries, the new points
    /// and the steps) reuses compiled statements: none is compiled again for new bound values.
    #[test]
    fn polling_never_recompiles_a_statement() {
        let fx = Fixture::new();
        let run = fx.new_run("r1", 1.0, &["prep", "train"]);
        let prep = start_attempt(&run, 2.0, "prep", 1);
        let train = start_attempt(&run, 2.0, "train", 1);
        let line = |i: u32| format!("{{\"step\": {i}, \"loss\": 1.5, \"acc\": 0.{i}}}\n");
        for i in 0..50 {
            append(&prep.join("metrics.jsonl"), line(i).as_bytes());
            append(&train.join("metrics.jsonl"), line(i).as_bytes());
        }
        let mut ix = fx.index(Journal::Wal);
        ix.sync_run(&run).unwrap();
        for k in 0..6 {
            for i in 0..3 {
                append(
                    &train.join("metrics.jsonl"),
                    line(100 + k * 3 + i).as_bytes(),
                );
            }
            ix.sync_run(&run).unwrap();
            ix.metric_summaries("r1", None).unwrap();
            ix.metric_summaries("r1", Some("train")).unwrap();
            let all = ix
                .metric_points_since("r1", "train", None, "loss", None)
                .unwrap()
                .unwrap();
            let since = all.last_id.map(|id| id - 2);
            ix.metric_points_since("r1", "train", None, "loss", since)
                .unwrap();
            ix.metric_points_since("r1", "prep", Some(1), "acc", Some(1))
                .unwrap();
            ix.runs().unwrap();
            ix.steps("r1").unwrap();
        }
        // Every statement the connection holds (the prepared-statement cache), with its count.
        let mut recompiled = Vec::new();
        // SAFETY: the handle is this connection's, used on this thread while nothing else runs on it;
        // the statements walked are owned by its cache and outlive the loop.
        unsafe {
            use rusqlite::ffi;
            let db = ix.conn.handle();
            let mut st = ffi::sqlite3_next_stmt(db, std::ptr::null_mut());
            while !st.is_null() {
                let n = ffi::sqlite3_stmt_status(st, ffi::SQLITE_STMTSTATUS_REPREPARE, 0);
                if n > 0 {
                    let sql = std::ffi::CStr::from_ptr(ffi::sqlite3_sql(st));
                    recompiled.push(format!("{n}× {}", sql.to_string_lossy()));
                }
                st = ffi::sqlite3_next_stmt(db, st);
            }
        }
        assert!(recompiled.is_empty(), "recompiled: {recompiled:#?}");
    }
    use crate::index::{IndexError, Journal};
    use crate::runlog::{Event, StepState};

    #[test]
    fn resolve_run_exact_prefix_ambiguous_latest() {
        let fx = Fixture::new();
        let mut ix = fx.index(Journal::Wal);
        assert!(matches!(ix.resolve_run(None), Err(IndexError::NoRuns)));
        assert!(matches!(ix.resolve_run(Some("x")), Err(IndexError::NoRuns)));
        for (ts, id) in [
            (1.0, "20240101-abc"),
            (2.0, "20240101-abd"),
            (3.0, "20240102-x_y"),
            (4.0, "2024"),
        ] {
            fx.new_run(id, ts, &["a"]);
        }
        ix.sync_all(&fx.project).unwrap();
        let ids: Vec<_> = ix.runs().unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(
            ids,
            ["2024", "20240102-x_y", "20240101-abd", "20240101-abc"],
            "newest first"
        );

        assert_eq!(ix.resolve_run(None).unwrap().id, "2024");
        assert_eq!(ix.resolve_run(Some("latest")).unwrap().id, "2024");
        // An exact id wins even though it is also a prefix of others.
        assert_eq!(ix.resolve_run(Some("2024")).unwrap().id, "2024");
        assert_eq!(
            ix.resolve_run(Some("20240101-abc")).unwrap().id,
            "20240101-abc"
        );
        assert_eq!(ix.resolve_run(Some("20240102")).unwrap().id, "20240102-x_y");
        // `_` is not a wildcard.
        assert!(matches!(
            ix.resolve_run(Some("20240102-x%")),
            Err(IndexError::NoMatch { .. })
        ));
        match ix.resolve_run(Some("20240101-ab")) {
            Err(e @ IndexError::Ambiguous { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("20240101-abc") && msg.contains("20240101-abd"),
                    "{msg}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            ix.resolve_run(Some("nope")),
            Err(IndexError::NoMatch { .. })
        ));
        assert!(ix.run("nope").unwrap().is_none());
    }

    #[test]
    fn cache_hit_and_last_success_look_across_runs() {
        let fx = Fixture::new();
        let mut ix = fx.index(Journal::Wal);
        for (i, id) in ["r1", "r2"].into_iter().enumerate() {
            let run = fx.new_run(id, i as f64, &["train"]);
            append_event(
                &run,
                10.0 + i as f64,
                Event::Cache {
                    step: "train".into(),
                    key: "K".into(),
                    hit: false,
                    from: None,
                    reason: "miss".into(),
                },
            );
            start_attempt(&run, 20.0 + i as f64, "train", 1);
            end_attempt(&run, 30.0 + i as f64, "train", 1, StepState::Succeeded, 0);
        }
        // A later failure with the same key is not a hit.
        let r3 = fx.new_run("r3", 5.0, &["train"]);
        append_event(
            &r3,
            40.0,
            Event::Cache {
                step: "train".into(),
                key: "K".into(),
                hit: false,
                from: None,
                reason: "miss".into(),
            },
        );
        start_attempt(&r3, 41.0, "train", 1);
        end_attempt(&r3, 42.0, "train", 1, StepState::Failed, 1);
        ix.sync_all(&fx.project).unwrap();

        let hit = ix.cache_hit("K").unwrap().unwrap();
        assert_eq!((hit.run.as_str(), hit.ended), ("r2", Some(31.0)));
        assert!(ix.cache_hit("other").unwrap().is_none());
        assert_eq!(ix.last_success("train").unwrap().unwrap().run, "r2");
        assert!(ix.last_success("eval").unwrap().is_none());
        assert_eq!(ix.attempts("r3", None).unwrap()[0].state, StepState::Failed);
        assert!(ix.attempts("r3", Some("eval")).unwrap().is_empty());
        assert!(
            ix.metric_points("r3", "eval", None, "loss")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn metric_points_since_reads_only_the_new_points() {
        let fx = Fixture::new();
        let mut ix = fx.index(Journal::Wal);
        let run = fx.new_run("r1", 1.0, &["train"]);
        let metrics = start_attempt(&run, 2.0, "train", 1).join(crate::runlog::paths::METRICS_FILE);
        append(
            &metrics,
            b"{\"step\": 0, \"loss\": 3.0}\n{\"step\": 1, \"loss\": 2.0}\n",
        );
        ix.sync_all(&fx.project).unwrap();
        let all = ix
            .metric_points_since("r1", "train", None, "loss", None)
            .unwrap()
            .unwrap();
        assert_eq!(all.attempt, 1);
        assert_eq!(
            all.points
                .iter()
                .map(|p| (p.x, p.value))
                .collect::<Vec<_>>(),
            [(0.0, 3.0), (1.0, 2.0)]
        );
        assert!(all.last_id.is_some());
        // Nothing new: no points, the same place to go on from.
        let none = ix
            .metric_points_since("r1", "train", None, "loss", all.last_id)
            .unwrap()
            .unwrap();
        assert!(none.points.is_empty());
        assert_eq!((none.last_id, none.series), (all.last_id, all.series));
        // Two more lines (a second key in between): exactly those two points.
        append(
            &metrics,
            b"{\"step\": 2, \"loss\": 1.5, \"acc\": 0.5}\n{\"step\": 3, \"loss\": 1.0}\n",
        );
        ix.sync_run(&run).unwrap();
        let more = ix
            .metric_points_since("r1", "train", None, "loss", all.last_id)
            .unwrap()
            .unwrap();
        assert_eq!(
            more.points
                .iter()
                .map(|p| (p.x, p.value))
                .collect::<Vec<_>>(),
            [(2.0, 1.5), (3.0, 1.0)]
        );
        let mut joined = all.points.clone();
        joined.extend(more.points.iter().copied());
        assert_eq!(
            joined,
            ix.metric_points("r1", "train", None, "loss").unwrap()
        );
        assert!(more.last_id > all.last_id);
        assert!(
            ix.metric_points_since("r1", "train", None, "nope", None)
                .unwrap()
                .is_none()
        );
        assert!(
            ix.metric_points_since("r1", "eval", None, "loss", None)
                .unwrap()
                .is_none()
        );
    }
}
