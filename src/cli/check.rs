//! `sortie check [FILE] [--json]`: validate a pipeline and print the expanded DAG; nothing runs.

use super::EXIT_OK;
use clap::Args;
use color_eyre::eyre::Result;
use std::io::Write;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The pipeline file.
    #[arg(default_value = "sortie.toml")]
    pub file: PathBuf,
    #[arg(long)]
    pub json: bool,
}

pub fn check(a: CheckArgs) -> Result<i32> {
    let plan = crate::pipeline::load(&a.file).map_err(color_eyre::eyre::Report::new)?;
    print_warnings(&plan);
    let text = if a.json {
        serde_json::to_string_pretty(&crate::pipeline::report::json(&plan))?
    } else {
        crate::pipeline::report::text(&plan)
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", text.trim_end());
    Ok(EXIT_OK)
}

/// The pipeline's warnings on stderr, one line each (`check` and `run` both show them).
pub fn print_warnings(plan: &crate::pipeline::Plan) {
    for w in &plan.warnings {
        eprintln!("sortie: {w}");
    }
}
