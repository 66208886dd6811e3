//! `sortie demo`: copy the bundled demo pipeline to a fresh directory and run it on the local executor.

use crate::engine::{DriveOptions, Force, ProgressMode, create_run, drive};
use crate::runlog::Project;
use clap::Args;
use color_eyre::eyre::{Result, WrapErr};
use std::path::{Path, PathBuf};

/// The demo's files, embedded so the binary needs nothing else.
const FILES: &[(&str, &str)] = &[
    (
        "sortie.toml",
        include_str!("../../fixtures/demo/sortie.toml"),
    ),
    (
        "scripts/prepare.sh",
        include_str!("../../fixtures/demo/scripts/prepare.sh"),
    ),
    (
        "scripts/train.py",
        include_str!("../../fixtures/demo/scripts/train.py"),
    ),
    (
        "scripts/train.sh",
        include_str!("../../fixtures/demo/scripts/train.sh"),
    ),
    (
        "scripts/evaluate.sh",
        include_str!("../../fixtures/demo/scripts/evaluate.sh"),
    ),
    (
        "scripts/report.sh",
        include_str!("../../fixtures/demo/scripts/report.sh"),
    ),
];

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where to put the demo (default: ./sortie-demo, or ./sortie-demo-2… if taken).
    pub dir: Option<PathBuf>,
    /// Only copy the files; do not run.
    #[arg(long)]
    pub no_run: bool,
    /// Run in the foreground with progress lines instead of opening the TUI.
    #[arg(long)]
    pub no_tui: bool,
    /// Steps at once.
    #[arg(short = 'j', long = "jobs", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
}

fn fresh_dir(base: &Path) -> PathBuf {
    if !base.exists() {
        return base.to_path_buf();
    }
    (2..)
        .map(|n| PathBuf::from(format!("{}-{n}", base.display())))
        .find(|p| !p.exists())
        .expect("an unused name")
}

/// Writes the demo files into `dir` (which must not hold a pipeline already).
pub fn copy_demo(dir: &Path) -> Result<()> {
    if dir.join("sortie.toml").exists() {
        return Err(crate::util::user_error(format!(
            "{} already holds a sortie.toml; pick another directory",
            dir.display()
        )));
    }
    for (name, text) in FILES {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .wrap_err_with(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).wrap_err_with(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

pub fn demo(a: DemoArgs, read_only: bool, theme: Option<String>) -> Result<i32> {
    let dir = match a.dir {
        Some(d) => d,
        None => fresh_dir(Path::new("sortie-demo")),
    };
    copy_demo(&dir)?;
    let dir = std::fs::canonicalize(&dir)?;
    super::say!("demo pipeline copied to {}", dir.display());
    if a.no_run {
        return Ok(super::EXIT_OK);
    }
    let plan =
        crate::pipeline::load(&dir.join("sortie.toml")).map_err(color_eyre::eyre::Report::new)?;
    let project = Project::new(dir.clone());
    let run = create_run(&project, &plan, &Force::None)?;
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() && std::io::stdin().is_terminal() && !a.no_tui {
        // On a terminal: the engine runs in the background and the TUI watches it; quitting the TUI
        // leaves the run going.
        crate::engine::detach::spawn_detached(&run, a.jobs, false)?;
        let opts = crate::tui::TuiOptions {
            trials: Vec::new(),
            read_only,
            theme,
            run: Some(run.id()),
        };
        let code = crate::tui::run(project, opts)?;
        super::say!(
            "the demo run {} goes on in the background: cd {} && sortie",
            run.id(),
            dir.display()
        );
        return Ok(code);
    }
    super::say!(
        "run {} ({}, {} steps)",
        run.id(),
        plan.name,
        plan.instances.len()
    );
    let opts = DriveOptions {
        parallel: a.jobs.map(|j| j as usize),
        fail_fast: false,
        progress: ProgressMode::detect(),
    };
    let state = super::runtime()?.block_on(drive(&project, &run, opts))?;
    super::say!(
        "look around: cd {} && sortie status && sortie plot val/acc",
        dir.display()
    );
    Ok(super::exit_for(state))
}
