//! The Trials pane's data thread: it finds the study files, keeps each storage open, polls it (a poll
//! that finds nothing new costs a few `stat`s or one `PRAGMA data_version`), and sends the UI a snapshot
//! only when a study changed. Nothing here runs on the UI thread, and nothing here writes to a storage.

use crate::trials::{Storage, Study, Trial, TrialState, discover};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

/// One study as the pane shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct StudyView {
    /// The storage file it is in.
    pub source: PathBuf,
    pub study: Study,
    /// PED-ANOVA importance by param, largest first (single objective only).
    pub importance: Option<Vec<(String, f64)>>,
    /// Running trials by id: when the feed last saw each one change (or started watching it).
    pub changed_at: HashMap<i64, f64>,
    /// What the studies list shows, counted once per change (a frame must not scan 100 000 trials).
    pub summary: Summary,
}

/// A study's counts and bests, as of its snapshot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Trials by state: complete, pruned, failed, running, waiting.
    pub complete: usize,
    pub pruned: usize,
    pub failed: usize,
    pub running: usize,
    pub waiting: usize,
    /// The best trial's number and first value, or the Pareto front's size.
    pub best: Option<(i64, f64)>,
    pub front: usize,
    pub last_change: Option<f64>,
    /// Indices of the running trials (the only ones that can be stale).
    pub running_at: Vec<usize>,
}

impl Summary {
    pub fn of(s: &Study) -> Summary {
        let mut sum = Summary {
            last_change: s.last_change(),
            ..Default::default()
        };
        for (i, t) in s.trials.iter().enumerate() {
            match t.state {
                TrialState::Complete => sum.complete += 1,
                TrialState::Pruned => sum.pruned += 1,
                TrialState::Fail => sum.failed += 1,
                TrialState::Running => {
                    sum.running += 1;
                    sum.running_at.push(i);
                }
                TrialState::Waiting => sum.waiting += 1,
            }
        }
        if s.directions.len() > 1 {
            sum.front = crate::trials::report::best_trials(s).len();
        } else {
            sum.best = s.best().and_then(|t| Some((t.number, *t.values.first()?)));
        }
        sum
    }
}

/// Everything the Trials pane shows, as of one poll.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrialsSnapshot {
    pub studies: Vec<StudyView>,
    /// One line per storage that could not be read, and per oddity found in one (never fatal).
    pub problems: Vec<String>,
    /// What was searched for studies (shown when none was found).
    pub sources: Vec<PathBuf>,
    /// When this was read (Unix seconds).
    pub at: f64,
}

#[derive(Clone, Debug)]
pub struct FeedConfig {
    /// Study files, or folders to search for them.
    pub sources: Vec<PathBuf>,
    pub poll: Duration,
    /// How often folders are searched again for new study files.
    pub rediscover: Duration,
}

/// Problems kept for the pane (the newest): a journal with a glued line on every poll must not grow
/// the list forever.
const MAX_PROBLEMS: usize = 20;

/// Importance is recomputed at most this often per study while trials keep completing.
const IMPORTANCE_EVERY: Duration = Duration::from_secs(5);

/// Per study id: (complete trials, importance, when computed).
type ImportanceCache = HashMap<i64, (usize, Option<Vec<(String, f64)>>, Instant)>;

struct Open {
    path: PathBuf,
    storage: Storage,
    /// Per study id: what each running trial looked like and when that was first seen.
    seen: HashMap<i64, HashMap<i64, (Fingerprint, f64)>>,
    importance: ImportanceCache,
}

/// What tells that a running trial moved: new intermediate values, a heartbeat, new attributes.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Fingerprint {
    intermediate: usize,
    last: Option<u64>,
    heartbeat: Option<u64>,
    attrs: usize,
}

fn fingerprint(t: &Trial) -> Fingerprint {
    Fingerprint {
        intermediate: t.intermediate.len(),
        last: t.intermediate.last().map(|(_, v)| v.to_bits()),
        heartbeat: t.heartbeat.map(f64::to_bits),
        attrs: t.user_attrs.len() + t.system_attrs.len(),
    }
}

/// The feed's state between polls: the open storages and what failed to open.
pub struct Feed {
    cfg: FeedConfig,
    open: Vec<Open>,
    /// Files that failed to open, with the error, so the error shows until they open.
    failed: Vec<(PathBuf, String)>,
    problems: Vec<String>,
    discovered_at: Option<Instant>,
    /// When watching started: a running trial first seen now is not called unchanged since its start.
    started: f64,
}

impl Feed {
    pub fn new(cfg: FeedConfig) -> Feed {
        Feed {
            cfg,
            open: Vec::new(),
            failed: Vec::new(),
            problems: Vec::new(),
            discovered_at: None,
            started: crate::util::now(),
        }
    }

    /// Opens new study files, forgets vanished ones. Returns whether the set changed.
    fn discover(&mut self) -> bool {
        let mut files: Vec<PathBuf> = Vec::new();
        let mut errors: Vec<(PathBuf, String)> = Vec::new();
        for src in &self.cfg.sources {
            let path = crate::trials::path_of(&src.to_string_lossy());
            if path.is_dir() {
                match discover::study_files(&path) {
                    Ok(found) => files.extend(found),
                    Err(e) => errors.push((path.clone(), format!("{}: {e}", path.display()))),
                }
            } else {
                files.push(path);
            }
        }
        files.dedup();
        let before: Vec<PathBuf> = self.open.iter().map(|o| o.path.clone()).collect();
        self.open.retain(|o| files.contains(&o.path));
        for f in files {
            if self.open.iter().any(|o| o.path == f) {
                continue;
            }
            match Storage::open(&f.to_string_lossy(), None) {
                Ok(storage) => self.open.push(Open {
                    path: f,
                    storage,
                    seen: HashMap::new(),
                    importance: HashMap::new(),
                }),
                Err(e) => errors.push((f, e)),
            }
        }
        self.failed = errors;
        self.discovered_at = Some(Instant::now());
        before != self.open.iter().map(|o| o.path.clone()).collect::<Vec<_>>()
    }

    /// One poll: returns a snapshot when something the pane shows changed.
    pub fn poll(&mut self) -> Option<TrialsSnapshot> {
        let mut changed = false;
        if self
            .discovered_at
            .is_none_or(|t| t.elapsed() >= self.cfg.rediscover)
        {
            let failed_before = self.failed.clone();
            changed |= self.discover();
            changed |= failed_before != self.failed;
        }
        let mut lost: Vec<usize> = Vec::new();
        for (i, o) in self.open.iter_mut().enumerate() {
            match o.storage.refresh() {
                Ok(c) => changed |= c,
                Err(e) => {
                    // A storage that went bad (replaced by something else, deleted): shown as failed
                    // and tried again at the next search.
                    self.failed.push((o.path.clone(), e));
                    lost.push(i);
                    changed = true;
                }
            }
            for w in o.storage.take_warnings() {
                self.problems.push(w);
                changed = true;
            }
        }
        for i in lost.into_iter().rev() {
            self.open.remove(i);
        }
        if self.problems.len() > MAX_PROBLEMS {
            let cut = self.problems.len() - MAX_PROBLEMS;
            self.problems.drain(..cut);
        }
        changed.then(|| self.snapshot())
    }

    fn snapshot(&mut self) -> TrialsSnapshot {
        let now = crate::util::now();
        let started = self.started;
        let mut studies = Vec::new();
        for o in &mut self.open {
            for s in o.storage.studies() {
                let seen = o.seen.entry(s.id).or_default();
                let mut changed_at = HashMap::new();
                let mut still: HashMap<i64, (Fingerprint, f64)> = HashMap::new();
                for t in s.trials.iter().filter(|t| t.state == TrialState::Running) {
                    let fp = fingerprint(t);
                    let at = match seen.get(&t.id) {
                        Some((old, at)) if *old == fp => *at,
                        // New to the feed: the start (or heartbeat) if later than when watching began.
                        None => [t.start, t.heartbeat, Some(started)]
                            .into_iter()
                            .flatten()
                            .fold(f64::MIN, f64::max),
                        Some(_) => now,
                    };
                    still.insert(t.id, (fp, at));
                    changed_at.insert(t.id, at);
                }
                *seen = still;
                let importance = importance(&mut o.importance, s);
                studies.push(StudyView {
                    source: o.path.clone(),
                    study: s.clone(),
                    importance,
                    changed_at,
                    summary: Summary::of(s),
                });
            }
        }
        let mut problems: Vec<String> = self.failed.iter().map(|(_, e)| e.clone()).collect();
        problems.extend(self.problems.iter().cloned());
        TrialsSnapshot {
            studies,
            problems,
            sources: self.cfg.sources.clone(),
            at: now,
        }
    }
}

/// The study's importance, recomputed when trials completed since, at most every [`IMPORTANCE_EVERY`].
fn importance(cache: &mut ImportanceCache, s: &Study) -> Option<Vec<(String, f64)>> {
    let complete = s.count(TrialState::Complete);
    if let Some((n, imp, at)) = cache.get(&s.id)
        && (*n == complete || at.elapsed() < IMPORTANCE_EVERY)
    {
        return imp.clone();
    }
    let imp = crate::trials::importance::ped_anova(s);
    cache.insert(s.id, (complete, imp.clone(), Instant::now()));
    imp
}

/// Reads everything once (what the headless tests need).
pub fn read_once(sources: &[PathBuf]) -> TrialsSnapshot {
    read_once_from(sources, crate::util::now())
}

/// [`read_once`] as if watching had begun at `started` (Unix seconds), so a test's clock decides which
/// running trials look unchanged.
pub fn read_once_from(sources: &[PathBuf], started: f64) -> TrialsSnapshot {
    let mut feed = Feed::new(FeedConfig {
        sources: sources.to_vec(),
        poll: Duration::from_secs(1),
        rediscover: Duration::from_secs(30),
    });
    feed.started = started;
    feed.poll().unwrap_or_default()
}

/// Starts the feed thread; it stops when the UI's channel closes.
pub fn spawn(cfg: FeedConfig, tx: Sender<crate::tui::Msg>) {
    let spawned = std::thread::Builder::new()
        .name("sortie-trials".into())
        .spawn(move || {
            let poll = cfg.poll;
            let mut feed = Feed::new(cfg);
            let mut first = true;
            loop {
                let snap = feed.poll();
                // The first poll always answers, so an empty pane says what was searched.
                let snap = match (snap, first) {
                    (Some(s), _) => Some(s),
                    (None, true) => Some(feed.snapshot()),
                    (None, false) => None,
                };
                first = false;
                if let Some(s) = snap
                    && tx.send(crate::tui::Msg::Trials(Arc::new(s))).is_err()
                {
                    return;
                }
                std::thread::sleep(poll);
            }
        });
    if let Err(e) = spawned {
        eprintln!("sortie: cannot start the trials thread: {e}");
    }
}

/// The default places to look for studies: the project folder.
pub fn default_sources(project_root: &Path) -> Vec<PathBuf> {
    vec![project_root.to_path_buf()]
}
