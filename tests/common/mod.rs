//! Shared helpers for the integration tests: a throw-away project (its own directory and its own
//! `SORTIE_STATE_DIR`), running the `sortie` binary with a deadline, reading `status --json`, polling with
//! deadlines, and process checks. Every project cleans up the engines and step process groups its runs
//! left behind when it is dropped (only processes whose command line names the project's run directory).

#![allow(dead_code)]

use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub mod optuna;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_sortie");

/// Environment variables of sortie that must not leak from the developer's shell into a test.
const SORTIE_VARS: &[&str] = &[
    "SORTIE_PROJECT",
    "SORTIE_HOST",
    "SORTIE_STATE_DIR",
    "SORTIE_LEASE_TIMEOUT",
    "SORTIE_KILL_GRACE",
    "SORTIE_HEARTBEAT_GRACE",
    "SORTIE_INDEX_JOURNAL",
    "SORTIE_DEMO_SECONDS",
    "SORTIE_RUN_ID",
    "SORTIE_STEP",
    "SORTIE_STEP_DIR",
    "SORTIE_METRICS",
];

/// What a finished command printed.
#[derive(Debug)]
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub what: String,
}

impl Out {
    /// Panics with everything the command printed unless it exited with `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "`{}` exited with {:?}, expected {code}\n--- stdout\n{}\n--- stderr\n{}",
            self.what,
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.expect_code(0)
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "`{}` did not print JSON ({e})\n--- stdout\n{}\n--- stderr\n{}",
                self.what, self.stdout, self.stderr
            )
        })
    }
}

/// Runs `cmd` to completion, killing it (and failing the test) after `limit`.
#[track_caller]
pub fn run_with_deadline(mut cmd: Command, limit: Duration) -> Out {
    let what = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = so.read_to_end(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = se.read_to_end(&mut s);
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{what}` did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = start.elapsed();
    let stdout = String::from_utf8_lossy(&t_out.join().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap()).into_owned();
    Out {
        code: status.code(),
        stdout,
        stderr,
        elapsed,
        what,
    }
}

/// Polls `f` every 50 ms until it returns `Some`, failing the test with `what` after `limit`.
#[track_caller]
pub fn wait_for<T>(limit: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    poll_until(what, limit, Duration::from_millis(50), f)
}

/// Polls `f` every `every` until it returns `Some`, failing the test with `what` after `limit`.
#[track_caller]
pub fn poll_until<T>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(every);
    }
}

/// A project in a temporary directory with its own index directory.
pub struct Project {
    root: tempfile::TempDir,
    state: tempfile::TempDir,
    extra_env: Vec<(String, String)>,
}

impl Default for Project {
    fn default() -> Self {
        Self::new()
    }
}

impl Project {
    pub fn new() -> Project {
        Project {
            root: tempfile::Builder::new()
                .prefix("sortie-it-")
                .tempdir()
                .unwrap(),
            state: tempfile::Builder::new()
                .prefix("sortie-state-")
                .tempdir()
                .unwrap(),
            extra_env: Vec::new(),
        }
    }

    /// A project whose `sortie.toml` is `pipeline`.
    pub fn with_pipeline(pipeline: &str) -> Project {
        let p = Project::new();
        p.write("sortie.toml", pipeline);
        p
    }

    /// Sets an environment variable for every command this project runs.
    pub fn env(mut self, key: &str, value: &str) -> Project {
        self.extra_env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.path(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(p, content).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
    }

    /// Lines of a file the steps append to (empty if it does not exist).
    pub fn lines(&self, rel: &str) -> Vec<String> {
        std::fs::read_to_string(self.path(rel))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// A `sortie` command in the project directory, with a clean sortie environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args).current_dir(self.root());
        for v in SORTIE_VARS {
            c.env_remove(v);
        }
        c.env("SORTIE_STATE_DIR", self.state_dir())
            .env("NO_COLOR", "1")
            .env_remove("RUST_BACKTRACE");
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        c
    }

    /// Runs `sortie ARGS` with a 60 s deadline.
    #[track_caller]
    pub fn sortie(&self, args: &[&str]) -> Out {
        run_with_deadline(self.cmd(args), Duration::from_secs(60))
    }

    /// Runs `sortie ARGS` with extra environment variables.
    #[track_caller]
    pub fn sortie_env(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        let mut c = self.cmd(args);
        for (k, v) in env {
            c.env(k, v);
        }
        run_with_deadline(c, Duration::from_secs(60))
    }

    /// `sortie status [RUN] --json`, which must succeed.
    #[track_caller]
    pub fn status(&self, run: Option<&str>) -> Value {
        let mut args = vec!["status"];
        if let Some(r) = run {
            args.push(r);
        }
        args.push("--json");
        let out = self.sortie(&args);
        out.ok();
        out.json()
    }

    /// The ids of the project's runs.
    pub fn run_ids(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(self.path(".sortie/runs")) else {
            return Vec::new();
        };
        let mut v: Vec<String> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// The only run of the project.
    #[track_caller]
    pub fn only_run(&self) -> String {
        let ids = self.run_ids();
        assert_eq!(ids.len(), 1, "expected exactly one run, found {ids:?}");
        ids[0].clone()
    }

    pub fn run_dir(&self, run: &str) -> PathBuf {
        self.path(".sortie/runs").join(run)
    }

    /// Every line of a run's event log, parsed.
    pub fn events(&self, run: &str) -> Vec<Value> {
        std::fs::read_to_string(self.run_dir(run).join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Starts `sortie run --detach ARGS...` and returns the run id it printed.
    #[track_caller]
    pub fn run_detached(&self, args: &[&str]) -> String {
        let mut all = vec!["run", "--detach"];
        all.extend_from_slice(args);
        let out = self.sortie(&all);
        out.ok();
        let id = out
            .stdout
            .split_whitespace()
            .nth(1)
            .unwrap_or_else(|| panic!("no run id in {:?}", out.stdout))
            .to_string();
        assert!(
            self.run_dir(&id).is_dir(),
            "`run --detach` printed {:?}, which is not a run directory",
            out.stdout
        );
        id
    }

    /// Polls `status RUN --json` until `pred` holds; returns that status.
    #[track_caller]
    pub fn wait_status(
        &self,
        run: &str,
        limit: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let mut last = Value::Null;
        let start = Instant::now();
        loop {
            let out = self.sortie(&["status", run, "--json"]);
            if out.code == Some(0) {
                let v = out.json();
                if pred(&v) {
                    return v;
                }
                last = v;
            }
            if start.elapsed() > limit {
                panic!(
                    "timed out after {limit:?} waiting for {what}; last status:\n{}",
                    serde_json::to_string_pretty(&last).unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the run is no longer running and its engine is gone.
    #[track_caller]
    pub fn wait_finished(&self, run: &str, limit: Duration) -> Value {
        self.wait_status(run, limit, "the run to finish", |v| {
            v["state"] != "running" && v["engine"]["alive"] != true
        })
    }

    /// Waits until `step` of `run` is in `state`.
    #[track_caller]
    pub fn wait_step(&self, run: &str, step: &str, state: &str, limit: Duration) -> Value {
        self.wait_status(run, limit, &format!("{step} to be {state}"), |v| {
            step_of(v, step)["state"] == state
        })
    }

    /// Kills what the project's runs left running: engines and step process groups whose command line
    /// mentions the run directory.
    fn cleanup(&self) {
        for run in self.run_ids() {
            let dir = self.run_dir(&run);
            let dir_text = dir.to_string_lossy().into_owned();
            for ev in self.events(&run) {
                let pid = ev["pid"].as_u64();
                let Some(pid) = pid else { continue };
                let mentions = cmdline(pid as u32).is_some_and(|c| c.contains(&dir_text));
                if !mentions {
                    continue;
                }
                match ev["type"].as_str() {
                    Some("engine_started") => kill(pid as i32, false),
                    Some("attempt_started") => kill(pid as i32, true),
                    _ => {}
                }
            }
            // A detached engine that had not written an event yet.
            if let Ok(rd) = std::fs::read_dir(dir.join("lease")) {
                for e in rd.flatten() {
                    let v: Option<Value> = std::fs::read(e.path())
                        .ok()
                        .and_then(|b| serde_json::from_slice(&b).ok());
                    if let Some(pid) = v.and_then(|v| v["pid"].as_u64())
                        && cmdline(pid as u32).is_some_and(|c| c.contains(&dir_text))
                    {
                        kill(pid as i32, false);
                    }
                }
            }
        }
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        self.cleanup();
    }
}

fn kill(pid: i32, group: bool) {
    use nix::sys::signal::{Signal, kill, killpg};
    use nix::unistd::Pid;
    if group {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    } else {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Sends SIGKILL to one process this test started.
pub fn kill_pid(pid: u32) {
    kill(pid as i32, false);
}

/// A process's command line, NUL bytes turned into spaces.
pub fn cmdline(pid: u32) -> Option<String> {
    let b = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(String::from_utf8_lossy(&b).replace('\0', " "))
}

/// The state letter of a process (`R`, `S`, `Z`...), or `None` when there is no such process.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.chars().next()
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    matches!(proc_state(pid), Some(s) if s != 'Z' && s != 'X')
}

/// The step (instance) called `name` in a `status --json` value.
#[track_caller]
pub fn step_of<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["steps"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| {
            panic!(
                "no step {name:?} in status:\n{}",
                serde_json::to_string_pretty(status).unwrap()
            )
        })
}

/// `name → state` of every step in a `status --json` value.
pub fn states(status: &Value) -> Vec<(String, String)> {
    status["steps"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["name"].as_str().unwrap_or("").to_string(),
                        s["state"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Reads pids (one per line) from a file a step wrote.
pub fn read_pids(path: &Path) -> Vec<u32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Kills recorded helper processes (e.g. `sleep`s a step started) that are still alive, so a failing test
/// leaves nothing behind. Only processes whose command line contains `expect` are touched.
pub fn kill_leftovers(pids: &[u32], expect: &str) {
    for &p in pids {
        if alive(p) && cmdline(p).is_some_and(|c| c.contains(expect)) {
            kill_pid(p);
        }
    }
}

/// Waits until none of `pids` is alive; on timeout returns the ones left.
pub fn wait_dead(pids: &[u32], limit: Duration) -> Result<(), Vec<u32>> {
    let start = Instant::now();
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|&p| alive(p)).collect();
        if left.is_empty() {
            return Ok(());
        }
        if start.elapsed() > limit {
            return Err(left);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A path quoted for a shell command line (tmux sessions run one).
pub fn shell_quote(p: &Path) -> String {
    shlex::try_quote(&p.to_string_lossy())
        .expect("quotable path")
        .into_owned()
}

/// `SORTIE_REQUIRE_SLURM=1`: every cluster test must run, not skip (CI sets it).
pub fn required() -> bool {
    std::env::var("SORTIE_REQUIRE_SLURM").is_ok_and(|v| v == "1")
}

/// Whether a Slurm cluster answers; without one, skip (or fail when it is required).
pub fn cluster() -> bool {
    let why = match Command::new("sinfo").args(["-h", "-o", "%P"]).output() {
        Ok(out) if out.status.success() => return true,
        Ok(out) => format!(
            "sinfo failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => format!("sinfo: {e}"),
    };
    assert!(
        !required(),
        "SORTIE_REQUIRE_SLURM=1 but no Slurm cluster answers: {why}"
    );
    println!("skipping: no Slurm cluster (set SORTIE_REQUIRE_SLURM=1 to require it)");
    false
}

/// The env file tests/cluster/start.sh writes.
pub const SLURM_ENV_FILE: &str = "/tmp/sortie-slurm/env";

/// `KEY=value` lines of the env file start.sh writes.
pub fn env_file() -> Option<Vec<(String, String)>> {
    let text = std::fs::read_to_string(SLURM_ENV_FILE).ok()?;
    Some(
        text.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| {
                let v = v.split(" #").next().unwrap_or(v).trim();
                (
                    k.trim().to_string(),
                    v.trim_matches(['\'', '"']).to_string(),
                )
            })
            .collect(),
    )
}

/// The first snapshot the TUI's real data thread sends for `run` of project `root` (what the TUI would
/// show of it), for tests that compare it with `status`.
pub fn tui_snapshot(root: &Path, run: &str) -> sortie::tui::data::Snapshot {
    use sortie::tui::data::{DataMsg, Timing, Watch};
    let (tx, rx) = std::sync::mpsc::channel();
    let (wtx, wrx) = std::sync::mpsc::channel();
    wtx.send(Watch {
        run: Some(run.to_string()),
        ..Default::default()
    })
    .unwrap();
    let project = sortie::runlog::Project::new(root);
    let timing = Timing::every(Duration::from_millis(100));
    let thread = std::thread::spawn(move || {
        sortie::tui::data::run(project, wrx, move |m| tx.send(m).is_ok(), timing)
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let snap = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(DataMsg::Snapshot(s)) if s.run.as_deref() == Some(run) && !s.steps.is_empty() => {
                break *s;
            }
            Ok(_) => {}
            Err(e) => panic!("no snapshot of run {run} from the data thread: {e}"),
        }
    };
    drop(wtx);
    drop(rx);
    let _ = thread.join();
    snap
}

/// Asserts that `status --json` and the TUI's snapshot say the same of every step (state, reason, exit
/// code, whether it ended) and of the run.
pub fn assert_status_matches_tui(status: &Value, snap: &sortie::tui::data::Snapshot, run: &str) {
    for s in &snap.steps {
        let st = step_of(status, &s.name);
        assert_eq!(st["state"], s.state.as_str(), "{}: {status}", s.name);
        assert_eq!(st["reason"].as_str(), s.reason.as_deref(), "{}", s.name);
        assert_eq!(st["exit_code"].as_i64(), s.exit_code.map(i64::from));
        assert_eq!(st["ended"].is_null(), s.ended.is_none(), "{}", s.name);
    }
    let row = snap.runs.iter().find(|r| r.id == run).unwrap();
    assert_eq!(status["state"], row.state.as_str());
}
