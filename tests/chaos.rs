//! Chaos: the engine is killed with SIGKILL at random points (seeded: the seed is printed, and
//! `SORTIE_CHAOS_SEED` replays one) and resumed each time until the run finishes; then every step must
//! have run exactly once per attempt (each attempt appends a line to `marks.txt`) and the run must have
//! succeeded. Locally on a pipeline with a fan-out, a fan-in and a step that fails once and is retried,
//! with a half-written lease (an empty `lease/<n+1>.json`, as a crash of an older version left it)
//! dropped between two rounds; on Slurm through the `SORTIE_FAULT` windows (after the intent, after
//! sbatch and before the job id). A lease file left empty or garbage never locks a run out: after the
//! lease timeout `resume` and `cancel` take the run over and say which file they ignored.
//!
//! Every resume is made, at random, from this host or from a second login node ("hostb", through
//! `SORTIE_HOST`), which cannot see this host's processes: it follows the steps still running through
//! their heartbeat files and must not start any of them again.

mod common;

use common::{Out, Project, alive, cluster, run_with_deadline, step_of, wait_for};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Short, so that a half-written lease expires within a round; the holders here are all on this host,
/// where the process table (not the heartbeat) says whether an engine lives.
const LEASE_TIMEOUT: &str = "2";

const LOCAL_PIPELINE: &str = r#"[pipeline]
name = "chaos"

[defaults]
retry_backoff = "0.2s"

[[step]]
name = "prep"
run = 'echo "$SORTIE_STEP $SORTIE_ATTEMPT" >> marks.txt; sleep 1'

[[step]]
name = "train"
needs = ["prep"]
matrix = { x = [1, 2, 3] }
run = 'echo "$SORTIE_STEP $SORTIE_ATTEMPT" >> marks.txt; sleep 1.{{x}}'

[[step]]
name = "flaky"
needs = ["prep"]
retries = 2
run = '''
echo "$SORTIE_STEP $SORTIE_ATTEMPT" >> marks.txt
sleep 0.8
test "$SORTIE_ATTEMPT" -gt 1
'''

[[step]]
name = "merge"
needs = ["train", "flaky"]
run = 'echo "$SORTIE_STEP $SORTIE_ATTEMPT" >> marks.txt; sleep 1'

[[step]]
name = "report"
needs = ["merge"]
run = 'echo "$SORTIE_STEP $SORTIE_ATTEMPT" >> marks.txt'
"#;

/// The seed of this test process: `SORTIE_CHAOS_SEED`, else the clock. Printed so a failure replays.
fn seed() -> u64 {
    let seed = std::env::var("SORTIE_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        });
    println!("chaos seed: {seed} (replay with SORTIE_CHAOS_SEED={seed})");
    seed
}

/// The highest lease generation of a run (0 when none was taken).
fn last_generation(run_dir: &Path) -> u64 {
    std::fs::read_dir(run_dir.join("lease"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_suffix(".json")?
                        .parse::<u64>()
                        .ok()
                })
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// The pid in a run's newest lease file, if it can be read.
fn lease_pid(run_dir: &Path) -> Option<u32> {
    let generation = last_generation(run_dir);
    let b = std::fs::read(run_dir.join("lease").join(format!("{generation}.json"))).ok()?;
    let v: Value = serde_json::from_slice(&b).ok()?;
    v["pid"].as_u64().map(|p| p as u32)
}

/// Leaves an empty next-generation lease file, as a crash between creating and writing it did.
fn half_written_lease(run_dir: &Path) -> PathBuf {
    let path = run_dir
        .join("lease")
        .join(format!("{}.json", last_generation(run_dir) + 1));
    std::fs::write(&path, b"").unwrap();
    path
}

/// Waits until a lease file is older than the lease timeout (its mtime is all that is known of it).
fn wait_lease_expired(path: &Path) {
    let timeout = Duration::from_secs_f64(LEASE_TIMEOUT.parse().unwrap());
    wait_for(Duration::from_secs(30), "the lease file to age", || {
        let age = std::fs::metadata(path)
            .ok()?
            .modified()
            .ok()?
            .elapsed()
            .ok()?;
        (age > timeout + Duration::from_millis(200)).then_some(())
    });
}

/// `sortie resume RUN` as if on host `host` (`SORTIE_HOST`), started, not waited for.
fn resume_as_host(p: &Project, run: &str, host: Option<&str>, env: &[(&str, &str)]) -> Child {
    let mut c = p.cmd(&["resume", run]);
    if let Some(h) = host {
        c.env("SORTIE_HOST", h);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sortie resume")
}

/// Kills `child` (an engine this test started) with SIGKILL once it holds `run`'s lease and a random
/// moment more has passed; returns false when it finished by itself first.
fn kill_at_random(child: &mut Child, run_dir: &Path, rng: &mut fastrand::Rng, max_ms: u64) -> bool {
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    while lease_pid(run_dir) != Some(pid) {
        if child.try_wait().expect("wait").is_some() {
            return false;
        }
        assert!(Instant::now() < deadline, "the engine never took the lease");
        std::thread::sleep(Duration::from_millis(10));
    }
    let until = Instant::now() + Duration::from_millis(rng.u64(0..=max_ms));
    while Instant::now() < until {
        if child.try_wait().expect("wait").is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    common::kill_pid(pid);
    let status = child.wait().expect("wait");
    // It may have finished in the last few milliseconds.
    status.code().is_none()
}

/// Every line of marks.txt (`STEP ATTEMPT`), sorted.
fn marks(p: &Project) -> Vec<String> {
    let mut v = p.lines("marks.txt");
    v.sort();
    v
}

/// Three runs, each killed until it is done (some ten times), the half-written lease in a different
/// round of each: every run succeeds, every step runs exactly once, the retried one twice (attempts 1
/// and 2, each once). A kill between the local executor's spawn and the `attempt_started` event used to
/// start an attempt twice; the step's shell now waits for the engine to log it.
#[test]
fn local_run_killed_at_random_points_and_resumed_runs_every_step_once() {
    let mut rng = fastrand::Rng::with_seed(seed());
    for iteration in 0..3 {
        println!("run {iteration}");
        chaos_round(&mut rng, iteration + 1);
    }
}

/// One run under chaos: killed at random points and resumed until it finishes; an empty lease is left
/// after the kill of round `half_written_at`. An attempt that ran twice fails the test.
fn chaos_round(rng: &mut fastrand::Rng, half_written_at: usize) {
    let p = Project::with_pipeline(LOCAL_PIPELINE).env("SORTIE_LEASE_TIMEOUT", LEASE_TIMEOUT);
    // Round 0 is the run itself, killed (like every later engine) only once it holds the lease.
    let mut child = p
        .cmd(&["run"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let run = wait_for(Duration::from_secs(30), "the run directory", || {
        p.run_ids().first().cloned()
    });
    let run_dir = p.run_dir(&run);
    let mut kills = 0;
    let mut half_written = None;
    let mut host: Option<&str> = None;
    for round in 0..15 {
        if !kill_at_random(&mut child, &run_dir, rng, 700) {
            break;
        }
        kills += 1;
        println!("round {round}: engine killed");
        if round == half_written_at {
            let lease = half_written_lease(&run_dir);
            println!("round {round}: left {} empty", lease.display());
            wait_lease_expired(&lease);
            half_written = Some(lease);
        }
        let next = if rng.bool() { Some("hostb") } else { None };
        if next != host {
            // Another host cannot see the killed engine's pid: it waits for the lease to age out.
            let lease = run_dir
                .join("lease")
                .join(format!("{}.json", last_generation(&run_dir)));
            wait_lease_expired(&lease);
        }
        host = next;
        println!("round {round}: resumed on {}", host.unwrap_or("this host"));
        child = resume_as_host(&p, &run, host, &[("SORTIE_HEARTBEAT_GRACE", "5")]);
    }
    // The last engine drives the run to its end.
    let limit = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < limit, "the last engine did not finish");
        std::thread::sleep(Duration::from_millis(50));
    };
    println!("{kills} kills; the last engine exited with {status}");
    // Its run may already have been finished by the one before: resume then says so, with exit 0.
    let st = p.wait_finished(&run, Duration::from_secs(60));
    assert_eq!(st["state"], "succeeded", "{st:#}");
    // Each step ran once (flaky twice: it fails its first run), and no attempt number ran twice. An
    // attempt whose engine died before logging it never ran (its shell waited for the word), so a
    // step's one run may carry a later number.
    let got = marks(&p);
    let mut runs: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for m in &got {
        let (step, attempt) = m.rsplit_once(' ').unwrap();
        runs.entry(step).or_default().push(attempt);
    }
    let want_runs = [
        ("flaky", 2),
        ("merge", 1),
        ("prep", 1),
        ("report", 1),
        ("train[x=1]", 1),
        ("train[x=2]", 1),
        ("train[x=3]", 1),
    ];
    let ok = runs.len() == want_runs.len()
        && want_runs.iter().all(|(step, n)| {
            runs.get(step).is_some_and(|a| {
                let mut d = a.clone();
                d.dedup();
                a.len() == *n && d.len() == a.len()
            })
        });
    if !ok {
        let log: Vec<String> = p.events(&run).iter().map(|e| e.to_string()).collect();
        panic!(
            "a step ran twice or not at all: {got:?}, expected runs {want_runs:?}; the event log:\n{}",
            log.join("\n")
        );
    }
    assert!(
        step_of(&st, "flaky")["attempts"].as_u64() >= Some(2),
        "{st:#}"
    );
    if let Some(lease) = half_written {
        assert!(
            last_generation(&run_dir) > lease_generation(&lease),
            "no engine took over after the half-written lease"
        );
    }
}

fn lease_generation(path: &Path) -> u64 {
    path.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A run whose engine was killed: its steps (`run`) go on, nobody drives it.
fn orphaned_run(p: &Project) -> (String, PathBuf) {
    let run = p.run_detached(&[]);
    let run_dir = p.run_dir(&run);
    let pid = wait_for(Duration::from_secs(30), "the engine's lease", || {
        lease_pid(&run_dir)
    });
    p.wait_step(&run, "work", "running", Duration::from_secs(30));
    common::kill_pid(pid);
    wait_for(Duration::from_secs(10), "the engine to die", || {
        (!alive(pid)).then_some(())
    });
    (run, run_dir)
}

#[test]
fn an_empty_or_garbage_lease_does_not_lock_resume_or_cancel_out() {
    for (body, command) in [
        (&b""[..], "resume"),
        (&b""[..], "cancel"),
        (&b"{\"generation\": 2, \"host\": \"x"[..], "resume"),
        (&b"\x00\x01 not json"[..], "cancel"),
    ] {
        let sleep = if command == "cancel" { "30" } else { "1" };
        let p = Project::with_pipeline(&format!(
            "[pipeline]\nname = \"lease\"\n\n[[step]]\nname = \"work\"\nrun = \"sleep {sleep}\"\n"
        ))
        .env("SORTIE_LEASE_TIMEOUT", LEASE_TIMEOUT)
        .env("SORTIE_KILL_GRACE", "1");
        let (run, run_dir) = orphaned_run(&p);
        let lease = half_written_lease(&run_dir);
        std::fs::write(&lease, body).unwrap();
        // While fresh it may be an engine of an older version still writing it: resume refuses.
        // (cancel would wait for that engine's answer until the lease expires, then take over.)
        if command == "resume" {
            p.sortie(&[command, &run]).expect_code(2);
        }
        wait_lease_expired(&lease);
        let out = p.sortie(&[command, &run]);
        let what = format!("{command} with {body:?} in {}", lease.display());
        out.expect_code(0);
        let name = lease.display().to_string();
        assert!(
            out.stderr.contains(&name) && out.stderr.contains("unreadable"),
            "{what}: the warning does not name the file:\n{}",
            out.stderr
        );
        assert_eq!(
            out.stderr.matches("unreadable").count(),
            1,
            "{what}: warned more than once:\n{}",
            out.stderr
        );
        let st = p.wait_finished(&run, Duration::from_secs(60));
        let want = if command == "cancel" {
            "cancelled"
        } else {
            "succeeded"
        };
        assert_eq!(st["state"], want, "{what}: {st:#}");
        assert!(
            last_generation(&run_dir) > lease_generation(&lease),
            "{what}"
        );
    }
}

// ---- Slurm ----

/// `sortie ARGS` for the Slurm rounds: no fault or backend settings from the outside.
fn slurm_cmd(p: &Project, args: &[&str], fault: Option<&str>) -> Command {
    let mut c = p.cmd(args);
    c.env_remove("SORTIE_SLURM_BACKEND")
        .env_remove("SLURM_REST_URL")
        .env_remove("SORTIE_FAULT")
        .env_remove("SLURM_TIME_FORMAT");
    if let Some(f) = fault {
        c.env("SORTIE_FAULT", f);
    }
    c
}

/// Cancels the jobs of a run still in the queue (named `{group}.{seq}.{run}`) when the test ends.
struct Jobs(String);

impl Drop for Jobs {
    fn drop(&mut self) {
        let Ok(out) = Command::new("squeue").args(["-h", "-o", "%i %j"]).output() else {
            return;
        };
        let suffix = format!(".{}", self.0);
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(_, name)| name.ends_with(&suffix))
            .map(|(id, _)| id.to_string())
            .collect();
        if !ids.is_empty() {
            let _ = Command::new("scancel").args(&ids).output();
        }
    }
}

const SLURM_PIPELINE: &str = r#"[pipeline]
name = "chaos-slurm"

[defaults]
resources = { cpus = 1, mem = "64M", time = "2m" }

[[step]]
name = "a"
run = 'echo "$SORTIE_STEP $SORTIE_ATTEMPT" >> marks.txt; sleep 1'

[[step]]
name = "b"
needs = ["a"]
matrix = { x = [1, 2] }
run = 'echo "$SORTIE_STEP $SORTIE_ATTEMPT" >> marks.txt'

[[step]]
name = "c"
needs = ["b"]
run = 'echo "$SORTIE_STEP $SORTIE_ATTEMPT" >> marks.txt'
"#;

#[test]
fn slurm_run_killed_in_each_submission_window_and_resumed_submits_each_step_once() {
    if !cluster() {
        return;
    }
    let mut rng = fastrand::Rng::with_seed(seed());
    let p = Project::with_pipeline(SLURM_PIPELINE).env("SORTIE_LEASE_TIMEOUT", LEASE_TIMEOUT);
    // One window per submission, in the order they go out (a, then the array b, then c), each picked
    // by the seed: after the intent (sbatch never ran) or after sbatch (the job id never recorded).
    let faults: Vec<String> = ["a", "b[x=1]", "c"]
        .iter()
        .map(|step| {
            let window = if rng.bool() {
                "after_intent"
            } else {
                "after_sbatch"
            };
            format!("{window}:{step}")
        })
        .collect();
    let limit = Duration::from_secs(600);
    let first = run_with_deadline(
        slurm_cmd(&p, &["run", "--executor", "slurm"], Some(&faults[0])),
        limit,
    );
    let run = p.only_run();
    let _jobs = Jobs(run.clone());
    let mut last: Out = first;
    for (round, fault) in faults.iter().enumerate() {
        if round > 0 {
            last = run_with_deadline(slurm_cmd(&p, &["resume", &run], Some(fault)), limit);
        }
        println!("round {round}: {fault}: exit {:?}", last.code);
        // Every window is reached: dependents are submitted at once, before their parents end.
        assert_eq!(
            last.code, None,
            "SORTIE_FAULT={fault} did not kill the engine\n{}",
            last.stderr
        );
    }
    // Then a resume without a fault finishes the run.
    let out = run_with_deadline(slurm_cmd(&p, &["resume", &run], None), limit);
    assert_ne!(
        out.code, None,
        "the clean resume was killed: {}",
        out.stderr
    );
    let st = p.wait_finished(&run, Duration::from_secs(120));
    assert_eq!(st["state"], "succeeded", "{st:#}");
    for name in ["a", "b[x=1]", "b[x=2]", "c"] {
        assert_eq!(step_of(&st, name)["attempts"], 1, "{name}: {st:#}");
    }
    let mut want = vec!["a 1", "b[x=1] 1", "b[x=2] 1", "c 1"];
    want.sort();
    assert_eq!(marks(&p), want, "a step ran twice or not at all; {st:#}");
    // One job per step in accounting (the array's elements one row each), none submitted twice.
    let jobs = wait_for(Duration::from_secs(60), "4 jobs in sacct", || {
        let n = sacct_jobs(&run);
        (n.len() >= 4).then_some(n)
    });
    assert_eq!(jobs.len(), 4, "{jobs:#?}");
}

/// `JobID JobName` of the run's jobs in accounting (`sacct -X`, the last hour).
fn sacct_jobs(run: &str) -> Vec<String> {
    let out = Command::new("sacct")
        .args(["-X", "-n", "-P", "-S", "now-3600", "-o", "JobID,JobName"])
        .env_remove("SLURM_TIME_FORMAT")
        .output()
        .expect("sacct");
    let suffix = format!(".{run}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.ends_with(&suffix))
        .map(str::to_string)
        .collect()
}
