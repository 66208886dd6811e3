//! The SLURM executor against a live cluster (tests/cluster/start.sh): a fan-out/fan-in pipeline whose
//! matrix becomes one job array, a retry after a failure (alone, and with a dependent queued behind
//! it), a failure that blocks its dependent, `SORTIE_NEEDS` of dependents submitted up front, memory
//! escalation after an OOM kill, a detached run that finishes on the cluster after every sortie
//! process is killed (status reads the truth, resume records it), resume after the engine died
//! between the intent and the job id (no duplicate submission), the controller stopped for 30 s
//! mid-run, the REST backend listing the same jobs of a run as the CLI one, `max_queued`, and
//! `rerun --downstream` resubmitting through Slurm.
//!
//! Without a cluster each test prints `skipping: ...` and passes; `SORTIE_REQUIRE_SLURM=1` makes that
//! a failure. Each test is a project in a temporary directory; a run's jobs are named
//! `{group}.{seq}.{run_id}`, so they are found (and cancelled when the test ends) by that suffix.
//! Jobs are tiny (1 CPU, 64 MB, 2 min) because the node is shared. The test that stops slurmctld
//! takes a process-wide write lock; every other test here takes it for reading.

mod common;

use common::{
    Out, Project, SLURM_ENV_FILE, alive, cluster, cmdline, env_file, kill_pid, poll_until,
    required, run_with_deadline, step_of,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sortie");
const START_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cluster/start.sh");
const CTLD_PID: &str = "/run/slurmctld.pid";

/// How long a whole foreground run (or a wait for jobs to start or end) may take: on a shared node the
/// jobs can sit PENDING behind other users' jobs for minutes.
const RUN_LIMIT: Duration = Duration::from_secs(600);

/// Every test reads; the one that stops slurmctld writes, so it runs alone within this binary.
static CLUSTER: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    CLUSTER.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    CLUSTER.write().unwrap_or_else(|e| e.into_inner())
}

fn env_value(key: &str) -> Option<String> {
    env_file()?
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// Real OOM kills (OUT_OF_MEMORY) happen only in cgroup mode; linuxproc mode kills with signal 9.
fn cgroup_mode() -> bool {
    env_value("SORTIE_SLURM_MODE").is_none_or(|m| m == "cgroup")
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .env_remove("SLURM_TIME_FORMAT")
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One accounting row (`sacct -X`) of a job of a run.
#[derive(Debug, Clone)]
struct Row {
    /// `JobID`: `123`, or `123_4` for an array element (`123_[0-2]` while the array is pending).
    id: String,
    /// The group (step) part of the job name `{group}.{seq}.{run_id}`.
    group: String,
    /// The whole job name.
    name: String,
    state: String,
    exit: String,
    req_mem: String,
    /// `Start`: `Unknown`/`None` for a job that never started.
    start: String,
}

impl Row {
    fn started(&self) -> bool {
        !["Unknown", "None", ""].contains(&self.start.as_str())
    }
}

/// A job id as a string, whether status prints it as a string or a number.
fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `123_4` → `("123", Some("4"))`.
fn split_array_id(id: &str) -> (&str, Option<&str>) {
    match id.split_once('_') {
        Some((a, b)) => (a, Some(b)),
        None => (id, None),
    }
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `100M`, `200`, `1G`, `2048K` → MB.
fn mem_mb(s: &str) -> Option<u64> {
    let s = s.trim().trim_end_matches(['n', 'c']);
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "M"),
    };
    let n: u64 = num.parse().ok()?;
    match unit.to_ascii_uppercase().as_str() {
        "K" => Some(n / 1024),
        "M" | "" => Some(n),
        "G" => Some(n * 1024),
        "T" => Some(n * 1024 * 1024),
        _ => None,
    }
}

/// The `--mem=` value of a batch script's `#SBATCH` lines, in MB.
fn script_mem_mb(script: &str) -> Option<u64> {
    script
        .lines()
        .filter(|l| l.trim_start().starts_with("#SBATCH"))
        .flat_map(|l| l.split_whitespace())
        .find_map(|w| w.strip_prefix("--mem="))
        .and_then(mem_mb)
}

/// A throw-away project whose pipeline is `p.toml`, run with `--executor slurm`. On drop it cancels
/// every job of its runs still in the queue and, when the test failed, prints what the runs left:
/// events.jsonl, the engine log and each attempt's job.sh/stderr.log/exit_code.
struct SlurmProject {
    p: Project,
    /// For `sacct -S`: accounting rows of this test's runs start after this.
    created: Instant,
}

impl SlurmProject {
    fn new(pipeline: &str) -> SlurmProject {
        let p = Project::new();
        p.write("p.toml", pipeline);
        SlurmProject {
            p,
            created: Instant::now(),
        }
    }

    /// `sortie ARGS` in the project, with no backend, fault or REST settings from the outside.
    fn cmd(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut c = self.p.cmd(args);
        c.env_remove("SORTIE_SLURM_BACKEND")
            .env_remove("SLURM_REST_URL")
            .env_remove("SORTIE_FAULT")
            .env_remove("SLURM_TIME_FORMAT");
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    fn sortie(&self, args: &[&str], env: &[(&str, &str)], limit: Duration) -> Out {
        run_with_deadline(self.cmd(args, env), limit)
    }

    /// `sortie run p.toml --executor slurm` in the foreground.
    fn run(&self, env: &[(&str, &str)]) -> Out {
        let out = self.sortie(&["run", "p.toml", "--executor", "slurm"], env, RUN_LIMIT);
        println!("sortie run took {:.1}s", out.elapsed.as_secs_f64());
        out
    }

    /// `sortie run -d p.toml --executor slurm`; returns the run id it printed.
    fn run_detached(&self) -> String {
        let out = self.sortie(
            &["run", "-d", "p.toml", "--executor", "slurm"],
            &[],
            Duration::from_secs(60),
        );
        out.ok();
        self.p
            .run_ids()
            .into_iter()
            .find(|r| out.stdout.contains(r.as_str()))
            .unwrap_or_else(|| panic!("no run id of this project in {:?}", out.stdout))
    }

    fn only_run(&self) -> String {
        self.p.only_run()
    }

    fn run_dir(&self, run: &str) -> PathBuf {
        self.p.run_dir(run)
    }

    fn status(&self, run: &str) -> Value {
        let out = self.sortie(&["status", run, "--json"], &[], Duration::from_secs(60));
        out.ok();
        out.json()
    }

    fn events(&self, run: &str) -> Vec<Value> {
        self.p.events(run)
    }

    fn events_of(&self, run: &str, kind: &str) -> Vec<Value> {
        self.events(run)
            .into_iter()
            .filter(|e| e["type"] == kind)
            .collect()
    }

    /// Accounting rows of the run's jobs (`sacct -X`, by the job-name suffix `.<run_id>`).
    fn sacct(&self, run: &str) -> Vec<Row> {
        let since = format!("now-{}", self.created.elapsed().as_secs() + 300);
        let suffix = format!(".{run}");
        output(
            "sacct",
            &[
                "-X",
                "-n",
                "-P",
                "-S",
                &since,
                "-o",
                "JobID,JobName,State,ExitCode,ReqMem,Start",
            ],
        )
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            if f.len() < 6 || !f[1].ends_with(&suffix) {
                return None;
            }
            let group = f[1]
                .strip_suffix(&suffix)
                .and_then(|g| g.rsplit_once('.'))
                .map(|(g, _)| g.to_string())
                .unwrap_or_default();
            Some(Row {
                id: f[0].to_string(),
                group,
                name: f[1].to_string(),
                // `CANCELLED by 0` → `CANCELLED`
                state: f[2].split_whitespace().next().unwrap_or("").to_string(),
                exit: f[3].to_string(),
                req_mem: f[4].to_string(),
                start: f[5].to_string(),
            })
        })
        .collect()
    }

    /// Waits until accounting has at least `n` rows for the run, every one of them in a final state.
    fn sacct_final(&self, run: &str, n: usize, limit: Duration) -> Vec<Row> {
        let finished = |rows: &[Row]| {
            rows.len() >= n
                && rows.iter().all(|r| {
                    !["PENDING", "RUNNING", "REQUEUED", "COMPLETING", "SUSPENDED"]
                        .contains(&r.state.as_str())
                        && !r.id.contains('[')
                })
        };
        let start = Instant::now();
        loop {
            let rows = self.sacct(run);
            if finished(&rows) {
                // Once more after a moment, so that a lagging extra job (a duplicate) shows too.
                std::thread::sleep(Duration::from_secs(2));
                let again = self.sacct(run);
                let rows = if finished(&again) { again } else { rows };
                println!(
                    "sacct had the {} jobs of {run} after {:.1}s",
                    rows.len(),
                    start.elapsed().as_secs_f64()
                );
                return rows;
            }
            assert!(
                start.elapsed() < limit,
                "timed out after {limit:?} waiting for {n} finished jobs of run {run} in sacct; last rows: {rows:#?}"
            );
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    /// Jobs of the run the controller still has queued or running: (id, name).
    fn queued(&self, run: &str) -> Vec<(String, String)> {
        let suffix = format!(".{run}");
        output("squeue", &["-h", "-o", "%A|%j"])
            .lines()
            .filter_map(|l| l.split_once('|'))
            .filter(|(_, n)| n.ends_with(&suffix))
            .map(|(i, n)| (i.trim().to_string(), n.to_string()))
            .collect()
    }

    /// Everything a failed test needs to see of a run.
    fn diagnostics(&self, run: &str) -> String {
        let dir = self.run_dir(run);
        let mut s = format!("===== run {run} ({})\n", dir.display());
        let events = std::fs::read_to_string(dir.join("events.jsonl")).unwrap_or_default();
        s += &format!("--- events.jsonl\n{events}");
        if let Ok(log) = std::fs::read_to_string(dir.join("engine.log")) {
            s += &format!("--- engine.log\n{}\n", tail(&log, 60));
        }
        let mut files = Vec::new();
        collect_files(&dir, 0, &mut files);
        files.sort();
        for f in files {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            if ["stderr.log", "stdout.log", "exit_code", "job.sh"].contains(&name.as_str()) {
                let text = std::fs::read_to_string(&f).unwrap_or_default();
                s += &format!(
                    "--- {}\n{}\n",
                    f.strip_prefix(&dir).unwrap_or(&f).display(),
                    tail(&text, 30)
                );
            }
        }
        s += &format!("--- sacct rows\n{:#?}\n", self.sacct(run));
        s
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn collect_files(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            if depth < 4 {
                collect_files(&p, depth + 1, out);
            }
        } else {
            out.push(p);
        }
    }
}

impl Drop for SlurmProject {
    fn drop(&mut self) {
        let runs = self.p.run_ids();
        if std::thread::panicking() {
            for run in &runs {
                eprintln!("{}", self.diagnostics(run));
            }
        }
        for run in &runs {
            let ids: Vec<String> = self.queued(run).into_iter().map(|(i, _)| i).collect();
            if !ids.is_empty() {
                let _ = Command::new("scancel").args(&ids).output();
            }
        }
    }
}

/// The steps of a status value as name → step.
fn steps(st: &Value) -> BTreeMap<String, Value> {
    st["steps"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| (s["name"].as_str().unwrap_or("").to_string(), s.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts the run succeeded with exactly `names`, each succeeded with a job id.
#[track_caller]
fn assert_all_succeeded(st: &Value, names: &[&str]) {
    let pretty = serde_json::to_string_pretty(st).unwrap();
    assert_eq!(st["state"], "succeeded", "run state\n{pretty}");
    let got: BTreeSet<String> = steps(st).keys().cloned().collect();
    let want: BTreeSet<String> = names.iter().map(|s| s.to_string()).collect();
    assert_eq!(got, want, "step names\n{pretty}");
    for (name, s) in steps(st) {
        assert_eq!(s["state"], "succeeded", "{name}\n{pretty}");
        assert_eq!(s["exit_code"], 0, "{name}\n{pretty}");
        assert!(
            id_text(&s["job_id"]).is_some(),
            "{name} has no job id\n{pretty}"
        );
    }
}

fn job_id_of(st: &Value, name: &str) -> String {
    id_text(&step_of(st, name)["job_id"])
        .unwrap_or_else(|| panic!("{name} has no job id: {}", step_of(st, name)))
}

/// The attempt dirs of a step (siblings of the dir status shows), oldest first.
fn attempt_dirs(st: &Value, name: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(
        step_of(st, name)["dir"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has no dir")),
    );
    let parent = dir.parent().unwrap();
    let mut v: Vec<(u32, PathBuf)> = std::fs::read_dir(parent)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let num: u32 = n
                .trim_start_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .ok()?;
            Some((num, e.path()))
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, p)| p).collect()
}

/// When an attempt's exit-code file was written (Unix seconds): when its job really ended.
fn exit_file_time(dir: &Path) -> f64 {
    let f = dir.join("exit_code");
    std::fs::metadata(&f)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
        .unwrap_or_else(|| panic!("no {}", f.display()))
}

/// The time of the first event of `kind` for which `pred` holds.
fn event_ts(sp: &SlurmProject, run: &str, kind: &str, pred: impl Fn(&Value) -> bool) -> f64 {
    sp.events_of(run, kind)
        .iter()
        .find(|e| pred(e))
        .and_then(|e| e["ts"].as_f64())
        .unwrap_or_else(|| panic!("no matching {kind} event"))
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// Sortie processes (this binary) whose command line names the run (its dir or its id).
fn sortie_processes(run_dir: &Path, run: &str) -> Vec<u32> {
    let bin = std::fs::canonicalize(BIN).unwrap_or_else(|_| PathBuf::from(BIN));
    let dir = run_dir.to_string_lossy().into_owned();
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) else {
            continue;
        };
        // A binary rebuilt while the process ran shows as `path (deleted)`.
        let exe = exe.to_string_lossy().replace(" (deleted)", "");
        if Path::new(&exe) != bin {
            continue;
        }
        if cmdline(pid).is_some_and(|c| c.contains(&dir) || c.contains(run)) && alive(pid) {
            pids.push(pid);
        }
    }
    pids
}

fn fan_pipeline() -> &'static str {
    r#"[pipeline]
name = "fan"

[defaults]
resources = { cpus = 1, mem = "64M", time = "2m" }

[[step]]
name = "prep"
run = "mkdir -p out && echo prepared > out/prep.txt"

[[step]]
name = "train"
needs = ["prep"]
matrix = { seed = [0, 1, 2] }
run = '''
test -f out/prep.txt
sleep 1
echo "seed={{seed}} job=${SLURM_ARRAY_JOB_ID:-none}_${SLURM_ARRAY_TASK_ID:-none}" > out/train-{{seed}}.txt
'''

[[step]]
name = "report"
needs = ["train"]
run = "cat out/train-0.txt out/train-1.txt out/train-2.txt > out/report.txt"
"#
}

#[test]
fn fan_out_fan_in_runs_the_matrix_as_one_job_array() {
    if !cluster() {
        return;
    }
    let _lock = shared();
    let sp = SlurmProject::new(fan_pipeline());
    let out = sp.run(&[]);
    out.ok();
    let run = sp.only_run();
    let st = sp.status(&run);
    let names = [
        "prep",
        "train[seed=0]",
        "train[seed=1]",
        "train[seed=2]",
        "report",
    ];
    assert_all_succeeded(&st, &names);
    for (name, s) in steps(&st) {
        assert_eq!(s["attempts"], 1, "{name}: {s}");
    }

    // prep and report are plain jobs; the three trains are elements 0..2 of one array.
    for name in ["prep", "report"] {
        let id = job_id_of(&st, name);
        assert!(digits(&id), "{name}: job id {id:?} is not a plain id");
    }
    let mut array = BTreeSet::new();
    let mut tasks = BTreeSet::new();
    for seed in 0..3 {
        let id = job_id_of(&st, &format!("train[seed={seed}]"));
        let (base, task) = split_array_id(&id);
        assert!(
            digits(base) && task.is_some_and(digits),
            "train[seed={seed}]: job id {id:?} does not look like N_i"
        );
        array.insert(base.to_string());
        tasks.insert(task.unwrap().to_string());
        // The element wrote its own array id and task id, the ones status shows.
        let written = sp.p.read(&format!("out/train-{seed}.txt"));
        assert_eq!(written.trim(), format!("seed={seed} job={id}"));
    }
    assert_eq!(array.len(), 1, "the trains are not one array: {array:?}");
    assert_eq!(tasks.len(), 3, "array tasks {tasks:?}");

    // Outputs: report saw every train.
    let report = sp.p.read("out/report.txt");
    assert_eq!(report.lines().count(), 3, "{report}");
    assert_eq!(sp.p.read("out/prep.txt").trim(), "prepared");

    // Accounting: five jobs (prep, three elements, report), all COMPLETED; the three train rows share
    // the array id and one job name (one submission).
    let rows = sp.sacct_final(&run, 5, Duration::from_secs(60));
    for r in &rows {
        assert_eq!(r.state, "COMPLETED", "{r:?}");
        assert_eq!(r.exit, "0:0", "{r:?}");
    }
    let train: Vec<&Row> = rows.iter().filter(|r| r.group == "train").collect();
    assert_eq!(train.len(), 3, "{rows:#?}");
    let base = array.iter().next().unwrap();
    for r in &train {
        assert_eq!(split_array_id(&r.id).0, base, "{r:?}");
    }
    let train_names: BTreeSet<&str> = train.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(train_names.len(), 1, "{train:#?}");
    let by_group: BTreeMap<&str, usize> = rows.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.group.as_str()).or_default() += 1;
        m
    });
    assert_eq!(
        by_group,
        BTreeMap::from([("prep", 1), ("report", 1), ("train", 3)]),
        "{rows:#?}"
    );

    // The attempt dir holds the batch script with its #SBATCH lines.
    let prep = attempt_dirs(&st, "prep");
    assert_eq!(prep.len(), 1, "{prep:?}");
    let script = read(&prep[0].join("job.sh"));
    assert!(script.contains("#SBATCH"), "{script}");
    assert_eq!(script_mem_mb(&script), Some(64), "{script}");
    assert_eq!(read(&prep[0].join("exit_code")).trim(), "0");
}

const FLAKY: &str = r#"
[defaults]
resources = { cpus = 1, mem = "64M", time = "2m" }

[[step]]
name = "flaky"
retries = 1
retry_backoff = "1s"
run = '''
echo "attempt $SORTIE_ATTEMPT" >> attempts.txt
if [ "$SORTIE_ATTEMPT" -lt 2 ]; then echo "failing on purpose" >&2; exit 3; fi
echo fine > flaky.txt
'''
"#;

/// Waits until accounting has both of flaky's jobs in a final state.
fn flaky_rows(sp: &SlurmProject, run: &str) -> Vec<Row> {
    poll_until(
        "flaky's two jobs in sacct",
        Duration::from_secs(60),
        Duration::from_secs(2),
        || {
            let rows = sp.sacct(run);
            let flaky: Vec<Row> = rows.into_iter().filter(|r| r.group == "flaky").collect();
            (flaky.len() == 2
                && flaky
                    .iter()
                    .all(|r| r.state != "PENDING" && r.state != "RUNNING"))
            .then_some(flaky)
        },
    )
}

#[test]
fn a_failed_attempt_is_retried() {
    if !cluster() {
        return;
    }
    let _lock = shared();
    let sp = SlurmProject::new(&format!("[pipeline]\nname = \"retry\"\n{FLAKY}"));
    let out = sp.run(&[]);
    out.ok();
    let run = sp.only_run();
    let st = sp.status(&run);
    assert_all_succeeded(&st, &["flaky"]);
    let flaky = step_of(&st, "flaky");
    assert_eq!(flaky["attempts"], 2, "{flaky}");
    assert_eq!(sp.p.lines("attempts.txt"), ["attempt 1", "attempt 2"]);

    // Two attempt dirs: the first says exit 3 and why, the second 0.
    let dirs = attempt_dirs(&st, "flaky");
    assert_eq!(dirs.len(), 2, "{dirs:?}");
    assert_eq!(read(&dirs[0].join("exit_code")).trim(), "3");
    assert!(read(&dirs[0].join("stderr.log")).contains("failing on purpose"));
    assert_eq!(read(&dirs[1].join("exit_code")).trim(), "0");

    // The run's log: attempt 1 failed with exit 3 and will be retried.
    let ended = sp.events_of(&run, "attempt_ended");
    let first = ended
        .iter()
        .find(|e| e["step"] == "flaky" && e["attempt"] == 1)
        .unwrap_or_else(|| panic!("no attempt_ended for flaky attempt 1: {ended:?}"));
    assert_eq!(first["state"], "failed", "{first}");
    assert_eq!(first["exit_code"], 3, "{first}");
    assert_eq!(first["will_retry"], true, "{first}");

    // Accounting: FAILED 3:0, then COMPLETED (the job status shows); each attempt its own job.
    let rows = flaky_rows(&sp, &run);
    assert_eq!(rows[0].state, "FAILED", "{rows:#?}");
    assert_eq!(rows[0].exit, "3:0", "{rows:#?}");
    assert_eq!(rows[1].state, "COMPLETED", "{rows:#?}");
    assert_eq!(rows[1].id, job_id_of(&st, "flaky"), "{rows:#?}");
    assert_ne!(rows[0].id, rows[1].id);
    let submitted: Vec<String> = sp
        .events_of(&run, "job_submitted")
        .iter()
        .filter_map(|e| id_text(&e["job_id"]))
        .collect();
    assert_eq!(submitted, [rows[0].id.clone(), rows[1].id.clone()]);

    // The retry followed the failure promptly (retry_backoff is 1 s): the exit-code file already
    // says how attempt 1 ended.
    let failed = exit_file_time(&dirs[0]);
    let retried = event_ts(&sp, &run, "job_submitted", |e| {
        e["step"] == "flaky" && e["attempt"] == 2
    });
    assert!(
        retried - failed <= 20.0,
        "attempt 2 was submitted {:.0}s after attempt 1's job ended (retry_backoff = 1s): the \
         engine waits for its next (slow) Slurm poll to confirm a failure its exit-code file shows",
        retried - failed
    );
}

/// The dependent of a step that fails and is retried was queued behind the failed attempt
/// (`afterok`). It must run once, after the retry succeeded, without waiting for anything but the
/// retry.
#[test]
fn the_dependent_of_a_retried_step_runs_once_after_the_retry() {
    if !cluster() {
        return;
    }
    let _lock = shared();
    let sp = SlurmProject::new(&format!(
        "[pipeline]\nname = \"retrydep\"\n{FLAKY}\n[[step]]\nname = \"after\"\nneeds = [\"flaky\"]\nrun = \"cat flaky.txt > after.txt\"\n"
    ));
    let out = sp.run(&[]);
    out.ok();
    let run = sp.only_run();
    let st = sp.status(&run);
    assert_all_succeeded(&st, &["flaky", "after"]);
    assert_eq!(step_of(&st, "flaky")["attempts"], 2);
    assert_eq!(sp.p.read("after.txt").trim(), "fine");

    // Only one of after's jobs ran (the one status shows); any other was cancelled before it started.
    flaky_rows(&sp, &run);
    let after_job = job_id_of(&st, "after");
    let rows = poll_until(
        "after's job in sacct",
        Duration::from_secs(60),
        Duration::from_secs(2),
        || {
            let rows = sp.sacct(&run);
            rows.iter()
                .any(|r| r.id == after_job && r.state == "COMPLETED")
                .then_some(rows)
        },
    );
    let after: Vec<&Row> = rows.iter().filter(|r| r.group == "after").collect();
    let ran: Vec<&&Row> = after.iter().filter(|r| r.started()).collect();
    assert_eq!(ran.len(), 1, "after ran more than once: {rows:#?}");
    assert_eq!(ran[0].state, "COMPLETED", "{rows:#?}");
    assert_eq!(ran[0].id, job_id_of(&st, "after"));
    if after.len() > 1 {
        println!(
            "note: after was submitted {} times; status shows {} attempts",
            after.len(),
            step_of(&st, "after")["attempts"]
        );
    }

    // after's job that ran was submitted soon after flaky's retry was: no minute-long wait for
    // Slurm to cancel the dependent queued behind the failed attempt.
    let submit_ts = |step: &str, job: &str| -> f64 {
        sp.events_of(&run, "job_submitted")
            .iter()
            .find(|e| e["step"] == step && id_text(&e["job_id"]).as_deref() == Some(job))
            .and_then(|e| e["ts"].as_f64())
            .unwrap_or_else(|| panic!("no job_submitted for {step} job {job}"))
    };
    let retry = submit_ts("flaky", &job_id_of(&st, "flaky"));
    let dependent = submit_ts("after", &job_id_of(&st, "after"));
    assert!(
        dependent - retry <= 20.0,
        "after's final job was submitted {:.0}s after flaky's retry (expected at most 20 s): \
         the engine waits for Slurm to cancel the dependent queued behind the failed attempt",
        dependent - retry
    );
}

/// A step fails with no retries left: its dependent, queued behind it with `afterok`, never runs,
/// is shown as blocked, and the run ends (failed) soon after the failure.
#[test]
fn a_failed_step_blocks_its_dependent_promptly() {
    if !cluster() {
        return;
    }
    let _lock = shared();
    let sp = SlurmProject::new(
        r#"[pipeline]
name = "block"

[defaults]
resources = { cpus = 1, mem = "64M", time = "2m" }

[[step]]
name = "a"
run = "echo broken >&2; exit 4"

[[step]]
name = "b"
needs = ["a"]
run = "echo b > b.txt"
"#,
    );
    sp.run(&[]).expect_code(1);
    let run = sp.only_run();
    let st = sp.status(&run);
    assert_eq!(st["state"], "failed", "{st}");
    let a = step_of(&st, "a");
    assert_eq!(a["state"], "failed", "{a}");
    assert_eq!(a["exit_code"], 4, "{a}");
    assert_eq!(a["attempts"], 1, "{a}");
    let b = step_of(&st, "b");
    assert_eq!(b["state"], "blocked", "{b}");
    assert!(!sp.p.path("b.txt").exists(), "b ran");
    let dirs = attempt_dirs(&st, "a");
    assert!(read(&dirs[0].join("stderr.log")).contains("broken"));

    // Accounting: a FAILED 4:0; b's job (if one was queued) was cancelled before it started.
    let rows = poll_until(
        "a's job and b's cancelled job in sacct",
        Duration::from_secs(60),
        Duration::from_secs(2),
        || {
            let rows = sp.sacct(&run);
            // Accounting may lag the controller: wait until it has a's row.
            (rows.iter().any(|r| r.group == "a")
                && rows
                    .iter()
                    .all(|r| r.state != "PENDING" && r.state != "RUNNING"))
            .then_some(rows)
        },
    );
    let a_rows: Vec<&Row> = rows.iter().filter(|r| r.group == "a").collect();
    assert_eq!(a_rows.len(), 1, "{rows:#?}");
    assert_eq!(a_rows[0].state, "FAILED", "{rows:#?}");
    assert_eq!(a_rows[0].exit, "4:0", "{rows:#?}");
    for r in rows.iter().filter(|r| r.group == "b") {
        assert_eq!(r.state, "CANCELLED", "{rows:#?}");
        assert!(!r.started(), "b's job started: {rows:#?}");
    }

    // The run ended soon after a's job did: no minute-long wait to learn that Slurm cancelled b.
    let failed = exit_file_time(&dirs[0]);
    let ended = event_ts(&sp, &run, "run_state", |e| e["state"] == "failed");
    assert!(
        ended - failed <= 20.0,
        "the run ended {:.0}s after a's job failed (expected at most 20 s): the engine waits \
         for its next (slow) Slurm poll to learn that b was cancelled, although a's failure already \
         decided it",
        ended - failed
    );
}

#[test]
fn an_out_of_memory_attempt_is_retried_with_twice_the_memory() {
    if !cluster() {
        return;
    }
    let _lock = shared();
    let real_oom = cgroup_mode();
    // A real OOM kill in cgroup mode (300 MB under a 100 MB limit); elsewhere `exit 137`, the exit
    // status of a SIGKILLed process, which the contract classes the same way. The second attempt
    // needs 120 MB, which only fits because its limit really doubled.
    let first = if real_oom {
        "python3 -c 'b = bytearray(300 * 1024 * 1024); print(len(b))'"
    } else {
        "exit 137"
    };
    let second = if real_oom {
        "python3 -c 'b = bytearray(120 * 1024 * 1024); print(\"ok\", len(b))'"
    } else {
        "echo ok"
    };
    let sp = SlurmProject::new(&format!(
        r#"[pipeline]
name = "oom"

[[step]]
name = "hungry"
retries = 1
retry_backoff = "1s"
resources = {{ cpus = 1, mem = "100M", time = "2m" }}
run = '''
echo "attempt $SORTIE_ATTEMPT"
if [ "$SORTIE_ATTEMPT" = 1 ]; then
  {first}
fi
{second}
'''
"#
    ));
    let out = sp.run(&[]);
    out.ok();
    let run = sp.only_run();
    let st = sp.status(&run);
    assert_all_succeeded(&st, &["hungry"]);
    let hungry = step_of(&st, "hungry");
    assert_eq!(hungry["attempts"], 2, "{hungry}");

    let dirs = attempt_dirs(&st, "hungry");
    assert_eq!(dirs.len(), 2, "{dirs:?}");
    let s1 = read(&dirs[0].join("job.sh"));
    let s2 = read(&dirs[1].join("job.sh"));
    assert_eq!(script_mem_mb(&s1), Some(100), "attempt 1's job.sh:\n{s1}");
    assert_eq!(script_mem_mb(&s2), Some(200), "attempt 2's job.sh:\n{s2}");
    assert!(
        read(&dirs[1].join("stdout.log")).contains("ok"),
        "attempt 2's stdout"
    );

    let rows = sp.sacct_final(&run, 2, Duration::from_secs(60));
    let mems: Vec<Option<u64>> = rows.iter().map(|r| mem_mb(&r.req_mem)).collect();
    assert_eq!(mems, [Some(100), Some(200)], "{rows:#?}");
    if real_oom {
        assert_eq!(rows[0].state, "OUT_OF_MEMORY", "{rows:#?}");
    } else {
        assert_eq!(rows[0].state, "FAILED", "{rows:#?}");
    }
    assert_eq!(rows[1].state, "COMPLETED", "{rows:#?}");
    assert_eq!(rows[1].id, job_id_of(&st, "hungry"));
}

/// A dependent is submitted before its parents ran, yet its `SORTIE_NEEDS` must name the parents'
/// attempt dirs, as with the local executor.
#[test]
fn dependents_see_their_parents_dirs_in_sortie_needs() {
    if !cluster() {
        return;
    }
    let _lock = shared();
    let sp = SlurmProject::new(
        r#"[pipeline]
name = "needs"

[defaults]
resources = { cpus = 1, mem = "64M", time = "2m" }

[[step]]
name = "a"
run = "sleep 1"

[[step]]
name = "b"
needs = ["a"]
matrix = { k = [1, 2] }
run = "printf '%s' \"$SORTIE_NEEDS\" > needs-b{{k}}.json"

[[step]]
name = "c"
needs = ["b"]
run = "printf '%s' \"$SORTIE_NEEDS\" > needs-c.json"
"#,
    );
    sp.run(&[]).ok();
    let run = sp.only_run();
    let st = sp.status(&run);
    assert_all_succeeded(&st, &["a", "b[k=1]", "b[k=2]", "c"]);
    let dir = |name: &str| step_of(&st, name)["dir"].as_str().unwrap().to_string();
    let needs = |file: &str| -> Value {
        serde_json::from_str(&sp.p.read(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
    };
    let sorted = |v: &Value| -> Vec<String> {
        let mut d: Vec<String> = v
            .as_array()
            .unwrap_or_else(|| panic!("not a list: {v}"))
            .iter()
            .map(|d| d.as_str().unwrap().to_string())
            .collect();
        d.sort();
        d
    };
    for k in [1, 2] {
        let n = needs(&format!("needs-b{k}.json"));
        assert_eq!(
            sorted(&n["a"]),
            [dir("a")],
            "SORTIE_NEEDS of b[k={k}] is {n}"
        );
    }
    let n = needs("needs-c.json");
    assert_eq!(
        sorted(&n["b"]),
        [dir("b[k=1]"), dir("b[k=2]")],
        "SORTIE_NEEDS of c is {n}"
    );
}

/// The engine counts a submitted step as running; `sortie status` asks Slurm (one `squeue`) and shows
/// the steps whose jobs still wait in the queue as queued, with why.
#[test]
fn status_shows_steps_still_waiting_in_the_queue_as_queued() {
    if !cluster() {
        return;
    }
    let _lock = shared();
    let sp = SlurmProject::new(&chain_pipeline("waits", 6));
    let run = sp.run_detached();
    // c waits on b, which waits on a: its job sits in the queue for two of the steps' sleeps.
    let st = poll_until(
        "step c to be submitted",
        Duration::from_secs(60),
        Duration::from_millis(300),
        || {
            let st = sp.status(&run);
            (!step_of(&st, "c")["slurm"].is_null()).then_some(st)
        },
    );
    let c = step_of(&st, "c");
    assert_eq!(
        c["state"], "running",
        "the log's state stays as recorded: {c}"
    );
    assert_eq!(c["slurm"]["state"], "PENDING", "{c}");
    assert_eq!(c["slurm"]["reason"], "Dependency", "{c}");
    assert!(st["slurm_error"].is_null(), "{st}");
    let out = sp.sortie(&["status", &run], &[], Duration::from_secs(60));
    out.ok();
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains(" c "))
        .unwrap_or_else(|| panic!("no line for c:\n{}", out.stdout));
    assert!(line.contains("queued"), "{line}");
    assert!(line.contains("(waiting in Slurm: Dependency)"), "{line}");
    assert!(
        line.contains(&format!("job {}", job_id_of(&st, "c"))),
        "{line}"
    );
    // And the run ends as usual.
    let end = poll_until("the run to end", RUN_LIMIT, Duration::from_secs(1), || {
        let st = sp.status(&run);
        (st["state"] != "running").then_some(st)
    });
    assert_eq!(end["state"], "succeeded", "{end}");
    assert!(step_of(&end, "c")["slurm"].is_null(), "{end}");
}

fn chain_pipeline(name: &str, sleep: u32) -> String {
    format!(
        r#"[pipeline]
name = "{name}"

[defaults]
resources = {{ cpus = 1, mem = "64M", time = "2m" }}

[[step]]
name = "a"
run = "sleep {sleep}; echo a > a.txt"

[[step]]
name = "b"
needs = ["a"]
run = "sleep {sleep}; cat a.txt > b.txt; echo b >> b.txt"

[[step]]
name = "c"
needs = ["b"]
run = "sleep {sleep}; cat b.txt > c.txt; echo c >> c.txt"
"#
    )
}

#[test]
fn a_detached_run_finishes_on_the_cluster_after_every_sortie_process_is_killed() {
    if !cluster() {
        return;
    }
    let _lock = shared();
    let sp = SlurmProject::new(&chain_pipeline("orphan", 4));
    let run = sp.run_detached();
    let run_dir = sp.run_dir(&run);

    // Every step is submitted up front (dependents with afterok).
    poll_until(
        "all three jobs to be submitted",
        RUN_LIMIT,
        Duration::from_millis(200),
        || (sp.events_of(&run, "job_submitted").len() >= 3).then_some(()),
    );
    let submitted: BTreeMap<String, String> = sp
        .events_of(&run, "job_submitted")
        .iter()
        .map(|e| {
            (
                e["step"].as_str().unwrap_or("").to_string(),
                id_text(&e["job_id"]).unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        submitted.keys().map(String::as_str).collect::<Vec<_>>(),
        ["a", "b", "c"],
        "{submitted:?}"
    );

    // Kill every sortie process of the run.
    let mut pids = sortie_processes(&run_dir, &run);
    let st = sp.status(&run);
    if let Some(pid) = st["engine"]["pid"].as_u64() {
        pids.push(pid as u32);
    }
    pids.sort();
    pids.dedup();
    assert!(!pids.is_empty(), "no sortie process of run {run} found");
    for &pid in &pids {
        kill_pid(pid);
    }
    poll_until(
        "the run's sortie processes to die",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || sortie_processes(&run_dir, &run).is_empty().then_some(()),
    );
    assert!(pids.iter().all(|&p| !alive(p)), "still alive: {pids:?}");
    let c_finished_before_kill = sp
        .sacct(&run)
        .iter()
        .any(|r| r.group == "c" && r.state == "COMPLETED");
    if c_finished_before_kill {
        println!("note: c had already finished when the engine was killed");
    }

    // The cluster runs the chain to the end without sortie.
    let rows = sp.sacct_final(&run, 3, RUN_LIMIT);
    assert_eq!(rows.len(), 3, "{rows:#?}");
    for r in &rows {
        assert_eq!(r.state, "COMPLETED", "{rows:#?}");
    }
    assert_eq!(
        sp.p.read("c.txt").lines().collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    assert!(
        sortie_processes(&run_dir, &run).is_empty(),
        "a sortie process came back"
    );

    // status alone shows the truth: no engine drives the run, so it reads the exit-code files of
    // the steps the log still shows running.
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap();
    let st = sp.status(&run);
    assert_eq!(st["engine"]["alive"], false, "{}", pretty(&st));
    assert_eq!(
        st["state"],
        "succeeded",
        "status does not show that the run succeeded:\n{}",
        pretty(&st)
    );
    assert_eq!(st["recorded_state"], "running", "{}", pretty(&st));
    assert_eq!(st["unrecorded_ends"], 3, "{}", pretty(&st));
    for name in ["a", "b", "c"] {
        let s = step_of(&st, name);
        assert_eq!(s["state"], "succeeded", "{name}\n{}", pretty(&st));
        assert_eq!(job_id_of(&st, name), submitted[name], "{name}");
        assert_eq!(s["attempts"], 1, "{name}");
        assert!(s["ended"].is_number(), "{name}: {s}");
    }
    // The TUI reads those ends through the same function: finished, not running with clocks counting.
    let snap = common::tui_snapshot(sp.p.root(), &run);
    common::assert_status_matches_tui(&st, &snap, &run);
    assert_eq!(snap.dead_engines, std::slice::from_ref(&run));

    // `sortie resume` records those ends without submitting anything again.
    let out = sp.sortie(&["resume", &run], &[], RUN_LIMIT);
    out.ok();
    let st = sp.status(&run);
    assert_all_succeeded(&st, &["a", "b", "c"]);
    assert_eq!(st["recorded_state"], "succeeded", "{}", pretty(&st));
    assert_eq!(st["unrecorded_ends"], 0, "{}", pretty(&st));
    for name in ["a", "b", "c"] {
        assert_eq!(job_id_of(&st, name), submitted[name], "{name}");
        assert_eq!(step_of(&st, name)["attempts"], 1, "{name}");
    }
    assert_eq!(sp.sacct(&run).len(), 3, "a job was submitted again");
    assert!(
        sp.events_of(&run, "job_submitted").len() == 3,
        "resume logged a new submission"
    );
}

/// Runs a two-step chain with `SORTIE_FAULT=<fault>`: the engine SIGKILLs itself at that point.
/// Then `sortie resume` finishes the run. Returns (the project, run id, jobs of the run before resume).
fn fault_then_resume(fault: &str) -> (SlurmProject, String, Vec<Row>) {
    let sp = SlurmProject::new(
        r#"[pipeline]
name = "fault"

[defaults]
resources = { cpus = 1, mem = "64M", time = "2m" }

[[step]]
name = "a"
run = "sleep 2; echo a > a.txt"

[[step]]
name = "b"
needs = ["a"]
run = "cat a.txt > b.txt"
"#,
    );
    let out = sp.run(&[("SORTIE_FAULT", fault)]);
    // A process killed by a signal has no exit code.
    assert_eq!(
        out.code, None,
        "the engine with SORTIE_FAULT={fault} was not killed\n--- stdout\n{}\n--- stderr\n{}",
        out.stdout, out.stderr
    );
    let run = sp.only_run();
    // The intent: `submit_intent` (or an `attempt_started` that names the job) for the step.
    let step = fault.split_once(':').unwrap().1;
    let intents: Vec<Value> = sp
        .events(&run)
        .into_iter()
        .filter(|e| e["type"] == "submit_intent" || e["type"] == "attempt_started")
        .collect();
    assert!(
        intents.iter().any(|e| e["step"] == step),
        "no intent for {step}: {intents:?}"
    );
    assert!(
        !sp.events_of(&run, "job_submitted")
            .iter()
            .any(|e| e["step"] == step),
        "job_submitted for {step} was written before the fault"
    );
    // a was submitted before the fault in both cases; accounting may lag a moment behind sbatch.
    let before = poll_until(
        "a's job in sacct",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || {
            let rows = sp.sacct(&run);
            rows.iter().any(|r| r.group == "a").then_some(rows)
        },
    );
    let out = sp.sortie(&["resume", &run], &[], RUN_LIMIT);
    out.ok();
    (sp, run, before)
}

#[track_caller]
fn assert_one_job_per_attempt(sp: &SlurmProject, run: &str, st: &Value) {
    let rows = sp.sacct_final(run, 2, Duration::from_secs(60));
    for name in ["a", "b"] {
        let mine: Vec<&Row> = rows.iter().filter(|r| r.group == name).collect();
        let attempts = step_of(st, name)["attempts"].as_u64().unwrap() as usize;
        assert_eq!(attempts, 1, "{name}");
        assert_eq!(mine.len(), attempts, "jobs of {name}: {rows:#?}");
        assert_eq!(mine[0].state, "COMPLETED", "{rows:#?}");
        assert_eq!(mine[0].id, job_id_of(st, name));
    }
}

#[test]
fn resume_after_a_kill_between_sbatch_and_the_job_id_does_not_submit_again() {
    if !cluster() {
        return;
    }
    let _lock = shared();
    let (sp, run, before) = fault_then_resume("after_sbatch:a");
    // sbatch had returned: a's job existed before resume.
    let a_before: Vec<&Row> = before.iter().filter(|r| r.group == "a").collect();
    assert_eq!(a_before.len(), 1, "a's job before resume: {before:#?}");
    let st = sp.status(&run);
    assert_all_succeeded(&st, &["a", "b"]);
    assert_eq!(
        job_id_of(&st, "a"),
        a_before[0].id,
        "resume did not adopt the job that sbatch made"
    );
    assert_one_job_per_attempt(&sp, &run, &st);
    assert_eq!(sp.p.read("b.txt").trim(), "a");
}

#[test]
fn resume_after_a_kill_between_the_intent_and_sbatch_submits_once() {
    if !cluster() {
        return;
    }
    let _lock = shared();
    let (sp, run, before) = fault_then_resume("after_intent:b");
    // a was submitted; b's intent was written but sbatch never ran.
    assert!(
        before.iter().all(|r| r.group != "b"),
        "b had a job before resume: {before:#?}"
    );
    assert_eq!(before.iter().filter(|r| r.group == "a").count(), 1);
    let st = sp.status(&run);
    assert_all_succeeded(&st, &["a", "b"]);
    assert_one_job_per_attempt(&sp, &run, &st);
    // The name in the intent never became a job: resume submitted b under a new name, once.
    let intent = sp
        .events_of(&run, "submit_intent")
        .into_iter()
        .find(|e| e["step"] == "b")
        .and_then(|e| e["name"].as_str().map(str::to_string));
    if let Some(intent) = intent {
        let rows = sp.sacct(&run);
        let b: Vec<&Row> = rows.iter().filter(|r| r.group == "b").collect();
        assert_eq!(b.len(), 1, "{rows:#?}");
        println!("b's intent named {intent}; its job is {}", b[0].name);
    }
    assert_eq!(sp.p.read("b.txt").trim(), "a");
}

/// Restarts slurmctld (with the rest of the cluster, idempotently) however the test ends.
struct Controller {
    stopped: bool,
}

impl Controller {
    fn pid() -> Option<i32> {
        std::fs::read_to_string(CTLD_PID).ok()?.trim().parse().ok()
    }

    /// SIGTERM to slurmctld (only it), then wait for it to exit.
    fn stop(&mut self) {
        let pid = Self::pid().expect("no slurmctld pid file");
        self.stopped = true;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("SIGTERM slurmctld");
        poll_until(
            "slurmctld to exit",
            Duration::from_secs(30),
            Duration::from_millis(200),
            || (!alive(pid as u32)).then_some(()),
        );
    }

    fn start(&mut self) {
        let out = Command::new("bash")
            .arg(START_SH)
            .output()
            .expect("running start.sh");
        assert!(
            out.status.success(),
            "start.sh failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        self.stopped = false;
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if self.stopped {
            let _ = Command::new("bash").arg(START_SH).output();
        }
    }
}

#[test]
fn the_run_survives_slurmctld_stopped_for_30_seconds() {
    if !cluster() {
        return;
    }
    if !is_root() {
        assert!(!required(), "stopping slurmctld needs root");
        println!("skipping: stopping slurmctld needs root");
        return;
    }
    let _lock = exclusive();
    let sp = SlurmProject::new(
        r#"[pipeline]
name = "ctld"

[defaults]
resources = { cpus = 1, mem = "64M", time = "2m" }

[[step]]
name = "long"
run = "sleep 20; echo long > long.txt"

[[step]]
name = "next"
needs = ["long"]
run = "sleep 2; cat long.txt > next.txt"
"#,
    );
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = sp
        .cmd(&["run", "p.toml", "--executor", "slurm"], &[])
        .stdin(Stdio::null())
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap())
        .spawn()
        .expect("starting sortie run");
    let engine_log = || std::fs::read_to_string(log.path()).unwrap_or_default();
    let mut ctld = Controller { stopped: false };

    // Wait for the first job to run.
    let run = poll_until(
        "the run directory",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || sp.p.run_ids().into_iter().next(),
    );
    let long_id = poll_until(
        "long's job to run",
        RUN_LIMIT,
        Duration::from_secs(1),
        || {
            let id = sp
                .events_of(&run, "job_submitted")
                .iter()
                .find(|e| e["step"] == "long")
                .and_then(|e| id_text(&e["job_id"]))?;
            let state = output("squeue", &["-h", "-j", &id, "-o", "%T"]);
            (state.trim() == "RUNNING").then_some(id)
        },
    );
    ctld.stop();
    let down = Instant::now();
    assert!(
        Command::new("scontrol")
            .arg("ping")
            .output()
            .map(|o| !String::from_utf8_lossy(&o.stdout).contains("UP"))
            .unwrap_or(true),
        "slurmctld still answers"
    );
    while down.elapsed() < Duration::from_secs(30) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "sortie run ended while slurmctld was down ({status}):\n{}",
                engine_log()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    ctld.start();

    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "sortie run did not finish within {RUN_LIMIT:?} after slurmctld came back:\n{}",
                engine_log()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(
        status.code(),
        Some(0),
        "sortie run after the outage:\n{}",
        engine_log()
    );
    let st = sp.status(&run);
    assert_all_succeeded(&st, &["long", "next"]);
    assert_eq!(job_id_of(&st, "long"), long_id);
    assert_eq!(step_of(&st, "long")["attempts"], 1);
    assert_eq!(step_of(&st, "next")["attempts"], 1);
    assert_eq!(sp.p.read("next.txt").trim(), "long");
    // Nothing was submitted twice while the controller was away.
    let rows = sp.sacct_final(&run, 2, Duration::from_secs(60));
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert!(rows.iter().all(|r| r.state == "COMPLETED"), "{rows:#?}");
}

#[test]
fn rest_and_cli_list_the_same_jobs_of_a_run() {
    if !cluster() {
        return;
    }
    let Some(url) = env_value("SLURM_REST_URL") else {
        assert!(
            !required(),
            "SORTIE_REQUIRE_SLURM=1 but {SLURM_ENV_FILE} is missing"
        );
        println!("skipping the REST comparison: no {SLURM_ENV_FILE}");
        return;
    };
    let _lock = shared();
    let sp = SlurmProject::new(
        r#"[pipeline]
name = "rest"

[defaults]
resources = { cpus = 1, mem = "64M", time = "2m" }

[[step]]
name = "x"
run = "echo x > x.txt"

[[step]]
name = "y"
needs = ["x"]
matrix = { k = [1, 2] }
run = "cat x.txt > y{{k}}.txt"
"#,
    );
    sp.run(&[]).ok();
    let run = sp.only_run();
    let st = sp.status(&run);
    assert_all_succeeded(&st, &["x", "y[k=1]", "y[k=2]"]);
    let want: BTreeSet<String> = steps(&st)
        .values()
        .filter_map(|s| id_text(&s["job_id"]))
        .collect();
    assert_eq!(want.len(), 3, "{want:?}");
    sp.sacct_final(&run, 3, Duration::from_secs(60));

    let suffix = format!(".{run}");
    let list = |env: &[(&str, &str)]| -> BTreeMap<String, Value> {
        let out = sp.sortie(&["jobs", "--json", "--all"], env, Duration::from_secs(60));
        out.ok();
        out.json()
            .as_array()
            .unwrap_or_else(|| panic!("not a list: {}", out.stdout))
            .iter()
            .filter(|j| j["name"].as_str().is_some_and(|n| n.ends_with(&suffix)))
            .map(|j| (id_text(&j["id"]).unwrap_or_default(), j.clone()))
            .collect()
    };
    let rest_env = [("SORTIE_SLURM_BACKEND", "rest"), ("SLURM_REST_URL", &url)];
    // Accounting lags a little behind the end of the run; both must agree once it has caught up.
    let (cli, rest) = poll_until(
        "both backends to list the run's jobs",
        Duration::from_secs(60),
        Duration::from_secs(2),
        || {
            let cli = list(&[]);
            let rest = list(&rest_env);
            let ids = |m: &BTreeMap<String, Value>| m.keys().cloned().collect::<BTreeSet<_>>();
            (ids(&cli) == want && ids(&rest) == want).then_some((cli, rest))
        },
    );
    for (id, c) in &cli {
        let r = &rest[id];
        for field in ["name", "state", "exit_code", "partition"] {
            assert_eq!(c[field], r[field], "{id} {field}: cli {c} rest {r}");
        }
        assert_eq!(c["state"], "COMPLETED", "{c}");
    }
}

/// `[slurm] max_queued = 1`: three independent steps never have more than one job in Slurm at a
/// time — each is submitted only after the previous one's job ended.
#[test]
fn max_queued_caps_the_jobs_in_slurm() {
    if !cluster() {
        return;
    }
    let _lock = shared();
    let sp = SlurmProject::new(
        r#"[pipeline]
name = "capped"

[slurm]
max_queued = 1

[defaults]
resources = { cpus = 1, mem = "64M", time = "2m" }
slurm = { array = false }

[[step]]
name = "s"
matrix = { k = [1, 2, 3] }
run = "sleep 1; echo {{k}} > s{{k}}.txt"
"#,
    );
    sp.run(&[]).expect_code(0);
    let run = sp.only_run();
    // In log order: each submission comes after the end of every earlier one.
    let mut in_flight = 0;
    let mut most = 0;
    for e in sp.events(&run) {
        match e["type"].as_str() {
            Some("job_submitted") => {
                in_flight += 1;
                most = most.max(in_flight);
            }
            Some("attempt_ended") => in_flight -= 1,
            _ => {}
        }
    }
    assert_eq!(most, 1, "more than one job in Slurm at once");
    assert_eq!(sp.events_of(&run, "job_submitted").len(), 3);
    for k in 1..=3 {
        assert!(sp.p.path(&format!("s{k}.txt")).exists());
    }
}

/// `sortie rerun RUN a --downstream` on a finished Slurm run: a new engine resubmits `a`, `b` and
/// `c` (new attempts, new jobs), and the run ends succeeded.
#[test]
fn rerun_with_downstream_resubmits_every_step_below() {
    if !cluster() {
        return;
    }
    let _lock = shared();
    let sp = SlurmProject::new(&chain_pipeline("again", 1));
    sp.run(&[]).expect_code(0);
    let run = sp.only_run();
    let first = sp.status(&run);
    let out = sp.sortie(
        &["rerun", &run, "a", "--downstream"],
        &[],
        Duration::from_secs(60),
    );
    out.ok();
    let st = poll_until(
        "the re-run to finish",
        RUN_LIMIT,
        Duration::from_secs(1),
        || {
            let st = sp.status(&run);
            let rerun = ["a", "b", "c"]
                .iter()
                .all(|n| step_of(&st, n)["attempts"] == 2);
            let over = st["state"] == "failed" || st["state"] == "cancelled";
            ((rerun && st["state"] == "succeeded") || over).then_some(st)
        },
    );
    assert_eq!(st["state"], "succeeded", "{st}");
    for name in ["a", "b", "c"] {
        let s = step_of(&st, name);
        assert_eq!(s["state"], "succeeded", "{s}");
        assert_eq!(s["attempts"], 2, "{name} was not re-run: {s}");
        assert_ne!(
            s["job_id"],
            step_of(&first, name)["job_id"],
            "{name} kept its old job"
        );
    }
    let a2 = step_of(&st, "a")["job_id"].as_str().unwrap().to_string();
    let b_script = read(&attempt_dirs(&st, "b")[1].join("job.sh"));
    let submitted: Vec<Value> = sp
        .events_of(&run, "job_submitted")
        .into_iter()
        .filter(|e| e["attempt"] == 2)
        .collect();
    assert_eq!(submitted.len(), 3, "{submitted:?}");
    assert!(b_script.contains("SORTIE_ATTEMPT=2"), "{b_script}");
    let rows = sp.sacct_final(&run, 6, RUN_LIMIT);
    assert_eq!(rows.len(), 6, "{rows:#?}");
    assert!(rows.iter().all(|r| r.state == "COMPLETED"), "{rows:#?}");
    assert!(rows.iter().any(|r| r.id == a2), "{rows:#?}");
}
