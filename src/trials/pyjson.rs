//! JSON as Python's `json.dumps` writes it: bare `NaN`, `Infinity` and `-Infinity` may stand where a
//! number does (Optuna's attributes and journal lines), which strict JSON parsers reject. They are read as
//! the strings "NaN", "Infinity" and "-Infinity", the form sortie's own JSON output uses for them; numeric
//! fields turn those strings back into floats with [`number`].

use serde_json::Value;

/// Parses Python-flavoured JSON.
pub fn parse(text: &str) -> serde_json::Result<Value> {
    // Almost every line has no such token: parse it as it is.
    if !text.contains("NaN") && !text.contains("Infinity") {
        return serde_json::from_str(text);
    }
    serde_json::from_str(&quote_bare_tokens(text))
}

/// Where a left-to-right scan of JSON text stands: inside a string literal or not.
#[derive(Default)]
pub struct Strings {
    inside: bool,
    escaped: bool,
}

impl Strings {
    /// Takes the next character; true when it stands outside every string (quotes count as inside).
    pub fn outside(&mut self, c: char) -> bool {
        if self.inside {
            match c {
                _ if self.escaped => self.escaped = false,
                '\\' => self.escaped = true,
                '"' => self.inside = false,
                _ => {}
            }
            return false;
        }
        if c == '"' {
            self.inside = true;
            return false;
        }
        true
    }
}

/// Wraps the bare tokens that stand outside strings in quotes.
fn quote_bare_tokens(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut strings = Strings::default();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        // Every character goes through `strings` once; a token's other letters cannot change it.
        if strings.outside(c)
            && let Some(t) = ["-Infinity", "Infinity", "NaN"]
                .into_iter()
                .find(|t| rest.starts_with(t))
        {
            out.push('"');
            out.push_str(t);
            out.push('"');
            rest = &rest[t.len()..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// A number, or one of the three non-finite spellings.
pub fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bare_tokens_outside_strings_become_strings() {
        let v = parse(r#"{"a":NaN,"b":[Infinity,-Infinity,1.5],"c":"NaN stays \"Infinity\""}"#)
            .unwrap();
        assert_eq!(
            v,
            json!({"a": "NaN", "b": ["Infinity", "-Infinity", 1.5], "c": "NaN stays \"Infinity\""})
        );
        assert!(number(&v["a"]).unwrap().is_nan());
        assert_eq!(number(&v["b"][1]), Some(f64::NEG_INFINITY));
        assert_eq!(number(&v["c"]), None);
    }

    #[test]
    fn strict_json_is_read_unchanged_and_garbage_is_an_error() {
        assert_eq!(parse(r#"{"x": [1, "y"]}"#).unwrap(), json!({"x": [1, "y"]}));
        assert!(parse("{\"x\": NaNa}").is_err());
        assert!(parse("not json").is_err());
    }
}
