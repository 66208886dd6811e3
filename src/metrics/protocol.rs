//! Parsing one line of the metrics protocol (see `docs/metrics-protocol.md`).
//!
//! A line is a JSON object; numbers are metrics, except the top-level axes `step`, `epoch` and `time`.
//! Nested objects flatten with `/`; booleans, strings, nulls and arrays are ignored. Python's
//! `json.dumps` writes non-finite floats as bare `NaN`, `Infinity` and `-Infinity`, which are not JSON,
//! so the strings `"NaN"`, `"Infinity"` and `"-Infinity"` are accepted as values too.
//!
//! Why a hand-written scanner rather than serde_json: this is the hot path of metric ingest (millions of
//! points per second). serde_json rejects the bare non-finite tokens outright, so it would need a
//! rewriting pass that tracks string boundaries anyway; and going through `serde_json::Value` allocates
//! a map and a `String` per key per line. The scanner walks the bytes once, hands out keys borrowed from
//! the line, and only allocates for the rare escaped or nested key. serde_json is still used to decode
//! escaped keys, so escape handling stays exact.

use std::fmt;

/// The axes of a line. Each is set only when the line had it as a finite number.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Axes {
    pub step: Option<f64>,
    pub epoch: Option<f64>,
    pub time: Option<f64>,
}

/// A parsed line with owned keys; convenient, but the ingest path uses [`scan_line`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricLine {
    pub step: Option<f64>,
    pub epoch: Option<f64>,
    pub time: Option<f64>,
    /// In line order; a key that appears twice keeps its last value, at its first position.
    pub values: Vec<(String, f64)>,
}

/// Why a line was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub reason: &'static str,
    /// Byte position in the line where scanning stopped.
    pub at: usize,
}

impl fmt::Display for BadLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.reason, self.at)
    }
}

impl std::error::Error for BadLine {}

/// Buffers reused across lines so that scanning a line usually allocates nothing.
#[derive(Debug, Default)]
pub struct Scratch {
    /// The flattened key of the object being scanned (`val/sub/`), grown and truncated as we descend.
    path: String,
}

/// Deeper nesting than this is rejected rather than risking the stack on a hostile line.
const MAX_DEPTH: usize = 64;

/// Parses one line (without or with its `\n`/`\r\n`) into owned values.
pub fn parse_line(line: &[u8]) -> Result<MetricLine, BadLine> {
    let mut scratch = Scratch::default();
    let mut values: Vec<(String, f64)> = Vec::new();
    let axes = scan_line(line, &mut scratch, |k, v| {
        match values.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v,
            None => values.push((k.to_string(), v)),
        }
    })?;
    Ok(MetricLine {
        step: axes.step,
        epoch: axes.epoch,
        time: axes.time,
        values,
    })
}

/// Scans one line, calling `emit(key, value)` for every metric in line order (a duplicated key is emitted
/// twice; callers decide that the last one wins). Returns the line's axes. A line that is empty or only
/// whitespace is an error too (`reason == "empty line"`); callers usually skip those before calling.
pub fn scan_line<F: FnMut(&str, f64)>(
    line: &[u8],
    scratch: &mut Scratch,
    mut emit: F,
) -> Result<Axes, BadLine> {
    let mut s = Scanner { b: line, i: 0 };
    s.ws();
    match s.peek() {
        None => return Err(s.bad("empty line")),
        Some(b'{') => {}
        Some(_) => return Err(s.bad("not a JSON object")),
    }
    scratch.path.clear();
    let mut axes = Axes::default();
    s.object(0, &mut scratch.path, &mut axes, &mut emit)?;
    s.ws();
    if s.i != s.b.len() {
        return Err(s.bad("trailing characters after the object"));
    }
    Ok(axes)
}

/// What a value turned out to be.
enum Val {
    Num(f64),
    Ignored,
    Object,
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn bad(&self, reason: &'static str) -> BadLine {
        BadLine { reason, at: self.i }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8, reason: &'static str) -> Result<(), BadLine> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.bad(reason))
        }
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            true
        } else {
            false
        }
    }

    /// Scans an object whose `{` is next. `path` holds the flattened prefix of its keys.
    fn object<F: FnMut(&str, f64)>(
        &mut self,
        depth: usize,
        path: &mut String,
        axes: &mut Axes,
        emit: &mut F,
    ) -> Result<(), BadLine> {
        if depth >= MAX_DEPTH {
            return Err(self.bad("objects nested too deeply"));
        }
        self.i += 1; // '{'
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        let base = path.len();
        loop {
            self.ws();
            let key = self.key()?;
            self.ws();
            self.expect(b':', "expected ':' after a key")?;
            self.ws();
            if base > 0 {
                path.push('/');
            }
            path.push_str(&key);
            match self.value(depth, path, axes, emit)? {
                Val::Num(v) => {
                    let axis = match (depth, path.as_str()) {
                        (0, "step") => Some(&mut axes.step),
                        (0, "epoch") => Some(&mut axes.epoch),
                        (0, "time") => Some(&mut axes.time),
                        _ => None,
                    };
                    match axis {
                        Some(slot) => *slot = v.is_finite().then_some(v),
                        None => emit(path, v),
                    }
                }
                Val::Ignored | Val::Object => {}
            }
            path.truncate(base);
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.bad("expected ',' or '}'")),
            }
        }
    }

    /// A key: borrowed from the line when it has no escapes, decoded by serde_json when it has.
    fn key(&mut self) -> Result<std::borrow::Cow<'a, str>, BadLine> {
        if self.peek() != Some(b'"') {
            return Err(self.bad("expected a quoted key"));
        }
        let start = self.i;
        let (end, escaped) = self.string_end()?;
        let raw = &self.b[start + 1..end - 1];
        if escaped {
            serde_json::from_slice::<String>(&self.b[start..end])
                .map(std::borrow::Cow::Owned)
                .map_err(|_| BadLine {
                    reason: "invalid escape in key",
                    at: start,
                })
        } else {
            std::str::from_utf8(raw)
                .map(std::borrow::Cow::Borrowed)
                .map_err(|_| BadLine {
                    reason: "key is not UTF-8",
                    at: start,
                })
        }
    }

    /// With `"` next, advances past the closing quote; returns the end and whether a `\` was seen.
    fn string_end(&mut self) -> Result<(usize, bool), BadLine> {
        let mut j = self.i + 1;
        let mut escaped = false;
        while let Some(&c) = self.b.get(j) {
            match c {
                b'"' => {
                    self.i = j + 1;
                    return Ok((self.i, escaped));
                }
                b'\\' => {
                    escaped = true;
                    j += 2;
                }
                _ => j += 1,
            }
        }
        self.i = self.b.len();
        Err(self.bad("unterminated string"))
    }

    fn value<F: FnMut(&str, f64)>(
        &mut self,
        depth: usize,
        path: &mut String,
        axes: &mut Axes,
        emit: &mut F,
    ) -> Result<Val, BadLine> {
        match self.peek() {
            Some(b'-' | b'0'..=b'9') => {
                if self.literal(b"-Infinity") {
                    return Ok(Val::Num(f64::NEG_INFINITY));
                }
                self.number().map(Val::Num)
            }
            Some(b'N') if self.literal(b"NaN") => Ok(Val::Num(f64::NAN)),
            Some(b'I') if self.literal(b"Infinity") => Ok(Val::Num(f64::INFINITY)),
            Some(b'"') => {
                let start = self.i;
                let (end, _) = self.string_end()?;
                Ok(match &self.b[start + 1..end - 1] {
                    b"NaN" => Val::Num(f64::NAN),
                    b"Infinity" => Val::Num(f64::INFINITY),
                    b"-Infinity" => Val::Num(f64::NEG_INFINITY),
                    _ => Val::Ignored,
                })
            }
            Some(b'{') => {
                self.object(depth + 1, path, axes, emit)?;
                Ok(Val::Object)
            }
            Some(b'[') => {
                self.skip_array(depth + 1)?;
                Ok(Val::Ignored)
            }
            Some(b't') if self.literal(b"true") => Ok(Val::Ignored),
            Some(b'f') if self.literal(b"false") => Ok(Val::Ignored),
            Some(b'n') if self.literal(b"null") => Ok(Val::Ignored),
            _ => Err(self.bad("expected a value")),
        }
    }

    /// Skips an array (whose `[` is next) and everything inside it, validating its structure.
    fn skip_array(&mut self, depth: usize) -> Result<(), BadLine> {
        if depth >= MAX_DEPTH {
            return Err(self.bad("arrays nested too deeply"));
        }
        self.i += 1; // '['
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            self.skip_value(depth)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.bad("expected ',' or ']'")),
            }
        }
    }

    /// Skips any value; objects inside arrays are not metrics.
    fn skip_value(&mut self, depth: usize) -> Result<(), BadLine> {
        match self.peek() {
            Some(b'[') => self.skip_array(depth + 1),
            Some(b'{') => {
                if depth >= MAX_DEPTH {
                    return Err(self.bad("objects nested too deeply"));
                }
                self.i += 1;
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.ws();
                    self.key()?;
                    self.ws();
                    self.expect(b':', "expected ':' after a key")?;
                    self.ws();
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return Err(self.bad("expected ',' or '}'")),
                    }
                }
            }
            Some(b'"') => self.string_end().map(|_| ()),
            Some(b'-' | b'0'..=b'9') => {
                if !self.literal(b"-Infinity") {
                    self.number()?;
                }
                Ok(())
            }
            _ if self.literal(b"NaN")
                || self.literal(b"Infinity")
                || self.literal(b"true")
                || self.literal(b"false")
                || self.literal(b"null") =>
            {
                Ok(())
            }
            _ => Err(self.bad("expected a value")),
        }
    }

    /// A JSON number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`. The grammar is checked here so
    /// that Rust's more permissive float parser (which takes `inf`, `+1`, `.5`) only sees JSON numbers.
    fn number(&mut self) -> Result<f64, BadLine> {
        let b = self.b;
        let start = self.i;
        let mut j = start;
        let neg = b.get(j) == Some(&b'-');
        if neg {
            j += 1;
        }
        // The digits as one integer, exact while there are at most 19 of them (10^19 < 2^64).
        let mut mant: u64 = 0;
        let mut take_digits = |j: &mut usize| {
            let s = *j;
            while let Some(&c @ b'0'..=b'9') = b.get(*j) {
                mant = mant.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
                *j += 1;
            }
            *j - s
        };
        let int_start = j;
        let int_digits = take_digits(&mut j);
        if int_digits == 0 || (int_digits > 1 && b[int_start] == b'0') {
            self.i = j;
            return Err(self.bad("invalid number"));
        }
        let mut frac_digits = 0;
        if b.get(j) == Some(&b'.') {
            j += 1;
            frac_digits = take_digits(&mut j);
            if frac_digits == 0 {
                self.i = j;
                return Err(self.bad("invalid number"));
            }
        }
        let mut exp: i64 = 0;
        if let Some(b'e' | b'E') = b.get(j) {
            j += 1;
            let exp_neg = b.get(j) == Some(&b'-');
            if let Some(b'+' | b'-') = b.get(j) {
                j += 1;
            }
            let s = j;
            while let Some(&c @ b'0'..=b'9') = b.get(j) {
                exp = (exp * 10 + i64::from(c - b'0')).min(1 << 20);
                j += 1;
            }
            if j == s {
                self.i = j;
                return Err(self.bad("invalid number"));
            }
            if exp_neg {
                exp = -exp;
            }
        }
        self.i = j;
        // Clinger's fast path: an integer below 2^53 and a power of ten up to 10^22 are both exact
        // doubles, so one multiplication or division rounds correctly. It covers nearly every metric.
        let e10 = exp - frac_digits as i64;
        if int_digits + frac_digits <= 19 && mant < (1 << 53) && (-22..=22).contains(&e10) {
            let m = mant as f64;
            let v = if e10 >= 0 {
                m * POW10[e10 as usize]
            } else {
                m / POW10[(-e10) as usize]
            };
            return Ok(if neg { -v } else { v });
        }
        // The bytes were checked to be ASCII digits, signs, `.` and `e`, so this cannot fail.
        std::str::from_utf8(&b[start..j])
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            .ok_or(BadLine {
                reason: "invalid number",
                at: start,
            })
    }
}

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(line: &str) -> Vec<(String, f64)> {
        parse_line(line.as_bytes()).unwrap().values
    }

    #[test]
    fn axes_and_metrics() {
        let l = parse_line(
            br#"{"step": 10, "loss": 0.31, "acc": 0.88, "epoch": 1.5, "time": 1700000000.25}"#,
        )
        .unwrap();
        assert_eq!(l.step, Some(10.0));
        assert_eq!(l.epoch, Some(1.5));
        assert_eq!(l.time, Some(1_700_000_000.25));
        assert_eq!(
            l.values,
            vec![("loss".to_string(), 0.31), ("acc".to_string(), 0.88)]
        );
    }

    #[test]
    fn numbers_are_exact() {
        for t in [
            "0",
            "-0",
            "1",
            "-17",
            "123456789012",
            "0.1",
            "-2.5e-3",
            "1E10",
            "6.02e+23",
            "1e400",
            "9007199254740993",
            "12345678901234567890",
            "0.000123456",
            "123.456e-10",
            "1e22",
            "1e23",
            "4.9e-324",
            "2.2250738585072014e-308",
            "0.30000000000000004",
            "-1.5E+3",
            "9007199254740992.5",
            "0.1234567890123456789",
            "1e-22",
            "17e-23",
        ] {
            let v = vals(&format!("{{\"x\": {t}}}"));
            assert_eq!(v[0].1.to_bits(), t.parse::<f64>().unwrap().to_bits(), "{t}");
        }
        for t in [
            "01", "1.", ".5", "+1", "1e", "--1", "0x10", "1.e5", "inf", "nan",
        ] {
            assert!(
                parse_line(format!("{{\"x\": {t}}}").as_bytes()).is_err(),
                "{t}"
            );
        }
    }

    #[test]
    fn fast_number_path_agrees_with_the_std_parser() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..50_000 {
            let digits: String = (0..rng.usize(1..22)).map(|_| rng.char('0'..='9')).collect();
            let digits = digits.trim_start_matches('0');
            let digits = if digits.is_empty() { "0" } else { digits };
            let mut t = String::new();
            if rng.bool() {
                t.push('-');
            }
            let cut = rng.usize(1..=digits.len());
            t.push_str(&digits[..cut]);
            if cut < digits.len() {
                t.push('.');
                t.push_str(&digits[cut..]);
            }
            if rng.bool() {
                t += &format!("e{}", rng.i32(-40..40));
            }
            let v = vals(&format!("{{\"x\": {t}}}"));
            assert_eq!(v[0].1.to_bits(), t.parse::<f64>().unwrap().to_bits(), "{t}");
        }
    }

    #[test]
    fn non_finite_tokens_and_strings() {
        let v = vals(
            r#"{"a": NaN, "b": Infinity, "c": -Infinity, "d": "NaN", "e": "-Infinity", "f": "Infinity"}"#,
        );
        assert!(v[0].1.is_nan());
        assert_eq!(v[1].1, f64::INFINITY);
        assert_eq!(v[2].1, f64::NEG_INFINITY);
        assert!(v[3].1.is_nan());
        assert_eq!(v[4].1, f64::NEG_INFINITY);
        assert_eq!(v[5].1, f64::INFINITY);
        // A non-finite axis is treated as absent, so the x axis falls back to the line number.
        let l = parse_line(br#"{"step": NaN, "loss": 1}"#).unwrap();
        assert_eq!(l.step, None);
    }

    #[test]
    fn strings_mentioning_nan_are_left_alone() {
        let v = vals(
            r#"{"note": "loss is NaN, Infinity \"NaN\" here", "k\"ey": 2, "tag": "-Infinity ", "x": 1}"#,
        );
        assert_eq!(v, vec![("k\"ey".to_string(), 2.0), ("x".to_string(), 1.0)]);
    }

    #[test]
    fn nested_objects_flatten() {
        let v = vals(r#"{"val": {"loss": 1, "sub": {"acc": 0.5}, "step": 3}, "train/loss": 2}"#);
        assert_eq!(
            v,
            vec![
                ("val/loss".to_string(), 1.0),
                ("val/sub/acc".to_string(), 0.5),
                ("val/step".to_string(), 3.0),
                ("train/loss".to_string(), 2.0),
            ]
        );
        let l = parse_line(br#"{"val": {"step": 3}}"#).unwrap();
        assert_eq!(l.step, None, "only top-level keys are axes");
    }

    #[test]
    fn other_values_are_ignored() {
        let v = vals(
            r#"{"ok": true, "no": false, "n": null, "s": "x", "arr": [1, [NaN, {"a": 1}], "]"], "e": {}, "m": 4}"#,
        );
        assert_eq!(v, vec![("m".to_string(), 4.0)]);
    }

    #[test]
    fn duplicate_keys_keep_the_last_value() {
        assert_eq!(vals(r#"{"a": 1, "a": 2}"#), vec![("a".to_string(), 2.0)]);
    }

    #[test]
    fn whitespace_and_crlf() {
        let l = parse_line(b" {\t\"step\" :1 , \"a\":2 }\r\n").unwrap();
        assert_eq!((l.step, l.values.len()), (Some(1.0), 1));
        assert_eq!(vals("{}\r"), vec![]);
    }

    #[test]
    fn escaped_and_unicode_keys() {
        assert_eq!(vals(r#"{"l\u00f6ss": 1}"#), vec![("löss".to_string(), 1.0)]);
        assert_eq!(vals(r#"{"λ": 1}"#), vec![("λ".to_string(), 1.0)]);
        assert!(parse_line(b"{\"\xff\": 1}").is_err());
    }

    #[test]
    fn bad_lines() {
        for l in [
            "",
            "  ",
            "[1,2]",
            "42",
            "\"NaN\"",
            "null",
            "{",
            "{\"a\": 1",
            "{\"a\" 1}",
            "{\"a\": 1,}",
            "{a: 1}",
            "{\"a\": 1} x",
            "{\"a\": 1}{}",
            "{\"a\": nan}",
            "{\"a\": Nan}",
            "{\"a\": tru}",
            "{\"a\": \"unterminated}",
            "{\"a\": [1, 2}",
            "{\"a\": -}",
            "{'a': 1}",
        ] {
            assert!(parse_line(l.as_bytes()).is_err(), "{l:?} should be bad");
        }
        let deep = format!("{}{}", "{\"a\":".repeat(100), "1}".repeat(100));
        assert!(parse_line(deep.as_bytes()).is_err());
        let deep_arr = format!("{{\"a\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert!(parse_line(deep_arr.as_bytes()).is_err());
    }

    #[test]
    fn agrees_with_serde_json_on_plain_json() {
        let line = r#"{"step": 7, "loss": 0.123456789, "acc": 1e-7, "lr": -3.5E2, "big": 1.7976931348623157e308}"#;
        let v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line).unwrap();
        let ours = parse_line(line.as_bytes()).unwrap();
        for (k, x) in ours.values {
            assert_eq!(v[&k].as_f64().unwrap().to_bits(), x.to_bits(), "{k}");
        }
    }
}
