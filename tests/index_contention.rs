//! Readers and an engine share one host's index: while steps write metrics continuously, readers looping
//! `status --json` and `metrics --json` never fail and never see "database is locked", their counts never go
//! backwards, and at the end the counts equal the lines the steps wrote.

mod common;

use common::Project;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn pipeline(seconds: u64) -> String {
    format!(
        r#"[pipeline]
name = "contention"

[[step]]
name = "writer"
matrix = {{ w = [1, 2] }}
run = '''
i=0
while [ "$SECONDS" -lt {seconds} ]; do
  for k in 1 2 3 4 5 6 7 8 9 10; do
    i=$((i + 1))
    echo "{{\"step\": $i, \"loss\": 0.$i, \"acc\": NaN, \"nested\": {{\"w\": {{{{w}}}}}}}}" >> "$SORTIE_METRICS"
  done
  sleep 0.05
done
echo "$i" > "$SORTIE_STEP_DIR/written"
'''
"#
    )
}

/// Sum of `count` over the writer series of one metric in a `metrics --json` answer.
fn total(v: &Value, key: &str) -> u64 {
    v.as_array()
        .map(|rows| {
            rows.iter()
                .filter(|r| r["key"] == key)
                .map(|r| r["count"].as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

fn contention(seconds: u64, journal: Option<&str>) {
    let mut p = Project::with_pipeline(&pipeline(seconds));
    if let Some(j) = journal {
        p = p.env("SORTIE_INDEX_JOURNAL", j);
    }
    let p = Arc::new(p);

    let engine = {
        let p = p.clone();
        std::thread::spawn(move || {
            common::run_with_deadline(
                p.cmd(&["run", "-j", "2"]),
                Duration::from_secs(seconds * 3 + 60),
            )
        })
    };
    let run = common::wait_for(Duration::from_secs(20), "the run directory", || {
        p.run_ids().into_iter().next()
    });

    let done = Arc::new(AtomicBool::new(false));
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut readers = Vec::new();
    for args in [
        vec!["status".to_string(), run.clone(), "--json".to_string()],
        vec!["metrics".to_string(), run.clone(), "--json".to_string()],
    ] {
        let (p, done, failures) = (p.clone(), done.clone(), failures.clone());
        readers.push(std::thread::spawn(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut calls = 0u64;
            let mut last_total = 0u64;
            let mut slowest = Duration::ZERO;
            while !done.load(Ordering::SeqCst) {
                let o = common::run_with_deadline(p.cmd(&args), Duration::from_secs(90));
                calls += 1;
                slowest = slowest.max(o.elapsed);
                let text = format!("{}{}", o.stdout, o.stderr).to_lowercase();
                if o.code != Some(0) || text.contains("locked") || text.contains("busy") {
                    failures.lock().unwrap().push(format!(
                        "`sortie {}` exited {:?}: {}",
                        args.join(" "),
                        o.code,
                        o.stderr.trim()
                    ));
                    continue;
                }
                let v: Value = match serde_json::from_str(&o.stdout) {
                    Ok(v) => v,
                    Err(e) => {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("`sortie {}` printed no JSON: {e}", args.join(" ")));
                        continue;
                    }
                };
                if args[0] == "metrics" {
                    let t = total(&v, "loss");
                    if t < last_total {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("metric count went back from {last_total} to {t}"));
                    }
                    last_total = t;
                }
            }
            (calls, slowest)
        }));
    }

    let out = engine.join().unwrap();
    done.store(true, Ordering::SeqCst);
    let stats: Vec<(u64, Duration)> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    out.ok();
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} reader failures, e.g.:\n{}",
        failures.len(),
        failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    for (calls, _) in &stats {
        assert!(*calls >= 3, "a reader only got {calls} calls in: {stats:?}");
    }

    let st = p.status(Some(&run));
    assert_eq!(st["state"], "succeeded");
    let m = p.sortie(&["metrics", &run, "--json"]);
    m.ok();
    let rows = m.json();
    for w in [1, 2] {
        let step = format!("writer[w={w}]");
        let dir = std::path::PathBuf::from(common::step_of(&st, &step)["dir"].as_str().unwrap());
        let written: u64 = std::fs::read_to_string(dir.join("written"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let lines = std::fs::read_to_string(dir.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .count() as u64;
        assert_eq!(written, lines);
        assert!(written >= 100, "the writer wrote only {written} lines");
        for key in ["loss", "acc", "nested/w"] {
            let count = rows
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["step"] == step.as_str() && r["key"] == key)
                .map(|r| r["count"].as_u64().unwrap());
            assert_eq!(count, Some(written), "{step} {key}");
        }
    }
}

#[test]
fn readers_never_fail_while_an_engine_ingests_metrics_for_60s() {
    contention(60, None);
}

#[test]
fn readers_never_fail_with_the_network_filesystem_journal() {
    // The journal mode sortie picks on NFS/Lustre/GPFS: DELETE, where readers and writers really block
    // each other.
    contention(20, Some("delete"));
}
