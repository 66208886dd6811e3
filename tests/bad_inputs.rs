//! Bad inputs get one clear, located line and exit 2, with nothing half-done: pipeline files that are not
//! UTF-8, names that cannot become file names, unclosed placeholders, inputs that never end, flags that
//! name nothing, and run directories or index files that are damaged.

mod common;

use common::Project;
use std::time::{Duration, Instant};

/// `check` and `run` both refuse `pipeline` with exit 2, a message containing `want`, and no run.
#[track_caller]
fn refused_at_check_and_run(p: &Project, want: &str) {
    for cmd in ["check", "run"] {
        let out = p.sortie(&[cmd]);
        out.expect_code(2);
        assert!(out.stderr.contains(want), "{cmd}: {}", out.stderr);
        assert_eq!(
            out.stderr.trim().lines().count(),
            1,
            "{cmd}: not one line: {}",
            out.stderr
        );
    }
    assert!(p.run_ids().is_empty(), "a run was created");
}

#[test]
fn non_utf8_byte_is_located() {
    let p = Project::new();
    std::fs::write(
        p.path("sortie.toml"),
        b"[[step]]\nname = \"a\"\n# caf\xe9\nrun = \"true\"\n",
    )
    .unwrap();
    refused_at_check_and_run(&p, "sortie.toml:3:6: error: byte 0xe9 is not UTF-8");
}

#[test]
fn step_name_too_long_for_a_file_name() {
    let name = "a".repeat(5000);
    let p = Project::with_pipeline(&format!("[[step]]\nname = \"{name}\"\nrun = \"true\"\n"));
    refused_at_check_and_run(&p, "sortie.toml:2:8: error: step name `aaaa");
}

#[test]
fn matrix_instance_too_long_for_a_file_name() {
    let v = "v".repeat(260);
    let p = Project::with_pipeline(&format!(
        "[[step]]\nname = \"s\"\nrun = \"echo {{{{a}}}}\"\nmatrix = {{ a = [\"{v}\"] }}\n"
    ));
    refused_at_check_and_run(
        &p,
        "sortie.toml:4:10: error: the matrix of step `s` makes an instance whose directory name has 265 bytes",
    );
}

#[test]
fn unclosed_placeholder_is_located() {
    let p = Project::with_pipeline(
        "[[step]]\nname = \"s\"\nrun = \"echo {{x\"\nmatrix = { x = [1] }\n",
    );
    refused_at_check_and_run(
        &p,
        "sortie.toml:3:13: error: unclosed placeholder `{{x` in `run` of step `s`",
    );
}

const ONE_STEP: &str = "[[step]]\nname = \"hello\"\nrun = \"echo hi\"\n";

/// A project whose pipeline ran once, successfully; returns it and the run id.
fn finished_run(pipeline: &str) -> (Project, String) {
    let p = Project::with_pipeline(pipeline);
    p.sortie(&["run"]).ok();
    let id = p.only_run();
    (p, id)
}

#[test]
fn project_flag_naming_no_directory() {
    let p = Project::new();
    for args in [
        &["-C", "/nonexistent/x", "runs"][..],
        &["-C", "/nonexistent/x", "status"],
        &["-C", "/nonexistent/x", "run", "sortie.toml"],
    ] {
        let out = p.sortie(args);
        out.expect_code(2);
        assert!(
            out.stderr
                .contains("-C /nonexistent/x (the project directory): no such directory"),
            "{args:?}: {}",
            out.stderr
        );
    }
    p.write("file", "");
    let out = p.sortie(&["-C", "file", "runs"]);
    out.expect_code(2);
    assert!(out.stderr.contains("not a directory"), "{}", out.stderr);
}

#[test]
fn logs_of_an_attempt_that_does_not_exist() {
    let (p, _) = finished_run(ONE_STEP);
    p.sortie(&["logs", "hello"]).ok();
    let out = p.sortie(&["logs", "hello", "--attempt", "99"]);
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("--attempt 99: hello has 1 attempt in run"),
        "{}",
        out.stderr
    );
}

#[test]
fn logs_whose_file_or_attempt_dir_was_deleted() {
    let (p, id) = finished_run(ONE_STEP);
    let attempt = p.run_dir(&id).join("hello/attempt-1");
    std::fs::remove_file(attempt.join("stdout.log")).unwrap();
    let out = p.sortie(&["logs", "hello"]);
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr
            .contains("attempt 1 of hello has no log (deleted?)"),
        "{}",
        out.stderr
    );
    std::fs::remove_dir_all(&attempt).unwrap();
    let out = p.sortie(&["logs", "hello"]);
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr
            .contains("attempt 1 of hello has no directory (deleted?)"),
        "{}",
        out.stderr
    );
}

#[test]
fn cancel_of_an_unknown_step_on_a_finished_run() {
    let (p, _) = finished_run(ONE_STEP);
    let out = p.sortie(&["cancel", "latest", "helo"]);
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("has no step \"helo\" (did you mean \"hello\"?"),
        "{}",
        out.stderr
    );
    // A known name on a finished run is still a no-op.
    p.sortie(&["cancel", "latest", "hello"]).ok();
}

#[test]
fn metrics_json_tells_infinity_from_nan() {
    let (p, _) = finished_run(
        "[[step]]\nname = \"m\"\nrun = '''\nprintf '{\"a\": Infinity}\\n{\"a\": -Infinity}\\n{\"b\": NaN}\\n' >> \"$SORTIE_METRICS\"\n'''\n",
    );
    let out = p.sortie(&["metrics", "--json"]);
    out.ok();
    let v = out.json();
    let rows = v.as_array().expect("a list");
    let row = |k: &str| {
        rows.iter()
            .find(|r| r["key"] == k)
            .unwrap_or_else(|| panic!("{v}"))
    };
    assert_eq!(row("a")["last"], "-Infinity", "{v}");
    assert_eq!(row("a")["min"], "-Infinity", "{v}");
    assert_eq!(row("a")["max"], "Infinity", "{v}");
    assert!(
        row("b")["last"].is_null() && row("b")["max"].is_null(),
        "{v}"
    );
}

#[test]
fn fifo_and_device_inputs_are_refused_where_written() {
    let p = Project::with_pipeline(
        "[[step]]\nname = \"s\"\nrun = \"true\"\ninputs = [\"ok.txt\", \"pipe\"]\n",
    );
    p.write("ok.txt", "x");
    nix::unistd::mkfifo(&p.path("pipe"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    refused_at_check_and_run(
        &p,
        "sortie.toml:4:21: error: input `pipe` is a FIFO: only regular files and directories can be inputs",
    );
    p.write(
        "sortie.toml",
        "[[step]]\nname = \"s\"\nrun = \"true\"\ninputs = [\"/dev/zero\"]\n",
    );
    refused_at_check_and_run(
        &p,
        "sortie.toml:4:11: error: input `/dev/zero` is a character device",
    );
}

#[test]
fn fifo_matched_by_a_glob_fails_the_step_without_hanging() {
    let p =
        Project::with_pipeline("[[step]]\nname = \"s\"\nrun = \"true\"\ninputs = [\"data/*\"]\n");
    p.write("data/a.txt", "x");
    nix::unistd::mkfifo(&p.path("data/b"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let out = p.sortie(&["run"]);
    out.expect_code(1);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(text.contains("input `data/b` is a FIFO"), "{text}");
}

#[test]
fn sigterm_and_sigint_stop_hashing_a_huge_input_at_once() {
    use nix::sys::signal::Signal;
    for (signal, reason) in [
        (Signal::SIGTERM, "run terminated"),
        (Signal::SIGINT, "run interrupted"),
    ] {
        let p = Project::with_pipeline(
            "[[step]]\nname = \"s\"\nrun = \"true\"\ninputs = [\"big.bin\"]\n",
        );
        // Sparse: 30 GB to read, no disk used.
        std::fs::File::create(p.path("big.bin"))
            .unwrap()
            .set_len(30 << 30)
            .unwrap();
        let err_path = p.path("run.err");
        let mut child = p
            .cmd(&["run"])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .spawn()
            .unwrap();
        // Past a second, the hash says how far it got.
        let progress = common::wait_for(Duration::from_secs(30), "a progress line", || {
            let t = std::fs::read_to_string(&err_path).unwrap_or_default();
            t.contains("hashing input").then_some(t)
        });
        assert!(
            progress.contains("big.bin") && progress.contains("of 30.00 GiB"),
            "{progress}"
        );
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        let sent = Instant::now();
        let status = common::wait_for(Duration::from_secs(10), "the run to stop", || {
            child.try_wait().unwrap()
        });
        let took = sent.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "{signal}: took {took:?} to stop"
        );
        let err = std::fs::read_to_string(&err_path).unwrap();
        assert_eq!(status.code(), Some(1), "{signal}: {err}");
        let st = p.status(None);
        assert_eq!(st["state"], "cancelled", "{signal}: {st}");
        let step = common::step_of(&st, "s");
        assert_eq!(step["state"], "cancelled", "{signal}: {st}");
        assert!(st.to_string().contains(reason), "{signal}: {st}");
    }
}

#[test]
fn output_the_step_never_wrote_is_not_a_cache_hit() {
    let p = Project::with_pipeline(
        "[[step]]\nname = \"s\"\nrun = \"echo ran >> ran.txt\"\noutputs = [\"/etc/passwd\"]\n",
    );
    let warning =
        "sortie.toml:4:12: warning: output `/etc/passwd` of step `s` is outside the project";
    let out = p.sortie(&["check"]);
    out.ok();
    assert!(out.stderr.contains(warning), "{}", out.stderr);
    let out = p.sortie(&["run"]);
    out.ok();
    assert!(out.stderr.contains(warning), "{}", out.stderr);
    let out = p.sortie(&["why"]);
    out.ok();
    assert!(
        out.stdout
            .contains("output /etc/passwd predates its last success: the step did not write it"),
        "{}",
        out.stdout
    );
    p.sortie(&["run"]).ok();
    assert_eq!(p.lines("ran.txt").len(), 2, "the second run was cached");
    let second = p.run_ids().into_iter().find(|id| {
        p.events(id).iter().any(|e| {
            e["type"] == "cache"
                && e["hit"] == false
                && e["reason"].as_str().is_some_and(|r| r.contains("predates"))
        })
    });
    assert!(second.is_some(), "no cache miss says why");
}

#[test]
fn run_with_an_index_that_cannot_open_creates_no_run() {
    let p = Project::with_pipeline(ONE_STEP);
    p.write("not-a-dir", "");
    let state = p.path("not-a-dir/state");
    let out = p.sortie_env(&["run"], &[("SORTIE_STATE_DIR", state.to_str().unwrap())]);
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr.contains("cannot open the index"),
        "{}",
        out.stderr
    );
    assert!(
        p.run_ids().is_empty(),
        "a run was left behind: {:?}",
        p.run_ids()
    );
}

#[test]
fn host_name_that_is_not_a_file_name_is_refused() {
    let p = Project::with_pipeline(ONE_STEP);
    // Where `<state>/../../x-<tag>.db` would be.
    let outside = p.state_dir().parent().unwrap().parent().unwrap();
    let listing = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(outside)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("x-"))
            .collect();
        v.sort();
        v
    };
    let before = listing();
    for args in [&["run"][..], &["runs"], &["status"]] {
        let out = p.sortie_env(args, &[("SORTIE_HOST", "../../x")]);
        out.expect_code(2);
        assert!(
            out.stderr
                .contains("SORTIE_HOST=\"../../x\" is not a plain file name"),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert!(p.run_ids().is_empty());
    assert_eq!(
        listing(),
        before,
        "an index was written outside the state dir"
    );
}

#[test]
fn run_dirs_with_a_broken_event_log_are_listed_as_damaged() {
    let p = Project::with_pipeline(ONE_STEP);
    let mut ids = Vec::new();
    for _ in 0..4 {
        p.sortie(&["run"]).ok();
        let id = p.run_ids().into_iter().find(|i| !ids.contains(i)).unwrap();
        ids.push(id);
    }
    // Let the index see every run as it was.
    p.sortie(&["runs"]).ok();
    let events = |i: usize| p.run_dir(&ids[i]).join("events.jsonl");
    std::fs::remove_file(events(0)).unwrap();
    std::fs::write(events(1), "").unwrap();
    std::fs::remove_file(events(2)).unwrap();
    std::fs::create_dir(events(2)).unwrap();
    let want = [
        (0, "events.jsonl is missing"),
        (1, "events.jsonl is empty"),
        (2, "events.jsonl is not a file"),
    ];
    for _ in 0..2 {
        let out = p.sortie(&["runs", "--json"]);
        out.ok();
        let v = out.json();
        let list = v.as_array().unwrap();
        for (i, problem) in want {
            let row = list.iter().find(|r| r["run"] == ids[i].as_str());
            let row = row.unwrap_or_else(|| panic!("run {i} vanished: {v}"));
            assert_eq!(row["state"], "damaged", "{v}");
            assert_eq!(row["problem"], problem, "{v}");
        }
        let ok = list.iter().find(|r| r["run"] == ids[3].as_str()).unwrap();
        assert_eq!(ok["state"], "succeeded");
    }
    let out = p.sortie(&["runs"]);
    out.ok();
    assert!(
        out.stdout.lines().any(|l| l.starts_with(ids[0].as_str())
            && l.contains("damaged")
            && l.contains("events.jsonl is missing")),
        "{}",
        out.stdout
    );
    for (i, problem) in want {
        let out = p.sortie(&["status", &ids[i]]);
        assert_ne!(out.code, Some(0), "{out:?}");
        assert!(
            out.stderr
                .contains(&format!("run {} is damaged: {problem}", ids[i])),
            "{}",
            out.stderr
        );
    }
    p.sortie(&["status", &ids[3]]).ok();
}

#[test]
fn status_survives_the_index_being_deleted_under_it() {
    let p = Project::with_pipeline(ONE_STEP);
    p.sortie(&["run"]).ok();
    let state = p.state_dir().to_path_buf();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let deleter = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for e in std::fs::read_dir(&state).unwrap().flatten() {
                    let _ = std::fs::remove_file(e.path());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let mut failed = Vec::new();
    for _ in 0..200 {
        let out = p.sortie(&["status", "--json"]);
        if out.code != Some(0) {
            failed.push(out.stderr);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    deleter.join().unwrap();
    assert!(
        failed.is_empty(),
        "{} of 200 failed: {failed:?}",
        failed.len()
    );
}
