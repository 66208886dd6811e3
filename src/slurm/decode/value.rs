//! Tolerant readers over `serde_json::Value` for the shapes Slurm changed between releases: plain
//! numbers vs `{set, infinite, number}` NO_VAL structs vs `"Infinity"`, strings vs string arrays, and
//! the three exit-code shapes. Missing or odd values read as "unknown", never as an error.

use serde_json::Value;

/// A number as any data_parser version writes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    Unset,
    Infinite,
    Value(f64),
}

impl Num {
    pub fn of(v: Option<&Value>) -> Num {
        match v {
            Some(Value::Object(o)) => {
                if o.get("infinite").and_then(Value::as_bool) == Some(true) {
                    Num::Infinite
                } else if o.get("set").and_then(Value::as_bool) == Some(false) {
                    Num::Unset
                } else {
                    Num::scalar(o.get("number"))
                }
            }
            other => Num::scalar(other),
        }
    }

    fn scalar(v: Option<&Value>) -> Num {
        match v {
            Some(Value::Number(n)) => n.as_f64().map_or(Num::Unset, Num::Value),
            Some(Value::String(s)) => match s.trim() {
                "Infinity" | "infinite" | "INFINITE" | "UNLIMITED" => Num::Infinite,
                t => t.parse::<f64>().map_or(Num::Unset, Num::Value),
            },
            _ => Num::Unset,
        }
    }

    pub fn f64(self) -> Option<f64> {
        match self {
            Num::Value(x) if x.is_finite() => Some(x),
            _ => None,
        }
    }

    pub fn u64(self) -> Option<u64> {
        self.f64()
            .filter(|x| *x >= 0.0 && *x < 1.8e19)
            .map(|x| x as u64)
    }

    pub fn i64(self) -> Option<i64> {
        self.f64().filter(|x| x.abs() < 9.2e18).map(|x| x as i64)
    }
}

/// `v[k1][k2]...`, or `None` as soon as a key is missing or the value is not an object.
pub fn at<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().try_fold(v, |v, k| v.get(*k))
}

pub fn u64_at(v: &Value, keys: &[&str]) -> Option<u64> {
    Num::of(at(v, keys)).u64()
}

pub fn u32_at(v: &Value, keys: &[&str]) -> Option<u32> {
    u64_at(v, keys).and_then(|n| u32::try_from(n).ok())
}

/// A unix time; 0 is Slurm's "not set".
pub fn time_at(v: &Value, keys: &[&str]) -> Option<i64> {
    Num::of(at(v, keys)).i64().filter(|t| *t > 0)
}

/// A non-empty string (numbers are printed, since ids come both ways).
pub fn str_at(v: &Value, keys: &[&str]) -> Option<String> {
    match at(v, keys)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A string or an array of strings (job_state became an array in v0.0.40).
pub fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// An exit code as one of the shapes Slurm used.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// The record said SUCCESS/0 without saying which exit it saw (see `may_hide_exit`).
    pub claims_success: bool,
}

/// Reads `exit_code`:
/// - an integer: the raw wait status (`exit << 8 | signal`), squeue up to v0.0.39;
/// - `{status: "SUCCESS"|["SUCCESS"], return_code, signal: {signal_id|id, name}}`, sacct and v0.0.40+.
pub fn exit_of(v: Option<&Value>) -> Exit {
    match v {
        Some(Value::Number(_)) => {
            let Some(raw) = Num::of(v).i64() else {
                return Exit::default();
            };
            let signal = (raw & 0x7f) as i32;
            Exit {
                code: Some(((raw >> 8) & 0xff) as i32),
                signal: (signal != 0).then_some(signal),
                claims_success: false,
            }
        }
        Some(obj @ Value::Object(_)) => {
            let status = strings(obj.get("status"));
            let signal = Num::of(at(obj, &["signal", "id"]))
                .i64()
                .or_else(|| Num::of(at(obj, &["signal", "signal_id"])).i64())
                .map(|s| s as i32)
                .filter(|s| *s != 0);
            let code = Num::of(obj.get("return_code")).i64().map(|c| c as i32);
            let success = status.iter().any(|s| s == "SUCCESS");
            Exit {
                code: code.or_else(|| (success || signal.is_some()).then_some(0)),
                signal,
                claims_success: success && signal.is_none() && code.unwrap_or(0) == 0,
            }
        }
        _ => Exit::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_in_every_shape() {
        assert_eq!(Num::of(Some(&json!(5))), Num::Value(5.0));
        assert_eq!(
            Num::of(Some(&json!({"set": true, "infinite": false, "number": 7}))),
            Num::Value(7.0)
        );
        assert_eq!(
            Num::of(Some(&json!({"set": false, "infinite": false, "number": 7}))),
            Num::Unset
        );
        assert_eq!(
            Num::of(Some(&json!({"set": true, "infinite": true, "number": 0}))),
            Num::Infinite
        );
        assert_eq!(Num::of(Some(&json!("Infinity"))), Num::Infinite);
        assert_eq!(Num::of(Some(&json!(null))), Num::Unset);
        assert_eq!(Num::of(None), Num::Unset);
        assert_eq!(Num::of(Some(&json!(-3))).u64(), None);
        assert_eq!(Num::of(Some(&json!(1e300))).u64(), None);
        assert_eq!(Num::of(Some(&json!({"number": {"number": 1}}))), Num::Unset);
    }

    #[test]
    fn exit_codes_in_every_shape() {
        assert_eq!(
            exit_of(Some(&json!(768))),
            Exit {
                code: Some(3),
                signal: None,
                claims_success: false
            }
        );
        assert_eq!(exit_of(Some(&json!(9))).signal, Some(9));
        let v40 = json!({"status": ["ERROR"], "return_code": {"set": true, "infinite": false, "number": 2},
                         "signal": {"id": {"set": false, "infinite": false, "number": 0}, "name": ""}});
        assert_eq!(
            exit_of(Some(&v40)),
            Exit {
                code: Some(2),
                signal: None,
                claims_success: false
            }
        );
        let sig = json!({"status": "SIGNALED", "return_code": null, "signal": {"signal_id": 9, "name": "Killed"}});
        assert_eq!(
            exit_of(Some(&sig)),
            Exit {
                code: Some(0),
                signal: Some(9),
                claims_success: false
            }
        );
        let trap = json!({"status": "SUCCESS", "return_code": 0});
        assert!(exit_of(Some(&trap)).claims_success);
        assert_eq!(exit_of(Some(&json!("x"))), Exit::default());
    }
}
