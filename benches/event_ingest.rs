//! Event ingest into the index, end to end through `Index::sync_run`: a 1000-step run's log at once (a
//! process that sees the run for the first time), then one event per sync as an engine appends them
//! (the engine's and the TUI's steady state), then two handles taking turns (each catches up with what
//! the other wrote). Run with `cargo bench --bench event_ingest` (plain std::time; no harness).

use sortie::index::Index;
use sortie::runlog::events::StepInfo;
use sortie::runlog::{Event, EventWriter, Project, RunDir, StepState};
use std::time::Instant;

const STEPS: usize = 1000;
const ROUNDS: usize = 3;

fn created(run: &RunDir) -> Event {
    Event::RunCreated {
        run: run.id(),
        pipeline: "bench".into(),
        file: "/bench/sortie.toml".into(),
        workdir: "/bench".into(),
        host: "bench".into(),
        user: "bench".into(),
        steps: (0..STEPS)
            .map(|i| StepInfo {
                name: format!("train[seed={i}]"),
                group: "train".into(),
                params: Default::default(),
                needs: vec![],
            })
            .collect(),
    }
}

/// The three events a step that runs once adds: its cache decision, its start, its end.
fn step_events(run: &RunDir, i: usize) -> [Event; 3] {
    let step = format!("train[seed={i}]");
    [
        Event::Cache {
            step: step.clone(),
            key: format!("key{i}"),
            hit: false,
            from: None,
            reason: "no earlier success".into(),
        },
        Event::AttemptStarted {
            step: step.clone(),
            attempt: 1,
            host: "bench".into(),
            pid: Some(4242),
            dir: run.attempt_dir(&step, 1).to_string_lossy().into_owned(),
            cache_key: Some(format!("key{i}")),
            job_id: None,
            boot_id: None,
        },
        Event::AttemptEnded {
            step,
            attempt: 1,
            state: StepState::Succeeded,
            exit_code: Some(0),
            signal: None,
            reason: None,
            will_retry: false,
            class: None,
        },
    ]
}

fn main() {
    // Whole logs: best of a few fresh indexes (the machine is shared).
    let mut whole = f64::INFINITY;
    for round in 0..ROUNDS {
        let tmp = tempfile::tempdir().expect("temp dir");
        let project = Project::new(tmp.path());
        let run = project.run_dir(&format!("whole{round}"));
        std::fs::create_dir_all(&run.path).expect("run dir");
        let mut log = EventWriter::open(&run.events()).expect("events");
        log.append(created(&run)).expect("append");
        for i in 0..STEPS {
            for e in step_events(&run, i) {
                log.append(e).expect("append");
            }
        }
        let mut ix = Index::open(&tmp.path().join("index.db")).expect("index");
        let t = Instant::now();
        let rep = ix.sync_run(&run).expect("sync");
        whole = whole.min(t.elapsed().as_secs_f64());
        assert_eq!(rep.events as usize, 1 + 3 * STEPS);
    }
    println!(
        "whole log: {} events in {:.1} ms (best of {ROUNDS})",
        1 + 3 * STEPS,
        whole * 1e3
    );

    // One event per sync, one handle; then two handles taking turns.
    for handles in [1usize, 2] {
        let tmp = tempfile::tempdir().expect("temp dir");
        let project = Project::new(tmp.path());
        let run = project.run_dir("live");
        std::fs::create_dir_all(&run.path).expect("run dir");
        let mut log = EventWriter::open(&run.events()).expect("events");
        log.append(created(&run)).expect("append");
        let db = tmp.path().join("index.db");
        let mut ix: Vec<Index> = (0..handles)
            .map(|_| Index::open(&db).expect("index"))
            .collect();
        for x in &mut ix {
            x.sync_run(&run).expect("sync");
        }
        let mut syncs = 0usize;
        let t = Instant::now();
        for i in 0..STEPS {
            for e in step_events(&run, i) {
                log.append(e).expect("append");
                ix[syncs % handles].sync_run(&run).expect("sync");
                syncs += 1;
            }
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "one event per sync, {handles} handle(s): {syncs} syncs in {:.0} ms = {:.3} ms per sync",
            secs * 1e3,
            secs * 1e3 / syncs as f64
        );
    }
}
