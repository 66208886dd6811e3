//! How a Slurm attempt ended, from two witnesses: the exit-code sentinel the batch script writes (the
//! truth about the step's own exit) and Slurm's record of the job (the truth about what Slurm did to
//! it: out of memory, time limit, node failure, preemption, cancel). Pure, so every case is tested.

use crate::executor::Outcome;
use crate::slurm::{Job, JobState};
use std::time::Duration;

/// What Slurm says about the job, as far as the latest poll knows.
#[derive(Clone, Copy, Debug)]
pub enum Seen<'a> {
    /// In the queue (pending, running, completing) or requeued.
    Active(&'a Job),
    /// Ended, with its final state.
    Ended(&'a Job),
    /// In neither the queue nor accounting (yet, or any more).
    Unknown,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Wait,
    Done(Outcome),
}

/// The facts about one attempt at one moment.
#[derive(Clone, Debug)]
pub struct Observation<'a> {
    pub job_id: &'a str,
    pub sentinel: Option<Outcome>,
    pub seen: Seen<'a>,
    /// The engine asked Slurm to cancel it.
    pub cancel_requested: bool,
    /// ... and `scancel` succeeded.
    pub cancel_confirmed: bool,
    /// How long the job has been ended (or unknown) with no sentinel visible.
    pub missing_for: Duration,
    /// How long a sentinel may take to appear (NFS attribute caches) before the attempt is lost.
    pub grace: Duration,
}

/// A sentinel's outcome under Slurm: exit 137 is the kernel's OOM killer at work.
fn from_sentinel(o: Outcome) -> Outcome {
    match o {
        Outcome::Exited(137) => Outcome::OutOfMemory,
        other => other,
    }
}

/// A sentinel that says all there is to say: the step's shell exited on its own with a code that no
/// signal produced. Only codes from 128 up (killed: OOM, time limit, preemption, cancel) need
/// Slurm's word on why.
pub fn self_explaining(o: &Option<Outcome>) -> bool {
    matches!(o, Some(Outcome::Exited(c)) if (0..128).contains(c))
}

pub fn decide(o: &Observation<'_>) -> Verdict {
    if self_explaining(&o.sentinel) {
        return Verdict::Done(o.sentinel.clone().expect("checked"));
    }
    match o.seen {
        // Cancelled by sortie: the batch shell's sentinel, or a pending job that scancel removed,
        // ends it without waiting for the next poll.
        Seen::Active(_) if o.cancel_requested && o.sentinel.is_some() => {
            Verdict::Done(o.sentinel.clone().expect("checked"))
        }
        Seen::Active(j) if o.cancel_confirmed && j.state == JobState::Pending => {
            Verdict::Done(Outcome::Signaled(15))
        }
        // Submitted and cancelled before any poll saw it: scancel took it, it never ran.
        Seen::Unknown if o.cancel_confirmed && o.sentinel.is_none() => {
            Verdict::Done(Outcome::Signaled(15))
        }
        // A non-zero sentinel of a job Slurm still holds may be from an incarnation it requeued.
        Seen::Active(_) => Verdict::Wait,
        Seen::Ended(job) => match &job.state {
            JobState::OutOfMemory => Verdict::Done(Outcome::OutOfMemory),
            JobState::Timeout | JobState::Deadline => Verdict::Done(Outcome::TimedOut),
            JobState::NodeFail | JobState::BootFail => {
                Verdict::Done(Outcome::NodeFailed(job.nodes.clone()))
            }
            JobState::Preempted => Verdict::Done(Outcome::Preempted),
            JobState::Cancelled | JobState::Revoked => {
                if o.cancel_requested {
                    Verdict::Done(Outcome::Signaled(15))
                } else if job
                    .reason
                    .as_deref()
                    .is_some_and(|r| r.contains("Dependency"))
                {
                    Verdict::Done(Outcome::DependencyFailed)
                } else {
                    // Slurm does not say who: scancel by the user, or an admin.
                    Verdict::Done(Outcome::CancelledOutside(
                        "scancel by a user or an admin".into(),
                    ))
                }
            }
            state => match &o.sentinel {
                Some(s) => Verdict::Done(from_sentinel(s.clone())),
                None if o.missing_for >= o.grace => Verdict::Done(Outcome::Lost(format!(
                    "Slurm job {} ended {} but its exit-code file did not appear within {}",
                    o.job_id,
                    state.name(),
                    crate::util::human_duration(o.grace.as_secs_f64())
                ))),
                None => Verdict::Wait,
            },
        },
        Seen::Unknown => match &o.sentinel {
            Some(s) => Verdict::Done(from_sentinel(s.clone())),
            None if o.missing_for >= o.grace => Verdict::Done(Outcome::Lost(format!(
                "Slurm job {} is in neither the queue nor accounting, and left no exit-code file",
                o.job_id
            ))),
            None => Verdict::Wait,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(state: JobState, reason: Option<&str>) -> Job {
        Job {
            id: "7".into(),
            state,
            reason: reason.map(str::to_string),
            nodes: Some("n3".into()),
            ..Job::default()
        }
    }

    fn obs<'a>(sentinel: Option<Outcome>, seen: Seen<'a>) -> Observation<'a> {
        Observation {
            job_id: "7",
            sentinel,
            seen,
            cancel_requested: false,
            cancel_confirmed: false,
            missing_for: Duration::ZERO,
            grace: Duration::from_secs(60),
        }
    }

    #[test]
    fn a_zero_sentinel_is_success_whatever_slurm_says_so_far() {
        let running = job(JobState::Running, None);
        assert_eq!(
            decide(&obs(Some(Outcome::Exited(0)), Seen::Active(&running))),
            Verdict::Done(Outcome::Exited(0))
        );
        assert_eq!(
            decide(&obs(Some(Outcome::Exited(0)), Seen::Unknown)),
            Verdict::Done(Outcome::Exited(0))
        );
    }

    #[test]
    fn a_failure_waits_for_slurm_to_say_why() {
        let running = job(JobState::Running, None);
        assert_eq!(
            decide(&obs(Some(Outcome::Signaled(15)), Seen::Active(&running))),
            Verdict::Wait
        );
        assert_eq!(
            decide(&obs(Some(Outcome::Exited(137)), Seen::Active(&running))),
            Verdict::Wait
        );
        // An ordinary exit code needs no word from Slurm.
        assert_eq!(
            decide(&obs(Some(Outcome::Exited(4)), Seen::Active(&running))),
            Verdict::Done(Outcome::Exited(4))
        );
        assert_eq!(
            decide(&obs(Some(Outcome::Exited(4)), Seen::Unknown)),
            Verdict::Done(Outcome::Exited(4))
        );
        let timeout = job(JobState::Timeout, None);
        assert_eq!(
            decide(&obs(Some(Outcome::Signaled(15)), Seen::Ended(&timeout))),
            Verdict::Done(Outcome::TimedOut)
        );
        let failed = job(JobState::Failed, None);
        assert_eq!(
            decide(&obs(Some(Outcome::Exited(3)), Seen::Ended(&failed))),
            Verdict::Done(Outcome::Exited(3))
        );
        assert_eq!(
            decide(&obs(Some(Outcome::Exited(137)), Seen::Ended(&failed))),
            Verdict::Done(Outcome::OutOfMemory)
        );
    }

    #[test]
    fn slurm_states_classify_failures() {
        let cases = [
            (job(JobState::OutOfMemory, None), Outcome::OutOfMemory),
            (job(JobState::Deadline, None), Outcome::TimedOut),
            (
                job(JobState::NodeFail, None),
                Outcome::NodeFailed(Some("n3".into())),
            ),
            (job(JobState::Preempted, None), Outcome::Preempted),
            (
                job(JobState::Cancelled, Some("Dependency")),
                Outcome::DependencyFailed,
            ),
            (
                job(JobState::Cancelled, None),
                Outcome::CancelledOutside("scancel by a user or an admin".into()),
            ),
        ];
        for (j, want) in cases {
            assert_eq!(decide(&obs(None, Seen::Ended(&j))), Verdict::Done(want));
        }
        let cancelled = job(JobState::Cancelled, None);
        let mut o = obs(None, Seen::Ended(&cancelled));
        o.cancel_requested = true;
        assert_eq!(decide(&o), Verdict::Done(Outcome::Signaled(15)));
    }

    #[test]
    fn a_cancel_ends_without_waiting_for_slurm() {
        let running = job(JobState::Running, None);
        let mut o = obs(Some(Outcome::Signaled(15)), Seen::Active(&running));
        assert_eq!(decide(&o), Verdict::Wait);
        o.cancel_requested = true;
        assert_eq!(decide(&o), Verdict::Done(Outcome::Signaled(15)));
        let pending = job(JobState::Pending, None);
        let mut o = obs(None, Seen::Active(&pending));
        o.cancel_requested = true;
        assert_eq!(decide(&o), Verdict::Wait);
        o.cancel_confirmed = true;
        assert_eq!(decide(&o), Verdict::Done(Outcome::Signaled(15)));
        let mut o = obs(None, Seen::Unknown);
        o.cancel_requested = true;
        assert_eq!(decide(&o), Verdict::Wait);
        o.cancel_confirmed = true;
        assert_eq!(decide(&o), Verdict::Done(Outcome::Signaled(15)));
    }

    #[test]
    fn a_missing_sentinel_gets_a_grace_period() {
        let done = job(JobState::Completed, None);
        let mut o = obs(None, Seen::Ended(&done));
        o.missing_for = Duration::from_secs(59);
        assert_eq!(decide(&o), Verdict::Wait);
        o.missing_for = Duration::from_secs(60);
        assert!(matches!(decide(&o), Verdict::Done(Outcome::Lost(m)) if m.contains("COMPLETED")));
        let mut o = obs(None, Seen::Unknown);
        assert_eq!(decide(&o), Verdict::Wait);
        o.missing_for = Duration::from_secs(61);
        assert!(matches!(decide(&o), Verdict::Done(Outcome::Lost(_))));
    }
}
