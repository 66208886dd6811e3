//! Steering runs: cancel (the whole process tree), detached runs that outlive their shell, resuming after
//! the engine was killed, a second login node that reads and steers a run through files alone, and
//! retry / rerun in place.

mod common;

use common::{Project, alive, kill_leftovers, proc_state, read_pids, step_of};
use serde_json::Value;
use std::time::Duration;

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// A step whose shell starts grandchildren and great-grandchildren, recording every pid.
const TREE: &str = r#"[[step]]
name = "quick"
run = "echo quick"

[[step]]
name = "tree"
run = '''
sleep 300 &
echo $! >> pids.txt
sleep 300 &
echo $! >> pids.txt
( sleep 300 & echo $! >> pids.txt; wait ) &
echo $! >> pids.txt
echo $$ >> pids.txt
wait
'''

[[step]]
name = "after"
needs = ["tree"]
run = "touch AFTER"
"#;

/// Waits until the step wrote `n` pids.
fn wait_pids(p: &Project, n: usize) -> Vec<u32> {
    common::wait_for(SECS(20), "the step to record its pids", || {
        let pids = read_pids(&p.path("pids.txt"));
        (pids.len() >= n).then_some(pids)
    })
}

#[test]
fn cancel_step_kills_the_whole_process_tree() {
    let p = Project::with_pipeline(TREE).env("SORTIE_KILL_GRACE", "2");
    let run = p.run_detached(&[]);
    let pids = wait_pids(&p, 5);
    p.wait_step(&run, "tree", "running", SECS(10));
    assert!(pids.iter().all(|&x| alive(x)), "the tree is not all up");

    let out = p.sortie(&["cancel", &run, "tree"]);
    out.ok();
    let res = common::wait_dead(&pids, SECS(5));
    kill_leftovers(&pids, "sleep");
    if let Err(left) = res {
        panic!("processes of the cancelled step still alive: {left:?} (of {pids:?})");
    }
    let st = p.wait_finished(&run, SECS(20));
    assert_eq!(step_of(&st, "tree")["state"], "cancelled");
    assert_eq!(step_of(&st, "quick")["state"], "succeeded");
    let after = step_of(&st, "after")["state"].as_str().unwrap().to_string();
    assert!(after == "blocked" || after == "cancelled", "{after}");
    assert_eq!(st["state"], "cancelled");
    assert!(!p.path("AFTER").exists());
    // The answer is in the log.
    let ev = p.events(&run);
    assert!(
        ev.iter()
            .any(|e| e["type"] == "request" && e["kind"] == "cancel" && e["ok"] == true),
        "no request event"
    );
}

#[test]
fn cancel_run_kills_the_tree_and_cancels_pending_steps() {
    let p = Project::with_pipeline(TREE).env("SORTIE_KILL_GRACE", "2");
    let run = p.run_detached(&[]);
    let pids = wait_pids(&p, 5);
    let out = p.sortie(&["cancel", &run]);
    out.ok();
    let res = common::wait_dead(&pids, SECS(5));
    kill_leftovers(&pids, "sleep");
    if let Err(left) = res {
        panic!("processes still alive after cancelling the run: {left:?}");
    }
    let st = p.wait_finished(&run, SECS(20));
    assert_eq!(st["state"], "cancelled");
    assert_eq!(step_of(&st, "tree")["state"], "cancelled");
    let after = step_of(&st, "after")["state"].as_str().unwrap().to_string();
    assert!(after == "blocked" || after == "cancelled", "{after}");
    // Cancelling a finished run is not an error.
    let again = p.sortie(&["cancel", &run]);
    again.ok();
    assert!(
        again.stdout.contains("nothing to cancel"),
        "{}",
        again.stdout
    );
}

#[test]
fn cancel_kills_grandchildren_that_ignore_sigterm() {
    // The shell dies of SIGTERM at once, but a grandchild ignores it: after the grace period it must get
    // SIGKILL, even though the step (and the run) already ended.
    let p = Project::with_pipeline(
        r#"[[step]]
name = "stubborn"
run = '''
( trap '' TERM; exec sleep 300 ) &
echo $! >> pids.txt
sleep 300 &
echo $! >> pids.txt
wait
'''
"#,
    )
    .env("SORTIE_KILL_GRACE", "1");
    let run = p.run_detached(&[]);
    let pids = wait_pids(&p, 2);
    p.sortie(&["cancel", &run, "stubborn"]).ok();
    let st = p.wait_finished(&run, SECS(20));
    assert_eq!(step_of(&st, "stubborn")["state"], "cancelled");
    let res = common::wait_dead(&pids, SECS(6));
    kill_leftovers(&pids, "sleep");
    if let Err(left) = res {
        panic!(
            "a grandchild that ignores SIGTERM survived the cancel (SORTIE_KILL_GRACE=1, waited 6 s): {left:?}"
        );
    }
}

#[test]
fn cancel_of_unknown_step_is_refused() {
    let p = Project::with_pipeline(TREE).env("SORTIE_KILL_GRACE", "1");
    let run = p.run_detached(&[]);
    let pids = wait_pids(&p, 5);
    let out = p.sortie(&["cancel", &run, "nosuchstep"]);
    out.expect_code(2);
    assert!(out.stderr.contains("nosuchstep"), "{}", out.stderr);
    // The run goes on.
    let st = p.status(Some(&run));
    assert_eq!(step_of(&st, "tree")["state"], "running");
    p.sortie(&["cancel", &run]).ok();
    p.wait_finished(&run, SECS(20));
    let _ = common::wait_dead(&pids, SECS(5));
    kill_leftovers(&pids, "sleep");
}

#[test]
fn detached_run_survives_its_shell_and_a_hangup() {
    use nix::sys::signal::{Signal, kill, killpg};
    use nix::unistd::{Pid, getsid};
    use std::os::unix::process::CommandExt;
    let p = Project::with_pipeline(
        r#"[[step]]
name = "one"
run = "sleep 2; echo one >> done.txt"

[[step]]
name = "two"
needs = ["one"]
run = "echo two >> done.txt"
"#,
    );
    // The shell sits in its own process group, as a job of a login shell would; it exits right away.
    let mut c = std::process::Command::new("bash");
    c.arg("-c")
        .arg("\"$0\" run --detach; exit")
        .arg(common::BIN)
        .current_dir(p.root())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .process_group(0);
    let template = p.cmd(&[]);
    for (k, v) in template.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let child = c.spawn().unwrap();
    let shell = child.id() as i32;
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let run = stdout
        .split_whitespace()
        .nth(1)
        .expect("run id")
        .to_string();
    // The terminal goes away: whatever is left in the shell's process group gets SIGHUP.
    let _ = killpg(Pid::from_raw(shell), Signal::SIGHUP);
    let st = p.status(Some(&run));
    assert_eq!(st["state"], "running");
    let engine = st["engine"]["pid"].as_u64().expect("engine pid") as i32;
    assert_eq!(
        getsid(Some(Pid::from_raw(engine))).unwrap().as_raw(),
        engine,
        "the detached engine should lead its own session (no controlling terminal)"
    );
    // A hang-up sent to the engine itself does not stop the run either.
    kill(Pid::from_raw(engine), Signal::SIGHUP).unwrap();
    let st = p.wait_finished(&run, SECS(30));
    assert_eq!(st["state"], "succeeded", "{st}");
    assert_eq!(p.lines("done.txt"), ["one", "two"]);
    let log = std::fs::read_to_string(p.run_dir(&run).join("engine.log")).unwrap_or_default();
    assert!(log.contains("succeeded"), "engine.log: {log}");
}

const COUNTER: &str = r#"[[step]]
name = "one"
run = "echo one >> counter.txt"

[[step]]
name = "two"
needs = ["one"]
run = '''
echo two-start >> counter.txt
sleep 3
echo two-end >> counter.txt
'''

[[step]]
name = "three"
needs = ["two"]
run = "echo three >> counter.txt"
"#;

/// Starts COUNTER detached, waits for `two` to run, and kills the engine with SIGKILL.
fn start_and_kill_engine(p: &Project) -> (String, u32) {
    let run = p.run_detached(&[]);
    let st = p.wait_step(&run, "two", "running", SECS(15));
    let pid = st["engine"]["pid"].as_u64().expect("engine pid") as u32;
    assert_eq!(st["engine"]["alive"], true);
    let cmd = common::cmdline(pid).unwrap_or_default();
    assert!(cmd.contains("engine"), "pid {pid} is not the engine: {cmd}");
    // The lease file names the same process.
    let lease_dir = p.run_dir(&run).join("lease");
    let lease_pids: Vec<u64> = std::fs::read_dir(&lease_dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let v: Value = serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
            v["pid"].as_u64()
        })
        .collect();
    assert!(lease_pids.contains(&(pid as u64)), "{lease_pids:?}");
    common::kill_pid(pid);
    (run, pid)
}

fn count(p: &Project, what: &str) -> usize {
    p.lines("counter.txt").iter().filter(|l| *l == what).count()
}

#[test]
fn resume_after_kill9_does_not_rerun_succeeded_steps() {
    let p = Project::with_pipeline(COUNTER);
    let (run, _) = start_and_kill_engine(&p);
    let st = p.wait_status(&run, SECS(15), "the engine to be seen dead", |v| {
        v["engine"]["alive"] == false
    });
    assert_eq!(st["state"], "running");
    let out = p.sortie(&["resume", &run]);
    out.ok();
    let st = p.status(Some(&run));
    assert_eq!(st["state"], "succeeded");
    assert_eq!(count(&p, "one"), 1, "{:?}", p.lines("counter.txt"));
    assert_eq!(count(&p, "two-start"), 1, "{:?}", p.lines("counter.txt"));
    assert_eq!(count(&p, "two-end"), 1);
    assert_eq!(count(&p, "three"), 1);
    assert_eq!(step_of(&st, "one")["attempts"], 1);
    assert_eq!(step_of(&st, "two")["attempts"], 1);
    assert_eq!(step_of(&st, "two")["state"], "succeeded");
    assert_eq!(step_of(&st, "two")["exit_code"], 0);
    // One run only: resume continues it in place.
    assert_eq!(p.run_ids(), [run.as_str()]);
    // Resuming a finished run does nothing.
    let again = p.sortie(&["resume", &run]);
    again.ok();
    assert_eq!(p.lines("counter.txt").len(), 4);
}

#[test]
fn resume_detached_after_the_orphaned_step_finished() {
    let p = Project::with_pipeline(COUNTER);
    let (run, _) = start_and_kill_engine(&p);
    // The step goes on without an engine and ends.
    common::wait_for(SECS(15), "two to end on its own", || {
        (count(&p, "two-end") == 1).then_some(())
    });
    p.wait_status(&run, SECS(15), "the engine to be seen dead", |v| {
        v["engine"]["alive"] == false
    });
    let out = p.sortie(&["resume", &run, "--detach"]);
    out.ok();
    let st = p.wait_finished(&run, SECS(30));
    assert_eq!(st["state"], "succeeded", "{st}");
    assert_eq!(count(&p, "one"), 1);
    assert_eq!(count(&p, "two-start"), 1);
    assert_eq!(count(&p, "three"), 1);
    assert_eq!(step_of(&st, "two")["attempts"], 1);
}

#[test]
fn resume_right_after_kill9_treats_the_dead_engine_as_dead() {
    // A SIGKILLed engine stays a zombie until its parent (init, after `run --detach` exited) reaps it.
    // A zombie drives nothing: resume must take over at once instead of refusing.
    let p = Project::with_pipeline(COUNTER);
    let (run, pid) = start_and_kill_engine(&p);
    common::wait_for(SECS(5), "the engine to die", || (!alive(pid)).then_some(()));
    let zombie = proc_state(pid) == Some('Z');
    let out = p.sortie(&["resume", &run]);
    assert_eq!(
        out.code,
        Some(0),
        "resume refused a killed engine (zombie at the time: {zombie}):\n{}",
        out.stderr
    );
    assert_eq!(count(&p, "two-start"), 1);
    assert_eq!(count(&p, "three"), 1);
}

#[test]
fn resume_refuses_a_live_engine() {
    let p = Project::with_pipeline(COUNTER);
    let run = p.run_detached(&[]);
    p.wait_step(&run, "two", "running", SECS(15));
    let out = p.sortie(&["resume", &run]);
    out.expect_code(2);
    assert!(out.stderr.contains("live engine"), "{}", out.stderr);
    let st = p.wait_finished(&run, SECS(30));
    assert_eq!(st["state"], "succeeded");
    assert_eq!(count(&p, "two-start"), 1);
}

/// `status --json` without the fields that depend on the moment they are read.
fn stable(mut v: Value) -> Value {
    if let Some(e) = v.get_mut("engine").and_then(Value::as_object_mut) {
        e.remove("heartbeat_age_s");
    }
    v
}

#[test]
fn second_host_reads_and_cancels_through_files() {
    let p = Project::with_pipeline(
        r#"[[step]]
name = "one"
matrix = { k = ["a", "b"] }
run = "echo {{k}}"

[[step]]
name = "long"
run = '''
sleep 60 &
echo $! >> pids.txt
wait
'''

[[step]]
name = "after"
needs = ["long"]
run = "touch AFTER"
"#,
    )
    .env("SORTIE_KILL_GRACE", "2");
    let other_state = tempfile::tempdir().unwrap();
    let other_state_s = other_state.path().to_str().unwrap().to_string();
    let other = [
        ("SORTIE_HOST", "otherhost"),
        ("SORTIE_STATE_DIR", other_state_s.as_str()),
    ];
    let run = p.run_detached(&[]);
    let pids = wait_pids(&p, 1);
    let a = p.wait_status(&run, SECS(15), "the one steps to end", |v| {
        step_of(v, "one[k=a]")["state"] == "succeeded"
            && step_of(v, "one[k=b]")["state"] == "succeeded"
            && step_of(v, "long")["state"] == "running"
    });
    let b_out = p.sortie_env(&["status", &run, "--json"], &other);
    b_out.ok();
    let b = b_out.json();
    assert_eq!(stable(a.clone()), stable(b.clone()));
    assert_eq!(
        b["engine"]["alive"], true,
        "the other host sees the heartbeat"
    );
    assert_ne!(b["engine"]["host"], "otherhost");
    // The other host built its own index, in its own state dir, named after it.
    let files: Vec<String> = std::fs::read_dir(other_state.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        files.iter().any(|f| f.starts_with("otherhost")),
        "{files:?}"
    );
    assert!(
        !std::fs::read_dir(p.state_dir())
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("otherhost")),
        "the other host wrote into the first host's state dir"
    );

    let out = p.sortie_env(&["cancel", &run, "long"], &other);
    out.ok();
    let st = p.wait_finished(&run, SECS(20));
    let res = common::wait_dead(&pids, SECS(5));
    kill_leftovers(&pids, "sleep");
    res.expect("the cancelled step's processes died");
    assert_eq!(step_of(&st, "long")["state"], "cancelled");
    assert_eq!(st["state"], "cancelled");
    let done_dir = p.run_dir(&run).join("control/done");
    let done: Vec<String> = std::fs::read_dir(&done_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", done_dir.display()))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(done.len(), 1, "{done:?}");
    let req: Value =
        serde_json::from_slice(&std::fs::read(done_dir.join(&done[0])).unwrap()).unwrap();
    assert_eq!(req["host"], "otherhost");
    assert_eq!(req["kind"], "cancel");
    assert_eq!(req["step"], "long");
    let id = done[0].trim_end_matches(".json");
    let ev = p.events(&run);
    let answer = ev
        .iter()
        .find(|e| e["type"] == "request" && e["id"] == id)
        .unwrap_or_else(|| panic!("no request event with id {id}"));
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["kind"], "cancel");
    // No request is left waiting.
    let waiting: Vec<_> = std::fs::read_dir(p.run_dir(&run).join("control"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .collect();
    assert!(waiting.is_empty(), "{waiting:?}");

    // Once finished, both hosts still agree, from the files alone.
    let a = p.status(Some(&run));
    let b = p.sortie_env(&["status", &run, "--json"], &other);
    b.ok();
    assert_eq!(stable(a), stable(b.json()));
    let ra = p.sortie(&["runs", "--json"]);
    let rb = p.sortie_env(&["runs", "--json"], &other);
    assert_eq!(ra.json(), rb.json());
}

const RETRY: &str = r#"[[step]]
name = "a"
run = "echo a >> count.txt"

[[step]]
name = "b"
needs = ["a"]
run = "echo b >> count.txt; test -f fixed"

[[step]]
name = "c"
needs = ["b"]
run = "echo c >> count.txt"

[[step]]
name = "d"
run = "echo d >> count.txt"
"#;

fn attempts(st: &Value, name: &str) -> u64 {
    step_of(st, name)["attempts"].as_u64().unwrap()
}

#[test]
fn retry_in_place_then_rerun_downstream() {
    let p = Project::with_pipeline(RETRY);
    p.sortie(&["run"]).expect_code(1);
    let run = p.only_run();
    let st = p.status(Some(&run));
    assert_eq!(step_of(&st, "b")["state"], "failed");
    assert_eq!(step_of(&st, "c")["state"], "blocked");

    // Retry before the fix fails again, in place.
    p.sortie(&["retry", &run]).expect_code(1);
    assert_eq!(attempts(&p.status(Some(&run)), "b"), 2);

    std::fs::write(p.path("fixed"), "").unwrap();
    p.sortie(&["retry", &run]).ok();
    assert_eq!(p.run_ids(), [run.as_str()], "retry must not make a new run");
    let st = p.status(Some(&run));
    assert_eq!(st["state"], "succeeded");
    assert_eq!(attempts(&st, "a"), 1);
    assert_eq!(attempts(&st, "b"), 3);
    assert_eq!(attempts(&st, "c"), 1);
    assert_eq!(attempts(&st, "d"), 1);
    let lines = p.lines("count.txt");
    assert_eq!(lines.iter().filter(|l| *l == "a").count(), 1);
    assert_eq!(lines.iter().filter(|l| *l == "d").count(), 1);

    // Nothing left to retry.
    let out = p.sortie(&["retry", &run]);
    out.expect_code(2);
    assert!(out.stderr.contains("retry"), "{}", out.stderr);

    // Re-run b and what needs it; a and d stay.
    let n = lines.len();
    p.sortie(&["rerun", &run, "b", "--downstream"]).ok();
    let st = p.status(Some(&run));
    assert_eq!(st["state"], "succeeded");
    assert_eq!(attempts(&st, "a"), 1);
    assert_eq!(attempts(&st, "b"), 4);
    assert_eq!(attempts(&st, "c"), 2);
    assert_eq!(attempts(&st, "d"), 1);
    let mut new: Vec<String> = p.lines("count.txt")[n..].to_vec();
    new.sort();
    assert_eq!(new, ["b", "c"]);

    // Without --downstream only the step itself.
    let n = p.lines("count.txt").len();
    p.sortie(&["rerun", "a"]).ok();
    let st = p.status(Some(&run));
    assert_eq!(attempts(&st, "a"), 2);
    assert_eq!(attempts(&st, "b"), 4);
    assert_eq!(attempts(&st, "c"), 2);
    assert_eq!(p.lines("count.txt")[n..], ["a"]);
    assert_eq!(p.run_ids(), [run.as_str()]);

    let bad = p.sortie(&["rerun", &run, "nosuchstep"]);
    bad.expect_code(2);
    assert!(bad.stderr.contains("nosuchstep"), "{}", bad.stderr);
}

#[test]
fn retry_detached() {
    let p = Project::with_pipeline(RETRY);
    p.sortie(&["run"]).expect_code(1);
    let run = p.only_run();
    std::fs::write(p.path("fixed"), "").unwrap();
    let out = p.sortie(&["retry", &run, "-d"]);
    out.ok();
    let st = p.wait_finished(&run, SECS(30));
    assert_eq!(st["state"], "succeeded", "{st}");
    assert_eq!(attempts(&st, "b"), 2);
    assert_eq!(attempts(&st, "c"), 1);
}

#[test]
fn rerun_of_a_running_step_is_refused_by_the_live_engine() {
    let p = Project::with_pipeline(COUNTER);
    let run = p.run_detached(&[]);
    p.wait_step(&run, "two", "running", SECS(15));
    let out = p.sortie(&["rerun", &run, "two"]);
    out.expect_code(2);
    assert!(out.stderr.contains("running"), "{}", out.stderr);
    let st = p.wait_finished(&run, SECS(30));
    assert_eq!(st["state"], "succeeded");
    assert_eq!(count(&p, "two-start"), 1);
}

#[test]
fn cancel_of_a_pending_step_lets_the_rest_finish() {
    let p = Project::with_pipeline(
        r#"[[step]]
name = "first"
run = "sleep 2; echo first >> done.txt"

[[step]]
name = "second"
needs = ["first"]
run = "echo second >> done.txt"

[[step]]
name = "third"
needs = ["second"]
run = "echo third >> done.txt"

[[step]]
name = "side"
needs = ["first"]
run = "echo side >> done.txt"
"#,
    );
    let run = p.run_detached(&[]);
    p.wait_step(&run, "first", "running", SECS(15));
    p.sortie(&["cancel", &run, "second"]).ok();
    let st = p.wait_finished(&run, SECS(30));
    assert_eq!(step_of(&st, "first")["state"], "succeeded");
    assert_eq!(step_of(&st, "second")["state"], "cancelled");
    assert_eq!(step_of(&st, "second")["attempts"], 0);
    let third = step_of(&st, "third")["state"].as_str().unwrap().to_string();
    assert!(third == "blocked" || third == "cancelled", "{third}");
    assert_eq!(step_of(&st, "side")["state"], "succeeded");
    assert_eq!(st["state"], "cancelled");
    let mut lines = p.lines("done.txt");
    lines.sort();
    assert_eq!(lines, ["first", "side"]);
}

/// A step whose shell waits on a long sleep; its pids go to pids.txt.
const ORPHAN: &str = r#"[[step]]
name = "one"
run = "echo one >> counter.txt"

[[step]]
name = "two"
needs = ["one"]
run = '''
echo two-start >> counter.txt
sleep 60 &
echo $! >> pids.txt
wait
echo two-end >> counter.txt
'''

[[step]]
name = "three"
needs = ["two"]
run = "echo three >> counter.txt"
"#;

/// Starts ORPHAN detached, kills its engine with SIGKILL once `two` runs, and waits until it is seen dead.
/// Returns the run id, the pid of two's shell and the sleep's pid.
fn orphan_two(p: &Project) -> (String, u32, Vec<u32>) {
    let run = p.run_detached(&[]);
    let st = p.wait_step(&run, "two", "running", SECS(15));
    let pids = wait_pids(p, 1);
    let engine = st["engine"]["pid"].as_u64().unwrap() as u32;
    common::kill_pid(engine);
    p.wait_status(&run, SECS(15), "the engine to be seen dead", |v| {
        v["engine"]["alive"] == false
    });
    let shell = p
        .events(&run)
        .iter()
        .find(|e| e["type"] == "attempt_started" && e["step"] == "two")
        .and_then(|e| e["pid"].as_u64())
        .expect("two's pid") as u32;
    (run, shell, pids)
}

#[test]
fn cancel_of_a_run_whose_engine_died_cancels_the_orphaned_step() {
    let p = Project::with_pipeline(ORPHAN).env("SORTIE_KILL_GRACE", "1");
    let (run, _, pids) = orphan_two(&p);
    // Nobody drives the run: cancel takes it over, and stops what still runs.
    let out = p.sortie(&["cancel", &run]);
    let res = common::wait_dead(&pids, SECS(5));
    kill_leftovers(&pids, "sleep");
    out.ok();
    res.expect("the orphaned step's sleep died");
    let st = p.wait_finished(&run, SECS(20));
    assert_eq!(st["state"], "cancelled");
    assert_eq!(
        step_of(&st, "two")["state"],
        "cancelled",
        "a step killed by the cancel is not a success"
    );
    assert_ne!(step_of(&st, "three")["state"], "succeeded");
    assert_eq!(count(&p, "two-end"), 0);
    assert_eq!(count(&p, "three"), 0);
}

#[test]
fn resume_does_not_take_a_killed_orphan_for_a_success() {
    // While no engine watches, the step is killed (SIGTERM: an admin, the OOM watchdog, a preemption).
    // The resumed engine must not record it as succeeded, nor run what needs it.
    let p = Project::with_pipeline(ORPHAN);
    let (run, shell, pids) = orphan_two(&p);
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(shell as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let res = common::wait_dead(&[shell], SECS(5));
    kill_leftovers(&pids, "sleep");
    res.expect("the step's shell died of SIGTERM");
    let out = p.sortie(&["resume", &run]);
    let st = p.status(Some(&run));
    assert_ne!(
        step_of(&st, "two")["state"],
        "succeeded",
        "a step killed by SIGTERM was recorded as succeeded"
    );
    assert_eq!(
        count(&p, "three"),
        0,
        "a step ran on a killed step's result"
    );
    assert_eq!(out.code, Some(1), "{}", out.stdout);
}

#[test]
fn exit_code_file_of_a_cancelled_step_does_not_say_success() {
    // The exit-code file is how an engine that died learns how a step ended; a killed step must not leave
    // "0" there.
    let p = Project::with_pipeline(ORPHAN).env("SORTIE_KILL_GRACE", "1");
    let run = p.run_detached(&[]);
    p.wait_step(&run, "two", "running", SECS(15));
    let pids = wait_pids(&p, 1);
    p.sortie(&["cancel", &run, "two"]).ok();
    let st = p.wait_finished(&run, SECS(20));
    let _ = common::wait_dead(&pids, SECS(5));
    kill_leftovers(&pids, "sleep");
    assert_eq!(step_of(&st, "two")["state"], "cancelled");
    let dir = std::path::PathBuf::from(step_of(&st, "two")["dir"].as_str().unwrap());
    let code = std::fs::read_to_string(dir.join("exit_code")).unwrap_or_default();
    assert_ne!(
        code.trim(),
        "0",
        "the exit_code file of a cancelled step says success"
    );
}

#[test]
fn concurrent_resumes_have_one_winner() {
    let p = Project::with_pipeline(COUNTER);
    let (run, _) = start_and_kill_engine(&p);
    p.wait_status(&run, SECS(15), "the engine to be seen dead", |v| {
        v["engine"]["alive"] == false
    });
    let p = std::sync::Arc::new(p);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let p = p.clone();
            let run = run.clone();
            std::thread::spawn(move || p.sortie(&["resume", &run]))
        })
        .collect();
    let outs: Vec<common::Out> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let st = p.wait_finished(&run, SECS(30));
    assert_eq!(st["state"], "succeeded");
    assert_eq!(count(&p, "two-start"), 1, "{:?}", p.lines("counter.txt"));
    assert_eq!(count(&p, "three"), 1, "{:?}", p.lines("counter.txt"));
    let winners = outs.iter().filter(|o| o.code == Some(0)).count();
    assert!(winners >= 1, "{outs:#?}");
    for o in &outs {
        assert!(
            o.code == Some(0) || o.code == Some(2),
            "a losing resume should say a live engine drives the run (exit 2), got {:?}: {}",
            o.code,
            o.stderr
        );
    }
    let starts = p
        .events(&run)
        .iter()
        .filter(|e| e["type"] == "engine_started")
        .count();
    assert!(starts >= 2, "the resumed engine announced itself");
}

#[test]
fn rerun_uses_the_plan_frozen_in_the_run() {
    let p = Project::with_pipeline("[[step]]\nname = \"a\"\nrun = \"echo v1 >> out.txt\"\n");
    p.sortie(&["run"]).ok();
    let run = p.only_run();
    p.write(
        "sortie.toml",
        "[[step]]\nname = \"a\"\nrun = \"echo v2 >> out.txt\"\n",
    );
    p.sortie(&["rerun", &run, "a"]).ok();
    assert_eq!(p.lines("out.txt"), ["v1", "v1"]);
    assert_eq!(attempts(&p.status(Some(&run)), "a"), 2);
    // A new run uses the new file.
    p.sortie(&["run"]).ok();
    assert_eq!(p.lines("out.txt"), ["v1", "v1", "v2"]);
}

#[test]
fn rerun_of_a_failed_step_unblocks_its_dependents() {
    let p = Project::with_pipeline(RETRY);
    p.sortie(&["run"]).expect_code(1);
    let run = p.only_run();
    assert_eq!(step_of(&p.status(Some(&run)), "c")["state"], "blocked");
    std::fs::write(p.path("fixed"), "").unwrap();
    // Re-running only b (no --downstream) must still let c, blocked by b, run once b succeeds.
    p.sortie(&["rerun", &run, "b"]).ok();
    let st = p.status(Some(&run));
    assert_eq!(st["state"], "succeeded", "{st}");
    assert_eq!(step_of(&st, "c")["state"], "succeeded");
    assert_eq!(attempts(&st, "c"), 1);
}
