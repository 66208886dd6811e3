//! The SLURM executor: submits attempts with `sbatch` and learns how they ended from two witnesses, the
//! exit-code sentinel each batch script writes and Slurm's own record (one budgeted poller for the
//! whole run, see [`crate::slurm::poller`]). The engine decides what to submit, with which
//! dependencies and as which arrays (`engine::scheduler`); this type does the Slurm side.
//!
//! A monitor thread checks the sentinels of the tracked attempts every second (a `stat` each, no
//! Slurm call), reads the poller's latest snapshot, and reports each attempt's end once
//! [`verdict::decide`] can tell it. Cancels are batched into one `scancel`.

pub mod script;
pub mod verdict;

use super::{Finished, JobFacts, read_exit_file};
use crate::pipeline::SlurmSettings;
use crate::slurm::connect;
use crate::slurm::poller::{Poller, PollerConfig, PollerHandle};
use crate::slurm::{HistoryQuery, Job, JobQuery, SlurmBackend, SlurmError};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;
use verdict::{Observation, Seen, Verdict, decide};

/// How long a job may sit in `DependencyNeverSatisfied` before the user is told.
const NEVER_STARTS_AFTER: Duration = Duration::from_secs(120);

/// Slurm's default `MaxArraySize`, used when the cluster's cannot be read.
const DEFAULT_MAX_ARRAY: usize = 1001;

struct Tracked {
    job_id: String,
    dir: PathBuf,
    since: Instant,
    cancel_requested: bool,
    cancel_confirmed: bool,
    /// Since when the job has been ended (or unknown) without a visible sentinel.
    missing_since: Option<Instant>,
    /// Since when it has been pending with `DependencyNeverSatisfied`.
    never_since: Option<Instant>,
    /// A sentinel that needs Slurm's word (a kill) asked for a poll.
    poked: bool,
    done: UnboundedSender<Finished>,
}

#[derive(Default)]
struct State {
    tracked: HashMap<(String, u32), Tracked>,
    cancels: Vec<String>,
    stop: bool,
    notices: Vec<String>,
    warned: HashSet<String>,
    /// The poller's last error, for the engine's status line.
    stale: Option<String>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct SlurmExecutor {
    /// The chosen backend ([`connect`]): polls, look-ups, cancels.
    backend: Arc<dyn SlurmBackend + Send + Sync>,
    /// The commands, for `sbatch`.
    commands: Arc<dyn SlurmBackend + Send + Sync>,
    poller: Arc<PollerHandle>,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    max_array: OnceLock<usize>,
}

impl SlurmExecutor {
    /// Starts the poller and the monitor. Slurm's commands must be on PATH.
    pub fn start(settings: &SlurmSettings) -> Result<SlurmExecutor, String> {
        if !crate::util::on_path("sbatch") {
            return Err("no SLURM on this host: sbatch is not on PATH".into());
        }
        let backend = connect::open(false, None, None).map_err(|e| e.to_string())?;
        // slurmrestd cannot submit a batch script file here: sbatch always does.
        let commands = connect::commands(None).map_err(|e| e.to_string())?;
        // One poll for every engine, TUI and watcher of this user on this host.
        let poller = Arc::new(Poller::spawn_shared(
            backend.clone(),
            PollerConfig {
                user: Some(crate::util::user()),
                budget_per_min: settings.poll_budget,
                history_window: Duration::from_secs(14 * 24 * 3600),
                initial_history: false,
                partitions_every: None,
                ..PollerConfig::default()
            },
        ));
        let shared = Arc::new(Shared::default());
        let grace = Duration::from_secs_f64(settings.nfs_grace_s.max(0.0));
        let (s, p, b) = (shared.clone(), poller.clone(), backend.clone());
        let thread = std::thread::Builder::new()
            .name("sortie-slurm-monitor".into())
            .spawn(move || monitor(&s, &p, b.as_ref(), grace))
            .map_err(|e| format!("cannot start the Slurm monitor: {e}"))?;
        Ok(SlurmExecutor {
            backend,
            commands,
            poller,
            shared,
            thread: Mutex::new(Some(thread)),
            max_array: OnceLock::new(),
        })
    }

    /// `sbatch --parsable ARGS SCRIPT`; blocking, so call it from a blocking thread.
    pub fn submit(&self, script: &Path, args: &[String]) -> Result<String, SlurmError> {
        // No poke: a new job's end is read from its sentinel, and polling at once would spend the
        // budget when nothing can have happened yet.
        self.commands.submit(script, args)
    }

    /// Follows an attempt until it ends; its end is sent on `done`.
    pub fn track(
        &self,
        step: &str,
        attempt: u32,
        job_id: &str,
        dir: &Path,
        done: UnboundedSender<Finished>,
    ) {
        self.poller.register([job_id.to_string()]);
        lock(&self.shared.state).tracked.insert(
            (step.to_string(), attempt),
            Tracked {
                job_id: job_id.to_string(),
                dir: dir.to_path_buf(),
                since: Instant::now(),
                cancel_requested: false,
                cancel_confirmed: false,
                missing_since: None,
                never_since: None,
                poked: false,
                done,
            },
        );
        self.shared.wake.notify_all();
    }

    /// Asks Slurm to cancel an attempt's job (batched with others into one `scancel`).
    pub fn cancel(&self, step: &str, attempt: u32) {
        let mut st = lock(&self.shared.state);
        let id = match st.tracked.get_mut(&(step.to_string(), attempt)) {
            Some(t) if !t.cancel_requested => {
                t.cancel_requested = true;
                t.job_id.clone()
            }
            _ => return,
        };
        st.cancels.push(id);
        drop(st);
        self.shared.wake.notify_all();
    }

    /// Messages for the user (jobs that will never start, failed cancels), each once.
    pub fn take_notices(&self) -> Vec<String> {
        std::mem::take(&mut lock(&self.shared.state).notices)
    }

    /// Why the latest Slurm data is old, if it is.
    pub fn stale(&self) -> Option<String> {
        lock(&self.shared.state).stale.clone()
    }

    /// The largest array this cluster takes (`MaxArraySize` − 1 is the largest index).
    pub fn max_array_size(&self) -> usize {
        *self.max_array.get_or_init(|| {
            let out = std::process::Command::new("scontrol")
                .args(["show", "config"])
                .output();
            out.ok()
                .and_then(|o| {
                    String::from_utf8_lossy(&o.stdout).lines().find_map(|l| {
                        let (k, v) = l.split_once('=')?;
                        (k.trim() == "MaxArraySize").then(|| v.trim().parse().ok())?
                    })
                })
                .filter(|&n: &usize| n > 0)
                .unwrap_or(DEFAULT_MAX_ARRAY)
        })
    }

    /// The job submitted under `name` since `since` (unix seconds), if any: the array's id for an
    /// array. Looks in the queue, then in accounting. Blocking.
    pub fn find_by_name(&self, name: &str, since: i64) -> Result<Option<String>, SlurmError> {
        let user = Some(crate::util::user());
        let base = |j: &Job| {
            j.array_job_id
                .or(j.job_id_raw)
                .map(|n| n.to_string())
                .or_else(|| crate::slurm::JobId::parse(&j.id).map(|id| id.base()))
        };
        let live = self.backend.jobs(&JobQuery {
            user: user.clone(),
            names: vec![name.to_string()],
            ..JobQuery::default()
        })?;
        if let Some(id) = live.iter().filter(|j| j.name == name).find_map(base) {
            return Ok(Some(id));
        }
        let past = self.backend.history(&HistoryQuery {
            since: since - 60,
            user,
            names: vec![name.to_string()],
            ..HistoryQuery::default()
        })?;
        Ok(past.iter().filter(|j| j.name == name).find_map(base))
    }
}

impl Drop for SlurmExecutor {
    fn drop(&mut self) {
        lock(&self.shared.state).stop = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
        self.poller.stop();
    }
}

/// How often the sentinels are looked at: each is a `stat`, cheap, but not free on NFS.
fn sentinel_interval(tracked: usize) -> Duration {
    if tracked <= 256 {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(5)
    }
}

fn monitor(shared: &Shared, poller: &PollerHandle, backend: &dyn SlurmBackend, grace: Duration) {
    loop {
        let (cancels, tracked_n) = {
            let st = lock(&shared.state);
            let wait = sentinel_interval(st.tracked.len());
            let mut st = if st.cancels.is_empty() && !st.stop {
                shared
                    .wake
                    .wait_timeout(st, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            } else {
                st
            };
            if st.stop {
                return;
            }
            (std::mem::take(&mut st.cancels), st.tracked.len())
        };
        if !cancels.is_empty() {
            let result = backend.cancel(&cancels);
            let mut st = lock(&shared.state);
            match result {
                Ok(()) => {
                    for t in st.tracked.values_mut() {
                        if cancels.contains(&t.job_id) {
                            t.cancel_confirmed = true;
                        }
                    }
                }
                // A controller that does not answer gets the cancel again on the next round.
                Err(e) if e.is_transient() => {
                    st.notices
                        .push(format!("scancel {}: {e}", cancels.join(" ")));
                    st.cancels.extend(cancels);
                }
                // Slurm refused because a job has already ended (or is gone): it is not running.
                Err(_) => {
                    for t in st.tracked.values_mut() {
                        if cancels.contains(&t.job_id) {
                            t.cancel_confirmed = true;
                        }
                    }
                }
            }
            drop(st);
            poller.poke();
        }
        if tracked_n == 0 {
            continue;
        }
        let snap = poller.snapshot();
        let now = Instant::now();
        let mut st = lock(&shared.state);
        st.stale = if snap.stale { snap.error.clone() } else { None };
        let keys: Vec<(String, u32)> = st.tracked.keys().cloned().collect();
        let index = crate::slurm::lookup::JobIndex::new(&snap.jobs);
        let mut notices = Vec::new();
        for key in keys {
            let Some(t) = st.tracked.get_mut(&key) else {
                continue;
            };
            let sentinel = read_exit_file(&t.dir);
            // Only a poll made after the submission can say the job is unknown.
            let fresh = snap.fetched.is_some_and(|f| f > t.since);
            let job = index.find(&snap.jobs, &t.job_id);
            let seen = match job {
                // A final state is final, even before accounting confirmed it.
                Some(j) if j.is_finished() => Seen::Ended(j),
                _ if snap.settling.contains(&t.job_id) => match job {
                    Some(j) => Seen::Active(j),
                    None => Seen::Unknown,
                },
                Some(j) if j.is_active() => Seen::Active(j),
                Some(_) => Seen::Unknown,
                None => Seen::Unknown,
            };
            let settling = snap.settling.contains(&t.job_id);
            let missing = sentinel.is_none()
                && match seen {
                    Seen::Ended(_) => true,
                    Seen::Unknown => fresh && !settling,
                    Seen::Active(_) => false,
                };
            if missing {
                if t.missing_since.is_none() {
                    // Listing the directory refreshes NFS attribute caches before the grace starts.
                    let _ = std::fs::read_dir(&t.dir).map(|d| d.count());
                }
                t.missing_since.get_or_insert(now);
            } else {
                t.missing_since = None;
            }
            let never = matches!(seen, Seen::Active(j)
                if j.reason.as_deref() == Some("DependencyNeverSatisfied"));
            if !never {
                t.never_since = None;
            }
            // `--kill-on-invalid-dep` normally removes such jobs within seconds: report the ones
            // that stay.
            if never && now - *t.never_since.get_or_insert(now) >= NEVER_STARTS_AFTER {
                notices.push((
                    t.job_id.clone(),
                    format!(
                        "{} attempt {}: Slurm job {} will never start (DependencyNeverSatisfied); \
                         cancel it with `sortie cancel` or `scancel {}`",
                        key.0, key.1, t.job_id, t.job_id
                    ),
                ));
            }
            if std::env::var_os("SORTIE_DEBUG_SLURM").is_some() {
                eprintln!(
                    "[monitor] {} {}: sentinel={sentinel:?} seen={:?} settling={settling} fresh={fresh} snap_jobs={} stale={} err={:?}",
                    key.0,
                    t.job_id,
                    match seen {
                        Seen::Active(j) => format!("active {}", j.state.name()),
                        Seen::Ended(j) => format!("ended {}", j.state.name()),
                        Seen::Unknown => "unknown".into(),
                    },
                    snap.jobs.len(),
                    snap.stale,
                    snap.error
                );
            }
            // The step was killed: Slurm knows why (OOM, time limit, preemption); ask it soon.
            if sentinel.is_some() && !verdict::self_explaining(&sentinel) && !t.poked {
                t.poked = true;
                poller.poke();
            }
            let obs = Observation {
                job_id: &t.job_id,
                sentinel,
                seen,
                cancel_requested: t.cancel_requested,
                cancel_confirmed: t.cancel_confirmed,
                missing_for: t.missing_since.map_or(Duration::ZERO, |s| now - s),
                grace,
            };
            if let Verdict::Done(outcome) = decide(&obs) {
                let facts = JobFacts {
                    job_id: Some(t.job_id.clone()),
                    mem_mb: job.and_then(|j| j.mem_mb),
                    time_limit_s: job.and_then(|j| j.time_limit_s),
                    nodes: job.and_then(|j| j.nodes.clone()),
                };
                let Some(t) = st.tracked.remove(&key) else {
                    continue;
                };
                poller.forget([t.job_id.clone()]);
                let _ = t.done.send(Finished {
                    step: key.0,
                    attempt: key.1,
                    outcome,
                    facts: Some(facts),
                });
            }
        }
        // Each job's notice once.
        for (id, msg) in notices {
            if st.warned.insert(id) {
                st.notices.push(msg);
            }
        }
    }
}
