//! Reading Optuna studies: run by `benches/trials.sh`, which makes the study files with the real Optuna
//! and times Optuna itself beside these figures. Plain std::time, no harness; medians with min and max.
//!
//!   cargo bench --bench trials -- load FILE          open + first read, fresh reader each time
//!   cargo bench --bench trials -- poll FILE          a poll that finds nothing new
//!   cargo bench --bench trials -- grow FILE PY GEN   a poll after GEN (trials_gen.py) added 10 trials
//!
//! Targets (issue 11 §5): a 10 000-trial study loads in ≤ 100 ms; a poll with nothing new ≤ 1 ms; one
//! that finds 10 new trials ≤ 5 ms.

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
