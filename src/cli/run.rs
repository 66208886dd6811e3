//! `sortie run` (foreground or detached) and the hidden `sortie engine` a detached run lives in.

use super::{EXIT_OK, exit_for, runtime};
use crate::engine::{DriveOptions, Force, ProgressMode, create_run, drive};
use crate::pipeline::ExecutorKind;
use crate::runlog::{Project, RunDir};
use crate::util::user_error;
use clap::Args;
use color_eyre::eyre::{Result, WrapErr};
use std::path::{Path, PathBuf};

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
    super::check::print_warnings(&plan);
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
        && !crate::util::on_path("sbatch")
    {
        return Err(user_error(format!(
            "{}: step {} uses the slurm executor, but there is no SLURM on this host (sbatch is not on PATH)",
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

pub use crate::engine::detach::{project_of, spawn_detached};

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
