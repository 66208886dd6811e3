//! `sortie trials`: the Optuna studies in a storage file or a folder of them, as a leaderboard or JSON.

use super::EXIT_OK;
use crate::trials::{Storage, Study, TimeBasis, Trial, discover, report};
use crate::util::user_error;
use clap::{Args, ValueEnum};
use color_eyre::eyre::Result;
use std::path::Path;

#[derive(Args, Debug)]
pub struct TrialsArgs {
    /// An Optuna storage (`sqlite:///study.db`, a SQLite file or a journal file), or a folder to search
    /// for them.
    #[arg(value_name = "STORAGE|DIR")]
    pub storage: String,
    /// Only this study.
    #[arg(long, value_name = "NAME")]
    pub study: Option<String>,
    /// Only the best trial (the Pareto front for several objectives).
    #[arg(long)]
    pub best: bool,
    #[arg(long)]
    pub json: bool,
    /// How to read naive timestamps (default: UTC for files Optuna 5 made, else local time).
    #[arg(long, value_enum, value_name = "BASIS")]
    pub timestamps: Option<Basis>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Basis {
    Utc,
    Local,
}

pub fn trials(a: TrialsArgs) -> Result<i32> {
    let basis = a.timestamps.map(|b| match b {
        Basis::Utc => TimeBasis::Utc,
        Basis::Local => TimeBasis::Local,
    });
    let path = crate::trials::path_of(&a.storage);
    let files = if path.is_dir() {
        let found = discover::study_files(&path)
            .map_err(|e| user_error(format!("{}: {e}", path.display())))?;
        if found.is_empty() {
            return Err(user_error(format!(
                "{}: no Optuna study files (SQLite storages or journals) in it",
                path.display()
            )));
        }
        found
    } else {
        vec![path]
    };
    let mut studies: Vec<(String, Study)> = Vec::new();
    for file in &files {
        let loaded = Storage::open(&file.to_string_lossy(), basis)
            .and_then(|mut s| s.load())
            .map_err(user_error)?;
        for w in &loaded.warnings {
            eprintln!("sortie: warning: {w}");
        }
        let source = display(file);
        studies.extend(loaded.studies.into_iter().map(|s| (source.clone(), s)));
    }
    if let Some(name) = &a.study {
        let names: Vec<String> = studies.iter().map(|(_, s)| s.name.clone()).collect();
        studies.retain(|(_, s)| &s.name == name);
        if studies.is_empty() {
            return Err(user_error(format!(
                "no study named {name:?} in {} (studies: {})",
                a.storage,
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )));
        }
    }
    if a.json {
        let doc: Vec<serde_json::Value> = studies
            .iter()
            .map(|(src, s)| report::study_json(src, s, &chosen(s, a.best)))
            .collect();
        say!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(EXIT_OK);
    }
    if studies.is_empty() {
        say!("no studies in {}", a.storage);
    }
    for (i, (src, s)) in studies.iter().enumerate() {
        if i > 0 {
            say!("");
        }
        for line in report::table(src, s, &chosen(s, a.best)) {
            say!("{line}");
        }
    }
    Ok(EXIT_OK)
}

/// The trials to list: all, or the best ones; both in number order.
fn chosen(s: &Study, best: bool) -> Vec<&Trial> {
    if best {
        report::best_trials(s)
    } else {
        s.trials.iter().map(|t| &**t).collect()
    }
}

fn display(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
