//! Live interop with the real Optuna: 8 worker processes write one SQLite study and one journal while
//! sortie polls every 100 ms. No writer may fail (a reader that held its lock too long would make them
//! hit "database is locked"), and sortie's last reading must equal what Optuna reads.
//!
//! Needs a Python with Optuna 5.0 and pandas: `SORTIE_OPTUNA_PYTHON`, else the venv that
//! fixtures/optuna/generate.sh makes (~/.cache/sortie-venvs/optuna-v5). Skipped without one, unless
//! `SORTIE_REQUIRE_OPTUNA=1` (as `.ci/run` sets), when a missing Optuna fails the test.

mod common;

use common::optuna::assert_same_as_optuna;
use serde_json::Value;
use sortie::trials::{Storage, report};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WORKERS: usize = 8;
const TRIALS_EACH: usize = 12;

fn python() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("SORTIE_OPTUNA_PYTHON").map(PathBuf::from),
        std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".cache/sortie-venvs/optuna-v5/bin/python")),
    ];
    let found = candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .args([
                "-c",
                "import optuna, pandas; assert optuna.__version__.startswith('5.')",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        assert!(
            std::env::var("SORTIE_REQUIRE_OPTUNA").as_deref() != Ok("1"),
            "SORTIE_REQUIRE_OPTUNA=1 but no Python with Optuna 5 (set SORTIE_OPTUNA_PYTHON or run \
             fixtures/optuna/generate.sh)"
        );
        eprintln!("skipped: no Python with Optuna 5 (set SORTIE_OPTUNA_PYTHON)");
    }
    found
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/optuna")
        .join(name)
}

fn create_study(py: &Path, spec: &str) {
    let code = format!(
        "import optuna\n\
         spec = {spec:?}\n\
         storage = spec if spec.startswith('sqlite:') else optuna.storages.JournalStorage(\
         optuna.storages.journal.JournalFileBackend(spec))\n\
         optuna.create_study(study_name='live', storage=storage, direction='minimize')\n"
    );
    let st = Command::new(py).args(["-c", &code]).status().unwrap();
    assert!(st.success(), "creating the study in {spec} failed");
}

/// Runs the workers against `spec` while polling `file` every 100 ms; returns the final reading.
fn run_live(py: &Path, spec: &str, file: &Path) -> (Vec<Value>, usize) {
    create_study(py, spec);
    let mut workers: Vec<Child> = (0..WORKERS)
        .map(|i| {
            Command::new(py)
                .arg(script("worker.py"))
                .args([spec, "live", &TRIALS_EACH.to_string(), &i.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut storage = Storage::open(&file.to_string_lossy(), None).expect("open the study file");
    let mut polls = 0;
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut statuses = vec![None; WORKERS];
    while statuses.iter().any(Option::is_none) {
        assert!(
            Instant::now() < deadline,
            "the workers did not finish in time"
        );
        storage
            .refresh()
            .unwrap_or_else(|e| panic!("poll {polls} of {spec} failed: {e}"));
        polls += 1;
        for (w, s) in workers.iter_mut().zip(statuses.iter_mut()) {
            if s.is_none() {
                *s = w.try_wait().unwrap();
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for (i, (w, s)) in workers.iter_mut().zip(&statuses).enumerate() {
        let mut err = String::new();
        std::io::Read::read_to_string(w.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(
            s.is_some_and(|s| s.success()),
            "worker {i} on {spec} failed while sortie polled:\n{err}"
        );
    }
    storage.refresh().unwrap();
    let warnings = storage.take_warnings();
    assert!(warnings.is_empty(), "{warnings:?}");
    let studies = storage
        .studies()
        .iter()
        .map(|s| {
            let ts: Vec<_> = s.trials.iter().collect();
            report::study_json(spec, s, &ts)
        })
        .collect();
    (studies, polls)
}

fn expected(py: &Path, spec: &str, dir: &Path) -> Value {
    let out = dir.join("live.expected.json");
    let st = Command::new(py)
        .arg("-W")
        .arg("ignore")
        .arg(script("generate.py"))
        .args(["expect", spec, out.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap()
}

fn check(py: &Path, spec: &str, file: &Path, dir: &Path) {
    let (got, polls) = run_live(py, spec, file);
    assert!(
        polls >= 10,
        "only {polls} polls happened while the workers ran"
    );
    let exp = expected(py, spec, dir);
    let trials = got[0]["trials"].as_array().unwrap().len();
    assert_eq!(
        trials,
        WORKERS * TRIALS_EACH,
        "{spec}: every trial was read"
    );
    assert_same_as_optuna(spec, &got, &exp);
}

#[test]
fn eight_workers_on_one_sqlite_study_while_sortie_polls() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    check(&py, &format!("sqlite:///{}", db.display()), &db, dir.path());
}

#[test]
fn eight_workers_on_one_journal_while_sortie_polls() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("live.journal");
    check(&py, log.to_str().unwrap(), &log, dir.path());
}
