#![no_main]
//! Structured sequences of events: names come from a small pool so events hit the steps the log
//! created (and some that it did not), in any order. The fold must not panic, must be deterministic,
//! and must give the same state from the records as from their `events.jsonl` written and read back.

#[allow(dead_code)] // only the state lists are used here
#[path = "../entries.rs"]
mod entries;

use entries::{RUN_STATES, STEP_STATES};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use sortie::runlog::events::{self, Event, Record, SlurmRequest, StepInfo};
use sortie::runlog::state;

const NAMES: &[&str] = &["prep", "train[seed=0]", "train[seed=1]", "eval", "ghost"];

fn name(u: &mut Unstructured) -> Result<String> {
    Ok(u.choose(NAMES)?.to_string())
}

fn text(u: &mut Unstructured) -> Result<String> {
    let s: &str = u.arbitrary()?;
    Ok(s.to_string())
}

fn opt_text(u: &mut Unstructured) -> Result<Option<String>> {
    Ok(if u.arbitrary()? { Some(text(u)?) } else { None })
}

fn event(u: &mut Unstructured) -> Result<Event> {
    let step = name(u)?;
    Ok(match u.int_in_range(0..=10u8)? {
        0 => Event::RunCreated {
            run: text(u)?,
            pipeline: text(u)?,
            file: text(u)?,
            workdir: text(u)?,
            host: text(u)?,
            user: text(u)?,
            steps: (0..u.int_in_range(0..=4u8)?)
                .map(|_| {
                    Ok(StepInfo {
                        name: name(u)?,
                        group: text(u)?,
                        params: Default::default(),
                        needs: Vec::new(),
                    })
                })
                .collect::<Result<_>>()?,
        },
        1 => Event::EngineStarted {
            host: text(u)?,
            pid: u.arbitrary()?,
            generation: u.arbitrary()?,
        },
        2 => Event::EngineStopped {
            host: text(u)?,
            pid: u.arbitrary()?,
            reason: text(u)?,
        },
        3 => Event::StepState {
            step,
            state: *u.choose(STEP_STATES)?,
            reason: opt_text(u)?,
            force: u.arbitrary()?,
        },
        4 => Event::Cache {
            step,
            key: text(u)?,
            hit: u.arbitrary()?,
            from: opt_text(u)?,
            reason: text(u)?,
        },
        5 => Event::AttemptStarted {
            step,
            attempt: u.int_in_range(0..=4)?,
            host: text(u)?,
            pid: u.arbitrary()?,
            dir: text(u)?,
            cache_key: opt_text(u)?,
            job_id: opt_text(u)?,
            boot_id: opt_text(u)?,
        },
        6 => Event::AttemptEnded {
            step,
            attempt: u.int_in_range(0..=4)?,
            state: *u.choose(STEP_STATES)?,
            exit_code: u.arbitrary()?,
            signal: u.arbitrary()?,
            reason: opt_text(u)?,
            will_retry: u.arbitrary()?,
            class: opt_text(u)?,
        },
        7 => Event::SubmitIntent {
            step,
            attempt: u.int_in_range(0..=4)?,
            name: text(u)?,
            array_index: u.arbitrary()?,
            request: SlurmRequest {
                mem_mb: u.arbitrary()?,
                time_s: u.arbitrary()?,
                exclude: Vec::new(),
            },
            after: Vec::new(),
        },
        8 => Event::JobSubmitted {
            step,
            attempt: u.int_in_range(0..=4)?,
            job_id: text(u)?,
        },
        9 => Event::Request {
            id: text(u)?,
            kind: text(u)?,
            ok: u.arbitrary()?,
            message: text(u)?,
        },
        _ => Event::RunState {
            state: *u.choose(RUN_STATES)?,
        },
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let mut records = Vec::new();
    while !u.is_empty() && records.len() < 256 {
        let Ok(event) = event(&mut u) else { break };
        // Whole seconds: exact through JSON, so the written-and-read-back log compares equal.
        let ts = f64::from(u.arbitrary::<u32>().unwrap_or(0));
        records.push(Record { ts, event });
    }
    let folded = state::fold(&records);
    assert_eq!(folded, state::fold(&records), "the fold is deterministic");

    let mut log = Vec::new();
    for r in &records {
        log.extend(serde_json::to_vec(r).expect("a record serialises"));
        log.push(b'\n');
    }
    let read = events::parse_batch(&log, 0);
    assert_eq!(read.bad_lines, 0);
    assert_eq!(read.records, records, "every record reads back equal");
    assert_eq!(state::fold(&read.records), folded);
});
