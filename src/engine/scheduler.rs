//! Drives one run: holds the lease, launches ready steps within the parallelism, records every change in the
//! event log, retries with backoff, blocks dependents of failures, answers control requests, and keeps the
//! host's index fed with metrics while steps run. A resumed run starts from the fold of its log.

use super::cache;
use super::create::load_plan;
use super::progress::{Counts, Progress, ProgressMode};
use crate::executor::slurm::SlurmExecutor;
use crate::executor::{Executor, Finished, LaunchSpec, LocalExecutor, Outcome};
use crate::index::Index;
use crate::index::worker::IndexWorker;
use crate::pipeline::{Instance, Plan};
use crate::runlog::control::{self, Request};
use crate::runlog::events::{Event, EventWriter, SlurmRequest};
use crate::runlog::lease::{self, Lease};
use crate::runlog::state::fold;
use crate::runlog::{Project, RunDir, RunState, StepState};
use color_eyre::eyre::{Result, WrapErr, eyre};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

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

/// The engine's view of one step instance.
#[derive(Clone, Debug)]
struct Slot {
    state: StepState,
    /// The highest attempt number used so far.
    attempts: u32,
    /// Attempts since the last retry/rerun reset: the retry budget counts these.
    round: u32,
    key: Option<String>,
    force: bool,
    not_before: Option<Instant>,
    /// The dir dependents learn: the successful attempt's, or the reused one.
    result_dir: Option<String>,
    running: Option<u32>,
    cancel_requested: bool,
    started: Option<Instant>,
    /// Slots of parallelism it takes while running.
    weight: usize,
    /// The running attempt was started by an engine that died (this one adopted it).
    adopted: bool,
    /// Runs on the SLURM executor.
    on_slurm: bool,
    /// The Slurm job of the running (or submitted) attempt.
    job_id: Option<String>,
    /// What the next Slurm attempt asks for beyond the step's resources (grown after OOM/timeouts).
    request: SlurmRequest,
    /// The current attempt was never submitted (its intent is in the log, no job exists): submit it
    /// again under the same number.
    resubmit: bool,
    /// Cancelled by the engine because a job it waits on (afterok) failed: it ends like a failed
    /// dependency (resubmitted after the parent's retry, or blocked), not like a cancel.
    dep_cancel: bool,
    /// The jobs the current Slurm attempt waits on (`--dependency=afterok:...`).
    after: Vec<String>,
}

struct Engine {
    run: RunDir,
    run_id: String,
    plan: Plan,
    log: EventWriter,
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
    eng.resume()?;
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
                state: StepState::Pending,
                attempts: 0,
                round: 0,
                key: None,
                force: false,
                not_before: None,
                result_dir: None,
                running: None,
                cancel_requested: false,
                started: None,
                // Slurm steps take no local slots: the cluster schedules them.
                weight: if inst.executor == crate::pipeline::ExecutorKind::Slurm {
                    0
                } else {
                    (inst.resources.cpus.unwrap_or(1) as usize).clamp(1, parallel)
                },
                adopted: false,
                on_slurm: inst.executor == crate::pipeline::ExecutorKind::Slurm,
                job_id: None,
                request: SlurmRequest::default(),
                resubmit: false,
                dep_cancel: false,
                after: Vec::new(),
            });
        }
        let log = EventWriter::open(&run.events())
            .wrap_err_with(|| format!("cannot append to {}", run.events().display()))?;
        let slurm = match slots.iter().position(|s| s.on_slurm) {
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

    fn emit(&mut self, event: Event) -> Result<()> {
        self.log
            .append(event)
            .wrap_err_with(|| format!("cannot append to {}", self.log.path().display()))?;
        Ok(())
    }

    /// Rebuilds the state from the log; adopts attempts a dead engine left running.
    fn resume(&mut self) -> Result<()> {
        let records = crate::runlog::events::read_all(&self.run.events())?;
        let f = fold(&records)
            .ok_or_else(|| eyre!("{} has no run_created event", self.run.events().display()))?;
        let generation = self.lease.info.generation;
        self.created = records.first().map_or(0.0, |r| r.ts);
        self.submit_seq = slurm::last_submit_seq(&f);
        self.emit(Event::EngineStarted {
            host: self.host.clone(),
            pid: std::process::id(),
            generation,
        })?;
        for (i, inst) in self.plan.instances.clone().iter().enumerate() {
            let Some(s) = f.steps.get(&inst.name) else {
                continue;
            };
            let slot = &mut self.slots[i];
            slot.attempts = s.attempts.iter().map(|a| a.attempt).max().unwrap_or(0);
            slot.round = s.attempts_this_round;
            slot.key = s.key.clone();
            slot.force = s.force;
            slot.result_dir = s.result_dir();
            slot.state = match s.state {
                StepState::Queued => StepState::Pending,
                st => st,
            };
            if slot.on_slurm {
                slot.request = slurm::next_request(inst, s);
            }
            if s.state == StepState::Running
                && let Some(a) = s.last_attempt()
                && a.ended.is_none()
                && self.slots[i].on_slurm
            {
                self.resume_slurm(i, a.clone())?;
                continue;
            }
            let slot = &mut self.slots[i];
            if s.state == StepState::Running
                && let Some(a) = s.last_attempt()
                && a.ended.is_none()
            {
                // Alive while its process group runs (this host) or its heartbeat is fresh (another).
                slot.running = Some(a.attempt);
                slot.started = Some(Instant::now());
                slot.adopted = true;
                self.in_use += slot.weight;
                self.exec.adopt(&inst.name, a, self.done_tx.clone());
                self.progress.step(
                    StepState::Running,
                    &inst.name,
                    "adopted from the previous engine",
                );
            }
        }
        Ok(())
    }

    /// A finished run that requests reopened goes back to running.
    fn reopen_if_needed(&mut self) -> Result<()> {
        let records = crate::runlog::events::read_all(&self.run.events())?;
        let state = fold(&records).map(|f| f.state).unwrap_or(RunState::Running);
        let open = self.slots.iter().any(|s| {
            matches!(
                s.state,
                StepState::Pending | StepState::Queued | StepState::Running
            )
        });
        if state != RunState::Running && open {
            self.emit(Event::RunState {
                state: RunState::Running,
            })?;
        }
        Ok(())
    }

    fn instances_named(&self, name: &str) -> Vec<usize> {
        if let Some(&i) = self.by_name.get(name) {
            return vec![i];
        }
        self.members.get(name).cloned().unwrap_or_default()
    }

    fn set_state(
        &mut self,
        i: usize,
        state: StepState,
        reason: Option<String>,
        force: bool,
    ) -> Result<()> {
        let name = self.plan.instances[i].name.clone();
        self.slots[i].state = state;
        if state == StepState::Pending {
            self.slots[i].round = 0;
            self.slots[i].force = force;
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

    /// Applies a request; returns the message for its answer, or why it was refused.
    fn apply(&mut self, req: &Request) -> std::result::Result<String, String> {
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
                    match self.slots[i].state {
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
                            self.slots[i].state,
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
                    .find(|&&i| self.slots[i].state == StepState::Running)
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
                        if self.slots[i].state == StepState::Blocked {
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
    fn handle_requests(&mut self) -> Result<()> {
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
    fn cancel_all(&mut self, why: &str) -> usize {
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

    /// Blocks what can no longer run, cancels what must not, and launches what is ready.
    async fn schedule(&mut self) -> Result<()> {
        let now = Instant::now();
        let mut for_slurm: Vec<(usize, Vec<String>)> = Vec::new();
        // This run's jobs in Slurm as the log knows them: submitted, their end not recorded yet. (The
        // monitor forgets a job the moment it sees it end, before the engine has recorded that end:
        // counting its list would let a submission into the log ahead of the end that made room.)
        let mut queued = self
            .slots
            .iter()
            .filter(|s| s.on_slurm && s.running.is_some())
            .count();
        for i in 0..self.slots.len() {
            if !matches!(self.slots[i].state, StepState::Pending | StepState::Queued) {
                continue;
            }
            if self.cancelling || self.tripped {
                // Pending steps say why the run stopped: interrupted, terminated, or cancelled by request.
                let why = if self.cancelling {
                    format!("run {}", self.cancel_reason)
                } else {
                    "--fail-fast: another step failed".to_string()
                };
                self.set_state(i, StepState::Cancelled, Some(why), false)?;
                continue;
            }
            let mut waiting = false;
            let mut blocked_by = None;
            // A Slurm step may be submitted as soon as the Slurm jobs it needs are: afterok holds it.
            let mut after: Vec<String> = Vec::new();
            let eager = self.slots[i].on_slurm;
            'needs: for g in &self.plan.instances[i].needs {
                for &j in self.members.get(g).map(|v| v.as_slice()).unwrap_or(&[]) {
                    let sj = &self.slots[j];
                    match sj.state {
                        s if s.is_done_ok() => {}
                        StepState::Running
                            if eager
                                && sj.on_slurm
                                && !sj.cancel_requested
                                && sj.job_id.is_some() =>
                        {
                            after.extend(sj.job_id.clone());
                        }
                        StepState::Failed | StepState::Cancelled | StepState::Blocked => {
                            blocked_by = Some(j);
                            break 'needs;
                        }
                        _ => waiting = true,
                    }
                }
            }
            if let Some(j) = blocked_by {
                let why = format!("{} {}", self.plan.instances[j].name, self.slots[j].state);
                self.set_state(i, StepState::Blocked, Some(why), false)?;
                continue;
            }
            if waiting || self.slots[i].not_before.is_some_and(|t| t > now) {
                continue;
            }
            if self.slots[i].on_slurm {
                if queued >= self.plan.slurm.max_queued as usize {
                    continue;
                }
                queued += 1;
                for_slurm.push((i, after));
                continue;
            }
            if self.in_use + self.slots[i].weight > self.parallel {
                continue;
            }
            self.launch(i).await?;
        }
        if !for_slurm.is_empty() {
            self.submit_slurm(for_slurm).await?;
        }
        self.show_status();
        Ok(())
    }

    fn upstream_keys(&self, i: usize) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        for g in &self.plan.instances[i].needs {
            for &j in self.members.get(g).map(|v| v.as_slice()).unwrap_or(&[]) {
                if let Some(k) = &self.slots[j].key {
                    m.insert(self.plan.instances[j].name.clone(), k.clone());
                }
            }
        }
        m
    }

    fn upstream_dirs(&self, i: usize) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for g in &self.plan.instances[i].needs {
            let dirs: Vec<serde_json::Value> = self
                .members
                .get(g)
                .map(|v| v.as_slice())
                .unwrap_or(&[])
                .iter()
                .filter_map(|&j| {
                    let sj = &self.slots[j];
                    // A Slurm parent still running (the child waits on it with afterok) will leave
                    // its result in its current attempt's dir.
                    if sj.state == StepState::Running && sj.on_slurm {
                        let name = &self.plan.instances[j].name;
                        return Some(
                            self.run
                                .attempt_dir(name, sj.attempts)
                                .to_string_lossy()
                                .into_owned(),
                        );
                    }
                    sj.result_dir.clone()
                })
                .map(serde_json::Value::String)
                .collect();
            m.insert(g.clone(), serde_json::Value::Array(dirs));
        }
        serde_json::Value::Object(m)
    }

    /// Decides the cache, then starts an attempt (or marks the step cached).
    async fn launch(&mut self, i: usize) -> Result<()> {
        let Some(spec) = self.prepare(i).await? else {
            return Ok(());
        };
        let inst = self.plan.instances[i].clone();
        let (attempt, dir) = (spec.attempt, spec.dir.clone());
        let key = self.slots[i].key.clone().unwrap_or_default();
        match self.exec.launch(spec, self.done_tx.clone()) {
            Ok(launched) => {
                let logged = self.emit(Event::AttemptStarted {
                    step: inst.name.clone(),
                    attempt,
                    host: self.host.clone(),
                    pid: launched.pid,
                    dir: dir.to_string_lossy().into_owned(),
                    cache_key: Some(key),
                    job_id: launched.job_id,
                    boot_id: crate::runlog::liveness::boot_id(),
                });
                // The command runs only once its attempt is in the log: an engine killed before this
                // line leaves a shell that exits unrun, never a step that runs twice.
                self.exec.release(&inst.name, attempt, logged.is_ok());
                logged?;
                self.mark_running(i, attempt);
                Ok(())
            }
            Err(e) => self.fail_without_start(i, attempt, e.to_string()),
        }
    }

    fn mark_running(&mut self, i: usize, attempt: u32) {
        let name = self.plan.instances[i].name.clone();
        let slot = &mut self.slots[i];
        slot.state = StepState::Running;
        slot.running = Some(attempt);
        slot.started = Some(Instant::now());
        self.in_use += slot.weight;
        let detail = if attempt > 1 {
            format!("attempt {attempt}")
        } else {
            String::new()
        };
        self.progress.step(StepState::Running, &name, &detail);
    }

    /// Outputs of the Slurm steps `i` needs that are still running: `i` is submitted before they
    /// write them.
    fn produced_upstream(&self, i: usize) -> Vec<(std::path::PathBuf, String)> {
        let mut out = Vec::new();
        for g in &self.plan.instances[i].needs {
            for &j in self.members.get(g).map(|v| v.as_slice()).unwrap_or(&[]) {
                if self.slots[j].state == StepState::Running {
                    let p = &self.plan.instances[j];
                    for o in &p.outputs {
                        out.push((p.workdir.join(o), p.name.clone()));
                    }
                }
            }
        }
        out
    }

    /// Decides the cache and makes the next attempt's dir; `None` when the step needs no attempt
    /// (a cache hit) or could not get one (it failed without starting).
    async fn prepare(&mut self, i: usize) -> Result<Option<LaunchSpec>> {
        let inst = self.plan.instances[i].clone();
        if self.slots[i].resubmit {
            // Same attempt, same dir, same key: only the submission is new.
            let attempt = self.slots[i].attempts;
            let dir = self.run.attempt_dir(&inst.name, attempt);
            let needs = self.upstream_dirs(i);
            return Ok(Some(LaunchSpec {
                run_id: self.run_id.clone(),
                step: inst.name.clone(),
                attempt,
                script: inst.script(),
                env: step_env(&self.run, &inst, attempt, &dir, &needs),
                workdir: inst.workdir.clone(),
                dir,
                timeout: inst.timeout_s.map(Duration::from_secs_f64),
            }));
        }
        let upstream = self.upstream_keys(i);
        let force = self.slots[i].force;
        let produced = self.produced_upstream(i);
        let decided = if inst.inputs.is_empty() {
            // Nothing to hash: no need for the index thread.
            cache::manifest_with(&inst, upstream, &[], &mut |_| Err("no inputs".into()))
                .map(|m| self.decide(&inst, m, force))
        } else {
            let inst2 = inst.clone();
            let m = self
                .index
                .call(move |ix| cache::manifest_produced(ix, &inst2, upstream, &produced))
                .await
                .ok_or_else(|| eyre!("the index thread stopped"))?;
            m.map(|m| self.decide(&inst, m, force))
        };
        let (manifest, hit) = match decided {
            Ok(x) => x,
            Err(_) if self.interrupt.load(std::sync::atomic::Ordering::Relaxed) => return Ok(None),
            Err(msg) => {
                let attempt = self.slots[i].attempts + 1;
                // It counts against the retries like any failure (else it would be retried for ever).
                self.slots[i].round += 1;
                self.fail_without_start(i, attempt, msg)?;
                return Ok(None);
            }
        };
        let key = manifest.key.clone();
        self.slots[i].key = Some(key.clone());
        match hit {
            CacheDecision::Hit(dir) => {
                self.emit(Event::Cache {
                    step: inst.name.clone(),
                    key,
                    hit: true,
                    from: Some(dir.clone()),
                    reason: "same key as an earlier success, outputs present".into(),
                })?;
                self.slots[i].result_dir = Some(dir);
                self.set_state(i, StepState::Cached, None, false)?;
                return Ok(None);
            }
            CacheDecision::Miss(reason) => self.emit(Event::Cache {
                step: inst.name.clone(),
                key: key.clone(),
                hit: false,
                from: None,
                reason,
            })?,
        }
        let attempt = self.slots[i].attempts + 1;
        self.slots[i].attempts = attempt;
        self.slots[i].round += 1;
        self.slots[i].force = false;
        self.slots[i].cancel_requested = false;
        let dir = self.run.attempt_dir(&inst.name, attempt);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            self.fail_without_start(i, attempt, format!("cannot create {}: {e}", dir.display()))?;
            return Ok(None);
        }
        let _ = cache::write_manifest(&dir, &manifest);
        let needs = self.upstream_dirs(i);
        if !inst.needs.is_empty() {
            let _ = crate::util::write_atomic(
                &dir.join(crate::runlog::paths::NEEDS_FILE),
                needs.to_string().as_bytes(),
            );
        }
        let spec = LaunchSpec {
            run_id: self.run_id.clone(),
            step: inst.name.clone(),
            attempt,
            script: inst.script(),
            env: step_env(&self.run, &inst, attempt, &dir, &needs),
            workdir: inst.workdir.clone(),
            dir: dir.clone(),
            timeout: inst.timeout_s.map(Duration::from_secs_f64),
        };
        if !self.made_dirs.contains(&inst.workdir)
            && let Err(e) = std::fs::create_dir_all(&inst.workdir)
        {
            self.fail_without_start(
                i,
                attempt,
                format!("cannot create workdir {}: {e}", inst.workdir.display()),
            )?;
            return Ok(None);
        }
        self.made_dirs.insert(inst.workdir.clone());
        let _ = key;
        Ok(Some(spec))
    }

    /// A step that could not even start fails (and is retried like any failure).
    fn fail_without_start(&mut self, i: usize, attempt: u32, msg: String) -> Result<()> {
        let name = self.plan.instances[i].name.clone();
        self.slots[i].attempts = attempt;
        self.emit(Event::AttemptStarted {
            step: name.clone(),
            attempt,
            host: self.host.clone(),
            pid: None,
            dir: self
                .run
                .attempt_dir(&name, attempt)
                .to_string_lossy()
                .into_owned(),
            cache_key: self.slots[i].key.clone(),
            job_id: None,
            boot_id: None,
        })?;
        self.slots[i].running = Some(attempt);
        self.in_use += self.slots[i].weight;
        self.on_finished(Finished {
            step: name,
            attempt,
            outcome: Outcome::Lost(msg),
            facts: None,
        })
    }

    fn on_finished(&mut self, f: Finished) -> Result<()> {
        let Some(&i) = self.by_name.get(&f.step) else {
            return Ok(());
        };
        if self.slots[i].running != Some(f.attempt) {
            return Ok(());
        }
        let inst = self.plan.instances[i].clone();
        let slot = &mut self.slots[i];
        slot.running = None;
        let mut f = f;
        if std::mem::take(&mut slot.dep_cancel) {
            f.outcome = Outcome::DependencyFailed;
            slot.cancel_requested = false;
        }
        let job = slot.job_id.take();
        let on_job = job
            .as_deref()
            .map(|j| format!(" (Slurm job {j})"))
            .unwrap_or_default();
        let adopted = std::mem::take(&mut slot.adopted);
        self.in_use = self.in_use.saturating_sub(slot.weight);
        let elapsed = slot
            .started
            .map(|t| t.elapsed().as_secs_f64())
            .unwrap_or(0.0);
        let dir = self.run.attempt_dir(&inst.name, f.attempt);
        let (mut state, exit_code, signal, reason, lost) = match &f.outcome {
            Outcome::Exited(0) => {
                let missing = cache::missing_outputs(&inst);
                if missing.is_empty() {
                    (StepState::Succeeded, Some(0), None, None, false)
                } else {
                    let why = format!("exited 0 but did not write {}", missing.join(", "));
                    (StepState::Failed, Some(0), None, Some(why), false)
                }
            }
            Outcome::Exited(c) => (
                StepState::Failed,
                Some(*c),
                None,
                Some(format!("exit code {c}")),
                false,
            ),
            Outcome::Signaled(s) => (
                StepState::Failed,
                None,
                Some(*s),
                Some(format!("killed by signal {s}")),
                false,
            ),
            Outcome::TimedOut if slot.on_slurm => (
                StepState::Failed,
                None,
                None,
                Some(format!("hit its Slurm time limit{on_job}")),
                false,
            ),
            Outcome::TimedOut => {
                let t = inst.timeout_s.unwrap_or(0.0);
                (
                    StepState::Failed,
                    None,
                    None,
                    Some(format!("timed out after {t}s")),
                    false,
                )
            }
            Outcome::Lost(m) => (StepState::Failed, None, None, Some(m.clone()), adopted),
            Outcome::OutOfMemory => (
                StepState::Failed,
                None,
                None,
                Some(format!("ran out of memory{on_job}")),
                false,
            ),
            Outcome::NodeFailed(n) => (
                StepState::Failed,
                None,
                None,
                Some(format!(
                    "its node {} failed{on_job}",
                    n.as_deref().unwrap_or("(unknown)")
                )),
                false,
            ),
            Outcome::Preempted => (
                StepState::Failed,
                None,
                None,
                Some(format!(
                    "preempted{on_job}; resubmitted without using a retry"
                )),
                false,
            ),
            Outcome::DependencyFailed => (
                StepState::Cancelled,
                None,
                None,
                Some(format!(
                    "a job it waits on did not succeed; its own{} never ran",
                    job.as_deref()
                        .map(|j| format!(" Slurm job {j}"))
                        .unwrap_or_else(|| " job".into())
                )),
                false,
            ),
            Outcome::CancelledOutside(by) => (
                StepState::Cancelled,
                None,
                None,
                Some(format!("cancelled outside sortie{on_job}: {by}")),
                false,
            ),
        };
        if slot.cancel_requested && state == StepState::Failed {
            state = StepState::Cancelled;
        }
        // Preemption, and a dependency that failed (its step is re-run or blocks this one), are not
        // this step's failures: they cost no retry.
        let free = !slot.cancel_requested
            && matches!(f.outcome, Outcome::Preempted | Outcome::DependencyFailed);
        if free {
            slot.round = slot.round.saturating_sub(1);
        }
        // A lost attempt (the engine died while it ran) gets one extra try on top of the budget.
        let budget = inst.retries + 1 + u32::from(lost);
        let will_retry = (state == StepState::Failed || free)
            && !self.cancelling
            && !self.tripped
            && slot.round < budget;
        let class = f.outcome.class().map(str::to_string);
        if will_retry {
            let backoff = if free {
                0.0
            } else {
                inst.retry_backoff_s.max(0.0) * 2f64.powi(slot.round.saturating_sub(1) as i32)
            };
            slot.not_before = Some(Instant::now() + Duration::from_secs_f64(backoff.min(3600.0)));
            slot.state = StepState::Queued;
            if slot.on_slurm
                && let Some(c) = &class
            {
                slurm::escalate(&inst, &mut slot.request, c, f.facts.as_ref());
            }
        } else {
            slot.state = state;
        }
        if state == StepState::Succeeded {
            let d = dir.to_string_lossy().into_owned();
            if let Some(k) = &slot.key {
                self.known.insert(k.clone(), d.clone());
            }
            self.last_ok.insert(inst.name.clone(), d);
            slot.result_dir = Some(dir.to_string_lossy().into_owned());
            self.durations.0 += elapsed;
            self.durations.1 += 1;
        }
        self.emit(Event::AttemptEnded {
            step: inst.name.clone(),
            attempt: f.attempt,
            state,
            exit_code,
            signal,
            reason: reason.clone(),
            will_retry,
            class,
        })?;
        let mut detail = reason.unwrap_or_else(|| format!("{elapsed:.1}s"));
        if will_retry && matches!(f.outcome, Outcome::DependencyFailed) {
            detail.push_str("; submitted again when what it needs is");
        } else if will_retry {
            detail.push_str(", will retry");
        }
        self.progress.step(state, &inst.name, &detail);
        if self.slots[i].on_slurm && state != StepState::Succeeded {
            self.release_dependents(&inst.group, job.as_deref(), exit_code == Some(0));
        }
        if state == StepState::Failed && !will_retry && self.fail_fast && !self.tripped {
            self.tripped = true;
            for j in 0..self.slots.len() {
                if let Some(a) = self.slots[j].running {
                    self.slots[j].cancel_requested = true;
                    self.cancel_attempt(j, a);
                }
            }
        }
        Ok(())
    }

    /// A Slurm attempt that did not succeed: the jobs waiting on it with afterok will never run
    /// (Slurm kills them, `--kill-on-invalid-dep`), so they are cancelled and settled now rather
    /// than at the next poll. When Slurm saw a success the engine refused (exit 0 without the
    /// outputs), every dependent it already let start is stopped too.
    fn release_dependents(&mut self, group: &str, job: Option<&str>, slurm_saw_success: bool) {
        for j in 0..self.slots.len() {
            let sj = &self.slots[j];
            let waits = job.is_some_and(|id| sj.after.iter().any(|a| a == id));
            let started_on_it =
                slurm_saw_success && self.plan.instances[j].needs.iter().any(|g| g == group);
            if !sj.on_slurm || sj.cancel_requested || !(waits || started_on_it) {
                continue;
            }
            if let Some(a) = sj.running {
                self.slots[j].cancel_requested = true;
                self.slots[j].dep_cancel = true;
                self.cancel_attempt(j, a);
            }
        }
    }

    fn finished(&self) -> bool {
        self.slots.iter().all(|s| {
            !matches!(
                s.state,
                StepState::Pending | StepState::Queued | StepState::Running
            )
        })
    }

    fn counts(&self) -> Counts {
        let mut c = Counts {
            total: self.slots.len(),
            parallel: self.parallel,
            mean_secs: (self.durations.1 > 0).then(|| self.durations.0 / self.durations.1 as f64),
            ..Default::default()
        };
        for s in &self.slots {
            match s.state {
                st if st.is_done_ok() => c.done += 1,
                StepState::Running => c.running += 1,
                StepState::Failed => c.failed += 1,
                StepState::Blocked | StepState::Cancelled => c.other_final += 1,
                _ => {}
            }
        }
        c
    }

    fn show_status(&mut self) {
        let c = self.counts();
        self.progress.status(&c);
    }

    async fn finish(mut self) -> Result<RunState> {
        let state = if self.slots.iter().all(|s| s.state.is_done_ok()) {
            RunState::Succeeded
        } else if self.cancelling
            || self.slots.iter().any(|s| s.state == StepState::Cancelled) && !self.tripped
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

enum CacheDecision {
    /// Reuse the result in this attempt dir.
    Hit(String),
    /// Run it, for this reason.
    Miss(String),
}

impl Engine {
    /// Looks for an earlier success with the same key whose outputs still exist.
    fn decide(
        &self,
        inst: &Instance,
        m: cache::Manifest,
        force: bool,
    ) -> (cache::Manifest, CacheDecision) {
        if force {
            return (m, CacheDecision::Miss("forced".into()));
        }
        if let Some(dir) = self.known.get(&m.key) {
            let missing = cache::missing_outputs(inst);
            let unwritten = cache::unwritten_outputs(inst, std::path::Path::new(dir));
            let reason = if !missing.is_empty() {
                format!("output {} is missing", missing.join(", "))
            } else if !unwritten.is_empty() {
                format!(
                    "output {} predates the attempt it would come from: the step did not write it",
                    unwritten.join(", ")
                )
            } else {
                return (m, CacheDecision::Hit(dir.clone()));
            };
            return (m, CacheDecision::Miss(reason));
        }
        let reason = match self.last_ok.get(&inst.name) {
            None => "no earlier success".to_string(),
            Some(dir) => match cache::read_manifest(std::path::Path::new(dir)) {
                Some(old) => {
                    let why = cache::explain(&old, &m);
                    if why.is_empty() {
                        "the cache key changed".into()
                    } else {
                        why.join("; ")
                    }
                }
                None => "the earlier success left no cache manifest".into(),
            },
        };
        (m, CacheDecision::Miss(reason))
    }
}

/// The environment a step sees on top of the inherited one.
fn step_env(
    run: &RunDir,
    inst: &Instance,
    attempt: u32,
    dir: &std::path::Path,
    needs: &serde_json::Value,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = inst
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let d = dir.to_string_lossy().into_owned();
    env.push(("SORTIE_RUN_ID".into(), run.id()));
    env.push((
        "SORTIE_RUN_DIR".into(),
        run.path.to_string_lossy().into_owned(),
    ));
    env.push(("SORTIE_STEP".into(), inst.name.clone()));
    env.push(("SORTIE_STEP_NAME".into(), inst.group.clone()));
    env.push(("SORTIE_ATTEMPT".into(), attempt.to_string()));
    env.push(("SORTIE_STEP_DIR".into(), d.clone()));
    env.push((
        "SORTIE_METRICS".into(),
        dir.join(crate::runlog::paths::METRICS_FILE)
            .to_string_lossy()
            .into_owned(),
    ));
    let params: serde_json::Map<String, serde_json::Value> = inst
        .params
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    env.push((
        "SORTIE_PARAMS".into(),
        serde_json::Value::Object(params).to_string(),
    ));
    for (k, v) in &inst.params {
        let name: String = k
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        let value = match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        env.push((format!("SORTIE_PARAM_{name}"), value));
    }
    env.push(("SORTIE_NEEDS".into(), needs.to_string()));
    env
}
