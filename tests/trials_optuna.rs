//! `sortie trials` against studies the real Optuna wrote (fixtures/optuna, made by generate.sh with
//! Optuna 5.0, 4.5 and 2.10): every trial compared with what Optuna's own `load_study` read back from the
//! same file, and damaged or foreign files derived from those real ones.

mod common;

use common::optuna::{assert_same_as_optuna, num, rfc3339_unix};
use common::{BIN, run_with_deadline};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/optuna")
}

fn sortie(args: &[&str], tz: &str) -> common::Out {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env("TZ", tz);
    run_with_deadline(cmd, Duration::from_secs(30))
}

fn compare_file(name: &str) {
    let path = fixtures().join(name);
    let exp: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join(format!("{name}.expected.json"))).unwrap(),
    )
    .unwrap();
    let offset = exp["utc_offset_s"].as_i64().unwrap();
    // Read in the writer's zone, as a user on the same cluster would.
    let tz = if offset == 0 { "UTC" } else { "Asia/Tokyo" };
    let out = sortie(&["trials", path.to_str().unwrap(), "--json"], tz);
    out.ok();
    let got = out.json();
    assert_same_as_optuna(name, got.as_array().unwrap(), &exp);
}

#[test]
fn optuna_5_sqlite_reads_as_optuna_reads_it() {
    compare_file("v5.db");
}

#[test]
fn optuna_5_journal_reads_as_optuna_reads_it() {
    compare_file("v5.journal");
}

#[test]
fn optuna_4_sqlite_with_local_times_reads_as_optuna_reads_it() {
    compare_file("v4.db");
}

#[test]
fn optuna_4_journal_with_local_times_reads_as_optuna_reads_it() {
    compare_file("v4.journal");
}

#[test]
fn the_oldest_revision_v2_6_with_legacy_distributions_reads_as_optuna_reads_it() {
    compare_file("v2.db");
}

#[test]
fn importance_agrees_with_optunas_ped_anova() {
    for name in ["v5.db", "v5.journal"] {
        let exp: Value = serde_json::from_str(
            &std::fs::read_to_string(fixtures().join(format!("{name}.expected.json"))).unwrap(),
        )
        .unwrap();
        let out = sortie(
            &["trials", fixtures().join(name).to_str().unwrap(), "--json"],
            "UTC",
        );
        out.ok();
        let got = out.json();
        let mut checked = 0;
        for (g, w) in got
            .as_array()
            .unwrap()
            .iter()
            .zip(exp["studies"].as_array().unwrap())
        {
            let Some(want) = w["importance"].as_object() else {
                continue;
            };
            let have = g["importance"].as_object().expect("an importance");
            let rank = |m: &serde_json::Map<String, Value>| {
                let mut v: Vec<(String, f64)> =
                    m.iter().map(|(k, x)| (k.clone(), num(x))).collect();
                v.sort_by(|a, b| b.1.total_cmp(&a.1));
                v
            };
            let (h, w2) = (rank(have), rank(want));
            assert_eq!(
                h.iter().map(|x| &x.0).collect::<Vec<_>>(),
                w2.iter().map(|x| &x.0).collect::<Vec<_>>(),
                "{name}/{}: ranking {h:?} vs Optuna's {w2:?}",
                w["name"]
            );
            for ((k, a), (_, b)) in h.iter().zip(&w2) {
                assert!((a - b).abs() < 1e-9, "{name}/{}: {k} {a} vs {b}", w["name"]);
            }
            checked += 1;
        }
        assert!(checked >= 1, "{name}: no study had importances");
    }
}

#[test]
fn a_heartbeat_is_read_as_utc() {
    let out = sortie(
        &[
            "trials",
            fixtures().join("v5.db").to_str().unwrap(),
            "--study",
            "heartbeat",
            "--json",
        ],
        "Asia/Tokyo",
    );
    out.ok();
    let doc = out.json();
    let t = &doc[0]["trials"][0];
    assert_eq!(t["state"], "RUNNING");
    let hb = rfc3339_unix(&t["heartbeat"]).expect("a heartbeat");
    let start = rfc3339_unix(&t["start"]).unwrap();
    // Recorded right after the trial started: a reader that took it for Tokyo time is 9 h off.
    assert!((hb - start).abs() < 5.0, "heartbeat {hb} vs start {start}");
    // The study's last change is the newest time any trial tells.
    let last = rfc3339_unix(&doc[0]["last_change"]).expect("a last change");
    assert_eq!(last, hb.max(start));
}

#[test]
fn a_folder_lists_every_study_file_in_it() {
    let out = sortie(&["trials", fixtures().to_str().unwrap(), "--json"], "UTC");
    out.ok();
    let mut sources: Vec<String> = out
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            Path::new(s["source"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    sources.dedup();
    assert_eq!(
        sources,
        ["v2.db", "v4.db", "v4.journal", "v5.db", "v5.journal"]
    );
}

#[test]
fn best_picks_optunas_best_trial_and_the_pareto_front() {
    let db = fixtures().join("v5.db");
    let db = db.to_str().unwrap();
    let url = format!("sqlite:///{db}");
    let out = sortie(
        &["trials", &url, "--study", "asha", "--best", "--json"],
        "UTC",
    );
    out.ok();
    let doc = out.json();
    let trials = doc[0]["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 1);
    // Optuna's best: the least value among COMPLETE trials.
    let all = sortie(&["trials", db, "--study", "asha", "--json"], "UTC").json();
    let best = all[0]["trials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["state"] == "COMPLETE")
        .min_by(|a, b| num(&a["values"][0]).total_cmp(&num(&b["values"][0])))
        .unwrap()
        .clone();
    assert_eq!(trials[0]["number"], best["number"]);

    let front = sortie(
        &["trials", db, "--study", "pareto", "--best", "--json"],
        "UTC",
    )
    .json();
    let front = front[0]["trials"].as_array().unwrap();
    let all = sortie(&["trials", db, "--study", "pareto", "--json"], "UTC").json();
    let all = all[0]["trials"].as_array().unwrap();
    // Minimise the first objective, maximise the second: nobody on the front is dominated.
    let l = |t: &Value| (num(&t["values"][0]), -num(&t["values"][1]));
    for f in front {
        let (a, b) = l(f);
        assert!(!all.iter().any(|t| {
            let (x, y) = l(t);
            x <= a && y <= b && (x < a || y < b)
        }));
    }
    assert!(!front.is_empty() && front.len() < all.len());
}

#[test]
fn the_text_table_marks_the_best_and_counts_states() {
    let out = sortie(
        &[
            "trials",
            fixtures().join("v5.db").to_str().unwrap(),
            "--study",
            "tune",
        ],
        "UTC",
    );
    out.ok();
    let first = out.stdout.lines().next().unwrap();
    assert!(first.starts_with("study tune (minimize)"), "{first}");
    assert!(first.contains("1 running, 1 waiting"), "{first}");
    assert!(out.stdout.contains('★'), "{}", out.stdout);
    let header = out.stdout.lines().nth(1).unwrap();
    for col in [
        "state", "value", "lr", "layers", "width", "dropout", "opt", "duration",
    ] {
        assert!(header.contains(col), "{header}");
    }
}

// ---- damaged, foreign and unsupported files, derived from the real ones ----

fn temp_copy(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join(name);
    std::fs::copy(fixtures().join(name), &to).unwrap();
    (dir, to)
}

fn trial_count(out: &common::Out) -> usize {
    out.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["trials"].as_array().unwrap().len())
        .sum()
}

#[test]
fn glued_and_blank_journal_lines_are_reported_by_line_and_read_on() {
    let (_d, path) = temp_copy("v5.journal");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // As NFS leaves it (optuna#5138): a blank line, and two records on one line.
    let mut damaged = String::new();
    for (i, l) in lines.iter().enumerate() {
        damaged.push_str(l);
        match i {
            10 => damaged.push_str("\n\n"),
            20 => {}
            _ => damaged.push('\n'),
        }
    }
    std::fs::write(&path, damaged).unwrap();
    let good = sortie(
        &[
            "trials",
            fixtures().join("v5.journal").to_str().unwrap(),
            "--json",
        ],
        "UTC",
    );
    let out = sortie(&["trials", path.to_str().unwrap(), "--json"], "UTC");
    out.ok();
    assert_eq!(out.json(), {
        // Same studies, same trials (only the source path differs).
        let mut v = good.json();
        for s in v.as_array_mut().unwrap() {
            s["source"] = Value::from(path.to_str().unwrap());
        }
        v
    });
    assert!(out.stderr.contains(":12: blank line"), "{}", out.stderr);
    assert!(
        out.stderr.contains(":22: 2 records glued"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_partial_last_journal_line_waits_for_the_rest() {
    let (_d, path) = temp_copy("v5.journal");
    let full = std::fs::read(&path).unwrap();
    let full_count = trial_count(&sortie(
        &["trials", path.to_str().unwrap(), "--json"],
        "UTC",
    ));
    // Cut inside the record that creates the last trial: that trial is not there yet, and no warning.
    let text = String::from_utf8(full.clone()).unwrap();
    let last_create = text.rfind("{\"op_code\":4,").unwrap();
    std::fs::write(&path, &full[..last_create + 20]).unwrap();
    let out = sortie(&["trials", path.to_str().unwrap(), "--json"], "UTC");
    out.ok();
    assert_eq!(trial_count(&out), full_count - 1);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

#[test]
fn a_corrupt_line_in_the_middle_is_reported_and_skipped() {
    let (_d, path) = temp_copy("v5.journal");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    // Line 30 loses its tail (a torn write) and the rest of the file follows.
    let cut = lines[29].len() / 2;
    lines[29].truncate(cut);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let out = sortie(&["trials", path.to_str().unwrap(), "--json"], "UTC");
    out.ok();
    assert!(
        out.stderr.contains(":30: not a journal record"),
        "{}",
        out.stderr
    );
    assert!(trial_count(&out) > 50);
}

#[test]
fn foreign_and_corrupt_files_get_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let foreign = dir.path().join("mlflow.db");
    let c = rusqlite::Connection::open(&foreign).unwrap();
    c.execute_batch("CREATE TABLE runs (id TEXT); INSERT INTO runs VALUES ('x');")
        .unwrap();
    drop(c);
    let garbage = dir.path().join("notes.txt");
    std::fs::write(&garbage, "epoch 1 loss 0.3\n").unwrap();
    let torn = dir.path().join("torn.db");
    let real = std::fs::read(fixtures().join("v5.db")).unwrap();
    let mut bad = real[..4096].to_vec();
    bad.extend(std::iter::repeat_n(0xAB, 8192));
    std::fs::write(&torn, bad).unwrap();
    for (path, says) in [
        (&foreign, "not an Optuna storage"),
        (&garbage, "not an Optuna journal"),
        (&torn, "torn.db"),
        (&dir.path().join("missing.db"), "No such file"),
    ] {
        let out = sortie(&["trials", path.to_str().unwrap()], "UTC");
        out.expect_code(2);
        let err = out.stderr.trim();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(path.to_str().unwrap()) && err.contains(says),
            "{err}"
        );
    }
}

#[test]
fn a_revision_older_than_v2_6_is_refused_with_the_upgrade_hint() {
    let (_d, path) = temp_copy("v2.db");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute("UPDATE alembic_version SET version_num = 'v2.4.0.a'", [])
        .unwrap();
    drop(c);
    let out = sortie(&["trials", path.to_str().unwrap()], "UTC");
    out.expect_code(2);
    assert!(out.stderr.contains("v2.4.0.a"), "{}", out.stderr);
    assert!(
        out.stderr.contains("optuna storage upgrade"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_unknown_study_name_lists_the_studies_there() {
    let out = sortie(
        &[
            "trials",
            fixtures().join("v5.db").to_str().unwrap(),
            "--study",
            "tuen",
        ],
        "UTC",
    );
    out.expect_code(2);
    assert!(
        out.stderr.contains("tune, pareto, asha, heartbeat"),
        "{}",
        out.stderr
    );
}

#[test]
fn reading_never_writes_the_storage() {
    let (_d, path) = temp_copy("v5.db");
    let before = std::fs::read(&path).unwrap();
    let journal_mode = |p: &Path| -> String {
        let c = rusqlite::Connection::open(p).unwrap();
        c.query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap()
    };
    let mode = journal_mode(&path);
    sortie(&["trials", path.to_str().unwrap(), "--json"], "UTC").ok();
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(journal_mode(&path), mode);
    let dir = path.parent().unwrap();
    let mut left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["v5.db"], "no -journal, -wal or -shm file was left");
}
