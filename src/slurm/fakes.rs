//! A cluster and a clock in memory, for the poller's and the shared view's tests.

use super::backend::{HistoryQuery, JobQuery, SlurmBackend, id_matches};
use super::error::{Result, SlurmError};
use super::model::{Job, JobState, Partition};
use super::poller::{Clock, PollerConfig};
use super::scontrol::JobDetails;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A clock that moves only when told.
pub struct FakeClock {
    base: Instant,
    offset: Mutex<Duration>,
}

impl FakeClock {
    pub fn new() -> Arc<FakeClock> {
        Arc::new(FakeClock {
            base: Instant::now(),
            offset: Mutex::new(Duration::ZERO),
        })
    }

    pub fn advance(&self, d: Duration) {
        *self.offset.lock().unwrap() += d;
    }

    pub fn set(&self, at: Instant) {
        let mut o = self.offset.lock().unwrap();
        *o = (*o).max(at.saturating_duration_since(self.base));
    }

    pub fn elapsed(&self) -> Duration {
        *self.offset.lock().unwrap()
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Instant {
        self.base + self.elapsed()
    }

    fn wall(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000) + self.elapsed()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Queue,
    History(Vec<String>, Option<String>),
    Partitions,
}

/// A cluster in memory: the queue is whatever `queue` holds now; accounting knows `acct`.
pub struct FakeSlurm {
    pub clock: Arc<FakeClock>,
    pub queue: Mutex<Vec<Job>>,
    pub acct: Mutex<Vec<Job>>,
    pub calls: Mutex<Vec<(Duration, Call)>>,
    pub rpcs: AtomicU64,
    /// The next this-many queue queries fail as the controller does when overloaded.
    pub failing: AtomicU64,
    /// Commands each call costs (the CLI's JSON fallback costs two).
    pub cost: AtomicU64,
    pub latency: Duration,
}

impl FakeSlurm {
    pub fn new(clock: Arc<FakeClock>) -> Arc<FakeSlurm> {
        FakeSlurm::with_latency(clock, Duration::from_millis(300))
    }

    pub fn with_latency(clock: Arc<FakeClock>, latency: Duration) -> Arc<FakeSlurm> {
        Arc::new(FakeSlurm {
            clock,
            queue: Mutex::new(Vec::new()),
            acct: Mutex::new(Vec::new()),
            calls: Mutex::new(Vec::new()),
            rpcs: AtomicU64::new(0),
            failing: AtomicU64::new(0),
            cost: AtomicU64::new(1),
            latency,
        })
    }

    pub fn call(&self, c: Call) {
        self.calls.lock().unwrap().push((self.clock.elapsed(), c));
        self.rpcs
            .fetch_add(self.cost.load(Ordering::Relaxed), Ordering::Relaxed);
        self.clock.advance(self.latency);
    }

    pub fn calls(&self) -> Vec<(Duration, Call)> {
        self.calls.lock().unwrap().clone()
    }

    pub fn set_queue(&self, jobs: Vec<Job>) {
        *self.queue.lock().unwrap() = jobs;
    }
}

pub fn unsupported<T>() -> Result<T> {
    Err(SlurmError::Unsupported {
        what: "fake".into(),
    })
}

impl SlurmBackend for FakeSlurm {
    fn jobs(&self, _q: &JobQuery) -> Result<Vec<Job>> {
        self.call(Call::Queue);
        if self
            .failing
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(SlurmError::classify(
                "squeue",
                Some(1),
                "slurm_load_jobs error: Socket timed out on send/recv operation",
            ));
        }
        Ok(self.queue.lock().unwrap().clone())
    }
    fn history(&self, q: &HistoryQuery) -> Result<Vec<Job>> {
        self.call(Call::History(q.ids.clone(), q.user.clone()));
        let acct = self.acct.lock().unwrap();
        Ok(acct
            .iter()
            .filter(|j| q.ids.is_empty() || q.ids.iter().any(|id| id_matches(j, id)))
            .cloned()
            .collect())
    }
    fn submit(&self, _s: &Path, _a: &[String]) -> Result<String> {
        unsupported()
    }
    fn cancel(&self, _ids: &[String]) -> Result<()> {
        unsupported()
    }
    fn signal(&self, _id: &str, _s: i32) -> Result<()> {
        unsupported()
    }
    fn hold(&self, _ids: &[String]) -> Result<()> {
        unsupported()
    }
    fn release(&self, _ids: &[String]) -> Result<()> {
        unsupported()
    }
    fn requeue(&self, _ids: &[String]) -> Result<()> {
        unsupported()
    }
    fn update_time_limit(&self, _id: &str, _l: Option<Duration>) -> Result<()> {
        unsupported()
    }
    fn job_details(&self, _id: &str) -> Result<Vec<JobDetails>> {
        unsupported()
    }
    fn partitions(&self) -> Result<Vec<Partition>> {
        self.call(Call::Partitions);
        Ok(vec![Partition {
            name: "debug".into(),
            ..Partition::default()
        }])
    }
    fn start_estimate(&self, _id: &str) -> Result<Option<i64>> {
        unsupported()
    }
    fn rpc_count(&self) -> u64 {
        self.rpcs.load(Ordering::Relaxed)
    }
}

pub fn job(id: u64, state: JobState) -> Job {
    Job {
        id: id.to_string(),
        job_id_raw: Some(id),
        name: format!("job{id}"),
        user: Some("ana".into()),
        submit: Some(1_800_000_000 + id as i64),
        state,
        ..Job::default()
    }
}

pub fn config() -> PollerConfig {
    PollerConfig {
        user: Some("ana".into()),
        ..PollerConfig::default()
    }
}
