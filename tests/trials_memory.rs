//! What a study costs in memory (issue 11 §5: the TUI stays ≤ 100 MB with a 100 000-trial study open),
//! counted by this binary's allocator, and that a snapshot shares the reader's trials.
//!
//! The studies have the shape of `benches/trials_gen.py`'s: 5 params, one value, 20 intermediate values
//! and a user attribute per trial.

use sortie::trials::{Storage, Study, journal};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;

/// Counts what this thread holds: the tests run on threads of their own, so one's count is its own.
struct Counting;

thread_local! {
    static LIVE: Cell<(isize, isize)> = const { Cell::new((0, 0)) };
}

fn count(bytes: isize, blocks: isize) {
    // A thread being torn down has no counter left; nothing is measured then.
    let _ = LIVE.try_with(|c| {
        let (b, n) = c.get();
        c.set((b + bytes, n + blocks));
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count(l.size() as isize, 1);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        count(-(l.size() as isize), -1);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, size: usize) -> *mut u8 {
        count(size as isize - l.size() as isize, 0);
        unsafe { System.realloc(p, l, size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> (isize, isize) {
    LIVE.with(Cell::get)
}

const TRIALS: usize = 3000;

const DISTS: [(&str, &str); 5] = [
    (
        "lr",
        r#"{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.1, "log": true}}"#,
    ),
    (
        "dropout",
        r#"{"name": "FloatDistribution", "attributes": {"step": 0.05, "low": 0.0, "high": 0.5, "log": false}}"#,
    ),
    (
        "layers",
        r#"{"name": "IntDistribution", "attributes": {"log": false, "step": 1, "low": 1, "high": 8}}"#,
    ),
    (
        "width",
        r#"{"name": "IntDistribution", "attributes": {"log": false, "step": 16, "low": 16, "high": 512}}"#,
    ),
    (
        "opt",
        r#"{"name": "CategoricalDistribution", "attributes": {"choices": ["adam", "sgd", "adamw"]}}"#,
    ),
];

fn internal(i: usize, p: usize) -> f64 {
    match p {
        0 => 1e-5 + (i % 97) as f64 * 1e-4,
        1 => (i % 11) as f64 * 0.05,
        2 => (1 + i % 8) as f64,
        3 => (16 * (1 + i % 32)) as f64,
        _ => (i % 3) as f64,
    }
}

/// One CREATE_TRIAL line per trial, as `study.add_trials` writes them.
fn journal_text() -> String {
    let mut out =
        String::from(r#"{"op_code":0,"worker_id":"w","study_name":"bench","directions":[1]}"#);
    out.push('\n');
    for i in 0..TRIALS {
        let dists: Vec<String> = DISTS
            .iter()
            .map(|(n, d)| format!("{n:?}:{:?}", d))
            .collect();
        let params: Vec<String> = (0..5)
            .map(|p| format!("{:?}:{}", DISTS[p].0, internal(i, p)))
            .collect();
        let inter: Vec<String> = (0..20)
            .map(|s| format!("\"{s}\":{}", 1.0 + i as f64 / 1e4 + 1.0 / (s + 1) as f64))
            .collect();
        out.push_str(&format!(
            r#"{{"op_code":4,"worker_id":"w","study_id":0,"datetime_start":"2026-01-01T00:00:00.000000+00:00","state":1,"value":{},"values":null,"datetime_complete":"2026-01-01T00:00:30.000000+00:00","distributions":{{{}}},"params":{{{}}},"user_attrs":{{"seed":{}}},"system_attrs":{{}},"intermediate_values":{{{}}}}}"#,
            i as f64 / 1e4,
            dists.join(","),
            params.join(","),
            i % 5,
            inter.join(",")
        ));
        out.push('\n');
    }
    out
}

/// The real Optuna 5 fixture's schema with its trials replaced by the same trials as the journal's.
fn rdb_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("study.db");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/optuna/v5.db");
    std::fs::copy(fixture, &path).unwrap();
    let mut c = rusqlite::Connection::open(&path).unwrap();
    let tx = c.transaction().unwrap();
    for t in [
        "trial_params",
        "trial_values",
        "trial_intermediate_values",
        "trial_user_attributes",
        "trial_system_attributes",
        "trial_heartbeats",
        "trials",
    ] {
        tx.execute(&format!("DELETE FROM {t}"), []).unwrap();
    }
    for i in 0..TRIALS {
        let id = i as i64 + 1;
        tx.execute(
            "INSERT INTO trials (trial_id, number, study_id, state, datetime_start, datetime_complete) \
             VALUES (?1, ?2, 1, 'COMPLETE', '2026-01-01 00:00:00', '2026-01-01 00:00:30')",
            (id, i as i64),
        )
        .unwrap();
        for (p, (name, d)) in DISTS.iter().enumerate() {
            tx.execute(
                "INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json) \
                 VALUES (?1, ?2, ?3, ?4)",
                (id, name, internal(i, p), d),
            )
            .unwrap();
        }
        tx.execute(
            "INSERT INTO trial_values (trial_id, objective, value, value_type) VALUES (?1, 0, ?2, 'FINITE')",
            (id, i as f64 / 1e4),
        )
        .unwrap();
        for s in 0..20 {
            tx.execute(
                "INSERT INTO trial_intermediate_values (trial_id, step, intermediate_value, \
                 intermediate_value_type) VALUES (?1, ?2, ?3, 'FINITE')",
                (id, s, 1.0 + i as f64 / 1e4 + 1.0 / (s + 1) as f64),
            )
            .unwrap();
        }
        tx.execute(
            "INSERT INTO trial_user_attributes (trial_id, key, value_json) VALUES (?1, 'seed', ?2)",
            (id, (i % 5).to_string()),
        )
        .unwrap();
    }
    tx.commit().unwrap();
    path
}

/// The memory the studies hold, per trial: (bytes asked for, blocks).
fn per_trial(make: impl FnOnce() -> Vec<Study>) -> (f64, f64) {
    let before = live();
    let studies = make();
    let after = live();
    let n: usize = studies.iter().map(|s| s.trials.len()).sum();
    assert_eq!(n, TRIALS);
    (
        (after.0 - before.0) as f64 / n as f64,
        (after.1 - before.1) as f64 / n as f64,
    )
}

/// ≤ 640 bytes a trial counting 16 for each block (glibc's header and rounding): 100 000 trials in
/// 64 MB, beside the TUI's own 15 MB.
fn assert_compact(what: &str, (bytes, blocks): (f64, f64)) {
    eprintln!("{what}: {bytes:.0} bytes in {blocks:.1} blocks a trial");
    assert!(
        bytes + 16.0 * blocks <= 640.0,
        "{what}: {bytes:.0} bytes in {blocks:.1} blocks a trial"
    );
}

#[test]
fn a_journal_study_takes_under_640_bytes_a_trial() {
    let text = journal_text();
    let got = per_trial(|| journal::replay_bytes(text.as_bytes(), text.len()).0);
    assert_compact("journal", got);
}

#[test]
fn an_rdb_study_takes_under_640_bytes_a_trial_with_the_reader_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = rdb_file(dir.path());
    let spec = path.to_string_lossy().into_owned();
    let got = per_trial(|| {
        let mut s = Storage::open(&spec, None).unwrap();
        s.load().unwrap().studies
    });
    assert_compact("rdb", got);
}

#[test]
fn a_snapshot_shares_the_trials_and_a_later_change_copies_only_the_changed_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.log");
    let create = r#"{"op_code":0,"worker_id":"w","study_name":"a","directions":[1]}"#;
    let trial = r#"{"op_code":4,"worker_id":"w","study_id":0,"datetime_start":null}"#;
    std::fs::write(&path, format!("{create}\n{trial}\n{trial}\n")).unwrap();
    let mut s = Storage::open(path.to_str().unwrap(), None).unwrap();
    s.refresh().unwrap();
    let snap = s.snapshot();
    let shared = |a: &Study, b: &Study| -> Vec<bool> {
        a.trials
            .iter()
            .zip(&b.trials)
            .map(|(x, y)| Arc::ptr_eq(x, y))
            .collect()
    };
    assert_eq!(shared(&snap[0], s.studies()[0]), [true, true]);
    let report = r#"{"op_code":7,"worker_id":"w","trial_id":1,"step":0,"intermediate_value":0.5}"#;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut f, format!("{report}\n").as_bytes()).unwrap();
    assert!(s.refresh().unwrap());
    assert_eq!(shared(&snap[0], s.studies()[0]), [true, false]);
    assert!(
        snap[0].trials[1].intermediate.is_empty(),
        "the snapshot kept its trial"
    );
    assert_eq!(s.studies()[0].trials[1].intermediate.get(0), Some(0.5));
}
