//! One polling service for everything sortie shows about Slurm: all of the user's jobs, plus the jobs
//! of sortie's runs (registered ids and names), refreshed by **one** `squeue` per cycle, and at most
//! one `sacct -j <ids>` for the jobs that left the queue since the last cycle (to learn how they
//! ended). Partitions are read rarely (every 5 minutes by default).
//!
//! The load it puts on the controller is bounded:
//!
//! - the interval adapts: it starts at `interval` (10 s), grows by `step` on every cycle where nothing
//!   changed, up to `max_interval` (60 s), and drops back on a change;
//! - [`PollerHandle::poke`] (after a submit or cancel) polls at once and then every `fast_interval` for
//!   `fast_for`;
//! - a hard budget of commands per rolling minute (`budget_per_min`, 6) is never exceeded: every call
//!   is charged what the backend's [`SlurmBackend::rpc_count`] says it ran, and a call only starts when
//!   the last 60 s leave room for the most that call has ever cost (3 before it was first seen);
//! - errors back off exponentially with jitter, capped at `max_interval`; the last data is kept,
//!   marked stale and carries its age, so it is never shown as current.
//!
//! The scheduling lives in [`PollerCore`], driven by an injected [`Clock`], so it is tested over
//! simulated hours without sleeping; [`Poller::spawn`] runs it on a thread and publishes
//! [`JobsSnapshot`]s. [`poll_once`] is the one-shot form the CLI uses.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::backend::{HistoryQuery, JobQuery, SlurmBackend, id_matches};
use super::error::SlurmError;
use super::model::{Job, JobState, Partition};

/// How long the budget looks back.
pub const BUDGET_WINDOW: Duration = Duration::from_secs(60);

/// The clock the scheduler reads: monotonic time for intervals and the budget, wall time for the
/// `sacct --starttime` window and the snapshot's `taken_at`.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
    fn wall(&self) -> SystemTime;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

#[derive(Debug, Clone)]
pub struct PollerConfig {
    /// Whose jobs to list (`squeue --user`); `None` lists the registered ids only, or every job
    /// when none are registered.
    pub user: Option<String>,
    /// The first and the "something changed" interval.
    pub interval: Duration,
    /// The slowest interval, reached when nothing changes; also the cap of the error backoff.
    pub max_interval: Duration,
    /// How much the interval grows after each cycle without a change.
    pub step: Duration,
    /// The interval for `fast_for` after a [`PollerHandle::poke`].
    pub fast_interval: Duration,
    pub fast_for: Duration,
    /// Most Slurm commands (as counted by the backend) in any 60 s. Never exceeded.
    pub budget_per_min: u32,
    /// Finished jobs stay in the snapshot this long after they ended; the first cycle reads the
    /// user's accounting this far back.
    pub history_window: Duration,
    /// Read the user's recent history (one sacct) on the first cycle.
    pub initial_history: bool,
    /// How often to refresh partitions (`sinfo`); `None` never.
    pub partitions_every: Option<Duration>,
    /// sacct attempts for a job that left the queue before giving up on learning its end
    /// (accounting can lag the controller by a moment).
    pub sacct_attempts: u32,
}

impl Default for PollerConfig {
    fn default() -> PollerConfig {
        PollerConfig {
            user: Some(crate::util::user()),
            interval: Duration::from_secs(10),
            max_interval: Duration::from_secs(60),
            step: Duration::from_secs(10),
            fast_interval: Duration::from_secs(3),
            fast_for: Duration::from_secs(20),
            budget_per_min: 6,
            history_window: Duration::from_secs(24 * 3600),
            initial_history: true,
            partitions_every: Some(Duration::from_secs(300)),
            sacct_attempts: 3,
        }
    }
}

/// What the poller knows at one moment.
#[derive(Debug, Clone, Default)]
pub struct JobsSnapshot {
    /// Live jobs and recent history, newest submission first.
    pub jobs: Vec<Job>,
    /// Ids of the jobs in `jobs` that belong to registered runs (by id or by name).
    pub registered: BTreeSet<String>,
    /// Ids of jobs that left the queue and whose end accounting has not told yet: their state is the
    /// last one seen.
    pub settling: BTreeSet<String>,
    /// When `jobs` was read from Slurm (`None` before the first success).
    pub taken_at: Option<SystemTime>,
    /// The same moment on the monotonic clock, for [`JobsSnapshot::age_at`].
    pub fetched: Option<Instant>,
    /// The last poll failed: `jobs` is older data, not the current state.
    pub stale: bool,
    /// The last error (of the queue, accounting or partition query), if the last cycle had one.
    pub error: Option<String>,
    /// Commands run in the last 60 s.
    pub rpc_per_min: f64,
    /// Commands run since the poller started.
    pub rpc_total: u64,
    /// Refreshed rarely; `None` until first read.
    pub partitions: Option<Vec<Partition>>,
    /// How long until the next poll was planned, when this snapshot was made.
    pub next_poll_in: Duration,
    /// Cycles run so far.
    pub cycles: u64,
}

impl JobsSnapshot {
    /// How old `jobs` is, by the real clock; `None` before the first success.
    pub fn age(&self) -> Option<Duration> {
        self.age_at(Instant::now())
    }

    pub fn age_at(&self, now: Instant) -> Option<Duration> {
        self.fetched.map(|f| now.saturating_duration_since(f))
    }

    pub fn job(&self, id: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.id == id)
    }
}

/// Which jobs [`poll_once`] reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PollQuery {
    pub user: Option<String>,
    pub ids: Vec<String>,
    /// Also read accounting from this unix time on; `None` reads the queue only.
    pub history_since: Option<i64>,
    /// Also read partitions.
    pub partitions: bool,
}

/// One synchronous look: one `squeue`, one `sacct` when `history_since` is set, one `sinfo` when
/// `partitions` is. A failing queue query is an error; a failing accounting or partition query
/// leaves the queue data and sets `error`.
pub fn poll_once(
    backend: &dyn SlurmBackend,
    query: &PollQuery,
) -> Result<JobsSnapshot, SlurmError> {
    let before = backend.rpc_count();
    let live = backend.jobs(&JobQuery {
        user: query.user.clone(),
        ids: query.ids.clone(),
        names: Vec::new(),
    })?;
    let taken_at = SystemTime::now();
    let fetched = Instant::now();
    let mut error = None;
    let history = match query.history_since {
        Some(since) => {
            let q = HistoryQuery {
                since,
                until: None,
                user: query.user.clone(),
                ids: query.ids.clone(),
                names: Vec::new(),
            };
            backend.history(&q).unwrap_or_else(|e| {
                error = Some(format!("accounting: {e}"));
                Vec::new()
            })
        }
        None => Vec::new(),
    };
    let partitions = if query.partitions {
        match backend.partitions() {
            Ok(p) => Some(p),
            Err(e) => {
                error.get_or_insert(format!("partitions: {e}"));
                None
            }
        }
    } else {
        None
    };
    let mut ended: BTreeMap<String, Job> = BTreeMap::new();
    for job in history {
        ended.insert(job.id.clone(), job);
    }
    let live: BTreeMap<String, Job> = live.into_iter().map(|j| (j.id.clone(), j)).collect();
    let rpcs = backend.rpc_count().saturating_sub(before);
    Ok(JobsSnapshot {
        jobs: combine(&live, &ended),
        taken_at: Some(taken_at),
        fetched: Some(fetched),
        error,
        rpc_per_min: rpcs as f64,
        rpc_total: rpcs,
        partitions,
        cycles: 1,
        ..JobsSnapshot::default()
    })
}

/// Queue records first, replaced by (or completed with) the accounting record of a finished job;
/// accounting-only jobs after; newest submission first.
fn combine(live: &BTreeMap<String, Job>, ended: &BTreeMap<String, Job>) -> Vec<Job> {
    let mut out: Vec<Job> = Vec::with_capacity(live.len() + ended.len());
    for (id, job) in live {
        match ended.get(id) {
            Some(acct) if !job.is_active() && acct.is_finished() => {
                out.push(fill_from(acct.clone(), job));
            }
            _ => out.push(job.clone()),
        }
    }
    for (id, job) in ended {
        if !live.contains_key(id) {
            out.push(job.clone());
        }
    }
    sort_newest_first(&mut out);
    out
}

fn sort_newest_first(jobs: &mut [Job]) {
    // Array tasks stay together, in task order.
    let base = |j: &Job| j.array_job_id.or(j.job_id_raw);
    jobs.sort_by(|a, b| {
        b.submit
            .cmp(&a.submit)
            .then(base(b).cmp(&base(a)))
            .then(a.array_task_id.cmp(&b.array_task_id))
            .then(b.id.cmp(&a.id))
    });
}

/// The accounting record of a finished job, with what only the queue knows filled in (sacct has no
/// stdout path before 23.11, squeue has no TotalCPU).
pub fn fill_from(mut acct: Job, queue: &Job) -> Job {
    macro_rules! fill {
        ($($f:ident),*) => {$(
            if acct.$f.is_none() {
                acct.$f = queue.$f.clone();
            }
        )*};
    }
    fill!(
        job_id_raw,
        array_job_id,
        array_task_id,
        array_task_str,
        user,
        account,
        partition,
        reason,
        submit,
        start,
        end,
        time_used_s,
        time_limit_s,
        nodes,
        cpus,
        mem_mb,
        gpus,
        gres,
        work_dir,
        stdout,
        stderr,
        exit_code,
        signal,
        dependency,
        comment
    );
    if acct.name.is_empty() {
        acct.name = queue.name.clone();
    }
    acct
}

/// Whether two queue listings look the same in a table (state, reason, nodes).
fn same_view(a: &BTreeMap<String, Job>, b: &BTreeMap<String, Job>) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|((ka, x), (kb, y))| {
            ka == kb
                && x.state == y.state
                && x.flags == y.flags
                && x.reason == y.reason
                && x.nodes == y.nodes
        })
}

/// The operations a cycle may run, each with its own cost estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Queue,
    Accounting,
    Partitions,
}

/// Commands charged per moment, over a rolling window.
#[derive(Debug)]
struct Ledger {
    budget: u64,
    entries: VecDeque<(Instant, u64)>,
    total: u64,
}

impl Ledger {
    fn new(budget: u32) -> Ledger {
        Ledger {
            budget: u64::from(budget.max(1)),
            entries: VecDeque::new(),
            total: 0,
        }
    }

    fn prune(&mut self, now: Instant) {
        while let Some(&(at, _)) = self.entries.front() {
            if now.saturating_duration_since(at) >= BUDGET_WINDOW {
                self.entries.pop_front();
            } else {
                break;
            }
        }
    }

    /// Charged in the 60 s before `at` (entries are never in the future of a later `at`).
    fn used_at(&self, at: Instant) -> u64 {
        self.entries
            .iter()
            .filter(|(t, _)| at.saturating_duration_since(*t) < BUDGET_WINDOW)
            .map(|(_, c)| c)
            .sum()
    }

    /// The earliest moment from `at` on when `cost` more fits in the window.
    fn room_at(&self, at: Instant, cost: u64) -> Instant {
        let cost = cost.min(self.budget);
        let mut used = self.used_at(at);
        if used + cost <= self.budget {
            return at;
        }
        for &(t, c) in &self.entries {
            if at.saturating_duration_since(t) >= BUDGET_WINDOW {
                continue;
            }
            used -= c;
            if used + cost <= self.budget {
                return t + BUDGET_WINDOW;
            }
        }
        at + BUDGET_WINDOW
    }

    fn charge(&mut self, at: Instant, cost: u64) {
        if cost > 0 {
            self.entries.push_back((at, cost));
            self.total += cost;
        }
    }
}

/// A job that left the queue and whose end accounting should tell.
#[derive(Debug, Clone)]
struct Settling {
    /// The last record the queue gave (`None` for a registered id never seen).
    last: Option<Job>,
    attempts: u32,
}

/// The scheduling and bookkeeping of the poller, without a thread: [`PollerCore::run_cycle`] does
/// one cycle now (or nothing, when the budget has no room yet) and [`PollerCore::next_due`] says when
/// the next one should start.
pub struct PollerCore {
    backend: Arc<dyn SlurmBackend + Send + Sync>,
    config: PollerConfig,
    clock: Arc<dyn Clock>,
    ledger: Ledger,
    /// Most each operation has cost so far.
    costs: HashMap<Op, u64>,
    next_due: Instant,
    /// The interval the next quiet cycle adds `step` to.
    current: Duration,
    fast_until: Option<Instant>,
    failures: u32,
    /// Errors pushed back further than the interval: a poke does not shorten this.
    backoff_until: Option<Instant>,
    rng: fastrand::Rng,
    registered_ids: BTreeSet<String>,
    registered_names: BTreeSet<String>,
    live: BTreeMap<String, Job>,
    ended: BTreeMap<String, Job>,
    settling: BTreeMap<String, Settling>,
    history_loaded: bool,
    partitions: Option<Vec<Partition>>,
    partitions_due: Instant,
    taken_at: Option<SystemTime>,
    fetched: Option<Instant>,
    error: Option<String>,
    cycles: u64,
}

impl PollerCore {
    pub fn new(
        backend: Arc<dyn SlurmBackend + Send + Sync>,
        config: PollerConfig,
        clock: Arc<dyn Clock>,
    ) -> PollerCore {
        let now = clock.now();
        PollerCore {
            ledger: Ledger::new(config.budget_per_min),
            costs: HashMap::new(),
            next_due: now,
            current: config.interval,
            fast_until: None,
            failures: 0,
            backoff_until: None,
            rng: fastrand::Rng::new(),
            registered_ids: BTreeSet::new(),
            registered_names: BTreeSet::new(),
            live: BTreeMap::new(),
            ended: BTreeMap::new(),
            settling: BTreeMap::new(),
            history_loaded: !config.initial_history,
            partitions: None,
            partitions_due: now,
            taken_at: None,
            fetched: None,
            error: None,
            cycles: 0,
            backend,
            config,
            clock,
        }
    }

    /// Seeds the backoff jitter (tests).
    pub fn with_seed(mut self, seed: u64) -> PollerCore {
        self.rng = fastrand::Rng::with_seed(seed);
        self
    }

    pub fn next_due(&self) -> Instant {
        self.next_due
    }

    /// The interval a quiet cycle would use next (tests and diagnostics).
    pub fn current_interval(&self) -> Duration {
        self.current
    }

    /// Poll as soon as the budget allows, then fast for a while. While errors back off, the
    /// backoff still holds.
    pub fn poke(&mut self) {
        let now = self.clock.now();
        self.fast_until = Some(now + self.config.fast_for);
        self.current = self.config.interval;
        let earliest = self.backoff_until.map_or(now, |b| b.max(now));
        self.next_due = self.next_due.min(self.cycle_ready(earliest));
    }

    /// Jobs of sortie's runs: followed until accounting tells how they ended, even when they are not
    /// the user's or left the queue before a poll saw them.
    pub fn register_ids<I: IntoIterator<Item = String>>(&mut self, ids: I) {
        for id in ids {
            let id = id.trim().to_string();
            if !id.is_empty() && self.registered_ids.insert(id.clone()) {
                let known = self
                    .live
                    .values()
                    .chain(self.ended.values())
                    .any(|j| id_matches(j, &id));
                if !known {
                    self.settling.entry(id).or_insert(Settling {
                        last: None,
                        attempts: 0,
                    });
                }
            }
        }
    }

    /// Job names of sortie's runs: their jobs are marked in `JobsSnapshot::registered`.
    pub fn register_names<I: IntoIterator<Item = String>>(&mut self, names: I) {
        self.registered_names.extend(names);
    }

    fn estimate(&self, op: Op) -> u64 {
        self.costs
            .get(&op)
            .copied()
            .unwrap_or_else(|| self.backend.first_call_cost().max(1))
            .max(1)
    }

    /// What the next cycle may cost: the queue query plus the accounting and partition queries
    /// that are due, so that pokes cannot starve them.
    fn cycle_cost(&self, at: Instant) -> u64 {
        let mut cost = self.estimate(Op::Queue);
        if !self.history_loaded || !self.settling.is_empty() {
            cost += self.estimate(Op::Accounting);
        }
        if self.config.partitions_every.is_some() && at >= self.partitions_due {
            cost += self.estimate(Op::Partitions);
        }
        cost
    }

    /// When a cycle wanted at `at` can start within the budget.
    fn cycle_ready(&self, at: Instant) -> Instant {
        self.ledger.room_at(at, self.cycle_cost(at)).max(at)
    }

    /// Whether `op` may start now without the window going over budget.
    fn fits(&self, op: Op) -> bool {
        let now = self.clock.now();
        self.ledger.room_at(now, self.estimate(op)) <= now
    }

    /// Runs `call`, charging the commands the backend counted during it.
    fn charged<T>(&mut self, op: Op, call: impl FnOnce(&dyn SlurmBackend) -> T) -> T {
        let before = self.backend.rpc_count();
        let out = call(self.backend.as_ref());
        let cost = self.backend.rpc_count().saturating_sub(before);
        let now = self.clock.now();
        self.ledger.prune(now);
        self.ledger.charge(now, cost);
        let seen = self.costs.entry(op).or_insert(0);
        *seen = (*seen).max(cost);
        out
    }

    fn queue_query(&self) -> JobQuery {
        match &self.config.user {
            Some(u) => JobQuery {
                user: Some(u.clone()),
                ..JobQuery::default()
            },
            None => JobQuery {
                ids: self.registered_ids.iter().cloned().collect(),
                ..JobQuery::default()
            },
        }
    }

    fn wall_secs(&self) -> i64 {
        self.clock
            .wall()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }

    /// One cycle, if the budget has room for its queue query now; otherwise only moves `next_due`
    /// to when it will. Returns whether the queue was polled.
    pub fn run_cycle(&mut self) -> bool {
        let start = self.clock.now();
        let ready = self.cycle_ready(start);
        if ready > start {
            self.next_due = ready;
            return false;
        }
        self.cycles += 1;
        let query = self.queue_query();
        let result = self.charged(Op::Queue, |b| b.jobs(&query));
        let jobs = match result {
            Ok(jobs) => jobs,
            Err(e) => {
                self.failures += 1;
                self.error = Some(e.to_string());
                let delay = self.backoff();
                self.backoff_until = Some(start + delay);
                self.schedule(start, delay);
                return true;
            }
        };
        self.failures = 0;
        self.backoff_until = None;
        self.error = None;
        // The first listing has nothing to differ from: it is not a change.
        let first = self.fetched.is_none();
        self.taken_at = Some(self.clock.wall());
        self.fetched = Some(self.clock.now());
        let mut changed = self.absorb_queue(jobs) && !first;
        changed |= self.read_accounting();
        self.read_partitions();
        let delay = if self.fast_until.is_some_and(|f| start < f) {
            self.current = self.config.interval;
            self.config.fast_interval
        } else if changed || !self.settling.is_empty() {
            self.current = self.config.interval;
            self.current
        } else {
            self.current = (self.current + self.config.step).min(self.config.max_interval);
            self.current
        };
        self.schedule(start, delay);
        true
    }

    fn schedule(&mut self, start: Instant, delay: Duration) {
        self.next_due = self.cycle_ready(start + delay);
    }

    /// `interval × 2^(failures-1)`, ±20 % jitter, capped at `max_interval`.
    fn backoff(&mut self) -> Duration {
        let exp = self.failures.saturating_sub(1).min(16);
        let base = self
            .config
            .interval
            .saturating_mul(1u32 << exp)
            .min(self.config.max_interval);
        let jitter = 0.8 + 0.4 * self.rng.f64();
        base.mul_f64(jitter).min(self.config.max_interval)
    }

    /// Takes in a queue listing; returns whether anything visible changed. Jobs that were active
    /// and are now finished or gone start settling.
    fn absorb_queue(&mut self, jobs: Vec<Job>) -> bool {
        let new: BTreeMap<String, Job> = jobs.into_iter().map(|j| (j.id.clone(), j)).collect();
        let changed = !same_view(&new, &self.live);
        // Requeued: a new incarnation, whose end is still to come.
        for (id, job) in &new {
            if job.is_active() {
                self.ended.remove(id);
            }
        }
        for (id, old) in &self.live {
            let now = new.get(id);
            let left = now.is_none_or(|j| !j.is_active());
            if old.is_active() && left && !self.ended.contains_key(id) {
                self.settling.entry(id.clone()).or_insert(Settling {
                    last: Some(now.unwrap_or(old).clone()),
                    attempts: 0,
                });
            }
        }
        // A registered id whose record showed up (e.g. an array task) no longer needs a lookup
        // unless it left the queue.
        let seen: Vec<String> = self
            .settling
            .iter()
            .filter(|(id, s)| {
                s.last.is_none() && new.values().any(|j| id_matches(j, id) && j.is_active())
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in seen {
            self.settling.remove(&id);
        }
        // Seen for the first time already finished (a short job between two polls), once the
        // first history read has had its chance to cover it.
        for (id, job) in &new {
            if !job.is_active()
                && !self.live.contains_key(id)
                && !self.ended.contains_key(id)
                && self.history_loaded
            {
                self.settling.entry(id.clone()).or_insert(Settling {
                    last: Some(job.clone()),
                    attempts: 0,
                });
            }
            if let Some(s) = self.settling.get_mut(id) {
                s.last = Some(job.clone());
            }
        }
        self.live = new;
        changed
    }

    /// At most one sacct: the user's recent history on the first cycle, afterwards only the jobs
    /// that left the queue. Returns whether it learned how a job ended (the first read of the
    /// history is no change: there was nothing before it).
    fn read_accounting(&mut self) -> bool {
        let initial = !self.history_loaded;
        if !initial && self.settling.is_empty() {
            return false;
        }
        if !self.fits(Op::Accounting) {
            return false;
        }
        let now = self.wall_secs();
        let window = self.config.history_window.as_secs() as i64;
        let query = if initial {
            HistoryQuery {
                since: now - window,
                user: self.config.user.clone(),
                ..HistoryQuery::default()
            }
        } else {
            let earliest = self
                .settling
                .values()
                .filter_map(|s| s.last.as_ref().and_then(|j| j.submit))
                .min()
                .unwrap_or(now);
            HistoryQuery {
                since: (now - window).min(earliest - 60),
                ids: self.settling.keys().cloned().collect(),
                ..HistoryQuery::default()
            }
        };
        let result = self.charged(Op::Accounting, |b| b.history(&query));
        let found = match result {
            Ok(found) => found,
            Err(e) => {
                // The queue data is fresh; only the outcome of ended jobs waits.
                self.error = Some(format!("accounting: {e}"));
                return false;
            }
        };
        if initial {
            self.history_loaded = true;
        }
        let mut learned = false;
        for job in found {
            if !job.is_finished() {
                continue;
            }
            let queue = self
                .live
                .get(&job.id)
                .cloned()
                .or_else(|| self.settling.get(&job.id).and_then(|s| s.last.clone()));
            let merged = match &queue {
                Some(q) => fill_from(job, q),
                None => job,
            };
            // A registered array id settles with its tasks.
            let keys: Vec<String> = self
                .settling
                .keys()
                .filter(|k| id_matches(&merged, k))
                .cloned()
                .collect();
            for k in keys {
                self.settling.remove(&k);
            }
            learned |= self.ended.get(&merged.id) != Some(&merged);
            self.ended.insert(merged.id.clone(), merged);
        }
        if initial {
            return false;
        }
        let attempts = self.config.sacct_attempts.max(1);
        let mut given_up = Vec::new();
        for (id, s) in self.settling.iter_mut() {
            s.attempts += 1;
            if s.attempts >= attempts {
                given_up.push(id.clone());
            }
        }
        for id in given_up {
            if let Some(s) = self.settling.remove(&id)
                && let Some(mut job) = s.last
            {
                // Gone from the queue and not in accounting: never count it as a success.
                if job.is_active() {
                    job.state = JobState::Unknown("LOST".into());
                }
                self.ended.insert(id, job);
                learned = true;
            }
        }
        learned
    }

    fn read_partitions(&mut self) {
        let Some(every) = self.config.partitions_every else {
            return;
        };
        let now = self.clock.now();
        if now < self.partitions_due || !self.fits(Op::Partitions) {
            return;
        }
        match self.charged(Op::Partitions, |b| b.partitions()) {
            Ok(p) => {
                self.partitions = Some(p);
                self.partitions_due = now + every;
            }
            Err(e) => {
                self.error.get_or_insert(format!("partitions: {e}"));
                // Retry no sooner than a normal interval.
                self.partitions_due = now + self.config.max_interval;
            }
        }
    }

    /// The current view.
    pub fn snapshot(&self) -> JobsSnapshot {
        let now = self.clock.now();
        let horizon = self.wall_secs() - self.config.history_window.as_secs() as i64;
        let ended: BTreeMap<String, Job> = self
            .ended
            .iter()
            .filter(|(_, j)| j.end.or(j.submit).is_none_or(|t| t >= horizon))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut live = self.live.clone();
        // Gone from the queue, end not known yet: show the last state seen.
        for (id, s) in &self.settling {
            if let Some(job) = &s.last
                && !live.contains_key(id)
                && !ended.contains_key(id)
            {
                live.insert(id.clone(), job.clone());
            }
        }
        let jobs = combine(&live, &ended);
        let registered = jobs
            .iter()
            .filter(|j| {
                self.registered_names.contains(&j.name)
                    || self.registered_ids.iter().any(|id| id_matches(j, id))
            })
            .map(|j| j.id.clone())
            .collect();
        JobsSnapshot {
            jobs,
            registered,
            settling: self.settling.keys().cloned().collect(),
            taken_at: self.taken_at,
            fetched: self.fetched,
            stale: self.failures > 0,
            error: self.error.clone(),
            rpc_per_min: self.ledger.used_at(now) as f64,
            rpc_total: self.ledger.total,
            partitions: self.partitions.clone(),
            next_poll_in: self.next_due.saturating_duration_since(now),
            cycles: self.cycles,
        }
    }

    /// A due cycle and the pruning after it; returns whether the queue was polled.
    pub fn cycle(&mut self) -> bool {
        let polled = self.run_cycle();
        if polled {
            self.prune_history();
        }
        polled
    }

    /// What the configuration says now (the shared view widens it to what its readers want).
    pub fn config(&self) -> &PollerConfig {
        &self.config
    }

    /// Most commands per minute from now on.
    pub fn set_budget(&mut self, per_min: u32) {
        self.config.budget_per_min = per_min.max(1);
        self.ledger.budget = u64::from(self.config.budget_per_min);
    }

    /// The first and "something changed" interval; a shorter one takes effect at once.
    pub fn set_interval(&mut self, interval: Duration) {
        if interval < self.config.interval {
            self.next_due = self
                .next_due
                .min(self.cycle_ready(self.clock.now() + interval));
        }
        self.config.interval = interval;
        self.config.max_interval = self.config.max_interval.max(interval);
        self.current = self.current.min(self.config.max_interval);
    }

    /// Read partitions this often from now on (`None`: never).
    pub fn set_partitions_every(&mut self, every: Option<Duration>) {
        if self.config.partitions_every.is_none() && every.is_some() {
            self.partitions_due = self.clock.now();
        }
        self.config.partitions_every = every;
    }

    /// Keep (and, when not read yet, read) this much of the user's history.
    pub fn want_history(&mut self, window: Duration) {
        if !self.config.initial_history {
            self.config.initial_history = true;
            self.history_loaded = false;
        }
        if window > self.config.history_window {
            self.config.history_window = window;
            self.history_loaded = false;
        }
    }

    /// How far back the user's accounting was read, once it was.
    pub fn history_read(&self) -> Option<Duration> {
        (self.config.initial_history && self.history_loaded).then_some(self.config.history_window)
    }

    /// The commands charged in the last minute, by wall time (handed to the next poller of a
    /// shared view, so that a takeover does not start a fresh budget).
    pub fn recent_charges(&self) -> Vec<(SystemTime, u64)> {
        let (now, wall) = (self.clock.now(), self.clock.wall());
        self.ledger
            .entries
            .iter()
            .filter(|(t, _)| now.saturating_duration_since(*t) < BUDGET_WINDOW)
            .map(|(t, c)| (wall - now.saturating_duration_since(*t), *c))
            .collect()
    }

    /// Starts from what a previous poller knew: its jobs (so that the first queue listing tells
    /// which left meanwhile), what was still settling, its history read, and its charges.
    /// `history` is how far back the previous poller read the user's accounting (`None`: it did not).
    pub fn seed(
        &mut self,
        snap: &JobsSnapshot,
        charges: &[(SystemTime, u64)],
        history: Option<Duration>,
    ) {
        let (now, wall) = (self.clock.now(), self.clock.wall());
        for (at, cost) in charges {
            let age = wall.duration_since(*at).unwrap_or_default();
            if age < BUDGET_WINDOW
                && let Some(t) = now.checked_sub(age)
            {
                self.ledger.charge(t, *cost);
            }
        }
        for job in &snap.jobs {
            if snap.settling.contains(&job.id) {
                self.settling.insert(
                    job.id.clone(),
                    Settling {
                        last: Some(job.clone()),
                        attempts: 0,
                    },
                );
            } else if job.is_active() {
                self.live.insert(job.id.clone(), job.clone());
            } else {
                self.ended.insert(job.id.clone(), job.clone());
            }
        }
        self.partitions.clone_from(&snap.partitions);
        self.history_loaded |= history.is_some_and(|h| h >= self.config.history_window);
        self.next_due = self.cycle_ready(now);
    }

    /// Drops history older than the window (keeps memory flat over days).
    fn prune_history(&mut self) {
        let horizon = self.wall_secs() - self.config.history_window.as_secs() as i64;
        let live = &self.live;
        self.ended.retain(|id, j| {
            live.contains_key(id) || j.end.or(j.submit).is_none_or(|t| t >= horizon)
        });
    }
}

/// Starts pollers.
pub struct Poller;

impl Poller {
    /// Polls on a thread of its own until [`PollerHandle::stop`] (or the handle is dropped).
    pub fn spawn(
        backend: Arc<dyn SlurmBackend + Send + Sync>,
        config: PollerConfig,
    ) -> PollerHandle {
        Poller::spawn_with_clock(backend, config, Arc::new(SystemClock))
    }

    /// One poller per user and host ([`super::shared`]): this process polls if none does, else it
    /// reads the one that does. Without a usable view directory (or with
    /// `SORTIE_SLURM_VIEW=private`) it polls on its own, as [`Poller::spawn`].
    pub fn spawn_shared(
        backend: Arc<dyn SlurmBackend + Send + Sync>,
        config: PollerConfig,
    ) -> PollerHandle {
        if let Some(dir) = super::shared::view_dir() {
            // A directory that cannot be written costs the sharing, not the view (and a TUI's
            // screen has no room for a warning).
            if let Ok(handle) = super::shared::spawn(&dir, backend.clone(), config.clone()) {
                return handle;
            }
        }
        Poller::spawn(backend, config)
    }

    /// As [`Poller::spawn`], reading `clock` (waits are real: use a clock that follows real time).
    pub fn spawn_with_clock(
        backend: Arc<dyn SlurmBackend + Send + Sync>,
        config: PollerConfig,
        clock: Arc<dyn Clock>,
    ) -> PollerHandle {
        let shared = Arc::new(Shared::default());
        let core = PollerCore::new(backend, config, clock.clone());
        let inner = shared.clone();
        PollerHandle::spawned("sortie-slurm-poller", shared, move || {
            run(core, &inner, clock.as_ref());
        })
        .expect("spawning the Slurm poller thread")
    }
}

/// What the handle asked of the polling thread since it last looked.
#[derive(Default)]
pub(super) struct Requests {
    pub(super) poked: bool,
    pub(super) ids: Vec<String>,
    pub(super) names: Vec<String>,
    /// Ids no longer followed (the shared view stops asking for them).
    pub(super) forget: Vec<String>,
}

#[derive(Default)]
pub(super) struct Control {
    pub(super) stop: bool,
    pub(super) asked: Requests,
}

impl Control {
    pub(super) fn pending(&self) -> bool {
        let a = &self.asked;
        self.stop || a.poked || !a.ids.is_empty() || !a.names.is_empty() || !a.forget.is_empty()
    }

    pub(super) fn take(&mut self) -> Requests {
        std::mem::take(&mut self.asked)
    }
}

/// Between a [`PollerHandle`] and the thread that polls (or reads the shared view).
#[derive(Default)]
pub(super) struct Shared {
    pub(super) control: Mutex<Control>,
    pub(super) wake: Condvar,
    latest: Mutex<Arc<JobsSnapshot>>,
    subscribers: Mutex<Vec<mpsc::Sender<Arc<JobsSnapshot>>>>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Waits until the handle asks for something or `until` (at most `max` from now) comes.
    pub(super) fn wait(&self, clock: &dyn Clock, until: Instant) -> MutexGuard<'_, Control> {
        let mut ctl = lock(&self.control);
        loop {
            if ctl.pending() {
                return ctl;
            }
            let now = clock.now();
            if now >= until {
                return ctl;
            }
            ctl = self
                .wake
                .wait_timeout(ctl, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    pub(super) fn publish(&self, snapshot: JobsSnapshot) {
        let snapshot = Arc::new(snapshot);
        *lock(&self.latest) = snapshot.clone();
        lock(&self.subscribers).retain(|tx| tx.send(snapshot.clone()).is_ok());
    }
}

fn run(mut core: PollerCore, shared: &Shared, clock: &dyn Clock) {
    loop {
        let Requests {
            poked, ids, names, ..
        } = {
            let mut ctl = shared.wait(clock, core.next_due());
            if ctl.stop {
                return;
            }
            ctl.take()
        };
        core.register_ids(ids);
        core.register_names(names);
        if poked {
            core.poke();
        }
        if clock.now() >= core.next_due() {
            if core.cycle() {
                shared.publish(core.snapshot());
            }
        } else if poked {
            // Tell watchers when the poke will be served.
            shared.publish(core.snapshot());
        }
    }
}

/// Talks to a running poller. Dropping it stops the poller.
pub struct PollerHandle {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl PollerHandle {
    /// A handle on a thread that already runs `body` with `shared`.
    pub(super) fn spawned(
        name: &str,
        shared: Arc<Shared>,
        body: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<PollerHandle> {
        let thread = std::thread::Builder::new().name(name.into()).spawn(body)?;
        Ok(PollerHandle {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The latest snapshot (empty, with `taken_at: None`, before the first poll).
    pub fn snapshot(&self) -> Arc<JobsSnapshot> {
        lock(&self.shared.latest).clone()
    }

    /// Every snapshot from now on, as it is made.
    pub fn subscribe(&self) -> mpsc::Receiver<Arc<JobsSnapshot>> {
        let (tx, rx) = mpsc::channel();
        lock(&self.shared.subscribers).push(tx);
        rx
    }

    /// Something changed (a submit, a cancel): poll soon and often for a little while.
    pub fn poke(&self) {
        lock(&self.shared.control).asked.poked = true;
        self.shared.wake.notify_all();
    }

    /// Follow these job ids (sortie's runs' jobs) until accounting tells how they ended.
    pub fn register<I, S>(&self, ids: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        lock(&self.shared.control)
            .asked
            .ids
            .extend(ids.into_iter().map(Into::into));
        self.shared.wake.notify_all();
    }

    /// No longer follow these ids (their end is known). A private poller keeps them; a shared
    /// view stops asking its poller for them.
    pub fn forget<I, S>(&self, ids: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        lock(&self.shared.control)
            .asked
            .forget
            .extend(ids.into_iter().map(Into::into));
        self.shared.wake.notify_all();
    }

    /// Mark the jobs with these names as sortie's (see `JobsSnapshot::registered`).
    pub fn register_names<I, S>(&self, names: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        lock(&self.shared.control)
            .asked
            .names
            .extend(names.into_iter().map(Into::into));
        self.shared.wake.notify_all();
    }

    /// Stops the thread, after the call in progress (if any) returns.
    pub fn stop(&self) {
        lock(&self.shared.control).stop = true;
        self.shared.wake.notify_all();
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }
}

impl Drop for PollerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slurm::fakes::{Call, FakeClock, FakeSlurm, config, job};
    use std::sync::atomic::Ordering;

    fn core(fake: &Arc<FakeSlurm>, clock: &Arc<FakeClock>, config: PollerConfig) -> PollerCore {
        PollerCore::new(fake.clone(), config, clock.clone()).with_seed(7)
    }

    /// Runs the core until `until` (simulated), calling `event` before each due cycle.
    fn drive(
        core: &mut PollerCore,
        clock: &FakeClock,
        until: Duration,
        mut event: impl FnMut(&mut PollerCore, Duration),
    ) {
        while clock.elapsed() < until {
            clock.set(core.next_due());
            event(core, clock.elapsed());
            if clock.now() >= core.next_due() {
                core.run_cycle();
            }
        }
    }

    /// The most commands charged in any 60 s window (window ends at each call).
    fn max_per_minute(calls: &[(Duration, Call)], cost: u64) -> u64 {
        calls
            .iter()
            .map(|(t, _)| {
                calls
                    .iter()
                    .filter(|(u, _)| *u <= *t && *t - *u < BUDGET_WINDOW)
                    .count() as u64
                    * cost
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn budget_is_never_exceeded_over_ten_minutes_of_churn_and_pokes() {
        for cost in [1, 2] {
            let clock = FakeClock::new();
            let fake = FakeSlurm::new(clock.clone());
            fake.cost.store(cost, Ordering::Relaxed);
            let mut core = core(&fake, &clock, config());
            let mut next_id = 100;
            let mut last_poke = Duration::ZERO;
            drive(&mut core, &clock, Duration::from_secs(600), |core, t| {
                // Every cycle something changes: a job ends (and is in accounting), one starts.
                let mut q = fake.queue.lock().unwrap();
                if let Some(j) = q.pop() {
                    let mut done = j.clone();
                    done.state = JobState::Completed;
                    fake.acct.lock().unwrap().push(done);
                }
                q.push(job(next_id, JobState::Running));
                next_id += 1;
                drop(q);
                // ... and the user pokes every 5 s.
                if t >= last_poke + Duration::from_secs(5) {
                    core.poke();
                    last_poke = t;
                }
            });
            let calls = fake.calls();
            let worst = max_per_minute(&calls, cost);
            assert!(worst <= 6, "cost {cost}: {worst} commands in a minute");
            assert!(
                worst > 6 - 2 * cost,
                "cost {cost}: the limit is reached ({worst})"
            );
            // ... and mostly used: pokes do not starve the accounting queries either.
            assert!(
                fake.rpc_count() >= 40,
                "cost {cost}: only {} commands in 10 minutes",
                fake.rpc_count()
            );
            assert!(calls.iter().any(|(_, c)| matches!(c, Call::History(..))));
            // The core's own accounting agrees.
            let snap = core.snapshot();
            assert!(snap.rpc_per_min <= 6.0);
            assert_eq!(snap.rpc_total, fake.rpc_count());
        }
    }

    #[test]
    fn a_quiet_queue_slows_down_to_max_interval() {
        let clock = FakeClock::new();
        let fake = FakeSlurm::new(clock.clone());
        fake.set_queue(vec![job(1, JobState::Pending), job(2, JobState::Running)]);
        let mut c = core(
            &fake,
            &clock,
            PollerConfig {
                partitions_every: None,
                ..config()
            },
        );
        drive(&mut c, &clock, Duration::from_secs(600), |_, _| {});
        let starts: Vec<Duration> = fake
            .calls()
            .iter()
            .filter(|(_, c)| *c == Call::Queue)
            .map(|(t, _)| *t)
            .collect();
        let gaps: Vec<u64> = starts.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
        // 20, 30, ... 60 (the first listing is no change), then 60 for ever.
        assert_eq!(&gaps[..5], &[20, 30, 40, 50, 60], "{gaps:?}");
        assert!(gaps[5..].iter().all(|g| *g == 60), "{gaps:?}");
        // The first cycle read the history once; nothing left the queue after that.
        let hist: Vec<_> = fake
            .calls()
            .into_iter()
            .filter(|(_, c)| matches!(c, Call::History(..)))
            .collect();
        assert_eq!(
            hist,
            vec![(
                Duration::from_millis(300),
                Call::History(vec![], Some("ana".into()))
            )]
        );
        // A change brings the interval back to 10 s.
        fake.set_queue(vec![job(1, JobState::Running), job(2, JobState::Running)]);
        c.run_cycle();
        assert_eq!(
            c.next_due() - clock.now(),
            Duration::from_secs(10) - fake.latency
        );
    }

    #[test]
    fn poke_polls_at_once_then_fast_then_slows_again() {
        let clock = FakeClock::new();
        let fake = FakeSlurm::new(clock.clone());
        fake.set_queue(vec![job(1, JobState::Running)]);
        let mut c = core(
            &fake,
            &clock,
            PollerConfig {
                partitions_every: None,
                initial_history: false,
                ..config()
            },
        );
        // Let it become slow (quiet queue) over 5 minutes.
        drive(&mut c, &clock, Duration::from_secs(300), |_, _| {});
        assert_eq!(c.current_interval(), Duration::from_secs(60));
        let before = fake.calls().len();
        let poked_at = clock.elapsed() + Duration::from_secs(1);
        clock.set(clock.now() + Duration::from_secs(1));
        c.poke();
        assert_eq!(c.next_due(), clock.now(), "a poke polls at once");
        drive(
            &mut c,
            &clock,
            poked_at + Duration::from_secs(40),
            |_, _| {},
        );
        let after: Vec<Duration> = fake.calls()[before..].iter().map(|(t, _)| *t).collect();
        assert_eq!(after[0], poked_at);
        // Fast (3 s) for 20 s, but the budget of 6/min caps it; then back to 10 s, growing.
        let gaps: Vec<u64> = after
            .windows(2)
            .map(|w| (w[1] - w[0]).as_millis() as u64 / 100)
            .collect();
        assert!(gaps.iter().take(4).all(|g| *g == 30), "{gaps:?}");
        assert!(max_per_minute(&fake.calls(), 1) <= 6, "{:?}", fake.calls());
        assert!(c.current_interval() >= Duration::from_secs(10));
    }

    #[test]
    fn transient_errors_back_off_with_jitter_and_keep_stale_data() {
        let clock = FakeClock::new();
        let fake = FakeSlurm::with_latency(clock.clone(), Duration::ZERO);
        fake.set_queue(vec![job(1, JobState::Running)]);
        let mut c = core(
            &fake,
            &clock,
            PollerConfig {
                partitions_every: None,
                initial_history: false,
                budget_per_min: 100,
                ..config()
            },
        );
        c.run_cycle();
        let good = c.snapshot();
        assert!(!good.stale && good.error.is_none());
        assert_eq!(good.jobs.len(), 1);

        fake.failing.store(6, Ordering::Relaxed);
        let mut delays = Vec::new();
        for _ in 0..6 {
            clock.set(c.next_due());
            c.run_cycle();
            delays.push((c.next_due() - clock.now()).as_secs_f64());
            let snap = c.snapshot();
            assert!(snap.stale, "failed polls mark the data stale");
            assert!(snap.error.as_deref().unwrap().contains("Socket timed out"));
            assert_eq!(snap.jobs, good.jobs, "the last data is kept");
            assert!(snap.age_at(clock.now()).unwrap() > Duration::ZERO);
            assert_eq!(snap.taken_at, good.taken_at);
        }
        // 10, 20, 40, 60, 60, 60 s, each within ±20 %, never above the cap.
        for (d, want) in delays.iter().zip([10.0, 20.0, 40.0, 60.0, 60.0, 60.0]) {
            assert!(
                *d >= want * 0.8 - 1e-9 && *d <= f64::min(want * 1.2, 60.0) + 1e-9,
                "{delays:?}"
            );
        }
        assert_ne!(delays[0], 10.0, "jittered");
        // A poke during backoff does not hammer the controller.
        let due = c.next_due();
        c.poke();
        assert_eq!(c.next_due(), due);
        // Recovery: fresh data, no error, interval back to normal.
        clock.set(c.next_due());
        c.run_cycle();
        let snap = c.snapshot();
        assert!(!snap.stale && snap.error.is_none());
        assert_eq!(snap.age_at(clock.now()), Some(Duration::ZERO));
    }

    #[test]
    fn sacct_only_for_jobs_that_left_the_queue() {
        let clock = FakeClock::new();
        let fake = FakeSlurm::new(clock.clone());
        fake.set_queue(vec![
            job(1, JobState::Running),
            job(2, JobState::Pending),
            job(3, JobState::Running),
        ]);
        let mut c = core(
            &fake,
            &clock,
            PollerConfig {
                partitions_every: None,
                initial_history: false,
                ..config()
            },
        );
        c.run_cycle();
        clock.set(c.next_due());
        c.run_cycle();
        assert!(
            fake.calls().iter().all(|(_, c)| *c == Call::Queue),
            "no accounting while nothing left"
        );
        // Job 1 vanishes, job 3 shows as completed in the queue (MinJobAge): both left.
        fake.set_queue(vec![job(2, JobState::Running), job(3, JobState::Completed)]);
        let mut one = job(1, JobState::Failed);
        one.exit_code = Some(3);
        let mut three = job(3, JobState::Completed);
        three.exit_code = Some(0);
        three.total_cpu_s = Some(5.0);
        *fake.acct.lock().unwrap() = vec![one, three, job(2, JobState::Running)];
        clock.set(c.next_due());
        c.run_cycle();
        let calls = fake.calls();
        let (_, last) = calls.last().unwrap();
        assert_eq!(
            *last,
            Call::History(vec!["1".into(), "3".into()], None),
            "one sacct for exactly the leavers"
        );
        let snap = c.snapshot();
        assert_eq!(snap.job("1").unwrap().exit_code, Some(3));
        assert_eq!(snap.job("3").unwrap().total_cpu_s, Some(5.0));
        assert_eq!(snap.job("2").unwrap().state, JobState::Running);
        assert!(snap.settling.is_empty());
        // Newest first.
        let ids: Vec<&str> = snap.jobs.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(ids, ["3", "2", "1"]);
        // Nothing left since: no more accounting.
        let n = fake.calls().len();
        clock.set(c.next_due());
        c.run_cycle();
        assert_eq!(fake.calls()[n..], [(fake.calls()[n].0, Call::Queue)]);
    }

    #[test]
    fn accounting_lag_is_retried_then_the_job_is_lost_not_succeeded() {
        let clock = FakeClock::new();
        let fake = FakeSlurm::new(clock.clone());
        fake.set_queue(vec![job(1, JobState::Running), job(2, JobState::Running)]);
        let mut c = core(
            &fake,
            &clock,
            PollerConfig {
                partitions_every: None,
                initial_history: false,
                ..config()
            },
        );
        c.run_cycle();
        fake.set_queue(vec![]);
        for _ in 0..2 {
            clock.set(c.next_due());
            c.run_cycle();
            // Still unknown: shown with its last state, and flagged.
            let snap = c.snapshot();
            assert!(snap.settling.contains("1"));
            assert_eq!(snap.job("1").unwrap().state, JobState::Running);
        }
        // Accounting catches up with job 2 only.
        let mut two = job(2, JobState::Completed);
        two.exit_code = Some(0);
        fake.acct.lock().unwrap().push(two);
        clock.set(c.next_due());
        c.run_cycle();
        let snap = c.snapshot();
        assert_eq!(snap.job("2").unwrap().state, JobState::Completed);
        assert_eq!(
            snap.job("1").unwrap().state,
            JobState::Unknown("LOST".into())
        );
        assert!(snap.settling.is_empty());
        let hist = fake
            .calls()
            .iter()
            .filter(|(_, c)| matches!(c, Call::History(..)))
            .count();
        assert_eq!(hist, 3);
    }

    #[test]
    fn registered_jobs_never_seen_are_looked_up_and_marked() {
        let clock = FakeClock::new();
        let fake = FakeSlurm::new(clock.clone());
        fake.set_queue(vec![job(5, JobState::Running)]);
        let mut ended = job(4, JobState::Completed);
        ended.exit_code = Some(0);
        fake.acct.lock().unwrap().push(ended);
        let mut c = core(
            &fake,
            &clock,
            PollerConfig {
                partitions_every: None,
                initial_history: false,
                ..config()
            },
        );
        c.register_ids(["4".to_string(), "5".to_string()]);
        c.register_names(["job5".to_string()]);
        c.run_cycle();
        let snap = c.snapshot();
        assert_eq!(
            fake.calls()[1].1,
            Call::History(vec!["4".into()], None),
            "5 is in the queue: only 4 is looked up"
        );
        assert_eq!(snap.job("4").unwrap().exit_code, Some(0));
        assert_eq!(
            snap.registered,
            BTreeSet::from(["4".to_string(), "5".to_string()])
        );
    }

    #[test]
    fn partitions_are_read_rarely() {
        let clock = FakeClock::new();
        let fake = FakeSlurm::new(clock.clone());
        fake.set_queue(vec![job(1, JobState::Running)]);
        let mut c = core(&fake, &clock, config());
        let mut t = 0;
        drive(&mut c, &clock, Duration::from_secs(900), |c, _| {
            // Keep it busy so it polls often.
            t += 1;
            if t % 2 == 0 {
                c.poke();
            }
        });
        let sinfo: Vec<u64> = fake
            .calls()
            .iter()
            .filter(|(_, c)| *c == Call::Partitions)
            .map(|(t, _)| t.as_secs())
            .collect();
        assert_eq!(sinfo.len(), 3, "{sinfo:?}");
        assert!(sinfo.windows(2).all(|w| w[1] - w[0] >= 300), "{sinfo:?}");
        assert_eq!(c.snapshot().partitions.unwrap()[0].name, "debug");
    }

    #[test]
    fn the_first_call_of_a_kind_reserves_room_for_a_costly_backend() {
        // A backend whose calls cost 3 commands each, with a budget of 6: never more than 6.
        let clock = FakeClock::new();
        let fake = FakeSlurm::new(clock.clone());
        fake.cost.store(3, Ordering::Relaxed);
        fake.set_queue(vec![job(1, JobState::Running)]);
        let mut c = core(&fake, &clock, config());
        drive(&mut c, &clock, Duration::from_secs(400), |c, _| c.poke());
        assert!(max_per_minute(&fake.calls(), 3) <= 6, "{:?}", fake.calls());
    }

    #[test]
    fn the_thread_publishes_pokes_registers_and_stops() {
        let clock = FakeClock::new();
        let fake = FakeSlurm::with_latency(clock.clone(), Duration::ZERO);
        fake.set_queue(vec![job(1, JobState::Running)]);
        let handle = Poller::spawn(
            fake.clone(),
            PollerConfig {
                partitions_every: None,
                initial_history: false,
                interval: Duration::from_secs(3600),
                max_interval: Duration::from_secs(3600),
                budget_per_min: 100,
                ..config()
            },
        );
        let rx = handle.subscribe();
        // The first poll may have been published before the subscription.
        let latest = handle.snapshot();
        let first = if latest.taken_at.is_some() {
            latest
        } else {
            rx.recv_timeout(Duration::from_secs(10))
                .expect("first poll")
        };
        assert_eq!(first.jobs.len(), 1);
        assert!(first.taken_at.is_some());
        assert_eq!(handle.snapshot().cycles, first.cycles);
        // Without a poke the next poll is an hour away; a poke makes it now.
        fake.set_queue(vec![job(1, JobState::Running), job(2, JobState::Pending)]);
        handle.register(["2"]);
        handle.poke();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("poked poll");
            if s.jobs.len() == 2 {
                assert!(s.registered.contains("2"));
                break;
            }
            assert!(Instant::now() < deadline);
        }
        let t = Instant::now();
        handle.stop();
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
    }

    #[test]
    fn poll_once_merges_queue_and_accounting() {
        let clock = FakeClock::new();
        let fake = FakeSlurm::new(clock.clone());
        let mut done = job(1, JobState::Completed);
        done.stdout = Some("/q/out".into());
        fake.set_queue(vec![done, job(2, JobState::Running)]);
        let mut acct = job(1, JobState::Completed);
        acct.exit_code = Some(0);
        acct.total_cpu_s = Some(1.0);
        *fake.acct.lock().unwrap() =
            vec![acct, job(0, JobState::Failed), job(2, JobState::Running)];
        let snap = poll_once(
            fake.as_ref(),
            &PollQuery {
                user: Some("ana".into()),
                history_since: Some(0),
                partitions: true,
                ..PollQuery::default()
            },
        )
        .unwrap();
        let ids: Vec<&str> = snap.jobs.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(ids, ["2", "1", "0"]);
        let one = snap.job("1").unwrap();
        assert_eq!(
            (one.exit_code, one.total_cpu_s, one.stdout.as_deref()),
            (Some(0), Some(1.0), Some("/q/out"))
        );
        assert_eq!(snap.rpc_total, 3);
        assert!(snap.partitions.is_some());
    }
}
