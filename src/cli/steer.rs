//! `cancel`, `retry`, `rerun`, `resume`: steer a run. A live engine (on any login node) gets a request
//! file and answers in the run's log; a run nobody drives is taken over by this process, which then answers
//! the same request itself.

use super::{EXIT_OK, EXIT_USAGE, exit_for, open_index, resolve_run, runtime};
use crate::engine::detach::{log_len, project_of, spawn_detached, wait_answer};
use crate::engine::{DriveOptions, ProgressMode, drive};
use crate::runlog::control::{self, Request};
use crate::runlog::events::{Event, read_from};
use crate::runlog::{Project, RunDir, RunState, lease};
use crate::util::user_error;
use clap::Args;
use color_eyre::eyre::Result;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct CancelArgs {
    /// The run (id, prefix or `latest`; default latest).
    pub run: Option<String>,
    /// One step (an instance name, or a step name for all its instances); default the whole run.
    pub step: Option<String>,
}

#[derive(Args, Debug)]
pub struct RetryArgs {
    pub run: Option<String>,
    /// Drive the run in the background when no engine is alive.
    #[arg(long, short = 'd')]
    pub detach: bool,
}

#[derive(Args, Debug)]
pub struct RerunArgs {
    /// `[RUN] STEP`: the run may be left out (latest).
    #[arg(num_args = 1..=2, required = true, value_names = ["RUN", "STEP"])]
    pub args: Vec<String>,
    /// Also re-run everything that needs the step.
    #[arg(long)]
    pub downstream: bool,
    #[arg(long, short = 'd')]
    pub detach: bool,
}

#[derive(Args, Debug)]
pub struct ResumeArgs {
    pub run: Option<String>,
    #[arg(long, short = 'd')]
    pub detach: bool,
}

fn locate(project: &Project, spec: Option<&str>) -> Result<(RunDir, RunState)> {
    let mut index = open_index(project)?;
    let row = resolve_run(project, &mut index, spec)?;
    Ok((RunDir::new(row.dir.clone()), row.state))
}

/// Sends `req` to the run's engine, or drives the run here when nobody does.
fn steer(run: &RunDir, req: Request, detach: bool) -> Result<i32> {
    let from = log_len(run);
    let id = control::submit(run, req)?;
    if lease::current(run).is_some_and(|l| l.is_alive())
        && let Some((ok, message)) = wait_answer(run, &id, from, Duration::from_secs(30))
    {
        {
            let who = lease::current(run)
                .map(|l| format!(" (engine {})", l.holder()))
                .unwrap_or_default();
            if ok {
                super::say!("{message}{who}");
                return Ok(EXIT_OK);
            }
            return Err(user_error(message));
        }
    }
    // Nobody drives the run: take it over; the engine answers the request first thing.
    if detach {
        let pid = spawn_detached(run, None, false)?;
        return match wait_answer(run, &id, from, Duration::from_secs(30)) {
            Some((true, m)) => {
                super::say!("{m} (engine pid {pid}, in the background)");
                Ok(EXIT_OK)
            }
            Some((false, m)) => Err(user_error(m)),
            None => Ok(EXIT_OK),
        };
    }
    let project = project_of(run);
    let opts = DriveOptions {
        progress: ProgressMode::detect(),
        ..Default::default()
    };
    let state = runtime()?.block_on(drive(&project, run, opts))?;
    if let Ok(batch) = read_from(&run.events(), from) {
        for r in batch.records {
            if let Event::Request {
                id: rid,
                ok: false,
                message,
                ..
            } = r.event
                && rid == id
            {
                return Err(user_error(message));
            }
        }
    }
    Ok(exit_for(state))
}

pub fn cancel(project: &Project, a: CancelArgs) -> Result<i32> {
    let mut index = open_index(project)?;
    let row = resolve_run(project, &mut index, a.run.as_deref())?;
    // A name that matches nothing is a mistake whatever state the run is in.
    if let Some(step) = &a.step {
        super::logs::find_step_or_group(&index, &row.id, step)?;
    }
    drop(index);
    let (run, state) = (RunDir::new(row.dir.clone()), row.state);
    let live = lease::current(&run).is_some_and(|l| l.is_alive());
    if state != RunState::Running && !live {
        super::say!("run {} is already {state}: nothing to cancel", run.id());
        return Ok(EXIT_OK);
    }
    let code = steer(&run, Request::Cancel { step: a.step }, false)?;
    // Cancelling what we asked for is success, whatever state the run ends in.
    Ok(if code == EXIT_USAGE { code } else { EXIT_OK })
}

pub fn retry(project: &Project, a: RetryArgs) -> Result<i32> {
    let (run, _) = locate(project, a.run.as_deref())?;
    steer(&run, Request::Retry, a.detach)
}

pub fn rerun(project: &Project, a: RerunArgs) -> Result<i32> {
    let (run_spec, step) = match a.args.as_slice() {
        [step] => (None, step.clone()),
        [run, step] => (Some(run.as_str()), step.clone()),
        _ => return Err(user_error("usage: sortie rerun [RUN] STEP")),
    };
    let (run, _) = locate(project, run_spec)?;
    steer(
        &run,
        Request::Rerun {
            step,
            downstream: a.downstream,
        },
        a.detach,
    )
}

pub fn resume(project: &Project, a: ResumeArgs) -> Result<i32> {
    let (run, state) = locate(project, a.run.as_deref())?;
    if let Some(l) = lease::current(&run).filter(|l| l.is_alive()) {
        return Err(user_error(format!(
            "run {} is driven by a live engine ({}); nothing to resume",
            run.id(),
            l.holder()
        )));
    }
    if state != RunState::Running {
        super::say!(
            "run {} already {state}; nothing to resume (use `sortie retry` to run failed steps again)",
            run.id()
        );
        return Ok(exit_for(state));
    }
    if a.detach {
        let pid = spawn_detached(&run, None, false)?;
        super::say!(
            "run {} resumed in the background (engine pid {pid})",
            run.id()
        );
        return Ok(EXIT_OK);
    }
    let project = project_of(&run);
    let opts = DriveOptions {
        progress: ProgressMode::detect(),
        ..Default::default()
    };
    let state = runtime()?.block_on(drive(&project, &run, opts))?;
    Ok(exit_for(state))
}
