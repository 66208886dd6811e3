//! A run's state as a fold over its event log: what the engine rebuilds when it resumes a run.
//! (The per-host index applies the same events to SQL tables for queries.)

use super::events::{Event, Record, RunState, SlurmRequest, StepState};
use indexmap::IndexMap;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct AttemptFold {
    pub attempt: u32,
    pub host: String,
    /// The boot id of `host` when it started (local attempts).
    pub boot_id: Option<String>,
    pub pid: Option<u32>,
    pub dir: String,
    pub started: f64,
    pub ended: Option<f64>,
    pub state: Option<StepState>,
    pub exit_code: Option<i32>,
    pub cache_key: Option<String>,
    pub job_id: Option<String>,
    /// A Slurm attempt: the job name recorded before `sbatch` ran.
    pub submit_name: Option<String>,
    pub array_index: Option<u32>,
    pub request: Option<SlurmRequest>,
    /// The jobs a Slurm attempt waits on.
    pub after: Vec<String>,
    /// How a Slurm attempt failed (see `AttemptEnded::class`).
    pub class: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StepFold {
    pub name: String,
    pub group: String,
    pub state: StepState,
    pub reason: Option<String>,
    pub attempts: Vec<AttemptFold>,
    /// For a cached step, the attempt dir whose result it reuses.
    pub cached_from: Option<String>,
    /// Attempts made since the last retry/rerun request (the retry budget counts these).
    pub attempts_this_round: u32,
    /// The cache key of the latest attempt or cache hit.
    pub key: Option<String>,
    /// A re-run was asked for: skip the cache on the next attempt.
    pub force: bool,
}

impl StepFold {
    pub fn last_attempt(&self) -> Option<&AttemptFold> {
        self.attempts.last()
    }

    /// The directory dependents should learn: the latest attempt's, or the reused one.
    pub fn result_dir(&self) -> Option<String> {
        if self.state == StepState::Cached {
            return self.cached_from.clone();
        }
        self.attempts.last().map(|a| a.dir.clone())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct RunFold {
    pub run: String,
    pub pipeline: String,
    pub created: f64,
    pub state: RunState,
    pub ended: Option<f64>,
    pub steps: IndexMap<String, StepFold>,
    pub engine: Option<(String, u32, u64)>,
}

/// Whether an attempt that ended with failure `class` counts against its step's retries: preemption and
/// a job it waited on failing are not the step's own failures.
pub fn costs_a_try(class: Option<&str>) -> bool {
    !matches!(class, Some("preempted" | "dependency"))
}

/// Folds a log. `None` when the log has no `run_created` line (not a run, or not written yet).
pub fn fold(records: &[Record]) -> Option<RunFold> {
    let mut run: Option<RunFold> = None;
    for rec in records {
        if let Event::RunCreated {
            run: id,
            pipeline,
            steps,
            ..
        } = &rec.event
        {
            run = Some(RunFold {
                run: id.clone(),
                pipeline: pipeline.clone(),
                created: rec.ts,
                state: RunState::Running,
                ended: None,
                steps: steps
                    .iter()
                    .map(|s| {
                        (
                            s.name.clone(),
                            StepFold {
                                name: s.name.clone(),
                                group: s.group.clone(),
                                state: StepState::Pending,
                                reason: None,
                                attempts: Vec::new(),
                                cached_from: None,
                                attempts_this_round: 0,
                                key: None,
                                force: false,
                            },
                        )
                    })
                    .collect(),
                engine: None,
            });
            continue;
        }
        let Some(r) = run.as_mut() else { continue };
        apply(r, rec);
    }
    run
}

fn apply(r: &mut RunFold, rec: &Record) {
    match &rec.event {
        Event::RunCreated { .. } | Event::Request { .. } | Event::EngineStopped { .. } => {}
        Event::SubmitIntent {
            step,
            attempt,
            name,
            array_index,
            request,
            after,
        } => {
            if let Some(a) = r
                .steps
                .get_mut(step)
                .and_then(|s| s.attempts.iter_mut().find(|a| a.attempt == *attempt))
            {
                a.submit_name = Some(name.clone());
                a.array_index = *array_index;
                a.request = Some(request.clone());
                a.after = after.clone();
            }
        }
        Event::JobSubmitted {
            step,
            attempt,
            job_id,
        } => {
            if let Some(a) = r
                .steps
                .get_mut(step)
                .and_then(|s| s.attempts.iter_mut().find(|a| a.attempt == *attempt))
            {
                a.job_id = Some(job_id.clone());
            }
        }
        Event::EngineStarted {
            host,
            pid,
            generation,
        } => r.engine = Some((host.clone(), *pid, *generation)),
        Event::RunState { state } => {
            r.state = *state;
            r.ended = (*state != RunState::Running).then_some(rec.ts);
        }
        Event::StepState {
            step,
            state,
            reason,
            force,
        } => {
            if let Some(s) = r.steps.get_mut(step) {
                s.state = *state;
                s.reason = reason.clone();
                if *state == StepState::Pending {
                    s.attempts_this_round = 0;
                    s.force = *force;
                }
            }
        }
        Event::Cache {
            step,
            key,
            hit,
            from,
            ..
        } => {
            if let Some(s) = r.steps.get_mut(step) {
                s.key = Some(key.clone());
                if *hit {
                    s.cached_from = from.clone();
                }
            }
        }
        Event::AttemptStarted {
            step,
            attempt,
            host,
            pid,
            dir,
            cache_key,
            job_id,
            boot_id,
        } => {
            if let Some(s) = r.steps.get_mut(step) {
                s.state = StepState::Running;
                s.reason = None;
                s.force = false;
                if cache_key.is_some() {
                    s.key = cache_key.clone();
                }
                // A Slurm attempt whose submission never happened is submitted again under its number.
                if let Some(pos) = s.attempts.iter().position(|a| a.attempt == *attempt) {
                    s.attempts.remove(pos);
                } else {
                    s.attempts_this_round += 1;
                }
                s.attempts.push(AttemptFold {
                    attempt: *attempt,
                    host: host.clone(),
                    boot_id: boot_id.clone(),
                    pid: *pid,
                    dir: dir.clone(),
                    started: rec.ts,
                    cache_key: cache_key.clone(),
                    job_id: job_id.clone(),
                    ..Default::default()
                });
            }
        }
        Event::AttemptEnded {
            step,
            attempt,
            state,
            exit_code,
            reason,
            will_retry,
            class,
            ..
        } => {
            if let Some(s) = r.steps.get_mut(step) {
                if let Some(a) = s.attempts.iter_mut().find(|a| a.attempt == *attempt) {
                    a.ended = Some(rec.ts);
                    a.state = Some(*state);
                    a.exit_code = *exit_code;
                    a.class = class.clone();
                }
                s.state = if *will_retry {
                    StepState::Queued
                } else {
                    *state
                };
                s.reason = reason.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runlog::events::StepInfo;

    fn rec(event: Event) -> Record {
        Record { ts: 1.0, event }
    }

    #[test]
    fn folds_attempts_retries_and_resets() {
        let info = |n: &str| StepInfo {
            name: n.into(),
            group: n.into(),
            params: Default::default(),
            needs: vec![],
        };
        let log = vec![
            rec(Event::RunCreated {
                run: "r".into(),
                pipeline: "p".into(),
                file: "f".into(),
                workdir: "w".into(),
                host: "h".into(),
                user: "u".into(),
                steps: vec![info("a"), info("b")],
            }),
            rec(Event::AttemptStarted {
                step: "a".into(),
                attempt: 1,
                host: "h".into(),
                pid: Some(1),
                dir: "d1".into(),
                cache_key: None,
                job_id: None,
                boot_id: None,
            }),
            rec(Event::AttemptEnded {
                step: "a".into(),
                attempt: 1,
                state: StepState::Failed,
                exit_code: Some(3),
                signal: None,
                reason: None,
                will_retry: true,
                class: None,
            }),
        ];
        let f = fold(&log).unwrap();
        assert_eq!(f.steps["a"].state, StepState::Queued);
        assert_eq!(f.steps["a"].attempts_this_round, 1);
        assert_eq!(f.steps["b"].state, StepState::Pending);
        let mut log2 = log.clone();
        log2.push(rec(Event::StepState {
            step: "a".into(),
            state: StepState::Pending,
            reason: Some("retry".into()),
            force: false,
        }));
        let f = fold(&log2).unwrap();
        assert_eq!(f.steps["a"].attempts_this_round, 0);
        assert_eq!(f.steps["a"].attempts.len(), 1);
    }
}
