//! Control requests: cancel, retry and re-run, answered in the log.
use super::Engine;
use crate::runlog::StepState;
use crate::runlog::control::{self, Request};
use crate::runlog::events::Event;
use color_eyre::eyre::Result;

impl Engine {
    /// Applies a request; returns the message for its answer, or why it was refused.
    pub(super) fn apply(&mut self, req: &Request) -> std::result::Result<String, String> {
        let io = |e: color_eyre::Report| e.to_string();
        match req {
            Request::Cancel { step: None } => {
                let n = self.cancel_all("cancelled by request");
                Ok(format!("cancelling the run ({n} running steps stopped)"))
            }
            Request::Cancel { step: Some(name) } => {
                let targets = self.instances_named(name);
                if targets.is_empty() {
                    return Err(format!("no step named {name:?} in run {}", self.run_id));
                }
                let mut n = 0;
                for i in targets {
                    match self.state(i) {
                        StepState::Running => {
                            self.slots[i].cancel_requested = true;
                            if let Some(a) = self.slots[i].running {
                                self.cancel_attempt(i, a);
                            }
                            n += 1;
                        }
                        StepState::Pending | StepState::Queued => {
                            self.set_state(
                                i,
                                StepState::Cancelled,
                                Some("cancelled by request".into()),
                                false,
                            )
                            .map_err(io)?;
                            n += 1;
                        }
                        _ => {}
                    }
                }
                if n == 0 {
                    return Err(format!(
                        "{name} is not pending or running: nothing to cancel"
                    ));
                }
                Ok(format!("cancelling {n} step instance(s) of {name}"))
            }
            Request::Retry => {
                let targets: Vec<usize> = (0..self.slots.len())
                    .filter(|&i| {
                        matches!(
                            self.state(i),
                            StepState::Failed | StepState::Blocked | StepState::Cancelled
                        )
                    })
                    .collect();
                if targets.is_empty() {
                    return Err("no failed, blocked or cancelled steps to retry".into());
                }
                self.cancelling = false;
                self.tripped = false;
                for &i in &targets {
                    self.set_state(i, StepState::Pending, Some("retry requested".into()), false)
                        .map_err(io)?;
                }
                Ok(format!("retrying {} step instance(s)", targets.len()))
            }
            Request::Rerun { step, downstream } => {
                let mut targets = self.instances_named(step);
                if targets.is_empty() {
                    return Err(format!("no step named {step:?} in run {}", self.run_id));
                }
                if *downstream {
                    let group = self.plan.instances[targets[0]].group.clone();
                    for g in self.plan.downstream_groups(&group) {
                        targets.extend(self.members.get(&g).cloned().unwrap_or_default());
                    }
                }
                if let Some(&i) = targets
                    .iter()
                    .find(|&&i| self.state(i) == StepState::Running)
                {
                    return Err(format!(
                        "{} is running: cancel it first, or wait for it to end",
                        self.plan.instances[i].name
                    ));
                }
                self.cancelling = false;
                self.tripped = false;
                for &i in &targets {
                    self.set_state(i, StepState::Pending, Some("re-run requested".into()), true)
                        .map_err(io)?;
                }
                // Steps blocked only because of what is re-run now may run again when it succeeds.
                let group = self.plan.instances[targets[0]].group.clone();
                for g in self.plan.downstream_groups(&group) {
                    for i in self.members.get(&g).cloned().unwrap_or_default() {
                        if self.state(i) == StepState::Blocked {
                            self.set_state(
                                i,
                                StepState::Pending,
                                Some("upstream re-run".into()),
                                false,
                            )
                            .map_err(io)?;
                        }
                    }
                }
                Ok(format!("re-running {} step instance(s)", targets.len()))
            }
        }
    }

    /// Answers the requests waiting in the control directory.
    pub(super) fn handle_requests(&mut self) -> Result<()> {
        for p in control::pending(&self.run) {
            let id = p.id();
            let (kind, result) = match &p.request {
                Ok(env) => (env.request.kind().to_string(), self.apply(&env.request)),
                Err(e) => (
                    "unknown".to_string(),
                    Err(format!("unreadable request: {e}")),
                ),
            };
            let (ok, message) = match result {
                Ok(m) => (true, m),
                Err(m) => (false, m),
            };
            self.progress.summary(&format!("{kind}: {message}"));
            self.emit(Event::Request {
                id,
                kind,
                ok,
                message,
            })?;
            let _ = control::done(&self.run, &p);
        }
        Ok(())
    }

    /// Stops everything: running steps get SIGTERM, pending ones are cancelled by the next schedule pass.
    pub(super) fn cancel_all(&mut self, why: &str) -> usize {
        self.cancelling = true;
        self.cancel_reason = why.to_string();
        let mut n = 0;
        for i in 0..self.slots.len() {
            if let Some(a) = self.slots[i].running {
                self.slots[i].cancel_requested = true;
                self.cancel_attempt(i, a);
                n += 1;
            }
        }
        n
    }
}
