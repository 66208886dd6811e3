//! The bodies of the fuzz targets: each takes arbitrary bytes, feeds them to one family of parsers
//! and checks what must hold for any input. Shared by `fuzz/fuzz_targets/*.rs` and by
//! `tests/properties.rs`, which runs them over the fixtures in a plain `cargo test`.

use sortie::metrics::protocol::{Scratch, parse_line, scan_line};
use sortie::runlog::events::{RunState, StepState};
use sortie::runlog::{control, events, state};
use sortie::slurm::{decode, scontrol};
use std::path::Path;

/// Every step state, for generators of events.
pub const STEP_STATES: &[StepState] = &[
    StepState::Pending,
    StepState::Queued,
    StepState::Running,
    StepState::Succeeded,
    StepState::Failed,
    StepState::Cancelled,
    StepState::Cached,
    StepState::Blocked,
];

/// Every run state.
pub const RUN_STATES: &[RunState] = &[
    RunState::Running,
    RunState::Succeeded,
    RunState::Failed,
    RunState::Cancelled,
];

/// A fixed "now" so runs are reproducible.
const NOW: i64 = 1_700_000_000;

/// A pipeline file, as `sortie check` / `sortie run` read it.
pub fn pipeline_load(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = sortie::pipeline::load_str(text, Path::new("/fuzz/sortie.toml"));
}

/// A squeue/sacct/slurmrestd JSON reply. For partitions a NUL byte splits the partitions reply from
/// the nodes reply; without one both are the whole input.
pub fn slurm_json(data: &[u8]) {
    let _ = decode::squeue_json_at(data, NOW);
    let _ = decode::sacct_json(data);
    let (parts, nodes) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, data),
    };
    let _ = decode::nodes::partitions_json(parts, nodes);
}

/// The text formats: `squeue -O`, `sacct -P`, `squeue --start`, `scontrol show job|partition`.
pub fn slurm_text(data: &[u8]) {
    let _ = decode::text::squeue_text(data, decode::text::SQUEUE_FIELDS);
    let _ = decode::text::sacct_text(data, decode::text::SACCT_FIELDS);
    let _ = decode::text::start_estimates(data);
    let _ = scontrol::show_job(data);
    let _ = scontrol::partitions(data);
}

/// Each line of a `metrics.jsonl`. The owned parser and the streaming scanner must agree.
pub fn metrics_lines(data: &[u8]) {
    let mut scratch = Scratch::default();
    for line in data.split(|&b| b == b'\n') {
        let owned = parse_line(line);
        let mut emitted = 0usize;
        let scanned = scan_line(line, &mut scratch, |_, _| emitted += 1);
        match (&owned, &scanned) {
            (Ok(l), Ok(axes)) => {
                assert_eq!(
                    (l.step, l.epoch, l.time),
                    (axes.step, axes.epoch, axes.time)
                );
                assert!(l.values.len() <= emitted);
                for axis in [axes.step, axes.epoch, axes.time].into_iter().flatten() {
                    assert!(axis.is_finite(), "axes are finite or absent");
                }
            }
            (Err(a), Err(b)) => {
                assert_eq!(a, b);
                assert!(a.at <= line.len(), "error position inside the line");
            }
            _ => panic!("parse_line and scan_line disagree: {owned:?} vs {scanned:?}"),
        }
    }
}

/// Arbitrary bytes as an `events.jsonl`: parse, fold, and check that reading it in two chunks (as the
/// incremental reader does while the engine writes) gives the same records as reading it at once.
pub fn events_log(data: &[u8]) {
    let whole = events::parse_batch(data, 0);
    assert!(whole.offset as usize <= data.len());
    let folded = state::fold(&whole.records);
    assert_eq!(
        folded,
        state::fold(&whole.records),
        "the fold is deterministic"
    );

    let cut = data.len() / 2;
    let first = events::parse_batch(&data[..cut], 0);
    let rest = events::parse_batch(&data[first.offset as usize..], first.offset);
    let mut records = first.records;
    records.extend(rest.records);
    assert_eq!(records, whole.records, "chunked read = whole read");
    assert_eq!(first.bad_lines + rest.bad_lines, whole.bad_lines);
    assert_eq!(rest.offset, whole.offset);
}

/// A control request file; what parses must serialise and parse back to the same request.
pub fn control_request(data: &[u8]) {
    let Ok(env) = control::parse(data) else {
        return;
    };
    let _ = env.request.kind();
    let bytes = serde_json::to_vec(&env).expect("an envelope serialises");
    let back = control::parse(&bytes).expect("a serialised envelope parses");
    assert_eq!(back.request, env.request);
    assert_eq!(
        (&back.id, &back.host, back.pid, &back.user),
        (&env.id, &env.host, env.pid, &env.user)
    );
}

/// An Optuna journal (JournalFileBackend), read once whole and once in two pieces cut at the first
/// byte's value: the studies must be the same, and the reader never panics, whatever the lines hold.
pub fn optuna_journal(data: &[u8]) {
    use sortie::trials::{journal, report};
    let json = |studies: &[sortie::trials::Study]| -> Vec<serde_json::Value> {
        studies
            .iter()
            .map(|s| report::study_json("", s, &s.trials.iter().collect::<Vec<_>>()))
            .collect()
    };
    let (whole, _, end) = journal::replay_bytes(data, data.len());
    let cut = data
        .first()
        .map_or(0, |b| usize::from(*b) * data.len() / 256);
    let (pieces, _, end2) = journal::replay_bytes(data, cut);
    assert_eq!(
        end, end2,
        "the offset reached depends on how the file was read"
    );
    assert_eq!(json(&whole), json(&pieces), "a read in two pieces differs");
    for s in &whole {
        let _ = sortie::trials::importance::ped_anova(s);
        let _ = report::best_trials(s);
    }
}
