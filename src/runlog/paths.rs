//! Where things live: the project's `.sortie/` directory, run directories and attempt directories.

use std::path::{Path, PathBuf};

/// A project is the directory that holds `.sortie/` (next to the pipeline file).
#[derive(Clone, Debug)]
pub struct Project {
    pub root: PathBuf,
}

impl Project {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Project { root: root.into() }
    }

    /// The project for commands that act on existing runs: `SORTIE_PROJECT`, else the nearest directory at
    /// or above `start` that has a `.sortie/`, else `start` itself.
    pub fn discover(start: &Path) -> Self {
        if let Ok(p) = std::env::var("SORTIE_PROJECT")
            && !p.is_empty()
        {
            return Project::new(p);
        }
        let mut dir = Some(start);
        while let Some(d) = dir {
            if d.join(".sortie").is_dir() {
                return Project::new(d);
            }
            dir = d.parent();
        }
        Project::new(start)
    }

    pub fn sortie_dir(&self) -> PathBuf {
        self.root.join(".sortie")
    }

    pub fn runs_dir(&self) -> PathBuf {
        self.sortie_dir().join("runs")
    }

    pub fn run_dir(&self, run_id: &str) -> RunDir {
        RunDir::new(self.runs_dir().join(run_id))
    }

    /// The per-host index file. `SORTIE_STATE_DIR` puts it on a local disk; otherwise it sits in the
    /// project as `.sortie/index/<host>.db`, one file per host so no SQLite file is opened from two machines.
    pub fn index_path(&self, host: &str) -> PathBuf {
        match std::env::var("SORTIE_STATE_DIR") {
            Ok(d) if !d.is_empty() => {
                // Several projects may share one state dir: key the file by the project too.
                let tag = blake3::hash(self.root.to_string_lossy().as_bytes()).to_hex();
                PathBuf::from(d).join(format!("{host}-{}.db", &tag[..12]))
            }
            _ => self.sortie_dir().join("index").join(format!("{host}.db")),
        }
    }

    /// Ids of every run directory, in no particular order.
    pub fn run_ids(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(self.runs_dir()) else {
            return Vec::new();
        };
        rd.filter_map(|e| e.ok())
            .filter(|e| e.path().join(EVENTS_FILE).is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()
    }
}

pub const EVENTS_FILE: &str = "events.jsonl";
pub const PLAN_FILE: &str = "plan.json";
pub const PIPELINE_COPY: &str = "pipeline.toml";
pub const EXIT_CODE_FILE: &str = "exit_code";
pub const STDOUT_FILE: &str = "stdout.log";
pub const STDERR_FILE: &str = "stderr.log";
pub const METRICS_FILE: &str = "metrics.jsonl";
pub const CACHE_MANIFEST_FILE: &str = "cache.json";
pub const NEEDS_FILE: &str = "needs.json";

/// One run's directory: `.sortie/runs/<run>/`.
#[derive(Clone, Debug)]
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        RunDir { path: path.into() }
    }

    /// The run id is the directory's name.
    pub fn id(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub fn events(&self) -> PathBuf {
        self.path.join(EVENTS_FILE)
    }

    pub fn plan(&self) -> PathBuf {
        self.path.join(PLAN_FILE)
    }

    pub fn pipeline_copy(&self) -> PathBuf {
        self.path.join(PIPELINE_COPY)
    }

    pub fn lease_dir(&self) -> PathBuf {
        self.path.join("lease")
    }

    pub fn control_dir(&self) -> PathBuf {
        self.path.join("control")
    }

    /// The detached engine's own stdout/stderr.
    pub fn engine_log(&self) -> PathBuf {
        self.path.join("engine.log")
    }

    pub fn step_dir(&self, step: &str) -> PathBuf {
        self.path.join(step_dir_name(step))
    }

    pub fn attempt_dir(&self, step: &str, attempt: u32) -> PathBuf {
        self.step_dir(step).join(format!("attempt-{attempt}"))
    }
}

/// A step instance's directory name. Names such as `train[dataset=cora,seed=0]` are kept as they are; any
/// character that is awkward in a path (a slash, a quote, a space, a control character) becomes `_`, and a
/// short hash of the real name is appended so two different names never share a directory.
pub fn step_dir_name(step: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "[]=,._+-@%:".contains(c);
    if !step.is_empty() && step.chars().all(safe) && !step.starts_with('.') {
        return step.to_string();
    }
    let cleaned: String = step
        .chars()
        .map(|c| if safe(c) { c } else { '_' })
        .take(80)
        .collect();
    let h = blake3::hash(step.as_bytes()).to_hex();
    format!("{}-{}", cleaned.trim_start_matches('.'), &h[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_kept() {
        assert_eq!(
            step_dir_name("train[model=gcn,seed=0]"),
            "train[model=gcn,seed=0]"
        );
        assert_eq!(step_dir_name("prepare"), "prepare");
    }

    #[test]
    fn hostile_names_are_cleaned_and_distinct() {
        let a = step_dir_name("train[x=x'; rm -rf ~; ']");
        let b = step_dir_name("train[x=x'; rm -rf ~;_']");
        assert!(!a.contains('/') && !a.contains('\'') && !a.contains(' '));
        assert_ne!(a, b);
        assert!(!step_dir_name("a/../b").contains('/'));
        assert!(!step_dir_name("..").starts_with('.'));
    }
}
