//! Bringing the index up to date with the run directories.

use super::error::{IndexError, Result};
use super::ingest_metrics::MetricFile;
use super::{Index, apply, ingest_events, ingest_metrics, retry_busy};
use crate::runlog::paths::EVENTS_FILE;
use crate::runlog::paths::METRICS_FILE;
use crate::runlog::{Project, RunDir};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

/// What one sync read.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// Events applied.
    pub events: u64,
    /// Event lines that did not parse (or are of a kind this version does not know).
    pub bad_event_lines: u64,
    /// Metric points stored.
    pub points: u64,
    /// Metric lines that were not JSON objects.
    pub bad_metric_lines: u64,
    /// Runs that could not be synced (by `sync_all`), with why. The others were synced.
    pub errors: Vec<(String, IndexError)>,
    /// Runs removed from the index because their directory is gone (by `sync_all`).
    pub forgotten: Vec<String>,
    /// Run directories whose event log is missing, empty or not a file (by `sync_all`). They are not
    /// synced, and what the index still holds of them is stale: show them as damaged.
    pub damaged: Vec<DamagedRun>,
}

/// A run directory that cannot describe itself: its `events.jsonl` is gone, empty or not a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedRun {
    pub id: String,
    pub dir: PathBuf,
    /// What is wrong, e.g. "events.jsonl is missing".
    pub problem: String,
}

impl std::fmt::Display for DamagedRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "run {} is damaged: {}, so its state is unknown (delete {} to drop it)",
            self.id,
            self.problem,
            self.dir.display()
        )
    }
}

/// A run being created has its directory before its first event: one this young, that the index has
/// never seen, is not called damaged.
const CREATING_FOR: Duration = Duration::from_secs(10);

/// The project's damaged run directories. `known` tells whether the index has seen a run (then
/// there is no grace for a run being created).
pub fn damaged_runs(project: &Project, known: impl Fn(&str) -> bool) -> Vec<DamagedRun> {
    let Ok(rd) = std::fs::read_dir(project.runs_dir()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let (Ok(id), true) = (
            e.file_name().into_string(),
            e.file_type().is_ok_and(|t| t.is_dir()),
        ) else {
            continue;
        };
        let dir = e.path();
        let events = dir.join(EVENTS_FILE);
        let (problem, may_be_new) = match std::fs::metadata(&events) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                ("events.jsonl is missing".to_string(), true)
            }
            Err(e) => (format!("events.jsonl cannot be read: {e}"), false),
            Ok(m) if !m.is_file() => ("events.jsonl is not a file".to_string(), false),
            Ok(m) if m.len() == 0 => ("events.jsonl is empty".to_string(), true),
            Ok(_) => continue,
        };
        let young = || {
            std::fs::metadata(&dir)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().unwrap_or_default() < CREATING_FOR)
        };
        if may_be_new && !known(&id) && young() {
            continue;
        }
        out.push(DamagedRun { id, dir, problem });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

impl SyncReport {
    fn add(&mut self, other: SyncReport) {
        self.events += other.events;
        self.bad_event_lines += other.bad_event_lines;
        self.points += other.points;
        self.bad_metric_lines += other.bad_metric_lines;
        self.errors.extend(other.errors);
        self.forgotten.extend(other.forgotten);
        self.damaged.extend(other.damaged);
    }
}

impl Index {
    /// Tails the run's `events.jsonl` from the stored offset and applies it; then tails `metrics.jsonl`
    /// of every attempt the index knows for this run (running or not) from their stored offsets.
    pub fn sync_run(&mut self, run: &RunDir) -> Result<SyncReport> {
        let mut report = SyncReport::default();
        let got =
            retry_busy(|| ingest_events::ingest(&mut self.conn, &self.path, run, &mut self.folds))?;
        report.events = got.events;
        report.bad_event_lines = got.bad_lines;

        let id = run.id();
        let attempts: Vec<(String, u32, PathBuf)> = retry_busy(|| {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT step, attempt, dir FROM attempts WHERE run = ?1")
                .map_err(self.sql_err("listing attempts"))?;
            stmt.query_map([&id], |r| {
                Ok((r.get(0)?, r.get(1)?, PathBuf::from(r.get::<_, String>(2)?)))
            })
            .and_then(|rows| rows.collect())
            .map_err(self.sql_err("listing attempts"))
        })?;
        for (step, attempt, dir) in attempts {
            let path = dir.join(METRICS_FILE);
            let file = MetricFile {
                run: &id,
                step: &step,
                attempt,
                path: &path,
            };
            let got = retry_busy(|| {
                ingest_metrics::ingest(&mut self.conn, &self.path, &file, &mut self.bufs)
            })?;
            report.points += got.points;
            report.bad_metric_lines += got.bad_lines;
        }
        Ok(report)
    }

    /// [`Index::sync_run`] for every run directory of the project. A run that fails is reported in
    /// `errors` and does not stop the others. Runs whose directory is gone are removed from the index.
    pub fn sync_all(&mut self, project: &Project) -> Result<SyncReport> {
        let mut report = SyncReport::default();
        let known: HashSet<String> = self.runs()?.into_iter().map(|r| r.id).collect();
        // Their rows stay (what the index last knew), but nothing syncs them: readers show them as
        // damaged instead.
        report.damaged = damaged_runs(project, |id| known.contains(id));
        let damaged: HashSet<String> = report.damaged.iter().map(|d| d.id.clone()).collect();
        let ids: Vec<String> = project
            .run_ids()
            .into_iter()
            .filter(|id| !damaged.contains(id))
            .collect();
        for id in &ids {
            match self.sync_run(&project.run_dir(id)) {
                Ok(r) => report.add(r),
                Err(e) => report.errors.push((id.clone(), e)),
            }
        }
        let listed: HashSet<&String> = ids.iter().collect();
        for row in self.runs()? {
            if listed.contains(&row.id) || damaged.contains(&row.id) {
                continue;
            }
            // Only a definite "not found" removes a run: a flaky NFS listing must not empty the index.
            let gone = matches!(
                std::fs::metadata(RunDir::new(&row.dir).events()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound
            );
            if gone {
                self.forget_run(&row.id)?;
                report.forgotten.push(row.id);
            }
        }
        Ok(report)
    }

    /// Removes a run and everything derived from it (the next sync brings it back if its files exist).
    pub fn forget_run(&mut self, id: &str) -> Result<()> {
        retry_busy(|| {
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(|e| IndexError::sqlite(&self.path, "forgetting a run", e))?;
            apply::forget_run(&tx, id)
                .and_then(|_| tx.commit())
                .map_err(|e| IndexError::sqlite(&self.path, "forgetting a run", e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_being_created_is_not_damaged_yet() {
        let fx = Fixture::new();
        std::fs::create_dir_all(fx.project.runs_dir().join("new1")).unwrap();
        assert!(damaged_runs(&fx.project, |_| false).is_empty());
        // Once the index has seen it, a missing log is damage at once.
        let d = damaged_runs(&fx.project, |_| true);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].problem, "events.jsonl is missing");
        assert!(
            d[0].to_string()
                .starts_with("run new1 is damaged: events.jsonl is missing")
        );
    }
    use crate::index::Journal;
    use crate::index::test_support::*;
    use crate::runlog::{Event, StepState};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Everything a user can read from the index, as text (NaN shows as null).
    fn dump(ix: &Index) -> String {
        let mut out = serde_json::to_string(&ix.runs().unwrap()).unwrap();
        for r in ix.runs().unwrap() {
            out += &serde_json::to_string(&ix.steps(&r.id).unwrap()).unwrap();
            out += &serde_json::to_string(&ix.attempts(&r.id, None).unwrap()).unwrap();
            for m in ix.metric_summaries(&r.id, None).unwrap() {
                out += &serde_json::to_string(&m).unwrap();
                let pts = ix
                    .metric_points(&r.id, &m.step, Some(m.attempt), &m.key)
                    .unwrap();
                out += &serde_json::to_string(&pts).unwrap();
            }
        }
        out
    }

    #[test]
    fn incremental_ingest_across_appends() {
        let fx = Fixture::new();
        let run = fx.new_run("r1", 1.0, &["train"]);
        let dir = start_attempt(&run, 2.0, "train", 1);
        let m = dir.join(METRICS_FILE);
        let mut ix = fx.index(Journal::Wal);
        // Metrics file does not exist yet: fine.
        let rep = ix.sync_run(&run).unwrap();
        assert_eq!((rep.events, rep.points), (2, 0));

        append(&m, b"{\"step\": 1, \"loss\": 2.0}\n{\"step\": 2, \"lo");
        append(&run.events(), b"{\"ts\": 3, \"type\": \"step_st");
        let rep = ix.sync_run(&run).unwrap();
        assert_eq!((rep.events, rep.points, rep.bad_metric_lines), (0, 1, 0));
        assert_eq!(ix.steps("r1").unwrap()[0].state, StepState::Running);

        append(
            &m,
            b"ss\": 1.5}\r\nnot json\n\n{\"step\": 3, \"loss\": NaN, \"acc\": 0.5}\n",
        );
        append(
            &run.events(),
            b"ate\", \"step\": \"train\", \"state\": \"failed\"}\n",
        );
        let rep = ix.sync_run(&run).unwrap();
        assert_eq!((rep.events, rep.points, rep.bad_metric_lines), (1, 3, 1));
        assert_eq!(ix.steps("r1").unwrap()[0].state, StepState::Failed);

        // Nothing new: nothing done.
        let rep = ix.sync_run(&run).unwrap();
        assert_eq!((rep.events, rep.points), (0, 0));

        let loss = ix.metric_points("r1", "train", None, "loss").unwrap();
        let xs: Vec<f64> = loss.iter().map(|p| p.x).collect();
        assert_eq!(xs, [1.0, 2.0, 3.0]);
        assert!(
            loss[2].value.is_nan(),
            "NaN is stored as NULL and read back as NaN"
        );
        let s = ix.metric_summaries("r1", Some("train")).unwrap();
        let loss_s = s.iter().find(|s| s.key == "loss").unwrap();
        assert_eq!(
            (loss_s.count, loss_s.min, loss_s.max, loss_s.last_x),
            (3, 1.5, 2.0, Some(3.0))
        );
        assert!(loss_s.last.is_nan());
        assert_eq!(ix.metric_keys("r1", None).unwrap(), ["acc", "loss"]);
    }

    #[test]
    fn lines_without_a_step_use_their_line_number() {
        let fx = Fixture::new();
        let run = fx.new_run("r1", 1.0, &["train"]);
        let m = start_attempt(&run, 2.0, "train", 1).join(METRICS_FILE);
        append(&m, b"{\"loss\": 1}\n\n{\"loss\": 2, \"loss\": 3}\n{\"epoch\": 1, \"time\": 5.5, \"loss\": Infinity}\n");
        let mut ix = fx.index(Journal::Wal);
        ix.sync_run(&run).unwrap();
        let pts = ix.metric_points("r1", "train", Some(1), "loss").unwrap();
        let got: Vec<_> = pts
            .iter()
            .map(|p| (p.x, p.value, p.epoch, p.time))
            .collect();
        assert_eq!(
            got,
            [
                (0.0, 1.0, None, None),
                (2.0, 3.0, None, None),
                (3.0, f64::INFINITY, Some(1.0), Some(5.5))
            ]
        );
        let s = &ix.metric_summaries("r1", None).unwrap()[0];
        assert_eq!((s.count, s.min, s.max), (3, 1.0, f64::INFINITY));
    }

    #[test]
    fn latest_attempt_by_default_and_replaced_files_are_reread() {
        let fx = Fixture::new();
        let run = fx.new_run("r1", 1.0, &["train"]);
        let m1 = start_attempt(&run, 2.0, "train", 1).join(METRICS_FILE);
        append(&m1, b"{\"loss\": 9}\n{\"loss\": 8}\n");
        end_attempt(&run, 3.0, "train", 1, StepState::Failed, 1);
        let m2 = start_attempt(&run, 4.0, "train", 2).join(METRICS_FILE);
        append(&m2, b"{\"loss\": 5}\n");
        let mut ix = fx.index(Journal::Delete);
        ix.sync_run(&run).unwrap();
        assert_eq!(
            ix.metric_points("r1", "train", None, "loss").unwrap().len(),
            1
        );
        assert_eq!(
            ix.metric_points("r1", "train", Some(1), "loss")
                .unwrap()
                .len(),
            2
        );
        assert_eq!(ix.metric_summaries("r1", None).unwrap().len(), 2);

        // The user's code rewrote attempt 1's file from scratch (truncated, shorter).
        std::fs::write(&m1, b"{\"loss\": 7}\n").unwrap();
        ix.sync_run(&run).unwrap();
        let p = ix.metric_points("r1", "train", Some(1), "loss").unwrap();
        assert_eq!(p.iter().map(|p| p.value).collect::<Vec<_>>(), [7.0]);
        // Replaced by a new file (new inode) of the same length.
        let tmp = m1.with_extension("tmp");
        std::fs::write(&tmp, b"{\"loss\": 6}\n").unwrap();
        std::fs::rename(&tmp, &m1).unwrap();
        ix.sync_run(&run).unwrap();
        let p = ix.metric_points("r1", "train", Some(1), "loss").unwrap();
        assert_eq!(p.iter().map(|p| p.value).collect::<Vec<_>>(), [6.0]);
    }

    #[test]
    fn large_files_are_ingested_in_several_batches() {
        let fx = Fixture::new();
        let run = fx.new_run("r1", 1.0, &["train"]);
        let m = start_attempt(&run, 2.0, "train", 1).join(METRICS_FILE);
        let mut text = String::new();
        for i in 0..20_000 {
            text += &format!(
                "{{\"step\": {i}, \"loss\": {}, \"acc\": 0.5}}\n",
                1.0 / (i + 1) as f64
            );
        }
        append(&m, text.as_bytes());
        let mut ix = fx.index(Journal::Wal);
        ix.bufs.chunk = 64 << 10; // about 20 batches
        let rep = ix.sync_run(&run).unwrap();
        assert_eq!(rep.points, 40_000);
        let s = ix.metric_summaries("r1", None).unwrap();
        let loss = s.iter().find(|s| s.key == "loss").unwrap();
        assert_eq!(
            (loss.count, loss.max, loss.last_x),
            (20_000, 1.0, Some(19_999.0))
        );
        assert_eq!(loss.min, 1.0 / 20_000.0);
    }

    fn concurrent_syncs(journal: Journal) {
        let fx = Fixture::new();
        let run = fx.new_run("r1", 1.0, &["train"]);
        let m = start_attempt(&run, 2.0, "train", 1).join(METRICS_FILE);
        drop(fx.index(journal)); // create the file in the mode under test
        let done = Arc::new(AtomicBool::new(false));
        const LINES: usize = 3000;

        let writer = {
            let (run, m, done) = (run.clone(), m.clone(), done.clone());
            std::thread::spawn(move || {
                let mut pending = Vec::new();
                for i in 0..LINES {
                    pending.extend_from_slice(
                        format!("{{\"step\": {i}, \"loss\": {i}.5, \"acc\": 1, \"val\": {{\"loss\": {i}}}}}\n")
                            .as_bytes(),
                    );
                    // Write in odd-sized pieces so that readers see partial lines.
                    if pending.len() > 97 {
                        let cut = pending.len() - 13;
                        append(&m, &pending[..cut]);
                        pending.drain(..cut);
                    }
                    if i % 500 == 0 {
                        append_event(
                            &run,
                            3.0 + i as f64,
                            Event::StepState {
                                step: "train".into(),
                                state: StepState::Running,
                                reason: Some(format!("at {i}")),
                                force: false,
                            },
                        );
                    }
                }
                append(&m, &pending);
                done.store(true, Ordering::SeqCst);
            })
        };
        let syncers: Vec<_> = (0..2)
            .map(|_| {
                let (db, run, done) = (fx.db(), run.clone(), done.clone());
                std::thread::spawn(move || {
                    let mut ix = Index::open_with(&db, Some(journal)).unwrap();
                    let mut points = 0;
                    loop {
                        let finished = done.load(Ordering::SeqCst);
                        points += ix.sync_run(&run).unwrap().points;
                        if finished {
                            return points;
                        }
                    }
                })
            })
            .collect();
        let reader = {
            let (db, done) = (fx.db(), done.clone());
            std::thread::spawn(move || {
                let ix = Index::open_with(&db, Some(journal)).unwrap();
                while !done.load(Ordering::SeqCst) {
                    ix.runs().unwrap();
                    ix.metric_points("r1", "train", None, "loss").unwrap();
                    ix.metric_summaries("r1", None).unwrap();
                }
            })
        };
        writer.join().unwrap();
        let total: u64 = syncers.into_iter().map(|t| t.join().unwrap()).sum();
        reader.join().unwrap();

        let ix = fx.index(journal);
        assert_eq!(
            ix.journal_mode(),
            if journal == Journal::Wal {
                "wal"
            } else {
                "delete"
            }
        );
        assert_eq!(
            total,
            3 * LINES as u64,
            "each point stored exactly once between the two"
        );
        let loss = ix.metric_points("r1", "train", None, "loss").unwrap();
        assert_eq!(loss.len(), LINES);
        assert!(
            loss.iter()
                .enumerate()
                .all(|(i, p)| p.x == i as f64 && p.value == i as f64 + 0.5)
        );
        for s in ix.metric_summaries("r1", None).unwrap() {
            assert_eq!(
                (s.count, s.last_x),
                (LINES as u64, Some((LINES - 1) as f64)),
                "{}",
                s.key
            );
        }
        let n: i64 = ix
            .conn
            .query_row("SELECT count(*) FROM points", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3 * LINES as i64);
        assert_eq!(
            ix.steps("r1").unwrap()[0].reason.as_deref(),
            Some("at 2500")
        );
    }

    #[test]
    fn concurrent_syncs_wal() {
        concurrent_syncs(Journal::Wal);
    }

    #[test]
    fn concurrent_syncs_delete() {
        concurrent_syncs(Journal::Delete);
    }

    #[test]
    fn deleted_index_is_rebuilt_identically() {
        let fx = Fixture::new();
        for (i, id) in ["a1", "b2"].into_iter().enumerate() {
            let run = fx.new_run(id, 10.0 * i as f64, &["prep", "train[seed=0]"]);
            let d = start_attempt(&run, 1.0 + i as f64, "train[seed=0]", 1);
            append(
                &d.join(METRICS_FILE),
                b"{\"step\": 0, \"loss\": NaN}\n{\"step\": 5, \"loss\": 0.25, \"x\": {\"y\": 1}}\n",
            );
            end_attempt(
                &run,
                2.0 + i as f64,
                "train[seed=0]",
                1,
                StepState::Succeeded,
                0,
            );
        }
        let mut ix = fx.index(Journal::Wal);
        ix.sync_all(&fx.project).unwrap();
        let before = dump(&ix);
        drop(ix);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", fx.db().display()));
        }
        let mut ix = fx.index(Journal::Wal);
        let rep = ix.sync_all(&fx.project).unwrap();
        assert_eq!((rep.points, rep.errors.len()), (6, 0));
        assert_eq!(dump(&ix), before);
        assert!(before.contains("\"x/y\""));
    }

    #[test]
    fn corrupt_index_is_moved_aside_and_rebuilt() {
        let fx = Fixture::new();
        let run = fx.new_run("r1", 1.0, &["a"]);
        append(
            &start_attempt(&run, 2.0, "a", 1).join(METRICS_FILE),
            b"{\"m\": 1}\n",
        );
        let mut ix = Index::open(&fx.db()).unwrap();
        ix.sync_all(&fx.project).unwrap();
        let before = dump(&ix);
        drop(ix);
        // Garbage over the header, as a crashed copy or a stray write would leave it.
        let mut bytes = std::fs::read(fx.db()).unwrap();
        bytes[..100].fill(b'x');
        std::fs::write(fx.db(), &bytes).unwrap();

        let mut ix = Index::open(&fx.db()).unwrap();
        assert!(ix.runs().unwrap().is_empty());
        ix.sync_all(&fx.project).unwrap();
        assert_eq!(dump(&ix), before);
        let aside = std::fs::read_dir(fx.db().parent().unwrap())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".corrupt-")
            })
            .count();
        assert!(aside >= 1);
    }

    #[test]
    fn sync_all_reports_failures_and_forgets_deleted_runs() {
        let fx = Fixture::new();
        fx.new_run("good", 1.0, &["a"]);
        let bad = fx.new_run("bad", 2.0, &["a"]);
        let gone = fx.new_run("gone", 3.0, &["a"]);
        let mut ix = fx.index(Journal::Wal);
        ix.sync_all(&fx.project).unwrap();
        assert_eq!(ix.runs().unwrap().len(), 3);

        // An unreadable metrics dir: `bad` fails, the rest still syncs.
        let d = start_attempt(&bad, 4.0, "a", 1);
        std::fs::remove_dir(&d).unwrap();
        std::fs::write(&d, b"not a dir").unwrap();
        std::fs::remove_dir_all(&gone.path).unwrap();
        append_event(
            &fx.project.run_dir("good"),
            5.0,
            Event::StepState {
                step: "a".into(),
                state: StepState::Queued,
                reason: None,
                force: false,
            },
        );
        let rep = ix.sync_all(&fx.project).unwrap();
        assert_eq!(rep.errors.len(), 1, "{:?}", rep.errors);
        assert_eq!(rep.errors[0].0, "bad");
        assert!(
            rep.errors[0].1.to_string().contains("metrics.jsonl"),
            "{}",
            rep.errors[0].1
        );
        assert_eq!(rep.forgotten, ["gone"]);
        assert_eq!(ix.steps("good").unwrap()[0].state, StepState::Queued);
        let ids: Vec<_> = ix.runs().unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["bad", "good"]);
    }
}
