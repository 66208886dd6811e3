//! Metric ingest throughput: parse + insert into the index, end to end through `Index::sync_run`.
//! Run with `cargo bench --bench metric_ingest` (plain std::time; no harness).

use sortie::index::Index;
use sortie::runlog::events::StepInfo;
use sortie::runlog::paths::METRICS_FILE;
use sortie::runlog::{Event, EventWriter, Project};
use std::io::{BufWriter, Write};
use std::time::Instant;

const LINES: u64 = 500_000;
const METRICS_PER_LINE: u64 = 3;
const ROUNDS: usize = 3;

fn main() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let project = Project::new(tmp.path());
    let run = project.run_dir("bench-run");
    let attempt_dir = run.attempt_dir("train", 1);
    std::fs::create_dir_all(&attempt_dir).expect("attempt dir");

    // Lines shaped like what a training loop writes.
    let metrics = attempt_dir.join(METRICS_FILE);
    let mut w = BufWriter::new(std::fs::File::create(&metrics).expect("metrics file"));
    for i in 0..LINES {
        let loss = 1.0 / (1.0 + i as f64 * 1e-3);
        writeln!(
            w,
            "{{\"step\": {i}, \"loss\": {loss:.6}, \"acc\": {:.4}, \"lr\": 0.001}}",
            1.0 - loss / 2.0
        )
        .expect("write");
    }
    w.into_inner().expect("flush");
    let bytes = std::fs::metadata(&metrics).expect("stat").len();

    let mut log = EventWriter::open(&run.events()).expect("events");
    log.append(Event::RunCreated {
        run: run.id(),
        pipeline: "bench".into(),
        file: "/bench/sortie.toml".into(),
        workdir: "/bench".into(),
        host: "bench".into(),
        user: "bench".into(),
        steps: vec![StepInfo {
            name: "train".into(),
            group: "train".into(),
            params: Default::default(),
            needs: vec![],
        }],
    })
    .expect("append");
    log.append(Event::AttemptStarted {
        step: "train".into(),
        attempt: 1,
        host: "bench".into(),
        pid: None,
        dir: attempt_dir.to_string_lossy().into_owned(),
        cache_key: None,
        job_id: None,
        boot_id: None,
    })
    .expect("append");

    // Parsing alone, for reference: how much of the budget is SQLite.
    let data = std::fs::read(&metrics).expect("read");
    let mut scratch = sortie::metrics::Scratch::default();
    let started = Instant::now();
    let mut parsed = 0u64;
    for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        sortie::metrics::scan_line(line, &mut scratch, |_, _| parsed += 1).expect("parse");
    }
    let parse_secs = started.elapsed().as_secs_f64();
    println!(
        "parse only: {parsed} points in {parse_secs:.3} s = {:.0} points/s",
        parsed as f64 / parse_secs
    );

    // The machine is shared: time a few fresh ingests and keep the best.
    let mut best = f64::INFINITY;
    let mut journal = String::new();
    for round in 0..ROUNDS {
        let mut index =
            Index::open(&tmp.path().join(format!("index-{round}.db"))).expect("open index");
        let started = Instant::now();
        let report = index.sync_run(&run).expect("sync");
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(report.points, LINES * METRICS_PER_LINE);
        println!("  round {round}: {secs:.3} s");
        best = best.min(secs);
        journal = index.journal_mode();
    }
    let points = LINES * METRICS_PER_LINE;
    println!(
        "metric ingest: {points} points in {best:.3} s = {:.0} points/s ({:.1} MB/s of JSONL, journal {journal}, best of {ROUNDS})",
        points as f64 / best,
        bytes as f64 / best / 1e6,
    );
}
