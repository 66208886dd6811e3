//! The full-screen TUI driven without a terminal: synthetic snapshots, logs and key presses go through
//! `Ui::handle`, frames are drawn on ratatui's `TestBackend` and compared with insta snapshots (the text,
//! and for the main screens the whole buffer with its styles), at 80×24 and 160×48.
//!
//! Every timestamp is fixed so frames are deterministic: finished steps and runs have fixed
//! `started`/`ended`, running steps have neither (their elapsed text is empty), and the one running run
//! was "created" in the year 2100, so its age clamps to `0.0s` whatever the clock says.

mod common;

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;
use sortie::index::{JobLink, Point, RunRow, StepRow};
use sortie::runlog::control::Request;
use sortie::runlog::{RunState, StepState};
use sortie::tui::action::{Action, Pane};
use sortie::tui::app::{Effect, Input, Overlay, RunsFocus};
use sortie::tui::config::{Config, KeySeq};
use sortie::tui::data::{DataMsg, LogTail, SeriesData, Snapshot, Watch};
use sortie::tui::{Msg, Ui, input};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The two terminal sizes every screen is checked at: one pane at a time, and the wide layout.
const SIZES: [(u16, u16); 2] = [(80, 24), (160, 48)];

/// 2100-01-01: the running run's `created`, so its age (`now - created`, clamped at 0) is always `0.0s`.
const FUTURE: f64 = 4_102_444_800.0;
/// 2025-06-15 12:00:00 UTC, the base of every fixed timestamp.
const T0: f64 = 1_749_988_800.0;

const RUN_LIVE: &str = "k7mq2x";
const RUN_FAILED: &str = "b3hv9p";
const RUN_DONE: &str = "w4tn8e";
const RUN_CANCELLED: &str = "d2ps6a";

fn run_dir(id: &str) -> PathBuf {
    PathBuf::from("/nonexistent/gnn/.sortie/runs").join(id)
}

#[allow(clippy::too_many_arguments)]
fn run_row(
    id: &str,
    pipeline: &str,
    state: RunState,
    created: f64,
    ended: Option<f64>,
    total: u32,
    done: u32,
    failed: u32,
) -> RunRow {
    RunRow {
        id: id.into(),
        dir: run_dir(id),
        pipeline: pipeline.into(),
        file: "sortie.toml".into(),
        workdir: "/nonexistent/gnn".into(),
        host: "node01".into(),
        user: "tester".into(),
        created,
        ended,
        state,
        engine_host: Some("node01".into()),
        engine_pid: (state == RunState::Running).then_some(4242),
        steps_total: total,
        steps_done: done,
        steps_failed: failed,
    }
}

fn step(
    name: &str,
    group: &str,
    needs: &[&str],
    state: StepState,
    times: Option<(f64, f64)>,
    attempts: u32,
) -> StepRow {
    StepRow {
        run: RUN_LIVE.into(),
        name: name.into(),
        group: group.into(),
        params: serde_json::Value::Null,
        needs: needs.iter().map(|s| s.to_string()).collect(),
        state,
        reason: None,
        attempts,
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

/// A deterministic, noisy, decaying curve of `n` points.
fn curve(n: usize, floor: f64, phase: f64) -> Arc<Vec<Point>> {
    Arc::new(
        (0..n)
            .map(|i| {
                let t = i as f64 / n as f64;
                Point {
                    x: i as f64,
                    epoch: Some((i / 10) as f64),
                    time: Some(T0 + i as f64),
                    value: floor + 1.6 * (-4.0 * t).exp() + 0.04 * (i as f64 * 1.7 + phase).sin(),
                }
            })
            .collect(),
    )
}

const TRAIN: [&str; 6] = [
    "train[model=gcn,seed=0]",
    "train[model=gcn,seed=1]",
    "train[model=gcn,seed=2]",
    "train[model=gat,seed=0]",
    "train[model=gat,seed=1]",
    "train[model=gat,seed=2]",
];

/// Four runs (running, failed, succeeded, cancelled); the running one's steps: prepare done, a matrix of
/// six train instances in mixed states, evaluate waiting and report blocked; two loss curves.
fn snapshot() -> Snapshot {
    let train_states = [
        (StepState::Succeeded, Some((T0 + 5.0, T0 + 70.0)), 1),
        (StepState::Running, None, 1),
        (StepState::Failed, Some((T0 + 5.0, T0 + 17.5)), 2),
        (StepState::Running, None, 1),
        (StepState::Queued, None, 0),
        (StepState::Pending, None, 0),
    ];
    let mut steps = vec![step(
        "prepare",
        "prepare",
        &[],
        StepState::Succeeded,
        Some((T0, T0 + 4.2)),
        1,
    )];
    for (name, (st, times, attempts)) in TRAIN.iter().zip(train_states) {
        steps.push(step(name, "train", &["prepare"], st, times, attempts));
    }
    steps.push(step(
        "evaluate",
        "evaluate",
        &["train"],
        StepState::Pending,
        None,
        0,
    ));
    let mut report = step(
        "report",
        "report",
        &["evaluate"],
        StepState::Blocked,
        None,
        0,
    );
    report.reason = Some("train[model=gcn,seed=2] failed".into());
    steps.push(report);
    Snapshot {
        runs: vec![
            run_row(
                RUN_LIVE,
                "gnn-demo",
                RunState::Running,
                FUTURE,
                None,
                9,
                2,
                1,
            ),
            run_row(
                RUN_FAILED,
                "ablation-sweep",
                RunState::Failed,
                T0 - 86_400.0,
                Some(T0 - 86_400.0 + 3_723.0),
                12,
                9,
                3,
            ),
            run_row(
                RUN_DONE,
                "gnn-demo",
                RunState::Succeeded,
                T0 - 172_800.0,
                Some(T0 - 172_800.0 + 95.5),
                9,
                9,
                0,
            ),
            run_row(
                RUN_CANCELLED,
                "baseline",
                RunState::Cancelled,
                T0 - 259_200.0,
                Some(T0 - 259_200.0 + 42.0),
                3,
                1,
                0,
            ),
        ],
        run: Some(RUN_LIVE.into()),
        steps,
        engine_alive: true,
        dead_engines: Vec::new(),
        remote: Default::default(),
        metric_keys: vec!["train/loss".into(), "val/acc".into()],
        metric: Some("train/loss".into()),
        series: vec![
            SeriesData {
                run: String::new(),
                label: TRAIN[0].into(),
                step: TRAIN[0].into(),
                points: curve(300, 0.45, 0.0),
            },
            SeriesData {
                run: String::new(),
                label: TRAIN[3].into(),
                step: TRAIN[3].into(),
                points: curve(240, 0.35, 1.3),
            },
        ],
        error: None,
        job_links: Arc::new(
            [
                ("4990", RUN_FAILED, "ablate"),
                ("5012", RUN_LIVE, TRAIN[1]),
                // Array 5013: task 0 started, tasks 2-5 pending (4 and 5 not recorded here).
                ("5013_0", RUN_LIVE, TRAIN[3]),
                ("5013_2", RUN_LIVE, TRAIN[4]),
                ("5013_3", RUN_LIVE, TRAIN[5]),
            ]
            .map(|(job, run, step)| JobLink {
                job: job.into(),
                run: run.into(),
                step: step.into(),
            })
            .to_vec(),
        ),
    }
}

/// The user's Slurm jobs as the poller delivers them (newest submission first): sortie's own (a
/// running step, a started task and the pending rest of an array, a failed step of another run) and
/// others, in every state class.
fn jobs_snapshot() -> sortie::slurm::poller::JobsSnapshot {
    use sortie::slurm::model::{Job, JobState};
    // As the decoders fill them: Slurm's numeric id, and the array fields of array records.
    let job = |id: &str, name: &str, state: JobState| Job {
        id: id.into(),
        job_id_raw: id.split('_').next().and_then(|n| n.parse().ok()),
        array_job_id: id.split_once('_').and_then(|(a, _)| a.parse().ok()),
        array_task_id: id.split_once('_').and_then(|(_, t)| t.parse().ok()),
        array_task_str: id
            .split_once("_[")
            .map(|(_, r)| r.trim_end_matches(']').to_string()),
        name: name.into(),
        partition: Some("gpu".into()),
        state,
        time_limit_s: Some(3600),
        cpus: Some(8),
        mem_mb: Some(32_000),
        ..Default::default()
    };
    let mut running = job("5012", "train.3.k7mq2x", JobState::Running);
    running.time_used_s = Some(754);
    running.nodes = Some("gpu07".into());
    let mut rest = job("5013_[2-5%2]", "train.4.k7mq2x", JobState::Pending);
    rest.reason = Some("JobArrayTaskLimit".into());
    let mut task = job("5013_0", "train.4.k7mq2x", JobState::Running);
    task.time_used_s = Some(1800);
    task.nodes = Some("gpu03".into());
    let mut waiting = job("5001", "notebook", JobState::Pending);
    waiting.reason = Some("Priority".into());
    waiting.partition = Some("interactive".into());
    let mut failed = job("4990", "ablate.1.b3hv9p", JobState::Failed);
    failed.exit_code = Some(1);
    failed.time_used_s = Some(61);
    failed.elapsed_s = Some(61);
    failed.total_cpu_s = Some(244.0);
    failed.max_rss_mb = Some(4_000.0);
    let mut done = job("4980", "preprocess", JobState::Completed);
    done.time_used_s = Some(2400);
    done.elapsed_s = Some(2400);
    done.total_cpu_s = Some(17_280.0);
    done.max_rss_mb = Some(28_800.0);
    let mut timeout = job("4975", "long-sweep", JobState::Timeout);
    timeout.time_used_s = Some(3600);
    let cancelled = job("4960", "typo", JobState::Cancelled);
    sortie::slurm::poller::JobsSnapshot {
        jobs: vec![
            running, rest, task, waiting, failed, done, timeout, cancelled,
        ],
        fetched: Some(Instant::now()),
        rpc_per_min: 3.0,
        ..Default::default()
    }
}

/// What the data thread sends once the failed run is selected: the same runs, that run's steps.
fn failed_run_snapshot() -> Snapshot {
    let mut snap = snapshot();
    let mut steps = vec![
        step(
            "prepare",
            "prepare",
            &[],
            StepState::Succeeded,
            Some((T0, T0 + 3.0)),
            1,
        ),
        step(
            "ablate",
            "ablate",
            &["prepare"],
            StepState::Failed,
            Some((T0 + 3.0, T0 + 61.0)),
            2,
        ),
        step("report", "report", &["ablate"], StepState::Blocked, None, 0),
    ];
    for s in &mut steps {
        s.run = RUN_FAILED.into();
    }
    snap.run = Some(RUN_FAILED.into());
    snap.steps = steps;
    snap.engine_alive = false;
    snap.metric_keys.clear();
    snap.metric = None;
    snap.series.clear();
    snap
}

/// A log with ANSI colours (green INFO, bold red ERROR, yellow WARN) and more lines than fit a pane.
fn log_text() -> String {
    let mut s = String::from("training gcn (seed 1) for 60 epochs\n");
    for e in 1..=40 {
        if e % 10 == 0 {
            s.push_str(&format!(
                "\x1b[33mWARN\x1b[0m epoch {e}: learning rate reduced to 0.{e:03}\n"
            ));
        } else {
            s.push_str(&format!(
                "\x1b[32mINFO\x1b[0m epoch {e:>2}  loss {:.4}  acc {:.3}\n",
                0.45 + 1.6 * (-(e as f64) / 15.0).exp(),
                0.86 - 0.6 * (-(e as f64) / 12.0).exp()
            ));
        }
    }
    s.push_str("\x1b[1;31mERROR\x1b[0m CUDA out of memory (tried to allocate 2.00 GiB)\n");
    s
}

fn log_tail(step: &str) -> LogTail {
    LogTail {
        run: RUN_LIVE.into(),
        step: step.into(),
        stderr: false,
        path: run_dir(RUN_LIVE)
            .join("steps")
            .join(step)
            .join("stdout.log"),
        text: log_text(),
        truncated: false,
    }
}

struct Harness {
    ui: Ui,
    _rx: Receiver<Msg>,
    _config_dir: tempfile::TempDir,
}

/// The built-in configuration (an empty config dir), true colour.
fn config() -> (Config, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::built_in(dir.path());
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    (cfg, dir)
}

fn harness_with(read_only: bool, snap: Option<Snapshot>) -> Harness {
    let (cfg, dir) = config();
    let (mut ui, rx) = Ui::headless(cfg, read_only);
    ui.app.user = "tester".into();
    let mut h = Harness {
        ui,
        _rx: rx,
        _config_dir: dir,
    };
    if let Some(s) = snap {
        assert!(h.ui.handle(Msg::Data(DataMsg::Snapshot(Box::new(s)))));
    }
    h
}

fn harness() -> Harness {
    harness_with(false, Some(snapshot()))
}

fn key_events(keys: &str) -> Vec<KeyEvent> {
    let seq: KeySeq = keys
        .parse()
        .unwrap_or_else(|e| panic!("bad key macro {keys:?}: {e}"));
    seq.keys().iter().map(|k| k.to_event()).collect()
}

impl Harness {
    /// Presses keys written as a keymap macro: `j j <Enter>`, `gg`, `<C-p>`, `:theme<Space>light<Enter>`.
    /// Effects run as in the app, so never press a confirming `y` here (see [`Harness::keys_effects`]).
    fn keys(&mut self, keys: &str) {
        for ev in key_events(keys) {
            self.ui.handle(Msg::Term(Event::Key(ev)));
        }
    }

    /// Presses keys through the input layer only, returning the effects instead of running them.
    fn keys_effects(&mut self, keys: &str) -> Vec<Effect> {
        let mut all = Vec::new();
        for ev in key_events(keys) {
            all.extend(input::handle_key(
                &mut self.ui.app,
                &self.ui.config.keymap,
                &mut self.ui.keys,
                ev,
            ));
        }
        all
    }

    fn data(&mut self, msg: DataMsg) -> bool {
        self.ui.handle(Msg::Data(msg))
    }

    fn render(&mut self, w: u16, h: u16) -> Buffer {
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
        term.draw(|f| self.ui.draw(f)).unwrap();
        term.backend().buffer().clone()
    }

    fn text(&mut self, w: u16, h: u16) -> String {
        text(&self.render(w, h))
    }

    fn status(&self) -> String {
        self.ui
            .app
            .status
            .as_ref()
            .map(|s| s.0.clone())
            .unwrap_or_default()
    }

    /// Focuses the DAG and puts the cursor on train instance `i` (expanding the train group).
    fn select_instance(&mut self, i: usize) {
        self.keys("<Enter> j <Enter>");
        for _ in 0..=i {
            self.keys("j");
        }
        assert_eq!(
            self.ui.app.selected_step().map(|s| s.name.as_str()),
            Some(TRAIN[i])
        );
    }
}

/// The buffer as lines of text, trailing spaces trimmed.
fn text(buf: &Buffer) -> String {
    let w = buf.area.width as usize;
    buf.content
        .chunks(w)
        .map(|row| {
            let line: String = row.iter().map(|c| c.symbol()).collect();
            line.trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where `needle` first appears on screen: (x, y) in cells (every glyph here is one cell wide).
fn find(buf: &Buffer, needle: &str) -> Option<(u16, u16)> {
    let w = buf.area.width as usize;
    for (y, row) in buf.content.chunks(w).enumerate() {
        let syms: Vec<&str> = row.iter().map(|c| c.symbol()).collect();
        let n: Vec<String> = needle.chars().map(String::from).collect();
        if n.len() > syms.len() {
            continue;
        }
        for x in 0..=syms.len() - n.len() {
            if syms[x..x + n.len()].iter().zip(&n).all(|(a, b)| *a == b) {
                return Some((x as u16, y as u16));
            }
        }
    }
    None
}

fn snap_name(what: &str, w: u16, h: u16) -> String {
    format!("{what}_{w}x{h}")
}

// ---------------------------------------------------------------------------------------------------------
// Panes

#[test]
fn runs_and_dag_with_the_matrix_collapsed() {
    for (w, h) in SIZES {
        let mut t = harness();
        // Enter on the run focuses its DAG; j moves to the train group.
        t.keys("<Enter> j");
        assert_eq!(t.ui.app.runs_focus, RunsFocus::Dag);
        assert_eq!(t.ui.app.selected_step_name().as_deref(), Some("train"));
        let buf = t.render(w, h);
        let s = text(&buf);
        assert!(s.contains("train ▰▱▱▱▱▱ 1/6  ▶2  ✗1  ▸"), "{s}");
        assert!(s.contains("⊣ report"), "{s}");
        assert!(
            !s.contains("✓ [model=gcn,seed=0]"),
            "collapsed group shows instances:\n{s}"
        );
        insta::assert_snapshot!(snap_name("runs_dag_collapsed", w, h), s);
        insta::assert_debug_snapshot!(snap_name("runs_dag_collapsed_styles", w, h), buf);
    }
}

#[test]
fn runs_and_dag_with_the_matrix_expanded() {
    for (w, h) in SIZES {
        let mut t = harness();
        t.select_instance(1);
        let buf = t.render(w, h);
        let s = text(&buf);
        for name in TRAIN {
            let label = name.strip_prefix("train").unwrap();
            assert!(s.contains(label), "{label} missing:\n{s}");
        }
        assert!(s.contains("▾"), "{s}");
        assert!(s.contains("✗ [model=gcn,seed=2]  failed  12.5s"), "{s}");
        assert!(s.contains("✓ [model=gcn,seed=0]  succeeded"), "{s}");
        // The cursor's row is drawn with the theme's selection style.
        let (x, y) = find(&buf, "[model=gcn,seed=1]").unwrap();
        let sel = t.ui.config.theme.style("selection");
        assert_eq!(
            buf[(x, y)].bg,
            sel.bg.unwrap_or(Color::Reset),
            "selected row"
        );
        insta::assert_snapshot!(snap_name("runs_dag_expanded", w, h), s);
        insta::assert_debug_snapshot!(snap_name("runs_dag_expanded_styles", w, h), buf);
    }
}

#[test]
fn runs_list_shows_every_state_and_fixed_durations() {
    let mut t = harness();
    let s = t.text(160, 48);
    assert!(s.contains(&format!("▶ {RUN_LIVE} gnn-demo")), "{s}");
    assert!(s.contains(&format!("✗ {RUN_FAILED} ablation-s")), "{s}");
    assert!(
        s.contains(&format!("✓ {RUN_DONE} gnn-demo     9/9   1m35s")),
        "{s}"
    );
    assert!(s.contains(&format!("⊘ {RUN_CANCELLED} baseline")), "{s}");
    assert!(
        s.contains(&format!(" {RUN_LIVE} · gnn-demo ")),
        "DAG title: {s}"
    );
    // Header: backend, user, freshness and counts by step state.
    let header = s.lines().next().unwrap();
    assert!(header.contains("local · tester"), "{header}");
    assert!(header.contains("live"), "{header}");
    assert!(header.contains("▶2"), "{header}");
}

#[test]
fn metrics_pane_draws_two_series() {
    for (w, h) in SIZES {
        let mut t = harness();
        t.keys("3");
        assert_eq!(t.ui.app.focus, Pane::Metrics);
        let buf = t.render(w, h);
        let s = text(&buf);
        assert!(s.contains("train/loss (1/2) · smoothing 0.6"), "{s}");
        // Braille dots of both series, each in its own series style.
        let s0 = t.ui.config.theme.style("chart.series.0").fg;
        let s1 = t.ui.config.theme.style("chart.series.1").fg;
        assert_ne!(s0, s1);
        let braille_fgs: Vec<Option<Color>> = buf
            .content
            .iter()
            .filter(|c| {
                c.symbol()
                    .chars()
                    .any(|ch| ('\u{2801}'..='\u{28ff}').contains(&ch))
            })
            .map(|c| Some(c.fg))
            .collect();
        assert!(braille_fgs.contains(&s0), "no dots of series 0");
        assert!(braille_fgs.contains(&s1), "no dots of series 1");
        insta::assert_snapshot!(snap_name("metrics", w, h), s);
        insta::assert_debug_snapshot!(snap_name("metrics_styles", w, h), buf);
    }
}

#[test]
fn logs_pane_follows_and_renders_ansi_colours() {
    for (w, h) in SIZES {
        let mut t = harness();
        t.select_instance(1);
        t.keys("l");
        assert_eq!(t.ui.app.focus, Pane::Logs);
        assert_eq!(t.ui.app.log_step.as_deref(), Some(TRAIN[1]));
        assert_eq!(t.ui.app.watch.step.as_deref(), Some(TRAIN[1]));
        let waiting = t.text(w, h);
        assert!(waiting.contains("waiting for output…"), "{waiting}");
        t.data(DataMsg::Log(Box::new(log_tail(TRAIN[1]))));
        let buf = t.render(w, h);
        let s = text(&buf);
        assert!(
            s.contains("train[model=gcn,seed=1] · stdout · following"),
            "{s}"
        );
        // Following: the last line is on screen, the first is scrolled away.
        assert!(s.contains("ERROR CUDA out of memory"), "{s}");
        assert!(!s.contains("training gcn (seed 1)"), "{s}");
        assert!(
            !s.contains("\x1b") && !s.contains("[32m"),
            "raw escapes:\n{s}"
        );
        let (x, y) = find(&buf, "ERROR").unwrap();
        assert_eq!(buf[(x, y)].fg, Color::Red);
        assert!(
            buf[(x, y)]
                .modifier
                .contains(ratatui::style::Modifier::BOLD)
        );
        let (x, y) = find(&buf, "WARN").unwrap();
        assert_eq!(buf[(x, y)].fg, Color::Yellow);
        let (x, y) = find(&buf, "INFO").unwrap();
        assert_eq!(buf[(x, y)].fg, Color::Green);
        insta::assert_snapshot!(snap_name("logs_following", w, h), s);
        insta::assert_debug_snapshot!(snap_name("logs_following_styles", w, h), buf);
    }
}

#[test]
fn logs_scroll_up_stops_following_and_f_follows_again() {
    let mut t = harness();
    t.select_instance(1);
    t.keys("l");
    t.data(DataMsg::Log(Box::new(log_tail(TRAIN[1]))));
    t.keys("k k k");
    assert!(!t.ui.app.logs.follow);
    let s = t.text(80, 24);
    assert!(!s.contains("following"), "{s}");
    assert!(
        !s.contains("CUDA out of memory"),
        "scrolled up 3 lines:\n{s}"
    );
    // F jumps back to the end and follows again.
    t.keys("F");
    assert!(t.ui.app.logs.follow);
    assert!(t.text(80, 24).contains("CUDA out of memory"));
}

/// A harness on a cluster, the jobs delivered, the Jobs pane focused.
fn jobs_harness() -> Harness {
    let mut t = harness();
    t.ui.app.cluster = true;
    t.ui.handle(Msg::Jobs(Arc::new(jobs_snapshot())));
    t.keys("2");
    assert_eq!(t.ui.app.focus, Pane::Jobs);
    t
}

#[test]
fn jobs_pane_lists_jobs_with_their_runs_and_steps() {
    for (w, h) in SIZES {
        let mut t = jobs_harness();
        let buf = t.render(w, h);
        let s = text(&buf);
        assert!(
            s.contains("8 jobs · <10s ago · 3.0 rpc/min · by submitted"),
            "{s}"
        );
        // The pane is 80 columns wide at both sizes: ids and names as wide as they are, no
        // partition or time limit, and the rest for what each job belongs to or waits on.
        assert!(
            s.contains(
                "5012         train.3.k7mq2x  ● R   ▰▱▱▱▱ 12:34   → k7mq2x train[model=gcn,seed"
            ),
            "{s}"
        );
        assert!(
            s.contains("○ PD  ▱▱▱▱▱ 0:00    JobArrayTaskLimit · → k7mq2x"),
            "{s}"
        );
        assert!(
            s.contains("✗ F   ▱▱▱▱▱ 1:01    → b3hv9p ablate · exit 1 cpu"),
            "{s}"
        );
        assert!(s.contains("✓ CD  ▰▰▰▱▱ 40:00   cpu 90% mem 90%"), "{s}");
        assert!(s.contains("○ PD  ▱▱▱▱▱ 0:00    Priority"), "{s}");
        insta::assert_snapshot!(snap_name("jobs", w, h), s);
        insta::assert_debug_snapshot!(snap_name("jobs_styles", w, h), buf);
    }
}

/// A step the engine counts as running while its Slurm job still waits (here inside its array's
/// pending record) shows as queued, with what it waits on; its group counts it apart.
#[test]
fn steps_whose_slurm_job_waits_in_the_queue_show_as_queued() {
    let mut snap = snapshot();
    assert_eq!(snap.steps[2].name, TRAIN[1]);
    assert_eq!(snap.steps[4].name, TRAIN[3]);
    let now = sortie::util::now();
    snap.steps[2].job_id = Some("5012".into());
    // Submitted an hour ago, started two minutes ago: it has run for two minutes.
    snap.steps[2].started = Some(now - 3600.0);
    snap.steps[4].job_id = Some("5013_4".into());
    snap.steps[4].started = Some(now - 3600.0);
    let mut t = harness_with(false, Some(snap));
    t.ui.app.cluster = true;
    let mut jobs = jobs_snapshot();
    assert_eq!(jobs.jobs[0].id, "5012");
    jobs.jobs[0].start = Some(now as i64 - 125);
    t.ui.handle(Msg::Jobs(Arc::new(jobs)));
    // The DAG, the train group expanded.
    t.keys("<Enter> j <Enter>");
    for (w, h) in SIZES {
        let s = t.text(w, h);
        let line = |needle: &str| {
            s.lines()
                .find(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("no line with {needle}:\n{s}"))
                .to_string()
        };
        assert!(line("▶ train ").contains("▶1  ◦1"), "{s}");
        // (the legend of the metrics pane names steps too, without the DAG's two spaces after)
        let running = line("[model=gcn,seed=1]  ");
        assert!(
            running.contains("▶ [model=gcn,seed=1]  running  2m  "),
            "{running}"
        );
        let waiting = line("[model=gat,seed=0]  ");
        assert!(
            // (the DAG column is 44 cells wide at both sizes)
            waiting.contains("◦ [model=gat,seed=0]  queued · JobArr"),
            "{waiting}"
        );
        assert!(!waiting.contains("running"), "{waiting}");
        assert!(
            !waiting.contains("1h"),
            "no running time while queued: {waiting}"
        );
    }
    // Without the jobs (no cluster data yet) it is what the engine says.
    let mut snap = snapshot();
    snap.steps[4].job_id = Some("5013_4".into());
    let mut t = harness_with(false, Some(snap));
    t.keys("<Enter> j <Enter>");
    let s = t.text(160, 48);
    assert!(s.contains("▶ [model=gat,seed=0]  running"), "{s}");
}

#[test]
fn enter_on_a_job_shows_its_run_and_step() {
    // A step of the run on screen: selected at once.
    let mut t = jobs_harness();
    t.keys("<Enter>");
    assert_eq!(t.ui.app.focus, Pane::Runs);
    assert_eq!(t.ui.app.runs_focus, RunsFocus::Dag);
    assert_eq!(t.ui.app.selected_step_name().as_deref(), Some(TRAIN[1]));

    // The pending rest of an array: its run, the DAG focused.
    let mut t = jobs_harness();
    t.keys("j <Enter>");
    assert_eq!(t.ui.app.selected_run().unwrap().id, RUN_LIVE);
    assert_eq!(t.ui.app.runs_focus, RunsFocus::Dag);

    // A step of another run: that run is selected, and its step once its steps arrive.
    let mut t = jobs_harness();
    t.keys("j j j j");
    assert_eq!(t.ui.app.selected_job().unwrap().id, "4990");
    t.keys("<Enter>");
    assert_eq!(t.ui.app.selected_run().unwrap().id, RUN_FAILED);
    assert_eq!(t.ui.app.watch.run.as_deref(), Some(RUN_FAILED));
    assert_eq!(
        t.ui.app.pending_step,
        Some((RUN_FAILED.to_string(), "ablate".to_string()))
    );
    t.data(DataMsg::Snapshot(Box::new(failed_run_snapshot())));
    assert_eq!(t.ui.app.selected_step_name().as_deref(), Some("ablate"));
    assert_eq!(t.ui.app.pending_step, None);

    // Somebody else's job: said so, nothing moves.
    let mut t = jobs_harness();
    t.keys("j j j");
    assert_eq!(t.ui.app.selected_job().unwrap().id, "5001");
    t.keys("<Enter>");
    assert_eq!(t.ui.app.focus, Pane::Jobs);
    assert_eq!(
        t.status(),
        "job 5001 was not submitted by a run of this project"
    );
}

#[test]
fn the_finder_finds_jobs_by_their_run() {
    let mut t = jobs_harness();
    t.keys("1 <C-p>b3hv9p");
    let Some(Overlay::Finder(f)) = &t.ui.app.overlay else {
        panic!("no finder open");
    };
    // The run itself, and its job (its name and its link both name the run).
    let found: Vec<(sortie::tui::finder::FinderKind, &str)> = f
        .matches
        .iter()
        .map(|m| (f.items[m.item].kind, f.items[m.item].target.as_str()))
        .collect();
    use sortie::tui::finder::FinderKind;
    assert!(found.contains(&(FinderKind::Run, RUN_FAILED)), "{found:?}");
    let at = found
        .iter()
        .position(|x| *x == (FinderKind::Job, "4990"))
        .unwrap_or_else(|| panic!("job 4990 not found: {found:?}"));
    for _ in 0..at {
        t.keys("<Down>");
    }
    t.keys("<Enter>");
    assert_eq!(t.ui.app.focus, Pane::Jobs);
    assert_eq!(t.ui.app.selected_job().unwrap().id, "4990");
}

#[test]
fn jobs_placeholder_and_trials_without_studies() {
    for (w, h) in SIZES {
        let mut t = harness();
        t.keys("2");
        assert_eq!(t.ui.app.focus, Pane::Jobs);
        let s = t.text(w, h);
        assert!(s.contains("2 Jobs"), "{s}");
        assert!(s.contains("No SLURM cluster found on this host"), "{s}");
        insta::assert_snapshot!(snap_name("jobs_placeholder", w, h), s);
        t.keys("5");
        assert_eq!(t.ui.app.focus, Pane::Trials);
        let s = t.text(w, h);
        assert!(s.contains("5 Trials"), "{s}");
        // With no study anywhere, the pane says where it looked and how to open one.
        assert!(s.contains("No Optuna study found in"), "{s}");
        assert!(s.contains("--trials"), "{s}");
        insta::assert_snapshot!(snap_name("trials_placeholder", w, h), s);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Empty, loading and error states

#[test]
fn empty_state_without_runs() {
    for (w, h) in SIZES {
        let mut t = harness_with(false, Some(Snapshot::default()));
        let s = t.text(w, h);
        assert!(s.contains("No runs here yet."), "{s}");
        assert!(s.contains("No metrics in this run yet") || w < 160, "{s}");
        insta::assert_snapshot!(snap_name("empty", w, h), s);
        // Destructive keys have nothing to act on and say so.
        t.keys("c");
        assert_eq!(t.status(), "no run selected");
        assert!(t.ui.app.overlay.is_none());
    }
}

#[test]
fn loading_before_the_first_snapshot() {
    let mut t = harness_with(false, None);
    let s = t.text(80, 24);
    assert!(s.lines().next().unwrap().contains("loading…"), "{s}");
}

#[test]
fn error_state_in_the_header() {
    for (w, h) in SIZES {
        let mut t = harness();
        let changed = t.data(DataMsg::Health {
            ok_at: Instant::now(),
            error: Some("cannot update the index: database is locked".into()),
        });
        assert!(changed, "a new error must redraw");
        let buf = t.render(w, h);
        let s = text(&buf);
        let header = s.lines().next().unwrap();
        assert!(header.contains("✗ cannot update the index"), "{header}");
        let (x, y) = find(&buf, "✗ cannot update").unwrap();
        assert_eq!(buf[(x, y)].fg, t.ui.config.theme.style("error").fg.unwrap());
        // The last good data stays on screen.
        assert!(s.contains(RUN_LIVE), "{s}");
        insta::assert_snapshot!(snap_name("error", w, h), s);
        // The same health again changes nothing; recovery does.
        assert!(!t.data(DataMsg::Health {
            ok_at: Instant::now(),
            error: Some("cannot update the index: database is locked".into()),
        }));
        assert!(t.data(DataMsg::Health {
            ok_at: Instant::now(),
            error: None,
        }));
        assert!(!t.text(w, h).contains("database is locked"));
    }
}

// ---------------------------------------------------------------------------------------------------------
// Overlays

#[test]
fn help_overlay_lists_the_keys() {
    for (w, h) in SIZES {
        let mut t = harness();
        t.keys("?");
        assert_eq!(t.ui.app.overlay, Some(Overlay::Help));
        let s = t.text(w, h);
        assert!(s.contains("keys (Esc closes)"), "{s}");
        assert!(s.contains("quit (runs keep going)"), "{s}");
        assert!(s.contains("j, Down  move down"), "{s}");
        insta::assert_snapshot!(snap_name("help", w, h), s);
        t.keys("<Esc>");
        assert!(t.ui.app.overlay.is_none());
        assert!(!t.ui.app.quit);
    }
}

/// Help cannot scroll (any key closes it), and at 80×24 it is cut after the first 20 bindings: the keys
/// that change runs (`c`, `r`, `R`, `f`) and `l`, `y` are never shown on a standard terminal.
#[test]
fn help_at_80x24_shows_the_keys_that_change_runs() {
    let mut t = harness();
    t.keys("?");
    let s = t.text(80, 24);
    for d in [
        "cancel the selected run, step or job",
        "re-run the selected step",
        "retry the failed steps of the selected run",
        "show the selection's logs",
    ] {
        assert!(s.contains(d), "help at 80x24 lacks {d:?}:\n{s}");
    }
}

/// Help pads the key column to 12 cells, so longer labels (`PageUp, Ctrl-u`, `PageDown, Ctrl-d`) push
/// their description out of the column.
#[test]
fn help_descriptions_line_up() {
    let mut t = harness();
    t.keys("?");
    let buf = t.render(160, 48);
    let col = |d: &str| {
        find(&buf, d)
            .unwrap_or_else(|| panic!("{d:?} not in help"))
            .0
    };
    let expected = col("move down");
    for d in [
        "page up",
        "page down",
        "go to the top",
        "quit (runs keep going)",
    ] {
        assert_eq!(
            col(d),
            expected,
            "{d:?} starts at another column:\n{}",
            text(&buf)
        );
    }
}

#[test]
fn confirm_overlay_names_the_step_and_the_run() {
    for (w, h) in SIZES {
        let mut t = harness();
        t.select_instance(1);
        t.keys("c");
        let Some(Overlay::Confirm(c)) = &t.ui.app.overlay else {
            panic!("no confirmation: {:?}", t.ui.app.overlay);
        };
        assert!(c.message.contains(TRAIN[1]), "{}", c.message);
        assert!(
            c.message.contains(&format!("run {RUN_LIVE}")),
            "{}",
            c.message
        );
        assert!(c.message.contains("1 running instance(s)"), "{}", c.message);
        let buf = t.render(w, h);
        let s = text(&buf);
        assert!(s.contains("confirm"), "{s}");
        assert!(s.contains("Cancel train[model=gcn,seed=1]"), "{s}");
        assert!(s.contains(RUN_LIVE), "{s}");
        insta::assert_snapshot!(snap_name("confirm_cancel", w, h), s);
        insta::assert_debug_snapshot!(snap_name("confirm_cancel_styles", w, h), buf);
    }
}

#[test]
fn confirm_yes_returns_the_request_and_no_changes_nothing() {
    let mut t = harness();
    t.select_instance(1);
    // Only yes / no mean anything in a confirmation: other keys neither act nor close it.
    assert!(t.keys_effects("c q j").is_empty());
    assert!(!t.ui.app.quit);
    assert!(matches!(t.ui.app.overlay, Some(Overlay::Confirm(_))));
    let effects = t.keys_effects("y");
    assert_eq!(
        effects,
        vec![Effect::Request {
            run_dir: run_dir(RUN_LIVE),
            request: Request::Cancel {
                step: Some(TRAIN[1].into())
            },
        }]
    );
    assert!(t.ui.app.overlay.is_none());
    assert_eq!(t.status(), "working…");

    // n closes the question without an effect.
    assert!(t.keys_effects("c").is_empty());
    assert!(t.keys_effects("n").is_empty());
    assert!(t.ui.app.overlay.is_none());
    assert_eq!(t.status(), "nothing changed");

    // The same through App::update: re-run and retry name their targets too.
    assert!(t.ui.app.update(Action::Rerun).is_empty());
    assert_eq!(
        t.ui.app.update(Action::Confirm),
        vec![Effect::Request {
            run_dir: run_dir(RUN_LIVE),
            request: Request::Rerun {
                step: TRAIN[1].into(),
                downstream: false
            },
        }]
    );
    assert!(t.ui.app.update(Action::RetryFailed).is_empty());
    let Some(Overlay::Confirm(c)) = &t.ui.app.overlay else {
        panic!("retry did not ask");
    };
    assert!(
        c.message
            .contains("Retry 2 failed, blocked or cancelled step(s) of run"),
        "{}",
        c.message
    );
    assert_eq!(
        t.ui.app.update(Action::Confirm),
        vec![Effect::Request {
            run_dir: run_dir(RUN_LIVE),
            request: Request::Retry,
        }]
    );
}

#[test]
fn cancel_on_the_run_list_cancels_the_whole_run_and_finished_runs_refuse() {
    let mut t = harness();
    t.keys("c");
    let Some(Overlay::Confirm(c)) = &t.ui.app.overlay else {
        panic!("no confirmation");
    };
    assert!(
        c.message
            .contains(&format!("Cancel the whole run {RUN_LIVE}?")),
        "{}",
        c.message
    );
    assert_eq!(
        t.keys_effects("<Enter>"),
        vec![Effect::Request {
            run_dir: run_dir(RUN_LIVE),
            request: Request::Cancel { step: None },
        }]
    );
    t.keys("j c");
    assert!(t.ui.app.overlay.is_none());
    assert_eq!(t.status(), format!("run {RUN_FAILED} is already failed"));
    // A finished instance has nothing to cancel.
    let mut t = harness();
    t.select_instance(0);
    t.keys("c");
    assert!(t.ui.app.overlay.is_none());
    assert!(t.status().contains("nothing to cancel"), "{}", t.status());
}

#[test]
fn command_line_switches_the_theme() {
    for (w, h) in SIZES {
        let mut t = harness();
        let dark = t.render(w, h);
        t.keys(":theme<Space>ligh");
        assert_eq!(
            t.ui.app.overlay,
            Some(Overlay::Input(Input::Command("theme ligh".into())))
        );
        let typing = t.text(w, h);
        assert!(
            typing.lines().last().unwrap().starts_with(":theme ligh▏"),
            "{typing}"
        );
        t.keys("t<Enter>");
        assert!(t.ui.app.overlay.is_none());
        assert_eq!(t.ui.config.theme.name(), "light");
        assert_eq!(t.status(), "theme light");
        let light = t.render(w, h);
        // Same text (but the footer's status line), other colours.
        let (a, b) = (text(&dark), text(&light));
        let strip_footer = |s: &str| {
            s.lines()
                .take(h as usize - 1)
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(strip_footer(&a), strip_footer(&b));
        let recoloured = dark
            .content
            .iter()
            .zip(&light.content)
            .filter(|(a, b)| a.fg != b.fg || a.bg != b.bg)
            .count();
        assert!(recoloured > 200, "only {recoloured} cells changed colour");
        let (x, y) = find(&light, RUN_LIVE).unwrap();
        assert_ne!(dark[(x, y)].fg, light[(x, y)].fg, "text colour");
        insta::assert_snapshot!(snap_name("theme_light", w, h), b);
        insta::assert_debug_snapshot!(snap_name("theme_light_styles", w, h), light);
    }
}

#[test]
fn command_line_errors_and_unknown_themes_keep_the_current_theme() {
    let mut t = harness();
    t.keys(":theme<Space>neon<Enter>");
    assert_eq!(t.ui.config.theme.name(), "dark");
    assert!(t.status().starts_with("✗"), "{}", t.status());
    assert!(t.status().contains("neon"), "{}", t.status());
    t.keys(":frob<Enter>");
    assert!(
        t.status().contains("unknown command \"frob\""),
        "{}",
        t.status()
    );
    // Tab completes a unique prefix.
    t.keys(":the<Tab>");
    assert_eq!(
        t.ui.app.overlay,
        Some(Overlay::Input(Input::Command("theme ".into())))
    );
    t.keys("<Esc>");
    assert!(t.ui.app.overlay.is_none());
}

#[test]
fn filter_narrows_the_runs_list() {
    for (w, h) in SIZES {
        let mut t = harness();
        t.keys("/fail");
        // The filter applies as it is typed.
        assert_eq!(t.ui.app.visible_runs().len(), 1);
        assert_eq!(t.ui.app.selected_run().unwrap().id, RUN_FAILED);
        // The data thread answers with the newly selected run's steps.
        t.data(DataMsg::Snapshot(Box::new(failed_run_snapshot())));
        let typing = t.text(w, h);
        assert!(
            typing.lines().last().unwrap().starts_with("filter /fail▏"),
            "{typing}"
        );
        insta::assert_snapshot!(snap_name("filter_typing", w, h), typing);
        t.keys("<Enter>");
        assert!(t.ui.app.overlay.is_none());
        assert_eq!(t.ui.app.filter, "fail");
        assert_eq!(t.ui.app.selected_run().unwrap().id, RUN_FAILED);
        let s = t.text(w, h);
        assert!(s.contains(" runs /fail "), "{s}");
        assert!(s.contains("✗ ablate  failed  58.0s"), "{s}");
        assert!(s.contains(RUN_FAILED), "{s}");
        for other in [RUN_DONE, RUN_CANCELLED] {
            assert!(!s.contains(other), "{other} not filtered out:\n{s}");
        }
        insta::assert_snapshot!(snap_name("filter_applied", w, h), s);
        // Esc clears it.
        t.keys("<Esc>");
        assert!(t.ui.app.filter.is_empty());
        assert_eq!(t.ui.app.visible_runs().len(), 4);
    }
    // Matches ids and pipelines too.
    let mut t = harness();
    t.keys(&format!("/{RUN_DONE}<Enter>"));
    assert_eq!(t.ui.app.visible_runs().len(), 1);
    t.keys("<Esc> /gnn<Enter>");
    assert_eq!(t.ui.app.visible_runs().len(), 2);
}

/// Filtering changes which run is selected, so the data thread must be told (the DAG, metrics and header
/// counts come from the watched run). `/` typing and Enter never call `sync_watch`: the DAG keeps showing
/// the previous run's steps under the newly selected run's title until something else moves the cursor.
#[test]
fn filter_tells_the_data_thread_which_run_is_selected() {
    let mut t = harness();
    assert_eq!(t.ui.app.watch.run.as_deref(), Some(RUN_LIVE));
    t.keys("/fail");
    assert_eq!(t.ui.app.selected_run().unwrap().id, RUN_FAILED);
    t.keys("<Enter>");
    assert_eq!(
        t.ui.app.watch.run.as_deref(),
        Some(RUN_FAILED),
        "after filtering to {RUN_FAILED} the data thread still watches {:?}",
        t.ui.app.watch.run
    );
    // Clearing the filter moves the selection again.
    t.keys("<Esc>");
    let selected = t.ui.app.selected_run().unwrap().id.clone();
    assert_eq!(t.ui.app.watch.run.as_deref(), Some(selected.as_str()));
}

#[test]
fn finder_highlights_the_matched_characters() {
    for (w, h) in SIZES {
        let mut t = harness();
        t.keys("<C-p>");
        let Some(Overlay::Finder(f)) = &t.ui.app.overlay else {
            panic!("no finder");
        };
        // 4 runs, 9 steps, 2 metrics.
        assert_eq!(f.items.len(), 15);
        t.keys("gat2");
        let Some(Overlay::Finder(f)) = &t.ui.app.overlay else {
            panic!("no finder");
        };
        assert_eq!(f.selected_item().unwrap().target, TRAIN[5]);
        let buf = t.render(w, h);
        let s = text(&buf);
        assert!(s.contains("find: gat2▏"), "{s}");
        assert!(s.contains("step   train[model=gat,seed=2]"), "{s}");
        // The matched characters of the top item carry the match style, the rest do not.
        let m = t.ui.config.theme.style("match");
        let plain = t.ui.config.theme.style("text");
        let (x, y) = find(&buf, "train[model=gat,seed=2]").unwrap();
        let styled: String = "train[model=gat,seed=2]"
            .chars()
            .enumerate()
            .filter(|(i, _)| {
                let c = &buf[(x + *i as u16, y)];
                Some(c.fg) == m.fg && m.fg != plain.fg
            })
            .map(|(_, ch)| ch)
            .collect();
        assert_eq!(styled, "gat2", "highlighted: {styled:?}");
        insta::assert_snapshot!(snap_name("finder", w, h), s);
        insta::assert_debug_snapshot!(snap_name("finder_styles", w, h), buf);
        // Enter jumps to the step: its group expands and the DAG cursor is on it.
        t.keys("<Enter>");
        assert!(t.ui.app.overlay.is_none());
        assert_eq!(t.ui.app.runs_focus, RunsFocus::Dag);
        assert_eq!(
            t.ui.app.selected_step().map(|s| s.name.as_str()),
            Some(TRAIN[5])
        );
    }
}

#[test]
fn finder_jumps_to_a_metric() {
    let mut t = harness();
    let effects = {
        t.keys("<C-p>val/");
        t.keys_effects("<Enter>")
    };
    assert_eq!(t.ui.app.focus, Pane::Metrics);
    assert_eq!(t.ui.app.snapshot.metric.as_deref(), Some("val/acc"));
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::Watch(w) if w.metric.as_deref() == Some("val/acc"))),
        "{effects:?}"
    );
}

#[test]
fn read_only_refuses_destructive_keys() {
    for (w, h) in SIZES {
        let mut t = harness_with(true, Some(snapshot()));
        t.select_instance(1);
        for k in ["c", "r", "R", "f", "n"] {
            t.ui.app.status = None;
            assert!(t.keys_effects(k).is_empty(), "{k}");
            assert!(
                t.ui.app.overlay.is_none(),
                "{k} opened {:?}",
                t.ui.app.overlay
            );
            assert_eq!(
                t.status(),
                "read-only: actions that change runs are disabled",
                "{k}"
            );
        }
        // The command line is no way around it.
        t.keys(":cancel<Enter>");
        assert!(t.ui.app.overlay.is_none());
        let s = t.text(w, h);
        assert!(
            s.lines()
                .last()
                .unwrap()
                .contains("read-only: actions that change runs are disabled"),
            "{s}"
        );
        insta::assert_snapshot!(snap_name("read_only_refused", w, h), s);
        // Once the message is gone the footer says read-only and offers no destructive keys.
        t.ui.app.status = None;
        let s = t.text(w, h);
        let footer = s.lines().last().unwrap();
        assert!(footer.contains("read-only"), "{footer}");
        assert!(!footer.contains("cancel"), "{footer}");
        // Looking around still works.
        t.keys("l");
        assert_eq!(t.ui.app.focus, Pane::Logs);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Keys

#[test]
fn chord_gg_goes_to_the_top() {
    let mut t = harness();
    t.keys("j j j");
    assert_eq!(t.ui.app.run_sel, 3);
    t.keys("g");
    // Half a chord: nothing moved, the hints say what may follow.
    assert_eq!(t.ui.app.run_sel, 3);
    assert!(
        t.ui.keys
            .hints
            .iter()
            .any(|(k, d)| k == "g" && d == "go to the top"),
        "{:?}",
        t.ui.keys.hints
    );
    t.keys("g");
    assert_eq!(t.ui.app.run_sel, 0);
    assert!(t.ui.keys.hints.is_empty());
    // Esc cancels a pending chord without acting.
    t.keys("G");
    assert_eq!(t.ui.app.run_sel, 3);
    t.keys("g <Esc> g");
    assert_eq!(t.ui.app.run_sel, 3, "g Esc g must not be gg");
    t.keys("g");
    assert_eq!(t.ui.app.run_sel, 0);
    // In the DAG too.
    t.keys("<Enter> G");
    assert_eq!(t.ui.app.selected_step_name().as_deref(), Some("report"));
    t.keys("gg");
    assert_eq!(t.ui.app.selected_step_name().as_deref(), Some("prepare"));
}

/// The architecture promises "chords pending with which-key hints": after `g` the screen should show
/// what the next key does. The hints are computed into `KeyState::hints` but no view draws them.
#[test]
fn pending_chord_shows_which_key_hints_on_screen() {
    let mut t = harness();
    t.keys("g");
    assert!(!t.ui.keys.hints.is_empty());
    for (w, h) in SIZES {
        let s = t.text(w, h);
        assert!(
            s.contains("go to the top"),
            "which-key hint for the pending `g` is not drawn at {w}x{h}:\n{s}"
        );
    }
}

/// At 80 columns only the focused pane is drawn, so the header's pane tabs are the only sign of the
/// others. With the usual header (user, freshness, a few step states) they run off the right edge: the
/// last tab reads `5:` without its name.
#[test]
fn narrow_header_shows_every_pane_tab() {
    let mut t = harness();
    let s = t.text(80, 24);
    let header = s.lines().next().unwrap();
    for tab in ["1:Runs", "3:Metrics", "4:Logs", "5:Trials"] {
        assert!(
            header.contains(tab),
            "header lacks {tab:?} at 80x24: {header:?}"
        );
    }
}

/// At 80 columns the Runs pane's footer hints run off the edge: `f retry` is cut to `f ret` and
/// `l logs` and `q quit` are not shown.
#[test]
fn narrow_footer_shows_the_quit_hint() {
    let mut t = harness();
    let s = t.text(80, 24);
    let footer = s.lines().last().unwrap();
    assert!(footer.contains("q quit"), "footer at 80x24: {footer:?}");
}

#[test]
fn tab_shift_tab_and_numbers_move_the_focus() {
    let mut t = harness();
    // Without a cluster the Jobs pane is skipped by Tab.
    let order = [Pane::Metrics, Pane::Logs, Pane::Trials, Pane::Runs];
    for p in order {
        t.keys("<Tab>");
        assert_eq!(t.ui.app.focus, p);
    }
    for p in [Pane::Trials, Pane::Logs, Pane::Metrics, Pane::Runs] {
        t.keys("<S-Tab>");
        assert_eq!(t.ui.app.focus, p);
    }
    // A BackTab without the Shift flag, as some terminals send it.
    t.ui.handle(Msg::Term(Event::Key(KeyEvent::new(
        KeyCode::BackTab,
        KeyModifiers::NONE,
    ))));
    assert_eq!(t.ui.app.focus, Pane::Trials);
    for (k, p) in ["1", "2", "3", "4", "5"].into_iter().zip(Pane::ALL) {
        t.keys(k);
        assert_eq!(t.ui.app.focus, p, "key {k}");
        // Narrow: the focused pane fills the screen and the header's tab is highlighted.
        let buf = t.render(80, 24);
        let s = text(&buf);
        let title = format!("{} {}", p.index() + 1, p.title());
        assert!(s.lines().nth(1).unwrap().contains(&title), "{s}");
        // Wide: the focused pane's border has the focused style.
        let buf = t.render(160, 48);
        let (x, y) = find(&buf, &format!(" {title} ")).unwrap();
        let focused = t.ui.config.theme.style("title.focused").fg;
        assert_eq!(Some(buf[(x + 1, y)].fg), focused, "{title} at 160x48");
    }
    // With a cluster, Tab visits Jobs.
    t.ui.app.cluster = true;
    t.keys("1 <Tab>");
    assert_eq!(t.ui.app.focus, Pane::Jobs);
    let s = t.text(80, 24);
    assert!(s.lines().next().unwrap().contains("local + slurm"), "{s}");
}

#[test]
fn the_selection_survives_new_snapshots() {
    let mut t = harness();
    t.select_instance(3);
    // The instance moves (a new step appears before it): the cursor follows the name.
    let mut s = snapshot();
    let extra = step(
        "train[model=gcn,seed=3]",
        "train",
        &["prepare"],
        StepState::Pending,
        None,
        0,
    );
    s.steps.insert(4, extra);
    s.steps[4 + 1].state = StepState::Succeeded;
    t.data(DataMsg::Snapshot(Box::new(s)));
    assert_eq!(
        t.ui.app.selected_step().map(|s| s.name.as_str()),
        Some(TRAIN[3])
    );
    // The run moves down the list: the runs cursor follows it.
    let mut s = snapshot();
    s.runs.rotate_right(1);
    t.keys("<Esc>");
    t.data(DataMsg::Snapshot(Box::new(s)));
    assert_eq!(t.ui.app.selected_run().unwrap().id, RUN_LIVE);
    assert_eq!(t.ui.app.run_sel, 1);
}

#[test]
fn q_quits_and_help_swallows_it() {
    let mut t = harness();
    t.keys("q");
    assert!(t.ui.app.quit);
    let mut t = harness();
    t.keys(":q<Enter>");
    assert!(t.ui.app.quit);
    // Help swallows q: it only closes the overlay.
    let mut t = harness();
    t.keys("? q");
    assert!(!t.ui.app.quit);
    assert!(t.ui.app.overlay.is_none());
}

// ---------------------------------------------------------------------------------------------------------
// The data thread: nothing changes, nothing is sent

fn recv_data(rx: &Receiver<DataMsg>, limit: Duration) -> Option<DataMsg> {
    match rx.recv_timeout(limit) {
        Ok(m) => Some(m),
        Err(RecvTimeoutError::Timeout) => None,
        Err(RecvTimeoutError::Disconnected) => panic!("the data thread died"),
    }
}

/// Collects what the data thread sends within `limit`: (snapshots, health messages, logs).
fn drain(rx: &Receiver<DataMsg>, limit: Duration) -> (Vec<Snapshot>, usize, usize) {
    let end = Instant::now() + limit;
    let (mut snaps, mut health, mut logs) = (Vec::new(), 0, 0);
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match recv_data(rx, left) {
            Some(DataMsg::Snapshot(s)) => snaps.push(*s),
            Some(DataMsg::Health { .. }) => health += 1,
            Some(DataMsg::Log(_)) => logs += 1,
            None => break,
        }
    }
    (snaps, health, logs)
}

#[test]
fn data_thread_sends_a_snapshot_only_when_something_changed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sortie.toml"),
        "[pipeline]\nname = \"tiny\"\n\n[[step]]\nname = \"hello\"\nrun = \"echo hello from tiny\"\n",
    )
    .unwrap();
    let project = sortie::runlog::Project::new(dir.path().to_path_buf());
    let (tx, rx) = std::sync::mpsc::channel();
    let (wtx, wrx) = std::sync::mpsc::channel::<Watch>();
    let interval = Duration::from_millis(50);
    let thread = std::thread::spawn(move || {
        sortie::tui::data::run(
            project,
            wrx,
            move |m| tx.send(m).is_ok(),
            sortie::tui::data::Timing::every(interval),
        )
    });

    // One health message and one (empty) snapshot, then silence while nothing changes.
    let (snaps, health, _) = drain(&rx, Duration::from_secs(3));
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    assert!(snaps[0].runs.is_empty());
    assert_eq!(health, 1);
    let (snaps, health, logs) = drain(&rx, Duration::from_millis(1500));
    assert_eq!(
        (snaps.len(), health, logs),
        (0, 0, 0),
        "sent again with nothing changed: {snaps:?}"
    );

    // A run appears: exactly the changed snapshot(s) arrive, ending with the finished run.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sortie"))
        .arg("run")
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last: Option<Snapshot> = None;
    while Instant::now() < deadline {
        if let Some(DataMsg::Snapshot(s)) = recv_data(&rx, Duration::from_millis(200)) {
            last = Some(*s);
        }
        if last
            .as_ref()
            .is_some_and(|s| s.runs.len() == 1 && s.runs[0].state == RunState::Succeeded)
        {
            break;
        }
    }
    let last = last.expect("no snapshot after a run was added");
    assert_eq!(last.runs.len(), 1, "{last:?}");
    assert_eq!(last.runs[0].state, RunState::Succeeded);
    assert_eq!(last.steps.len(), 1);
    let (snaps, _, _) = drain(&rx, Duration::from_millis(1500));
    assert!(
        snaps.is_empty(),
        "sent again with nothing changed: {snaps:?}"
    );

    // Watching the step's log sends its tail once, then nothing until the file changes.
    let run = last.runs[0].id.clone();
    wtx.send(Watch {
        run: Some(run.clone()),
        step: Some("hello".into()),
        ..Default::default()
    })
    .unwrap();
    let mut tail = None;
    let deadline = Instant::now() + Duration::from_secs(5);
    while tail.is_none() && Instant::now() < deadline {
        if let Some(DataMsg::Log(t)) = recv_data(&rx, Duration::from_millis(200)) {
            tail = Some(*t);
        }
    }
    let tail = tail.expect("no log tail for the watched step");
    assert_eq!(tail.run, run);
    assert!(tail.text.contains("hello from tiny"), "{tail:?}");
    let (snaps, _, logs) = drain(&rx, Duration::from_millis(1500));
    assert_eq!((snaps.len(), logs), (0, 0), "resent with nothing changed");

    drop(wtx);
    thread.join().unwrap();
}

/// A clock tick redraws only when a text that follows the clock reads differently: the status message
/// going away, the data turning stale, a running step's duration.
#[test]
fn the_clock_signature_changes_with_what_the_clock_changes_on_screen() {
    let mut t = harness();
    t.data(DataMsg::Health {
        ok_at: Instant::now(),
        error: None,
    });
    let base = t.ui.clock_signature();
    assert_eq!(t.ui.clock_signature(), base, "nothing moved");

    t.ui.app.set_status("cancelled train[model=gcn,seed=1]");
    assert_ne!(t.ui.clock_signature(), base, "a status message shows");
    t.ui.app.status.as_mut().unwrap().1 = Instant::now() - Duration::from_secs(7);
    assert_eq!(t.ui.clock_signature(), base, "the status message is gone");

    t.ui.app.data_at = Some(Instant::now() - Duration::from_secs(12));
    assert!(
        t.ui.clock_signature().contains("stale 12s"),
        "{}",
        t.ui.clock_signature()
    );
    t.ui.app.data_at = Some(Instant::now());

    // A step running for 5 s, then 7 s, then a minute and a bit (minutes only from then on).
    let now = sortie::util::now();
    let running = |t: &mut Harness, secs: f64| {
        let st = &mut t.ui.app.snapshot.steps[2];
        assert_eq!(st.state, StepState::Running);
        st.started = Some(now - secs);
        t.ui.clock_signature()
    };
    // In a collapsed matrix group the instance's time is not on screen.
    let (a, b) = (running(&mut t, 5.2), running(&mut t, 7.2));
    assert_eq!(a, b);
    // Expanded, it is.
    t.keys("<Enter> j <Enter>");
    let (a, b) = (running(&mut t, 5.2), running(&mut t, 7.2));
    assert_ne!(a, b);
    assert_eq!(running(&mut t, 61.0), running(&mut t, 65.0));
}

/// A Slurm poll that found what the last one did redraws nothing; a changed job does.
#[test]
fn a_jobs_poll_redraws_only_when_the_jobs_changed() {
    use sortie::slurm::model::{Job, JobState};
    use sortie::slurm::poller::JobsSnapshot;
    let mut t = harness();
    let snap = |state: JobState| {
        Msg::Jobs(Arc::new(JobsSnapshot {
            jobs: vec![Job {
                id: "4242".into(),
                name: "train".into(),
                state,
                ..Default::default()
            }],
            fetched: Some(Instant::now()),
            rpc_per_min: 2.0,
            ..Default::default()
        }))
    };
    assert!(t.ui.handle(snap(JobState::Pending)), "the first poll");
    assert!(!t.ui.handle(snap(JobState::Pending)), "the same jobs again");
    assert!(t.ui.handle(snap(JobState::Running)), "a job started");
}

/// `Ui::handle` reports whether to redraw: data and key presses do; a key release or a repeated
/// health message does not.
#[test]
fn handle_reports_when_nothing_needs_a_redraw() {
    let mut t = harness();
    let mut release = KeyEvent::new(KeyCode::Char('j'), KeyModifiers::NONE);
    release.kind = crossterm::event::KeyEventKind::Release;
    assert!(!t.ui.handle(Msg::Term(Event::Key(release))));
    assert_eq!(t.ui.app.run_sel, 0);
    assert!(!t.ui.handle(Msg::Term(Event::FocusGained)));
    assert!(t.ui.handle(Msg::Term(Event::Resize(100, 30))));
    assert!(!t.data(DataMsg::Health {
        ok_at: Instant::now(),
        error: None
    }));
}
/// A run whose engine died: one step ended while nobody watched (its exit-code file), the other's
/// processes were all killed (lost). `sortie status` and the TUI read both through the same function
/// and must say the same; the Runs pane marks the dead engine and `e` resumes the run after a yes.
#[test]
fn status_and_the_tui_agree_on_a_run_nobody_drives() {
    let p = common::Project::with_pipeline(
        r#"[[step]]
name = "quick"
run = '''
touch quick-started
while [ ! -e go ]; do sleep 0.1; done
'''

[[step]]
name = "slow"
run = '''
sleep 60 &
echo $! >> pids.txt
wait
'''
"#,
    );
    let run = p.run_detached(&["-j", "2"]);
    let st = p.wait_status(&run, Duration::from_secs(15), "both steps to run", |v| {
        common::step_of(v, "quick")["state"] == "running"
            && common::step_of(v, "slow")["state"] == "running"
    });
    let pids = common::wait_for(Duration::from_secs(15), "slow's pid", || {
        let pids = common::read_pids(&p.path("pids.txt"));
        (!pids.is_empty() && p.path("quick-started").exists()).then_some(pids)
    });
    common::kill_pid(st["engine"]["pid"].as_u64().unwrap() as u32);
    p.wait_status(
        &run,
        Duration::from_secs(15),
        "the engine to be seen dead",
        |v| v["engine"]["alive"] == false,
    );
    // quick ends on its own; everything of slow dies without a word.
    std::fs::write(p.path("go"), "").unwrap();
    let quick_exit = p.run_dir(&run).join("quick/attempt-1/exit_code");
    common::wait_for(Duration::from_secs(10), "quick's exit-code file", || {
        quick_exit.exists().then_some(())
    });
    let slow_shell = p
        .events(&run)
        .iter()
        .find(|e| e["type"] == "attempt_started" && e["step"] == "slow")
        .and_then(|e| e["pid"].as_u64())
        .unwrap() as i32;
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(slow_shell),
        nix::sys::signal::Signal::SIGKILL,
    );
    let dead = common::wait_dead(&pids, Duration::from_secs(5));
    common::kill_leftovers(&pids, "sleep");
    dead.expect("slow's processes died");
    // The group's last process may linger a moment after its sleep.
    std::thread::sleep(Duration::from_millis(300));

    let status = p.status(Some(&run));
    assert_eq!(common::step_of(&status, "quick")["state"], "succeeded");
    assert_eq!(common::step_of(&status, "slow")["state"], "failed");
    let snap = common::tui_snapshot(p.root(), &run);
    common::assert_status_matches_tui(&status, &snap, &run);
    let row = snap.runs.iter().find(|r| r.id == run).unwrap();
    assert_eq!(snap.dead_engines, std::slice::from_ref(&run));

    let dir = row.dir.clone();
    let mut t = harness_with(false, Some(snap));
    let screen = t.text(80, 24);
    assert!(screen.contains("engine died"), "{screen}");
    assert!(t.keys_effects("e").is_empty());
    let Some(Overlay::Confirm(c)) = &t.ui.app.overlay else {
        panic!("resume did not ask");
    };
    assert!(
        c.message.contains(&format!("Resume run {run}?")),
        "{}",
        c.message
    );
    assert_eq!(t.keys_effects("y"), vec![Effect::Resume(dir)]);
}

#[test]
fn a_step_running_on_another_host_shows_where_and_its_heartbeat() {
    let mut snap = snapshot();
    // `prepare` is a group of one step: its DAG row shows the step's state word.
    snap.steps[0].state = StepState::Running;
    snap.steps[0].ended = None;
    snap.remote.insert(
        "prepare".into(),
        sortie::index::unattended::RemoteRunning {
            host: "login2".into(),
            heartbeat: Some(sortie::util::now() - 3.0),
        },
    );
    let mut t = harness_with(false, Some(snap));
    // Wide enough for the whole row in the four-pane layout.
    let screen = t.text(200, 48);
    assert!(
        screen.contains("running on login2 (heartbeat 3 s ago)"),
        "{screen}"
    );
}
