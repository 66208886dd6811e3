//! `sortie demo`: copies the bundled files, and runs end to end into a report of six numbers that match the
//! training curves; with python3 and with the shell fallback.

mod common;

use common::Project;
use std::path::Path;
use std::time::Duration;

const FILES: &[&str] = &[
    "sortie.toml",
    "scripts/prepare.sh",
    "scripts/train.py",
    "scripts/train.sh",
    "scripts/evaluate.sh",
    "scripts/report.sh",
];

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/demo")
            .join(rel),
    )
    .unwrap()
}

#[test]
fn demo_no_run_copies_the_files() {
    let p = Project::new();
    let dir = p.path("my-demo");
    let out = p.sortie(&["demo", dir.to_str().unwrap(), "--no-run"]);
    out.ok();
    assert!(out.stdout.contains("my-demo"), "{}", out.stdout);
    for f in FILES {
        let got = std::fs::read(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(got, fixture(f), "{f} differs from the fixture");
    }
    assert!(!dir.join(".sortie").exists(), "--no-run ran something");
    assert!(!dir.join("report.md").exists());
    // The copy is a valid pipeline.
    let check = p.sortie(&["check", dir.join("sortie.toml").to_str().unwrap()]);
    check.ok();
    assert!(check.stdout.contains("9 instances"), "{}", check.stdout);
    // A directory that already holds a pipeline is refused, and left alone.
    std::fs::write(dir.join("scripts/prepare.sh"), "# mine\n").unwrap();
    let again = p.sortie(&["demo", dir.to_str().unwrap(), "--no-run"]);
    again.expect_code(2);
    assert_eq!(
        std::fs::read_to_string(dir.join("scripts/prepare.sh")).unwrap(),
        "# mine\n"
    );
}

#[test]
fn demo_default_directory_is_not_overwritten() {
    let p = Project::new();
    p.sortie(&["demo", "--no-run"]).ok();
    assert!(p.path("sortie-demo/sortie.toml").is_file());
    p.sortie(&["demo", "--no-run"]).ok();
    assert!(
        p.path("sortie-demo-2/sortie.toml").is_file(),
        "a second demo goes to sortie-demo-2"
    );
}

/// Runs the demo in `dir` and checks the report against the metrics.
fn run_demo(p: &Project, env: &[(&str, &str)]) {
    let dir = p.path("demo");
    let mut c = p.cmd(&["demo", dir.to_str().unwrap(), "-j", "6"]);
    c.env("SORTIE_DEMO_SECONDS", "1");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = common::run_with_deadline(c, Duration::from_secs(120));
    out.ok();
    let report = std::fs::read_to_string(dir.join("report.md")).expect("report.md");
    let rows: Vec<(String, f64)> = report
        .lines()
        .filter(|l| l.starts_with("| train["))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            assert_eq!(cells.len(), 2, "{l}");
            let v: f64 = cells[1]
                .parse()
                .unwrap_or_else(|_| panic!("not a number in {l:?}:\n{report}"));
            (cells[0].to_string(), v)
        })
        .collect();
    assert_eq!(rows.len(), 6, "report:\n{report}");
    for (_, v) in &rows {
        assert!(v.is_finite() && *v > 0.0 && *v < 1.0, "{report}");
    }
    let mut names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 6, "{report}");

    // The numbers are the last val/acc of each training curve.
    let mut c = p.cmd(&["metrics", "--json"]);
    c.current_dir(&dir);
    let m = common::run_with_deadline(c, Duration::from_secs(60));
    m.ok();
    let m = m.json();
    for (step, v) in &rows {
        let last = m
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["step"] == step.as_str() && r["key"] == "val/acc")
            .unwrap_or_else(|| panic!("no val/acc for {step}"));
        assert_eq!(last["count"], 60, "{step}");
        assert!(
            (last["last"].as_f64().unwrap() - v).abs() < 1e-4,
            "{step}: report says {v}, metrics say {}",
            last["last"]
        );
    }
    let mut c = p.cmd(&["status", "--json"]);
    c.current_dir(&dir);
    let st = common::run_with_deadline(c, Duration::from_secs(60));
    st.ok();
    let st = st.json();
    assert_eq!(st["state"], "succeeded");
    assert_eq!(st["steps"].as_array().unwrap().len(), 9);
}

#[test]
fn demo_runs_to_a_report_with_six_numbers() {
    let p = Project::new();
    run_demo(&p, &[]);
}

#[test]
fn demo_runs_without_python() {
    // A PATH with everything from /usr/bin and /bin except python: the shell fallback trains.
    let p = Project::new();
    let bin = p.path("nopython-bin");
    std::fs::create_dir_all(&bin).unwrap();
    for d in ["/usr/bin", "/bin"] {
        let Ok(rd) = std::fs::read_dir(d) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            let n = name.to_string_lossy();
            if n.starts_with("python") || bin.join(&name).exists() {
                continue;
            }
            let _ = std::os::unix::fs::symlink(e.path(), bin.join(&name));
        }
    }
    run_demo(&p, &[("PATH", bin.to_str().unwrap())]);
    let demo = p.path("demo");
    let any_train = std::fs::read_dir(demo.join(".sortie/runs"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let log =
        std::fs::read_to_string(any_train.join("train[model=gcn,seed=0]/attempt-1/stdout.log"))
            .unwrap();
    assert!(log.contains("training gcn (seed 0)"), "{log}");
    // train.py prints "epoch 10: ..." lines; train.sh does not.
    assert!(!log.contains("epoch 10:"), "python ran after all: {log}");
}
