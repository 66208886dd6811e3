//! An attempt ended: its step's new state, the retry that follows (or not), and what it releases.
use super::{Engine, slurm};
use crate::engine::cache;
use crate::executor::{Finished, Outcome};
use crate::runlog::StepState;
use crate::runlog::events::Event;
use color_eyre::eyre::Result;
use std::time::{Duration, Instant};

impl Engine {
    pub(super) fn on_finished(&mut self, f: Finished) -> Result<()> {
        let Some(&i) = self.by_name.get(&f.step) else {
            return Ok(());
        };
        if self.slots[i].running != Some(f.attempt) {
            return Ok(());
        }
        let inst = self.plan.instances[i].clone();
        let slot = &mut self.slots[i];
        slot.running = None;
        let mut f = f;
        if std::mem::take(&mut slot.dep_cancel) {
            f.outcome = Outcome::DependencyFailed;
            slot.cancel_requested = false;
        }
        let job = slot.job_id.take();
        let on_job = job
            .as_deref()
            .map(|j| format!(" (Slurm job {j})"))
            .unwrap_or_default();
        let adopted = std::mem::take(&mut slot.adopted);
        self.in_use = self.in_use.saturating_sub(slot.weight);
        let elapsed = slot
            .started
            .map(|t| t.elapsed().as_secs_f64())
            .unwrap_or(0.0);
        let dir = self.run.attempt_dir(&inst.name, f.attempt);
        let (mut state, exit_code, signal, reason, lost) = match &f.outcome {
            Outcome::Exited(0) => {
                let missing = cache::missing_outputs(&inst);
                if missing.is_empty() {
                    (StepState::Succeeded, Some(0), None, None, false)
                } else {
                    let why = format!("exited 0 but did not write {}", missing.join(", "));
                    (StepState::Failed, Some(0), None, Some(why), false)
                }
            }
            Outcome::Exited(c) => (
                StepState::Failed,
                Some(*c),
                None,
                Some(format!("exit code {c}")),
                false,
            ),
            Outcome::Signaled(s) => (
                StepState::Failed,
                None,
                Some(*s),
                Some(format!("killed by signal {s}")),
                false,
            ),
            Outcome::TimedOut if slot.on_slurm => (
                StepState::Failed,
                None,
                None,
                Some(format!("hit its Slurm time limit{on_job}")),
                false,
            ),
            Outcome::TimedOut => {
                let t = inst.timeout_s.unwrap_or(0.0);
                (
                    StepState::Failed,
                    None,
                    None,
                    Some(format!("timed out after {t}s")),
                    false,
                )
            }
            Outcome::Lost(m) => (StepState::Failed, None, None, Some(m.clone()), adopted),
            Outcome::OutOfMemory => (
                StepState::Failed,
                None,
                None,
                Some(format!("ran out of memory{on_job}")),
                false,
            ),
            Outcome::NodeFailed(n) => (
                StepState::Failed,
                None,
                None,
                Some(format!(
                    "its node {} failed{on_job}",
                    n.as_deref().unwrap_or("(unknown)")
                )),
                false,
            ),
            Outcome::Preempted => (
                StepState::Failed,
                None,
                None,
                Some(format!(
                    "preempted{on_job}; resubmitted without using a retry"
                )),
                false,
            ),
            Outcome::DependencyFailed => (
                StepState::Cancelled,
                None,
                None,
                Some(format!(
                    "a job it waits on did not succeed; its own{} never ran",
                    job.as_deref()
                        .map(|j| format!(" Slurm job {j}"))
                        .unwrap_or_else(|| " job".into())
                )),
                false,
            ),
            Outcome::CancelledOutside(by) => (
                StepState::Cancelled,
                None,
                None,
                Some(format!("cancelled outside sortie{on_job}: {by}")),
                false,
            ),
        };
        if slot.cancel_requested && state == StepState::Failed {
            state = StepState::Cancelled;
        }
        // Preemption, and a dependency that failed (its step is re-run or blocks this one), are not
        // this step's failures: they cost no retry.
        let free = !slot.cancel_requested
            && matches!(f.outcome, Outcome::Preempted | Outcome::DependencyFailed);
        if free {
            slot.round = slot.round.saturating_sub(1);
        }
        // A lost attempt (the engine died while it ran) gets one extra try on top of the budget.
        let budget = inst.retries + 1 + u32::from(lost);
        let will_retry = (state == StepState::Failed || free)
            && !self.cancelling
            && !self.tripped
            && slot.round < budget;
        let class = f.outcome.class().map(str::to_string);
        if will_retry {
            let backoff = if free {
                0.0
            } else {
                inst.retry_backoff_s.max(0.0) * 2f64.powi(slot.round.saturating_sub(1) as i32)
            };
            slot.not_before = Some(Instant::now() + Duration::from_secs_f64(backoff.min(3600.0)));
            slot.state = StepState::Queued;
            if slot.on_slurm
                && let Some(c) = &class
            {
                slurm::escalate(&inst, &mut slot.request, c, f.facts.as_ref());
            }
        } else {
            slot.state = state;
        }
        if state == StepState::Succeeded {
            let d = dir.to_string_lossy().into_owned();
            if let Some(k) = &slot.key {
                self.known.insert(k.clone(), d.clone());
            }
            self.last_ok.insert(inst.name.clone(), d);
            slot.result_dir = Some(dir.to_string_lossy().into_owned());
            self.durations.0 += elapsed;
            self.durations.1 += 1;
        }
        self.emit(Event::AttemptEnded {
            step: inst.name.clone(),
            attempt: f.attempt,
            state,
            exit_code,
            signal,
            reason: reason.clone(),
            will_retry,
            class,
        })?;
        let mut detail = reason.unwrap_or_else(|| format!("{elapsed:.1}s"));
        if will_retry && matches!(f.outcome, Outcome::DependencyFailed) {
            detail.push_str("; submitted again when what it needs is");
        } else if will_retry {
            detail.push_str(", will retry");
        }
        self.progress.step(state, &inst.name, &detail);
        if self.slots[i].on_slurm && state != StepState::Succeeded {
            self.release_dependents(&inst.group, job.as_deref(), exit_code == Some(0));
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
            let waits = job.is_some_and(|id| sj.after.iter().any(|a| a == id));
            let started_on_it =
                slurm_saw_success && self.plan.instances[j].needs.iter().any(|g| g == group);
            if !sj.on_slurm || sj.cancel_requested || !(waits || started_on_it) {
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
