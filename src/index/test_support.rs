//! Fixtures for the index tests: a temporary project with run dirs written through the runlog types.

use super::{Index, Journal};
use crate::runlog::events::StepInfo;
use crate::runlog::{Event, Project, Record, RunDir, StepState};
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub project: Project,
}

impl Fixture {
    pub fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let project = Project::new(tmp.path().join("proj"));
        std::fs::create_dir_all(project.runs_dir()).unwrap();
        Fixture { tmp, project }
    }

    pub fn db(&self) -> PathBuf {
        self.tmp.path().join("index").join("host.db")
    }

    pub fn index(&self, journal: Journal) -> Index {
        Index::open_with(&self.db(), Some(journal)).unwrap()
    }

    /// A run dir with a `run_created` event at time `ts` listing `steps`.
    pub fn new_run(&self, id: &str, ts: f64, steps: &[&str]) -> RunDir {
        let run = self.project.run_dir(id);
        std::fs::create_dir_all(&run.path).unwrap();
        append_event(&run, ts, created(id, steps));
        run
    }
}

pub fn created(id: &str, steps: &[&str]) -> Event {
    Event::RunCreated {
        run: id.into(),
        pipeline: "demo".into(),
        file: "/p/sortie.toml".into(),
        workdir: "/p".into(),
        host: "login1".into(),
        user: "ada".into(),
        steps: steps
            .iter()
            .map(|s| StepInfo {
                name: s.to_string(),
                group: s.split('[').next().unwrap().to_string(),
                params: serde_json::from_str(if s.contains('[') {
                    r#"{"seed":0}"#
                } else {
                    "{}"
                })
                .unwrap(),
                needs: if s.starts_with("train") {
                    vec!["prep".into()]
                } else {
                    vec![]
                },
            })
            .collect(),
    }
}

pub fn append(path: &Path, bytes: &[u8]) {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

pub fn append_event(run: &RunDir, ts: f64, event: Event) {
    let mut line = serde_json::to_vec(&Record { ts, event }).unwrap();
    line.push(b'\n');
    append(&run.events(), &line);
}

/// Starts attempt `n` of `step` (its dir created) and returns the attempt dir.
pub fn start_attempt(run: &RunDir, ts: f64, step: &str, n: u32) -> PathBuf {
    let dir = run.attempt_dir(step, n);
    std::fs::create_dir_all(&dir).unwrap();
    append_event(
        run,
        ts,
        Event::AttemptStarted {
            step: step.into(),
            attempt: n,
            host: "node7".into(),
            pid: Some(4242),
            dir: dir.to_string_lossy().into_owned(),
            cache_key: None,
            job_id: Some(format!("job{n}")),
            boot_id: None,
        },
    );
    dir
}

pub fn end_attempt(run: &RunDir, ts: f64, step: &str, n: u32, state: StepState, code: i32) {
    append_event(
        run,
        ts,
        Event::AttemptEnded {
            step: step.into(),
            attempt: n,
            state,
            exit_code: Some(code),
            signal: None,
            reason: (code != 0).then(|| format!("exit {code}")),
            will_retry: false,
            class: None,
        },
    );
}
