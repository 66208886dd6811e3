//! Applying one event of a run's log to the run, step and attempt tables. This is the only place that
//! knows how events change rows; replaying a log from the start always gives the same rows.

use crate::runlog::{Event, Record, StepState};
use rusqlite::{Connection, params};

/// Applies `rec` from the log of run `run` (whose directory is `run_dir`).
pub fn apply(conn: &Connection, run: &str, run_dir: &str, rec: &Record) -> rusqlite::Result<()> {
    let ts = rec.ts;
    match &rec.event {
        Event::RunCreated {
            pipeline,
            file,
            workdir,
            host,
            user,
            steps,
            ..
        } => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO runs (id, dir, pipeline, file, workdir, host, user, created, \
                 ended, state, engine_host, engine_pid) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, 'running', NULL, NULL)",
            )?
            .execute(params![run, run_dir, pipeline, file, workdir, host, user, ts])?;
            let mut ins = conn.prepare_cached(
                "INSERT OR REPLACE INTO steps (run, name, ord, step_group, params, needs, state, attempts) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', 0)",
            )?;
            for (ord, s) in steps.iter().enumerate() {
                let p = serde_json::to_string(&s.params).unwrap_or_else(|_| "{}".into());
                let n = serde_json::to_string(&s.needs).unwrap_or_else(|_| "[]".into());
                ins.execute(params![run, s.name, ord as i64, s.group, p, n])?;
            }
        }
        Event::EngineStarted { host, pid, .. } => {
            conn.prepare_cached("UPDATE runs SET engine_host = ?2, engine_pid = ?3 WHERE id = ?1")?
                .execute(params![run, host, pid])?;
        }
        // The run keeps naming its last engine; liveness is the lease's business, not the index's.
        Event::EngineStopped { .. } | Event::SubmitIntent { .. } => {}
        Event::StepState {
            step,
            state,
            reason,
            ..
        } => {
            // `pending` resets the step for a retry or re-run: forget how the last attempt ended.
            let reset = *state == StepState::Pending;
            conn.prepare_cached(
                "UPDATE steps SET state = ?3, reason = ?4, \
                 exit_code = CASE WHEN ?5 THEN NULL ELSE exit_code END, \
                 signal = CASE WHEN ?5 THEN NULL ELSE signal END, \
                 ended = CASE WHEN ?5 THEN NULL ELSE ended END \
                 WHERE run = ?1 AND name = ?2",
            )?
            .execute(params![run, step, state.as_str(), reason, reset])?;
        }
        Event::Cache {
            step,
            key,
            hit,
            from,
            ..
        } => {
            conn.prepare_cached(
                "UPDATE steps SET cache_key = ?3, dir = CASE WHEN ?4 THEN ?5 ELSE dir END \
                 WHERE run = ?1 AND name = ?2",
            )?
            .execute(params![run, step, key, *hit && from.is_some(), from])?;
        }
        Event::AttemptStarted {
            step,
            attempt,
            host,
            pid,
            dir,
            cache_key,
            job_id,
            ..
        } => {
            // An attempt started without a key inherits the one the Cache event gave its step, so that
            // cache_hit() finds it.
            conn.prepare_cached(
                "INSERT OR REPLACE INTO attempts (run, step, attempt, state, host, pid, dir, started, \
                 cache_key, job_id) \
                 VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6, ?7, \
                 COALESCE(?8, (SELECT cache_key FROM steps WHERE run = ?1 AND name = ?2)), ?9)",
            )?
            .execute(params![run, step, attempt, host, pid, dir, ts, cache_key, job_id])?;
            // The step now shows this attempt: what an earlier attempt ended with no longer applies.
            conn.prepare_cached(
                "UPDATE steps SET state = 'running', attempts = ?3, started = ?4, ended = NULL, \
                 dir = ?5, job_id = ?6, cache_key = COALESCE(?7, cache_key), \
                 exit_code = NULL, signal = NULL, reason = NULL \
                 WHERE run = ?1 AND name = ?2",
            )?
            .execute(params![run, step, attempt, ts, dir, job_id, cache_key])?;
        }
        Event::AttemptEnded {
            step,
            attempt,
            state,
            exit_code,
            signal,
            reason,
            will_retry,
            ..
        } => {
            conn.prepare_cached(
                "UPDATE attempts SET state = ?4, ended = ?5, exit_code = ?6, signal = ?7, reason = ?8 \
                 WHERE run = ?1 AND step = ?2 AND attempt = ?3",
            )?
            .execute(params![run, step, attempt, state.as_str(), ts, exit_code, signal, reason])?;
            let step_state = if *will_retry {
                StepState::Queued
            } else {
                *state
            };
            let ended = (!*will_retry).then_some(ts);
            conn.prepare_cached(
                "UPDATE steps SET state = ?3, ended = ?4, exit_code = ?5, signal = ?6, reason = ?7 \
                 WHERE run = ?1 AND name = ?2",
            )?
            .execute(params![
                run,
                step,
                step_state.as_str(),
                ended,
                exit_code,
                signal,
                reason
            ])?;
        }
        Event::JobSubmitted {
            step,
            attempt,
            job_id,
        } => {
            conn.prepare_cached(
                "UPDATE attempts SET job_id = ?4 WHERE run = ?1 AND step = ?2 AND attempt = ?3",
            )?
            .execute(params![run, step, attempt, job_id])?;
            conn.prepare_cached(
                "UPDATE steps SET job_id = ?4 WHERE run = ?1 AND name = ?2 AND attempts = ?3",
            )?
            .execute(params![run, step, attempt, job_id])?;
        }
        Event::Request {
            id,
            kind,
            ok,
            message,
        } => {
            conn.prepare_cached(
                "INSERT INTO requests (run, ts, id, kind, ok, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![run, ts, id, kind, ok, message])?;
        }
        Event::RunState { state } => {
            let ended = (*state != crate::runlog::RunState::Running).then_some(ts);
            conn.prepare_cached("UPDATE runs SET state = ?2, ended = ?3 WHERE id = ?1")?
                .execute(params![run, state.as_str(), ended])?;
        }
    }
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
