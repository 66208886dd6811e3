//! Writing a run's rows (runs, steps, attempts, requests) from the fold of its log. The meaning of each
//! event lives in [`crate::runlog::state`]; this file only copies what the fold says into the tables, and
//! only the rows a batch of events changed.

use crate::runlog::StepState;
use crate::runlog::state::{AttemptFold, Change, RequestFold, RunFold, StepFold};
use rusqlite::{Connection, params};
use std::collections::BTreeSet;

/// The rows a batch of events changed.
#[derive(Debug, Default)]
pub struct Dirty {
    /// The run started (over): every row.
    created: bool,
    run: bool,
    steps: BTreeSet<usize>,
    attempts: BTreeSet<(usize, u32)>,
    requests: BTreeSet<usize>,
}

impl Dirty {
    pub fn add(&mut self, c: Change) {
        match c {
            Change::Nothing => {}
            Change::Created => {
                *self = Dirty {
                    created: true,
                    ..Dirty::default()
                }
            }
            Change::Run => self.run = true,
            Change::Step(i) => {
                self.steps.insert(i);
            }
            Change::Attempt(i, a) => {
                self.steps.insert(i);
                self.attempts.insert((i, a));
            }
            Change::Request(i) => {
                self.requests.insert(i);
            }
        }
    }
}

/// Writes the rows of run `run` (whose directory is `run_dir`) that `dirty` names, from `f`.
pub fn write(
    conn: &Connection,
    run: &str,
    run_dir: &str,
    f: &RunFold,
    dirty: &Dirty,
) -> rusqlite::Result<()> {
    if dirty.created {
        // A new `run_created` starts the run over: nothing of an earlier one stays.
        for table in ["requests", "attempts", "steps"] {
            conn.prepare_cached(&format!("DELETE FROM {table} WHERE run = ?1"))?
                .execute([run])?;
        }
    }
    if dirty.created || dirty.run {
        let (engine_host, engine_pid) = match &f.engine {
            Some((h, p, _)) => (Some(h.as_str()), Some(*p)),
            None => (None, None),
        };
        conn.prepare_cached(
            "INSERT INTO runs (id, dir, pipeline, file, workdir, host, user, created, ended, state, \
             engine_host, engine_pid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
             ON CONFLICT (id) DO UPDATE SET dir = ?2, pipeline = ?3, file = ?4, workdir = ?5, \
             host = ?6, user = ?7, created = ?8, ended = ?9, state = ?10, engine_host = ?11, \
             engine_pid = ?12",
        )?
        .execute(params![
            run,
            run_dir,
            f.pipeline,
            f.file,
            f.workdir,
            f.host,
            f.user,
            f.created,
            f.ended,
            f.state.as_str(),
            engine_host,
            engine_pid
        ])?;
    }
    if dirty.created {
        for (i, s) in f.steps.values().enumerate() {
            write_step(conn, run, i, s)?;
            for a in &s.attempts {
                write_attempt(conn, run, s, a)?;
            }
        }
        for q in &f.requests {
            write_request(conn, run, q)?;
        }
        return Ok(());
    }
    for &i in &dirty.steps {
        if let Some((_, s)) = f.steps.get_index(i) {
            write_step(conn, run, i, s)?;
        }
    }
    for &(i, n) in &dirty.attempts {
        if let Some((_, s)) = f.steps.get_index(i)
            && let Some(a) = s.attempts.iter().find(|a| a.attempt == n)
        {
            write_attempt(conn, run, s, a)?;
        }
    }
    for &k in &dirty.requests {
        if let Some(q) = f.requests.get(k) {
            write_request(conn, run, q)?;
        }
    }
    Ok(())
}

fn write_request(conn: &Connection, run: &str, q: &RequestFold) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO requests (run, ts, id, kind, ok, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![run, q.ts, q.id, q.kind, q.ok, q.message])?;
    Ok(())
}

fn write_step(conn: &Connection, run: &str, ord: usize, s: &StepFold) -> rusqlite::Result<()> {
    let p = serde_json::to_string(&s.params).unwrap_or_else(|_| "{}".into());
    let n = serde_json::to_string(&s.needs).unwrap_or_else(|_| "[]".into());
    let attempts = s.last_attempt().map_or(0, |a| a.attempt);
    conn.prepare_cached(
        // Updated in place (not replaced): most writes change a step's state and times only.
        "INSERT INTO steps (run, name, ord, step_group, params, needs, state, reason, \
         attempts, exit_code, signal, started, ended, dir, cache_key, job_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) \
         ON CONFLICT (run, name) DO UPDATE SET ord = ?3, step_group = ?4, params = ?5, needs = ?6, \
         state = ?7, reason = ?8, attempts = ?9, exit_code = ?10, signal = ?11, started = ?12, \
         ended = ?13, dir = ?14, cache_key = ?15, job_id = ?16",
    )?
    .execute(params![
        run,
        s.name,
        ord as i64,
        s.group,
        p,
        n,
        s.state.as_str(),
        s.reason,
        attempts,
        s.exit_code,
        s.signal,
        s.started,
        s.ended,
        s.dir,
        s.key,
        s.job_id
    ])?;
    Ok(())
}

fn write_attempt(
    conn: &Connection,
    run: &str,
    s: &StepFold,
    a: &AttemptFold,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO attempts (run, step, attempt, state, host, pid, dir, started, ended, \
         exit_code, signal, cache_key, job_id, reason) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
         ON CONFLICT (run, step, attempt) DO UPDATE SET state = ?4, host = ?5, pid = ?6, dir = ?7, \
         started = ?8, ended = ?9, exit_code = ?10, signal = ?11, cache_key = ?12, job_id = ?13, \
         reason = ?14",
    )?
    .execute(params![
        run,
        s.name,
        a.attempt,
        a.state.unwrap_or(StepState::Running).as_str(),
        a.host,
        a.pid,
        a.dir,
        a.started,
        a.ended,
        a.exit_code,
        a.signal,
        a.cache_key,
        a.job_id,
        a.reason
    ])?;
    Ok(())
}

/// Removes every row derived from run `run`: before replaying a log that was replaced, or when the run
/// directory is gone.
pub fn forget_run(conn: &Connection, run: &str) -> rusqlite::Result<()> {
    super::ingest_metrics::forget_points(conn, "run = ?1", rusqlite::params![run])?;
    for table in ["series", "requests", "attempts", "steps"] {
        conn.execute(&format!("DELETE FROM {table} WHERE run = ?1"), [run])?;
    }
    conn.execute("DELETE FROM sources WHERE run = ?1", [run])?;
    conn.execute("DELETE FROM runs WHERE id = ?1", [run])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::index::Journal;
    use crate::index::test_support::*;
    use crate::runlog::{Event, RunState, StepState};

    #[test]
    fn every_event_kind() {
        let fx = Fixture::new();
        let run = fx.new_run("r1", 100.0, &["prep", "train[seed=0]", "eval"]);
        let mut ix = fx.index(Journal::Wal);
        let ev = |ts, e| append_event(&run, ts, e);

        ev(
            101.0,
            Event::EngineStarted {
                host: "login2".into(),
                pid: 77,
                generation: 1,
            },
        );
        ev(
            102.0,
            Event::StepState {
                step: "prep".into(),
                state: StepState::Queued,
                reason: Some("waiting".into()),
                force: false,
            },
        );
        ev(
            103.0,
            Event::Cache {
                step: "prep".into(),
                key: "k-prep".into(),
                hit: false,
                from: None,
                reason: "no entry".into(),
            },
        );
        let a1 = start_attempt(&run, 104.0, "prep", 1);
        ix.sync_run(&run).unwrap();
        let prep = &ix.steps("r1").unwrap()[0];
        assert_eq!(prep.state, StepState::Running);
        assert_eq!(
            (prep.attempts, prep.started, prep.reason.as_deref()),
            (1, Some(104.0), None)
        );
        assert_eq!(prep.dir.as_deref(), Some(a1.as_path()));
        assert_eq!(prep.cache_key.as_deref(), Some("k-prep"));
        assert_eq!(prep.job_id.as_deref(), Some("job1"));
        let att = &ix.attempts("r1", Some("prep")).unwrap()[0];
        assert_eq!(
            att.cache_key.as_deref(),
            Some("k-prep"),
            "inherited from the Cache event"
        );
        assert_eq!(
            (att.state, att.pid, att.host.as_str()),
            (StepState::Running, Some(4242), "node7")
        );

        // Fails, will retry: the step goes back to queued and is not ended.
        ev(
            105.0,
            Event::AttemptEnded {
                step: "prep".into(),
                attempt: 1,
                state: StepState::Failed,
                exit_code: Some(3),
                signal: None,
                reason: Some("exit 3".into()),
                will_retry: true,
                class: None,
            },
        );
        ix.sync_run(&run).unwrap();
        let prep = &ix.steps("r1").unwrap()[0];
        assert_eq!(
            (prep.state, prep.exit_code, prep.ended),
            (StepState::Queued, Some(3), None)
        );
        let att = &ix.attempts("r1", Some("prep")).unwrap()[0];
        assert_eq!(
            (att.state, att.ended, att.exit_code),
            (StepState::Failed, Some(105.0), Some(3))
        );

        start_attempt(&run, 106.0, "prep", 2);
        ix.sync_run(&run).unwrap();
        let prep = &ix.steps("r1").unwrap()[0];
        assert_eq!(
            (prep.state, prep.attempts, prep.exit_code),
            (StepState::Running, 2, None)
        );
        end_attempt(&run, 107.0, "prep", 2, StepState::Succeeded, 0);

        // A cache hit reuses another dir.
        ev(
            108.0,
            Event::Cache {
                step: "train[seed=0]".into(),
                key: "k-train".into(),
                hit: true,
                from: Some("/old/attempt-1".into()),
                reason: "same inputs".into(),
            },
        );
        ev(
            108.5,
            Event::StepState {
                step: "train[seed=0]".into(),
                state: StepState::Cached,
                reason: None,
                force: false,
            },
        );
        // Killed by a signal, no retry.
        start_attempt(&run, 109.0, "eval", 1);
        ev(
            110.0,
            Event::AttemptEnded {
                step: "eval".into(),
                attempt: 1,
                state: StepState::Cancelled,
                exit_code: None,
                signal: Some(15),
                reason: Some("cancelled".into()),
                will_retry: false,
                class: None,
            },
        );
        ev(
            111.0,
            Event::Request {
                id: "q1".into(),
                kind: "cancel".into(),
                ok: true,
                message: "done".into(),
            },
        );
        ev(
            112.0,
            Event::RunState {
                state: RunState::Failed,
            },
        );
        ev(
            113.0,
            Event::EngineStopped {
                host: "login2".into(),
                pid: 77,
                reason: "finished".into(),
            },
        );
        let rep = ix.sync_run(&run).unwrap();
        assert_eq!((rep.events, rep.bad_event_lines), (8, 0));

        let steps = ix.steps("r1").unwrap();
        let names: Vec<_> = steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["prep", "train[seed=0]", "eval"], "RunCreated order");
        assert_eq!(
            (steps[0].state, steps[0].ended, steps[0].exit_code),
            (StepState::Succeeded, Some(107.0), Some(0))
        );
        assert_eq!(steps[1].state, StepState::Cached);
        assert_eq!(
            steps[1].dir.as_deref(),
            Some(std::path::Path::new("/old/attempt-1"))
        );
        assert_eq!(steps[1].cache_key.as_deref(), Some("k-train"));
        assert_eq!(steps[1].group, "train");
        assert_eq!(steps[1].params, serde_json::json!({"seed": 0}));
        assert_eq!(steps[1].needs, ["prep"]);
        assert_eq!(
            (steps[2].state, steps[2].signal, steps[2].exit_code),
            (StepState::Cancelled, Some(15), None)
        );
        assert_eq!(steps[2].reason.as_deref(), Some("cancelled"));

        let r = ix.run("r1").unwrap().unwrap();
        assert_eq!(
            (r.state, r.created, r.ended),
            (RunState::Failed, 100.0, Some(112.0))
        );
        assert_eq!(
            (r.engine_host.as_deref(), r.engine_pid),
            (Some("login2"), Some(77))
        );
        assert_eq!((r.steps_total, r.steps_done, r.steps_failed), (3, 2, 0));
        assert_eq!(
            (r.pipeline.as_str(), r.user.as_str(), r.host.as_str()),
            ("demo", "ada", "login1")
        );
        assert!(r.dir.is_absolute() && r.dir.ends_with("r1"));
        let n: i64 = ix
            .conn
            .query_row("SELECT count(*) FROM requests WHERE run = 'r1'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(n, 1);

        // A rerun: pending resets the step, the run is running again and not ended.
        ev(
            120.0,
            Event::StepState {
                step: "eval".into(),
                state: StepState::Pending,
                reason: Some("rerun".into()),
                force: false,
            },
        );
        ev(
            120.5,
            Event::RunState {
                state: RunState::Running,
            },
        );
        ix.sync_run(&run).unwrap();
        let eval = &ix.steps("r1").unwrap()[2];
        assert_eq!(
            (eval.state, eval.signal, eval.exit_code, eval.ended),
            (StepState::Pending, None, None, None)
        );
        assert_eq!(eval.reason.as_deref(), Some("rerun"));
        let r = ix.run("r1").unwrap().unwrap();
        assert_eq!((r.state, r.ended), (RunState::Running, None));
    }

    /// Two processes take turns syncing one run: the one whose kept fold lags catches up from the log
    /// (without writing what the other wrote), and both leave the rows a fresh replay gives.
    #[test]
    fn handles_taking_turns_leave_the_rows_of_a_replay() {
        let fx = Fixture::new();
        let run = fx.new_run("r1", 100.0, &["prep", "train"]);
        let (mut a, mut b) = (fx.index(Journal::Wal), fx.index(Journal::Wal));
        start_attempt(&run, 101.0, "prep", 1);
        a.sync_run(&run).unwrap();
        end_attempt(&run, 102.0, "prep", 1, StepState::Failed, 3);
        b.sync_run(&run).unwrap();
        start_attempt(&run, 103.0, "prep", 2);
        end_attempt(&run, 104.0, "prep", 2, StepState::Succeeded, 0);
        start_attempt(&run, 105.0, "train", 1);
        // `a` last read after prep's first start: it folds prep's first end without writing it again.
        let rep = a.sync_run(&run).unwrap();
        assert_eq!(rep.events, 3);
        let fresh = Fixture::new();
        let copy = fresh.new_run("r1", 100.0, &["prep", "train"]);
        std::fs::copy(run.events(), copy.events()).unwrap();
        let mut c = fresh.index(Journal::Wal);
        c.sync_run(&copy).unwrap();
        let rows = |ix: &crate::index::Index| {
            let steps: Vec<_> = ix
                .steps("r1")
                .unwrap()
                .into_iter()
                .map(|s| (s.name, s.state, s.attempts, s.exit_code, s.started, s.ended))
                .collect();
            let attempts: Vec<_> = ix
                .attempts("r1", None)
                .unwrap()
                .into_iter()
                .map(|a| (a.step, a.attempt, a.state, a.exit_code, a.ended))
                .collect();
            (steps, attempts)
        };
        assert_eq!(rows(&a), rows(&c));
        assert_eq!(rows(&b), rows(&c));
        let (steps, attempts) = rows(&c);
        assert_eq!(steps[0].1, StepState::Succeeded);
        assert_eq!(steps[1].1, StepState::Running);
        assert_eq!(attempts.len(), 3);
    }

    #[test]
    fn bad_and_unknown_lines_are_counted_not_fatal() {
        let fx = Fixture::new();
        let run = fx.new_run("r1", 1.0, &["a"]);
        append(
            &run.events(),
            b"garbage\n{\"ts\": 2, \"type\": \"from_the_future\"}\n",
        );
        append_event(
            &run,
            3.0,
            Event::StepState {
                step: "a".into(),
                state: StepState::Blocked,
                reason: None,
                force: false,
            },
        );
        // Events for steps the run never listed change nothing.
        append_event(
            &run,
            4.0,
            Event::StepState {
                step: "ghost".into(),
                state: StepState::Failed,
                reason: None,
                force: false,
            },
        );
        let mut ix = fx.index(Journal::Wal);
        let rep = ix.sync_run(&run).unwrap();
        assert_eq!((rep.events, rep.bad_event_lines), (3, 2));
        let steps = ix.steps("r1").unwrap();
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].state, StepState::Blocked);
    }
}
