//! `sortie logs [RUN] STEP`: print (and with --follow, keep printing) a step's stdout or stderr.

use super::{EXIT_OK, open_index, resolve_run};
use crate::index::{Index, StepRow};
use crate::runlog::paths::{STDERR_FILE, STDOUT_FILE};
use crate::runlog::{Project, RunDir};
use crate::util::user_error;
use clap::Args;
use color_eyre::eyre::{Result, eyre};
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// `[RUN] STEP`: the run may be left out (latest).
    #[arg(num_args = 1..=2, required = true, value_names = ["RUN", "STEP"])]
    pub args: Vec<String>,
    /// Keep printing as the step writes, until it ends.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// The step's stderr instead of its stdout.
    #[arg(long)]
    pub stderr: bool,
    /// Which attempt (default: the latest).
    #[arg(long)]
    pub attempt: Option<u32>,
}

/// Finds a step instance by its full name, or by a step name that has exactly one instance.
pub fn find_step(index: &Index, run: &str, name: &str) -> Result<StepRow> {
    let steps = index.steps(run).map_err(|e| eyre!("{e}"))?;
    if let Some(s) = steps.iter().find(|s| s.name == name) {
        return Ok(s.clone());
    }
    let group: Vec<&StepRow> = steps.iter().filter(|s| s.group == name).collect();
    match group.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(no_such_step(run, name, &steps)),
        many => Err(user_error(format!(
            "{name} has {} instances in run {run}; name one: {}",
            many.len(),
            list(many.iter().map(|s| s.name.as_str()))
        ))),
    }
}

/// The error for a name that is neither an instance nor a step of the run, with the closest name.
fn no_such_step(run: &str, name: &str, steps: &[StepRow]) -> color_eyre::eyre::Report {
    let names = steps
        .iter()
        .flat_map(|s| [s.name.as_str(), s.group.as_str()])
        .collect::<std::collections::BTreeSet<_>>();
    let hint = crate::pipeline::closest(name, names.iter().copied())
        .map(|c| format!("did you mean {c:?}? "))
        .unwrap_or_default();
    user_error(format!(
        "run {run} has no step {name:?} ({hint}steps: {})",
        list(steps.iter().map(|s| s.name.as_str()))
    ))
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = names.collect();
    if v.len() > 8 {
        format!("{}, … ({} in all)", v[..8].join(", "), v.len())
    } else {
        v.join(", ")
    }
}

pub fn logs(project: &Project, a: LogsArgs) -> Result<i32> {
    let (run_spec, step) = match a.args.as_slice() {
        [s] => (None, s.as_str()),
        [r, s] => (Some(r.as_str()), s.as_str()),
        _ => return Err(user_error("usage: sortie logs [RUN] STEP")),
    };
    let mut index = open_index(project)?;
    let run = resolve_run(project, &mut index, run_spec)?;
    let mut row = find_step(&index, &run.id, step)?;
    // Following a step that has not started yet waits for it to start (or to end without running).
    while a.follow && a.attempt.is_none() && row.attempts == 0 && !row.state.is_final() {
        std::thread::sleep(Duration::from_millis(250));
        index
            .sync_run(&RunDir::new(run.dir.clone()))
            .map_err(|e| eyre!("cannot update the index: {e}"))?;
        row = find_step(&index, &run.id, step)?;
    }
    let attempt = a.attempt.unwrap_or(row.attempts);
    if attempt == 0 {
        return Err(user_error(format!(
            "{} has not started in run {} (it is {})",
            row.name, run.id, row.state
        )));
    }
    if attempt > row.attempts {
        return Err(user_error(format!(
            "--attempt {attempt}: {} has {} attempt{} in run {}",
            row.name,
            row.attempts,
            if row.attempts == 1 { "" } else { "s" },
            run.id
        )));
    }
    let dir = RunDir::new(run.dir.clone()).attempt_dir(&row.name, attempt);
    let file = dir.join(if a.stderr { STDERR_FILE } else { STDOUT_FILE });
    // An attempt that is over wrote its log; if it is gone, say so rather than print nothing. (A
    // running one may not have created it yet: a queued Slurm job.)
    let over = row.state.is_final()
        || attempt < row.attempts
        || dir.join(crate::runlog::paths::EXIT_CODE_FILE).exists();
    if !dir.is_dir() {
        return Err(eyre!(
            "attempt {attempt} of {} has no directory (deleted?): {}",
            row.name,
            dir.display()
        ));
    }
    if over && !file.exists() {
        return Err(eyre!(
            "attempt {attempt} of {} has no log (deleted?): {}",
            row.name,
            file.display()
        ));
    }
    let mut offset = 0u64;
    let mut out = std::io::stdout().lock();
    loop {
        offset = copy_from(&file, offset, &mut out)?;
        if !a.follow {
            break;
        }
        // The exit-code file appears when the attempt ends; one more read catches the last lines.
        if dir.join(crate::runlog::paths::EXIT_CODE_FILE).exists() {
            copy_from(&file, offset, &mut out)?;
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(EXIT_OK)
}

/// Copies the bytes after `offset` (polling works on NFS, where change notifications do not).
fn copy_from(path: &std::path::Path, offset: u64, out: &mut impl Write) -> Result<u64> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(offset),
        Err(e) => return Err(eyre!("cannot read {}: {e}", path.display())),
    };
    let len = f.metadata()?.len();
    // A truncated file starts over.
    let start = if len < offset { 0 } else { offset };
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    let _ = out.write_all(&buf);
    let _ = out.flush();
    Ok(start + buf.len() as u64)
}

/// Instance names for a name that is an instance, or every instance of a step.
pub fn find_step_or_group(index: &Index, run: &str, name: &str) -> Result<Vec<String>> {
    let steps = index.steps(run).map_err(|e| eyre!("{e}"))?;
    if steps.iter().any(|s| s.name == name) {
        return Ok(vec![name.to_string()]);
    }
    let group: Vec<String> = steps
        .iter()
        .filter(|s| s.group == name)
        .map(|s| s.name.clone())
        .collect();
    if group.is_empty() {
        return Err(no_such_step(run, name, &steps));
    }
    Ok(group)
}
