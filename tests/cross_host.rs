//! A run started on one login node and resumed on another (`SORTIE_HOST` plays the second node, with an
//! index of its own): the resumed engine follows a step the first node still runs through its heartbeat
//! file instead of running it again, declares it lost only once the heartbeat is older than the grace,
//! and cancels it through a file.

mod common;

use common::{Project, kill_leftovers, step_of};
use serde_json::Value;
use std::process::Stdio;
use std::time::{Duration, Instant};

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// A project whose commands run on "hosta" unless told otherwise, with a short lease so the second
/// host soon sees the first one's engine as dead.
fn two_hosts(pipeline: &str) -> (Project, tempfile::TempDir) {
    let p = Project::with_pipeline(pipeline)
        .env("SORTIE_HOST", "hosta")
        .env("SORTIE_LEASE_TIMEOUT", "1")
        .env("SORTIE_KILL_GRACE", "1");
    let b_state = tempfile::Builder::new()
        .prefix("sortie-hostb-")
        .tempdir()
        .unwrap();
    (p, b_state)
}

/// The environment of the second host.
fn host_b(state: &tempfile::TempDir) -> Vec<(&'static str, String)> {
    vec![
        ("SORTIE_HOST", "hostb".to_string()),
        (
            "SORTIE_STATE_DIR",
            state.path().to_string_lossy().into_owned(),
        ),
    ]
}

fn on_b(p: &Project, b: &tempfile::TempDir, args: &[&str]) -> common::Out {
    let env = host_b(b);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    p.sortie_env(args, &env)
}

fn status_on_b(p: &Project, b: &tempfile::TempDir, run: &str) -> Value {
    let out = on_b(p, b, &["status", run, "--json"]);
    out.ok();
    out.json()
}

/// Polls `status RUN --json` on host B until `pred` holds.
fn wait_on_b(
    p: &Project,
    b: &tempfile::TempDir,
    run: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    common::poll_until(what, SECS(30), Duration::from_millis(200), || {
        Some(status_on_b(p, b, run)).filter(|st| pred(st))
    })
}

/// Starts the run detached on host A, waits for `step` to run (and `ready` to be written), kills A's
/// engine with SIGKILL and waits until host B sees it dead. Returns the run and the pid of the step's
/// shell.
fn start_on_a_and_kill_the_engine(
    p: &Project,
    b: &tempfile::TempDir,
    step: &str,
    ready: &str,
) -> (String, u32) {
    let run = p.run_detached(&[]);
    let st = p.wait_step(&run, step, "running", SECS(15));
    common::wait_for(SECS(15), ready, || p.path(ready).exists().then_some(()));
    let engine = st["engine"]["pid"].as_u64().expect("engine pid") as u32;
    kill_the_engine(p, b, &run, engine);
    let shell = p
        .events(&run)
        .iter()
        .find(|e| e["type"] == "attempt_started" && e["step"] == step)
        .and_then(|e| e["pid"].as_u64())
        .expect("the step's pid") as u32;
    (run, shell)
}

/// Kills the engine `pid` of `run` with SIGKILL and waits until host B sees it dead.
fn kill_the_engine(p: &Project, b: &tempfile::TempDir, run: &str, pid: u32) {
    common::kill_pid(pid);
    wait_on_b(p, b, run, "host B to see the engine dead", |st| {
        st["engine"]["alive"] == false
    });
}

fn ended_event(p: &Project, run: &str, step: &str) -> Value {
    p.events(run)
        .into_iter()
        .find(|e| e["type"] == "attempt_ended" && e["step"] == step)
        .unwrap_or_else(|| panic!("no attempt_ended for {step}"))
}

const SLOW: &str = r#"[[step]]
name = "work"
retries = 1
retry_backoff = "0s"
run = '''
echo start >> marks.txt
touch started
sleep 5
echo end >> marks.txt
'''
"#;

#[test]
fn a_step_another_host_still_runs_is_followed_not_run_again() {
    let (p, b) = two_hosts(SLOW);
    // A beat every second (the first one comes after one interval).
    let p = p.env("SORTIE_HEARTBEAT_GRACE", "8");
    let (run, _) = start_on_a_and_kill_the_engine(&p, &b, "work", "started");
    let env = host_b(&b);
    let mut resume = p.cmd(&["resume", &run]);
    resume.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    let mut resume = resume
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start resume on host B");
    // Meanwhile host B says where the step runs, from its heartbeat.
    let st = wait_on_b(&p, &b, &run, "host B to see A's heartbeat", |st| {
        st["engine"]["host"] == "hostb"
            && st["engine"]["alive"] == true
            && step_of(st, "work")["heartbeat"]["age_s"].is_number()
    });
    let work = step_of(&st, "work");
    assert_eq!(work["state"], "running", "{st}");
    assert_eq!(work["heartbeat"]["host"], "hosta", "{st}");
    let age = work["heartbeat"]["age_s"]
        .as_f64()
        .expect("a heartbeat age");
    assert!(age < 10.0, "{st}");
    let text = on_b(&p, &b, &["status", &run]);
    text.ok();
    assert!(
        text.stdout.contains("running on hosta (heartbeat "),
        "{}",
        text.stdout
    );

    let deadline = Instant::now() + SECS(30);
    let code = loop {
        if let Some(s) = resume.try_wait().unwrap() {
            break s.code();
        }
        if Instant::now() > deadline {
            let _ = resume.kill();
            panic!("resume on host B did not finish");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code, Some(0));
    // The step ran once (a lost attempt would have been tried again), and its real end is recorded.
    assert_eq!(p.lines("marks.txt"), ["start", "end"]);
    let st = status_on_b(&p, &b, &run);
    assert_eq!(st["state"], "succeeded", "{st}");
    let work = step_of(&st, "work");
    assert_eq!(work["attempts"], 1, "{st}");
    assert_eq!(work["exit_code"], 0, "{st}");
    assert_eq!(work["state"], "succeeded", "{st}");
    let end = ended_event(&p, &run, "work");
    assert_eq!(end["attempt"], 1);
    assert_eq!(end["exit_code"], 0);
}

const LONG: &str = r#"[[step]]
name = "work"
run = '''
sleep 60 &
echo $! >> pids.txt
wait
'''

[[step]]
name = "after"
needs = ["work"]
run = "touch AFTER"
"#;

/// Attempt 1 runs long; a later one (after attempt 1 was lost) ends at once.
const LONG_ONCE: &str = r#"[[step]]
name = "work"
run = '''
if [ "$SORTIE_ATTEMPT" = 1 ]; then
  sleep 60 &
  echo $! >> pids.txt
  wait
fi
echo "attempt $SORTIE_ATTEMPT" >> marks.txt
'''

[[step]]
name = "after"
needs = ["work"]
run = "touch AFTER"
"#;

#[test]
fn a_heartbeat_that_stops_is_lost_after_the_grace() {
    let (p, b) = two_hosts(LONG_ONCE);
    let p = p.env("SORTIE_HEARTBEAT_GRACE", "3");
    let (run, shell) = start_on_a_and_kill_the_engine(&p, &b, "work", "pids.txt");
    let pids = common::read_pids(&p.path("pids.txt"));
    // Host A goes away with everything on it.
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(shell as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let res = common::wait_dead(&pids, SECS(5));
    kill_leftovers(&pids, "sleep");
    res.expect("the step's processes died");
    let hb_file = p.run_dir(&run).join("work/attempt-1/heartbeat");
    let last_beat = std::fs::metadata(&hb_file)
        .and_then(|m| m.modified())
        .expect("a heartbeat file")
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    on_b(&p, &b, &["resume", &run]).ok();
    let end = ended_event(&p, &run, "work");
    assert_eq!(end["attempt"], 1);
    let reason = end["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("no heartbeat from hosta"),
        "the lost step should say why: {end}"
    );
    let waited = end["ts"].as_f64().unwrap() - last_beat;
    assert!(
        waited >= 2.5,
        "declared lost {waited:.1} s after the last heartbeat, before the 3 s grace"
    );
    // A lost attempt gets its extra try, on host B.
    assert_eq!(p.lines("marks.txt"), ["attempt 2"]);
    let st = status_on_b(&p, &b, &run);
    assert_eq!(st["state"], "succeeded", "{st}");
    assert_eq!(step_of(&st, "work")["attempts"], 2);
    assert!(p.path("AFTER").exists());
}

#[test]
fn a_grace_that_is_not_a_positive_number_is_refused() {
    let p = Project::with_pipeline(LONG);
    for bad in ["soon", "0", "-5"] {
        for args in [&["status"][..], &["run"][..]] {
            let out = p.sortie_env(args, &[("SORTIE_HEARTBEAT_GRACE", bad)]);
            out.expect_code(2);
            assert!(
                out.stderr.contains("SORTIE_HEARTBEAT_GRACE") && out.stderr.contains("positive"),
                "{}",
                out.stderr
            );
        }
    }
    assert!(p.run_ids().is_empty(), "a refused run left a run directory");
}

#[test]
fn another_host_cancels_a_step_through_its_files() {
    let (p, b) = two_hosts(LONG);
    let (run, _) = start_on_a_and_kill_the_engine(&p, &b, "work", "pids.txt");
    let pids = common::read_pids(&p.path("pids.txt"));
    let out = on_b(&p, &b, &["cancel", &run]);
    let res = common::wait_dead(&pids, SECS(15));
    kill_leftovers(&pids, "sleep");
    out.ok();
    res.expect("the step on host A died of the cancel from host B");
    let st = wait_on_b(&p, &b, &run, "the run to finish on host B", |st| {
        st["state"] != "running" && st["engine"]["alive"] != true
    });
    assert_eq!(st["state"], "cancelled", "{st}");
    assert_eq!(step_of(&st, "work")["state"], "cancelled", "{st}");
    assert_ne!(step_of(&st, "after")["state"], "succeeded");
    assert!(p.run_dir(&run).join("work/attempt-1/cancel").exists());
    assert!(!p.path("AFTER").exists());
}

/// A step that runs until the test creates `stop`.
const UNTIL_STOP: &str = r#"[[step]]
name = "work"
run = '''
echo $$ > shell.txt
until [ -e stop ]; do sleep 0.1; done
echo done >> marks.txt
'''
"#;

/// Lets an [`UNTIL_STOP`] step end when the test does, whatever happened.
struct Stop<'a>(&'a Project);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0.path("stop"), "");
    }
}

/// The live beaters (`sortie __beat RUN_DIR`) of a run.
fn beaters(p: &Project, run: &str) -> Vec<u32> {
    let want = format!("__beat {}", p.run_dir(run).display());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&pid| {
            common::alive(pid) && common::cmdline(pid).is_some_and(|c| c.contains(&want))
        })
        .collect()
}

fn the_beater(p: &Project, run: &str, other_than: Option<u32>) -> u32 {
    common::wait_for(SECS(10), "a beater", || {
        let b = beaters(p, run);
        (b.len() == 1 && Some(b[0]) != other_than).then(|| b[0])
    })
}

/// When the attempt's heartbeat was last renewed (its mtime), if it ever was.
fn beat_time(p: &Project, run: &str) -> Option<f64> {
    let m = std::fs::metadata(p.run_dir(run).join("work/attempt-1/heartbeat")).ok()?;
    Some(
        m.modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs_f64(),
    )
}

/// Waits for a heartbeat renewed after `after` (unix seconds).
fn wait_beat_after(p: &Project, run: &str, after: f64) {
    common::wait_for(SECS(10), "a fresh heartbeat", || {
        beat_time(p, run).filter(|t| *t > after)
    });
}

fn engine_pid(p: &Project, run: &str) -> u32 {
    p.status(Some(run))["engine"]["pid"]
        .as_u64()
        .expect("engine pid") as u32
}

/// Starts an [`UNTIL_STOP`] run detached and waits until its step runs and has beaten once; returns
/// the run and its beater.
fn start_beaten(p: &Project) -> (String, u32) {
    let run = p.run_detached(&[]);
    p.wait_step(&run, "work", "running", SECS(15));
    common::wait_for(SECS(15), "shell.txt", || {
        p.path("shell.txt").exists().then_some(())
    });
    let beater = the_beater(p, &run, None);
    wait_beat_after(p, &run, 0.0);
    (run, beater)
}

#[test]
fn a_killed_beater_is_replaced_and_its_steps_outlive_the_engine() {
    let (p, b) = two_hosts(UNTIL_STOP);
    // A beat every 250 ms; host B takes a step whose heartbeat is 2 s old as lost.
    let p = p.env("SORTIE_HEARTBEAT_GRACE", "2");
    let _stop = Stop(&p);
    let (run, first) = start_beaten(&p);
    common::kill_pid(first);
    // The engine starts another, which finds the running step in the log and beats it.
    let second = the_beater(&p, &run, Some(first));
    wait_beat_after(&p, &run, unix_now());
    let log = std::fs::read_to_string(p.run_dir(&run).join("beater.log")).unwrap_or_default();
    assert!(
        log.contains(&format!("the beater (pid {first}) ended")),
        "{log}"
    );

    // The engine dies; the beater carries on, longer than the grace.
    kill_the_engine(&p, &b, &run, engine_pid(&p, &run));
    std::thread::sleep(SECS(3));
    let st = status_on_b(&p, &b, &run);
    let work = step_of(&st, "work");
    assert_eq!(work["state"], "running", "{st}");
    assert_eq!(work["heartbeat"]["host"], "hosta", "{st}");
    assert!(work["heartbeat"]["age_s"].as_f64().unwrap() < 2.0, "{st}");
    assert_eq!(beaters(&p, &run), [second]);

    // A cancel from host B reaches the step through the beater, which then leaves.
    let shell: u32 = p.read("shell.txt").trim().parse().unwrap();
    on_b(&p, &b, &["cancel", &run]).ok();
    common::wait_dead(&[shell], SECS(10)).expect("the step died of the cancel from host B");
    let st = wait_on_b(&p, &b, &run, "the run to finish on host B", |st| {
        st["state"] != "running" && st["engine"]["alive"] != true
    });
    assert_eq!(step_of(&st, "work")["state"], "cancelled", "{st}");
    assert!(p.lines("marks.txt").is_empty());
    common::wait_for(SECS(5), "the beater to leave", || {
        beaters(&p, &run).is_empty().then_some(())
    });
}

#[test]
fn a_resume_on_the_same_host_beats_the_steps_it_adopts() {
    let (p, b) = two_hosts(UNTIL_STOP);
    let p = p.env("SORTIE_HEARTBEAT_GRACE", "2");
    let stop = Stop(&p);
    let (run, beater) = start_beaten(&p);
    // Host A loses its engine, then its beater (the engine would start another), but not the step.
    kill_the_engine(&p, &b, &run, engine_pid(&p, &run));
    common::kill_pid(beater);
    let killed = unix_now();
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        beat_time(&p, &run).unwrap() <= killed,
        "a beat without a beater"
    );

    let mut resume = p
        .cmd(&["resume", &run])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("resume on host A");
    let resumed = unix_now();
    let _new = the_beater(&p, &run, Some(beater));
    wait_beat_after(&p, &run, resumed);
    drop(stop);
    let code = common::wait_for(SECS(30), "the resumed engine to finish", || {
        resume.try_wait().unwrap().map(|s| s.code())
    });
    assert_eq!(code, Some(0));
    // The step ran once, to its end, under both engines.
    assert_eq!(p.lines("marks.txt"), ["done"]);
    common::wait_for(SECS(5), "the beater to leave", || {
        beaters(&p, &run).is_empty().then_some(())
    });
}

#[test]
fn a_run_leaves_no_beater_behind() {
    let p = Project::with_pipeline(
        r#"[[step]]
name = "a"
matrix = { i = [1, 2, 3] }
run = "sleep 0.3"
"#,
    );
    p.sortie(&["run"]).ok();
    let run = p.only_run();
    common::wait_for(SECS(5), "the beater to leave with its engine", || {
        beaters(&p, &run).is_empty().then_some(())
    });
    assert!(!p.run_dir(&run).join("beater.log").exists());
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}
