//! An attempt ended: its step's new state, the retry that follows (or not), and what it releases.

use super::ending::{Budget, EndFacts, FollowUp, follow, judge};
use super::{Engine, Launch};
use crate::engine::cache;
use crate::executor::{Finished, Outcome};
use crate::runlog::StepState;
use crate::runlog::events::Event;
use color_eyre::eyre::Result;
use std::time::Instant;

impl Engine {
    /// Records how an attempt ended (see [`judge`]) and what follows it (see [`follow`]).
    pub(super) fn on_finished(&mut self, f: Finished) -> Result<()> {
        let Some(&i) = self.by_name.get(&f.step) else {
            return Ok(());
        };
        if self.slots[i].running != Some(f.attempt) {
            return Ok(());
        }
        let inst = self.plan.instances[i].clone();
        let step = self.step(i);
        let job = step
            .attempts
            .iter()
            .find(|a| a.attempt == f.attempt)
            .and_then(|a| a.job_id.clone());
        let (round, key) = (step.attempts_this_round, step.key.clone());
        let slot = &mut self.slots[i];
        slot.running = None;
        let mut outcome = f.outcome;
        if std::mem::take(&mut slot.dep_cancel) {
            outcome = Outcome::DependencyFailed;
            slot.cancel_requested = false;
        }
        self.in_use = self.in_use.saturating_sub(slot.weight);
        let elapsed = slot
            .started
            .map(|t| t.elapsed().as_secs_f64())
            .unwrap_or(0.0);
        // Only an exit 0 needs the outputs looked at.
        let missing = if outcome == Outcome::Exited(0) {
            cache::missing_outputs(&inst)
        } else {
            Vec::new()
        };
        let ending = judge(
            &outcome,
            &EndFacts {
                on_slurm: slot.launch == Launch::Slurm,
                job: job.as_deref(),
                timeout_s: inst.timeout_s,
                missing: &missing,
                adopted: std::mem::take(&mut slot.adopted),
                cancel_requested: slot.cancel_requested,
            },
        );
        let budget = Budget {
            // The fold counts a free attempt out once its end is in the log; the budget, now.
            round: if ending.free {
                round.saturating_sub(1)
            } else {
                round
            },
            retries: inst.retries,
            backoff_s: inst.retry_backoff_s,
            stopping: self.cancelling || self.tripped,
        };
        let next = follow(&ending, budget, &inst, &slot.request, f.facts.as_ref());
        let state = ending.state;
        let will_retry = match next {
            FollowUp::Retry { backoff, request } => {
                slot.not_before = Some(Instant::now() + backoff);
                slot.request = request;
                true
            }
            FollowUp::Stop => false,
        };
        if state == StepState::Succeeded {
            let d = self
                .run
                .attempt_dir(&inst.name, f.attempt)
                .to_string_lossy()
                .into_owned();
            if let Some(k) = key {
                self.known.insert(k, d.clone());
            }
            self.last_ok.insert(inst.name.clone(), d);
            self.durations.0 += elapsed;
            self.durations.1 += 1;
        }
        let holds = slot.launch.holds_dependents();
        self.emit(Event::AttemptEnded {
            step: inst.name.clone(),
            attempt: f.attempt,
            state,
            exit_code: ending.exit_code,
            signal: ending.signal,
            reason: ending.reason.clone(),
            will_retry,
            class: ending.class.map(str::to_string),
        })?;
        let mut detail = ending.reason.unwrap_or_else(|| format!("{elapsed:.1}s"));
        if will_retry && outcome == Outcome::DependencyFailed {
            detail.push_str("; submitted again when what it needs is");
        } else if will_retry {
            detail.push_str(", will retry");
        }
        self.progress.step(state, &inst.name, &detail);
        if holds && state != StepState::Succeeded {
            self.release_dependents(&inst.group, job.as_deref(), ending.exit_code == Some(0));
        }
        if state == StepState::Failed && !will_retry && self.fail_fast && !self.tripped {
            self.tripped = true;
            for j in 0..self.slots.len() {
                if let Some(a) = self.slots[j].running {
                    self.slots[j].cancel_requested = true;
                    self.cancel_attempt(j, a);
                }
            }
        }
        Ok(())
    }

    /// A Slurm attempt that did not succeed: the jobs waiting on it with afterok will never run
    /// (Slurm kills them, `--kill-on-invalid-dep`), so they are cancelled and settled now rather
    /// than at the next poll. When Slurm saw a success the engine refused (exit 0 without the
    /// outputs), every dependent it already let start is stopped too.
    pub(super) fn release_dependents(
        &mut self,
        group: &str,
        job: Option<&str>,
        slurm_saw_success: bool,
    ) {
        for j in 0..self.slots.len() {
            let sj = &self.slots[j];
            let after = self.step(j).last_attempt().map(|a| a.after.as_slice());
            let waits = job.is_some_and(|id| after.unwrap_or_default().iter().any(|a| a == id));
            let started_on_it =
                slurm_saw_success && self.plan.instances[j].needs.iter().any(|g| g == group);
            if !sj.launch.holds_dependents() || sj.cancel_requested || !(waits || started_on_it) {
                continue;
            }
            if let Some(a) = sj.running {
                self.slots[j].cancel_requested = true;
                self.slots[j].dep_cancel = true;
                self.cancel_attempt(j, a);
            }
        }
    }
}
