//! Scalar values as Slurm's text tools print them: durations, memory sizes, local timestamps, TRES
//! lists, `exit:signal` pairs, and the many spellings of "nothing".

use chrono::{Local, NaiveDateTime, TimeZone};

/// `None` for every way the text tools say "no value".
pub fn present(s: &str) -> Option<&str> {
    let t = s.trim();
    match t {
        "" | "(null)" | "N/A" | "n/a" | "None" | "NONE" | "none" | "Unknown" | "None assigned"
        | "(None)" | "INVALID" => None,
        _ => Some(t),
    }
}

/// Seconds from `[D-]HH:MM:SS`, `MM:SS`, `MM:SS.mmm` (sacct TotalCPU), `D-HH[:MM]`, or bare minutes.
/// `UNLIMITED`, `INVALID`, `Partition_Limit`, `Unknown` and `None` have no value.
pub fn duration_f64(s: &str) -> Option<f64> {
    let t = present(s)?;
    let (days, rest) = match t.split_once('-') {
        Some((d, r)) => (d.parse::<u64>().ok()?, r),
        None => (0, t),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let int = |p: &str| p.parse::<u64>().ok();
    let secs = |p: &str| p.parse::<f64>().ok().filter(|x| x.is_finite() && *x >= 0.0);
    let with_day = t.contains('-');
    let hms: f64 = match (parts.as_slice(), with_day) {
        ([h], true) => (int(h)? * 3600) as f64,
        ([h, m], true) => (int(h)? * 3600 + int(m)? * 60) as f64,
        ([m], false) => (int(m)? * 60) as f64,
        ([m, s], false) => (int(m)? * 60) as f64 + secs(s)?,
        ([h, m, s], _) => (int(h)? * 3600 + int(m)? * 60) as f64 + secs(s)?,
        _ => return None,
    };
    Some(days as f64 * 86400.0 + hms)
}

pub fn duration(s: &str) -> Option<u64> {
    duration_f64(s).map(|x| x as u64)
}

/// A size in MiB: `500M`, `1.50G`, `229376` (bare numbers use `bare_unit`), and the old `4000Mc` /
/// `4000Mn` ReqMem spellings (per CPU / per node).
pub fn size_mb(s: &str, bare_unit: char) -> Option<f64> {
    let t = present(s)?.trim_end_matches(['c', 'n']);
    let (num, unit) = match t.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_uppercase()),
        _ => (t, bare_unit),
    };
    let x: f64 = num
        .parse()
        .ok()
        .filter(|x: &f64| x.is_finite() && *x >= 0.0)?;
    let mb = match unit {
        'B' => x / 1048576.0,
        'K' => x / 1024.0,
        'M' => x,
        'G' => x * 1024.0,
        'T' => x * 1048576.0,
        'P' => x * 1073741824.0,
        _ => return None,
    };
    Some(mb)
}

/// A local wall-clock time (`2026-11-27T00:15:13`) as unix seconds.
pub fn local_time(s: &str) -> Option<i64> {
    let naive = NaiveDateTime::parse_from_str(present(s)?, "%Y-%m-%dT%H:%M:%S").ok()?;
    Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.timestamp())
}

/// `3:0` → (exit 3, no signal); `0:9` → (exit 0, signal 9).
pub fn exit_pair(s: &str) -> (Option<i32>, Option<i32>) {
    let Some((code, sig)) = present(s).and_then(|t| t.split_once(':')) else {
        return (None, None);
    };
    let sig = sig.trim().parse::<i32>().ok().filter(|s| *s != 0);
    (code.trim().parse().ok(), sig)
}

/// `key=value` out of a TRES list like `cpu=1,mem=500M,node=1,gres/gpu=2`.
pub fn tres<'a>(list: &'a str, key: &str) -> Option<&'a str> {
    list.split(',')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
}

/// GPUs in a TRES list: `gres/gpu=N`, else the sum of typed `gres/gpu:a100=N`.
pub fn gpus_in_tres(list: &str) -> Option<u32> {
    if let Some(n) = tres(list, "gres/gpu").and_then(|v| v.parse().ok()) {
        return Some(n);
    }
    let typed: Vec<u32> = list
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| k.trim().starts_with("gres/gpu:"))
        .filter_map(|(_, v)| v.trim().parse().ok())
        .collect();
    (!typed.is_empty()).then(|| typed.iter().sum())
}

/// GPUs in a GRES spec like `gpu:a100:4(S:0-1),gpu:2` or `gres:gpu:2` or `gres/gpu=1`.
pub fn gpus_in_gres(spec: &str) -> Option<u32> {
    let mut total = None;
    for item in split_outside_parens(present(spec)?) {
        let item = item.split('(').next().unwrap_or("").trim();
        let item = item
            .strip_prefix("gres:")
            .or_else(|| item.strip_prefix("gres/"))
            .unwrap_or(item);
        if !item.starts_with("gpu") {
            continue;
        }
        let count = item
            .rsplit([':', '='])
            .next()
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(1);
        total = Some(total.unwrap_or(0) + count);
    }
    total
}

/// Splits on commas that are not inside `( )`, since `gpu:4(IDX:0,2)` has commas of its own.
fn split_outside_parens(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth <= 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("1:00"), Some(60));
        assert_eq!(duration("00:01:00"), Some(60));
        assert_eq!(duration("365-00:00:00"), Some(365 * 86400));
        assert_eq!(duration("2-00:00:00"), Some(2 * 86400));
        assert_eq!(duration("1-02"), Some(86400 + 7200));
        assert_eq!(duration("1-02:30"), Some(86400 + 7200 + 1800));
        assert_eq!(duration("45"), Some(45 * 60));
        assert_eq!(duration_f64("00:00.005"), Some(0.005));
        assert_eq!(duration_f64("01:02.500"), Some(62.5));
        for none in [
            "UNLIMITED",
            "INVALID",
            "Partition_Limit",
            "Unknown",
            "None",
            "N/A",
            "",
            "1:2:3:4",
            "x-1",
            "-5",
        ] {
            assert_eq!(duration(none), None, "{none}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(size_mb("500M", 'M'), Some(500.0));
        assert_eq!(size_mb("1.50G", 'M'), Some(1536.0));
        assert_eq!(size_mb("229376", 'B'), Some(0.21875));
        assert_eq!(size_mb("4000Mc", 'M'), Some(4000.0));
        assert_eq!(size_mb("2048K", 'B'), Some(2.0));
        assert_eq!(size_mb("12Q", 'M'), None);
        assert_eq!(size_mb("", 'M'), None);
        assert_eq!(size_mb("é", 'M'), None);
    }

    #[test]
    fn exits_tres_gres() {
        assert_eq!(exit_pair("3:0"), (Some(3), None));
        assert_eq!(exit_pair("0:125"), (Some(0), Some(125)));
        assert_eq!(exit_pair(""), (None, None));
        let t = "cpu=2,mem=64G,node=1,billing=2,gres/gpu=2,gres/gpu:a100=2";
        assert_eq!(tres(t, "mem"), Some("64G"));
        assert_eq!(gpus_in_tres(t), Some(2));
        assert_eq!(gpus_in_tres("gres/gpu:a100=2,gres/gpu:v100=1"), Some(3));
        assert_eq!(gpus_in_tres("cpu=1"), None);
        assert_eq!(gpus_in_gres("gpu:a100:4(S:0-1),gpu:v100:2"), Some(6));
        assert_eq!(gpus_in_gres("gpu:a100:2(IDX:0,2)"), Some(2));
        assert_eq!(gpus_in_gres("gres:gpu:2"), Some(2));
        assert_eq!(gpus_in_gres("gres/gpu=1"), Some(1));
        assert_eq!(gpus_in_gres("(null)"), None);
        assert_eq!(gpus_in_gres("craynetwork:4"), None);
    }

    #[test]
    fn local_times() {
        let t = local_time("2026-11-27T00:15:13").unwrap();
        let naive =
            NaiveDateTime::parse_from_str("2026-11-27T00:15:13", "%Y-%m-%dT%H:%M:%S").unwrap();
        assert_eq!(
            Some(t),
            Local
                .from_local_datetime(&naive)
                .earliest()
                .map(|d| d.timestamp())
        );
        assert_eq!(local_time("Unknown"), None);
        assert_eq!(local_time("NONE"), None);
        assert_eq!(local_time("2026-13-40T99:00:00"), None);
    }
}
