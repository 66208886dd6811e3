//! The Slurm job commands and the poller against a live cluster (tests/cluster/start.sh): `sortie
//! jobs --json` before and after a job ends, `sortie job ID`, `hold`/`release`/`requeue`/`job-cancel`
//! confirmed by squeue and sacct, `sortie cluster --json`, the REST backend against the CLI one, and
//! the poller's budget over a minute of real polling.
//!
//! Without a cluster each test prints `skipping: ...` and passes; `SORTIE_REQUIRE_SLURM=1` makes
//! that a failure. Jobs get unique names (`sortie-lt-<pid>-<test>`) and are cancelled at the end,
//! so the tests run in parallel, beside other users of the cluster.

mod common;

use common::{SLURM_ENV_FILE, cluster, env_file, poll_until, required};
use serde_json::Value;
use sortie::slurm::poller::{Poller, PollerConfig};
use sortie::slurm::{
    CliBackend, CliConfig, HistoryQuery, Job, JobQuery, JobState, JsonPolicy, Partition,
    SlurmBackend, SlurmError,
};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sortie");

fn name(test: &str) -> String {
    format!("sortie-lt-{}-{test}", std::process::id())
}

/// `sbatch --parsable` with a small footprint; returns the id.
fn sbatch(name: &str, extra: &[&str], wrap: &str) -> String {
    let mut cmd = Command::new("sbatch");
    cmd.args(["--parsable", "-J", name, "-t", "2", "--mem=64M", "-c", "1"])
        .args(extra)
        .args(["--wrap", wrap]);
    let out = cmd.output().expect("sbatch");
    assert!(
        out.status.success(),
        "sbatch: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().split(';').next().unwrap().to_string()
}

/// Cancels the test's jobs however the test ends.
struct Jobs(Vec<String>);

impl Drop for Jobs {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            let _ = Command::new("scancel").args(&self.0).output();
        }
    }
}

fn sortie(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("SORTIE_SLURM_BACKEND")
        .env_remove("SLURM_REST_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running sortie")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok_json(args: &[&str], env: &[(&str, &str)]) -> Value {
    let out = sortie(args, env);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "sortie {args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("sortie {args:?}: {e}: {stdout}"))
}

fn find<'a>(list: &'a Value, id: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|j| j["id"] == id)
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().expect(program);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (state, reason) as squeue prints them, if the controller still knows the job.
fn squeue(id: &str) -> Option<(String, String)> {
    let out = run("squeue", &["-h", "--states=all", "-j", id, "-o", "%T|%r"]);
    let line = out.lines().next()?.trim().to_string();
    let (state, reason) = line.split_once('|')?;
    Some((state.to_string(), reason.to_string()))
}

/// Every attempt's state in accounting (`sacct -D`), oldest first.
fn sacct_states(id: &str) -> Vec<String> {
    run("sacct", &["-n", "-X", "-D", "-P", "-j", id, "-o", "State"])
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

fn whoami() -> String {
    run("id", &["-un"]).trim().to_string()
}

#[test]
fn jobs_json_lists_a_queued_job_and_then_its_history() {
    if !cluster() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let name = name("jobs");
    let out = format!("{}/%x-%j.out", dir.path().display());
    // Pending for a few seconds for sure (BeginTime), then a moment of real CPU work.
    let burn = "timeout 2 sh -c 'while :; do :; done'";
    let ok = sbatch(
        &name,
        &["--begin=now+4", "-o", &out],
        &format!("{burn}; echo done"),
    );
    let bad = sbatch(&name, &["--begin=now+4", "-o", &out], "exit 3");
    let _cleanup = Jobs(vec![ok.clone(), bad.clone()]);

    let list = ok_json(&["jobs", "--json"], &[]);
    let job = find(&list, &ok).unwrap_or_else(|| panic!("job {ok} not listed"));
    assert_eq!(job["name"], name.as_str());
    assert_eq!(job["user"], whoami().as_str());
    assert_eq!(job["partition"], "debug");
    assert!(
        ["PENDING", "RUNNING", "COMPLETING"].contains(&job["state"].as_str().unwrap()),
        "{job}"
    );
    if job["state"] == "PENDING" {
        assert_eq!(job["state_code"], "PD");
        assert_eq!(job["state_class"], "queued");
        // BeginTime until the start time passes; then Resources or Priority while the shared node is busy.
        assert!(
            ["BeginTime", "Resources", "Priority"].contains(&job["reason"].as_str().unwrap_or("")),
            "{job}"
        );
    }
    assert_eq!(job["time_limit_s"], 120);
    assert_eq!(job["cpus"], 1);
    assert_eq!(job["mem_mb"], 64);
    assert_eq!(
        job["stdout"],
        format!("{}/{name}-{ok}.out", dir.path().display()).as_str()
    );
    assert!(job["exit_code"].is_null(), "{job}");

    poll_until(
        "both jobs to end",
        Duration::from_secs(150),
        Duration::from_secs(2),
        || {
            let ended = [&ok, &bad].iter().all(|id| {
                squeue(id).is_none_or(|(s, _)| ["COMPLETED", "FAILED"].contains(&s.as_str()))
            });
            ended.then_some(())
        },
    );
    // Accounting lags the controller by a moment.
    let (good, failed) = poll_until(
        "the jobs in accounting",
        Duration::from_secs(60),
        Duration::from_secs(3),
        || {
            let list = ok_json(&["jobs", "--json"], &[]);
            let good = find(&list, &ok)?.clone();
            let failed = find(&list, &bad)?.clone();
            (good["cpu_efficiency"].is_number() && failed["exit_code"].is_number())
                .then_some((good, failed))
        },
    );
    assert_eq!(good["state"], "COMPLETED", "{good}");
    assert_eq!(good["exit_code"], 0, "{good}");
    assert!(good["elapsed_s"].as_u64().unwrap() >= 1, "{good}");
    assert!(good["total_cpu_s"].is_number(), "{good}");
    let eff = good["cpu_efficiency"].as_f64().unwrap();
    assert!((0.0..=2.0).contains(&eff), "{good}");
    assert_eq!(failed["state"], "FAILED", "{failed}");
    assert_eq!(failed["exit_code"], 3, "{failed}");
    let written = std::fs::read_to_string(good["stdout"].as_str().unwrap()).unwrap();
    assert_eq!(written.trim(), "done");

    // The table shows both, with their outcome.
    let out = sortie(&["jobs"], &[]);
    let (table, _) = text(&out);
    assert!(table.starts_with("JOBID"), "{table}");
    let row = table.lines().find(|l| l.starts_with(&bad)).unwrap();
    assert!(row.contains("F") && row.contains("exit 3"), "{row}");
}

#[test]
fn job_details_show_the_expanded_output_paths() {
    if !cluster() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let name = name("details");
    let out = format!("{}/log-%x-%j.txt", dir.path().display());
    let id = sbatch(&name, &["--begin=now+120", "-o", &out], "true");
    let _cleanup = Jobs(vec![id.clone()]);
    let want = format!("{}/log-{name}-{id}.txt", dir.path().display());

    let shown = sortie(&["job", &id], &[]);
    let (stdout, stderr) = text(&shown);
    assert_eq!(shown.status.code(), Some(0), "{stderr}");
    assert!(stdout.starts_with(&format!("job {id}  {name}")), "{stdout}");
    assert!(stdout.contains(&format!("stdout     {want}")), "{stdout}");
    assert!(stdout.contains("PENDING"), "{stdout}");

    let details = ok_json(&["job", &id, "--json"], &[]);
    let d = &details[0];
    assert_eq!(d["id"], id.as_str());
    assert_eq!(d["stdout"], want.as_str());
    assert_eq!(d["stderr"], want.as_str());
    assert_eq!(d["source"], "queue");
    assert_eq!(d["fields"]["JobName"], name.as_str());

    // Unknown and malformed ids: exit 2, one line naming the id.
    for bad in ["999999999", "12x"] {
        let out = sortie(&["job", bad], &[]);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(&format!("job {bad}")), "{stderr}");
    }
}

#[test]
fn hold_release_requeue_and_cancel_change_states() {
    if !cluster() {
        return;
    }
    let name = name("actions");
    let queued = sbatch(&name, &["--begin=now+300", "-o", "/dev/null"], "true");
    let quick = sbatch(&name, &["-o", "/dev/null"], "true");
    let _cleanup = Jobs(vec![queued.clone(), quick.clone()]);

    let out = sortie(&["hold", &queued], &[]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert_eq!(text(&out).0.trim(), format!("held job {queued}"));
    let (state, reason) = squeue(&queued).unwrap();
    assert_eq!(state, "PENDING");
    assert!(reason.starts_with("JobHeld"), "{reason}");

    let out = sortie(&["release", &queued], &[]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let (state, reason) = squeue(&queued).unwrap();
    assert_eq!(state, "PENDING");
    assert!(!reason.starts_with("JobHeld"), "{reason}");

    // Requeue works on a job that ran: wait for the quick one to finish.
    poll_until(
        "the quick job to complete",
        Duration::from_secs(120),
        Duration::from_secs(2),
        || squeue(&quick).filter(|(s, _)| s == "COMPLETED"),
    );
    let out = sortie(&["requeue", &quick], &[]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert_eq!(text(&out).0.trim(), format!("requeued job {quick}"));
    assert_eq!(squeue(&quick).unwrap().0, "PENDING");
    poll_until(
        "the requeue in accounting",
        Duration::from_secs(30),
        Duration::from_secs(1),
        || {
            sacct_states(&quick)
                .contains(&"REQUEUED".to_string())
                .then_some(())
        },
    );

    // A requeued job is pending (cred_expire): cancel both in one go.
    let out = sortie(&["job-cancel", &queued, &quick], &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!("cancelled job {queued} (was PENDING)")),
        "{stdout}"
    );
    for id in [&queued, &quick] {
        poll_until(
            "the cancel in squeue and sacct",
            Duration::from_secs(30),
            Duration::from_secs(1),
            || {
                let q = squeue(id).is_some_and(|(s, _)| s == "CANCELLED");
                let a = sacct_states(id).last().is_some_and(|s| s == "CANCELLED");
                (q && a).then_some(())
            },
        );
    }
    // Cancelling again says so, and succeeds; unknown ids fail with exit 2, one line each.
    let out = sortie(&["job-cancel", &queued], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out).0.contains("already ended (CANCELLED)"));
    for action in ["job-cancel", "hold", "release", "requeue"] {
        let out = sortie(&[action, "999999999"], &[]);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{action}: {stderr}");
        assert_eq!(
            stderr.trim(),
            "sortie: job 999999999: Invalid job id specified",
            "{action}"
        );
    }
    // A refused action names the job and Slurm's reason.
    let out = sortie(&["requeue", &queued], &[]);
    let (_, stderr) = text(&out);
    if out.status.code() != Some(0) {
        assert_eq!(out.status.code(), Some(2));
        assert!(
            stderr.starts_with(&format!("sortie: job {queued}: ")),
            "{stderr}"
        );
    }
}

#[test]
fn cluster_json_shows_the_debug_partition() {
    if !cluster() {
        return;
    }
    let parts = ok_json(&["cluster", "--json"], &[]);
    let debug = parts
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "debug")
        .unwrap_or_else(|| panic!("{parts}"));
    assert_eq!(debug["state"], "up");
    assert_eq!(debug["default"], true);
    assert!(debug["nodes_total"].as_u64().unwrap() >= 1);
    assert!(debug["cpus_total"].as_u64().unwrap() >= 1);
    assert!(debug["cpus_idle"].as_u64().unwrap() <= debug["cpus_total"].as_u64().unwrap());
    let table = text(&sortie(&["cluster"], &[])).0;
    assert!(table.lines().any(|l| l.starts_with("debug*")), "{table}");
}

#[test]
fn rest_backend_returns_the_same_jobs_as_the_cli() {
    if !cluster() {
        return;
    }
    let Some(env) = env_file() else {
        assert!(
            !required(),
            "SORTIE_REQUIRE_SLURM=1 but {SLURM_ENV_FILE} is missing"
        );
        println!("skipping the REST comparison: no {SLURM_ENV_FILE}");
        return;
    };
    let url = env
        .iter()
        .find(|(k, _)| k == "SLURM_REST_URL")
        .map(|(_, v)| v.clone())
        .expect("SLURM_REST_URL in the env file");
    let name = name("rest");
    let ids = vec![
        sbatch(&name, &["--begin=now+120", "-o", "/dev/null"], "true"),
        sbatch(&name, &["--begin=now+120", "-o", "/dev/null"], "true"),
    ];
    let _cleanup = Jobs(ids.clone());
    let mine = |list: &Value| -> Vec<String> {
        let mut v: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["name"] == name.as_str())
            .map(|j| j["id"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let cli = ok_json(&["jobs", "--json"], &[]);
    let rest = ok_json(
        &["jobs", "--json"],
        &[("SORTIE_SLURM_BACKEND", "rest"), ("SLURM_REST_URL", &url)],
    );
    let mut want = ids.clone();
    want.sort();
    assert_eq!(mine(&cli), want);
    assert_eq!(mine(&rest), want);
    let rest_job = find(&rest, &ids[0]).unwrap();
    let cli_job = find(&cli, &ids[0]).unwrap();
    for field in ["name", "user", "partition", "state", "time_limit_s", "cpus"] {
        assert_eq!(rest_job[field], cli_job[field], "{field}");
    }
    // --rest says the same as the variable.
    let flag = ok_json(
        &["cluster", "--json", "--rest"],
        &[("SLURM_REST_URL", &url)],
    );
    assert!(
        flag.as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "debug")
    );
}

/// Delegates to the CLI backend and records when each call ran and what it cost.
struct Recording {
    inner: CliBackend,
    calls: Mutex<Vec<(Instant, u64)>>,
}

impl Recording {
    fn record<T>(&self, f: impl FnOnce(&CliBackend) -> T) -> T {
        let at = Instant::now();
        let before = self.inner.rpc_count();
        let out = f(&self.inner);
        let cost = self.inner.rpc_count() - before;
        self.calls.lock().unwrap().push((at, cost));
        out
    }
}

type R<T> = Result<T, SlurmError>;

impl SlurmBackend for Recording {
    fn jobs(&self, q: &JobQuery) -> R<Vec<Job>> {
        self.record(|b| b.jobs(q))
    }
    fn history(&self, q: &HistoryQuery) -> R<Vec<Job>> {
        self.record(|b| b.history(q))
    }
    fn submit(&self, s: &Path, a: &[String]) -> R<String> {
        self.record(|b| b.submit(s, a))
    }
    fn cancel(&self, ids: &[String]) -> R<()> {
        self.record(|b| b.cancel(ids))
    }
    fn signal(&self, id: &str, s: i32) -> R<()> {
        self.record(|b| b.signal(id, s))
    }
    fn hold(&self, ids: &[String]) -> R<()> {
        self.record(|b| b.hold(ids))
    }
    fn release(&self, ids: &[String]) -> R<()> {
        self.record(|b| b.release(ids))
    }
    fn requeue(&self, ids: &[String]) -> R<()> {
        self.record(|b| b.requeue(ids))
    }
    fn update_time_limit(&self, id: &str, l: Option<Duration>) -> R<()> {
        self.record(|b| b.update_time_limit(id, l))
    }
    fn job_details(&self, id: &str) -> R<Vec<sortie::slurm::JobDetails>> {
        self.record(|b| b.job_details(id))
    }
    fn partitions(&self) -> R<Vec<Partition>> {
        self.record(|b| b.partitions())
    }
    fn start_estimate(&self, id: &str) -> R<Option<i64>> {
        self.record(|b| b.start_estimate(id))
    }
    fn rpc_count(&self) -> u64 {
        self.inner.rpc_count()
    }
}

#[test]
fn the_poller_keeps_its_budget_and_sees_a_job_complete() {
    if !cluster() {
        return;
    }
    let backend = Arc::new(Recording {
        inner: CliBackend::new(CliConfig {
            json: JsonPolicy::Never,
            ..CliConfig::default()
        }),
        calls: Mutex::new(Vec::new()),
    });
    let budget = 6;
    let handle = Poller::spawn(
        backend.clone(),
        PollerConfig {
            user: Some(whoami()),
            interval: Duration::from_secs(2),
            step: Duration::from_secs(2),
            fast_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(20),
            budget_per_min: budget,
            ..PollerConfig::default()
        },
    );
    let rx = handle.subscribe();
    let started = Instant::now();
    let name = name("poller");
    let id = sbatch(&name, &["-o", "/dev/null"], "sleep 3");
    let _cleanup = Jobs(vec![id.clone()]);
    handle.register([id.clone()]);
    // A cycle may run between sbatch and register (or be under way): only snapshots of cycles that
    // started after it must know the job is ours.
    let cycles_at_register = handle.snapshot().cycles;
    handle.poke();

    let mut seen_active = false;
    let mut completed: Option<Job> = None;
    let deadline = started + Duration::from_secs(150);
    while Instant::now() < deadline
        && (completed.is_none() || started.elapsed() < Duration::from_secs(60))
    {
        let Ok(snap) = rx.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        assert!(
            snap.rpc_per_min <= f64::from(budget),
            "snapshot says {} commands in the last minute",
            snap.rpc_per_min
        );
        if let Some(job) = snap.job(&id) {
            if snap.cycles >= cycles_at_register + 2 {
                assert!(
                    snap.registered.contains(&id),
                    "registered job missing from `registered`"
                );
            }
            if job.is_active() && completed.is_none() {
                seen_active = true;
            }
            if job.state == JobState::Completed && job.exit_code == Some(0) {
                completed.get_or_insert(job.clone());
            }
        }
    }
    handle.stop();
    let calls = backend.calls.lock().unwrap().clone();
    let total: u64 = calls.iter().map(|(_, c)| c).sum();
    assert_eq!(total, backend.rpc_count(), "every command is charged");
    for (t, _) in &calls {
        let in_window: u64 = calls
            .iter()
            .filter(|(u, _)| *u >= *t && u.duration_since(*t) < Duration::from_secs(60))
            .map(|(_, c)| c)
            .sum();
        assert!(
            in_window <= u64::from(budget),
            "{in_window} commands within a minute: {calls:?}"
        );
    }
    println!(
        "poller: {} commands in {:.0}s",
        total,
        started.elapsed().as_secs_f64()
    );
    assert!(
        seen_active,
        "the poller never saw job {id} queued or running"
    );
    let job = completed.unwrap_or_else(|| panic!("the poller never saw job {id} complete"));
    assert_eq!(job.name, name);
    assert!(job.elapsed_s.is_some_and(|e| e >= 2), "{job:?}");
}

#[test]
fn without_slurm_on_path_the_commands_say_so_in_one_line_and_exit_3() {
    let empty = tempfile::tempdir().unwrap();
    let path = empty.path().to_str().unwrap();
    for args in [
        &["jobs"][..],
        &["jobs", "--json"],
        &["job", "123"],
        &["hold", "123"],
        &["job-cancel", "123"],
        &["cluster"],
    ] {
        let out = sortie(args, &[("PATH", path)]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert_eq!(
            stderr, "sortie: no SLURM found on this host (squeue is not on PATH)\n",
            "{args:?}"
        );
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
    }
}

/// The pid in a JSON file (a lease or a want file), if it reads.
fn pid_in(path: &Path) -> Option<u32> {
    let v: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    v["pid"].as_u64().map(|p| p as u32)
}

#[test]
fn killing_the_process_that_polls_loses_nothing() {
    if !cluster() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let view = state.path().join("slurm").join(format!(
        "{}-{}",
        sortie::util::host(),
        sortie::util::user()
    ));
    let watch = |out: &Path| {
        Command::new(BIN)
            .args(["jobs", "--watch", "--for", "170s"])
            .env("SORTIE_STATE_DIR", state.path())
            .env_remove("SORTIE_SLURM_BACKEND")
            .env_remove("SORTIE_SLURM_VIEW")
            .stdout(std::fs::File::create(out).unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("sortie jobs --watch")
    };
    let mut a = watch(&state.path().join("a.out"));
    let lease = |g: u32| view.join(format!("lease/{g}.json"));
    poll_until(
        "the first watcher to poll",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || (pid_in(&lease(1)) == Some(a.id())).then_some(()),
    );
    let b_out = state.path().join("b.out");
    let mut b = watch(&b_out);
    poll_until(
        "the second watcher to join",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || {
            let n = std::fs::read_dir(view.join("want")).ok()?.count();
            (n == 2).then_some(())
        },
    );
    let name = name("view");
    let id = sbatch(&name, &["-o", "/dev/null"], "sleep 8");
    let _cleanup = Jobs(vec![id.clone()]);
    let snapshot_job = || -> Option<Value> {
        let snap: Value =
            serde_json::from_slice(&std::fs::read(view.join("snapshot.json")).ok()?).ok()?;
        snap["jobs"]
            .as_array()?
            .iter()
            .find(|j| j["id"] == id.as_str())
            .cloned()
    };
    // The first watcher's poll (10 s apart at most, it saw nothing change) lists the job.
    poll_until(
        "the owner to list the job",
        Duration::from_secs(40),
        Duration::from_millis(200),
        snapshot_job,
    );
    let _ = a.kill();
    let _ = a.wait();
    let killed = Instant::now();
    poll_until(
        "the second watcher to take over",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || (pid_in(&lease(2)) == Some(b.id())).then_some(()),
    );
    let took = killed.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "took over after {took:?}: more than two poll intervals"
    );
    // The job's end is not lost: the new owner polls, sees it leave, and accounting tells how.
    let done = poll_until(
        "the job's end in the view",
        Duration::from_secs(90),
        Duration::from_millis(200),
        || snapshot_job().filter(|j| j["state"] == "Completed"),
    );
    assert_eq!(done["exit_code"], 0, "{done}");
    poll_until(
        "the job's end on the second watcher's screen",
        Duration::from_secs(10),
        Duration::from_millis(200),
        || {
            let out = std::fs::read_to_string(&b_out).ok()?;
            out.lines()
                .any(|l| l.starts_with(&format!("{id} ")) && l.contains("CD"))
                .then_some(())
        },
    );
    println!(
        "took over {:.1}s after the owner was killed",
        took.as_secs_f64()
    );
    let _ = b.kill();
    let _ = b.wait();
}
