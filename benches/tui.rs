//! TUI benchmarks: whole frames, key-to-frame latency and the finder, on synthetic data far bigger than a
//! real run. Run with `cargo bench --bench tui` (plain std::time, no harness); prints one PASS/MISS line
//! per target. Startup time, idle CPU and RSS of the real binary are in `benches/tui_idle.sh`.
//!
//! Targets (from the issue):
//! 1. a 200×60 frame of the wide layout with a huge snapshot ≤ 5 ms (median of 50 steady-state frames);
//! 2. key-to-frame (`Ui::handle` of the key, then the next `terminal.draw`) ≤ 16 ms per key;
//! 3. the finder over 100 000 items ≤ 10 ms per keystroke (push + `rematch`).
//!
//! Two cores shared with other work: every figure is the median of many repetitions, with min and max
//! printed beside it so noise is visible. `cargo bench --bench tui -- finder` (or `frame`, `keys`) runs
//! only those sections.

use crossterm::event::{Event, KeyEvent};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use sortie::index::{Point, RunRow, StepRow};
use sortie::runlog::{RunState, StepState};
use sortie::tui::action::Pane;
use sortie::tui::app::RunsFocus;
use sortie::tui::chart::{PrepareKey, PreparedSeries, Smoothing};
use sortie::tui::config::{Config, KeySeq};
use sortie::tui::data::{DataMsg, SeriesData, Snapshot};
use sortie::tui::finder::{FinderItem, FinderKind, FinderState};
use sortie::tui::{Msg, Ui};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::Instant;

const WIDTH: u16 = 200;
const HEIGHT: u16 = 60;
const FRAMES: usize = 50;
const KEY_REPS: usize = 20;
const FINDER_ITEMS: usize = 100_000;
const FINDER_REPS: usize = 9;

const FRAME_GOAL_MS: f64 = 5.0;
const KEY_GOAL_MS: f64 = 16.0;
const FINDER_GOAL_MS: f64 = 10.0;

/// 2025-06-15 12:00:00 UTC.
const T0: f64 = 1_749_988_800.0;
const RUN: &str = "k7mq2x";
const INSTANCES: usize = 1000;

// --- data ------------------------------------------------------------------------------------

fn run_row() -> RunRow {
    RunRow {
        id: RUN.into(),
        dir: PathBuf::from("/nonexistent/bench/.sortie/runs").join(RUN),
        pipeline: "big-sweep".into(),
        file: "sortie.toml".into(),
        workdir: "/nonexistent/bench".into(),
        host: "node01".into(),
        user: "bench".into(),
        created: T0,
        ended: None,
        state: RunState::Running,
        engine_host: Some("node01".into()),
        engine_pid: Some(4242),
        steps_total: INSTANCES as u32,
        steps_done: (INSTANCES / 2) as u32,
        steps_failed: 3,
    }
}

fn instance(i: usize) -> StepRow {
    let state = match i % 10 {
        0..=4 => StepState::Succeeded,
        5 | 6 => StepState::Running,
        7 => StepState::Queued,
        8 => StepState::Pending,
        _ if i < 30 => StepState::Failed,
        _ => StepState::Pending,
    };
    let times = state
        .is_final()
        .then_some((T0 + i as f64, T0 + i as f64 + 60.0 + i as f64));
    StepRow {
        run: RUN.into(),
        name: format!("train[lr={},seed={}]", [1e-3, 3e-4][i % 2], i),
        group: "train".into(),
        params: serde_json::json!({ "seed": i }),
        needs: Vec::new(),
        state,
        reason: None,
        attempts: u32::from(state != StepState::Pending),
        exit_code: match state {
            StepState::Succeeded => Some(0),
            StepState::Failed => Some(1),
            _ => None,
        },
        signal: None,
        started: times.map(|t| t.0),
        ended: times.map(|t| t.1),
        dir: None,
        cache_key: None,
        job_id: None,
    }
}

/// A noisy decaying loss of `n` points over steps 0..n, with a NaN now and then.
fn curve(n: usize, floor: f64, seed: u64) -> Arc<Vec<Point>> {
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ seed;
    Arc::new(
        (0..n)
            .map(|i| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let noise = (rng >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                let t = i as f64 / n as f64;
                Point {
                    x: i as f64,
                    epoch: Some((i / 1000) as f64),
                    time: Some(T0 + i as f64 * 0.05),
                    value: if i % 50_000 == 49_999 {
                        f64::NAN
                    } else {
                        floor + 1.6 * (-4.0 * t).exp() + 0.1 * noise
                    },
                }
            })
            .collect(),
    )
}

/// The big snapshot of target 1: one running run of 1000 matrix instances, and in the metrics pane one
/// 1 000 000-point series plus five of 100 000 points.
fn big_snapshot() -> Snapshot {
    let steps: Vec<StepRow> = (0..INSTANCES).map(instance).collect();
    let mut series = vec![SeriesData {
        run: String::new(),
        label: steps[0].name.clone(),
        step: steps[0].name.clone(),
        points: curve(1_000_000, 0.3, 0),
    }];
    for (k, s) in steps.iter().enumerate().take(6).skip(1) {
        series.push(SeriesData {
            run: String::new(),
            label: s.name.clone(),
            step: s.name.clone(),
            points: curve(100_000, 0.3 + 0.05 * k as f64, k as u64),
        });
    }
    // The 10 000 jobs of the target arrive separately, from the poller: see `Bench::new`.
    Snapshot {
        runs: vec![run_row()],
        run: Some(RUN.into()),
        steps,
        engine_alive: true,
        metric_keys: vec!["train/loss".into(), "val/acc".into()],
        metric: Some("train/loss".into()),
        series,
        ..Default::default()
    }
}

/// `n` jobs in a mix of states, newest first, as the Slurm poller would publish them.
fn jobs(n: usize) -> sortie::slurm::poller::JobsSnapshot {
    use sortie::slurm::model::{Job, JobState};
    let states = [
        JobState::Running,
        JobState::Pending,
        JobState::Completed,
        JobState::Failed,
        JobState::Cancelled,
        JobState::Timeout,
    ];
    let jobs = (0..n)
        .map(|i| {
            let id = 100_000 + n - i;
            let state = states[i % states.len()].clone();
            Job {
                id: id.to_string(),
                job_id_raw: Some(id as u64),
                array_job_id: None,
                array_task_id: None,
                array_task_str: None,
                name: format!("train-{i}"),
                user: Some("bench".into()),
                account: Some("lab".into()),
                partition: Some("gpu".into()),
                state,
                flags: Vec::new(),
                reason: Some("Priority".into()),
                submit: Some(1_790_000_000 + i as i64),
                start: None,
                end: None,
                time_used_s: Some((i % 7200) as u64),
                time_limit_s: Some(7200),
                nodes: Some(format!("node{:03}", i % 100)),
                cpus: Some(8),
                mem_mb: Some(32_000),
                gpus: Some(1),
                gres: None,
                work_dir: None,
                stdout: None,
                stderr: None,
                exit_code: Some(0),
                signal: None,
                dependency: None,
                comment: None,
                total_cpu_s: Some(1000.0),
                max_rss_mb: Some(12_000.0),
                elapsed_s: Some(600),
            }
        })
        .collect();
    sortie::slurm::poller::JobsSnapshot {
        jobs,
        ..Default::default()
    }
}

// --- harness ---------------------------------------------------------------------------------

struct Bench {
    ui: Ui,
    term: Terminal<TestBackend>,
    _rx: Receiver<Msg>,
    _config_dir: tempfile::TempDir,
}

/// The built-in configuration (an empty config dir), true colour.
fn config() -> (Config, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (Config::built_in(dir.path()), dir)
}

fn key_events(keys: &str) -> Vec<KeyEvent> {
    let seq: KeySeq = keys
        .parse()
        .unwrap_or_else(|e| panic!("bad key macro {keys:?}: {e}"));
    seq.keys().iter().map(|k| k.to_event()).collect()
}

impl Bench {
    /// A UI holding `snap`, the DAG focused with the matrix group expanded, one frame drawn (which
    /// prepared the chart series).
    fn new(snap: Snapshot) -> Bench {
        let (cfg, dir) = config();
        let (mut ui, rx) = Ui::headless(cfg, false);
        ui.app.user = "bench".into();
        // The Jobs pane shows in the wide layout (it replaces Trials), as it will on a cluster.
        ui.app.cluster = true;
        let steps = snap.steps.len();
        ui.handle(Msg::Data(DataMsg::Snapshot(Box::new(snap))));
        // 10 000 SLURM jobs in the Jobs pane, as the poller would deliver them.
        ui.handle(Msg::Jobs(std::sync::Arc::new(jobs(10_000))));
        let mut b = Bench {
            ui,
            term: Terminal::new(TestBackend::new(WIDTH, HEIGHT)).unwrap(),
            _rx: rx,
            _config_dir: dir,
        };
        // Runs list → DAG, then expand the 1000-instance group.
        b.keys("<Enter> <Enter>");
        assert_eq!(b.ui.app.runs_focus, RunsFocus::Dag);
        assert_eq!(
            b.ui.app.dag.len(),
            steps + 1,
            "the group should be expanded"
        );
        b.draw();
        b
    }

    fn keys(&mut self, keys: &str) {
        for ev in key_events(keys) {
            self.ui.handle(Msg::Term(Event::Key(ev)));
        }
    }

    fn draw(&mut self) {
        let ui = &mut self.ui;
        self.term.draw(|f| ui.draw(f)).unwrap();
    }

    /// Milliseconds of one frame.
    fn frame_ms(&mut self) -> f64 {
        let t = Instant::now();
        self.draw();
        black_box(self.term.backend());
        ms(t)
    }

    /// Milliseconds from handing the UI `key` (one key) to the end of the next frame.
    fn key_ms(&mut self, key: &str) -> f64 {
        let evs = key_events(key);
        assert_eq!(evs.len(), 1, "one key at a time: {key:?}");
        let t = Instant::now();
        self.ui.handle(Msg::Term(Event::Key(evs[0])));
        self.draw();
        black_box(self.term.backend());
        ms(t)
    }
}

// --- stats -----------------------------------------------------------------------------------

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

struct Stats {
    median: f64,
    min: f64,
    max: f64,
    n: usize,
}

fn stats(mut v: Vec<f64>) -> Stats {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Stats {
        median,
        min: v[0],
        max: v[n - 1],
        n,
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "median {:.2} ms (min {:.2}, max {:.2}, n={})",
            self.median, self.min, self.max, self.n
        )
    }
}

fn verdict(name: &str, value: f64, goal: f64) -> bool {
    let ok = value <= goal;
    println!(
        "{} {name}: {value:.2} ms (target ≤ {goal} ms)",
        if ok { "PASS" } else { "MISS" }
    );
    ok
}

// --- 1. frame render -------------------------------------------------------------------------

fn frames(b: &mut Bench, n: usize) -> Stats {
    stats((0..n).map(|_| b.frame_ms()).collect())
}

fn bench_frame(verdicts: &mut Vec<(String, f64, f64)>) {
    println!("== 1. frame render, {WIDTH}x{HEIGHT} wide layout, TestBackend");
    let t = Instant::now();
    let mut b = Bench::new(big_snapshot());
    println!(
        "setup: snapshot + first frame (prepares 1M + 5×100k points): {:.0} ms",
        ms(t)
    );
    let full = frames(&mut b, FRAMES);
    println!("full frame (1000-instance DAG expanded, 1M + 5×100k curves): {full}");

    // Where the time goes: the same frame without parts of the data.
    let mut no_curves = big_snapshot();
    no_curves.series.clear();
    let mut bc = Bench::new(no_curves);
    let s = frames(&mut bc, FRAMES);
    println!("  without the curves (metrics pane empty hint):  {s}");
    let mut one = big_snapshot();
    one.series.truncate(1);
    let s = frames(&mut Bench::new(one), FRAMES);
    println!("  only the 1M-point curve:                       {s}");
    let mut five = big_snapshot();
    five.series.remove(0);
    let s = frames(&mut Bench::new(five), FRAMES);
    println!("  only the five 100k-point curves:               {s}");
    let mut bd = Bench::new(big_snapshot());
    bd.keys("<Enter>"); // collapse the group
    let s = frames(&mut bd, FRAMES);
    println!("  DAG group collapsed (1 row instead of 1001):   {s}");
    let mut small = big_snapshot();
    small.steps.truncate(10);
    small.series.clear();
    let s = frames(&mut Bench::new(small), FRAMES);
    println!("  10 steps, no curves (chrome only):            {s}");
    verdicts.push((
        "frame 200x60, 1000 steps + 10k jobs + 1M-pt curve".into(),
        full.median,
        FRAME_GOAL_MS,
    ));
}

// --- 2. key to frame -------------------------------------------------------------------------

fn bench_keys(verdicts: &mut Vec<(String, f64, f64)>) {
    println!(
        "\n== 2. key-to-frame (Ui::handle + terminal.draw), same snapshot, {KEY_REPS} reps each"
    );
    let mut b = Bench::new(big_snapshot());

    // j: cursor down the expanded DAG.
    b.ui.app.dag_sel = 0;
    b.draw();
    let j = stats((0..KEY_REPS).map(|_| b.key_ms("j")).collect());
    println!("j (DAG cursor down, 1001 rows):               {j}");
    verdicts.push(("key j".into(), j.median, KEY_GOAL_MS));

    // <Enter> on the collapsed group row: expands 1000 instances (rebuilds the DAG).
    let enter = stats(
        (0..KEY_REPS)
            .map(|_| {
                b.ui.app.runs_focus = RunsFocus::Dag;
                b.ui.app.dag_sel = 0;
                b.ui.app.expanded.clear();
                b.ui.app.rebuild_dag();
                b.draw();
                b.key_ms("<Enter>")
            })
            .collect(),
    );
    assert_eq!(b.ui.app.dag.len(), INSTANCES + 1);
    println!("<Enter> (expand the 1000-instance group):     {enter}");
    verdicts.push(("key <Enter>".into(), enter.median, KEY_GOAL_MS));

    // <Tab>: next pane, cycling through all of them.
    b.ui.app.focus = Pane::Runs;
    b.draw();
    let tab = stats((0..KEY_REPS).map(|_| b.key_ms("<Tab>")).collect());
    println!("<Tab> (next pane, cycling):                   {tab}");
    verdicts.push(("key <Tab>".into(), tab.median, KEY_GOAL_MS));

    // s in the metrics pane: smoothing 0.6 → 0.7 re-prepares every series (1M + 5×100k points).
    b.ui.app.focus = Pane::Metrics;
    let mut prep = Vec::new();
    let s = stats(
        (0..KEY_REPS)
            .map(|_| {
                b.ui.app.metrics.smoothing = 0.6;
                b.draw();
                let t = b.key_ms("s");
                // Where the time goes: the re-prepare alone, for the same change.
                b.ui.app.metrics.smoothing = 0.6;
                b.ui.charts.prepare(&b.ui.app);
                b.ui.app.metrics.smoothing = 0.7;
                let tp = Instant::now();
                b.ui.charts.prepare(&b.ui.app);
                prep.push(ms(tp));
                t
            })
            .collect(),
    );
    let prep = stats(prep);
    println!("s (smoothing 0.6→0.7, re-prepares 1.5M pts):  {s}");
    println!("  of which ChartCache::prepare alone:         {prep}");
    prepare_breakdown(&b.ui.app.snapshot.series[0].points);
    verdicts.push((
        "key s (smoothing, 1M-pt re-prepare)".into(),
        s.median,
        KEY_GOAL_MS,
    ));

    // :theme light<Enter> — the keys before <Enter> untimed-then-timed as text entry, <Enter> switches.
    b.ui.app.focus = Pane::Runs;
    b.draw();
    let mut typing = Vec::new();
    let theme = stats(
        (0..KEY_REPS)
            .map(|i| {
                let name = if i % 2 == 0 { "light" } else { "dark" };
                for k in key_events(&format!(":theme<Space>{name}")) {
                    let t = Instant::now();
                    b.ui.handle(Msg::Term(Event::Key(k)));
                    b.draw();
                    typing.push(ms(t));
                }
                let t = b.key_ms("<Enter>");
                assert_eq!(b.ui.config.theme.name(), name);
                t
            })
            .collect(),
    );
    let typing = stats(typing);
    println!(":theme light<Enter> — the <Enter> (switch):    {theme}");
    println!("  each key typed before it (command line):    {typing}");
    verdicts.push((":theme light<Enter>".into(), theme.median, KEY_GOAL_MS));
}

/// Where a smoothing change goes for the 1M-point series: `ChartCache::prepare` prepares straight from
/// the index points; a smoothing change keeps x and the raw values and only re-smooths (on every core
/// for a series this long). For comparison, a full re-prepare as after a data change, into fresh
/// buffers and into reused ones.
fn prepare_breakdown(points: &[Point]) {
    let key = |w, version| PrepareKey {
        version,
        smoothing: Smoothing::Ema(w),
        ..PrepareKey::default()
    };
    let (mut new, mut data, mut smooth) = (Vec::new(), Vec::new(), Vec::new());
    let mut reused = PreparedSeries::from_points("train", points, key(0.6, 0));
    for i in 0..7 {
        let t = Instant::now();
        black_box(PreparedSeries::from_points("train", points, key(0.7, 0)));
        new.push(ms(t));
        let t = Instant::now();
        reused.refresh_points("train", points, key(0.6, i + 1));
        data.push(ms(t));
        let t = Instant::now();
        reused.refresh_points("train", points, key(0.7, i + 1));
        smooth.push(ms(t));
        black_box(&reused);
    }
    println!(
        "  1M-point series alone: smoothing change (x, raw kept)         {}",
        stats(smooth)
    );
    println!(
        "                         full re-prepare, reused buffers        {}",
        stats(data)
    );
    println!(
        "                         PreparedSeries::from_points (fresh)    {}",
        stats(new)
    );
}

// --- 3. finder -------------------------------------------------------------------------------

/// 100 000 finder items shaped like the real ones: run lines, matrix step names, metric keys.
fn finder_items(n: usize) -> Vec<FinderItem> {
    let models = ["gcn", "gat", "sage", "gin", "mlp"];
    let states = ["succeeded", "failed", "running", "cancelled"];
    (0..n)
        .map(|i| match i % 10 {
            0 => {
                let id = format!("{:06x}", (i as u64).wrapping_mul(0x9E37_79B9) & 0xFF_FFFF);
                FinderItem {
                    kind: FinderKind::Run,
                    text: format!("{id} sweep-{} {}", i % 37, states[i % 4]),
                    target: id,
                }
            }
            1 => {
                let k = format!("val/metric_{}", i % 997);
                FinderItem {
                    kind: FinderKind::Metric,
                    text: k.clone(),
                    target: k,
                }
            }
            _ => {
                let s = format!(
                    "train[model={},lr={},seed={}]",
                    models[i % 5],
                    [1e-3, 3e-4, 1e-4][i % 3],
                    i / 10
                );
                FinderItem {
                    kind: FinderKind::Step,
                    text: s.clone(),
                    target: s,
                }
            }
        })
        .collect()
}

fn bench_finder(verdicts: &mut Vec<(String, f64, f64)>) {
    println!(
        "\n== 3. finder over {FINDER_ITEMS} items (push + rematch per keystroke), {FINDER_REPS} reps"
    );
    let items = finder_items(FINDER_ITEMS);
    let mut opens = Vec::new();
    for (query, label) in [
        ("train", "broad query, every step item matches"),
        ("gat42", "selective query"),
    ] {
        let mut per_key: Vec<Vec<f64>> = vec![Vec::new(); query.len()];
        let mut matches = 0;
        for _ in 0..FINDER_REPS {
            let t = Instant::now();
            let mut f = FinderState::new(items.clone());
            opens.push(ms(t));
            for (k, c) in query.chars().enumerate() {
                let t = Instant::now();
                f.query.push(c);
                f.rematch();
                black_box(&f.matches);
                per_key[k].push(ms(t));
            }
            matches = f.matches.len();
        }
        let all = stats(per_key.iter().flatten().copied().collect());
        println!("query {query:?} ({label}; {matches} matches at the end): per keystroke {all}");
        let medians: Vec<String> = per_key
            .iter()
            .zip(query.chars())
            .map(|(v, c)| format!("{c}:{:.2}", stats(v.clone()).median))
            .collect();
        println!("  median by keystroke: {}", medians.join("  "));
        // The target is per keystroke: judge the slowest keystroke's median.
        let worst = per_key
            .iter()
            .map(|v| stats(v.clone()).median)
            .fold(0.0, f64::max);
        verdicts.push((
            format!("finder 100k items, slowest keystroke of {query:?}"),
            worst,
            FINDER_GOAL_MS,
        ));
    }
    finder_breakdown(&items, "train");
    finder_breakdown(&items, "t");
    println!(
        "opening (FinderState::new, clone of the items included): {}",
        stats(opens)
    );
}

/// What plain nucleo costs for a whole query on one thread, for comparison with `rematch`: score only,
/// score with match indices, and sorting the matches. `rematch` narrows to the previous matches,
/// scores on every core, scores a shared deciding prefix once (`finder.rs`, `MemoKey`), asks for
/// indices only for the rows on screen and ranks only the top rows.
fn finder_breakdown(items: &[FinderItem], query: &str) {
    use nucleo::pattern::{CaseMatching, Normalization, Pattern};
    use nucleo::{Matcher, Utf32Str};
    let pattern = Pattern::parse(query, CaseMatching::Smart, Normalization::Smart);
    let mut matcher = Matcher::new(nucleo::Config::DEFAULT);
    let mut buf = Vec::new();
    let (mut score, mut indices, mut sort) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..FINDER_REPS {
        let t = Instant::now();
        let mut scored: Vec<(u32, usize)> = items
            .iter()
            .enumerate()
            .filter_map(|(i, it)| {
                pattern
                    .score(Utf32Str::new(&it.text, &mut buf), &mut matcher)
                    .map(|s| (s, i))
            })
            .collect();
        score.push(ms(t));
        let t = Instant::now();
        let mut n = 0;
        for it in items {
            let mut idx = Vec::new();
            if pattern
                .indices(Utf32Str::new(&it.text, &mut buf), &mut matcher, &mut idx)
                .is_some()
            {
                n += idx.len();
            }
        }
        black_box(n);
        indices.push(ms(t));
        let t = Instant::now();
        scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        black_box(&scored);
        sort.push(ms(t));
    }
    println!(
        "  {query:?} over all items: nucleo score only {}",
        stats(score)
    );
    println!(
        "  {query:?} over all items: score + indices   {}",
        stats(indices)
    );
    println!(
        "  {query:?}: sorting the matches            {}",
        stats(sort)
    );
}

// --- 4. the live-run view -------------------------------------------------------------------

/// What `benches/tui_idle.sh` watches, without the process around it: 160×48, four runs (one live, one
/// step appending a point a second), a 200-point curve and 734 Slurm jobs. Each update is a snapshot
/// with one more point, handled and drawn: the UI thread's share of one data poll.
fn bench_live() {
    const W: u16 = 160;
    const H: u16 = 48;
    println!("\n== 4. live-run view, {W}x{H}: one more metric point, handled and drawn");
    let mut row = run_row();
    row.steps_total = 1;
    row.steps_done = 0;
    let mut runs = vec![row];
    for k in 1..4 {
        let mut r = run_row();
        r.id = format!("done0{k}");
        r.state = RunState::Succeeded;
        r.ended = Some(T0 + 60.0);
        r.steps_total = 3;
        r.steps_done = 3;
        r.steps_failed = 0;
        runs.push(r);
    }
    let mut step = instance(5);
    step.name = "train".into();
    step.group = "train".into();
    step.started = Some(T0);
    let all = curve(400, 0.3, 7);
    let snap = |n: usize| Snapshot {
        runs: runs.clone(),
        run: Some(RUN.into()),
        steps: vec![step.clone()],
        engine_alive: true,
        metric_keys: vec!["loss".into()],
        metric: Some("loss".into()),
        series: vec![SeriesData {
            run: RUN.into(),
            label: "train".into(),
            step: "train".into(),
            points: Arc::new(all[..n].to_vec()),
        }],
        ..Default::default()
    };
    let (cfg, _dir) = config();
    let (mut ui, _rx) = Ui::headless(cfg, false);
    ui.app.user = "bench".into();
    ui.app.cluster = true;
    ui.handle(Msg::Data(DataMsg::Snapshot(Box::new(snap(100)))));
    ui.handle(Msg::Jobs(std::sync::Arc::new(jobs(734))));
    let mut term = Terminal::new(TestBackend::new(W, H)).unwrap();
    term.draw(|f| ui.draw(f)).unwrap();
    let reps: usize = std::env::var("SORTIE_BENCH_LIVE_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut update = Vec::new();
    let mut clock = Vec::new();
    for i in 0..reps {
        let s = snap(101 + i % 299);
        let t = Instant::now();
        ui.handle(Msg::Data(DataMsg::Snapshot(Box::new(s))));
        term.draw(|f| ui.draw(f)).unwrap();
        black_box(term.backend());
        update.push(ms(t));
        let t = Instant::now();
        term.draw(|f| ui.draw(f)).unwrap();
        black_box(term.backend());
        clock.push(ms(t));
    }
    println!(
        "snapshot with one more point, handled + drawn: {}",
        stats(update)
    );
    println!(
        "the same frame again (a clock tick):           {}",
        stats(clock)
    );
}

fn main() {
    // `cargo bench --bench tui -- keys finder` runs only those sections (frame, keys, finder).
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let run = |name: &str| only.is_empty() || only.iter().any(|o| name.contains(o.as_str()));
    let mut verdicts = Vec::new();
    if run("frame") {
        bench_frame(&mut verdicts);
    }
    if run("keys") {
        bench_keys(&mut verdicts);
    }
    if run("finder") {
        bench_finder(&mut verdicts);
    }
    if run("live") {
        bench_live();
    }
    println!("\n== targets (medians)");
    let mut missed = 0;
    for (name, v, goal) in &verdicts {
        if !verdict(name, *v, *goal) {
            missed += 1;
        }
    }
    println!("{missed} of {} targets missed", verdicts.len());
}
