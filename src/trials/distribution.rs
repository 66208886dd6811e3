//! `distribution_json` as every Optuna version wrote it: the current Float/Int/Categorical names, the
//! legacy names that schema revisions before v3.0.0.a still hold, and the abbreviated `{"type": …}` form.
//! Attribute order varies between versions, so fields are read by name.

use super::model::Distribution;
use super::pyjson;
use serde_json::Value;

/// Decodes one distribution; the error says what was wrong with it.
pub fn decode(text: &str) -> Result<Distribution, String> {
    let v = pyjson::parse(text).map_err(|e| format!("distribution is not JSON ({e}): {text}"))?;
    decode_value(&v).ok_or_else(|| format!("not an Optuna distribution: {text}"))
}

fn decode_value(v: &Value) -> Option<Distribution> {
    let f = |a: &Value, k: &str| a.get(k).and_then(pyjson::number);
    let i = |a: &Value, k: &str| a.get(k).and_then(pyjson::number).map(|x| x as i64);
    let flag = |a: &Value, k: &str| a.get(k).and_then(Value::as_bool).unwrap_or(false);
    if let Some(kind) = v.get("type").and_then(Value::as_str) {
        // The abbreviated form keeps its fields at the top level.
        return match kind {
            "float" => Some(Distribution::Float {
                low: f(v, "low")?,
                high: f(v, "high")?,
                log: flag(v, "log"),
                step: f(v, "step"),
            }),
            "int" => Some(Distribution::Int {
                low: i(v, "low")?,
                high: i(v, "high")?,
                log: flag(v, "log"),
                step: i(v, "step").unwrap_or(1),
            }),
            "categorical" => Some(Distribution::Categorical {
                choices: v.get("choices")?.as_array()?.clone(),
            }),
            _ => None,
        };
    }
    let name = v.get("name")?.as_str()?;
    let a = v.get("attributes")?;
    Some(match name {
        "FloatDistribution" => Distribution::Float {
            low: f(a, "low")?,
            high: f(a, "high")?,
            log: flag(a, "log"),
            step: f(a, "step"),
        },
        "UniformDistribution" => Distribution::Float {
            low: f(a, "low")?,
            high: f(a, "high")?,
            log: false,
            step: None,
        },
        "LogUniformDistribution" => Distribution::Float {
            low: f(a, "low")?,
            high: f(a, "high")?,
            log: true,
            step: None,
        },
        "DiscreteUniformDistribution" => Distribution::Float {
            low: f(a, "low")?,
            high: f(a, "high")?,
            log: false,
            step: f(a, "q"),
        },
        "IntDistribution" => Distribution::Int {
            low: i(a, "low")?,
            high: i(a, "high")?,
            log: flag(a, "log"),
            step: i(a, "step").unwrap_or(1),
        },
        "IntUniformDistribution" => Distribution::Int {
            low: i(a, "low")?,
            high: i(a, "high")?,
            log: false,
            step: i(a, "step").unwrap_or(1),
        },
        "IntLogUniformDistribution" => Distribution::Int {
            low: i(a, "low")?,
            high: i(a, "high")?,
            log: true,
            step: i(a, "step").unwrap_or(1),
        },
        "CategoricalDistribution" => Distribution::Categorical {
            choices: a.get("choices")?.as_array()?.clone(),
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_spelling_decodes() {
        let cases = [
            (
                r#"{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.1, "log": true}}"#,
                Distribution::Float {
                    low: 1e-5,
                    high: 0.1,
                    log: true,
                    step: None,
                },
            ),
            (
                r#"{"name": "IntDistribution", "attributes": {"log": false, "step": 16, "low": 16, "high": 128}}"#,
                Distribution::Int {
                    low: 16,
                    high: 128,
                    log: false,
                    step: 16,
                },
            ),
            (
                r#"{"name": "LogUniformDistribution", "attributes": {"low": 1e-05, "high": 0.1}}"#,
                Distribution::Float {
                    low: 1e-5,
                    high: 0.1,
                    log: true,
                    step: None,
                },
            ),
            (
                r#"{"name": "DiscreteUniformDistribution", "attributes": {"low": 0.0, "high": 0.5, "q": 0.1}}"#,
                Distribution::Float {
                    low: 0.0,
                    high: 0.5,
                    log: false,
                    step: Some(0.1),
                },
            ),
            (
                r#"{"name": "IntLogUniformDistribution", "attributes": {"low": 1, "high": 64, "step": 1}}"#,
                Distribution::Int {
                    low: 1,
                    high: 64,
                    log: true,
                    step: 1,
                },
            ),
            (
                r#"{"type": "categorical", "choices": ["a", null, 3]}"#,
                Distribution::Categorical {
                    choices: vec![json!("a"), json!(null), json!(3)],
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(decode(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn internal_values_become_the_users() {
        let c = Distribution::Categorical {
            choices: vec![json!("adam"), json!(null), json!(3)],
        };
        assert_eq!(c.external(0.0), Some(json!("adam")));
        assert_eq!(c.external(1.0), Some(json!(null)));
        assert_eq!(c.external(2.0), Some(json!(3)));
        assert_eq!(c.external(3.0), None);
        assert_eq!(c.external(0.5), None);
        let i = Distribution::Int {
            low: 1,
            high: 6,
            log: false,
            step: 1,
        };
        assert_eq!(i.external(5.0), Some(json!(5)));
    }

    #[test]
    fn what_is_not_a_distribution_says_so() {
        assert!(
            decode("{}")
                .unwrap_err()
                .contains("not an Optuna distribution")
        );
        assert!(decode("{").unwrap_err().contains("not JSON"));
        assert!(decode(r#"{"name": "FloatDistribution", "attributes": {"low": 1}}"#).is_err());
    }
}
