//! Resuming a run: the state rebuilt from its log, attempts a dead engine left running adopted.
use super::{Engine, slurm};
use crate::runlog::events::Event;
use crate::runlog::state::fold;
use crate::runlog::{RunState, StepState};
use color_eyre::eyre::{Result, eyre};
use std::time::Instant;

impl Engine {
    /// Rebuilds the state from the log; adopts attempts a dead engine left running.
    pub(super) async fn resume(&mut self) -> Result<()> {
        let records = crate::runlog::events::read_all(&self.run.events())?;
        let f = fold(&records)
            .ok_or_else(|| eyre!("{} has no run_created event", self.run.events().display()))?;
        let generation = self.lease.info.generation;
        self.created = records.first().map_or(0.0, |r| r.ts);
        self.submit_seq = slurm::last_submit_seq(&f);
        self.emit(Event::EngineStarted {
            host: self.host.clone(),
            pid: std::process::id(),
            generation,
        })?;
        for (i, inst) in self.plan.instances.clone().iter().enumerate() {
            let Some(s) = f.steps.get(&inst.name) else {
                continue;
            };
            let slot = &mut self.slots[i];
            slot.attempts = s.attempts.iter().map(|a| a.attempt).max().unwrap_or(0);
            slot.round = s.attempts_this_round;
            slot.key = s.key.clone();
            slot.force = s.force;
            slot.result_dir = s.result_dir();
            slot.state = match s.state {
                StepState::Queued => StepState::Pending,
                st => st,
            };
            if slot.on_slurm {
                slot.request = slurm::next_request(inst, s);
            }
            if s.state == StepState::Running
                && let Some(a) = s.last_attempt()
                && a.ended.is_none()
                && self.slots[i].on_slurm
            {
                self.resume_slurm(i, a.clone()).await?;
                continue;
            }
            let slot = &mut self.slots[i];
            if s.state == StepState::Running
                && let Some(a) = s.last_attempt()
                && a.ended.is_none()
            {
                // Alive while its process group runs (this host) or its heartbeat is fresh (another).
                slot.running = Some(a.attempt);
                slot.started = Some(Instant::now());
                slot.adopted = true;
                self.in_use += slot.weight;
                self.exec.adopt(&inst.name, a, self.done_tx.clone());
                self.progress.step(
                    StepState::Running,
                    &inst.name,
                    "adopted from the previous engine",
                );
            }
        }
        Ok(())
    }

    /// A finished run that requests reopened goes back to running.
    pub(super) fn reopen_if_needed(&mut self) -> Result<()> {
        let records = crate::runlog::events::read_all(&self.run.events())?;
        let state = fold(&records).map(|f| f.state).unwrap_or(RunState::Running);
        let open = self.slots.iter().any(|s| {
            matches!(
                s.state,
                StepState::Pending | StepState::Queued | StepState::Running
            )
        });
        if state != RunState::Running && open {
            self.emit(Event::RunState {
                state: RunState::Running,
            })?;
        }
        Ok(())
    }
}
