//! Resuming a run: the state rebuilt from its log, attempts a dead engine left running adopted.

use super::{Engine, Launch, slurm};
use crate::runlog::events::Event;
use crate::runlog::{RunState, StepState};
use color_eyre::eyre::Result;
use std::time::Instant;

impl Engine {
    /// Carries on from the fold of the log: follows the Slurm jobs it names and adopts the local
    /// attempts a dead engine left running.
    pub(super) async fn resume(&mut self) -> Result<()> {
        let generation = self.lease.info.generation;
        self.created = self.fold.created;
        self.submit_seq = slurm::last_submit_seq(&self.fold);
        self.emit(Event::EngineStarted {
            host: self.host.clone(),
            pid: std::process::id(),
            generation,
        })?;
        for (i, inst) in self.plan.instances.clone().iter().enumerate() {
            let s = self.step(i);
            let open = (s.state == StepState::Running)
                .then(|| s.open_attempt().cloned())
                .flatten();
            let launch = self.slots[i].launch;
            if launch == Launch::Slurm {
                self.slots[i].request = slurm::next_request(inst, self.step(i));
            }
            let Some(a) = open else {
                continue;
            };
            if launch == Launch::Slurm {
                self.resume_slurm(i, a).await?;
                continue;
            }
            // Alive while its process group runs (this host) or its heartbeat is fresh (another).
            let slot = &mut self.slots[i];
            slot.running = Some(a.attempt);
            slot.started = Some(Instant::now());
            slot.adopted = true;
            self.in_use += slot.weight;
            self.exec.adopt(&inst.name, &a, self.done_tx.clone());
            self.progress.step(
                StepState::Running,
                &inst.name,
                "adopted from the previous engine",
            );
        }
        Ok(())
    }

    /// A finished run that requests reopened goes back to running.
    pub(super) fn reopen_if_needed(&mut self) -> Result<()> {
        let open = self.states().any(|s| {
            matches!(
                s,
                StepState::Pending | StepState::Queued | StepState::Running
            )
        });
        if self.fold.state != RunState::Running && open {
            self.emit(Event::RunState {
                state: RunState::Running,
            })?;
        }
        Ok(())
    }
}
