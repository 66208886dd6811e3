//! The per-host index is only a cache of the run files: deleting it changes nothing a user can see.

mod common;

use common::Project;
use serde_json::Value;
use std::time::Duration;

const PIPELINE: &str = r#"[pipeline]
name = "idx"

[[step]]
name = "prep"
run = "echo prep"
outputs = ["prep.txt"]
setup = "touch prep.txt"

[[step]]
name = "train"
needs = ["prep"]
matrix = { seed = [0, 1] }
run = '''
for i in $(seq 1 20); do
  echo "{\"step\": $i, \"loss\": $((100 - i)).25, \"acc\": 0.$i, \"weird\": NaN}" >> "$SORTIE_METRICS"
done
'''

[[step]]
name = "flaky"
retries = 1
retry_backoff = "100ms"
run = '''
echo '{"step": 1, "x": 1}' >> "$SORTIE_METRICS"
test "$SORTIE_ATTEMPT" -ge 2
'''

[[step]]
name = "broken"
needs = ["train"]
run = "exit 4"

[[step]]
name = "blocked"
needs = ["broken"]
run = "true"
"#;

/// What a user reads, without the one field that depends on the moment it is read.
fn snapshot(p: &Project, with_state_dir: bool) -> Vec<Value> {
    let mut out = Vec::new();
    let runs: Vec<String> = p.run_ids();
    let mut cmds: Vec<Vec<String>> = vec![vec!["runs".into(), "--json".into()]];
    for r in &runs {
        cmds.push(vec!["status".into(), r.clone(), "--json".into()]);
        cmds.push(vec!["metrics".into(), r.clone(), "--json".into()]);
        cmds.push(vec![
            "metrics".into(),
            r.clone(),
            "train[seed=1]".into(),
            "--json".into(),
        ]);
    }
    cmds.push(vec!["why".into(), "--json".into()]);
    for args in cmds {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut c = p.cmd(&args);
        if !with_state_dir {
            c.env_remove("SORTIE_STATE_DIR");
        }
        let o = common::run_with_deadline(c, Duration::from_secs(60));
        o.ok();
        let mut v = o.json();
        if let Some(e) = v.get_mut("engine").and_then(Value::as_object_mut) {
            e.remove("heartbeat_age_s");
        }
        out.push(serde_json::json!({"cmd": args, "out": v}));
    }
    out
}

fn run_twice(p: &Project, with_state_dir: bool) {
    for args in [&["run"][..], &["run", "--force", "train"][..]] {
        let mut c = p.cmd(args);
        if !with_state_dir {
            c.env_remove("SORTIE_STATE_DIR");
        }
        common::run_with_deadline(c, Duration::from_secs(60)).expect_code(1);
    }
}

fn clear_dir(d: &std::path::Path) {
    for e in std::fs::read_dir(d).unwrap().flatten() {
        let path = e.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
    }
}

#[test]
fn deleting_the_state_dir_index_changes_nothing() {
    let p = Project::with_pipeline(PIPELINE);
    run_twice(&p, true);
    let before = snapshot(&p, true);
    // The index lives in SORTIE_STATE_DIR here.
    let files: Vec<_> = std::fs::read_dir(p.state_dir())
        .unwrap()
        .flatten()
        .collect();
    assert!(!files.is_empty(), "no index in SORTIE_STATE_DIR");
    clear_dir(p.state_dir());
    let _ = std::fs::remove_dir_all(p.path(".sortie/index"));
    let after = snapshot(&p, true);
    assert_eq!(
        serde_json::to_string_pretty(&before).unwrap(),
        serde_json::to_string_pretty(&after).unwrap()
    );
    // And the cache still works from the rebuilt index: nothing reruns but the failures.
    let why = &after.last().unwrap()["out"];
    for e in why.as_array().unwrap() {
        let step = e["step"].as_str().unwrap();
        let reruns = e["reruns"].as_bool().unwrap();
        assert_eq!(reruns, step == "broken" || step == "blocked", "{step}: {e}");
    }
}

#[test]
fn deleting_the_project_index_changes_nothing() {
    let p = Project::with_pipeline(PIPELINE);
    run_twice(&p, false);
    let index_dir = p.path(".sortie/index");
    assert!(
        index_dir.is_dir(),
        "without SORTIE_STATE_DIR the index is .sortie/index/"
    );
    let before = snapshot(&p, false);
    std::fs::remove_dir_all(&index_dir).unwrap();
    let after = snapshot(&p, false);
    assert_eq!(
        serde_json::to_string_pretty(&before).unwrap(),
        serde_json::to_string_pretty(&after).unwrap()
    );
    assert!(index_dir.is_dir(), "the index is rebuilt");
}

#[test]
fn a_corrupt_index_is_rebuilt() {
    let p = Project::with_pipeline(PIPELINE);
    run_twice(&p, true);
    let before = snapshot(&p, true);
    for e in std::fs::read_dir(p.state_dir()).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "db") {
            std::fs::write(
                e.path(),
                b"this is not a database, just junk bytes ".repeat(200),
            )
            .unwrap();
        }
    }
    for suffix in ["-wal", "-shm"] {
        for e in std::fs::read_dir(p.state_dir()).unwrap().flatten() {
            if e.file_name().to_string_lossy().ends_with(suffix) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let after = snapshot(&p, true);
    assert_eq!(before, after);
}

#[test]
fn the_metric_counts_match_the_files() {
    let p = Project::with_pipeline(PIPELINE);
    p.sortie(&["run"]).expect_code(1);
    let m = p.sortie(&["metrics", "--json"]);
    m.ok();
    let rows = m.json();
    let count = |step: &str, attempt: u64, key: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["step"] == step && r["attempt"] == attempt && r["key"] == key)
            .map(|r| r["count"].as_u64().unwrap())
    };
    assert_eq!(count("train[seed=0]", 1, "loss"), Some(20));
    assert_eq!(count("train[seed=1]", 1, "weird"), Some(20));
    // Both attempts of the flaky step keep their own series.
    assert_eq!(count("flaky", 1, "x"), Some(1));
    assert_eq!(count("flaky", 2, "x"), Some(1));
}
