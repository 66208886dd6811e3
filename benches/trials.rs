//! Reading Optuna studies: run by `benches/trials.sh`, which makes the study files with the real Optuna
//! and times Optuna itself beside these figures. Plain std::time, no harness; medians with min and max.
//!
//!   cargo bench --bench trials -- load FILE          open + first read, fresh reader each time
//!   cargo bench --bench trials -- poll FILE          a poll that finds nothing new
//!   cargo bench --bench trials -- grow FILE PY GEN   a poll after GEN (trials_gen.py) added 10 trials
//!   cargo bench --bench trials -- pane FILE          the Trials pane on FILE: open, frames, keys, RSS
//!
//! Targets (issue 11 §5): a 10 000-trial study loads in ≤ 100 ms; a poll with nothing new ≤ 1 ms; one
//! that finds 10 new trials ≤ 5 ms; the leaderboard frame at 10 000 trials ≤ 5 ms; the TUI's peak RSS
//! with a 100 000-trial study open ≤ 100 MB (the pane's model is what the TUI holds; measured here as
//! this process's VmHWM after reading, drawing and scrolling).

use sortie::trials::Storage;
use std::time::Instant;

fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn verdict(name: &str, unit: &str, (med, lo, hi): (f64, f64, f64), goal: f64) {
    let ok = if med <= goal { "PASS" } else { "MISS" };
    println!(
        "{ok} {name}: median {med:.3} {unit} (min {lo:.3}, max {hi:.3}; goal ≤ {goal} {unit})"
    );
}

fn trials(s: &Storage) -> usize {
    s.studies().iter().map(|s| s.trials.len()).sum()
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let (Some(mode), Some(file)) = (args.first(), args.get(1)) else {
        eprintln!("usage: trials load|poll|grow FILE [PYTHON GEN]");
        std::process::exit(2);
    };
    let open = || Storage::open(file, None).unwrap_or_else(|e| panic!("{e}"));
    match mode.as_str() {
        "load" => {
            let mut times = Vec::new();
            let mut n = 0;
            for _ in 0..7 {
                let t = Instant::now();
                let mut s = open();
                s.refresh().unwrap();
                times.push(t.elapsed().as_secs_f64() * 1e3);
                n = trials(&s);
            }
            verdict(&format!("load {n} trials"), "ms", stats(times), 100.0);
        }
        "poll" => {
            let mut s = open();
            s.refresh().unwrap();
            let mut times = Vec::new();
            for _ in 0..200 {
                let t = Instant::now();
                let changed = s.refresh().unwrap();
                times.push(t.elapsed().as_secs_f64() * 1e3);
                assert!(!changed);
            }
            verdict("poll, nothing new", "ms", stats(times), 1.0);
        }
        "grow" => {
            let (Some(py), Some(generator)) = (args.get(2), args.get(3)) else {
                eprintln!("grow needs PYTHON and trials_gen.py");
                std::process::exit(2);
            };
            let mut s = open();
            s.refresh().unwrap();
            let mut times = Vec::new();
            for _ in 0..5 {
                let before = trials(&s);
                let st = std::process::Command::new(py)
                    .args([generator.as_str(), "add", &storage_spec(file), "10"])
                    .status()
                    .unwrap();
                assert!(st.success());
                let t = Instant::now();
                assert!(s.refresh().unwrap());
                times.push(t.elapsed().as_secs_f64() * 1e3);
                assert_eq!(trials(&s), before + 10);
            }
            verdict("poll finding 10 new trials", "ms", stats(times), 5.0);
        }
        "pane" => pane(file),
        other => {
            eprintln!("unknown mode {other}");
            std::process::exit(2);
        }
    }
}

/// The storage spec Optuna takes for a file: a SQLite URL, or the journal's path.
fn storage_spec(file: &str) -> String {
    if sortie::trials::rdb::looks_like_sqlite(std::path::Path::new(file)) {
        format!("sqlite:///{file}")
    } else {
        file.to_string()
    }
}

/// Peak resident memory of this process, in MB (Linux `VmHWM`).
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The Trials pane as the TUI runs it (feed snapshot → `Ui::handle` → draw at 200×60), headless.
fn pane(file: &str) {
    use crossterm::event::Event;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use sortie::tui::config::{Config, KeySeq};
    use sortie::tui::{Msg, Ui};
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::built_in(dir.path());
    let (mut ui, _rx) = Ui::headless(cfg, false);
    let mut term = Terminal::new(TestBackend::new(200, 60)).unwrap();
    let t = Instant::now();
    let snap = sortie::tui::trials::feed::read_once(&[std::path::PathBuf::from(file)]);
    let n: usize = snap.studies.iter().map(|s| s.study.trials.len()).sum();
    ui.handle(Msg::Trials(std::sync::Arc::new(snap)));
    let press = |ui: &mut Ui, keys: &str| {
        let seq: KeySeq = keys.parse().unwrap();
        for k in seq.keys() {
            ui.handle(Msg::Term(Event::Key(k.to_event())));
        }
    };
    press(&mut ui, "5 <Enter>");
    term.draw(|f| ui.draw(f)).unwrap();
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    println!("INFO open {n} trials and draw the first frame: {open_ms:.0} ms");
    let frame = |ui: &mut Ui, term: &mut Terminal<TestBackend>| {
        let t = Instant::now();
        term.draw(|f| ui.draw(f)).unwrap();
        t.elapsed().as_secs_f64() * 1e3
    };
    let idle: Vec<f64> = (0..50).map(|_| frame(&mut ui, &mut term)).collect();
    verdict(
        &format!("leaderboard frame, {n} trials"),
        "ms",
        stats(idle),
        5.0,
    );
    // Scrolling: a key, then its frame (what the user waits for).
    let mut scroll = Vec::new();
    for keys in ["j", "j", "<PageDown>", "<PageDown>", "G", "gg", "k", "j"] {
        let t = Instant::now();
        press(&mut ui, keys);
        term.draw(|f| ui.draw(f)).unwrap();
        scroll.push(t.elapsed().as_secs_f64() * 1e3);
    }
    verdict("scroll key to frame", "ms", stats(scroll), 16.0);
    for (what, keys) in [
        ("sort by the next column", "s"),
        ("state filter", "t"),
        ("hide pruned", "p"),
        ("next chart", "v"),
    ] {
        let t = Instant::now();
        press(&mut ui, keys);
        term.draw(|f| ui.draw(f)).unwrap();
        println!(
            "INFO {what} ({keys}) key to frame: {:.1} ms",
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    let rss = peak_rss_mb();
    let ok = if rss <= 100.0 { "PASS" } else { "MISS" };
    println!("{ok} peak RSS with {n} trials open: {rss:.0} MB (goal ≤ 100 MB)");
}
