//! The TUI's data thread: it owns its own index connection, tails the run files into it, and sends the UI
//! a snapshot only when something it shows changed. The UI tells it what it is looking at through a
//! [`Watch`]; SQLite and file reads never happen on the UI thread.

use crate::index::unattended::{self, RemoteRunning};
use crate::index::{Index, JobLink, Point, RunRow, StepRow};
use crate::runlog::liveness;
use crate::runlog::{Project, RunDir, RunState, lease};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// What the UI currently shows, so the data thread loads just that.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Watch {
    pub run: Option<String>,
    /// The step whose log is shown.
    pub step: Option<String>,
    /// A file to follow instead (a SLURM job's output); `step` then only labels it.
    pub path: Option<PathBuf>,
    pub stderr: bool,
    /// The metric drawn in the metrics pane.
    pub metric: Option<String>,
    /// Other runs whose curves of the same metric are overlaid (pinned for comparison).
    pub compare: Vec<String>,
}

/// One metric series of one step instance.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesData {
    pub run: String,
    pub step: String,
    /// The legend: the step, or `run/step` for a compared run.
    pub label: String,
    pub points: Arc<Vec<Point>>,
}

/// Everything the panes show, as of one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub runs: Vec<RunRow>,
    /// The run `steps` and `series` belong to.
    pub run: Option<String>,
    pub steps: Vec<StepRow>,
    /// Whether a live engine drives `run`.
    pub engine_alive: bool,
    /// Runs the log calls running that no live engine drives (it died): `sortie resume` takes over.
    pub dead_engines: Vec<String>,
    /// Steps of `run` that run on another host than its engine's (or with no engine): where, and their
    /// heartbeat (see [`unattended::read_unattended`], which also gave `steps` the ends nobody recorded).
    pub remote: BTreeMap<String, RemoteRunning>,
    pub metric_keys: Vec<String>,
    pub metric: Option<String>,
    pub series: Vec<SeriesData>,
    pub error: Option<String>,
    /// The Slurm jobs of every run in the index, sorted by job id (see [`job_target`]).
    pub job_links: Arc<Vec<JobLink>>,
}

/// What a Slurm job of the Jobs pane belongs to, if one of the project's runs submitted it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum JobTarget<'a> {
    /// A job, or a started task of an array job: one step instance.
    Step(&'a JobLink),
    /// The pending rest of an array job (`123_[5-9%2]`): the instances of one run it holds.
    Array { run: &'a str, steps: usize },
}

/// Finds job `id` (as the Jobs pane shows it) among `links` (sorted by job id).
pub fn job_target<'a>(links: &'a [JobLink], id: &str) -> Option<JobTarget<'a>> {
    if let Ok(i) = links.binary_search_by(|l| l.job.as_str().cmp(id)) {
        return Some(JobTarget::Step(&links[i]));
    }
    // A pending array's rest: the recorded tasks of that array (`123_5`, `123_6`, …) in its range
    // (the started ones have records of their own).
    let rest = crate::slurm::JobId::parse(id).filter(|j| j.range().is_some())?;
    let prefix = format!("{}_", rest.job);
    let from = links.partition_point(|l| l.job.as_str() < prefix.as_str());
    let tasks: Vec<&JobLink> = links[from..]
        .iter()
        .take_while(|l| l.job.starts_with(&prefix))
        .filter(|l| {
            l.job[prefix.len()..]
                .parse::<u32>()
                .is_ok_and(|t| rest.holds(t))
        })
        .collect();
    let first = tasks.first()?;
    Some(JobTarget::Array {
        run: &first.run,
        steps: tasks.len(),
    })
}

/// The tail of a step's log.
#[derive(Clone, Debug, PartialEq)]
pub struct LogTail {
    pub run: String,
    pub step: String,
    pub stderr: bool,
    pub path: PathBuf,
    pub text: String,
    /// The file is bigger than what was read (only its tail is shown).
    pub truncated: bool,
}

/// A series already read: the point count it was read at, where to go on reading, and the points.
struct CachedSeries {
    count: u64,
    attempt: u32,
    series: i64,
    last_id: Option<i64>,
    points: Arc<Vec<Point>>,
}

/// Series already read, by (run, step, metric).
type SeriesCache = HashMap<(String, String, String), CachedSeries>;

/// Messages from the data thread.
#[derive(Debug)]
pub enum DataMsg {
    Snapshot(Box<Snapshot>),
    Log(Box<LogTail>),
    /// The last successful refresh (sent when freshness changes, so the UI can mark stale data).
    Health {
        ok_at: Instant,
        error: Option<String>,
    },
}

/// How often freshness is confirmed when nothing else is sent (half the UI's stale threshold).
const HEARTBEAT: Duration = Duration::from_secs(5);

/// How much of a log file's end is read.
const LOG_TAIL_BYTES: u64 = 256 * 1024;

/// A file's size and modification time: what tells that it changed without reading it.
type Stamp = Option<(u64, std::time::SystemTime)>;

fn stamp(path: &std::path::Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

/// What a sync of the index reads, so that a poll can tell from a few `stat`s whether a sync has anything
/// to read: each run's events file and the metrics file of every attempt the index knows for it.
#[derive(Default)]
struct SyncGate {
    /// The run directories listed at the last full sync.
    ids: Vec<String>,
    /// The runs directory's stamp when `names` was read: a run created or removed changes it.
    listed_at: Stamp,
    /// Every entry of the runs directory; the runs are those with an events file.
    names: Vec<String>,
    /// Per run: the files a sync reads and their stamps, taken just before that run was last synced.
    runs: HashMap<String, Vec<(PathBuf, Stamp)>>,
    /// When everything was last synced, whatever the stamps said.
    full_at: Option<Instant>,
    /// When metrics files were last read: growing ones wait [`Timing::metrics_every`] from then.
    metrics_at: Option<Instant>,
}

impl SyncGate {
    /// Brings the index up to date, syncing only the runs whose files changed; everything is synced when
    /// the list of runs changed, and at least every `full_every` regardless. When only metrics files
    /// grew, they are read at most every `metrics_every` (their stamps are kept, so the growth still
    /// shows as a change at a later poll). Returns what was synced, and the sync error if any.
    fn sync(&mut self, ix: &mut Index, project: &Project, timing: &Timing) -> Synced {
        // The directory is listed again only when it changed; which entries are runs (have an events
        // file, as `Project::run_ids` decides) is checked every time, the file may come later.
        let dir_stamp = stamp(&project.runs_dir());
        if dir_stamp.is_none() || dir_stamp != self.listed_at {
            self.names = std::fs::read_dir(project.runs_dir())
                .map(|rd| {
                    rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                        .collect()
                })
                .unwrap_or_default();
            self.listed_at = dir_stamp;
        }
        // A run's events file is stamped below anyway: only other entries are looked at here.
        let ids: Vec<String> = self
            .names
            .iter()
            .filter(|n| self.runs.contains_key(*n) || project.run_dir(n).events().is_file())
            .cloned()
            .collect();
        let full = ids != self.ids
            || self
                .full_at
                .is_none_or(|t| t.elapsed() >= timing.full_every);
        // Stamps are taken before syncing: a write landing after them shows as a change next time.
        let mut stale: Vec<(String, Vec<(PathBuf, Stamp)>)> = Vec::new();
        for id in &ids {
            let files = self.runs.get(id);
            let now: Vec<(PathBuf, Stamp)> = match files {
                Some(f) => f.iter().map(|(p, _)| (p.clone(), stamp(p))).collect(),
                None => vec![(project.run_dir(id).events(), None)],
            };
            if full || files.is_none_or(|f| *f != now) {
                stale.push((id.clone(), now));
            }
        }
        if !full && stale.is_empty() {
            return Synced::Nothing;
        }
        // Only metrics files changed: runs and steps (which come from the events) stand.
        let metrics_only = !full
            && stale.iter().all(|(id, now)| {
                self.runs
                    .get(id)
                    .is_some_and(|old| old.first() == now.first())
            });
        if metrics_only
            && self
                .metrics_at
                .is_some_and(|t| t.elapsed() < timing.metrics_every)
        {
            return Synced::Nothing;
        }
        // Every sync reads the metrics files of the runs it syncs.
        self.metrics_at = Some(Instant::now());
        let mut error = None;
        if full {
            if let Err(e) = ix.sync_all(project) {
                error = Some(format!("cannot update the index: {e}"));
            }
            self.ids = ids;
            self.full_at = Some(Instant::now());
            self.runs.retain(|id, _| self.ids.contains(id));
        } else {
            for (id, _) in &stale {
                if let Err(e) = ix.sync_run(&project.run_dir(id)) {
                    error = Some(format!("cannot update the index: {e}"));
                }
            }
        }
        for (id, mut files) in stale {
            // New events may have added attempts (only then: the list is a query). Files not seen
            // before carry no stamp, so the next poll reads them.
            let events_changed = self
                .runs
                .get(&id)
                .is_none_or(|old| old.first() != files.first());
            let paths: Vec<PathBuf> = if events_changed {
                let mut paths = vec![project.run_dir(&id).events()];
                paths.extend(
                    ix.attempts(&id, None)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|a| a.dir.join(crate::runlog::paths::METRICS_FILE)),
                );
                paths
            } else {
                files.iter().map(|(p, _)| p.clone()).collect()
            };
            let known: HashMap<PathBuf, Stamp> = files.drain(..).collect();
            let files = paths
                .into_iter()
                .map(|p| {
                    let s = known.get(&p).copied().flatten();
                    (p, s)
                })
                .collect();
            self.runs.insert(id, files);
        }
        if error.is_some() {
            // Try everything again next time.
            self.full_at = None;
            return Synced::All(error);
        }
        if metrics_only {
            Synced::Metrics
        } else {
            Synced::All(None)
        }
    }
}

/// What [`SyncGate::sync`] read.
enum Synced {
    Nothing,
    /// Only metrics files (of any run).
    Metrics,
    /// Events too, or everything; with the sync error if there was one.
    All(Option<String>),
}

/// How often everything is synced even when no run file seems to have changed (the settings'
/// `[poll] max_interval` by default).
pub const FULL_SYNC_EVERY: Duration = Duration::from_secs(60);

/// How often the data thread looks, and reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// How often the run files' sizes and times are looked at: a change of the events (step states)
    /// or of the watched log is read at once.
    pub interval: Duration,
    /// Everything is synced at least this often, whatever the stamps say.
    pub full_every: Duration,
    /// Metrics files that only grew are read at most this often (a live run appends all the time).
    pub metrics_every: Duration,
}

impl Timing {
    /// Every change read at each look, everything synced every [`FULL_SYNC_EVERY`].
    pub fn every(interval: Duration) -> Timing {
        Timing {
            interval,
            full_every: FULL_SYNC_EVERY.max(interval),
            metrics_every: interval,
        }
    }

    /// The settings' `[poll]` section.
    pub fn from_settings(poll: &super::config::Poll) -> Timing {
        Timing {
            interval: poll.interval,
            full_every: poll.max_interval.max(poll.interval),
            metrics_every: poll.metrics_interval.max(poll.interval),
        }
    }
}

/// Runs the loop until the UI hangs up. `send` returns false once the UI is gone. Every
/// `timing.interval` it looks at the run files' sizes and times; only a change (or a new watch) costs
/// a sync and the queries behind a snapshot.
pub fn run(
    project: Project,
    watch_rx: Receiver<Watch>,
    send: impl Fn(DataMsg) -> bool,
    timing: Timing,
) {
    let interval = timing.interval;
    let mut index = match Index::open_project(&project) {
        Ok(i) => Some(i),
        Err(e) => {
            send(DataMsg::Health {
                ok_at: Instant::now(),
                error: Some(format!("cannot open the index: {e}")),
            });
            None
        }
    };
    let mut watch = Watch::default();
    let mut last: Option<Snapshot> = None;
    let mut cache: SeriesCache = HashMap::new();
    let mut log_sig: Option<(PathBuf, u64, std::time::SystemTime)> = None;
    let mut ok_at = Instant::now();
    let mut last_error: Option<String> = None;
    let mut last_sent = Instant::now() - HEARTBEAT;
    let mut gate = SyncGate::default();
    let mut alive_at = Instant::now();
    loop {
        let mut changed_watch = false;
        match watch_rx.recv_timeout(if last.is_none() {
            Duration::ZERO
        } else {
            interval
        }) {
            Ok(w) => {
                watch = w;
                changed_watch = true;
                // Take only the newest of a burst of watch changes.
                while let Ok(w) = watch_rx.try_recv() {
                    watch = w;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if changed_watch {
            log_sig = None;
        }
        let Some(ix) = index.as_mut() else {
            std::thread::sleep(interval);
            continue;
        };
        let synced = gate.sync(ix, &project, &timing);
        let fresh = match (&last, synced) {
            // Nothing was read and nothing else asked for: the last snapshot stands, but for what
            // changes no event (an engine that died, a step that ended unattended, another host's
            // heartbeat), looked at every few seconds while a run is running.
            (Some(prev), Synced::Nothing) if !changed_watch && prev.error.is_none() => {
                if alive_at.elapsed() < HEARTBEAT
                    || !prev.runs.iter().any(|r| r.state == RunState::Running)
                {
                    None
                } else {
                    alive_at = Instant::now();
                    Some(build(ix, &watch, &mut cache, None))
                }
            }
            // Only metrics grew (a live run logging): runs and steps stand, the metrics are read.
            (Some(prev), Synced::Metrics) if !changed_watch && prev.error.is_none() => {
                let mut snap = prev.clone();
                snap.engine_alive = engine_alive(&snap.runs, snap.run.as_deref());
                add_metrics(ix, &watch, &mut cache, &mut snap);
                Some(snap)
            }
            (_, Synced::All(error)) => Some(build(ix, &watch, &mut cache, error)),
            _ => Some(build(ix, &watch, &mut cache, None)),
        };
        let error = fresh.as_ref().and_then(|s| s.error.clone());
        if error.is_none() {
            ok_at = Instant::now();
        }
        // The UI marks data stale by the time of the last good refresh: tell it when the error changes,
        // and otherwise now and then (well inside the stale threshold) even if nothing else is sent.
        // Nothing changing means nearly no messages, and no redraws.
        if error != last_error || last_sent.elapsed() >= HEARTBEAT {
            last_error = error.clone();
            last_sent = Instant::now();
            if !send(DataMsg::Health { ok_at, error }) {
                return;
            }
        }
        if let Some(snap) = fresh
            && last.as_ref() != Some(&snap)
        {
            last = Some(snap.clone());
            last_sent = Instant::now();
            if !send(DataMsg::Snapshot(Box::new(snap))) {
                return;
            }
        }
        if let Some(snap) = &last
            && let Some(tail) = read_log(snap, &watch, &mut log_sig)
            && !send(DataMsg::Log(Box::new(tail)))
        {
            return;
        }
    }
}

/// Whether a live engine drives `run` (of `runs`).
fn engine_alive(runs: &[RunRow], run: Option<&str>) -> bool {
    runs.iter()
        .find(|r| Some(r.id.as_str()) == run)
        .is_some_and(driven)
}

/// Whether a live engine (on any host) holds the run's lease.
fn driven(run: &RunRow) -> bool {
    lease::current(&RunDir::new(run.dir.clone())).is_some_and(|l| l.is_alive())
}

/// Loads what the watch asks for. Errors land in the snapshot, never panic the thread.
fn build(
    ix: &mut Index,
    watch: &Watch,
    cache: &mut SeriesCache,
    sync_error: Option<String>,
) -> Snapshot {
    let mut snap = Snapshot {
        error: sync_error,
        ..Snapshot::default()
    };
    match ix.runs() {
        Ok(r) => snap.runs = r,
        Err(e) => {
            snap.error = Some(e.to_string());
            return snap;
        }
    }
    let run = watch
        .run
        .clone()
        .filter(|r| snap.runs.iter().any(|x| x.id == *r))
        .or_else(|| snap.runs.first().map(|r| r.id.clone()));
    let Some(run) = run else { return snap };
    snap.engine_alive = engine_alive(&snap.runs, Some(&run));
    snap.dead_engines = snap
        .runs
        .iter()
        .filter(|r| r.state == RunState::Running && !driven(r))
        .map(|r| r.id.clone())
        .collect();
    snap.steps = ix.steps(&run).unwrap_or_default();
    // What `sortie status` says of attempts nobody watches, from the same function.
    if let Some(row) = snap.runs.iter_mut().find(|r| r.id == run)
        && row.state == RunState::Running
    {
        let attempts = ix.attempts(&run, None).unwrap_or_default();
        // A bad grace was refused when the TUI started.
        let grace = liveness::heartbeat_grace().unwrap_or(liveness::DEFAULT_GRACE);
        snap.remote = unattended::read_unattended(row, &mut snap.steps, &attempts, grace).remote;
    }
    snap.job_links = Arc::new(ix.job_links().unwrap_or_default());
    snap.run = Some(run);
    add_metrics(ix, watch, cache, &mut snap);
    snap
}

/// The metric part of a snapshot (keys, the chosen metric, its series) for `snap.run`, read again.
fn add_metrics(ix: &mut Index, watch: &Watch, cache: &mut SeriesCache, snap: &mut Snapshot) {
    snap.series.clear();
    snap.metric_keys.clear();
    snap.metric = None;
    let Some(run) = snap.run.clone() else { return };
    let summaries = ix.metric_summaries(&run, None).unwrap_or_default();
    let mut keys: Vec<String> = summaries.iter().map(|s| s.key.clone()).collect();
    keys.sort();
    keys.dedup();
    let metric = watch
        .metric
        .clone()
        .filter(|m| keys.contains(m))
        .or_else(|| keys.first().cloned());
    if let Some(m) = &metric {
        add_series(ix, &run, m, &summaries, false, cache, &mut snap.series);
        for other in watch.compare.iter().filter(|r| **r != run) {
            if snap.runs.iter().any(|x| x.id == *other) {
                let sums = ix.metric_summaries(other, None).unwrap_or_default();
                add_series(ix, other, m, &sums, true, cache, &mut snap.series);
            }
        }
    }
    snap.metric_keys = keys;
    snap.metric = metric;
}

/// Adds one series per step of `run` that has metric `m` (its latest attempt), reading points only
/// when their count moved since the last read.
fn add_series(
    ix: &mut Index,
    run: &str,
    m: &str,
    summaries: &[crate::index::MetricSummary],
    labelled: bool,
    cache: &mut SeriesCache,
    out: &mut Vec<SeriesData>,
) {
    let mut latest: Vec<&crate::index::MetricSummary> = Vec::new();
    for s in summaries.iter().filter(|s| s.key == m) {
        match latest.iter_mut().find(|x| x.step == s.step) {
            Some(x) if x.attempt < s.attempt => *x = s,
            Some(_) => {}
            None => latest.push(s),
        }
    }
    for s in latest {
        let key = (run.to_string(), s.step.clone(), m.to_string());
        let points = match cache.get_mut(&key) {
            Some(c) if c.count == s.count => c.points.clone(),
            // A live series grew: read only the new points and append them.
            Some(c) if c.count < s.count => {
                match ix.metric_points_since(run, &s.step, None, m, c.last_id) {
                    Ok(Some(tail))
                        if tail.attempt == c.attempt
                            && tail.series == c.series
                            && c.points.len() + tail.points.len() == s.count as usize =>
                    {
                        let mut pts = Vec::with_capacity(s.count as usize);
                        pts.extend_from_slice(&c.points);
                        pts.extend(tail.points);
                        c.points = Arc::new(pts);
                        c.count = s.count;
                        c.last_id = tail.last_id;
                        c.points.clone()
                    }
                    // Anything else (another attempt, points forgotten): read it all again.
                    _ => read_series(ix, run, &s.step, m, s.count, &key, cache),
                }
            }
            _ => read_series(ix, run, &s.step, m, s.count, &key, cache),
        };
        out.push(SeriesData {
            run: run.to_string(),
            step: s.step.clone(),
            label: if labelled {
                format!("{run}/{}", s.step)
            } else {
                s.step.clone()
            },
            points,
        });
    }
}

/// Reads a whole series into the cache.
fn read_series(
    ix: &mut Index,
    run: &str,
    step: &str,
    m: &str,
    count: u64,
    key: &(String, String, String),
    cache: &mut SeriesCache,
) -> Arc<Vec<Point>> {
    let tail = ix
        .metric_points_since(run, step, None, m, None)
        .ok()
        .flatten();
    let (attempt, series, last_id, pts) = match tail {
        Some(t) => (t.attempt, t.series, t.last_id, t.points),
        None => (0, -1, None, Vec::new()),
    };
    let points = Arc::new(pts);
    cache.insert(
        key.clone(),
        CachedSeries {
            count,
            attempt,
            series,
            last_id,
            points: points.clone(),
        },
    );
    points
}

/// Reads the tail of the watched step's log when the file changed since the last read.
fn read_log(
    snap: &Snapshot,
    watch: &Watch,
    sig: &mut Option<(PathBuf, u64, std::time::SystemTime)>,
) -> Option<LogTail> {
    use std::io::{Read, Seek, SeekFrom};
    let run = snap.run.clone().unwrap_or_default();
    let step_name = watch.step.as_ref()?;
    let path = match &watch.path {
        Some(p) => p.clone(),
        None => {
            let step = snap.steps.iter().find(|s| &s.name == step_name)?;
            let row = snap.runs.iter().find(|r| r.id == run)?;
            let dir = match &step.dir {
                Some(d) => d.clone(),
                None if step.attempts > 0 => {
                    RunDir::new(row.dir.clone()).attempt_dir(&step.name, step.attempts)
                }
                None => return None,
            };
            dir.join(if watch.stderr {
                crate::runlog::paths::STDERR_FILE
            } else {
                crate::runlog::paths::STDOUT_FILE
            })
        }
    };
    let meta = std::fs::metadata(&path).ok();
    let now_sig = (
        path.clone(),
        meta.as_ref().map(|m| m.len()).unwrap_or(0),
        meta.as_ref()
            .and_then(|m| m.modified().ok())
            .unwrap_or(std::time::UNIX_EPOCH),
    );
    if sig.as_ref() == Some(&now_sig) {
        return None;
    }
    *sig = Some(now_sig.clone());
    let len = now_sig.1;
    let mut text = String::new();
    let mut truncated = false;
    if let Ok(mut f) = std::fs::File::open(&path) {
        let start = len.saturating_sub(LOG_TAIL_BYTES);
        truncated = start > 0;
        let _ = f.seek(SeekFrom::Start(start));
        let mut buf = Vec::new();
        let _ = f.take(LOG_TAIL_BYTES).read_to_end(&mut buf);
        text = String::from_utf8_lossy(&buf).into_owned();
        if truncated {
            // Drop the partial first line.
            if let Some(i) = text.find('\n') {
                text.drain(..=i);
            }
        }
    }
    Some(LogTail {
        run,
        step: step_name.clone(),
        stderr: watch.stderr,
        path,
        text,
        truncated,
    })
}

/// Starts the data thread. Returns the sender the UI uses to change what is watched.
pub fn spawn(project: Project, tx: Sender<super::Msg>, timing: Timing) -> Sender<Watch> {
    let (wtx, wrx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("sortie-data".into())
        .spawn(move || {
            run(
                project,
                wrx,
                |m| tx.send(super::Msg::Data(m)).is_ok(),
                timing,
            )
        })
        .expect("spawn data thread");
    wtx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Journal;
    use crate::index::test_support::{Fixture, append, end_attempt, start_attempt};
    use crate::runlog::StepState;

    const HOUR: Duration = Duration::from_secs(3600);

    fn points(ix: &Index) -> u64 {
        ix.metric_summaries("r1", None)
            .unwrap()
            .iter()
            .map(|s| s.count)
            .sum()
    }

    fn metric(dir: &std::path::Path, step: u32) {
        let line = format!(
            "{{\"step\": {step}, \"loss\": {}}}\n",
            10.0 - f64::from(step)
        );
        append(
            &dir.join(crate::runlog::paths::METRICS_FILE),
            line.as_bytes(),
        );
    }

    /// A live run: its step's events are read at the next look, its growing metrics file only once
    /// `metrics_every` has passed since metrics were last read.
    #[test]
    fn growing_metrics_wait_while_step_states_are_read_at_once() {
        let fx = Fixture::new();
        let run = fx.new_run("r1", 1.0, &["train"]);
        let dir = start_attempt(&run, 2.0, "train", 1);
        metric(&dir, 1);
        let mut ix = fx.index(Journal::Wal);
        let mut gate = SyncGate::default();
        let slow = Timing {
            interval: Duration::ZERO,
            full_every: HOUR,
            metrics_every: HOUR,
        };
        assert!(matches!(
            gate.sync(&mut ix, &fx.project, &slow),
            Synced::All(None)
        ));
        assert_eq!(points(&ix), 1);
        // A run seen for the first time is read again at the next look (its files had no stamps yet).
        assert!(matches!(
            gate.sync(&mut ix, &fx.project, &slow),
            Synced::All(None)
        ));

        // The metrics file grew: not read before `metrics_every`, however often the gate looks.
        metric(&dir, 2);
        metric(&dir, 3);
        for _ in 0..3 {
            assert!(matches!(
                gate.sync(&mut ix, &fx.project, &slow),
                Synced::Nothing
            ));
        }
        assert_eq!(points(&ix), 1);

        // The step ended: read at once, and the run's metrics with it.
        end_attempt(&run, 3.0, "train", 1, StepState::Succeeded, 0);
        assert!(matches!(
            gate.sync(&mut ix, &fx.project, &slow),
            Synced::All(None)
        ));
        assert_eq!(ix.steps("r1").unwrap()[0].state, StepState::Succeeded);
        assert_eq!(points(&ix), 3);
        assert!(matches!(
            gate.sync(&mut ix, &fx.project, &slow),
            Synced::Nothing
        ));

        // Once `metrics_every` has passed, growth alone is read (and only the metrics).
        let quick = Timing {
            metrics_every: Duration::ZERO,
            ..slow
        };
        metric(&dir, 4);
        assert!(matches!(
            gate.sync(&mut ix, &fx.project, &quick),
            Synced::Metrics
        ));
        assert_eq!(points(&ix), 4);
        assert!(matches!(
            gate.sync(&mut ix, &fx.project, &quick),
            Synced::Nothing
        ));
    }

    #[test]
    fn jobs_find_their_run_and_step() {
        let link = |job: &str, run: &str, step: &str| JobLink {
            job: job.into(),
            run: run.into(),
            step: step.into(),
        };
        // Sorted by job id bytewise, as the index returns them (`1` sorts before `_`).
        let links = vec![
            link("4990", "b3hv9p", "ablate"),
            link("5012", "k7mq2x", "train[seed=1]"),
            link("50131", "zzzzzz", "other"),
            link("5013_0", "k7mq2x", "train[seed=3]"),
            link("5013_1", "k7mq2x", "train[seed=4]"),
            link("5013_2", "k7mq2x", "train[seed=5]"),
            link("5013_3", "k7mq2x", "train[seed=6]"),
            link("5013_4", "k7mq2x", "train[seed=7]"),
        ];
        assert!(links.is_sorted());
        assert_eq!(job_target(&links, "5012"), Some(JobTarget::Step(&links[1])));
        assert_eq!(
            job_target(&links, "5013_1"),
            Some(JobTarget::Step(&links[4]))
        );
        // The pending rest of array 5013: its recorded tasks in 2-3, not the started 0 and 1, not
        // the unrecorded 5, not job 50131.
        assert_eq!(
            job_target(&links, "5013_[2-3,5%2]"),
            Some(JobTarget::Array {
                run: "k7mq2x",
                steps: 2
            })
        );
        assert_eq!(job_target(&links, "5013_[5-9]"), None);
        assert_eq!(job_target(&links, "501"), None);
        assert_eq!(job_target(&links, "7000_[0-3]"), None);
        assert_eq!(job_target(&[], "5012"), None);
    }

    #[test]
    fn timing_from_the_settings() {
        let poll = crate::tui::config::Poll::default();
        let t = Timing::from_settings(&poll);
        assert_eq!(t.interval, Duration::from_secs(2));
        assert_eq!(t.metrics_every, Duration::from_secs(5));
        assert_eq!(t.full_every, Duration::from_secs(60));
        assert_eq!(
            Timing::every(Duration::from_secs(2)).metrics_every,
            Duration::from_secs(2)
        );
    }
}
