//! `sortie run` (foreground or detached) and the hidden `sortie engine` a detached run lives in.

use super::{EXIT_OK, exit_for, runtime};
use crate::engine::{DriveOptions, Force, ProgressMode, create_run, drive};
use crate::pipeline::ExecutorKind;
use crate::runlog::{Project, RunDir};
use crate::util::user_error;
use clap::Args;
use color_eyre::eyre::{Result, WrapErr, eyre};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The pipeline file.
    #[arg(default_value = "sortie.toml")]
    pub file: PathBuf,
    /// Run every step on this executor (local, slurm).
    #[arg(long, value_parser = parse_executor)]
    pub executor: Option<ExecutorKind>,
    /// Run in the background: the run survives the terminal closing and SSH hang-ups.
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// Steps at once (default: the pipeline's max_parallel, else the number of cores).
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
    /// Ignore the cache: for all steps, or only the named ones (repeat or comma-separate).
    #[arg(long, value_name = "STEP", num_args = 0.., value_delimiter = ',')]
    pub force: Option<Vec<String>>,
    /// Stop at the first failure (cancel what runs, start nothing new).
    #[arg(long)]
    pub fail_fast: bool,
}

#[derive(Args, Debug)]
pub struct EngineArgs {
    /// The run directory to drive.
    pub run_dir: PathBuf,
    #[arg(short = 'j', long = "jobs")]
    pub jobs: Option<u32>,
    #[arg(long)]
    pub fail_fast: bool,
}

fn parse_executor(s: &str) -> std::result::Result<ExecutorKind, String> {
    match s {
        "local" => Ok(ExecutorKind::Local),
        "slurm" => Ok(ExecutorKind::Slurm),
        _ => Err(format!("unknown executor {s:?} (expected local or slurm)")),
    }
}

pub fn run(project_arg: &Option<PathBuf>, a: RunArgs) -> Result<i32> {
    let mut plan = crate::pipeline::load(&a.file).map_err(color_eyre::eyre::Report::new)?;
    if let Some(ex) = a.executor {
        plan.executor = ex;
        for i in &mut plan.instances {
            i.executor = ex;
        }
    }
    if let Some(i) = plan
        .instances
        .iter()
        .find(|i| i.executor == ExecutorKind::Slurm)
    {
        return Err(user_error(format!(
            "{}: step {} uses the slurm executor, which this build does not have yet; use --executor local",
            a.file.display(),
            i.group
        )));
    }
    let force = match &a.force {
        None => Force::None,
        Some(v) if v.is_empty() => Force::All,
        Some(v) => {
            for s in v {
                if plan.group(s).is_none() && plan.instance(s).is_none() {
                    return Err(user_error(format!(
                        "--force {s}: no step or step instance of that name in {}",
                        a.file.display()
                    )));
                }
            }
            Force::Steps(v.clone())
        }
    };
    // The project is where the pipeline file lives, unless -C says otherwise.
    let project = match project_arg {
        Some(p) => Project::new(p.clone()),
        None => Project::new(plan.source.parent().unwrap_or(Path::new(".")).to_path_buf()),
    };
    let run = create_run(&project, &plan, &force)?;
    if a.detach {
        let pid = spawn_detached(&run, a.jobs, a.fail_fast)?;
        super::say!(
            "run {} started in the background (engine pid {pid}); follow it with: sortie status {}",
            run.id(),
            run.id()
        );
        return Ok(EXIT_OK);
    }
    super::say!(
        "run {} ({}, {} steps)",
        run.id(),
        plan.name,
        plan.instances.len()
    );
    let opts = DriveOptions {
        parallel: a.jobs.map(|j| j as usize),
        fail_fast: a.fail_fast,
        progress: ProgressMode::detect(),
    };
    let state = runtime()?.block_on(drive(&project, &run, opts))?;
    Ok(exit_for(state))
}

/// The project a run directory belongs to: `<root>/.sortie/runs/<id>`.
pub fn project_of(run: &RunDir) -> Project {
    let root = run
        .path
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    Project::new(root.to_path_buf())
}

pub fn engine(a: EngineArgs) -> Result<i32> {
    let run = RunDir::new(
        std::fs::canonicalize(&a.run_dir)
            .wrap_err_with(|| format!("no run directory at {}", a.run_dir.display()))?,
    );
    let project = project_of(&run);
    let opts = DriveOptions {
        parallel: a.jobs.map(|j| j as usize),
        fail_fast: a.fail_fast,
        progress: ProgressMode::Plain,
    };
    let state = runtime()?.block_on(drive(&project, &run, opts))?;
    Ok(exit_for(state))
}

/// Starts `sortie engine RUN_DIR` in a new session (no controlling terminal, so no SIGHUP when the SSH
/// session ends), its output in the run's `engine.log`. Waits until it holds the lease.
pub fn spawn_detached(run: &RunDir, jobs: Option<u32>, fail_fast: bool) -> Result<u32> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().wrap_err("cannot find the sortie executable")?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run.engine_log())
        .wrap_err_with(|| format!("cannot open {}", run.engine_log().display()))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("engine").arg(&run.path);
    if let Some(j) = jobs {
        cmd.arg("-j").arg(j.to_string());
    }
    if fail_fast {
        cmd.arg("--fail-fast");
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = cmd.spawn().wrap_err("cannot start the background engine")?;
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(l) = crate::runlog::lease::current(run)
            && l.pid == pid
        {
            // Reap it later from nobody: the engine outlives us; dropping the handle leaves it running.
            return Ok(pid);
        }
        if let Some(status) = child.try_wait()? {
            let tail = std::fs::read_to_string(run.engine_log()).unwrap_or_default();
            let last = tail.lines().last().unwrap_or("").to_string();
            return Err(eyre!(
                "the background engine exited at once ({status}): {last} (see {})",
                run.engine_log().display()
            ));
        }
        if Instant::now() > deadline {
            return Err(eyre!(
                "the background engine did not take the run's lease within 15 s (see {})",
                run.engine_log().display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
