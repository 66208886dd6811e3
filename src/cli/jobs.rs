//! The Slurm job commands: `sortie jobs` (the user's queue and recent history, `--watch` to follow it
//! through the budgeted poller), `sortie job ID` (details), `sortie job-cancel|hold|release|requeue
//! ID…` (actions on jobs, apart from `cancel`, which acts on runs) and `sortie cluster` (partitions).
//!
//! Exit codes: 0 done; 2 an unknown or invalid job id, or Slurm refused the action; 3 the environment
//! (no Slurm on PATH, controller unreachable, a backend that cannot do it).

use super::{EXIT_INTERNAL, EXIT_OK, EXIT_USAGE};
use crate::slurm::poller::{JobsSnapshot, PollQuery, Poller, PollerConfig, fill_from, poll_once};
use crate::slurm::{
    HistoryQuery, Job, JobId, JobQuery, JobState, Partition, SlurmBackend, SlurmError,
};
use clap::Args;
use color_eyre::eyre::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Default history: a day; `--all`: a week.
const DAY: i64 = 24 * 3600;
const WEEK: i64 = 7 * DAY;

#[derive(Args, Debug, Clone, Default)]
pub struct BackendArgs {
    /// Ask slurmrestd (SLURM_REST_URL, SLURM_JWT) instead of running the Slurm commands; also
    /// SORTIE_SLURM_BACKEND=rest.
    #[arg(long)]
    pub rest: bool,
}

#[derive(Args, Debug)]
pub struct JobsArgs {
    /// A week of history instead of a day, and jobs cancelled before they started.
    #[arg(long)]
    pub all: bool,
    #[arg(long)]
    pub json: bool,
    /// Whose jobs (default: you).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Keep the table up to date (one squeue per cycle, at most 6 Slurm commands a minute).
    #[arg(long, conflicts_with = "json")]
    pub watch: bool,
    /// With --watch: stop after this long (e.g. `120s`).
    #[arg(long = "for", value_name = "DURATION", requires = "watch", hide = true)]
    pub for_: Option<humantime::Duration>,
    /// With --watch: the polling interval to start from (default 10s).
    #[arg(long, value_name = "DURATION", requires = "watch", hide = true)]
    pub interval: Option<humantime::Duration>,
    /// With --watch: most Slurm commands per minute.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 6,
        requires = "watch",
        hide = true
    )]
    pub budget: u32,
    #[command(flatten)]
    pub backend: BackendArgs,
}

#[derive(Args, Debug)]
pub struct JobArgs {
    /// The job id (`123`, or an array task `123_4`).
    pub id: String,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub backend: BackendArgs,
}

#[derive(Args, Debug)]
pub struct JobIdsArgs {
    /// Job ids (`123`, `123_4`, or an array's `123` for all its tasks).
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
    #[command(flatten)]
    pub backend: BackendArgs,
}

#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// What `job-cancel`, `hold`, `release` and `requeue` do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Cancel,
    Hold,
    Release,
    Requeue,
}

impl Action {
    fn done(self) -> &'static str {
        match self {
            Action::Cancel => "cancelled",
            Action::Hold => "held",
            Action::Release => "released",
            Action::Requeue => "requeued",
        }
    }
}

/// The backend asked for, or the exit code after saying why there is none.
fn backend(args: &BackendArgs) -> std::result::Result<Arc<dyn SlurmBackend + Send + Sync>, i32> {
    use crate::slurm::connect::{ConnectError, open};
    open(args.rest, None, None).map_err(|e| {
        eprintln!("sortie: {e}");
        match e {
            ConnectError::Usage(_) => EXIT_USAGE,
            ConnectError::Missing(_) => EXIT_INTERNAL,
        }
    })
}

/// Says what went wrong talking to Slurm, on one line, and picks the exit code.
fn slurm_failure(e: &SlurmError, what: &str) -> i32 {
    match e {
        SlurmError::Spawn { cmd, message } => {
            eprintln!("sortie: no SLURM found on this host ({cmd}: {message})");
            EXIT_INTERNAL
        }
        SlurmError::Transient { message, .. } => {
            eprintln!(
                "sortie: {what}: the Slurm controller is unreachable or overloaded: {message}"
            );
            EXIT_INTERNAL
        }
        SlurmError::TimedOut { after, .. } => {
            eprintln!(
                "sortie: {what}: the Slurm controller did not answer within {}",
                humantime::format_duration(*after)
            );
            EXIT_INTERNAL
        }
        SlurmError::InvalidJob { message, .. } => {
            eprintln!("sortie: {what}: {}", first_line(message));
            EXIT_USAGE
        }
        other => {
            eprintln!("sortie: {what}: {other}");
            EXIT_INTERNAL
        }
    }
}

fn first_line(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The JSON form of a job: the typed model, with the state spelled out and efficiencies computed.
#[derive(Debug, Serialize)]
pub struct JobView {
    pub id: String,
    pub job_id_raw: Option<u64>,
    pub array_job_id: Option<u64>,
    pub array_task_id: Option<u32>,
    pub name: String,
    pub user: Option<String>,
    pub account: Option<String>,
    pub partition: Option<String>,
    /// `RUNNING`, `COMPLETED`, ... (unknown states verbatim).
    pub state: String,
    /// `R`, `CD`, ... (`?` when unknown).
    pub state_code: String,
    /// queued, running, suspended, succeeded, failed, cancelled, preempted, unknown.
    pub state_class: String,
    pub flags: Vec<String>,
    pub reason: Option<String>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// Unix seconds; for a pending job, the scheduler's estimates.
    pub submit: Option<i64>,
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub time_used_s: Option<u64>,
    /// `null`: unlimited or unknown.
    pub time_limit_s: Option<u64>,
    pub elapsed_s: Option<u64>,
    pub nodes: Option<String>,
    pub cpus: Option<u32>,
    pub mem_mb: Option<u64>,
    pub gpus: Option<u32>,
    pub gres: Option<String>,
    pub work_dir: Option<String>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    pub dependency: Option<String>,
    pub comment: Option<String>,
    pub total_cpu_s: Option<f64>,
    pub max_rss_mb: Option<f64>,
    /// TotalCPU / (Elapsed × CPUs), 0..1 (more with hyperthreads), for finished jobs.
    pub cpu_efficiency: Option<f64>,
    /// MaxRSS / requested memory.
    pub mem_efficiency: Option<f64>,
}

impl From<&Job> for JobView {
    fn from(j: &Job) -> JobView {
        JobView {
            id: j.id.clone(),
            job_id_raw: j.job_id_raw,
            array_job_id: j.array_job_id,
            array_task_id: j.array_task_id,
            name: j.name.clone(),
            user: j.user.clone(),
            account: j.account.clone(),
            partition: j.partition.clone(),
            state: j.state.name().to_string(),
            state_code: j.state.code().to_string(),
            state_class: format!("{:?}", j.state.class()).to_ascii_lowercase(),
            flags: j.flags.clone(),
            reason: j.reason.clone(),
            exit_code: j.exit_code,
            signal: j.signal,
            submit: j.submit,
            start: j.start,
            end: j.end,
            time_used_s: j.time_used_s,
            time_limit_s: j.time_limit_s,
            elapsed_s: j.elapsed_s,
            nodes: j.nodes.clone(),
            cpus: j.cpus,
            mem_mb: j.mem_mb,
            gpus: j.gpus,
            gres: j.gres.clone(),
            work_dir: j.work_dir.clone(),
            stdout: j.stdout.clone(),
            stderr: j.stderr.clone(),
            dependency: j.dependency.clone(),
            comment: j.comment.clone(),
            total_cpu_s: j.total_cpu_s,
            max_rss_mb: j.max_rss_mb,
            cpu_efficiency: j.cpu_efficiency().map(round3),
            mem_efficiency: j.mem_efficiency().map(round3),
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

// ---------------------------------------------------------------------------------------------
// sortie jobs

pub fn jobs(a: JobsArgs) -> Result<i32> {
    let backend = match backend(&a.backend) {
        Ok(b) => b,
        Err(code) => return Ok(code),
    };
    let user = a.user.clone().unwrap_or_else(crate::util::user);
    let window = if a.all { WEEK } else { DAY };
    if a.watch {
        return watch(backend, &a, user, window);
    }
    let query = PollQuery {
        user: Some(user.clone()),
        ids: Vec::new(),
        history_since: Some(now_unix() - window),
        partitions: false,
    };
    let snap = match poll_once(backend.as_ref(), &query) {
        Ok(s) => s,
        Err(e) => return Ok(slurm_failure(&e, "cannot list jobs")),
    };
    if let Some(err) = &snap.error {
        eprintln!("sortie: warning: {err}");
    }
    let jobs = shown(&snap.jobs, a.all, now_unix() - window);
    if a.json {
        let views: Vec<JobView> = jobs.iter().map(|j| JobView::from(*j)).collect();
        say!("{}", serde_json::to_string_pretty(&views)?);
        return Ok(EXIT_OK);
    }
    if jobs.is_empty() {
        say!(
            "no jobs for {user} in the queue or in the last {}",
            if a.all { "7 days" } else { "24 h" }
        );
        return Ok(EXIT_OK);
    }
    for line in table(&jobs) {
        say!("{line}");
    }
    Ok(EXIT_OK)
}

/// The jobs a listing shows: live ones, and finished ones that ended within the window (by
/// default only those that started: a job cancelled while pending is noise).
fn shown(jobs: &[Job], all: bool, since: i64) -> Vec<&Job> {
    jobs.iter()
        .filter(|j| {
            j.is_active()
                || matches!(j.state, JobState::Unknown(_))
                || (j.end.or(j.submit).is_none_or(|t| t >= since)
                    && (all || j.nodes.is_some() || j.state != JobState::Cancelled))
        })
        .collect()
}

/// `M:SS`, `H:MM:SS`, `D-HH:MM:SS`, as Slurm writes durations.
fn clock(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}-{h:02}:{m:02}:{s:02}")
    } else if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// Five cells of `▰▱`: how much of the limit is used.
fn bar(used: u64, limit: u64) -> String {
    let filled = ((used as f64 / limit.max(1) as f64) * 5.0)
        .round()
        .clamp(0.0, 5.0) as usize;
    format!("{}{}", "▰".repeat(filled), "▱".repeat(5 - filled))
}

fn used_time(j: &Job) -> Option<u64> {
    if j.is_finished() {
        j.elapsed_s.or(j.time_used_s)
    } else {
        j.time_used_s
    }
}

fn time_cell(j: &Job) -> String {
    let used = used_time(j);
    let used_text = used.map_or_else(|| "-".to_string(), clock);
    match j.time_limit_s {
        Some(limit) => {
            let b = used
                .map(|u| format!(" {}", bar(u, limit)))
                .unwrap_or_default();
            format!("{used_text} / {}{b}", clock(limit))
        }
        None => format!("{used_text} / ∞"),
    }
}

fn where_cell(j: &Job) -> String {
    if j.state.class() == crate::slurm::StateClass::Queued {
        return format!("({})", j.reason.as_deref().unwrap_or("None"));
    }
    let nodes = j.nodes.clone().unwrap_or_default();
    if !j.is_finished() {
        return nodes;
    }
    let outcome = match (j.exit_code, j.signal) {
        (_, Some(sig)) if sig != 0 => format!("signal {sig}"),
        (Some(code), _) if code != 0 => format!("exit {code}"),
        _ => String::new(),
    };
    match (nodes.is_empty(), outcome.is_empty()) {
        (_, true) => nodes,
        (true, false) => format!("({outcome})"),
        (false, false) => format!("{nodes} ({outcome})"),
    }
}

fn percent(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |x| format!("{:.0}%", x * 100.0))
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(n - 1).collect();
        out.push('…');
        out
    }
}

/// The table lines: header, then one row per job.
fn table(jobs: &[&Job]) -> Vec<String> {
    let header = [
        "JOBID",
        "NAME",
        "STATE",
        "PARTITION",
        "TIME",
        "NODES/REASON",
        "CPU%",
        "MEM%",
    ];
    let rows: Vec<[String; 8]> = jobs
        .iter()
        .map(|j| {
            let finished = j.is_finished();
            [
                j.id.clone(),
                clip(&j.name, 28),
                format!("{} {}", j.state.glyph(), j.state.code()),
                j.partition.clone().unwrap_or_default(),
                time_cell(j),
                clip(&where_cell(j), 32),
                if finished {
                    percent(j.cpu_efficiency())
                } else {
                    String::new()
                },
                if finished {
                    percent(j.mem_efficiency())
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            let pad = w - cell.chars().count();
            // Numbers right-aligned, the rest left.
            if i >= 6 {
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            } else {
                out.push_str(cell);
                if i + 1 < cells.len() {
                    out.push_str(&" ".repeat(pad));
                }
            }
            if i + 1 < cells.len() {
                out.push_str("  ");
            }
        }
        out.trim_end().to_string()
    };
    let mut out = vec![line(&header.map(String::from))];
    out.extend(rows.iter().map(|r| line(r)));
    out
}

/// `sortie jobs --watch`: the budgeted poller, the table redrawn on each snapshot.
fn watch(
    backend: Arc<dyn SlurmBackend + Send + Sync>,
    a: &JobsArgs,
    user: String,
    window: i64,
) -> Result<i32> {
    use std::io::IsTerminal;
    let defaults = PollerConfig::default();
    let interval = a.interval.map_or(defaults.interval, Into::into);
    let config = PollerConfig {
        user: Some(user.clone()),
        interval,
        max_interval: defaults.max_interval.max(interval),
        budget_per_min: a.budget.max(1),
        history_window: Duration::from_secs(window as u64),
        // The table shows no partitions: don't spend the budget on them.
        partitions_every: None,
        ..defaults
    };
    let started = Instant::now();
    let until = a.for_.map(|d| started + Duration::from(d));
    // Another user's jobs are not this user's view: poll them alone.
    let handle = if user == crate::util::user() {
        Poller::spawn_shared(backend, config)
    } else {
        Poller::spawn(backend, config)
    };
    let rx = handle.subscribe();
    let terminal = std::io::stdout().is_terminal();
    let mut last: Option<Arc<JobsSnapshot>> = None;
    let mut busiest = 0.0f64;
    loop {
        let wait = match until {
            Some(u) if Instant::now() >= u => break,
            Some(u) => (u - Instant::now()).min(Duration::from_secs(1)),
            None => Duration::from_secs(1),
        };
        match rx.recv_timeout(wait) {
            Ok(snap) => {
                draw(&snap, &user, a.all, window, terminal);
                busiest = busiest.max(snap.rpc_per_min);
                last = Some(snap);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    handle.stop();
    let snap = last.unwrap_or_else(|| handle.snapshot());
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "sortie: watched for {:.0}s: {} cycles, {} Slurm commands ({:.1}/min on average, at most {} in any minute)",
        secs,
        snap.cycles,
        snap.rpc_total,
        snap.rpc_total as f64 * 60.0 / secs.max(1.0),
        busiest
    );
    Ok(EXIT_OK)
}

fn draw(snap: &JobsSnapshot, user: &str, all: bool, window: i64, terminal: bool) {
    let mut out = String::new();
    if terminal {
        out.push_str("\x1b[H\x1b[2J");
    }
    let updated = snap
        .taken_at
        .map(|t| {
            chrono::DateTime::<chrono::Local>::from(t)
                .format("%H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| "never".into());
    let age = snap
        .age()
        .map_or_else(String::new, |a| format!(" ({}s ago)", a.as_secs()));
    out.push_str(&format!(
        "jobs of {user} · updated {updated}{age} · next in {}s · {:.0} Slurm commands/min\n",
        snap.next_poll_in.as_secs(),
        snap.rpc_per_min
    ));
    if let Some(err) = &snap.error {
        let tag = if snap.stale { "STALE: " } else { "" };
        out.push_str(&format!("{tag}{err}\n"));
    }
    let jobs = shown(&snap.jobs, all, now_unix() - window);
    if jobs.is_empty() {
        out.push_str("no jobs\n");
    }
    for line in table(&jobs) {
        out.push_str(&line);
        out.push('\n');
    }
    if !terminal {
        out.push('\n');
    }
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
}

// ---------------------------------------------------------------------------------------------
// sortie job ID

#[derive(Serialize)]
struct DetailView {
    #[serde(flatten)]
    job: JobView,
    /// Every `Key=Value` of `scontrol show job` (empty when the job came from accounting).
    fields: BTreeMap<String, String>,
    /// `queue` (scontrol) or `accounting` (sacct).
    source: &'static str,
}

pub fn job(a: JobArgs) -> Result<i32> {
    if JobId::parse(&a.id).is_none() {
        eprintln!("sortie: job {}: {}", a.id, crate::slurm::jobid::EXPECTED);
        return Ok(EXIT_USAGE);
    }
    let backend = match backend(&a.backend) {
        Ok(b) => b,
        Err(code) => return Ok(code),
    };
    let what = format!("job {}", a.id);
    let details = match backend.job_details(&a.id) {
        Ok(d) => d,
        Err(e) => return Ok(slurm_failure(&e, &what)),
    };
    let mut views: Vec<DetailView> = Vec::new();
    let finished: Vec<String> = details
        .iter()
        .filter(|d| d.job.is_finished())
        .map(|d| d.job.id.clone())
        .collect();
    // Efficiency and the true exit code live in accounting; ask only when the job has ended.
    let acct = if details.is_empty() || !finished.is_empty() {
        let q = HistoryQuery {
            since: 0,
            ids: vec![a.id.clone()],
            ..HistoryQuery::default()
        };
        match backend.history(&q) {
            Ok(h) => h,
            Err(e) if details.is_empty() => return Ok(slurm_failure(&e, &what)),
            Err(e) => {
                eprintln!("sortie: warning: accounting: {e}");
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    for d in &details {
        let job = match acct.iter().find(|h| h.id == d.job.id) {
            Some(h) if d.job.is_finished() => fill_from(h.clone(), &d.job),
            _ => d.job.clone(),
        };
        views.push(DetailView {
            job: JobView::from(&job),
            fields: d.fields.clone(),
            source: "queue",
        });
    }
    if details.is_empty() {
        for h in &acct {
            views.push(DetailView {
                job: JobView::from(h),
                fields: BTreeMap::new(),
                source: "accounting",
            });
        }
    }
    if views.is_empty() {
        eprintln!(
            "sortie: job {}: Invalid job id specified (not in the queue, not in accounting)",
            a.id
        );
        return Ok(EXIT_USAGE);
    }
    if a.json {
        say!("{}", serde_json::to_string_pretty(&views)?);
        return Ok(EXIT_OK);
    }
    for (i, v) in views.iter().enumerate() {
        if i > 0 {
            say!("");
        }
        for line in detail_lines(v) {
            say!("{line}");
        }
    }
    Ok(EXIT_OK)
}

fn local(ts: Option<i64>) -> String {
    ts.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| "-".into())
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "-".to_string(), ToString::to_string)
}

fn detail_lines(v: &DetailView) -> Vec<String> {
    let j = &v.job;
    let glyph = JobState::parse(&j.state).glyph();
    let mut state = format!("{glyph} {} {}", j.state_code, j.state);
    if !j.flags.is_empty() {
        state.push_str(&format!(" [{}]", j.flags.join(",")));
    }
    if let Some(code) = j.exit_code {
        state.push_str(&format!("  exit {code}"));
    }
    if let Some(sig) = j.signal.filter(|s| *s != 0) {
        state.push_str(&format!("  signal {sig}"));
    }
    let mut out = vec![format!("job {}  {}  {state}", j.id, j.name)];
    let mut row = |k: &str, v: String| out.push(format!("  {k:<11}{v}"));
    row(
        "user",
        format!(
            "{}  account {}",
            opt(&j.user),
            j.account.as_deref().unwrap_or("-")
        ),
    );
    row(
        "partition",
        format!(
            "{}  nodes {}  cpus {}  mem {}  gpus {}",
            opt(&j.partition),
            opt(&j.nodes),
            opt(&j.cpus),
            j.mem_mb.map_or_else(|| "-".into(), |m| format!("{m}M")),
            opt(&j.gpus)
        ),
    );
    if let Some(r) = &j.reason {
        row("reason", r.clone());
    }
    row("submitted", local(j.submit));
    // For a job that has not started or ended yet these are the scheduler's estimates.
    match j.state_class.as_str() {
        "queued" => row("starts", format!("{} (estimate)", local(j.start))),
        "running" | "suspended" => {
            row("started", local(j.start));
            row("ends", format!("{} (at the latest)", local(j.end)));
        }
        _ => {
            row("started", local(j.start));
            row("ended", local(j.end));
        }
    }
    let used = if j.elapsed_s.is_some() && j.state_class != "running" {
        j.elapsed_s
    } else {
        j.time_used_s
    };
    let used_text = used.map_or_else(|| "-".to_string(), clock);
    let limit_text = j
        .time_limit_s
        .map_or_else(|| "unlimited".to_string(), clock);
    let b = match (used, j.time_limit_s) {
        (Some(u), Some(l)) => format!(" {}", bar(u, l)),
        _ => String::new(),
    };
    row("time", format!("{used_text} / {limit_text}{b}"));
    row("work dir", opt(&j.work_dir));
    let unknown_path = || {
        if v.source == "accounting" {
            "unknown (accounting keeps no output paths before Slurm 23.11)".to_string()
        } else {
            "-".to_string()
        }
    };
    row("stdout", j.stdout.clone().unwrap_or_else(unknown_path));
    row("stderr", j.stderr.clone().unwrap_or_else(unknown_path));
    if let Some(e) = j.cpu_efficiency {
        row(
            "cpu eff",
            format!(
                "{:.0}% (TotalCPU {:.1}s over {} × {} CPU)",
                e * 100.0,
                j.total_cpu_s.unwrap_or(0.0),
                j.elapsed_s.map_or_else(|| "-".into(), clock),
                opt(&j.cpus)
            ),
        );
    }
    if let Some(e) = j.mem_efficiency {
        row(
            "mem eff",
            format!(
                "{:.0}% (MaxRSS {:.0}M of {}M)",
                e * 100.0,
                j.max_rss_mb.unwrap_or(0.0),
                opt(&j.mem_mb)
            ),
        );
    }
    if let Some(d) = &j.dependency {
        row("dependency", d.clone());
    }
    if let Some(c) = &j.comment {
        row("comment", c.clone());
    }
    if let Some(cmd) = v.fields.get("Command").filter(|c| c.as_str() != "(null)") {
        row("command", cmd.clone());
    }
    if v.source == "accounting" {
        row("source", "accounting (the controller forgot it)".into());
    }
    out
}

// ---------------------------------------------------------------------------------------------
// sortie job-cancel | hold | release | requeue

pub fn act(action: Action, a: JobIdsArgs) -> Result<i32> {
    let bad: Vec<&String> = a
        .ids
        .iter()
        .filter(|id| JobId::parse(id).is_none())
        .collect();
    if !bad.is_empty() {
        for id in bad {
            eprintln!("sortie: job {id}: {}", crate::slurm::jobid::EXPECTED);
        }
        return Ok(EXIT_USAGE);
    }
    let backend = match backend(&a.backend) {
        Ok(b) => b,
        Err(code) => return Ok(code),
    };
    match action {
        Action::Cancel => cancel(backend.as_ref(), &a.ids),
        _ => update(backend.as_ref(), action, &a.ids),
    }
}

/// scancel exits 0 and says nothing for an unknown id, so look the ids up first (one squeue).
fn cancel(backend: &dyn SlurmBackend, ids: &[String]) -> Result<i32> {
    let live = match backend.jobs(&JobQuery {
        ids: ids.to_vec(),
        ..JobQuery::default()
    }) {
        Ok(j) => j,
        Err(e) => return Ok(slurm_failure(&e, "job-cancel")),
    };
    let mut code = EXIT_OK;
    let mut to_cancel: Vec<(String, String)> = Vec::new();
    let mut unknown: Vec<String> = Vec::new();
    for id in ids {
        let mine: Vec<&Job> = live
            .iter()
            .filter(|j| crate::slurm::backend::id_matches(j, id))
            .collect();
        if let Some(j) = mine.iter().find(|j| j.is_active()) {
            to_cancel.push((id.clone(), j.state.name().to_string()));
        } else if let Some(j) = mine.first() {
            say!(
                "job {id}: already ended ({}): nothing to cancel",
                j.state.name()
            );
        } else {
            unknown.push(id.clone());
        }
    }
    if !unknown.is_empty() {
        // Purged from the controller (MinJobAge) or never existed: accounting tells which.
        let found = backend
            .history(&HistoryQuery {
                since: 0,
                ids: unknown.clone(),
                ..HistoryQuery::default()
            })
            .unwrap_or_default();
        for id in &unknown {
            match found
                .iter()
                .find(|j| crate::slurm::backend::id_matches(j, id))
            {
                Some(j) => say!(
                    "job {id}: already ended ({}): nothing to cancel",
                    j.state.name()
                ),
                None => {
                    eprintln!("sortie: job {id}: Invalid job id specified");
                    code = EXIT_USAGE;
                }
            }
        }
    }
    if to_cancel.is_empty() {
        return Ok(code);
    }
    let targets: Vec<String> = to_cancel.iter().map(|(id, _)| id.clone()).collect();
    match backend.cancel(&targets) {
        Ok(()) => {
            for (id, was) in &to_cancel {
                say!("cancelled job {id} (was {was})");
            }
            Ok(code)
        }
        Err(e) => Ok(per_job_failures(Action::Cancel, &targets, &e).max(code)),
    }
}

fn update(backend: &dyn SlurmBackend, action: Action, ids: &[String]) -> Result<i32> {
    let result = match action {
        Action::Hold => backend.hold(ids),
        Action::Release => backend.release(ids),
        Action::Requeue => backend.requeue(ids),
        Action::Cancel => backend.cancel(ids),
    };
    match result {
        Ok(()) => {
            for id in ids {
                say!("{} job {id}", action.done());
            }
            Ok(EXIT_OK)
        }
        Err(e) => Ok(per_job_failures(action, ids, &e)),
    }
}

/// scontrol reports each refused id as `<message> for job <id>`: the others were done.
fn per_job_failures(action: Action, ids: &[String], e: &SlurmError) -> i32 {
    let verb = format!("{action:?}").to_ascii_lowercase();
    let message = match e {
        SlurmError::InvalidJob { message, .. } => message.clone(),
        SlurmError::Failed { stderr, .. } => stderr.clone(),
        SlurmError::Unsupported { .. } => {
            eprintln!("sortie: {verb}: {e}");
            return EXIT_INTERNAL;
        }
        other => return slurm_failure(other, &verb),
    };
    let per_id = refusals(&message);
    if per_id.is_empty() {
        for id in ids {
            eprintln!("sortie: job {id}: {}", clean(first_line(&message)));
        }
        return EXIT_USAGE;
    }
    for id in ids {
        match per_id.get(id.as_str()) {
            Some(why) => eprintln!("sortie: job {id}: {why}"),
            None => say!("{} job {id}", action.done()),
        }
    }
    EXIT_USAGE
}

/// `Invalid job id specified for job 999` → {"999": "Invalid job id specified"}.
fn refusals(stderr: &str) -> BTreeMap<&str, &str> {
    stderr
        .lines()
        .filter_map(|l| {
            let (msg, id) = l.trim().rsplit_once(" for job ")?;
            Some((id.trim(), msg.trim()))
        })
        .collect()
}

/// Slurm's messages without the tool prefix (`scancel: error: `, `slurm_suspend error: `).
fn clean(line: &str) -> &str {
    line.rsplit_once(": ").map_or(line, |(_, m)| m).trim()
}

// ---------------------------------------------------------------------------------------------
// sortie cluster

pub fn cluster(a: ClusterArgs) -> Result<i32> {
    let backend = match backend(&a.backend) {
        Ok(b) => b,
        Err(code) => return Ok(code),
    };
    let parts = match backend.partitions() {
        Ok(p) => p,
        Err(e) => return Ok(slurm_failure(&e, "cannot read partitions")),
    };
    if a.json {
        say!("{}", serde_json::to_string_pretty(&parts)?);
        return Ok(EXIT_OK);
    }
    for line in partition_table(&parts) {
        say!("{line}");
    }
    Ok(EXIT_OK)
}

fn partition_table(parts: &[Partition]) -> Vec<String> {
    let mut out = vec![format!(
        "{:<12} {:<6} {:>11} {:>11} {:>11}  {}",
        "PARTITION", "STATE", "NODES idle", "CPUS idle", "GPUS idle", "MAX TIME"
    )];
    for p in parts {
        let name = if p.default {
            format!("{}*", p.name)
        } else {
            p.name.clone()
        };
        out.push(format!(
            "{:<12} {:<6} {:>11} {:>11} {:>11}  {}",
            name,
            p.state,
            format!("{}/{}", p.nodes_idle, p.nodes_total),
            format!("{}/{}", p.cpus_idle, p.cpus_total),
            format!("{}/{}", p.gpus_idle, p.gpus_total),
            p.max_time_s.map_or_else(|| "unlimited".into(), clock)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_read_per_job() {
        let stderr = "Invalid job id specified for job 999999\nslurm_suspend error: Invalid job id specified\nJob is pending execution for job 170\n";
        let r = refusals(stderr);
        assert_eq!(r.get("999999"), Some(&"Invalid job id specified"));
        assert_eq!(r.get("170"), Some(&"Job is pending execution"));
        assert_eq!(r.len(), 2);
        assert_eq!(
            clean("scancel: error: Kill job error on job id 9: Invalid job id specified"),
            "Invalid job id specified"
        );
    }

    #[test]
    fn time_cells_and_bars() {
        assert_eq!(clock(59), "0:59");
        assert_eq!(clock(3661), "1:01:01");
        assert_eq!(clock(90061), "1-01:01:01");
        assert_eq!(bar(0, 60), "▱▱▱▱▱");
        assert_eq!(bar(30, 60), "▰▰▰▱▱");
        assert_eq!(bar(600, 60), "▰▰▰▰▰");
        let running = Job {
            state: JobState::Running,
            time_used_s: Some(30),
            time_limit_s: Some(60),
            ..Job::default()
        };
        assert_eq!(time_cell(&running), "0:30 / 1:00 ▰▰▰▱▱");
        let pending = Job {
            time_limit_s: None,
            reason: Some("Priority".into()),
            ..Job::default()
        };
        assert_eq!(time_cell(&pending), "- / ∞");
        assert_eq!(where_cell(&pending), "(Priority)");
        let failed = Job {
            state: JobState::Failed,
            nodes: Some("vm".into()),
            exit_code: Some(3),
            ..Job::default()
        };
        assert_eq!(where_cell(&failed), "vm (exit 3)");
    }

    #[test]
    fn table_rows_and_history_filter() {
        let done = Job {
            id: "7".into(),
            name: "train".into(),
            state: JobState::Completed,
            start: Some(100),
            end: Some(200),
            elapsed_s: Some(100),
            cpus: Some(2),
            total_cpu_s: Some(50.0),
            mem_mb: Some(1000),
            max_rss_mb: Some(100.0),
            ..Job::default()
        };
        let never_ran = Job {
            id: "8".into(),
            state: JobState::Cancelled,
            end: Some(200),
            ..Job::default()
        };
        let old = Job {
            id: "6".into(),
            state: JobState::Completed,
            start: Some(1),
            end: Some(10),
            ..Job::default()
        };
        let jobs = vec![done.clone(), never_ran, old];
        let ids = |v: Vec<&Job>| v.iter().map(|j| j.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(shown(&jobs, false, 50)), ["7"]);
        assert_eq!(ids(shown(&jobs, true, 50)), ["7", "8"]);
        let lines = table(&[&done]);
        assert!(lines[0].starts_with("JOBID  NAME"), "{lines:?}");
        assert!(lines[1].contains("✓ CD"), "{lines:?}");
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(cells[cells.len() - 2..], ["25%", "10%"], "{lines:?}");
        let v = serde_json::to_value(JobView::from(&done)).unwrap();
        assert_eq!(v["state"], "COMPLETED");
        assert_eq!(v["state_code"], "CD");
        assert_eq!(v["state_class"], "succeeded");
        assert_eq!(v["cpu_efficiency"], 0.25);
        assert_eq!(v["mem_efficiency"], 0.1);
    }
}
