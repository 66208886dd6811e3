//! Comparing sortie's reading of an Optuna storage with what Optuna itself read from it (the
//! `*.expected.json` that fixtures/optuna/generate.py writes), trial for trial.

use serde_json::Value;

/// A float from the strict-JSON form both sides use (non-finite values as strings).
pub fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) if s == "NaN" => f64::NAN,
        Value::String(s) if s == "Infinity" => f64::INFINITY,
        Value::String(s) if s == "-Infinity" => f64::NEG_INFINITY,
        other => panic!("not a number: {other}"),
    }
}

pub fn same_float(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b
}

/// Unix seconds of a naive time Optuna printed, written at `offset` seconds east of UTC.
pub fn naive_unix(text: &str, offset: i64) -> f64 {
    let t = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").unwrap();
    t.and_utc().timestamp_micros() as f64 / 1e6 - offset as f64
}

pub fn rfc3339_unix(v: &Value) -> Option<f64> {
    let s = v.as_str()?;
    Some(
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_micros() as f64
            / 1e6,
    )
}

/// Panics at the first difference between sortie's `trials --json` studies and Optuna's expectations.
#[track_caller]
pub fn assert_same_as_optuna(name: &str, got: &[Value], exp: &Value) {
    let offset = exp["utc_offset_s"].as_i64().unwrap();
    let want = exp["studies"].as_array().unwrap();
    let names = |v: &[Value]| -> Vec<String> {
        v.iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(got), names(want), "{name}: studies");
    for (g, w) in got.iter().zip(want) {
        let study = format!("{name}/{}", w["name"]);
        let dirs: Vec<String> = w["directions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_lowercase())
            .collect();
        assert_eq!(g["directions"], serde_json::json!(dirs), "{study}");
        assert_eq!(
            g["user_attrs"], w["user_attrs"],
            "{study}: study user attrs"
        );
        let (gt, wt) = (
            g["trials"].as_array().unwrap(),
            w["trials"].as_array().unwrap(),
        );
        assert_eq!(gt.len(), wt.len(), "{study}: trial count");
        assert_eq!(
            gt.len() as u64,
            w["dataframe"]["rows"].as_u64().unwrap(),
            "{study}: trials_dataframe rows"
        );
        for (a, b) in gt.iter().zip(wt) {
            let trial = format!("{study} #{}", b["number"]);
            assert_eq!(a["number"], b["number"], "{trial}");
            assert_eq!(a["state"], b["state"], "{trial}: state");
            let want_values: Vec<f64> = b["values"]
                .as_array()
                .map(|v| v.iter().map(num).collect())
                .unwrap_or_default();
            let got_values: Vec<f64> = a["values"].as_array().unwrap().iter().map(num).collect();
            assert_eq!(got_values.len(), want_values.len(), "{trial}: values");
            for (x, y) in got_values.iter().zip(&want_values) {
                assert!(same_float(*x, *y), "{trial}: value {x} != {y}");
            }
            assert_eq!(a["params"], b["params"], "{trial}: params");
            let gi = a["intermediate"].as_object().unwrap();
            let wi = b["intermediate"].as_object().unwrap();
            assert_eq!(
                gi.keys().collect::<Vec<_>>(),
                wi.keys().collect::<Vec<_>>(),
                "{trial}: intermediate steps"
            );
            for (k, v) in wi {
                assert!(
                    same_float(num(&gi[k]), num(v)),
                    "{trial}: intermediate {k}: {} != {v}",
                    gi[k]
                );
            }
            assert_eq!(a["user_attrs"], b["user_attrs"], "{trial}: user attrs");
            assert_eq!(
                a["system_attrs"], b["system_attrs"],
                "{trial}: system attrs"
            );
            for (ours, theirs) in [("start", "datetime_start"), ("end", "datetime_complete")] {
                match b[theirs].as_str() {
                    None => assert!(a[ours].is_null(), "{trial}: {ours} should be null"),
                    Some(t) => {
                        let got = rfc3339_unix(&a[ours])
                            .unwrap_or_else(|| panic!("{trial}: no {ours}: {}", a[ours]));
                        let want = naive_unix(t, offset);
                        assert!(
                            (got - want).abs() < 1e-5,
                            "{trial}: {ours} {} is not Optuna's {t} (offset {offset})",
                            a[ours]
                        );
                    }
                }
            }
        }
    }
}
