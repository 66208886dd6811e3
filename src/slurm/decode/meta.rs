//! Works out which JSON dialect a reply is in from its `meta` block, whose own shape changed:
//! `meta.plugin.type` = `openapi/v0.0.38` (≤22.05), `meta.plugins.data_parser` (23.02 CLI),
//! `meta.plugin.data_parser` = `data_parser/v0.0.4x` (23.02 REST, ≥23.11), and the release under
//! `meta.Slurm.version` (integers, ≤23.02) or `meta.slurm.version` (strings, ≥23.11).

use serde::Serialize;
use serde_json::Value;

use super::value::{Num, at, str_at};

/// The newest data_parser whose shapes the decoders know (Slurm 26.05). Newer ones decode with the
/// newest rules, tolerantly.
pub const NEWEST_KNOWN_PARSER: u8 = 45;
pub const OLDEST_KNOWN_PARSER: u8 = 37;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Dialect {
    /// NN of `v0.0.NN` (37, 38 for openapi/dbv; 39+ for data_parser). `None` when `meta` said nothing.
    pub parser: Option<u8>,
    /// Where `parser` came from: the plugin string, or `release` when only the version was known.
    pub source: String,
    /// `22.05.8`.
    pub release: Option<String>,
}

impl Dialect {
    pub fn from_reply(root: &Value) -> Dialect {
        let meta = root.get("meta").unwrap_or(&Value::Null);
        let release = release_of(meta);
        let named = [
            &["plugins", "data_parser"][..],
            &["plugin", "data_parser"][..],
            &["plugin", "type"][..],
        ]
        .iter()
        .find_map(|path| str_at(meta, path).and_then(|s| parser_in(&s).map(|p| (p, s))));
        match named {
            Some((parser, source)) => Dialect {
                parser: Some(parser),
                source,
                release,
            },
            None => Dialect {
                parser: release.as_deref().and_then(default_parser_for_release),
                source: "release".into(),
                release,
            },
        }
    }

    /// squeue (≤ v0.0.38) and sacct (≥ v0.0.41, in `stdout`) report `%` patterns rather than paths.
    pub fn squeue_paths_are_raw(&self) -> Option<bool> {
        self.parser.map(|p| p <= 38 || p >= 43)
    }

    /// Before v0.0.40 sacct's `exit_code` says SUCCESS/0 for every normal exit, non-zero included.
    pub fn sacct_exit_code_unreliable(&self) -> Option<bool> {
        self.parser.map(|p| p <= 39)
    }
}

/// `openapi/dbv0.0.38`, `data_parser/v0.0.42`, `v0.0.40` → 38, 42, 40.
fn parser_in(s: &str) -> Option<u8> {
    let i = s.rfind("v0.0.")?;
    let digits: String = s[i + 5..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn release_of(meta: &Value) -> Option<String> {
    for key in ["slurm", "Slurm"] {
        let Some(slurm) = meta.get(key) else { continue };
        if let Some(r) = str_at(slurm, &["release"]) {
            return Some(r);
        }
        let part = |k: &str| Num::of(at(slurm, &["version", k])).u64();
        if let (Some(major), Some(minor)) = (part("major"), part("minor")) {
            let micro = part("micro").unwrap_or(0);
            return Some(format!("{major}.{minor:02}.{micro}"));
        }
    }
    None
}

/// The parser a release's CLI uses by default (reference table, section 1).
fn default_parser_for_release(release: &str) -> Option<u8> {
    let mut it = release.split('.').map(|p| p.trim().parse::<u32>().ok());
    let (major, minor) = (it.next()??, it.next()??);
    let micro = it.next().flatten().unwrap_or(0);
    Some(match (major, minor) {
        (..=21, _) => 37,
        (22, _) if micro <= 2 => 37,
        (22, _) => 38,
        (23, ..=2) => 39,
        (23, _) => 40,
        (24, ..=5) => 41,
        (24, _) => 42,
        (25, ..=5) => 43,
        (25, _) => 44,
        _ => NEWEST_KNOWN_PARSER,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_meta_layout() {
        let v38 = json!({"meta": {"plugin": {"type": "openapi/dbv0.0.38", "name": "Slurm OpenAPI DB v0.0.38"},
                         "Slurm": {"version": {"major": 22, "micro": 8, "minor": 5}, "release": "22.05.8"}}});
        let d = Dialect::from_reply(&v38);
        assert_eq!(
            (d.parser, d.release.as_deref()),
            (Some(38), Some("22.05.8"))
        );
        let cli2302 = json!({"meta": {"plugins": {"data_parser": "data_parser/v0.0.39", "accounting_storage": "x"},
                             "Slurm": {"version": {"major": 23, "micro": 5, "minor": 2}}}});
        let d = Dialect::from_reply(&cli2302);
        assert_eq!(
            (d.parser, d.release.as_deref()),
            (Some(39), Some("23.02.5"))
        );
        let v42 = json!({"meta": {"plugin": {"type": "", "name": "", "data_parser": "data_parser/v0.0.42"},
                         "slurm": {"version": {"major": "24", "micro": "5", "minor": "11"}, "release": "24.11.5"}}});
        assert_eq!(Dialect::from_reply(&v42).parser, Some(42));
        let only_version =
            json!({"meta": {"slurm": {"version": {"major": "25", "minor": "05", "micro": "1"}}}});
        let d = Dialect::from_reply(&only_version);
        assert_eq!((d.parser, d.source.as_str()), (Some(43), "release"));
        assert_eq!(Dialect::from_reply(&json!({"jobs": []})).parser, None);
        assert_eq!(Dialect::from_reply(&json!({"meta": "weird"})).parser, None);
    }

    #[test]
    fn release_defaults() {
        assert_eq!(default_parser_for_release("21.08.8"), Some(37));
        assert_eq!(default_parser_for_release("22.05.2"), Some(37));
        assert_eq!(default_parser_for_release("22.05.8"), Some(38));
        assert_eq!(default_parser_for_release("23.02.7"), Some(39));
        assert_eq!(default_parser_for_release("23.11.1"), Some(40));
        assert_eq!(default_parser_for_release("24.05.3"), Some(41));
        assert_eq!(default_parser_for_release("24.11.5"), Some(42));
        assert_eq!(default_parser_for_release("25.05.0"), Some(43));
        assert_eq!(default_parser_for_release("25.11.6"), Some(44));
        assert_eq!(default_parser_for_release("26.05.0"), Some(45));
        assert_eq!(default_parser_for_release("garbage"), None);
    }
}
