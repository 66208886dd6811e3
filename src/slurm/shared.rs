//! One Slurm view per user and host. Every engine, TUI and `sortie jobs --watch` of a user on a
//! login node would otherwise run its own [`PollerCore`] and multiply the controller's load; here
//! one of them polls and the others read what it saw.
//!
//! The view lives in a local directory ([`view_dir`]):
//!
//! ```text
//! lease/<gen>.json    the process that polls: pid, start time, heartbeat (taken by exclusive
//!                     creation of the next generation, as a run's lease is)
//! snapshot.json       its latest snapshot, replaced atomically after every poll
//! want/<member>.json  what each process wants: the job ids and names it follows, how often it
//!                     asked for an early poll, its budget, interval, history and partitions
//! ```
//!
//! The owner polls for the union of the wants (the smallest budget, the shortest interval, the
//! longest history) and serves a member's poke at its next tick. When its process is gone (or its
//! heartbeat is [`HUNG_AFTER`] old, or it let go), the first member to notice takes the next
//! generation and polls, seeded with the last snapshot and the budget it had spent: the jobs that
//! left the queue meanwhile show up as leavers in its first listing and get their sacct. The
//! budget, backoff and stale logic are the poller's own; this is a layer around it.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::backend::{SlurmBackend, id_matches};
use super::model::{Job, Partition};
use super::poller::{
    Clock, JobsSnapshot, PollerConfig, PollerCore, PollerHandle, Requests, Shared, SystemClock,
};

/// How often a member looks at the lease and the snapshot, and the owner at the wants: a `stat` or
/// two on a local disk, and the most a poke or a new snapshot waits before it is seen.
pub const TICK: Duration = Duration::from_millis(250);
/// How often the owner rewrites its lease.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// A live owner whose heartbeat is this old is taken for hung: a poll never blocks this long (the
/// command timeout is 30 s, twice for a JSON fallback).
pub const HUNG_AFTER: Duration = Duration::from_secs(150);
/// A snapshot older than this is not used to seed a new owner (the queue has moved on).
const SEED_WITHIN: Duration = Duration::from_secs(300);
/// The owner reads the wants at least this often even when the directory did not change (members
/// that died are dropped then).
const WANTS_EVERY: Duration = Duration::from_secs(5);

/// `SORTIE_SLURM_VIEW=private` gives this process a poller of its own (to compare, or debug).
pub const VIEW_ENV: &str = "SORTIE_SLURM_VIEW";

/// Where this user's view on this host lives: `$SORTIE_STATE_DIR/slurm/<host>-<user>`, else under
/// `$XDG_RUNTIME_DIR/sortie`, else `/tmp/sortie-<uid>` (made 0700; refused when another user owns
/// it). Never in the home directory, which is NFS on most clusters. `None`: no shared view.
pub fn view_dir() -> Option<PathBuf> {
    if std::env::var(VIEW_ENV).is_ok_and(|v| v.eq_ignore_ascii_case("private")) {
        return None;
    }
    let name = format!("{}-{}", crate::util::host(), crate::util::user());
    let env_dir = |var: &str| std::env::var_os(var).filter(|d| !d.is_empty());
    if let Some(d) = env_dir("SORTIE_STATE_DIR") {
        return Some(PathBuf::from(d).join("slurm").join(name));
    }
    let base = match env_dir("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(d) if d.is_dir() => d.join("sortie"),
        _ => PathBuf::from(format!("/tmp/sortie-{}", nix::unistd::getuid())),
    };
    private_dir(&base).then(|| base.join("slurm").join(name))
}

/// Creates `dir` readable by this user only, or checks that an existing one is this user's.
fn private_dir(dir: &Path) -> bool {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let _ = std::fs::DirBuilder::new().mode(0o700).create(dir);
    std::fs::symlink_metadata(dir)
        .is_ok_and(|m| m.is_dir() && m.uid() == nix::unistd::getuid().as_raw())
}

/// What one member asks of the view.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Wants {
    pub pid: u32,
    pub pid_start: Option<u64>,
    /// Job ids it follows until accounting tells how they ended.
    pub ids: BTreeSet<String>,
    pub names: BTreeSet<String>,
    /// How many early polls it asked for so far.
    pub pokes: u64,
    pub budget_per_min: u32,
    pub interval_s: f64,
    /// How much of the user's history it shows (`None`: none).
    pub history_s: Option<u64>,
    pub partitions_s: Option<u64>,
}

impl Wants {
    fn new(config: &PollerConfig) -> Wants {
        let pid = std::process::id();
        Wants {
            pid,
            pid_start: crate::util::process_start_time(pid),
            budget_per_min: config.budget_per_min,
            interval_s: config.interval.as_secs_f64(),
            history_s: config
                .initial_history
                .then_some(config.history_window.as_secs()),
            partitions_s: config.partitions_every.map(|d| d.as_secs()),
            ..Wants::default()
        }
    }

    fn alive(&self) -> bool {
        crate::util::process_alive(self.pid, self.pid_start)
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct OwnerLease {
    generation: u64,
    pid: u32,
    pid_start: Option<u64>,
    /// Unix seconds, by the view's clock.
    heartbeat: f64,
    #[serde(default)]
    released: bool,
}

/// `snapshot.json`: a [`JobsSnapshot`] with wall times instead of monotonic ones.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
struct SnapshotFile {
    generation: u64,
    jobs: Vec<Job>,
    settling: BTreeSet<String>,
    taken_at: Option<f64>,
    stale: bool,
    error: Option<String>,
    rpc_per_min: f64,
    rpc_total: u64,
    partitions: Option<Vec<Partition>>,
    next_poll_at: f64,
    cycles: u64,
    /// The owner's charges of the last minute: (unix seconds, commands).
    charges: Vec<(f64, u64)>,
    /// How far back the user's accounting was read.
    history_s: Option<u64>,
}

/// Whether an mtime is old enough to stand for the file's content: file times move in jiffies, so
/// a write in the same few milliseconds may leave the same mtime (then the file is read again).
fn settled(mtime: SystemTime) -> bool {
    SystemTime::now()
        .duration_since(mtime)
        .is_ok_and(|age| age > Duration::from_millis(50))
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn from_unix(s: f64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs_f64(s.max(0.0))
}

/// The owner's state: its poller and what it knows of the members.
struct Owner {
    core: PollerCore,
    generation: u64,
    lease: PathBuf,
    beat: Instant,
    /// Pokes seen per member file.
    pokes: HashMap<String, u64>,
    wants_seen: Option<SystemTime>,
    wants_read: Option<Instant>,
}

/// One process's part in the view: reader or owner, moved by [`View::tick`].
pub(super) struct View {
    dir: PathBuf,
    backend: Arc<dyn SlurmBackend + Send + Sync>,
    base: PollerConfig,
    clock: Arc<dyn Clock>,
    me: Wants,
    /// This member's file name in `want/`.
    name: String,
    owner: Option<Owner>,
    /// The snapshot file's mtime when last read.
    seen: Option<SystemTime>,
    last: Option<SnapshotFile>,
}

impl View {
    /// Joins the view in `dir` (created if needed) as a reader; the first [`View::tick`] takes the
    /// lease when nobody holds it.
    pub fn open(
        dir: &Path,
        backend: Arc<dyn SlurmBackend + Send + Sync>,
        config: PollerConfig,
        clock: Arc<dyn Clock>,
    ) -> io::Result<View> {
        for sub in ["lease", "want"] {
            std::fs::create_dir_all(dir.join(sub))?;
            crate::util::remove_stale_temps(&dir.join(sub), HUNG_AFTER);
        }
        let me = Wants::new(&config);
        let name = format!(
            "{}-{}.json",
            me.pid,
            std::iter::repeat_with(fastrand::alphanumeric)
                .take(8)
                .collect::<String>()
        );
        let view = View {
            dir: dir.to_path_buf(),
            backend,
            base: config,
            clock,
            me,
            name,
            owner: None,
            seen: None,
            last: None,
        };
        view.write_wants()?;
        Ok(view)
    }

    #[cfg(test)]
    pub fn is_owner(&self) -> bool {
        self.owner.is_some()
    }

    /// When the next tick is due.
    pub fn next_wake(&self) -> Instant {
        let tick = self.clock.now() + TICK;
        self.owner
            .as_ref()
            .map_or(tick, |o| tick.min(o.core.next_due()))
    }

    fn write_wants(&self) -> io::Result<()> {
        let body = serde_json::to_vec(&self.me).map_err(io::Error::other)?;
        crate::util::write_atomic(&self.dir.join("want").join(&self.name), &body)
    }

    /// Takes in what this process asked for (ids to follow or forget, names, a poke).
    pub fn ask(&mut self, req: Requests) {
        let before = self.me.clone();
        self.me
            .ids
            .extend(req.ids.iter().map(|i| i.trim().to_string()));
        self.me.ids.retain(|i| !i.is_empty());
        for id in &req.forget {
            self.me.ids.remove(id);
        }
        self.me.names.extend(req.names.iter().cloned());
        if let Some(o) = &mut self.owner {
            o.core.register_ids(req.ids);
            o.core.register_names(req.names);
            if req.poked {
                o.core.poke();
            }
        } else if req.poked {
            self.me.pokes += 1;
        }
        if self.me != before {
            // A member whose wants cannot be written still reads the view; the owner polls the
            // user's jobs anyway.
            let _ = self.write_wants();
        }
    }

    /// One step: a reader reads a new snapshot, or takes over from a dead owner; the owner
    /// renews its lease, reads the wants and polls when due. Returns a snapshot to publish.
    pub fn tick(&mut self) -> Option<JobsSnapshot> {
        if self.owner.is_some() && self.lost() {
            self.owner = None;
        }
        if self.owner.is_none() {
            let fresh = self.read_snapshot();
            if !self.owner_alive() && self.take_lease() {
                return self.owner_tick();
            }
            return fresh;
        }
        self.owner_tick()
    }

    fn lease_dir(&self) -> PathBuf {
        self.dir.join("lease")
    }

    fn lost(&self) -> bool {
        self.owner
            .as_ref()
            .is_some_and(|o| self.lost_generation(o.generation))
    }

    /// Whether the newest lease names a live owner.
    fn owner_alive(&self) -> bool {
        let Some((_, path)) = crate::util::numbered_files(&self.lease_dir(), ".json").pop() else {
            return false;
        };
        let now = self.clock.wall();
        let lease = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<OwnerLease>(&b).ok());
        match lease {
            Some(l) => {
                !l.released
                    && crate::util::process_alive(l.pid, l.pid_start)
                    && unix(now) - l.heartbeat < HUNG_AFTER.as_secs_f64()
            }
            // Half written by hand, or damaged: held until its mtime is old.
            None => std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).unwrap_or_default() < HUNG_AFTER),
        }
    }

    fn lease_body(&self, generation: u64, released: bool) -> io::Result<Vec<u8>> {
        serde_json::to_vec(&OwnerLease {
            generation,
            pid: self.me.pid,
            pid_start: self.me.pid_start,
            heartbeat: unix(self.clock.wall()),
            released,
        })
        .map_err(io::Error::other)
    }

    /// Takes the next generation; false when another member took it first (or the disk refused).
    fn take_lease(&mut self) -> bool {
        let files = crate::util::numbered_files(&self.lease_dir(), ".json");
        let generation = files.last().map_or(1, |(g, _)| g + 1);
        let path = self.lease_dir().join(format!("{generation}.json"));
        let Ok(body) = self.lease_body(generation, false) else {
            return false;
        };
        if crate::util::create_atomic(&path, &body).is_err() {
            return false;
        }
        // Older generations only tell history.
        for (_, old) in files {
            let _ = std::fs::remove_file(old);
        }
        let mut core = PollerCore::new(self.backend.clone(), self.base.clone(), self.clock.clone());
        if let Some(last) = &self.last {
            let age = self
                .clock
                .wall()
                .duration_since(from_unix(last.taken_at.unwrap_or(0.0)))
                .unwrap_or_default();
            let charges: Vec<(SystemTime, u64)> = last
                .charges
                .iter()
                .map(|(t, c)| (from_unix(*t), *c))
                .collect();
            if age < SEED_WITHIN {
                let snap = self.to_snapshot(last);
                core.seed(&snap, &charges, last.history_s.map(Duration::from_secs));
            } else {
                core.seed(&JobsSnapshot::default(), &charges, None);
            }
        }
        core.register_ids(self.me.ids.iter().cloned());
        core.register_names(self.me.names.iter().cloned());
        self.owner = Some(Owner {
            core,
            generation,
            lease: path,
            beat: self.clock.now(),
            pokes: HashMap::new(),
            wants_seen: None,
            wants_read: None,
        });
        true
    }

    fn owner_tick(&mut self) -> Option<JobsSnapshot> {
        let now = self.clock.now();
        let beat = self
            .owner
            .as_ref()
            .is_some_and(|o| now.saturating_duration_since(o.beat) >= HEARTBEAT_EVERY);
        if beat && let Some(o) = &self.owner {
            if let Ok(body) = self.lease_body(o.generation, false) {
                let _ = crate::util::write_atomic(&o.lease, &body);
            }
            if let Some(o) = &mut self.owner {
                o.beat = now;
            }
        }
        self.gather();
        let o = self.owner.as_mut()?;
        if self.clock.now() < o.core.next_due() || !o.core.cycle() {
            return None;
        }
        let snap = o.core.snapshot();
        let file = SnapshotFile {
            generation: o.generation,
            jobs: snap.jobs.clone(),
            settling: snap.settling.clone(),
            taken_at: snap.taken_at.map(unix),
            stale: snap.stale,
            error: snap.error.clone(),
            rpc_per_min: snap.rpc_per_min,
            rpc_total: snap.rpc_total,
            partitions: snap.partitions.clone(),
            next_poll_at: unix(self.clock.wall() + snap.next_poll_in),
            cycles: snap.cycles,
            charges: o
                .core
                .recent_charges()
                .into_iter()
                .map(|(t, c)| (unix(t), c))
                .collect(),
            history_s: o.core.history_read().map(|d| d.as_secs()),
        };
        if let Ok(body) = serde_json::to_vec(&file) {
            let _ = crate::util::write_atomic(&self.dir.join("snapshot.json"), &body);
        }
        self.last = Some(file);
        Some(self.localize(snap))
    }

    /// The owner reads the members' wants when the directory changed (or every few seconds),
    /// drops those of dead members, and polls for the union.
    fn gather(&mut self) {
        let want_dir = self.dir.join("want");
        let stamp = std::fs::metadata(&want_dir).and_then(|m| m.modified()).ok();
        let now = self.clock.now();
        let Some(o) = &mut self.owner else { return };
        let due = o
            .wants_read
            .is_none_or(|t| now.saturating_duration_since(t) >= WANTS_EVERY);
        if stamp.is_some() && stamp == o.wants_seen && !due {
            return;
        }
        o.wants_seen = stamp.filter(|t| settled(*t));
        o.wants_read = Some(now);
        let mut all = vec![self.me.clone()];
        let Ok(rd) = std::fs::read_dir(&want_dir) else {
            return;
        };
        let mut files = Vec::new();
        for e in rd.flatten() {
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if name == self.name || crate::util::is_temp_name(&name) {
                continue;
            }
            let Some(w) = std::fs::read(e.path())
                .ok()
                .and_then(|b| serde_json::from_slice::<Wants>(&b).ok())
            else {
                continue;
            };
            if !w.alive() {
                let _ = std::fs::remove_file(e.path());
                o.pokes.remove(&name);
                continue;
            }
            files.push((name, w));
        }
        for (name, w) in files {
            // A member's first sight is no poke: its count tells what it asked of earlier owners.
            let seen = o.pokes.insert(name, w.pokes);
            if seen.is_some_and(|s| w.pokes > s) {
                o.core.poke();
            }
            all.push(w);
        }
        apply(&mut o.core, &all);
    }

    fn read_snapshot(&mut self) -> Option<JobsSnapshot> {
        let path = self.dir.join("snapshot.json");
        let stamp = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
        if self.seen == Some(stamp) {
            return None;
        }
        let file: SnapshotFile = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
        self.seen = Some(stamp).filter(|t| settled(*t));
        let same = |l: &SnapshotFile| (l.generation, l.cycles) == (file.generation, file.cycles);
        if self.last.as_ref().is_some_and(same) {
            return None;
        }
        let snap = self.to_snapshot(&file);
        self.last = Some(file);
        Some(self.localize(snap))
    }

    fn to_snapshot(&self, f: &SnapshotFile) -> JobsSnapshot {
        let (now, wall) = (self.clock.now(), self.clock.wall());
        let taken_at = f.taken_at.map(from_unix);
        let fetched = taken_at.map(|t| {
            let age = wall.duration_since(t).unwrap_or_default();
            now.checked_sub(age).unwrap_or(now)
        });
        JobsSnapshot {
            jobs: f.jobs.clone(),
            registered: BTreeSet::new(),
            settling: f.settling.clone(),
            taken_at,
            fetched,
            stale: f.stale,
            error: f.error.clone(),
            rpc_per_min: f.rpc_per_min,
            rpc_total: f.rpc_total,
            partitions: f.partitions.clone(),
            next_poll_in: from_unix(f.next_poll_at)
                .duration_since(wall)
                .unwrap_or_default(),
            cycles: f.cycles,
        }
    }

    /// The view as this member sees it: its own jobs marked as registered.
    fn localize(&self, mut snap: JobsSnapshot) -> JobsSnapshot {
        snap.registered = snap
            .jobs
            .iter()
            .filter(|j| {
                self.me.names.contains(&j.name) || self.me.ids.iter().any(|id| id_matches(j, id))
            })
            .map(|j| j.id.clone())
            .collect();
        snap
    }

    /// Leaves the view: the lease is released (the next member takes over at once) and the wants
    /// removed.
    pub fn leave(&mut self) {
        if let Some(o) = self.owner.take()
            && !self.lost_generation(o.generation)
            && let Ok(body) = self.lease_body(o.generation, true)
        {
            let _ = crate::util::write_atomic(&o.lease, &body);
        }
        let _ = std::fs::remove_file(self.dir.join("want").join(&self.name));
    }

    fn lost_generation(&self, generation: u64) -> bool {
        crate::util::numbered_files(&self.lease_dir(), ".json")
            .last()
            .is_none_or(|(g, _)| *g != generation)
    }

    /// Stops as a crashed process would: no release, the wants left behind (tests).
    #[cfg(test)]
    fn crash(self) {}
}

/// Polls for the union of the wants: the smallest budget, the shortest interval, the longest
/// history and the most frequent partitions any member asked for.
fn apply(core: &mut PollerCore, all: &[Wants]) {
    for w in all {
        core.register_ids(w.ids.iter().cloned());
        core.register_names(w.names.iter().cloned());
    }
    if let Some(b) = all
        .iter()
        .map(|w| w.budget_per_min)
        .filter(|b| *b > 0)
        .min()
        && b != core.config().budget_per_min
    {
        core.set_budget(b);
    }
    if let Some(i) = all
        .iter()
        .map(|w| w.interval_s)
        .filter(|i| *i > 0.0)
        .min_by(f64::total_cmp)
    {
        let i = Duration::from_secs_f64(i);
        if i != core.config().interval {
            core.set_interval(i);
        }
    }
    if let Some(h) = all.iter().filter_map(|w| w.history_s).max() {
        core.want_history(Duration::from_secs(h));
    }
    let parts = all
        .iter()
        .filter_map(|w| w.partitions_s)
        .min()
        .map(Duration::from_secs);
    if parts.is_some() && parts != core.config().partitions_every {
        core.set_partitions_every(parts);
    }
}

/// Joins the view in `dir` on a thread of its own; the handle works as a private poller's does.
pub fn spawn(
    dir: &Path,
    backend: Arc<dyn SlurmBackend + Send + Sync>,
    config: PollerConfig,
) -> io::Result<PollerHandle> {
    spawn_with_clock(dir, backend, config, Arc::new(SystemClock))
}

pub fn spawn_with_clock(
    dir: &Path,
    backend: Arc<dyn SlurmBackend + Send + Sync>,
    config: PollerConfig,
    clock: Arc<dyn Clock>,
) -> io::Result<PollerHandle> {
    let mut view = View::open(dir, backend, config, clock.clone())?;
    let shared = Arc::new(Shared::default());
    let inner = shared.clone();
    PollerHandle::spawned("sortie-slurm-view", shared, move || {
        if let Some(snap) = view.tick() {
            inner.publish(snap);
        }
        loop {
            let req = {
                let mut ctl = inner.wait(clock.as_ref(), view.next_wake());
                if ctl.stop {
                    break;
                }
                ctl.take()
            };
            view.ask(req);
            if let Some(snap) = view.tick() {
                inner.publish(snap);
            }
        }
        view.leave();
    })
}

#[cfg(test)]
#[path = "shared_tests.rs"]
mod tests;
