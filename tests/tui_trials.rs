//! The Trials pane, driven headless on studies the real Optuna 5.0 wrote (fixtures/optuna): the studies
//! list, the leaderboard (best marked, sort, filters, pruned hidden), the charts, stale running trials,
//! the finder, and the feed taking in a journal that grows. The clock is fixed so frames are
//! deterministic; the fixtures' times are UTC (Optuna 5), so the machine's time zone does not matter.

use crossterm::event::Event;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use sortie::trials::TrialState;
use sortie::tui::action::Pane;
use sortie::tui::config::{Config, KeySeq};
use sortie::tui::trials::feed::{Feed, FeedConfig, TrialsSnapshot, read_once, read_once_from};
use sortie::tui::trials::{ChartKind, TrialsFocus};
use sortie::tui::{Msg, Ui};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/optuna")
        .join(name)
}

/// 2026-12-03 00:00 UTC: a day after the fixtures were written.
const NOW: f64 = 1_796_256_000.0;

struct Harness {
    ui: Ui,
    _dir: tempfile::TempDir,
}

fn harness(files: &[&str]) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::built_in(dir.path());
    let (mut ui, _rx) = Ui::headless(cfg, false);
    ui.app.trials.now = Some(NOW);
    let paths: Vec<PathBuf> = files.iter().map(|f| fixture(f)).collect();
    // Watching began two hours before the test's clock: the running trials have been still since.
    let snap = read_once_from(&paths, NOW - 7200.0);
    assert!(snap.problems.is_empty(), "{:?}", snap.problems);
    assert!(ui.handle(Msg::Trials(Arc::new(snap))));
    let mut h = Harness { ui, _dir: dir };
    h.keys("5");
    assert_eq!(h.ui.app.focus, Pane::Trials);
    h
}

impl Harness {
    fn keys(&mut self, keys: &str) {
        let seq: KeySeq = keys.parse().unwrap();
        for k in seq.keys() {
            self.ui.handle(Msg::Term(Event::Key(k.to_event())));
        }
    }

    fn text(&mut self, w: u16, h: u16) -> String {
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
        term.draw(|f| self.ui.draw(f)).unwrap();
        let buf = term.backend().buffer().clone();
        buf.content
            .chunks(usize::from(w))
            .map(|row| {
                let line: String = row.iter().map(|c| c.symbol()).collect();
                line.trim_end().to_string()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The trial numbers of the leaderboard, in order.
    fn numbers(&self) -> Vec<i64> {
        let v = &self.ui.app.trials;
        let s = &v.study().unwrap().study;
        v.board.rows.iter().map(|&i| s.trials[i].number).collect()
    }

    fn status(&self) -> String {
        self.ui
            .app
            .status
            .as_ref()
            .map(|s| s.0.clone())
            .unwrap_or_default()
    }
}

/// The leaderboard row of trial `n` on screen.
fn row_of(screen: &str, n: i64) -> Option<&str> {
    // In the wide layout the Trials pane is the right half: its part of the line follows `││`.
    screen.lines().find(|l| {
        let l = l.rsplit("││").next().unwrap_or(l);
        let cells: Vec<&str> = l.trim_start_matches('│').split_whitespace().collect();
        cells.first() == Some(&n.to_string().as_str())
            || (cells.len() > 1 && ["★", "●"].contains(&cells[0]) && cells[1] == n.to_string())
    })
}

#[test]
fn studies_and_leaderboard_of_a_real_study() {
    for (w, h) in [(80, 24), (160, 48)] {
        let mut t = harness(&["v5.db"]);
        let s = t.text(w, h);
        for name in ["tune", "pareto", "asha", "heartbeat"] {
            assert!(s.contains(name), "study {name} missing:\n{s}");
        }
        // tune: 27 trials, 13 complete, 10 pruned, 2 failed, 1 running, 1 waiting (what Optuna reads).
        let tune = s.lines().find(|l| l.contains("tune")).unwrap();
        let cells: Vec<&str> = tune.split_whitespace().collect();
        assert!(
            cells.windows(4).any(|c| c == ["27", "13", "10", "2"]),
            "{tune}"
        );
        insta::assert_snapshot!(format!("trials_studies_{w}x{h}"), s);

        t.keys("<Enter>");
        assert_eq!(t.ui.app.trials.focus, TrialsFocus::Board);
        let s = t.text(w, h);
        // Optuna's best: trial 10, whose value is -inf (−∞ wins when minimising).
        let best = row_of(&s, 10).unwrap_or_else(|| panic!("no row for #10:\n{s}"));
        assert!(best.contains('★') && best.contains("-inf"), "{best}");
        // Complete trials first, then running, pruned, failed, waiting.
        let order: Vec<TrialState> = {
            let v = &t.ui.app.trials;
            let st = &v.study().unwrap().study;
            v.board.rows.iter().map(|&i| st.trials[i].state).collect()
        };
        let mut ranks: Vec<usize> = order
            .iter()
            .map(|s| match s {
                TrialState::Complete => 0,
                TrialState::Running => 1,
                TrialState::Pruned => 2,
                TrialState::Fail => 3,
                TrialState::Waiting => 4,
            })
            .collect();
        assert!(ranks.is_sorted(), "{order:?}");
        ranks.dedup();
        assert_eq!(ranks, vec![0, 1, 2, 3, 4]);
        // Every param is a column, with the user's values (a categorical choice, not its index).
        for col in ["lr", "layers", "width", "dropout", "opt"] {
            assert!(s.contains(col), "column {col}:\n{s}");
        }
        assert!(row_of(&s, 24).unwrap().contains("sgd"), "{s}");
        insta::assert_snapshot!(format!("trials_board_{w}x{h}"), s);
    }
}

#[test]
fn sort_filter_state_and_pruned_change_the_rows() {
    let mut t = harness(&["v5.db"]);
    t.keys("<Enter>");
    let all = t.numbers();
    assert_eq!(all.len(), 27);
    // `s` first sorts by number, `S` reverses.
    t.keys("s");
    assert!(t.status().contains("sorted by #"), "{}", t.status());
    assert_eq!(t.numbers(), (0..27).collect::<Vec<i64>>());
    t.keys("S");
    assert_eq!(t.numbers(), (0..27).rev().collect::<Vec<i64>>());
    t.keys("S");
    // Only complete trials, then only running.
    t.keys("t");
    assert_eq!(t.numbers().len(), 13);
    t.keys("t");
    assert_eq!(t.numbers(), vec![25]);
    for _ in 0..4 {
        t.keys("t");
    }
    assert_eq!(t.numbers().len(), 27, "{}", t.status());
    // Pruned trials hidden from the leaderboard…
    t.keys("p");
    assert_eq!(t.numbers().len(), 17);
    assert!(t.status().contains("hidden"), "{}", t.status());
    // …and from the history chart.
    let s = t.text(160, 48);
    assert!(s.contains("pruned hidden"), "{s}");
    assert!(
        !t.ui
            .trials_charts
            .plotted
            .iter()
            .any(|p| p.series.label() == "pruned"),
        "pruned still charted"
    );
    t.keys("p");
    t.text(160, 48);
    assert!(
        t.ui.trials_charts
            .plotted
            .iter()
            .any(|p| p.series.label() == "pruned"),
        "pruned trials not charted when shown"
    );
    // `/` filters on params as `name=value`.
    t.keys("/opt=adam<Enter>");
    let rows = t.numbers();
    assert!(!rows.is_empty());
    let v = &t.ui.app.trials;
    let st = &v.study().unwrap().study;
    for n in &rows {
        let tr = st.trials.iter().find(|x| x.number == *n).unwrap();
        assert_eq!(tr.params.get("opt"), Some(serde_json::Value::from("adam")));
    }
    // Esc clears the filter.
    t.keys("<Esc>");
    assert_eq!(t.numbers().len(), 27);
}

#[test]
fn charts_cycle_and_importance_ranks_as_optuna() {
    let mut t = harness(&["v5.db"]);
    t.keys("<Enter>");
    let s = t.text(160, 48);
    assert!(s.contains("history: objective by trial number"), "{s}");
    t.keys("v");
    assert_eq!(t.ui.app.trials.chart, ChartKind::Intermediate);
    let s = t.text(160, 48);
    assert!(s.contains("intermediate values"), "{s}");
    // The selected trial (#10) and the running one (#25) have curves; the running one is bold.
    let labels: Vec<String> =
        t.ui.trials_charts
            .plotted
            .iter()
            .map(|p| p.series.label().to_string())
            .collect();
    assert!(labels.contains(&"#10".to_string()), "{labels:?}");
    let running =
        t.ui.trials_charts
            .plotted
            .iter()
            .find(|p| p.series.label() == "#25");
    assert_eq!(
        running.map(|p| p.style),
        Some("state.running"),
        "{labels:?}"
    );
    // Marking two trials shows just those.
    t.keys("j <Space> j <Space>");
    let marked: Vec<i64> = t.ui.app.trials.marked.iter().copied().collect();
    assert_eq!(marked.len(), 2);
    t.text(160, 48);
    let labels: Vec<String> =
        t.ui.trials_charts
            .plotted
            .iter()
            .map(|p| p.series.label().to_string())
            .collect();
    assert_eq!(
        labels,
        marked.iter().map(|n| format!("#{n}")).collect::<Vec<_>>()
    );
    // Slice: one param against the objective; ] moves to the next param.
    t.keys("v");
    let s = t.text(160, 48);
    assert!(s.contains("slice: objective by log10 lr"), "{s}");
    t.keys("]");
    let s = t.text(160, 48);
    assert!(s.contains("slice: objective by layers"), "{s}");
    // Importance: bars in the order Optuna's PED-ANOVA ranks the params.
    t.keys("v");
    assert_eq!(t.ui.app.trials.chart, ChartKind::Importance);
    let s = t.text(160, 48);
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("v5.db.expected.json")).unwrap())
            .unwrap();
    let mut ranking: Vec<(String, f64)> = expected["studies"][0]["importance"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
        .collect();
    ranking.sort_by(|a, b| b.1.total_cmp(&a.1));
    let bar_rows: Vec<usize> = ranking
        .iter()
        .map(|(name, _)| {
            s.lines()
                .position(|l| {
                    let pane = l.rsplit("││").next().unwrap_or(l);
                    pane.trim_start_matches('│')
                        .starts_with(&format!("{name} "))
                })
                .unwrap_or_else(|| panic!("no bar for {name}:\n{s}"))
        })
        .collect();
    assert!(
        bar_rows.is_sorted(),
        "bars out of Optuna's order {ranking:?}:\n{s}"
    );
    // A single-objective study has no Pareto front: the cycle skips it.
    t.keys("v");
    assert_eq!(t.ui.app.trials.chart, ChartKind::History);
    insta::assert_snapshot!("trials_history_160x48", t.text(160, 48));
}

#[test]
fn pareto_front_of_two_objectives() {
    let mut t = harness(&["v5.db"]);
    t.keys("j <Enter>");
    let study = &t.ui.app.trials.study().unwrap().study;
    assert_eq!(study.name, "pareto");
    let front = sortie::trials::report::best_trials(study).len();
    assert!(front > 1);
    // history → intermediate → slice → pareto (importance is for one objective).
    t.keys("v v v");
    assert_eq!(t.ui.app.trials.chart, ChartKind::Pareto);
    let s = t.text(160, 48);
    assert!(s.contains("pareto front: objective 0"), "{s}");
    let plotted = &t.ui.trials_charts.plotted;
    let front_series = plotted
        .iter()
        .find(|p| p.series.label() == "pareto front")
        .unwrap();
    assert_eq!(front_series.series.len(), front);
    // Every front trial is starred in the leaderboard (those on screen show it).
    assert_eq!(t.ui.app.trials.board.best.len(), front);
    let shown: Vec<&str> = s.lines().filter(|l| l.contains('★')).collect();
    assert!(!shown.is_empty(), "{s}");
    insta::assert_snapshot!("trials_pareto_160x48", s);
}

#[test]
fn running_trials_with_an_old_heartbeat_or_no_change_are_stale() {
    // The heartbeat study: one RUNNING trial whose heartbeat stopped when its writer was killed.
    let mut t = harness(&["v5.db"]);
    t.keys("j j j <Enter>");
    assert_eq!(t.ui.app.trials.study().unwrap().study.name, "heartbeat");
    let s = t.text(160, 48);
    let row = row_of(&s, 0).unwrap_or_else(|| panic!("{s}"));
    assert!(row.contains("running·stale"), "{row}");
    assert!(s.contains("#0 stale: heartbeat"), "{s}");
    // A heartbeat within the grace is not stale.
    let hb = t.ui.app.trials.selected_trial().unwrap().heartbeat.unwrap();
    t.ui.app.trials.now = Some(hb + 60.0);
    let s = t.text(160, 48);
    assert!(!row_of(&s, 0).unwrap().contains("stale"), "{s}");

    // A journal has no heartbeat: a running trial is stale once nothing changed for `stale_after`.
    let mut t = harness(&["v5.journal"]);
    t.keys("<Enter> t t");
    let trial = t.ui.app.trials.selected_trial().unwrap().clone();
    assert_eq!(trial.state, TrialState::Running);
    let changed = {
        let v = &t.ui.app.trials;
        v.study().unwrap().changed_at[&trial.id]
    };
    t.ui.app.trials.now = Some(changed + 60.0);
    let s = t.text(160, 48);
    assert!(!row_of(&s, trial.number).unwrap().contains("stale"), "{s}");
    t.ui.app.trials.now = Some(changed + 3600.0);
    let s = t.text(160, 48);
    assert!(
        row_of(&s, trial.number).unwrap().contains("running·stale"),
        "{s}"
    );
    assert!(s.contains("unchanged for 1h00m"), "{s}");
}

#[test]
fn finder_lists_studies_and_trials() {
    let mut t = harness(&["v5.db"]);
    t.keys("<C-p>");
    for c in "pareto".chars() {
        t.keys(&c.to_string());
    }
    t.keys("<Enter>");
    assert_eq!(t.ui.app.trials.study().unwrap().study.name, "pareto");
    // A trial of the selected study, found by a param value.
    t.keys("<C-p>");
    let s = t.text(160, 48);
    assert!(s.contains("trial"), "{s}");
    let (number, text) = {
        let st = &t.ui.app.trials.study().unwrap().study;
        let tr = &st.trials[7];
        let (k, v) = tr.params.iter().next().unwrap();
        (
            tr.number,
            format!("#{} pareto", tr.number)
                + &format!(" {k}={}", sortie::trials::report::param_text(&v)),
        )
    };
    for c in text.chars() {
        t.keys(&if c == ' ' {
            "<Space>".into()
        } else {
            c.to_string()
        });
    }
    t.keys("<Enter>");
    assert_eq!(t.ui.app.trials.focus, TrialsFocus::Board);
    assert_eq!(t.ui.app.trials.selected_trial().unwrap().number, number);
}

#[test]
fn the_feed_takes_in_a_growing_journal_without_rereading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.journal");
    let full = std::fs::read(fixture("v5.journal")).unwrap();
    // Cut in the middle of a line: the partial line waits for the next poll.
    let cut = full.len() / 2;
    std::fs::write(&path, &full[..cut]).unwrap();
    let mut feed = Feed::new(FeedConfig {
        sources: vec![dir.path().to_path_buf()],
        poll: Duration::from_millis(100),
        rediscover: Duration::from_secs(3600),
    });
    let first: TrialsSnapshot = feed.poll().expect("first poll reads the journal");
    let before: usize = first.studies.iter().map(|s| s.study.trials.len()).sum();
    assert!(
        feed.poll().is_none(),
        "nothing changed, yet a snapshot was sent"
    );
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &full[cut..]))
        .unwrap();
    let second = feed.poll().expect("the appended lines are news");
    let after: usize = second.studies.iter().map(|s| s.study.trials.len()).sum();
    let whole = read_once(&[fixture("v5.journal")]);
    let expected: usize = whole.studies.iter().map(|s| s.study.trials.len()).sum();
    assert!(before < after, "{before} → {after}");
    assert_eq!(after, expected);
    // Compared as text: NaN values (the fixture has some) are never equal to themselves.
    assert_eq!(
        format!(
            "{:?}",
            second.studies.iter().map(|s| &s.study).collect::<Vec<_>>()
        ),
        format!(
            "{:?}",
            whole.studies.iter().map(|s| &s.study).collect::<Vec<_>>()
        )
    );
    assert!(second.problems.is_empty(), "{:?}", second.problems);
}

#[test]
fn a_bad_trials_path_is_one_line_and_exit_2() {
    let out = assert_cmd::Command::cargo_bin("sortie")
        .unwrap()
        .args(["--trials", "/nonexistent/study.db"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--trials /nonexistent/study.db: no such file or folder"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let out = assert_cmd::Command::cargo_bin("sortie")
        .unwrap()
        .args(["--trials", ".", "runs"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sortie trials STORAGE|DIR"));
}

#[test]
fn a_file_that_is_no_study_shows_as_a_problem_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("notes.db");
    std::fs::write(&bad, b"SQLite format 3\0 but truncated").unwrap();
    let snap = read_once(std::slice::from_ref(&bad));
    assert!(snap.studies.is_empty());
    assert_eq!(snap.problems.len(), 1, "{:?}", snap.problems);
    assert!(snap.problems[0].contains("notes.db"), "{:?}", snap.problems);
}
