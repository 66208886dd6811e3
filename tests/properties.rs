//! Property tests over the lib's parsers: round trips (events, metric lines, control requests, Slurm
//! job ids), the event-log fold on any well-formed sequence, and the fuzz targets' bodies run over
//! every fixture and hand-picked seed (so `cargo test` catches what the fuzzers would, on known inputs).

#[allow(dead_code)] // tests use some entries only through `every_entry`
#[path = "../fuzz/entries.rs"]
mod entries;

use proptest::prelude::*;
use serde_json::{Value, json};
use sortie::metrics::protocol::parse_line;
use sortie::runlog::control::{self, Envelope, Request};
use sortie::runlog::events::{
    Event, Record, RunState, SlurmRequest, StepInfo, StepState, parse_batch,
};
use sortie::runlog::state::fold;
use std::path::Path;

/// Cases per property: enough to find shallow bugs, small enough that the file runs in seconds.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------- strategies

/// Any text, with a bias to what JSON must escape.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,12}", "[\\x00-\\x1f\"\\\\/\u{7f}\u{2028}é😀]{0,6}"]
}

/// Step names from a small pool, so events land on steps the log created (and on one it did not).
fn step_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "prep",
        "train[seed=0]",
        "train[seed=1]",
        "eval",
        "ghost",
    ])
    .prop_map(str::to_string)
}

fn step_state() -> impl Strategy<Value = StepState> {
    prop::sample::select(entries::STEP_STATES)
}

fn run_state() -> impl Strategy<Value = RunState> {
    prop::sample::select(entries::RUN_STATES)
}

/// Matrix parameters as the loader writes them: strings, integers, booleans, floats.
fn params() -> impl Strategy<Value = serde_json::Map<String, Value>> {
    let value = prop_oneof![
        text().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        (-1e6..1e6f64).prop_map(Value::from),
    ];
    prop::collection::btree_map("[a-z]{1,6}", value, 0..3).prop_map(|m| m.into_iter().collect())
}

fn step_info() -> impl Strategy<Value = StepInfo> {
    (
        step_name(),
        text(),
        params(),
        prop::collection::vec(text(), 0..3),
    )
        .prop_map(|(name, group, params, needs)| StepInfo {
            name,
            group,
            params,
            needs,
        })
}

/// Every kind of event, with every optional field both absent and present.
fn event() -> impl Strategy<Value = Event> {
    let o = || prop::option::of(text());
    prop_oneof![
        (
            (text(), text(), text(), text(), text(), text()),
            prop::collection::vec(step_info(), 0..5)
        )
            .prop_map(|((run, pipeline, file, workdir, host, user), steps)| {
                Event::RunCreated {
                    run,
                    pipeline,
                    file,
                    workdir,
                    host,
                    user,
                    steps,
                }
            }),
        (text(), any::<u32>(), any::<u64>()).prop_map(|(host, pid, generation)| {
            Event::EngineStarted {
                host,
                pid,
                generation,
            }
        }),
        (text(), any::<u32>(), text()).prop_map(|(host, pid, reason)| Event::EngineStopped {
            host,
            pid,
            reason
        }),
        (step_name(), step_state(), o(), any::<bool>()).prop_map(|(step, state, reason, force)| {
            Event::StepState {
                step,
                state,
                reason,
                force,
            }
        }),
        (step_name(), text(), any::<bool>(), o(), text()).prop_map(
            |(step, key, hit, from, reason)| Event::Cache {
                step,
                key,
                hit,
                from,
                reason,
            }
        ),
        (
            step_name(),
            0..4u32,
            text(),
            any::<Option<u32>>(),
            text(),
            o(),
            o(),
            o()
        )
            .prop_map(
                |(step, attempt, host, pid, dir, cache_key, job_id, boot_id)| {
                    Event::AttemptStarted {
                        step,
                        attempt,
                        host,
                        pid,
                        dir,
                        cache_key,
                        job_id,
                        boot_id,
                    }
                }
            ),
        (
            (step_name(), 0..4u32, step_state()),
            (
                any::<Option<i32>>(),
                any::<Option<i32>>(),
                o(),
                any::<bool>(),
                o()
            )
        )
            .prop_map(
                |((step, attempt, state), (exit_code, signal, reason, will_retry, class))| {
                    Event::AttemptEnded {
                        step,
                        attempt,
                        state,
                        exit_code,
                        signal,
                        reason,
                        will_retry,
                        class,
                    }
                }
            ),
        (
            (step_name(), 0..4u32, text(), any::<Option<u32>>()),
            (
                any::<Option<u64>>(),
                any::<Option<u64>>(),
                prop::collection::vec(text(), 0..3)
            ),
            prop::collection::vec("[0-9]{1,6}(_[0-9]{1,3})?", 0..3)
        )
            .prop_map(
                |((step, attempt, name, array_index), (mem_mb, time_s, exclude), after)| {
                    Event::SubmitIntent {
                        step,
                        attempt,
                        name,
                        array_index,
                        request: SlurmRequest {
                            mem_mb,
                            time_s,
                            exclude,
                        },
                        after,
                    }
                }
            ),
        (step_name(), 0..4u32, "[0-9]{1,7}(_[0-9]{1,4})?").prop_map(|(step, attempt, job_id)| {
            Event::JobSubmitted {
                step,
                attempt,
                job_id,
            }
        }),
        (text(), text(), any::<bool>(), text()).prop_map(|(id, kind, ok, message)| {
            Event::Request {
                id,
                kind,
                ok,
                message,
            }
        }),
        run_state().prop_map(|state| Event::RunState { state }),
    ]
}

/// Times as the engine writes them: Unix seconds with microseconds.
fn ts() -> impl Strategy<Value = f64> {
    (0..4_000_000_000_000_000u64).prop_map(|us| us as f64 / 1e6)
}

fn record() -> impl Strategy<Value = Record> {
    (ts(), event()).prop_map(|(ts, event)| Record { ts, event })
}

/// A log that starts like a real one (`run_created` first), then any events.
fn log() -> impl Strategy<Value = Vec<Record>> {
    (
        ts(),
        prop::collection::vec(step_info(), 1..5),
        prop::collection::vec(record(), 0..40),
    )
        .prop_map(|(ts, steps, rest)| {
            let created = Record {
                ts,
                event: Event::RunCreated {
                    run: "r1".into(),
                    pipeline: "p".into(),
                    file: "/p/sortie.toml".into(),
                    workdir: "/p".into(),
                    host: "h".into(),
                    user: "u".into(),
                    steps,
                },
            };
            std::iter::once(created).chain(rest).collect()
        })
}

fn jsonl(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        out.extend(serde_json::to_vec(r).unwrap());
        out.push(b'\n');
    }
    out
}

// ---------------------------------------------------------------- events and the fold

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn every_event_serialises_and_parses_back_equal(rec in record()) {
        let line = jsonl(std::slice::from_ref(&rec));
        let batch = parse_batch(&line, 0);
        prop_assert_eq!(batch.bad_lines, 0);
        prop_assert_eq!(batch.records, vec![rec]);
    }
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn the_fold_is_deterministic_and_survives_any_event_order(records in log()) {
        let once = fold(&records);
        prop_assert!(once.is_some(), "a log with run_created folds");
        prop_assert_eq!(&once, &fold(&records));
        // The fold of the log as written and read back is the fold of the records.
        prop_assert_eq!(fold(&parse_batch(&jsonl(&records), 0).records), once);
    }

    #[test]
    fn reading_a_log_in_two_chunks_equals_reading_it_at_once(
        records in log(),
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = jsonl(&records);
        let cut = cut.index(bytes.len() + 1);
        let first = parse_batch(&bytes[..cut], 0);
        prop_assert!(first.offset as usize <= cut);
        let rest = parse_batch(&bytes[first.offset as usize..], first.offset);
        let mut chunked = first.records;
        chunked.extend(rest.records);
        prop_assert_eq!(rest.offset as usize, bytes.len());
        prop_assert_eq!(first.bad_lines + rest.bad_lines, 0);
        prop_assert_eq!(fold(&chunked), fold(&records));
        prop_assert_eq!(chunked, records);
    }

    #[test]
    fn a_truncated_last_line_is_ignored_never_fatal(
        records in log(),
        last in record(),
        keep in any::<prop::sample::Index>(),
    ) {
        let mut bytes = jsonl(&records);
        let full = bytes.len() as u64;
        let line = serde_json::to_vec(&last).unwrap();
        // Any proper prefix of the next line, as a reader sees it while the engine writes.
        let keep = keep.index(line.len());
        bytes.extend(&line[..keep]);
        let batch = parse_batch(&bytes, 0);
        prop_assert_eq!(batch.offset, full, "the partial line is left for the next read");
        prop_assert_eq!(batch.bad_lines, 0);
        prop_assert_eq!(fold(&batch.records), fold(&records));
        // A torn line that did get a newline (a crash mid-write) is a bad line, skipped.
        bytes.push(b'\n');
        let torn = parse_batch(&bytes, 0);
        prop_assert_eq!(torn.bad_lines, u64::from(keep > 0));
        prop_assert_eq!(torn.records, records);
    }
}

#[test]
fn step_and_run_states_parse_their_own_names() {
    for &s in entries::STEP_STATES {
        assert_eq!(StepState::parse(s.as_str()), Some(s));
    }
    for &s in entries::RUN_STATES {
        assert_eq!(RunState::parse(s.as_str()), Some(s));
    }
}

// ---------------------------------------------------------------- metric lines

/// A metric value as a line writer could spell it: Python's `json.dumps` (bare `NaN`/`Infinity`),
/// the quoted forms, and several spellings of finite numbers.
fn spell(v: f64, style: u8) -> String {
    if v.is_nan() {
        return if style.is_multiple_of(2) {
            "NaN"
        } else {
            "\"NaN\""
        }
        .into();
    }
    if v.is_infinite() {
        let word = if v > 0.0 { "Infinity" } else { "-Infinity" };
        return if style.is_multiple_of(2) {
            word.into()
        } else {
            format!("\"{word}\"")
        };
    }
    match style % 3 {
        0 => serde_json::to_string(&v).unwrap(), // shortest round trip, `1e-7`, `1.5e300`
        1 => format!("{v}"),                     // plain decimal, no exponent
        _ => format!("{v:e}"),                   // always an exponent
    }
}

fn metric_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => any::<f64>(),
        2 => -1e6..1e6f64,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(-0.0),
    ]
}

/// Keys without `/` (the flattening separator), never an axis name.
fn metric_key() -> impl Strategy<Value = String> {
    "[^/]{1,10}".prop_filter("not an axis", |k| {
        !["step", "epoch", "time"].contains(&k.as_str())
    })
}

fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn metric_lines_parse_back_to_what_was_written(
        top in prop::collection::btree_map(metric_key(), (metric_value(), any::<u8>()), 0..6),
        nested in prop::collection::btree_map(metric_key(), (metric_value(), any::<u8>()), 0..3),
        step in prop::option::of(0..1_000_000u64),
        tag in text(),
    ) {
        let key = |k: &str| serde_json::to_string(k).unwrap();
        let mut parts: Vec<String> = Vec::new();
        let mut want: Vec<(String, f64)> = Vec::new();
        if let Some(s) = step {
            parts.push(format!("\"step\": {s}"));
        }
        for (k, (v, style)) in &top {
            parts.push(format!("{}: {}", key(k), spell(*v, *style)));
            want.push((k.clone(), *v));
        }
        // An ignored string value and a nested object under a key no top-level metric uses.
        parts.push(format!("\"/tag\": {}", key(&format!("t:{tag}"))));
        if !nested.is_empty() {
            let inner: Vec<String> = nested
                .iter()
                .map(|(k, (v, style))| format!("{}: {}", key(k), spell(*v, *style)))
                .collect();
            parts.push(format!("\"/val\": {{{}}}", inner.join(", ")));
            want.extend(nested.iter().map(|(k, (v, _))| (format!("/val/{k}"), *v)));
        }
        let line = format!("{{{}}}\n", parts.join(", "));
        let got = parse_line(line.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e}: {line}")))?;
        prop_assert_eq!(got.step, step.map(|s| s as f64));
        prop_assert_eq!(got.values.len(), want.len(), "{}", line);
        for ((gk, gv), (wk, wv)) in got.values.iter().zip(&want) {
            prop_assert_eq!(gk, wk);
            prop_assert!(same(*gv, *wv), "{} parsed as {} in {}", wv, gv, line);
        }
    }
}

// ---------------------------------------------------------------- control requests

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        prop::option::of(text()).prop_map(|step| Request::Cancel { step }),
        Just(Request::Retry),
        (text(), any::<bool>()).prop_map(|(step, downstream)| Request::Rerun { step, downstream }),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn control_requests_parse_back_equal(
        id in "[0-9]{19}-[a-z0-9]{6}",
        ts in ts(),
        host in text(),
        pid in any::<u32>(),
        user in text(),
        request in request(),
    ) {
        let env = Envelope { id, ts, host, pid, user, request };
        // Pretty, as `control::submit` writes the file.
        let bytes = serde_json::to_vec_pretty(&env).unwrap();
        prop_assert_eq!(control::parse(&bytes), Ok(env));
    }
}

// ---------------------------------------------------------------- Slurm job ids

proptest! {
    #![proptest_config(config(256))]

    /// The ids the JSON decoders build: `123`, `123_4` for an array element, `123_[1-5%2]` for a
    /// pending array's range (the forms `scancel` and `sortie job` take).
    #[test]
    fn decoded_job_ids_have_the_slurm_forms(
        job in 1..10_000_000u64,
        array in prop::option::of((1..10_000_000u64, prop::option::of(0..100_000u32))),
        range in "[0-9]{1,4}(-[0-9]{1,4})?(,[0-9]{1,3}){0,2}(%[0-9]{1,2})?",
        bracketed in any::<bool>(),
    ) {
        let mut reply: Value =
            serde_json::from_slice(&std::fs::read("fixtures/slurm/squeue-v0.0.42.json").unwrap()).unwrap();
        let rec = &mut reply["jobs"][0];
        let num = |n: Option<u64>| json!({"set": n.is_some(), "infinite": false, "number": n.unwrap_or(0)});
        let task_string = if bracketed { format!("[{range}]") } else { range.clone() };
        rec["job_id"] = json!(job);
        rec["array_job_id"] = num(array.map(|a| a.0));
        rec["array_task_id"] = num(array.and_then(|a| a.1).map(u64::from));
        rec["array_task_string"] = json!(if array.is_some_and(|a| a.1.is_none()) { task_string } else { String::new() });
        let list = sortie::slurm::decode::squeue_json_at(&serde_json::to_vec(&reply).unwrap(), 1_700_000_000)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let want = match array {
            None => job.to_string(),
            Some((a, Some(t))) => format!("{a}_{t}"),
            Some((a, None)) => format!("{a}_[{range}]"),
        };
        prop_assert_eq!(&list.jobs[0].id, &want);
    }
}

// ---------------------------------------------------------------- the fuzz targets on known inputs

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// A fuzz target's body.
type Entry = fn(&[u8]);

/// Every fixture and hand-picked seed through every fuzz entry (each must take any bytes), plus the
/// two-reply input the partitions decoder needs.
#[test]
fn every_entry_takes_every_fixture_and_seed() {
    let mut files = Vec::new();
    files_under(Path::new("fixtures"), &mut files);
    files_under(Path::new("fuzz/seeds"), &mut files);
    assert!(files.len() > 30, "fixtures found: {}", files.len());
    let entries: [(&str, Entry); 7] = [
        ("pipeline_load", entries::pipeline_load),
        ("slurm_json", entries::slurm_json),
        ("slurm_text", entries::slurm_text),
        ("metrics_lines", entries::metrics_lines),
        ("events_log", entries::events_log),
        ("control_request", entries::control_request),
        ("optuna_journal", entries::optuna_journal),
    ];
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        for (name, entry) in entries {
            if std::panic::catch_unwind(|| entry(&bytes)).is_err() {
                panic!("fuzz entry {name} panicked on {}", file.display());
            }
        }
    }
    let mut two = std::fs::read("fixtures/slurm/live-rest-slurm-v0.0.38-partitions.json").unwrap();
    two.push(0);
    two.extend(std::fs::read("fixtures/slurm/live-rest-slurm-v0.0.38-nodes.json").unwrap());
    entries::slurm_json(&two);
}

/// The seeds are real: the events seed folds to a run, and each request seed parses.
#[test]
fn the_hand_picked_seeds_parse() {
    let log = std::fs::read("fuzz/seeds/events_log/retry-run.jsonl").unwrap();
    let batch = parse_batch(&log, 0);
    assert_eq!(batch.bad_lines, 0);
    assert!(fold(&batch.records).is_some());
    for kind in ["retry", "cancel-step", "rerun"] {
        let bytes = std::fs::read(format!("fuzz/seeds/control_request/{kind}.json")).unwrap();
        control::parse(&bytes).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A real Optuna journal read in two pieces, cut anywhere (a writer caught mid-line), gives the
    /// same studies as one read: the held-back partial line is read again, never lost or doubled.
    #[test]
    fn an_optuna_journal_read_in_pieces_equals_one_read(cut in 0usize..106_353) {
        let data = std::fs::read("fixtures/optuna/v5.journal").unwrap();
        let cut = cut % (data.len() + 1);
        let (whole, wwarn, end) = sortie::trials::journal::replay_bytes(&data, data.len());
        let (pieces, pwarn, end2) = sortie::trials::journal::replay_bytes(&data, cut);
        prop_assert_eq!(end, end2);
        prop_assert!(wwarn.is_empty() && pwarn.is_empty(), "{:?} {:?}", wwarn, pwarn);
        let json = |s: &[sortie::trials::Study]| -> Vec<serde_json::Value> {
            s.iter()
                .map(|s| sortie::trials::report::study_json("", s, &s.trials.iter().collect::<Vec<_>>()))
                .collect()
        };
        prop_assert_eq!(json(&whole), json(&pieces));
    }
}
