//! Drives one run: holds the lease, launches ready steps within the parallelism, records every change in the
//! event log, retries with backoff, blocks dependents of failures, answers control requests, and keeps the
//! host's index fed with metrics while steps run. A resumed run starts from the fold of its log.

use super::cache;
use super::create::load_plan;
use super::progress::{Counts, Progress, ProgressMode};
use crate::executor::slurm::SlurmExecutor;
use crate::executor::{Executor, Finished, LocalExecutor};
use crate::index::Index;
use crate::index::worker::IndexWorker;
use crate::pipeline::Plan;
use crate::runlog::events::{Event, EventWriter, SlurmRequest};
use crate::runlog::lease::{self, Lease};
use crate::runlog::state::{RunFold, StepFold, fold};
use crate::runlog::{Project, RunDir, RunState, StepState};
use color_eyre::eyre::{Result, WrapErr, eyre};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

mod attempt_end;
mod ending;
mod launch;
mod requests;
mod resume;
mod slurm;

/// How to drive a run.
#[derive(Clone, Debug)]
pub struct DriveOptions {
    /// Slots for concurrent steps (`-j`); default: the pipeline's `max_parallel`, else the number of cores.
    pub parallel: Option<usize>,
    pub fail_fast: bool,
    pub progress: ProgressMode,
}

impl Default for DriveOptions {
    fn default() -> Self {
        DriveOptions {
            parallel: None,
            fail_fast: false,
            progress: ProgressMode::Quiet,
        }
    }
}

/// What the engine keeps of one step instance beside its fold (state, attempts, the retry round, cache
/// key, Slurm job): timers, the attempt it watches, and what only this process knows.
#[derive(Clone, Debug)]
struct Slot {
    not_before: Option<Instant>,
    /// The attempt an executor runs for this engine (its end is awaited).
    running: Option<u32>,
    cancel_requested: bool,
    started: Option<Instant>,
    /// Slots of parallelism it takes while running.
    weight: usize,
    /// The running attempt was started by an engine that died (this one adopted it).
    adopted: bool,
    launch: Launch,
    /// What the next Slurm attempt asks for beyond the step's resources (grown after OOM/timeouts,
    /// with what Slurm said of the job, which the log does not keep).
    request: SlurmRequest,
    /// The current attempt was never submitted (its intent is in the log, no job exists): submit it
    /// again under the same number.
    resubmit: bool,
    /// Cancelled by the engine because a job it waits on (afterok) failed: it ends like a failed
    /// dependency (resubmitted after the parent's retry, or blocked), not like a cancel.
    dep_cancel: bool,
}

/// The two ways a step's attempts start. They differ in more than the call that starts them, so the
/// engine names them instead of hiding the second behind [`Executor`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Launch {
    /// One attempt at a time through [`Executor::launch`], within the run's parallelism; a resumed
    /// engine adopts it through [`Executor::adopt`].
    Local,
    /// Submitted by `slurm.rs`: matrix instances together as arrays, dependents at once with `afterok`
    /// on the jobs they need, the intent logged before `sbatch`, capped by `max_queued`; a resumed
    /// engine follows its job, or finds it by name.
    Slurm,
}

impl Launch {
    fn of(inst: &crate::pipeline::Instance) -> Launch {
        match inst.executor {
            crate::pipeline::ExecutorKind::Local => Launch::Local,
            crate::pipeline::ExecutorKind::Slurm => Launch::Slurm,
        }
    }

    /// Its dependents are submitted while it runs, held by the cluster until it succeeds (and killed
    /// by it when it does not).
    fn holds_dependents(self) -> bool {
        self == Launch::Slurm
    }
}

struct Engine {
    run: RunDir,
    run_id: String,
    plan: Plan,
    log: EventWriter,
    /// The fold of the run's log, kept current: every event the engine appends is applied to it.
    fold: RunFold,
    /// Where each step instance is in `fold.steps`.
    at: Vec<usize>,
    lease: Lease,
    exec: Arc<dyn Executor>,
    index: IndexWorker,
    slots: Vec<Slot>,
    by_name: HashMap<String, usize>,
    members: HashMap<String, Vec<usize>>,
    parallel: usize,
    in_use: usize,
    cancelling: bool,
    /// Why the run is being cancelled (interrupted, terminated, cancelled by request), for pending steps.
    cancel_reason: String,
    fail_fast: bool,
    tripped: bool,
    done_tx: mpsc::UnboundedSender<Finished>,
    progress: Progress,
    durations: (f64, usize),
    host: String,
    /// Cache key → attempt dir of a success, loaded once from the index and kept current, so deciding
    /// the cache costs no round trip to SQLite per step.
    known: HashMap<String, String>,
    /// Step instance → dir of its latest success (to explain a miss).
    last_ok: HashMap<String, String>,
    /// Workdirs already created.
    made_dirs: std::collections::HashSet<std::path::PathBuf>,
    /// Present when any step runs on Slurm.
    slurm: Option<Arc<SlurmExecutor>>,
    /// Numbers Slurm job names (`group.SEQ.run`), so each submission's name is unique.
    submit_seq: u32,
    /// When the run was created (unix seconds): where looking for its jobs in accounting starts.
    created: f64,
    /// Set at SIGINT/SIGTERM; a hash it stopped leaves its step pending for the cancel that follows.
    interrupt: Arc<std::sync::atomic::AtomicBool>,
}

/// Drives `run` until it finishes (or the lease is lost). Returns the run's final state.
pub async fn drive(project: &Project, run: &RunDir, opts: DriveOptions) -> Result<RunState> {
    let plan = load_plan(run)?;
    let grace = crate::runlog::liveness::heartbeat_grace().map_err(crate::util::user_error)?;
    let lease = Lease::acquire(run).map_err(|e| match e {
        // Another engine won the run (e.g. two resumes at once): a usage matter, not a fault.
        lease::LeaseError::Held(_) => crate::util::user_error(format!("run {}: {e}", run.id())),
        lease::LeaseError::Io(_) => eyre!("run {}: {e}", run.id()),
    })?;
    let mut index =
        Index::open_project(project).map_err(|e| eyre!("cannot open the index: {e}"))?;
    let interrupt = cache::interrupt_on_signals()?;
    index.set_interrupt(interrupt.clone());
    let index = IndexWorker::spawn(index);
    let project2 = project.clone();
    // Earlier runs' results feed the cache: bring the index up to date first.
    index
        .call(move |ix| ix.sync_all(&project2).map(|_| ()))
        .await
        .ok_or_else(|| eyre!("the index thread stopped"))?
        .map_err(|e| eyre!("cannot update the index: {e}"))?;
    let successes = index
        .call(|ix| ix.successes())
        .await
        .ok_or_else(|| eyre!("the index thread stopped"))?
        .map_err(|e| eyre!("cannot read the index: {e}"))?;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let exec = LocalExecutor::new(grace, &run.path);
    let mut eng = Engine::new(run, plan, lease, index, exec, done_tx, &opts)?;
    eng.interrupt = interrupt;
    for a in successes {
        let dir = a.dir.to_string_lossy().into_owned();
        if let Some(k) = a.cache_key {
            eng.known.insert(k, dir.clone());
        }
        eng.last_ok.insert(a.step, dir);
    }
    eng.resume().await?;
    // A retry or re-run of a run nobody drove arrives as a request file: answer it before the first pass.
    eng.handle_requests()?;
    eng.reopen_if_needed()?;

    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_beat = Instant::now();
    let mut last_sync = Instant::now();
    let sync_busy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut slurm_stale = false;

    loop {
        eng.schedule().await?;
        if eng.finished() {
            break;
        }
        tokio::select! {
            Some(f) = done_rx.recv() => {
                eng.on_finished(f)?;
                while let Ok(f) = done_rx.try_recv() {
                    eng.on_finished(f)?;
                }
            }
            _ = tick.tick() => {
                eng.handle_requests()?;
                if let Some(sl) = &eng.slurm {
                    let (notices, stale) = (sl.take_notices(), sl.stale());
                    for n in notices {
                        eng.progress.summary(&n);
                    }
                    // Say when Slurm stops answering and when it is back, once each.
                    if stale.is_some() != slurm_stale {
                        slurm_stale = stale.is_some();
                        eng.progress.summary(&match stale {
                            Some(e) => format!(
                                "Slurm does not answer ({e}); its data is stale, step ends are read from exit-code files meanwhile"
                            ),
                            None => "Slurm answers again".to_string(),
                        });
                    }
                }
                if last_beat.elapsed() >= lease::heartbeat_interval() {
                    last_beat = Instant::now();
                    if !eng.lease.heartbeat().unwrap_or(true) {
                        return Err(eyre!(
                            "run {}: another engine took over this run; this one stops (its steps keep running)",
                            eng.run_id
                        ));
                    }
                }
                if last_sync.elapsed() >= Duration::from_secs(1)
                    && !sync_busy.swap(true, std::sync::atomic::Ordering::SeqCst)
                {
                    last_sync = Instant::now();
                    let rd = eng.run.clone();
                    let busy = sync_busy.clone();
                    eng.index.submit(move |ix| {
                        let _ = ix.sync_run(&rd);
                        busy.store(false, std::sync::atomic::Ordering::SeqCst);
                    });
                }
            }
            _ = sigint.recv() => {
                eng.cancel_all("interrupted");
            }
            _ = sigterm.recv() => {
                eng.cancel_all("terminated");
            }
            // A closed terminal must not stop the run.
            _ = sighup.recv() => {}
        }
    }
    eng.finish().await
}

impl Engine {
    fn new(
        run: &RunDir,
        plan: Plan,
        lease: Lease,
        index: IndexWorker,
        exec: LocalExecutor,
        done_tx: mpsc::UnboundedSender<Finished>,
        opts: &DriveOptions,
    ) -> Result<Engine> {
        // A resumed run starts from where its log left it.
        let records = crate::runlog::events::read_all(&run.events())?;
        let fold = fold(&records)
            .ok_or_else(|| eyre!("{} has no run_created event", run.events().display()))?;
        let parallel = opts
            .parallel
            .or(plan.max_parallel)
            .unwrap_or_else(crate::util::cores)
            .max(1);
        let mut by_name = HashMap::new();
        let mut members: HashMap<String, Vec<usize>> = HashMap::new();
        let mut slots = Vec::with_capacity(plan.instances.len());
        for (i, inst) in plan.instances.iter().enumerate() {
            by_name.insert(inst.name.clone(), i);
            members.entry(inst.group.clone()).or_default().push(i);
            slots.push(Slot {
                not_before: None,
                running: None,
                cancel_requested: false,
                started: None,
                weight: match Launch::of(inst) {
                    Launch::Local => (inst.resources.cpus.unwrap_or(1) as usize).clamp(1, parallel),
                    // The cluster schedules it: it takes no local slots.
                    Launch::Slurm => 0,
                },
                adopted: false,
                launch: Launch::of(inst),
                request: SlurmRequest::default(),
                resubmit: false,
                dep_cancel: false,
            });
        }
        let at = plan
            .instances
            .iter()
            .map(|inst| {
                fold.steps.get_index_of(&inst.name).ok_or_else(|| {
                    eyre!(
                        "run {}: step {} of plan.json is not in its events.jsonl",
                        run.id(),
                        inst.name
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let log = EventWriter::open(&run.events())
            .wrap_err_with(|| format!("cannot append to {}", run.events().display()))?;
        let slurm = match slots.iter().position(|s| s.launch == Launch::Slurm) {
            Some(i) => Some(Arc::new(SlurmExecutor::start(&plan.slurm).map_err(
                |e| {
                    crate::util::user_error(format!(
                        "run {}: step {} uses the slurm executor: {e}",
                        run.id(),
                        plan.instances[i].group
                    ))
                },
            )?)),
            None => None,
        };
        Ok(Engine {
            run: run.clone(),
            run_id: run.id(),
            plan,
            log,
            fold,
            at,
            lease,
            exec: Arc::new(exec),
            index,
            slots,
            by_name,
            members,
            parallel,
            in_use: 0,
            cancelling: false,
            cancel_reason: String::new(),
            fail_fast: opts.fail_fast,
            tripped: false,
            done_tx,
            progress: Progress::new(opts.progress),
            durations: (0.0, 0),
            host: crate::util::host(),
            known: HashMap::new(),
            last_ok: HashMap::new(),
            made_dirs: Default::default(),
            slurm,
            submit_seq: 0,
            created: 0.0,
            interrupt: Default::default(),
        })
    }

    /// Appends an event to the log, then applies it to the fold: what the engine knows is what the log
    /// says.
    pub(super) fn emit(&mut self, event: Event) -> Result<()> {
        let rec = self
            .log
            .append(event)
            .wrap_err_with(|| format!("cannot append to {}", self.log.path().display()))?;
        crate::runlog::state::apply(&mut self.fold, &rec);
        Ok(())
    }

    /// Step instance `i` as its log tells it.
    pub(super) fn step(&self, i: usize) -> &StepFold {
        &self.fold.steps[self.at[i]]
    }

    /// Step `i`'s state as the scheduler sees it: an attempt whose submission never happened waits to be
    /// submitted again, like a pending step.
    pub(super) fn state(&self, i: usize) -> StepState {
        match self.step(i).state {
            StepState::Running if self.slots[i].resubmit => StepState::Pending,
            st => st,
        }
    }

    /// Rebuilds the state from the log; adopts attempts a dead engine left running.
    pub(super) fn instances_named(&self, name: &str) -> Vec<usize> {
        if let Some(&i) = self.by_name.get(name) {
            return vec![i];
        }
        self.members.get(name).cloned().unwrap_or_default()
    }

    pub(super) fn set_state(
        &mut self,
        i: usize,
        state: StepState,
        reason: Option<String>,
        force: bool,
    ) -> Result<()> {
        let name = self.plan.instances[i].name.clone();
        if state == StepState::Pending {
            self.slots[i].not_before = None;
        }
        self.progress
            .step(state, &name, reason.as_deref().unwrap_or(""));
        self.emit(Event::StepState {
            step: name,
            state,
            reason,
            force,
        })
    }

    /// Every step's state as the scheduler sees it.
    pub(super) fn states(&self) -> impl Iterator<Item = StepState> + '_ {
        (0..self.slots.len()).map(|i| self.state(i))
    }

    pub(super) fn finished(&self) -> bool {
        self.states().all(|s| {
            !matches!(
                s,
                StepState::Pending | StepState::Queued | StepState::Running
            )
        })
    }

    pub(super) fn counts(&self) -> Counts {
        let mut c = Counts {
            total: self.slots.len(),
            parallel: self.parallel,
            mean_secs: (self.durations.1 > 0).then(|| self.durations.0 / self.durations.1 as f64),
            ..Default::default()
        };
        for s in self.states() {
            match s {
                st if st.is_done_ok() => c.done += 1,
                StepState::Running => c.running += 1,
                StepState::Failed => c.failed += 1,
                StepState::Blocked | StepState::Cancelled => c.other_final += 1,
                _ => {}
            }
        }
        c
    }

    pub(super) fn show_status(&mut self) {
        let c = self.counts();
        self.progress.status(&c);
    }

    async fn finish(mut self) -> Result<RunState> {
        let state = if self.states().all(StepState::is_done_ok) {
            RunState::Succeeded
        } else if self.cancelling
            || self.states().any(|s| s == StepState::Cancelled) && !self.tripped
        {
            RunState::Cancelled
        } else {
            RunState::Failed
        };
        // Requests that arrived at the very end are answered, not left hanging.
        self.handle_requests()?;
        self.emit(Event::RunState { state })?;
        self.emit(Event::EngineStopped {
            host: self.host.clone(),
            pid: std::process::id(),
            reason: format!("run {state}"),
        })?;
        let _ = self.log.sync();
        let rd = self.run.clone();
        let _ = self
            .index
            .call(move |ix| ix.sync_run(&rd).map(|_| ()))
            .await;
        self.progress.finish();
        let c = self.counts();
        let _ = self.lease.release();
        self.progress.summary(&format!(
            "run {} {}: {} of {} steps done, {} failed, {} blocked or cancelled",
            self.run_id, state, c.done, c.total, c.failed, c.other_final
        ));
        Ok(state)
    }
}
