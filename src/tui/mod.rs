//! The full-screen application: one screen for runs and their DAG, jobs, curves and logs, driven from the
//! keyboard. Input, the data thread and action workers send typed messages to the UI thread, which updates
//! the model and redraws only when something visible changed.

pub mod action;
pub mod app;
pub mod chart;
pub mod charts;
pub mod config;
pub mod data;
pub mod finder;
pub mod input;
pub mod notify;
pub mod trials;
pub mod view;

pub use charts::ChartCache;

use crate::runlog::{Project, RunDir};
use app::{App, Effect};
use color_eyre::eyre::Result;
use std::io::Write;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// Messages to the UI thread.
#[derive(Debug)]
pub enum Msg {
    Term(crossterm::event::Event),
    Data(data::DataMsg),
    /// An action worker finished: a message for the footer, or an error.
    Done(std::result::Result<String, String>),
    /// SIGTERM or SIGHUP: restore the terminal and leave (runs keep going).
    Stop,
    /// The Slurm poller's latest view of the user's jobs.
    Jobs(std::sync::Arc<crate::slurm::poller::JobsSnapshot>),
    /// The trials feed read a change in the Optuna studies.
    Trials(std::sync::Arc<trials::feed::TrialsSnapshot>),
}

/// The Slurm connection the TUI uses: one backend and one poller for everything on screen.
pub struct Slurm {
    pub backend: std::sync::Arc<dyn crate::slurm::backend::SlurmBackend + Send + Sync>,
    pub poller: crate::slurm::poller::PollerHandle,
}

/// How the TUI starts.
#[derive(Clone, Debug, Default)]
pub struct TuiOptions {
    pub read_only: bool,
    pub theme: Option<String>,
    /// Select this run first.
    pub run: Option<String>,
    /// Optuna study files or folders for the Trials pane (focused first when given).
    pub trials: Vec<std::path::PathBuf>,
}

/// Everything the UI thread owns besides the model.
pub struct Ui {
    pub app: App,
    pub config: config::Config,
    pub keys: input::KeyState,
    pub charts: ChartCache,
    pub trials_charts: trials::plots::TrialsCharts,
    watch_tx: Option<Sender<data::Watch>>,
    tx: Sender<Msg>,
    pub slurm: Option<std::sync::Arc<Slurm>>,
}

impl Ui {
    /// A UI with no terminal and no data thread: what the headless tests drive.
    pub fn headless(config: config::Config, read_only: bool) -> (Ui, Receiver<Msg>) {
        let (tx, rx) = mpsc::channel();
        let mut app = App::new(read_only || config.settings.read_only);
        app.trials.staleness = trials::Staleness {
            heartbeat_grace_s: config.settings.trials.heartbeat_grace.as_secs_f64(),
            unchanged_s: config.settings.trials.stale_after.as_secs_f64(),
        };
        app.config_warnings = config.warnings.clone();
        (
            Ui {
                app,
                config,
                keys: input::KeyState::default(),
                charts: ChartCache::default(),
                trials_charts: Default::default(),
                watch_tx: None,
                tx,
                slurm: None,
            },
            rx,
        )
    }

    /// Applies one message. Returns whether the screen must be redrawn.
    pub fn handle(&mut self, msg: Msg) -> bool {
        let effects = match msg {
            Msg::Term(crossterm::event::Event::Key(k)) => {
                if k.kind == crossterm::event::KeyEventKind::Release {
                    return false;
                }
                input::handle_key(&mut self.app, &self.config.keymap, &mut self.keys, k)
            }
            Msg::Term(crossterm::event::Event::Resize(..)) => return true,
            Msg::Term(_) => return false,
            Msg::Data(data::DataMsg::Snapshot(s)) => {
                // The first snapshot is the starting point, not news.
                if self.app.data_at.is_some() {
                    self.notify(notify::notices(&self.app.snapshot, &s));
                }
                self.app.on_snapshot(*s)
            }
            Msg::Data(data::DataMsg::Log(t)) => {
                self.app.on_log(*t);
                Vec::new()
            }
            Msg::Data(data::DataMsg::Health { ok_at, error }) => {
                let was_stale = self.stale();
                let changed = self.app.data_error != error;
                self.app.data_error = error;
                self.app.data_at = Some(ok_at);
                return changed || was_stale != self.stale();
            }
            Msg::Done(r) => {
                match r {
                    Ok(m) => self.app.set_status(m),
                    Err(e) => self.app.set_status(format!("✗ {e}")),
                }
                Vec::new()
            }
            Msg::Stop => {
                self.app.quit = true;
                Vec::new()
            }
            Msg::Trials(t) => {
                let filter = self.app.filter.clone();
                self.app.trials.set_data(t, &filter);
                Vec::new()
            }
            Msg::Jobs(j) => {
                // A poll that found what the last one did changes no text but the data's age, and
                // that one the clock tick redraws when it reads differently.
                let same = self.app.jobs.as_ref().is_some_and(|old| {
                    old.jobs == j.jobs
                        && old.registered == j.registered
                        && old.settling == j.settling
                        && old.stale == j.stale
                        && old.error == j.error
                        && format!("{:.1}", old.rpc_per_min) == format!("{:.1}", j.rpc_per_min)
                });
                self.app.set_jobs(j, same);
                if same {
                    return false;
                }
                Vec::new()
            }
        };
        self.run_effects(effects);
        true
    }

    /// Bell and webhook, off the UI thread (a webhook may take seconds).
    fn notify(&self, notices: Vec<notify::Notice>) {
        if notices.is_empty() {
            return;
        }
        let settings = self.config.settings.clone();
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            for n in notices {
                if let Some(err) = notify::deliver(&n, &settings) {
                    let _ = tx.send(Msg::Done(Err(err)));
                }
            }
        });
    }

    /// The texts on screen that change with the clock alone (running durations, the age of the
    /// jobs data, whether the data is stale, whether the status message still shows): a clock tick
    /// redraws only when one of them did.
    pub fn clock_signature(&self) -> String {
        let now = crate::util::now();
        let mut sig = view::header::freshness(&self.app);
        sig.push('|');
        if view::header::status(&self.app).is_some() {
            sig.push_str("status|");
        }
        for r in self.app.snapshot.runs.iter().filter(|r| r.ended.is_none()) {
            sig.push_str(&view::running_for(now - r.created));
            sig.push('|');
        }
        // Only the DAG rows that show a step's time: an instance, or a group of one step (a collapsed
        // matrix shows counts, and its instances' minutes ticking over would redraw for nothing).
        for row in &self.app.dag {
            let step = match row {
                app::DagRow::Instance { step, .. } => *step,
                app::DagRow::Group {
                    members,
                    matrix: false,
                    ..
                } => match members.first() {
                    Some(&m) => m,
                    None => continue,
                },
                app::DagRow::Group { .. } => continue,
            };
            if let Some(st) = self.app.snapshot.steps.get(step)
                && st.state == crate::runlog::StepState::Running
            {
                sig.push_str(&view::step_time(st, &self.app, now));
                if let Some(r) = self.app.snapshot.remote.get(&st.name) {
                    sig.push_str(&r.describe(now));
                }
                sig.push('|');
            }
        }
        if let Some(a) = self.app.jobs.as_ref().and_then(|j| j.age()) {
            sig.push_str(&view::age_text(a.as_secs()));
        }
        // The studies' ages and which running trials look stale change with the clock alone.
        if !self.app.trials.data.studies.is_empty() {
            sig.push_str(&view::trials::clock_signature(&self.app.trials));
        }
        sig
    }

    fn stale(&self) -> bool {
        self.app
            .data_at
            .is_some_and(|t| t.elapsed().as_secs_f64() > view::header::STALE_AFTER_S)
    }

    /// `:theme NAME` switches live; an unknown name keeps the current theme and says why.
    fn switch_theme(&mut self, wanted: &str) {
        match config::Theme::load(
            wanted,
            self.config.dir.as_deref(),
            self.config.theme.depth(),
        ) {
            Ok(t) => {
                self.config.theme = t;
                self.app.set_status(format!("theme {wanted}"));
            }
            Err(e) => self.app.set_status(format!("✗ {e}")),
        }
    }

    fn run_effects(&mut self, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::Watch(w) => {
                    if let Some(tx) = &self.watch_tx {
                        let _ = tx.send(w);
                    }
                }
                Effect::Theme(name) => self.switch_theme(&name),
                Effect::Yank(text) => {
                    let _ = std::io::stdout().write_all(osc52(&text).as_bytes());
                    let _ = std::io::stdout().flush();
                }
                Effect::Request { run_dir, request } => {
                    let tx = self.tx.clone();
                    std::thread::spawn(move || {
                        let r = crate::engine::detach::steer_in_background(
                            &RunDir::new(run_dir),
                            request,
                        )
                        .map_err(|e| e.to_string());
                        let _ = tx.send(Msg::Done(r));
                    });
                }
                Effect::CancelJobs(ids) => {
                    let tx = self.tx.clone();
                    let Some(slurm) = self.slurm.clone() else {
                        self.app.set_status("no SLURM cluster");
                        continue;
                    };
                    std::thread::spawn(move || {
                        let r = slurm
                            .backend
                            .cancel(&ids)
                            .map(|_| format!("cancelled job {}", ids.join(", ")))
                            .map_err(|e| e.to_string());
                        // Look again soon: the job's end is news.
                        slurm.poller.poke();
                        let _ = tx.send(Msg::Done(r));
                    });
                }
                Effect::Resume(dir) => {
                    let tx = self.tx.clone();
                    std::thread::spawn(move || {
                        let run = RunDir::new(dir);
                        let r = crate::engine::detach::spawn_detached(&run, None, false)
                            .map(|pid| format!("resumed run {} (engine pid {pid})", run.id()))
                            .map_err(|e| e.to_string());
                        let _ = tx.send(Msg::Done(r));
                    });
                }
                Effect::Launch(path) => {
                    let tx = self.tx.clone();
                    std::thread::spawn(move || {
                        let _ = tx.send(Msg::Done(launch(&path).map_err(|e| e.to_string())));
                    });
                }
            }
        }
    }

    /// Prepares chart data (outside the pure draw), then draws.
    pub fn draw(&mut self, frame: &mut ratatui::Frame) {
        self.charts.prepare(&self.app);
        self.trials_charts.prepare(&self.app.trials);
        let ctx = view::ViewCtx {
            theme: &self.config.theme,
            keymap: &self.config.keymap,
            charts: &self.charts,
            trials: &self.trials_charts,
            hints: &self.keys.hints,
        };
        view::draw(frame, &self.app, &ctx);
    }
}

/// OSC 52: the terminal (even over SSH) puts `text` on the local clipboard.
fn osc52(text: &str) -> String {
    use base64::Engine;
    format!(
        "\x1b]52;c;{}\x07",
        base64::engine::general_purpose::STANDARD.encode(text)
    )
}

/// Starts a pipeline file in the background (the TUI never drives a run itself).
fn launch(path: &std::path::Path) -> Result<String> {
    let plan = crate::pipeline::load(path).map_err(color_eyre::eyre::Report::new)?;
    let project = Project::new(
        plan.source
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .to_path_buf(),
    );
    let run = crate::engine::create_run(&project, &plan, &crate::engine::Force::None)?;
    crate::engine::detach::spawn_detached(&run, None, false)?;
    Ok(format!("launched run {} ({})", run.id(), plan.name))
}

/// Runs the TUI on `project` until the user quits. Quitting never stops a run.
pub fn run(project: Project, opts: TuiOptions) -> Result<i32> {
    install_crash_log();
    // ratatui's hook restores the terminal first, then calls ours (crash log, then color-eyre's report).
    // The terminal comes first, before any thread: leaving early then has nothing to stop.
    let mut terminal = match ratatui::try_init() {
        Ok(t) => t,
        Err(e) => {
            // A terminal that hung up (or one this process may not drive) is no crash: say so and leave.
            // Raw mode off in case it was the alternate screen that failed; no restore, which would
            // print its own error about the same dead terminal.
            let _ = crossterm::terminal::disable_raw_mode();
            return Err(crate::util::user_error(format!(
                "cannot open the terminal for the TUI: {e} (it went away, or this process is not in its foreground)"
            )));
        }
    };
    let overrides = config::Overrides {
        theme: opts.theme.clone(),
        read_only: opts.read_only.then_some(true),
        ..Default::default()
    };
    let config = config::Config::load(&overrides);
    let (mut ui, rx) = Ui::headless(config, opts.read_only);
    ui.slurm = start_slurm(&ui.config.settings, ui.tx.clone());
    ui.app.cluster = ui.slurm.is_some();
    if let Some(w) = ui.app.config_warnings.first() {
        ui.app.set_status(format!("config: {w}"));
    }
    let timing = data::Timing::from_settings(&ui.config.settings.poll);
    let study_sources = if !opts.trials.is_empty() {
        ui.app.focus = action::Pane::Trials;
        opts.trials.clone()
    } else if !ui.config.settings.trials.paths.is_empty() {
        ui.config.settings.trials.paths.clone()
    } else {
        trials::feed::default_sources(&project.root)
    };
    trials::feed::spawn(
        trials::feed::FeedConfig {
            sources: study_sources,
            poll: ui.config.settings.trials.poll,
            rediscover: Duration::from_secs(30),
        },
        ui.tx.clone(),
    );
    let watch_tx = data::spawn(project, ui.tx.clone(), timing);
    if let Some(run) = &opts.run {
        let _ = watch_tx.send(data::Watch {
            run: Some(run.clone()),
            ..Default::default()
        });
    }
    ui.watch_tx = Some(watch_tx);
    spawn_input(ui.tx.clone());
    spawn_signals(ui.tx.clone());
    let result = event_loop(&mut ui, &mut terminal, &rx);
    ratatui::restore();
    result.map(|_| 0)
}

fn event_loop(
    ui: &mut Ui,
    terminal: &mut ratatui::DefaultTerminal,
    rx: &Receiver<Msg>,
) -> Result<()> {
    // The texts that follow the clock are looked at as often as the files are (a `watch -n 2` pace,
    // at most once a second) and redrawn only when one reads differently.
    let tick = ui
        .config
        .settings
        .poll_interval()
        .max(Duration::from_secs(1));
    let mut dirty = true;
    let mut next_tick = Instant::now();
    let mut drawn_clock = String::new();
    loop {
        if dirty {
            terminal.draw(|f| ui.draw(f))?;
            dirty = false;
            drawn_clock = ui.clock_signature();
            next_tick = Instant::now() + tick;
        }
        if ui.app.quit {
            return Ok(());
        }
        match rx.recv_timeout(next_tick.saturating_duration_since(Instant::now())) {
            Ok(m) => dirty |= ui.handle(m),
            Err(RecvTimeoutError::Timeout) => {
                dirty |= ui.clock_signature() != drawn_clock;
                next_tick = Instant::now() + tick;
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
        // Drain what queued up meanwhile, then draw once.
        while let Ok(m) = rx.try_recv() {
            dirty |= ui.handle(m);
        }
    }
}

/// The user's one Slurm view on this host (polled here or by another sortie), within the RPC
/// budget from the settings.
fn start_slurm(settings: &config::Settings, tx: Sender<Msg>) -> Option<std::sync::Arc<Slurm>> {
    use crate::slurm::poller::{Poller, PollerConfig};
    let backend = crate::slurm::connect::open(false, None, None).ok()?;
    let cfg = PollerConfig {
        // The file poll may be fast; the controller is asked at most every 10 s to begin with.
        interval: settings
            .poll
            .interval
            .max(std::time::Duration::from_secs(10)),
        max_interval: settings.poll.max_interval,
        budget_per_min: settings.poll.rpc_budget_per_minute,
        ..Default::default()
    };
    let poller = Poller::spawn_shared(backend.clone(), cfg);
    let updates = poller.subscribe();
    std::thread::Builder::new()
        .name("sortie-jobs".into())
        .spawn(move || {
            for snap in updates {
                if tx.send(Msg::Jobs(snap)).is_err() {
                    break;
                }
            }
        })
        .expect("spawn jobs thread");
    Some(std::sync::Arc::new(Slurm { backend, poller }))
}

fn spawn_input(tx: Sender<Msg>) {
    std::thread::Builder::new()
        .name("sortie-input".into())
        .spawn(move || {
            while let Ok(ev) = crossterm::event::read() {
                if tx.send(Msg::Term(ev)).is_err() {
                    break;
                }
            }
        })
        .expect("spawn input thread");
}

fn spawn_signals(tx: Sender<Msg>) {
    use signal_hook::consts::{SIGHUP, SIGTERM};
    if let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGTERM, SIGHUP]) {
        std::thread::Builder::new()
            .name("sortie-signals".into())
            .spawn(move || {
                if signals.forever().next().is_some() {
                    let _ = tx.send(Msg::Stop);
                }
            })
            .expect("spawn signal thread");
    }
}

/// Where crash reports go: `$SORTIE_STATE_DIR`, else the XDG state dir (`~/.local/state/sortie`).
pub fn state_dir() -> Option<std::path::PathBuf> {
    if let Some(d) = std::env::var_os("SORTIE_STATE_DIR").filter(|d| !d.is_empty()) {
        return Some(d.into());
    }
    let home = directories::BaseDirs::new()?;
    Some(
        home.state_dir()
            .map(|d| d.join("sortie"))
            .unwrap_or_else(|| home.home_dir().join(".local/state/sortie")),
    )
}

/// A panic writes its message and backtrace to a crash log before the usual report.
fn install_crash_log() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Some(dir) = state_dir() {
            let path = dir.join(format!("crash-{}.log", crate::util::now() as u64));
            let text = format!(
                "sortie {} crashed: {info}\n\n{}",
                env!("CARGO_PKG_VERSION"),
                std::backtrace::Backtrace::force_capture()
            );
            if std::fs::create_dir_all(&dir).is_ok() && std::fs::write(&path, text).is_ok() {
                eprintln!("sortie: crash report written to {}", path.display());
            }
        }
        previous(info);
    }));
}
