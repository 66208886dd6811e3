//! `sortie check`: the expanded DAG as text and JSON, and one located, one-line message (exit 2) per class
//! of mistake, with nothing run and no `.sortie/` created.

mod common;

use common::Project;
use serde_json::Value;

const VALID: &str = r#"[pipeline]
name = "small"

[[step]]
name = "prep"
run = "echo prep"

[[step]]
name = "train"
needs = ["prep"]
matrix = { model = ["gcn", "gat"], seed = [0, 1], exclude = [{ model = "gat", seed = 1 }] }
run = "echo train {{model}} {{seed}}"
timeout = "90s"
resources = { cpus = 1, mem = "16G" }

[[step]]
name = "report"
needs = ["train"]
run = "echo report"
"#;

#[test]
fn check_prints_the_expanded_dag() {
    let p = Project::with_pipeline(VALID);
    let out = p.sortie(&["check"]);
    out.ok();
    let text = &out.stdout;
    assert!(
        text.starts_with("pipeline small: 3 steps, 5 instances, executor local"),
        "{text}"
    );
    for name in [
        "prep",
        "train[model=gcn,seed=0]",
        "train[model=gcn,seed=1]",
        "train[model=gat,seed=0]",
        "report",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    assert!(
        !text.contains("train[model=gat,seed=1]"),
        "excluded cell listed:\n{text}"
    );
    assert!(text.contains("echo train gcn 1"), "{text}");
    assert!(text.contains("needs: prep"), "{text}");
    // Steps come in dependency order.
    let at = |s: &str| text.find(s).unwrap();
    assert!(at("\nprep") < at("\ntrain") && at("\ntrain") < at("\nreport"));
    assert!(!p.path(".sortie").exists(), "check created .sortie/");
}

#[test]
fn check_json_shape() {
    let p = Project::with_pipeline(VALID);
    let out = p.sortie(&["check", "--json"]);
    out.ok();
    let v = out.json();
    assert_eq!(v["pipeline"], "small");
    assert_eq!(v["executor"], "local");
    let file = v["file"].as_str().unwrap();
    assert!(file.ends_with("sortie.toml"), "{file}");
    assert!(std::path::Path::new(file).is_absolute(), "{file}");
    assert_eq!(v["order"], serde_json::json!(["prep", "train", "report"]));

    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 3);
    assert_eq!(groups[1]["name"], "train");
    assert_eq!(groups[1]["needs"], serde_json::json!(["prep"]));
    assert_eq!(
        groups[1]["instances"],
        serde_json::json!([
            "train[model=gcn,seed=0]",
            "train[model=gcn,seed=1]",
            "train[model=gat,seed=0]"
        ])
    );

    let inst = v["instances"].as_array().unwrap();
    assert_eq!(inst.len(), 5);
    let t = inst
        .iter()
        .find(|i| i["name"] == "train[model=gcn,seed=1]")
        .unwrap();
    assert_eq!(t["group"], "train");
    assert_eq!(t["params"], serde_json::json!({"model": "gcn", "seed": 1}));
    assert_eq!(t["needs"], serde_json::json!(["prep"]));
    assert_eq!(t["run"], "echo train gcn 1");
    assert_eq!(t["timeout_s"].as_f64(), Some(90.0));
    assert_eq!(t["resources"]["mem_mb"].as_u64(), Some(16 * 1024));
    assert_eq!(t["resources"]["cpus"].as_u64(), Some(1));
    assert_eq!(t["executor"], "local");
    assert!(
        std::path::Path::new(t["workdir"].as_str().unwrap()).is_absolute(),
        "{t}"
    );
    for key in ["inputs", "outputs"] {
        assert!(t[key].is_array(), "{key} missing in {t}");
    }
    assert!(!p.path(".sortie").exists());
}

#[test]
fn check_accepts_the_full_fixture() {
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pipelines/full.toml");
    let p = Project::with_pipeline(&std::fs::read_to_string(fixture).unwrap());
    let out = p.sortie(&["check", "--json"]);
    out.ok();
    let v: Value = out.json();
    assert_eq!(v["pipeline"], "gnn-sweep");
    assert_eq!(
        v["order"],
        serde_json::json!(["prepare", "train", "report"])
    );
    let train: Vec<&Value> = v["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["group"] == "train")
        .collect();
    // 2 models x 3 seeds, minus the excluded gat/2.
    assert_eq!(train.len(), 5);
    assert!(train.iter().all(|i| i["executor"] == "slurm"));
    assert!(
        train
            .iter()
            .all(|i| i["workdir"].as_str().unwrap().ends_with("/sub"))
    );
    let report = v["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "report")
        .unwrap();
    assert_eq!(report["timeout_s"].as_f64(), Some(5400.0));
}

/// Runs `check` and `run` on a broken pipeline and checks the one-line message of each.
#[track_caller]
fn assert_rejected(pipeline: &str, line_col: &str, needle: &str) {
    let p = Project::with_pipeline(pipeline);
    for cmd in [&["check"][..], &["check", "--json"][..], &["run"][..]] {
        let out = p.sortie(cmd);
        out.expect_code(2);
        let err = out.stderr.trim_end();
        assert_eq!(
            err.lines().count(),
            1,
            "`sortie {cmd:?}` should print one line, got:\n{err}"
        );
        let want = format!("sortie.toml:{line_col}: error: ");
        assert!(
            err.contains(&want),
            "`sortie {cmd:?}`: expected {want:?} in {err:?}"
        );
        assert!(
            err.contains(needle),
            "`sortie {cmd:?}`: expected {needle:?} in {err:?}"
        );
        assert!(
            out.stdout.trim().is_empty() || cmd[0] == "run",
            "check printed a DAG for a broken file: {}",
            out.stdout
        );
        assert!(
            !p.path(".sortie").exists(),
            "`sortie {cmd:?}` created .sortie/ for a broken pipeline"
        );
    }
}

#[test]
fn unknown_key_is_located() {
    assert_rejected(
        "[[step]]\nname = \"a\"\nrun = \"touch RAN\"\nretires = 2\n",
        "4:1",
        "unknown key `retires`",
    );
}

#[test]
fn unknown_needs_is_located() {
    assert_rejected(
        "[[step]]\nname = \"a\"\nrun = \"touch RAN\"\n\n[[step]]\nname = \"b\"\nrun = \"touch RAN\"\nneeds = [\"a\", \"zz\"]\n",
        "8:15",
        "unknown step `zz`",
    );
}

#[test]
fn unknown_needs_lists_the_real_steps() {
    let p = Project::with_pipeline(
        "[[step]]\nname = \"prepare\"\nrun = \"x\"\n\n[[step]]\nname = \"b\"\nrun = \"x\"\nneeds = [\"prepar\"]\n",
    );
    let out = p.sortie(&["check"]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("prepare"),
        "the message should name the step that exists: {}",
        out.stderr
    );
}

#[test]
fn cycle_prints_its_path() {
    assert_rejected(
        "[[step]]\nname = \"a\"\nrun = \"touch RAN\"\nneeds = [\"b\"]\n\n[[step]]\nname = \"b\"\nrun = \"touch RAN\"\nneeds = [\"c\"]\n\n[[step]]\nname = \"c\"\nrun = \"touch RAN\"\nneeds = [\"a\"]\n\n[[step]]\nname = \"free\"\nrun = \"touch RAN\"\n",
        "2:8",
        "cycle: a -> b -> c -> a",
    );
}

#[test]
fn duplicate_name_is_located() {
    assert_rejected(
        "[[step]]\nname = \"a\"\nrun = \"touch RAN\"\n\n[[step]]\nname = \"a\"\nrun = \"touch RAN\"\n",
        "6:8",
        "duplicate step name `a`",
    );
}

#[test]
fn empty_matrix_is_located() {
    assert_rejected(
        "[[step]]\nname = \"a\"\nrun = \"touch RAN {{m}}\"\nmatrix = { m = [] }\n",
        "4:16",
        "empty",
    );
}

#[test]
fn bad_size_is_located() {
    assert_rejected(
        "[[step]]\nname = \"a\"\nrun = \"touch RAN\"\nresources = { mem = \"16Q\" }\n",
        "4:21",
        "`16Q`",
    );
}

#[test]
fn bad_duration_is_located() {
    assert_rejected(
        "[[step]]\nname = \"a\"\nrun = \"touch RAN\"\ntimeout = \"5 parsecs\"\n",
        "4:11",
        "`timeout`",
    );
}

#[test]
fn bare_number_duration_is_refused() {
    assert_rejected(
        "[[step]]\nname = \"a\"\nrun = \"touch RAN\"\nretry_backoff = \"30\"\n",
        "4:17",
        "no unit",
    );
}

#[test]
fn missing_file_exits_2() {
    let p = Project::new();
    for args in [
        &["check", "nope.toml"][..],
        &["run", "nope.toml"][..],
        &["check"][..],
    ] {
        let out = p.sortie(args);
        out.expect_code(2);
        let err = out.stderr.trim_end();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(".toml"), "{err}");
        assert!(err.contains("cannot read"), "{err}");
    }
    assert!(!p.path(".sortie").exists());
    assert!(!p.path("RAN").exists());
}

#[test]
fn nothing_ran_for_broken_pipelines() {
    // A file with a good step and a bad one: the good step must not run either.
    let p = Project::with_pipeline(
        "[[step]]\nname = \"good\"\nrun = \"touch RAN\"\n\n[[step]]\nname = \"bad\"\nrun = \"touch RAN\"\ntimeout = \"forever\"\n",
    );
    p.sortie(&["run"]).expect_code(2);
    p.sortie(&["run", "--detach"]).expect_code(2);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!p.path("RAN").exists());
    assert!(!p.path(".sortie").exists());
}
