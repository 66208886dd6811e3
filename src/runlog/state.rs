//! A run's state as a fold over its event log: the one place where an event gets its meaning. The engine
//! keeps the fold of its run current (every event it appends is applied here), a resumed engine starts
//! from it, and the per-host index writes its rows from it (see [`Change`]).

use super::events::{Event, Record, RunState, SlurmRequest, StepInfo, StepState};
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
    pub signal: Option<i32>,
    pub reason: Option<String>,
    /// Its own, else the one its step's cache decision gave (so cache look-ups find it).
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
    /// Matrix parameters, as the run announced them.
    pub params: serde_json::Map<String, serde_json::Value>,
    /// The `[[step]]` groups it needs.
    pub needs: Vec<String>,
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
    /// How the step shows: its latest attempt's start, end (once no retry follows), exit code and
    /// signal, all forgotten when it is reset to pending; its dir is that attempt's, or the reused one.
    pub started: Option<f64>,
    pub ended: Option<f64>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub dir: Option<String>,
    /// The Slurm job of its latest attempt.
    pub job_id: Option<String>,
}

impl StepFold {
    fn new(info: &StepInfo) -> StepFold {
        StepFold {
            name: info.name.clone(),
            group: info.group.clone(),
            params: info.params.clone(),
            needs: info.needs.clone(),
            state: StepState::Pending,
            reason: None,
            attempts: Vec::new(),
            cached_from: None,
            attempts_this_round: 0,
            key: None,
            force: false,
            started: None,
            ended: None,
            exit_code: None,
            signal: None,
            dir: None,
            job_id: None,
        }
    }

    pub fn last_attempt(&self) -> Option<&AttemptFold> {
        self.attempts.last()
    }

    /// The highest attempt number used so far (0: none).
    pub fn attempt_number(&self) -> u32 {
        self.attempts.iter().map(|a| a.attempt).max().unwrap_or(0)
    }

    /// The latest attempt while it has not ended.
    pub fn open_attempt(&self) -> Option<&AttemptFold> {
        self.last_attempt().filter(|a| a.ended.is_none())
    }

    /// The directory dependents should learn: the latest attempt's, or the reused one.
    pub fn result_dir(&self) -> Option<String> {
        if self.state == StepState::Cached {
            return self.cached_from.clone();
        }
        self.attempts.last().map(|a| a.dir.clone())
    }

    fn attempt_mut(&mut self, attempt: u32) -> Option<&mut AttemptFold> {
        self.attempts.iter_mut().find(|a| a.attempt == attempt)
    }
}

/// A control request the engine answered.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestFold {
    pub ts: f64,
    pub id: String,
    pub kind: String,
    pub ok: bool,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RunFold {
    pub run: String,
    pub pipeline: String,
    /// The pipeline file the run was made from, its workdir, and who made it where.
    pub file: String,
    pub workdir: String,
    pub host: String,
    pub user: String,
    pub created: f64,
    pub state: RunState,
    pub ended: Option<f64>,
    pub steps: IndexMap<String, StepFold>,
    pub engine: Option<(String, u32, u64)>,
    /// Answered requests, in the log's order.
    pub requests: Vec<RequestFold>,
}

/// What one event changed, so that a reader keeping rows (the index) rewrites only those.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Nothing,
    /// A new run: everything.
    Created,
    /// The run's own fields.
    Run,
    /// The step at this position.
    Step(usize),
    /// The step at this position and its attempt with this number.
    Attempt(usize, u32),
    /// The request at this position of [`RunFold::requests`].
    Request(usize),
}

/// Whether an attempt that ended with failure `class` counts against its step's retries: preemption and
/// a job it waited on failing are not the step's own failures.
pub fn costs_a_try(class: Option<&str>) -> bool {
    !matches!(class, Some("preempted" | "dependency"))
}

/// Folds a log. `None` when the log has no `run_created` line (not a run, or not written yet).
pub fn fold(records: &[Record]) -> Option<RunFold> {
    let mut run = None;
    for rec in records {
        fold_one(&mut run, rec);
    }
    run
}

/// Folds one more record into `run` (which stays `None` until the log's `run_created`).
pub fn fold_one(run: &mut Option<RunFold>, rec: &Record) -> Change {
    if let Event::RunCreated {
        run: id,
        pipeline,
        file,
        workdir,
        host,
        user,
        steps,
    } = &rec.event
    {
        *run = Some(RunFold {
            run: id.clone(),
            pipeline: pipeline.clone(),
            file: file.clone(),
            workdir: workdir.clone(),
            host: host.clone(),
            user: user.clone(),
            created: rec.ts,
            state: RunState::Running,
            ended: None,
            steps: steps
                .iter()
                .map(|s| (s.name.clone(), StepFold::new(s)))
                .collect(),
            engine: None,
            requests: Vec::new(),
        });
        return Change::Created;
    }
    match run.as_mut() {
        Some(r) => apply(r, rec),
        None => Change::Nothing,
    }
}

/// Step `name`'s position and its attempt `n`, where both exist.
fn attempt_of<'a>(r: &'a mut RunFold, name: &str, n: u32) -> Option<(usize, &'a mut AttemptFold)> {
    let (i, _, s) = r.steps.get_full_mut(name)?;
    Some((i, s.attempt_mut(n)?))
}

/// What one event means for a run: the only place that says it. Every kind is matched by name, so a new
/// one cannot be forgotten.
pub fn apply(r: &mut RunFold, rec: &Record) -> Change {
    let ts = rec.ts;
    match &rec.event {
        // Handled by `fold_one`; a second one in the same log starts the run over there.
        Event::RunCreated { .. } => Change::Nothing,
        // The run keeps naming its last engine; liveness is the lease's business.
        Event::EngineStopped { .. } => Change::Nothing,
        Event::EngineStarted {
            host,
            pid,
            generation,
        } => {
            r.engine = Some((host.clone(), *pid, *generation));
            Change::Run
        }
        Event::Request {
            id,
            kind,
            ok,
            message,
        } => {
            r.requests.push(RequestFold {
                ts,
                id: id.clone(),
                kind: kind.clone(),
                ok: *ok,
                message: message.clone(),
            });
            Change::Request(r.requests.len() - 1)
        }
        Event::RunState { state } => {
            r.state = *state;
            r.ended = (*state != RunState::Running).then_some(ts);
            Change::Run
        }
        Event::StepState {
            step,
            state,
            reason,
            force,
        } => {
            let Some((i, _, s)) = r.steps.get_full_mut(step) else {
                return Change::Nothing;
            };
            s.state = *state;
            s.reason = reason.clone();
            if *state == StepState::Pending {
                // A retry or re-run: a new round, and how the last attempt ended no longer shows.
                s.attempts_this_round = 0;
                s.force = *force;
                s.exit_code = None;
                s.signal = None;
                s.ended = None;
            }
            Change::Step(i)
        }
        Event::Cache {
            step,
            key,
            hit,
            from,
            ..
        } => {
            let Some((i, _, s)) = r.steps.get_full_mut(step) else {
                return Change::Nothing;
            };
            s.key = Some(key.clone());
            if *hit && from.is_some() {
                s.cached_from = from.clone();
                s.dir = from.clone();
            }
            Change::Step(i)
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
            let Some((i, _, s)) = r.steps.get_full_mut(step) else {
                return Change::Nothing;
            };
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
                started: ts,
                cache_key: cache_key.clone().or_else(|| s.key.clone()),
                job_id: job_id.clone(),
                ..Default::default()
            });
            // The step now shows this attempt: what an earlier one ended with no longer applies.
            s.started = Some(ts);
            s.ended = None;
            s.exit_code = None;
            s.signal = None;
            s.dir = Some(dir.clone());
            s.job_id = job_id.clone();
            Change::Attempt(i, *attempt)
        }
        Event::SubmitIntent {
            step,
            attempt,
            name,
            array_index,
            request,
            after,
        } => {
            let Some((i, a)) = attempt_of(r, step, *attempt) else {
                return Change::Nothing;
            };
            a.submit_name = Some(name.clone());
            a.array_index = *array_index;
            a.request = Some(request.clone());
            a.after = after.clone();
            Change::Attempt(i, *attempt)
        }
        Event::JobSubmitted {
            step,
            attempt,
            job_id,
        } => {
            let Some((i, _, s)) = r.steps.get_full_mut(step) else {
                return Change::Nothing;
            };
            if s.last_attempt().map(|a| a.attempt) == Some(*attempt) {
                s.job_id = Some(job_id.clone());
            }
            let Some(a) = s.attempt_mut(*attempt) else {
                return Change::Step(i);
            };
            a.job_id = Some(job_id.clone());
            Change::Attempt(i, *attempt)
        }
        Event::AttemptEnded {
            step,
            attempt,
            state,
            exit_code,
            signal,
            reason,
            will_retry,
            class,
        } => {
            let Some((i, _, s)) = r.steps.get_full_mut(step) else {
                return Change::Nothing;
            };
            if !costs_a_try(class.as_deref()) {
                s.attempts_this_round = s.attempts_this_round.saturating_sub(1);
            }
            s.state = if *will_retry {
                StepState::Queued
            } else {
                *state
            };
            s.reason = reason.clone();
            s.ended = (!*will_retry).then_some(ts);
            s.exit_code = *exit_code;
            s.signal = *signal;
            let Some(a) = s.attempt_mut(*attempt) else {
                return Change::Step(i);
            };
            a.ended = Some(ts);
            a.state = Some(*state);
            a.exit_code = *exit_code;
            a.signal = *signal;
            a.reason = reason.clone();
            a.class = class.clone();
            Change::Attempt(i, *attempt)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(event: Event) -> Record {
        Record { ts: 1.0, event }
    }

    fn created(steps: Vec<StepInfo>) -> Record {
        rec(Event::RunCreated {
            run: "r".into(),
            pipeline: "p".into(),
            file: "f".into(),
            workdir: "w".into(),
            host: "h".into(),
            user: "u".into(),
            steps,
        })
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
            created(vec![info("a"), info("b")]),
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

    /// A preempted attempt, or one whose dependency failed, costs no try: a resumed engine (which starts
    /// from this fold) counts the round as the live engine did. Answered requests are in the fold too.
    #[test]
    fn free_attempts_and_requests() {
        let info = StepInfo {
            name: "a".into(),
            group: "a".into(),
            params: Default::default(),
            needs: vec![],
        };
        let started = |n| {
            rec(Event::AttemptStarted {
                step: "a".into(),
                attempt: n,
                host: "h".into(),
                pid: None,
                dir: format!("d{n}"),
                cache_key: None,
                job_id: None,
                boot_id: None,
            })
        };
        let ended = |n, class: &str| {
            rec(Event::AttemptEnded {
                step: "a".into(),
                attempt: n,
                state: StepState::Failed,
                exit_code: None,
                signal: None,
                reason: None,
                will_retry: true,
                class: Some(class.into()),
            })
        };
        let log = vec![
            created(vec![info]),
            started(1),
            ended(1, "preempted"),
            started(2),
            ended(2, "dependency"),
            started(3),
            ended(3, "oom"),
            rec(Event::Request {
                id: "q1".into(),
                kind: "retry".into(),
                ok: false,
                message: "nothing to retry".into(),
            }),
        ];
        let f = fold(&log).unwrap();
        assert_eq!(f.steps["a"].attempts_this_round, 1);
        assert_eq!(f.steps["a"].attempt_number(), 3);
        assert_eq!(f.requests.len(), 1);
        assert_eq!(
            (f.requests[0].kind.as_str(), f.requests[0].ok),
            ("retry", false)
        );
    }
}
