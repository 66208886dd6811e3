//! The shared view over a fake cluster and a fake clock: each member gets a backend of its own, so
//! which one the controller heard from tells who polled.

use super::*;
use crate::slurm::fakes::{Call, FakeClock, FakeSlurm, config, job};
use crate::slurm::model::JobState;

fn member(dir: &Path, fake: &Arc<FakeSlurm>, clock: &Arc<FakeClock>, cfg: PollerConfig) -> View {
    View::open(dir, fake.clone(), cfg, clock.clone()).unwrap()
}

fn quiet() -> PollerConfig {
    PollerConfig {
        partitions_every: None,
        initial_history: false,
        ..config()
    }
}

/// Lets file times move past the same-jiffy window, then ticks.
fn tick(v: &mut View) -> Option<JobsSnapshot> {
    std::thread::sleep(Duration::from_millis(60));
    v.tick()
}

#[test]
fn one_member_polls_and_the_others_read_its_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new();
    let (fa, fb) = (FakeSlurm::new(clock.clone()), FakeSlurm::new(clock.clone()));
    for f in [&fa, &fb] {
        f.set_queue(vec![job(1, JobState::Running), job(2, JobState::Pending)]);
    }
    let mut a = member(dir.path(), &fa, &clock, quiet());
    let mut b = member(dir.path(), &fb, &clock, quiet());
    let first = tick(&mut a).expect("the first member polls at once");
    assert!(a.is_owner() && !b.is_owner());
    assert_eq!(first.jobs.len(), 2);
    let seen = tick(&mut b).expect("the reader sees the owner's snapshot");
    assert!(!b.is_owner());
    assert_eq!(seen.jobs, first.jobs);
    let (x, y) = (seen.taken_at.unwrap(), first.taken_at.unwrap());
    assert!(x.max(y).duration_since(x.min(y)).unwrap() < Duration::from_millis(1));
    assert_eq!(seen.rpc_total, 1);
    // Ten minutes of both ticking: only the owner's backend was asked, within its budget.
    for _ in 0..40 {
        clock.advance(Duration::from_secs(15));
        a.tick();
        b.tick();
    }
    assert!(fb.calls().is_empty(), "the reader never asked Slurm");
    assert!(!fa.calls().is_empty());
    assert!(!b.is_owner());
}

#[test]
fn a_readers_poke_and_ids_reach_the_owner() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new();
    let (fa, fb) = (FakeSlurm::new(clock.clone()), FakeSlurm::new(clock.clone()));
    fa.set_queue(vec![job(1, JobState::Running)]);
    let mut done = job(7, JobState::Completed);
    done.exit_code = Some(0);
    fa.acct.lock().unwrap().push(done);
    let mut a = member(dir.path(), &fa, &clock, quiet());
    let mut b = member(dir.path(), &fb, &clock, quiet());
    tick(&mut a).unwrap();
    tick(&mut b).unwrap();
    // The owner's next poll is 20 s away; the reader follows job 7 (not the user's queue) and
    // asks for an early poll.
    clock.advance(Duration::from_secs(2));
    assert!(a.next_wake() < clock.now() + Duration::from_secs(1));
    b.ask(Requests {
        poked: true,
        ids: vec!["7".into()],
        ..Requests::default()
    });
    let before = fa.calls().len();
    let snap = tick(&mut a).expect("the owner polls on the reader's poke");
    let calls = &fa.calls()[before..];
    assert_eq!(calls[0].1, Call::Queue);
    assert_eq!(calls[1].1, Call::History(vec!["7".into()], None));
    assert_eq!(snap.job("7").map(|j| j.exit_code), Some(Some(0)));
    // The reader's own view marks its job.
    let seen = tick(&mut b).unwrap();
    assert!(seen.registered.contains("7"));
    assert!(!seen.registered.contains("1"));
    // The union: the reader's smaller budget and wish for partitions.
    let mut c = member(
        dir.path(),
        &fb,
        &clock,
        PollerConfig {
            budget_per_min: 3,
            partitions_every: Some(Duration::from_secs(300)),
            initial_history: false,
            ..config()
        },
    );
    c.tick();
    clock.advance(Duration::from_secs(6));
    tick(&mut a);
    let o = a.owner.as_ref().unwrap();
    assert_eq!(o.core.config().budget_per_min, 3);
    assert_eq!(
        o.core.config().partitions_every,
        Some(Duration::from_secs(300))
    );
}

#[test]
fn a_dead_owner_is_replaced_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new();
    let (fa, fb) = (FakeSlurm::new(clock.clone()), FakeSlurm::new(clock.clone()));
    for f in [&fa, &fb] {
        f.set_queue(vec![job(1, JobState::Running), job(2, JobState::Running)]);
    }
    let mut a = member(dir.path(), &fa, &clock, quiet());
    let mut b = member(dir.path(), &fb, &clock, quiet());
    tick(&mut a).unwrap();
    tick(&mut b).unwrap();
    // The owner hangs (same pid here, so only its heartbeat can tell); meanwhile job 1 ends.
    a.crash();
    let mut one = job(1, JobState::Completed);
    one.exit_code = Some(0);
    fb.set_queue(vec![job(2, JobState::Running)]);
    fb.acct.lock().unwrap().push(one);
    clock.advance(HUNG_AFTER - Duration::from_secs(1));
    assert!(tick(&mut b).is_none() && !b.is_owner(), "not yet hung");
    clock.advance(Duration::from_secs(2));
    let snap = tick(&mut b).expect("the reader takes over and polls");
    assert!(b.is_owner());
    // Its first listing saw job 1 leave and asked accounting for exactly it.
    let calls = fb.calls();
    assert_eq!(calls[0].1, Call::Queue);
    assert_eq!(calls[1].1, Call::History(vec!["1".into()], None));
    assert_eq!(
        snap.job("1").map(|j| (&j.state, j.exit_code)),
        Some((&JobState::Completed, Some(0)))
    );
    assert_eq!(
        crate::util::numbered_files(&dir.path().join("lease"), ".json")
            .iter()
            .map(|(g, _)| *g)
            .collect::<Vec<_>>(),
        [2]
    );
}

#[test]
fn a_leaving_owner_hands_over_at_once_with_its_budget() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new();
    let (fa, fb) = (FakeSlurm::new(clock.clone()), FakeSlurm::new(clock.clone()));
    for f in [&fa, &fb] {
        f.set_queue(vec![job(1, JobState::Running)]);
        f.cost.store(2, std::sync::atomic::Ordering::Relaxed);
    }
    let cfg = || PollerConfig {
        budget_per_min: 4,
        ..quiet()
    };
    let mut a = member(dir.path(), &fa, &clock, cfg());
    let mut b = member(dir.path(), &fb, &clock, cfg());
    tick(&mut a).unwrap();
    a.ask(Requests {
        poked: true,
        ..Requests::default()
    });
    clock.advance(Duration::from_secs(3));
    tick(&mut a).unwrap();
    assert_eq!(fa.rpc_count(), 4, "the owner spent its minute's budget");
    tick(&mut b).unwrap();
    a.leave();
    tick(&mut b);
    assert!(b.is_owner(), "a released lease is taken at the next tick");
    assert!(
        fb.calls().is_empty(),
        "the budget carried over: no room yet"
    );
    clock.advance(Duration::from_secs(61));
    tick(&mut b).expect("once the old owner's charges are a minute old there is room");
    assert_eq!(fb.calls().len(), 1);
}

#[test]
fn dead_members_wants_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new();
    let fa = FakeSlurm::new(clock.clone());
    fa.set_queue(vec![job(1, JobState::Running)]);
    let mut a = member(dir.path(), &fa, &clock, quiet());
    let gone = dir.path().join("want/999999999-x.json");
    let dead = Wants {
        pid: u32::MAX / 2,
        budget_per_min: 1,
        ..Wants::default()
    };
    std::fs::write(&gone, serde_json::to_vec(&dead).unwrap()).unwrap();
    tick(&mut a).unwrap();
    assert!(!gone.exists());
    assert_eq!(a.owner.as_ref().unwrap().core.config().budget_per_min, 6);
}
