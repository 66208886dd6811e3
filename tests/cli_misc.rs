//! The reading commands: logs (and --follow), metrics and plot with NaN values, runs, completions, RUN
//! resolution (prefix, latest, unknown), and output into a closed pipe.

mod common;

use common::{Project, step_of};
use std::time::{Duration, Instant};

const METRICS: &str = r#"[pipeline]
name = "curves"

[[step]]
name = "train"
matrix = { lr = ["0.1", "0.01"] }
run = '''
for i in 1 2 3 4 5; do
  echo "{\"step\": $i, \"loss\": $((10 - i)).5, \"acc\": NaN}" >> "$SORTIE_METRICS"
done
echo "out-line lr={{lr}}"
echo "err-line lr={{lr}}" >&2
'''

[[step]]
name = "report"
needs = ["train"]
run = "echo report-out; echo report-err >&2"
"#;

#[test]
fn logs_print_stdout_and_stderr() {
    let p = Project::with_pipeline(METRICS);
    p.sortie(&["run"]).ok();
    let run = p.only_run();
    let out = p.sortie(&["logs", "report"]);
    out.ok();
    assert_eq!(out.stdout, "report-out\n");
    let err = p.sortie(&["logs", &run, "report", "--stderr"]);
    err.ok();
    assert_eq!(err.stdout, "report-err\n");
    let inst = p.sortie(&["logs", "train[lr=0.01]"]);
    inst.ok();
    assert_eq!(inst.stdout, "out-line lr=0.01\n");
    // A step name with several instances is ambiguous: the message lists them.
    let amb = p.sortie(&["logs", "train"]);
    amb.expect_code(2);
    assert!(
        amb.stderr.contains("train[lr=0.1]") && amb.stderr.contains("train[lr=0.01]"),
        "{}",
        amb.stderr
    );
    let none = p.sortie(&["logs", &run, "nosuchstep"]);
    none.expect_code(2);
    assert!(none.stderr.contains("nosuchstep"), "{}", none.stderr);
}

#[test]
fn logs_follow_streams_until_the_step_ends() {
    let p = Project::with_pipeline(
        r#"[[step]]
name = "talk"
run = '''
for i in 1 2 3 4 5 6 7 8; do echo "line $i"; sleep 0.3; done
echo last
'''
"#,
    );
    let run = p.run_detached(&[]);
    p.wait_step(&run, "talk", "running", Duration::from_secs(15));
    let start = Instant::now();
    let out = common::run_with_deadline(
        p.cmd(&["logs", &run, "talk", "--follow"]),
        Duration::from_secs(30),
    );
    out.ok();
    let mut want: Vec<String> = (1..=8).map(|i| format!("line {i}")).collect();
    want.push("last".into());
    let got: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(got, want, "logs --follow lost or repeated lines");
    // It ended because the step ended, not before.
    let st = p.status(Some(&run));
    assert_ne!(step_of(&st, "talk")["state"], "running");
    assert!(start.elapsed() < Duration::from_secs(25));
    p.wait_finished(&run, Duration::from_secs(15));
    // Following a finished step returns at once.
    let again = common::run_with_deadline(
        p.cmd(&["logs", &run, "talk", "-f"]),
        Duration::from_secs(10),
    );
    again.ok();
    assert_eq!(again.stdout, out.stdout);
}

#[test]
fn metrics_with_nan_values() {
    let p = Project::with_pipeline(METRICS);
    p.sortie(&["run"]).ok();
    let run = p.only_run();
    let out = p.sortie(&["metrics", "--json"]);
    out.ok();
    let rows = out.json();
    let rows = rows.as_array().unwrap();
    // Two train instances x two metrics; report wrote none.
    assert_eq!(rows.len(), 4, "{rows:?}");
    for r in rows {
        assert_eq!(r["count"], 5, "{r}");
        assert_eq!(r["attempt"], 1);
        assert_eq!(r["last_x"].as_f64(), Some(5.0));
        match r["key"].as_str().unwrap() {
            "loss" => {
                assert_eq!(r["last"].as_f64(), Some(5.5));
                assert_eq!(r["min"].as_f64(), Some(5.5));
                assert_eq!(r["max"].as_f64(), Some(9.5));
            }
            "acc" => {
                // NaN is no number: it must not show up as a fake 0 or as a min/max.
                assert!(r["last"].is_null(), "{r}");
                assert!(r["min"].is_null(), "{r}");
                assert!(r["max"].is_null(), "{r}");
            }
            k => panic!("unexpected metric {k}"),
        }
    }
    // One step, by run and instance; by step name (all instances).
    let one = p.sortie(&["metrics", &run, "train[lr=0.1]", "--json"]);
    one.ok();
    let one = one.json();
    assert_eq!(one.as_array().unwrap().len(), 2);
    assert!(
        one.as_array()
            .unwrap()
            .iter()
            .all(|r| r["step"] == "train[lr=0.1]")
    );
    let group = p.sortie(&["metrics", "train", "--json"]);
    group.ok();
    assert_eq!(group.json().as_array().unwrap().len(), 4);
    let table = p.sortie(&["metrics"]);
    table.ok();
    assert!(table.stdout.contains("loss") && table.stdout.contains("NaN"));
    let none = p.sortie(&["metrics", &run, "nosuchstep"]);
    none.expect_code(2);
}

#[test]
fn plot_draws_finite_values_and_explains_the_rest() {
    let p = Project::with_pipeline(METRICS);
    p.sortie(&["run"]).ok();
    let out = p.sortie(&["plot", "loss", "--width", "40", "--height", "10"]);
    out.ok();
    assert!(out.stdout.starts_with("loss"), "{}", out.stdout);
    assert!(out.stdout.contains("train[lr=0.1]") && out.stdout.contains("train[lr=0.01]"));
    assert!(
        out.stdout
            .chars()
            .any(|c| ('\u{2801}'..='\u{28ff}').contains(&c)),
        "no chart drawn:\n{}",
        out.stdout
    );
    let one = p.sortie(&["plot", "loss", "--step", "train[lr=0.01]"]);
    one.ok();
    assert!(!one.stdout.contains("train[lr=0.1]"), "{}", one.stdout);
    // Only NaN values: nothing to draw, said plainly.
    let nan = p.sortie(&["plot", "acc"]);
    nan.expect_code(2);
    assert!(nan.stderr.contains("acc"), "{}", nan.stderr);
    assert!(!nan.stderr.contains("panicked"), "{}", nan.stderr);
    let unknown = p.sortie(&["plot", "nosuchmetric"]);
    unknown.expect_code(2);
    assert!(
        unknown.stderr.contains("loss") && unknown.stderr.contains("acc"),
        "the message should list the known metrics: {}",
        unknown.stderr
    );
}

#[test]
fn runs_json_lists_newest_first() {
    let p = Project::with_pipeline("[[step]]\nname = \"a\"\nrun = \"true\"\n");
    let empty = p.sortie(&["runs", "--json"]);
    empty.ok();
    assert_eq!(empty.json(), serde_json::json!([]));
    p.sortie(&["run"]).ok();
    std::thread::sleep(Duration::from_millis(20));
    p.sortie(&["run", "--force"]).ok();
    let out = p.sortie(&["runs", "--json"]);
    out.ok();
    let v = out.json();
    let runs = v.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs[0]["created"].as_f64() > runs[1]["created"].as_f64());
    for r in runs {
        assert_eq!(r["state"], "succeeded");
        assert_eq!(r["steps_total"], 1);
        assert_eq!(r["steps_done"], 1);
        assert_eq!(r["steps_failed"], 0);
        let id = r["run"].as_str().unwrap();
        assert_eq!(r["dir"].as_str().unwrap(), p.run_dir(id).to_str().unwrap());
    }
    let latest = p.status(Some("latest"));
    assert_eq!(latest["run"], runs[0]["run"]);
    let text = p.sortie(&["runs"]);
    text.ok();
    assert!(text.stdout.contains(runs[1]["run"].as_str().unwrap()));
}

#[test]
fn run_prefix_and_unknown_run() {
    let p = Project::with_pipeline("[[step]]\nname = \"a\"\nrun = \"echo hi\"\n");
    let none = p.sortie(&["status"]);
    none.expect_code(2);
    assert!(none.stderr.contains("no runs"), "{}", none.stderr);

    p.sortie(&["run"]).ok();
    p.sortie(&["run", "--force"]).ok();
    let ids = p.run_ids();
    assert_eq!(ids.len(), 2);
    // The shortest prefix of the first id that the second does not share.
    let common = ids[0]
        .chars()
        .zip(ids[1].chars())
        .take_while(|(a, b)| a == b)
        .count();
    let prefix = &ids[0][..common + 1];
    let st = p.status(Some(prefix));
    assert_eq!(st["run"], ids[0].as_str());
    let logs = p.sortie(&["logs", prefix, "a"]);
    logs.ok();
    assert_eq!(logs.stdout, "hi\n");
    let m = p.sortie(&["metrics", prefix, "--json"]);
    m.ok();

    for cmd in [
        &["status", "nosuchrun"][..],
        &["logs", "nosuchrun", "a"][..],
        &["metrics", "nosuchrun", "a"][..],
        &["cancel", "nosuchrun"][..],
        &["retry", "nosuchrun"][..],
        &["resume", "nosuchrun"][..],
        &["rerun", "nosuchrun", "a"][..],
    ] {
        let out = p.sortie(cmd);
        out.expect_code(2);
        let err = out.stderr.trim_end();
        assert_eq!(err.lines().count(), 1, "{cmd:?}: {err}");
        assert!(
            err.contains("nosuchrun"),
            "{cmd:?}: the message should name the run: {err}"
        );
    }
    // -C and SORTIE_PROJECT select the project from anywhere.
    let elsewhere = tempfile::tempdir().unwrap();
    let mut c = p.cmd(&["-C", p.root().to_str().unwrap(), "status", prefix, "--json"]);
    c.current_dir(elsewhere.path());
    let out = common::run_with_deadline(c, Duration::from_secs(30));
    out.ok();
    assert_eq!(out.json()["run"], ids[0].as_str());
    let mut c = p.cmd(&["runs", "--json"]);
    c.current_dir(elsewhere.path())
        .env("SORTIE_PROJECT", p.root());
    let out = common::run_with_deadline(c, Duration::from_secs(30));
    out.ok();
    assert_eq!(out.json().as_array().unwrap().len(), 2);
}

#[test]
fn completions_for_shells() {
    let p = Project::new();
    let bash = p.sortie(&["completions", "bash"]);
    bash.ok();
    assert!(bash.stdout.contains("_sortie"), "{}", &bash.stdout[..200]);
    assert!(bash.stdout.contains("complete -F"));
    for cmd in ["run", "status", "cancel", "rerun", "metrics", "plot"] {
        assert!(bash.stdout.contains(cmd), "bash completion lacks {cmd}");
    }
    for shell in ["zsh", "fish"] {
        let out = p.sortie(&["completions", shell]);
        out.ok();
        assert!(!out.stdout.is_empty());
    }
    p.sortie(&["completions", "tcsh"]).expect_code(2);
}

/// Runs a command whose stdout is a pipe nobody reads any more (`sortie ... | head -0`).
fn into_closed_pipe(p: &Project, args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut c = p.cmd(args);
    c.stdout(writer).stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    drop(c);
    child.wait_with_output().unwrap()
}

#[test]
fn closed_stdout_is_not_a_crash() {
    let p = Project::with_pipeline(METRICS);
    p.sortie(&["run"]).ok();
    for args in [
        &["completions", "bash"][..],
        &["status", "--json"][..],
        &["metrics", "--json"][..],
        &["logs", "report"][..],
    ] {
        let out = into_closed_pipe(&p, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("panicked"),
            "`sortie {}` into a closed pipe panicked:\n{}",
            args.join(" "),
            err.lines().take(3).collect::<Vec<_>>().join("\n")
        );
        assert_ne!(out.status.code(), Some(101), "{args:?}");
    }
}

#[test]
fn logs_follow_waits_for_a_step_that_has_not_started_yet() {
    // `sortie run -d` then at once `sortie logs -f train`: train still waits for its upstream. A user
    // expects the command to wait and stream, not to fail.
    let p = Project::with_pipeline(
        r#"[[step]]
name = "prep"
run = "sleep 2"

[[step]]
name = "train"
needs = ["prep"]
run = "echo first; sleep 0.5; echo second"
"#,
    );
    let run = p.run_detached(&[]);
    let st = p.status(Some(&run));
    assert_eq!(step_of(&st, "train")["state"], "pending");
    let out = common::run_with_deadline(
        p.cmd(&["logs", &run, "train", "--follow"]),
        Duration::from_secs(30),
    );
    p.wait_finished(&run, Duration::from_secs(30));
    out.ok();
    assert_eq!(out.stdout, "first\nsecond\n");
}

#[test]
fn a_foreground_run_into_a_closed_pipe_still_finishes() {
    // `sortie run | head -1`: the reader goes away, the run must not die with it.
    let p = Project::with_pipeline(
        "[[step]]\nname = \"a\"\nrun = \"sleep 0.5; touch A\"\n\n[[step]]\nname = \"b\"\nneeds = [\"a\"]\nrun = \"touch B\"\n",
    );
    let out = into_closed_pipe(&p, &["run"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    let st = p.wait_finished(&p.only_run(), Duration::from_secs(20));
    assert_eq!(st["state"], "succeeded", "{st}");
    assert!(p.path("B").exists());
    assert_eq!(out.status.code(), Some(0), "{err}");
}

#[test]
fn an_unusable_state_dir_is_an_environment_error() {
    let p = Project::with_pipeline("[[step]]\nname = \"a\"\nrun = \"true\"\n");
    let file = p.path("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let state = file.join("state");
    let out = p.sortie_env(&["runs"], &[("SORTIE_STATE_DIR", state.to_str().unwrap())]);
    out.expect_code(3);
    let err = out.stderr.trim_end();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("sortie: error: "), "{err}");
    assert!(err.contains("not-a-dir"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
