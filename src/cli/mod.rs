//! The command line: one thin module per subcommand (parse → call the library → print a table or JSON).
//! Exit codes: 0 all succeeded; 1 a run finished with a failed or cancelled step; 2 bad input or usage;
//! 3 an environment or internal error.

/// Prints a line without panicking when stdout is gone: commands that drive a run must keep driving it
/// after the terminal or pipe closes.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
pub(crate) use say;

mod check;
mod demo;
mod jobs;
mod logs;
mod metrics;
mod run;
mod status;
mod steer;
mod trials;
mod why;

use clap::{CommandFactory, Parser, Subcommand};
use color_eyre::eyre::Report;
use std::path::PathBuf;

pub const EXIT_OK: i32 = 0;
pub const EXIT_RUN_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_INTERNAL: i32 = 3;

#[derive(Parser, Debug)]
#[command(
    name = "sortie",
    version,
    about = "Pipelines, SLURM jobs, trials and training curves in one terminal",
    propagate_version = true
)]
pub struct Cli {
    /// The project directory (the one holding .sortie/); default: found from the current directory.
    #[arg(
        long,
        short = 'C',
        global = true,
        env = "SORTIE_PROJECT",
        value_name = "DIR"
    )]
    pub project: Option<PathBuf>,

    /// In the TUI: disable every action that changes a run or a job.
    #[arg(long, global = true)]
    pub read_only: bool,

    /// TUI theme (dark, light, high-contrast, colour-blind, or one of yours).
    #[arg(long, global = true, value_name = "NAME")]
    pub theme: Option<String>,

    /// In the TUI: watch the Optuna studies in this storage (SQLite or journal file) or folder, in the
    /// Trials pane (repeat for several; default: the studies found in the project folder).
    #[arg(long, value_name = "STORAGE|DIR")]
    pub trials: Vec<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a pipeline (default file: sortie.toml).
    Run(run::RunArgs),
    /// Validate a pipeline file and print the expanded DAG.
    Check(check::CheckArgs),
    /// Show a run and its steps.
    Status(status::StatusArgs),
    /// List runs, newest first.
    Runs(status::RunsArgs),
    /// Print a step's stdout (or stderr).
    Logs(logs::LogsArgs),
    /// Cancel a run, or one step of it.
    Cancel(steer::CancelArgs),
    /// Run the failed, blocked and cancelled steps of a run again, in place.
    Retry(steer::RetryArgs),
    /// Run a step again (and with --downstream everything that needs it), in place.
    Rerun(steer::RerunArgs),
    /// Take over a run whose engine died, without re-running what succeeded.
    Resume(steer::ResumeArgs),
    /// Tell which input, param or command change makes a step re-run.
    Why(why::WhyArgs),
    /// Summarise the metrics a run's steps wrote.
    Metrics(metrics::MetricsArgs),
    /// Draw a metric as a chart on the terminal, one line per step.
    Plot(metrics::PlotArgs),
    /// Optuna studies in a storage (SQLite or journal) or a folder of them: a leaderboard, or --json.
    Trials(trials::TrialsArgs),
    /// Print shell completions.
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Copy the bundled demo pipeline to a fresh directory and run it.
    Demo(demo::DemoArgs),
    /// Your SLURM jobs: queued, running, and the last day's history.
    Jobs(jobs::JobsArgs),
    /// One SLURM job in detail (queue, or accounting once it is gone).
    Job(jobs::JobArgs),
    /// Cancel SLURM jobs by id (`cancel` acts on runs).
    JobCancel(jobs::JobIdsArgs),
    /// Hold pending SLURM jobs.
    Hold(jobs::JobIdsArgs),
    /// Release held SLURM jobs.
    Release(jobs::JobIdsArgs),
    /// Requeue SLURM jobs.
    Requeue(jobs::JobIdsArgs),
    /// SLURM partitions: state, free nodes, CPUs and GPUs, time limits.
    Cluster(jobs::ClusterArgs),
    /// Drive a run (what `run --detach` starts in the background).
    #[command(hide = true)]
    Engine(run::EngineArgs),
    /// Keep the heartbeats of a run's local steps (what the engine starts beside itself).
    #[command(name = "__beat", hide = true)]
    Beat {
        /// The run directory whose steps to beat.
        run_dir: PathBuf,
    },
}

/// Parses the command line, runs the command, and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = e.print();
            return code;
        }
    };
    if let Err(e) = check_env() {
        return report_error(&Report::new(e));
    }
    let drives_a_run = matches!(
        cli.command,
        Some(
            Command::Run(_)
                | Command::Engine(_)
                | Command::Demo(_)
                | Command::Retry(_)
                | Command::Rerun(_)
                | Command::Resume(_)
                | Command::Cancel(_)
        )
    );
    if !drives_a_run {
        // Readers end quietly when their pipe closes (`sortie status | head`), like other Unix tools.
        // SAFETY: setting a signal disposition to its default is always sound.
        unsafe {
            let _ = nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGPIPE,
                nix::sys::signal::SigHandler::SigDfl,
            );
        }
    }
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => report_error(&e),
    }
}

/// Refuses bad values of the environment settings before anything starts, so an engine never runs with
/// a lease timeout or kill grace it silently replaced by the default.
fn check_env() -> Result<(), crate::util::UserError> {
    crate::util::env_seconds(crate::runlog::lease::LEASE_TIMEOUT_ENV, false)?;
    crate::util::env_seconds(crate::executor::local::KILL_GRACE_ENV, true)?;
    crate::index::Journal::from_env()?;
    crate::runlog::liveness::heartbeat_grace().map_err(crate::util::UserError)?;
    crate::slurm::connect::BackendKind::from_env().map_err(crate::util::UserError)?;
    Ok(())
}

/// Prints an error on one line (plus its causes) and picks the exit code from its kind.
pub fn report_error(e: &Report) -> i32 {
    let user = e.downcast_ref::<crate::util::UserError>().is_some()
        || e.downcast_ref::<crate::pipeline::Diagnostics>().is_some();
    let mut msg = format!("sortie: error: {e}");
    for cause in e.chain().skip(1) {
        msg.push_str(&format!(": {cause}"));
    }
    eprintln!("{msg}");
    if user { EXIT_USAGE } else { EXIT_INTERNAL }
}

fn project(cli_project: &Option<PathBuf>) -> crate::runlog::Project {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    match cli_project {
        Some(p) => crate::runlog::Project::new(p.clone()),
        None => crate::runlog::Project::discover(&cwd),
    }
}

/// `-C DIR` (or `SORTIE_PROJECT`) must name a directory: otherwise every command would report an empty
/// project ("no runs yet") or create one somewhere unintended.
fn check_project_dir(cli_project: &Option<PathBuf>) -> color_eyre::Result<()> {
    let Some(p) = cli_project else { return Ok(()) };
    let what = match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => "not a directory".to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "no such directory".to_string(),
        Err(e) => format!("cannot read it: {e}"),
    };
    Err(crate::util::user_error(format!(
        "-C {} (the project directory): {what}",
        p.display()
    )))
}

fn dispatch(cli: Cli) -> color_eyre::Result<i32> {
    check_project_dir(&cli.project)?;
    if cli.command.is_some() && !cli.trials.is_empty() {
        return Err(crate::util::user_error(
            "--trials opens studies in the TUI (no command); for a table, use `sortie trials STORAGE|DIR`",
        ));
    }
    let Some(command) = cli.command else {
        use std::io::IsTerminal;
        for t in &cli.trials {
            let path = crate::trials::path_of(&t.to_string_lossy());
            if !path.exists() {
                return Err(crate::util::user_error(format!(
                    "--trials {}: no such file or folder",
                    t.display()
                )));
            }
        }
        // Piped, the studies print as the leaderboard tables `sortie trials` makes.
        if !cli.trials.is_empty()
            && (!std::io::stdout().is_terminal() || !std::io::stdin().is_terminal())
        {
            for t in &cli.trials {
                trials::trials(trials::TrialsArgs {
                    storage: t.to_string_lossy().to_string(),
                    study: None,
                    best: false,
                    json: false,
                    timestamps: None,
                })?;
            }
            return Ok(EXIT_OK);
        }
        // The full-screen app needs a terminal; piped, show the runs as a table instead.
        if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
            return status::runs(&project(&cli.project), &status::RunsArgs { json: false });
        }
        let opts = crate::tui::TuiOptions {
            read_only: cli.read_only,
            theme: cli.theme.clone(),
            run: None,
            trials: cli.trials.clone(),
        };
        return crate::tui::run(project(&cli.project), opts);
    };
    match command {
        Command::Run(a) => run::run(&cli.project, a),
        Command::Engine(a) => run::engine(a),
        Command::Beat { run_dir } => Ok(crate::executor::beater::main(&run_dir)),
        Command::Check(a) => check::check(a),
        Command::Status(a) => status::status(&project(&cli.project), a),
        Command::Runs(a) => status::runs(&project(&cli.project), &a),
        Command::Logs(a) => logs::logs(&project(&cli.project), a),
        Command::Cancel(a) => steer::cancel(&project(&cli.project), a),
        Command::Retry(a) => steer::retry(&project(&cli.project), a),
        Command::Rerun(a) => steer::rerun(&project(&cli.project), a),
        Command::Resume(a) => steer::resume(&project(&cli.project), a),
        Command::Why(a) => why::why(&cli.project, a),
        Command::Metrics(a) => metrics::metrics(&project(&cli.project), a),
        Command::Plot(a) => metrics::plot(&project(&cli.project), a),
        Command::Trials(a) => trials::trials(a),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "sortie", &mut std::io::stdout());
            Ok(EXIT_OK)
        }
        Command::Demo(a) => demo::demo(a, cli.read_only, cli.theme.clone()),
        Command::Jobs(a) => jobs::jobs(a),
        Command::Job(a) => jobs::job(a),
        Command::JobCancel(a) => jobs::act(jobs::Action::Cancel, a),
        Command::Hold(a) => jobs::act(jobs::Action::Hold, a),
        Command::Release(a) => jobs::act(jobs::Action::Release, a),
        Command::Requeue(a) => jobs::act(jobs::Action::Requeue, a),
        Command::Cluster(a) => jobs::cluster(a),
    }
}

/// Exit code for a finished run.
pub fn exit_for(state: crate::runlog::RunState) -> i32 {
    match state {
        crate::runlog::RunState::Succeeded => EXIT_OK,
        _ => EXIT_RUN_FAILED,
    }
}

/// A current-thread tokio runtime: the engine's work is I/O-bound and one thread keeps it light.
pub fn runtime() -> color_eyre::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Opens this host's index and brings one run (or all) up to date from the files.
pub fn open_index(project: &crate::runlog::Project) -> color_eyre::Result<crate::index::Index> {
    crate::index::Index::open_project(project).map_err(|e| e.into_report("cannot open the index"))
}

/// Resolves RUN (an id, a unique prefix, `latest`, or nothing) after syncing the index with every run.
pub fn resolve_run(
    project: &crate::runlog::Project,
    index: &mut crate::index::Index,
    spec: Option<&str>,
) -> color_eyre::Result<crate::index::RunRow> {
    index
        .sync_all(project)
        .map_err(|e| color_eyre::eyre::eyre!("cannot update the index: {e}"))?;
    index
        .resolve_run(spec)
        .map_err(|e| crate::util::user_error(format!("{e} (in {})", project.runs_dir().display())))
}
