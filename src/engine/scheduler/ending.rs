//! How an attempt ended and what follows, as pure functions: the outcome an executor reported becomes the
//! step's state, exit code, signal, reason and failure class ([`judge`]); the retry budget, the backoff
//! and the next Slurm request decide the next attempt ([`follow`]). The engine applies both
//! (`attempt_end.rs`); nothing here touches files, clocks or the log.

use super::slurm;
use crate::executor::{JobFacts, Outcome};
use crate::pipeline::Instance;
use crate::runlog::StepState;
use crate::runlog::events::SlurmRequest;
use crate::runlog::state::costs_a_try;
use std::time::Duration;

/// The longest wait between two attempts, however many failed.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// What is known of an attempt when it ends, beside its outcome.
#[derive(Clone, Debug, Default)]
pub(super) struct EndFacts<'a> {
    pub on_slurm: bool,
    /// The Slurm job it ran in.
    pub job: Option<&'a str>,
    /// The step's own time limit (local steps).
    pub timeout_s: Option<f64>,
    /// Outputs the step declares that are not there (read only after an exit 0).
    pub missing: &'a [String],
    /// Started by an engine that died (this one adopted it).
    pub adopted: bool,
    /// Someone asked for it to stop (a cancel, fail-fast, the run's end).
    pub cancel_requested: bool,
}

/// How an attempt ended, as the log records it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Ending {
    pub state: StepState,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub reason: Option<String>,
    pub class: Option<&'static str>,
    /// Lost while adopted (its engine died while it ran): one extra try on top of the budget.
    pub lost: bool,
    /// Not this step's failure (preempted, a job it waited on failed): it costs no try.
    pub free: bool,
}

/// The step state, exit code, reason and failure class of an attempt that ended with `outcome`.
pub(super) fn judge(outcome: &Outcome, at: &EndFacts) -> Ending {
    let on_job = at
        .job
        .map(|j| format!(" (Slurm job {j})"))
        .unwrap_or_default();
    let failed = |reason: String| (StepState::Failed, None, None, Some(reason));
    let (mut state, exit_code, signal, reason) = match outcome {
        Outcome::Exited(0) if at.missing.is_empty() => (StepState::Succeeded, Some(0), None, None),
        Outcome::Exited(0) => {
            let why = format!("exited 0 but did not write {}", at.missing.join(", "));
            (StepState::Failed, Some(0), None, Some(why))
        }
        Outcome::Exited(c) => (
            StepState::Failed,
            Some(*c),
            None,
            Some(format!("exit code {c}")),
        ),
        Outcome::Signaled(s) => (
            StepState::Failed,
            None,
            Some(*s),
            Some(format!("killed by signal {s}")),
        ),
        Outcome::TimedOut if at.on_slurm => failed(format!("hit its Slurm time limit{on_job}")),
        Outcome::TimedOut => failed(format!("timed out after {}s", at.timeout_s.unwrap_or(0.0))),
        Outcome::Lost(m) => failed(m.clone()),
        Outcome::OutOfMemory => failed(format!("ran out of memory{on_job}")),
        Outcome::NodeFailed(n) => failed(format!(
            "its node {} failed{on_job}",
            n.as_deref().unwrap_or("(unknown)")
        )),
        Outcome::Preempted => failed(format!(
            "preempted{on_job}; resubmitted without using a retry"
        )),
        Outcome::DependencyFailed => (
            StepState::Cancelled,
            None,
            None,
            Some(format!(
                "a job it waits on did not succeed; its own{} never ran",
                at.job
                    .map(|j| format!(" Slurm job {j}"))
                    .unwrap_or_else(|| " job".into())
            )),
        ),
        Outcome::CancelledOutside(by) => (
            StepState::Cancelled,
            None,
            None,
            Some(format!("cancelled outside sortie{on_job}: {by}")),
        ),
    };
    if at.cancel_requested && state == StepState::Failed {
        state = StepState::Cancelled;
    }
    let class = outcome.class();
    Ending {
        state,
        exit_code,
        signal,
        reason,
        class,
        lost: at.adopted && matches!(outcome, Outcome::Lost(_)),
        free: !at.cancel_requested && !costs_a_try(class),
    }
}

/// Where the step's retries stand when an attempt ends.
#[derive(Clone, Copy, Debug)]
pub(super) struct Budget {
    /// Attempts since the last retry/rerun reset, the one that ended included (unless it was free).
    pub round: u32,
    pub retries: u32,
    pub backoff_s: f64,
    /// The run is being cancelled, or fail-fast tripped: nothing is tried again.
    pub stopping: bool,
}

/// What follows an attempt's end.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum FollowUp {
    /// No further attempt: the ending is the step's state.
    Stop,
    /// Another attempt after `backoff` (zero: at once), asking Slurm for `request`.
    Retry {
        backoff: Duration,
        request: SlurmRequest,
    },
}

/// Whether (and when, and with which Slurm request) the step is tried again after `ending`.
pub(super) fn follow(
    ending: &Ending,
    budget: Budget,
    inst: &Instance,
    request: &SlurmRequest,
    facts: Option<&JobFacts>,
) -> FollowUp {
    let limit = tries_per_round(budget.retries, ending.lost);
    let retry = (ending.state == StepState::Failed || ending.free)
        && !budget.stopping
        && budget.round < limit;
    if !retry {
        return FollowUp::Stop;
    }
    let backoff = if ending.free {
        Duration::ZERO
    } else {
        let secs = budget.backoff_s.max(0.0) * 2f64.powi(budget.round.saturating_sub(1) as i32);
        Duration::from_secs_f64(secs.min(MAX_BACKOFF.as_secs_f64()))
    };
    let mut request = request.clone();
    if inst.executor == crate::pipeline::ExecutorKind::Slurm
        && let Some(c) = ending.class
    {
        slurm::escalate(inst, &mut request, c, facts);
    }
    FollowUp::Retry { backoff, request }
}

/// Tries a step gets in one round: the first and its retries, plus one when its engine died under it.
fn tries_per_round(retries: u32, lost: bool) -> u32 {
    retries + 1 + u32::from(lost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::ExecutorKind;

    /// outcome, facts, state, exit code, signal, reason, class, lost, free
    type JudgeRow<'a> = (
        Outcome,
        &'a EndFacts<'a>,
        StepState,
        Option<i32>,
        Option<i32>,
        Option<&'a str>,
        Option<&'static str>,
        bool,
        bool,
    );
    /// what, ending, budget, step, Slurm's facts, expected
    type FollowRow<'a> = (
        &'a str,
        Ending,
        Budget,
        &'a Instance,
        Option<&'a JobFacts>,
        FollowUp,
    );

    fn inst(executor: ExecutorKind) -> Instance {
        Instance {
            executor,
            ..slurm::tests::inst()
        }
    }

    #[test]
    fn outcomes_become_states_codes_reasons_and_classes() {
        let missing = ["model.pt".to_string()];
        let local = EndFacts {
            timeout_s: Some(5.0),
            ..EndFacts::default()
        };
        let slurm = EndFacts {
            on_slurm: true,
            job: Some("42"),
            ..EndFacts::default()
        };
        let unwritten = EndFacts {
            missing: &missing,
            ..EndFacts::default()
        };
        let cancelled = EndFacts {
            cancel_requested: true,
            ..EndFacts::default()
        };
        let adopted = EndFacts {
            adopted: true,
            ..EndFacts::default()
        };
        use StepState::{Cancelled, Failed, Succeeded};
        #[rustfmt::skip]
        let table: Vec<JudgeRow> = vec![
            (Outcome::Exited(0), &local, Succeeded, Some(0), None, None, None, false, false),
            (Outcome::Exited(0), &unwritten, Failed, Some(0), None, Some("exited 0 but did not write model.pt"), None, false, false),
            (Outcome::Exited(3), &local, Failed, Some(3), None, Some("exit code 3"), None, false, false),
            (Outcome::Exited(3), &cancelled, Cancelled, Some(3), None, Some("exit code 3"), None, false, false),
            (Outcome::Signaled(9), &local, Failed, None, Some(9), Some("killed by signal 9"), None, false, false),
            (Outcome::TimedOut, &local, Failed, None, None, Some("timed out after 5s"), Some("timeout"), false, false),
            (Outcome::TimedOut, &slurm, Failed, None, None, Some("hit its Slurm time limit (Slurm job 42)"), Some("timeout"), false, false),
            (Outcome::Lost("gone".into()), &local, Failed, None, None, Some("gone"), None, false, false),
            (Outcome::Lost("gone".into()), &adopted, Failed, None, None, Some("gone"), None, true, false),
            (Outcome::OutOfMemory, &slurm, Failed, None, None, Some("ran out of memory (Slurm job 42)"), Some("oom"), false, false),
            (Outcome::NodeFailed(Some("n7".into())), &slurm, Failed, None, None, Some("its node n7 failed (Slurm job 42)"), Some("node_fail"), false, false),
            (Outcome::NodeFailed(None), &local, Failed, None, None, Some("its node (unknown) failed"), Some("node_fail"), false, false),
            (Outcome::Preempted, &slurm, Failed, None, None, Some("preempted (Slurm job 42); resubmitted without using a retry"), Some("preempted"), false, true),
            (Outcome::Preempted, &cancelled, Cancelled, None, None, Some("preempted; resubmitted without using a retry"), Some("preempted"), false, false),
            (Outcome::DependencyFailed, &slurm, Cancelled, None, None, Some("a job it waits on did not succeed; its own Slurm job 42 never ran"), Some("dependency"), false, true),
            (Outcome::DependencyFailed, &local, Cancelled, None, None, Some("a job it waits on did not succeed; its own job never ran"), Some("dependency"), false, true),
            (Outcome::CancelledOutside("root".into()), &slurm, Cancelled, None, None, Some("cancelled outside sortie (Slurm job 42): root"), Some("cancelled"), false, false),
        ];
        for (outcome, facts, state, exit_code, signal, reason, class, lost, free) in table {
            let got = judge(&outcome, facts);
            let want = Ending {
                state,
                exit_code,
                signal,
                reason: reason.map(str::to_string),
                class,
                lost,
                free,
            };
            assert_eq!(got, want, "{outcome:?}");
        }
    }

    fn ending(state: StepState, class: Option<&'static str>, lost: bool, free: bool) -> Ending {
        Ending {
            state,
            exit_code: None,
            signal: None,
            reason: None,
            class,
            lost,
            free,
        }
    }

    #[test]
    fn what_follows_an_end() {
        let (local, on_slurm) = (inst(ExecutorKind::Local), inst(ExecutorKind::Slurm));
        let budget = |round, stopping| Budget {
            round,
            retries: 2,
            backoff_s: 10.0,
            stopping,
        };
        let node = JobFacts {
            nodes: Some("n7".into()),
            ..JobFacts::default()
        };
        let none = SlurmRequest::default();
        let retry = |secs: u64, request: SlurmRequest| FollowUp::Retry {
            backoff: Duration::from_secs(secs),
            request,
        };
        use StepState::{Cancelled, Failed, Succeeded};
        #[rustfmt::skip]
        let table: Vec<FollowRow> = vec![
            ("success", ending(Succeeded, None, false, false), budget(1, false), &local, None, FollowUp::Stop),
            ("first failure: backoff", ending(Failed, None, false, false), budget(1, false), &local, None, retry(10, none.clone())),
            ("second failure: doubled", ending(Failed, None, false, false), budget(2, false), &local, None, retry(20, none.clone())),
            ("budget spent", ending(Failed, None, false, false), budget(3, false), &local, None, FollowUp::Stop),
            ("lost while adopted: one more", ending(Failed, None, true, false), budget(3, false), &local, None, retry(40, none.clone())),
            ("run stopping", ending(Failed, None, false, false), budget(1, true), &local, None, FollowUp::Stop),
            ("cancelled", ending(Cancelled, None, false, false), budget(1, false), &local, None, FollowUp::Stop),
            ("preempted: at once", ending(Failed, Some("preempted"), false, true), budget(0, false), &on_slurm, None, retry(0, none.clone())),
            ("dependency: at once", ending(Cancelled, Some("dependency"), false, true), budget(0, false), &on_slurm, None, retry(0, none.clone())),
            ("oom: more memory", ending(Failed, Some("oom"), false, false), budget(1, false), &on_slurm, None, retry(10, SlurmRequest { mem_mb: Some(200), ..none.clone() })),
            ("timeout: more time", ending(Failed, Some("timeout"), false, false), budget(1, false), &on_slurm, None, retry(10, SlurmRequest { time_s: Some(90), ..none.clone() })),
            ("node failed: avoid it", ending(Failed, Some("node_fail"), false, false), budget(1, false), &on_slurm, Some(&node), retry(10, SlurmRequest { exclude: vec!["n7".into()], ..none.clone() })),
            ("local timeout: same request", ending(Failed, Some("timeout"), false, false), budget(1, false), &local, None, retry(10, none.clone())),
        ];
        for (what, ending, budget, inst, facts, want) in table {
            assert_eq!(follow(&ending, budget, inst, &none, facts), want, "{what}");
        }
    }

    #[test]
    fn backoff_is_capped() {
        let e = ending(StepState::Failed, None, false, false);
        let mut i = inst(ExecutorKind::Local);
        i.retries = 100;
        let b = Budget {
            round: 40,
            retries: 100,
            backoff_s: 10.0,
            stopping: false,
        };
        let FollowUp::Retry { backoff, .. } = follow(&e, b, &i, &SlurmRequest::default(), None)
        else {
            panic!("no retry");
        };
        assert_eq!(backoff, MAX_BACKOFF);
    }
}
