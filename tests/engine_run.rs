//! `sortie run` in the foreground: order, SORTIE_NEEDS, failures and blocking, --fail-fast, retries with
//! backoff, timeouts, -j, and matrix values that try to break out of the shell.

mod common;

use common::{Project, kill_leftovers, read_pids, states, step_of};
use serde_json::Value;
use std::time::Duration;

/// Unix seconds of an event field.
fn ts(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("no {key} in {v}"))
}

#[test]
fn dag_with_matrix_runs_in_order_and_passes_needs() {
    let p = Project::with_pipeline(
        r#"[pipeline]
name = "order"

[[step]]
name = "a"
run = "touch a.done"

[[step]]
name = "b"
needs = ["a"]
matrix = { x = [1, 2, 3] }
run = '''
test -f a.done
echo "$SORTIE_STEP_NAME|$SORTIE_STEP|$SORTIE_PARAM_X|$SORTIE_PARAMS|$SORTIE_ATTEMPT" > "$SORTIE_STEP_DIR/env.txt"
touch b{{x}}.done
'''

[[step]]
name = "c"
needs = ["b"]
run = '''
test -f b1.done && test -f b2.done && test -f b3.done
printf '%s' "$SORTIE_NEEDS" > needs.json
'''
"#,
    );
    let out = p.sortie(&["run"]);
    out.ok();
    let run = p.only_run();
    assert!(
        out.stdout.contains(&run),
        "run id not printed: {}",
        out.stdout
    );
    let st = p.status(Some(&run));
    assert_eq!(st["run"], run.as_str());
    assert_eq!(st["state"], "succeeded");
    assert_eq!(
        states(&st),
        [
            ("a".to_string(), "succeeded".to_string()),
            ("b[x=1]".to_string(), "succeeded".to_string()),
            ("b[x=2]".to_string(), "succeeded".to_string()),
            ("b[x=3]".to_string(), "succeeded".to_string()),
            ("c".to_string(), "succeeded".to_string()),
        ]
    );
    for s in st["steps"].as_array().unwrap() {
        assert_eq!(s["attempts"], 1, "{s}");
        assert_eq!(s["exit_code"], 0, "{s}");
    }

    // Order: every b starts after a ended; c starts after every b ended.
    let a = step_of(&st, "a");
    let c = step_of(&st, "c");
    let mut b_dirs = Vec::new();
    for x in 1..=3 {
        let b = step_of(&st, &format!("b[x={x}]"));
        assert!(ts(b, "started") >= ts(a, "ended"), "b[x={x}] before a");
        assert!(ts(c, "started") >= ts(b, "ended"), "c before b[x={x}]");
        b_dirs.push(b["dir"].as_str().unwrap().to_string());
        // The step's environment.
        let env = std::fs::read_to_string(
            std::path::Path::new(b["dir"].as_str().unwrap()).join("env.txt"),
        )
        .unwrap();
        assert_eq!(
            env.trim_end(),
            format!("b|b[x={x}]|{x}|{{\"x\":{x}}}|1"),
            "environment of b[x={x}]"
        );
    }

    // c saw every b's result dir, and they are real attempt dirs with the files the docs promise.
    let needs: Value = serde_json::from_str(&p.read("needs.json")).unwrap();
    let mut got: Vec<String> = needs["b"]
        .as_array()
        .expect("SORTIE_NEEDS has the group b")
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    got.sort();
    b_dirs.sort();
    assert_eq!(got, b_dirs);
    assert_eq!(needs.as_object().unwrap().len(), 1, "{needs}");
    for d in &got {
        let d = std::path::Path::new(d);
        assert!(d.ends_with("attempt-1"), "{}", d.display());
        for f in [
            "stdout.log",
            "stderr.log",
            "exit_code",
            "command.sh",
            "cache.json",
        ] {
            assert!(d.join(f).exists(), "{} has no {f}", d.display());
        }
        assert_eq!(
            std::fs::read_to_string(d.join("exit_code")).unwrap().trim(),
            "0"
        );
    }
    let run_dir = p.run_dir(&run);
    for f in ["events.jsonl", "plan.json", "pipeline.toml"] {
        assert!(run_dir.join(f).is_file(), "run dir has no {f}");
    }
    assert_eq!(run.len(), 6);
}

#[test]
fn failure_blocks_dependents_but_not_independent_branches() {
    let p = Project::with_pipeline(
        r#"[[step]]
name = "bad"
run = "echo failing >&2; exit 3"

[[step]]
name = "after_bad"
needs = ["bad"]
run = "touch AFTER_BAD"

[[step]]
name = "after_after"
needs = ["after_bad"]
run = "touch AFTER_AFTER"

[[step]]
name = "indep"
run = "sleep 0.5; touch INDEP"

[[step]]
name = "indep2"
needs = ["indep"]
run = "touch INDEP2"
"#,
    );
    let out = p.sortie(&["run", "-j", "2"]);
    out.expect_code(1);
    let st = p.status(None);
    assert_eq!(st["state"], "failed");
    let bad = step_of(&st, "bad");
    assert_eq!(bad["state"], "failed");
    assert_eq!(bad["exit_code"], 3);
    assert_eq!(step_of(&st, "after_bad")["state"], "blocked");
    assert_eq!(step_of(&st, "after_bad")["attempts"], 0);
    assert_eq!(step_of(&st, "after_after")["state"], "blocked");
    assert_eq!(step_of(&st, "indep")["state"], "succeeded");
    assert_eq!(step_of(&st, "indep2")["state"], "succeeded");
    assert!(!p.path("AFTER_BAD").exists() && !p.path("AFTER_AFTER").exists());
    assert!(p.path("INDEP2").exists());
    let runs = p.sortie(&["runs", "--json"]);
    runs.ok();
    let r = &runs.json()[0];
    assert_eq!(r["steps_total"], 5);
    assert_eq!(r["steps_done"], 2);
    assert_eq!(r["steps_failed"], 1);
}

#[test]
fn fail_fast_stops_the_run() {
    let p = Project::with_pipeline(
        r#"[[step]]
name = "bad"
run = "sleep 0.3; exit 1"

[[step]]
name = "slow"
run = "sleep 40"

[[step]]
name = "later"
needs = ["slow"]
run = "touch LATER"

[[step]]
name = "queued"
run = "touch QUEUED"
"#,
    )
    .env("SORTIE_KILL_GRACE", "1");
    // Two slots: bad and slow run, `queued` waits for a slot and must never start.
    let out = p.sortie(&["run", "-j", "2", "--fail-fast"]);
    out.expect_code(1);
    assert!(
        out.elapsed < Duration::from_secs(20),
        "--fail-fast waited for the slow step ({:?})",
        out.elapsed
    );
    let st = p.status(None);
    assert_ne!(st["state"], "succeeded");
    assert_eq!(step_of(&st, "bad")["state"], "failed");
    assert_eq!(step_of(&st, "slow")["state"], "cancelled");
    let later = step_of(&st, "later")["state"].as_str().unwrap().to_string();
    assert!(later == "cancelled" || later == "blocked", "{later}");
    assert_eq!(step_of(&st, "queued")["state"], "cancelled");
    assert!(!p.path("LATER").exists());
    assert!(!p.path("QUEUED").exists());
}

#[test]
fn without_fail_fast_the_other_steps_finish() {
    let p = Project::with_pipeline(
        "[[step]]\nname = \"bad\"\nrun = \"exit 1\"\n\n[[step]]\nname = \"ok\"\nrun = \"sleep 1; touch OK\"\n",
    );
    p.sortie(&["run", "-j", "2"]).expect_code(1);
    assert!(p.path("OK").exists());
    let st = p.status(None);
    assert_eq!(step_of(&st, "ok")["state"], "succeeded");
}

#[test]
fn retry_with_backoff_succeeds_on_second_attempt() {
    let p = Project::with_pipeline(
        r#"[[step]]
name = "flaky"
retries = 2
retry_backoff = "1s"
run = '''
echo "$SORTIE_ATTEMPT" >> attempts.txt
test "$SORTIE_ATTEMPT" -ge 2
'''
"#,
    );
    p.sortie(&["run"]).ok();
    assert_eq!(p.lines("attempts.txt"), ["1", "2"]);
    let st = p.status(None);
    let s = step_of(&st, "flaky");
    assert_eq!(s["state"], "succeeded");
    assert_eq!(s["attempts"], 2);
    assert_eq!(s["exit_code"], 0);
    let run = p.only_run();
    let ev = p.events(&run);
    let ended1 = ev
        .iter()
        .find(|e| e["type"] == "attempt_ended" && e["attempt"] == 1)
        .expect("attempt 1 ended");
    assert_eq!(ended1["will_retry"], true);
    assert_eq!(ended1["state"], "failed");
    let started2 = ev
        .iter()
        .find(|e| e["type"] == "attempt_started" && e["attempt"] == 2)
        .expect("attempt 2 started");
    let gap = ts(started2, "ts") - ts(ended1, "ts");
    assert!(gap >= 0.95, "backoff of 1s not respected: {gap:.3}s");
    assert!(p.run_dir(&run).join("flaky/attempt-1/stdout.log").exists());
    assert!(p.run_dir(&run).join("flaky/attempt-2/stdout.log").exists());
}

#[test]
fn retries_exhausted_with_doubling_backoff() {
    let p = Project::with_pipeline(
        r#"[[step]]
name = "broken"
retries = 2
retry_backoff = "500ms"
run = 'echo "$SORTIE_ATTEMPT" >> attempts.txt; exit 7'
"#,
    );
    p.sortie(&["run"]).expect_code(1);
    assert_eq!(p.lines("attempts.txt"), ["1", "2", "3"]);
    let st = p.status(None);
    let s = step_of(&st, "broken");
    assert_eq!(s["state"], "failed");
    assert_eq!(s["attempts"], 3);
    assert_eq!(s["exit_code"], 7);
    let ev = p.events(&p.only_run());
    let at = |kind: &str, n: u64| {
        ts(
            ev.iter()
                .find(|e| e["type"] == kind && e["attempt"] == n)
                .unwrap(),
            "ts",
        )
    };
    let gap1 = at("attempt_started", 2) - at("attempt_ended", 1);
    let gap2 = at("attempt_started", 3) - at("attempt_ended", 2);
    assert!(gap1 >= 0.45, "first backoff {gap1:.3}s");
    assert!(gap2 >= 0.95, "second backoff should double: {gap2:.3}s");
}

#[test]
fn timeout_kills_a_sleeping_step() {
    let p = Project::with_pipeline(
        r#"[[step]]
name = "sleepy"
timeout = "1s"
run = '''
sleep 100 &
echo $! > sleep.pid
wait
'''

[[step]]
name = "after"
needs = ["sleepy"]
run = "touch AFTER"
"#,
    )
    .env("SORTIE_KILL_GRACE", "1");
    let out = p.sortie(&["run"]);
    out.expect_code(1);
    assert!(
        out.elapsed < Duration::from_secs(15),
        "timeout did not stop the step: {:?}",
        out.elapsed
    );
    let st = p.status(None);
    let s = step_of(&st, "sleepy");
    assert_eq!(s["state"], "failed");
    let reason = s["reason"].as_str().unwrap_or("");
    assert!(reason.contains("timed out"), "reason: {reason:?}");
    assert_eq!(step_of(&st, "after")["state"], "blocked");
    let pids = read_pids(&p.path("sleep.pid"));
    assert_eq!(pids.len(), 1);
    let res = common::wait_dead(&pids, Duration::from_secs(5));
    kill_leftovers(&pids, "sleep");
    res.expect("the timed-out step's sleep died");
}

#[test]
fn jobs_one_serialises_steps() {
    let step = |n: u32| {
        format!(
            "[[step]]\nname = \"s{n}\"\nrun = '''\necho \"start $(date +%s.%N)\" >> t{n}.txt\nsleep 0.4\necho \"end $(date +%s.%N)\" >> t{n}.txt\n'''\n\n"
        )
    };
    let p = Project::with_pipeline(&(1..=3).map(step).collect::<String>());
    p.sortie(&["run", "-j", "1"]).ok();
    let mut spans: Vec<(f64, f64)> = (1..=3)
        .map(|n| {
            let lines = p.lines(&format!("t{n}.txt"));
            let num =
                |i: usize| -> f64 { lines[i].split_whitespace().nth(1).unwrap().parse().unwrap() };
            (num(0), num(1))
        })
        .collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    for w in spans.windows(2) {
        assert!(w[1].0 >= w[0].1, "steps overlapped with -j 1: {:?}", spans);
    }
}

#[test]
fn jobs_three_runs_in_parallel() {
    // The counterpart of -j 1: three 1-second steps with -j 3 overlap.
    let step = |n: u32| format!("[[step]]\nname = \"s{n}\"\nrun = \"sleep 1.5\"\n\n");
    let p = Project::with_pipeline(&(1..=3).map(step).collect::<String>());
    let out = p.sortie(&["run", "-j", "3"]);
    out.ok();
    let st = p.status(None);
    let steps = st["steps"].as_array().unwrap();
    let last_start = steps
        .iter()
        .map(|s| ts(s, "started"))
        .fold(f64::MIN, f64::max);
    let first_end = steps
        .iter()
        .map(|s| ts(s, "ended"))
        .fold(f64::MAX, f64::min);
    assert!(
        last_start < first_end,
        "with -j 3 all three steps should run at once"
    );
}

/// Matrix values written to trip the shell: each must reach the program as one literal argument.
const HOSTILE: &[&str] = &[
    "x'; touch PWNED; '",
    "$(touch PWNED2)",
    "`touch PWNED3`",
    "a\"b\\c $HOME ${HOME} * ?",
    "semi; touch PWNED4 && echo",
    "-n",
    "",
];

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

#[test]
fn hostile_matrix_values_arrive_as_one_literal_argument() {
    let values: Vec<String> = HOSTILE.iter().map(|v| toml_string(v)).collect();
    let p = Project::with_pipeline(&format!(
        r#"[[step]]
name = "evil"
matrix = {{ v = [{}] }}
run = "sh write.sh {{{{v}}}} tail"
"#,
        values.join(", ")
    ));
    p.write(
        "write.sh",
        "printf '%s' \"$#\" > \"$SORTIE_STEP_DIR/argc\"\nprintf '%s' \"$1\" > \"$SORTIE_STEP_DIR/arg\"\nprintf '%s' \"$SORTIE_PARAM_V\" > \"$SORTIE_STEP_DIR/env\"\n",
    );
    let check = p.sortie(&["check", "--json"]);
    check.ok();
    let out = p.sortie(&["run"]);
    out.ok();
    let st = p.status(None);
    let steps = st["steps"].as_array().unwrap();
    assert_eq!(steps.len(), HOSTILE.len());
    for (s, want) in steps.iter().zip(HOSTILE) {
        assert_eq!(s["state"], "succeeded", "{s}");
        assert_eq!(s["params"]["v"], *want);
        let dir = std::path::Path::new(s["dir"].as_str().unwrap());
        assert!(
            dir.starts_with(p.run_dir(st["run"].as_str().unwrap())),
            "attempt dir escaped the run dir: {}",
            dir.display()
        );
        assert_eq!(
            std::fs::read(dir.join("argc")).unwrap(),
            b"2",
            "value {want:?} was not one argument"
        );
        assert_eq!(
            std::fs::read(dir.join("arg")).unwrap(),
            want.as_bytes(),
            "value {want:?} changed on its way"
        );
        assert_eq!(
            std::fs::read(dir.join("env")).unwrap(),
            want.as_bytes(),
            "SORTIE_PARAM_V of {want:?}"
        );
    }
    for f in ["PWNED", "PWNED2", "PWNED3", "PWNED4"] {
        assert!(
            !p.path(f).exists(),
            "{f} exists: the shell ran a matrix value"
        );
    }
    // Nothing was created outside the project either.
    let home_pwned = std::path::Path::new("PWNED");
    assert!(!home_pwned.exists() || home_pwned.is_dir());
}

#[test]
fn newline_in_a_matrix_value_cannot_inject_commands() {
    // A value with a newline (e.g. pasted from a file) is still one literal argument, and no part of it
    // ever runs as a command: not in the step's command, nor in anything sortie writes around it.
    let values = ["line1\nline2", "x\ntouch PWNED5", "y\n$(touch PWNED6)"];
    let quoted: Vec<String> = values.iter().map(|v| toml_string(v)).collect();
    let p = Project::with_pipeline(&format!(
        r#"[[step]]
name = "nl"
matrix = {{ v = [{}] }}
run = "sh write.sh {{{{v}}}}"
"#,
        quoted.join(", ")
    ));
    p.write(
        "write.sh",
        "printf '%s' \"$1\" > \"$SORTIE_STEP_DIR/arg\"\n",
    );
    let out = p.sortie(&["run"]);
    let injected: Vec<String> = std::fs::read_dir(p.root())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("PWNED") || n == "attempt" || n == "1")
        .collect();
    assert!(
        injected.is_empty(),
        "a matrix value ran as a shell command and created {injected:?}"
    );
    out.ok();
    let st = p.status(None);
    for (s, want) in st["steps"].as_array().unwrap().iter().zip(values) {
        assert_eq!(s["state"], "succeeded", "{s}");
        let dir = std::path::Path::new(s["dir"].as_str().unwrap());
        assert_eq!(std::fs::read(dir.join("arg")).unwrap(), want.as_bytes());
    }
}

#[test]
fn env_setup_wrap_and_workdir_reach_the_step() {
    let p = Project::with_pipeline(
        r#"[env]
GLOBAL = "g"
OVERRIDDEN = "global"

[defaults]
env = { FROM_DEFAULTS = "d" }

[[step]]
name = "s"
matrix = { x = ["one", "two words"] }
workdir = "sub/{{x}}"
env = { OVERRIDDEN = "step", TAG = "t-{{x}}" }
setup = "export FROM_SETUP=yes"
wrap = "env WRAPPED=1"
run = '''
printf '%s|%s|%s|%s|%s|%s|%s\n' "$GLOBAL" "$OVERRIDDEN" "$FROM_DEFAULTS" "$TAG" "$FROM_SETUP" "$WRAPPED" "$(pwd)" > out.txt
'''
"#,
    );
    p.sortie(&["run"]).ok();
    for x in ["one", "two words"] {
        let dir = p.path(&format!("sub/{x}"));
        let got = std::fs::read_to_string(dir.join("out.txt"))
            .unwrap_or_else(|e| panic!("no out.txt in the workdir of {x}: {e}"));
        let real = std::fs::canonicalize(&dir).unwrap();
        assert_eq!(
            got.trim_end(),
            format!("g|step|d|t-{x}|yes|1|{}", real.display()),
            "instance {x}"
        );
    }
}

#[test]
fn cpus_take_slots_of_the_parallelism() {
    // -j 2 and two steps that each ask for 2 cpus: they must not run at once.
    let step = |n: u32| {
        format!(
            "[[step]]\nname = \"big{n}\"\nresources = {{ cpus = 2 }}\nrun = '''\necho \"start $(date +%s.%N)\" >> t{n}.txt\nsleep 0.5\necho \"end $(date +%s.%N)\" >> t{n}.txt\n'''\n\n"
        )
    };
    let p = Project::with_pipeline(&(1..=2).map(step).collect::<String>());
    p.sortie(&["run", "-j", "2"]).ok();
    let span = |n: u32| -> (f64, f64) {
        let lines = p.lines(&format!("t{n}.txt"));
        let num =
            |i: usize| -> f64 { lines[i].split_whitespace().nth(1).unwrap().parse().unwrap() };
        (num(0), num(1))
    };
    let (a, b) = (span(1), span(2));
    assert!(
        a.1 <= b.0 || b.1 <= a.0,
        "two 2-cpu steps overlapped with -j 2: {a:?} {b:?}"
    );
}

#[test]
fn max_parallel_of_the_pipeline_is_the_default() {
    let step = |n: u32| {
        format!(
            "[[step]]\nname = \"s{n}\"\nrun = '''\necho \"start $(date +%s.%N)\" >> t{n}.txt\nsleep 0.4\necho \"end $(date +%s.%N)\" >> t{n}.txt\n'''\n\n"
        )
    };
    let p = Project::with_pipeline(&format!(
        "[pipeline]\nmax_parallel = 1\n\n{}",
        (1..=3).map(step).collect::<String>()
    ));
    p.sortie(&["run"]).ok();
    let mut spans: Vec<(f64, f64)> = (1..=3)
        .map(|n| {
            let lines = p.lines(&format!("t{n}.txt"));
            let num =
                |i: usize| -> f64 { lines[i].split_whitespace().nth(1).unwrap().parse().unwrap() };
            (num(0), num(1))
        })
        .collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    for w in spans.windows(2) {
        assert!(
            w[1].0 >= w[0].1,
            "max_parallel = 1 not respected: {spans:?}"
        );
    }
}

#[test]
fn ctrl_c_cancels_a_foreground_run_and_its_processes() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let p = Project::with_pipeline(
        r#"[[step]]
name = "long"
run = '''
sleep 300 &
echo $! >> pids.txt
echo $$ >> pids.txt
wait
'''

[[step]]
name = "after"
needs = ["long"]
run = "touch AFTER"
"#,
    )
    .env("SORTIE_KILL_GRACE", "2");
    let mut c = p.cmd(&["run"]);
    c.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    let pids = common::wait_for(Duration::from_secs(20), "the step to start", || {
        let v = read_pids(&p.path("pids.txt"));
        (v.len() >= 2).then_some(v)
    });
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let res = common::wait_dead(&pids, Duration::from_secs(5));
    kill_leftovers(&pids, "sleep");
    let status = status.expect("sortie run did not stop within 20 s of SIGINT");
    res.expect("the step's processes died");
    assert_eq!(status.code(), Some(1), "{status:?}");
    let st = p.status(None);
    assert_eq!(st["state"], "cancelled");
    assert_eq!(step_of(&st, "long")["state"], "cancelled");
    assert!(!p.path("AFTER").exists());
}
