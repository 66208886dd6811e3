//! The TUI's data thread: it owns its own index connection, tails the run files into it, and sends the UI
//! a snapshot only when something it shows changed. The UI tells it what it is looking at through a
//! [`Watch`]; SQLite and file reads never happen on the UI thread.

use crate::index::{Index, Point, RunRow, StepRow};
use crate::runlog::{Project, RunDir, lease};
use std::collections::HashMap;
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
    pub metric_keys: Vec<String>,
    pub metric: Option<String>,
    pub series: Vec<SeriesData>,
    pub error: Option<String>,
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

/// Series already read, by (run, step, metric), with the point count they were read at.
type SeriesCache = HashMap<(String, String, String), (u64, Arc<Vec<Point>>)>;

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

/// Runs the loop until the UI hangs up. `send` returns false once the UI is gone.
pub fn run(
    project: Project,
    watch_rx: Receiver<Watch>,
    send: impl Fn(DataMsg) -> bool,
    interval: Duration,
) {
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
        let snap = build(ix, &project, &watch, &mut cache);
        let error = snap.error.clone();
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
        if last.as_ref() != Some(&snap) {
            last = Some(snap.clone());
            last_sent = Instant::now();
            if !send(DataMsg::Snapshot(Box::new(snap.clone()))) {
                return;
            }
        }
        if let Some(tail) = read_log(&snap, &watch, &mut log_sig)
            && !send(DataMsg::Log(Box::new(tail)))
        {
            return;
        }
    }
}

/// Loads what the watch asks for. Errors land in the snapshot, never panic the thread.
fn build(ix: &mut Index, project: &Project, watch: &Watch, cache: &mut SeriesCache) -> Snapshot {
    let mut snap = Snapshot::default();
    if let Err(e) = ix.sync_all(project) {
        snap.error = Some(format!("cannot update the index: {e}"));
    }
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
    if let Some(row) = snap.runs.iter().find(|r| r.id == run) {
        snap.engine_alive =
            lease::current(&RunDir::new(row.dir.clone())).is_some_and(|l| l.is_alive());
    }
    snap.steps = ix.steps(&run).unwrap_or_default();
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
    snap.run = Some(run);
    snap
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
        let points = match cache.get(&key) {
            Some((count, pts)) if *count == s.count => pts.clone(),
            _ => {
                let pts = Arc::new(ix.metric_points(run, &s.step, None, m).unwrap_or_default());
                cache.insert(key, (s.count, pts.clone()));
                pts
            }
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
pub fn spawn(
    project: Project,
    tx: Sender<super::Msg>,
    interval: Duration,
) -> std::sync::mpsc::Sender<Watch> {
    let (wtx, wrx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("sortie-data".into())
        .spawn(move || {
            run(
                project,
                wrx,
                |m| tx.send(super::Msg::Data(m)).is_ok(),
                interval,
            )
        })
        .expect("spawn data thread");
    wtx
}
