//! Durations and memory sizes as researchers write them: humantime (`1h30m`) or Slurm clock forms
//! (`01:30:00`, `2-12`), and Slurm-style sizes (`16G`, a bare number meaning MiB).

use std::time::Duration;

/// Parses `2h`, `90s`, `1h 30m`, or Slurm's `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`.
/// A bare number is refused: Slurm reads it as minutes, most people as seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!("`{t}` has no unit, which is ambiguous"));
    }
    let looks_like_clock = t.contains(':')
        || t.split_once('-')
            .is_some_and(|(d, _)| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
    if looks_like_clock {
        return parse_clock(t).ok_or_else(|| format!("`{t}` is not a valid duration"));
    }
    humantime::parse_duration(t).map_err(|e| format!("`{t}` is not a valid duration ({e})"))
}

fn parse_clock(t: &str) -> Option<Duration> {
    let field = |f: &str| -> Option<u64> {
        if f.is_empty() || !f.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        f.parse().ok()
    };
    let (days, rest) = match t.split_once('-') {
        Some((d, rest)) => (Some(field(d)?), rest),
        None => (None, t),
    };
    let parts: Vec<u64> = rest.split(':').map(field).collect::<Option<_>>()?;
    // Only the leading field may exceed its usual range (`90:00` is ninety minutes).
    let secs = match (days, parts.as_slice()) {
        (None, &[m, s]) if s < 60 => m * 60 + s,
        (None, &[h, m, s]) if m < 60 && s < 60 => h * 3600 + m * 60 + s,
        (Some(d), &[h]) if h < 24 => d * 86400 + h * 3600,
        (Some(d), &[h, m]) if h < 24 && m < 60 => d * 86400 + h * 3600 + m * 60,
        (Some(d), &[h, m, s]) if h < 24 && m < 60 && s < 60 => d * 86400 + h * 3600 + m * 60 + s,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

/// Parses a memory size into MiB, rounding up: `16G`, `16GB`, `16GiB`, `512M`, `1T`, `500K`, `1.5g`.
/// Units are binary (as Slurm reads them); a bare number is MiB, Slurm's default.
pub fn parse_size_mb(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || format!("`{t}` is not a valid size");
    if num.is_empty() || num.matches('.').count() > 1 {
        return Err(bad());
    }
    let value: f64 = num.parse().map_err(|_| bad())?;
    let per_mib = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "m" | "mb" | "mib" => 1.0,
        "k" | "kb" | "kib" => 1.0 / 1024.0,
        "g" | "gb" | "gib" => 1024.0,
        "t" | "tb" | "tib" => 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "`{t}` is not a valid size (unknown unit `{}`)",
                unit.trim()
            ));
        }
    };
    let mib = value * per_mib;
    if !mib.is_finite() || mib > 1e15 {
        return Err(format!("`{t}` is too large"));
    }
    // The epsilon keeps float noise (e.g. 0.1 * 1024) from rounding an exact value up by one.
    Ok((mib - 1e-9).ceil().max(0.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> u64 {
        parse_duration(s).unwrap().as_secs()
    }

    #[test]
    fn humantime_forms() {
        assert_eq!(secs("2h"), 7200);
        assert_eq!(secs("90s"), 90);
        assert_eq!(secs("1h30m"), 5400);
        assert_eq!(secs("1h 30m"), 5400);
        assert_eq!(
            parse_duration("1500ms").unwrap(),
            Duration::from_millis(1500)
        );
    }

    #[test]
    fn slurm_clock_forms() {
        assert_eq!(secs("05:30"), 330);
        assert_eq!(secs("90:00"), 5400);
        assert_eq!(secs("01:30:00"), 5400);
        assert_eq!(secs("2-12"), 2 * 86400 + 12 * 3600);
        assert_eq!(secs("1-02:03"), 86400 + 2 * 3600 + 3 * 60);
        assert_eq!(secs("1-02:03:04"), 86400 + 2 * 3600 + 3 * 60 + 4);
    }

    #[test]
    fn bad_durations() {
        assert!(parse_duration("90").unwrap_err().contains("no unit"));
        assert!(parse_duration("1.5").unwrap_err().contains("no unit"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("01:75:00").is_err());
        assert!(parse_duration("1-25").is_err());
        assert!(parse_duration("1:2:3:4").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-5s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size_mb("16G"), Ok(16384));
        assert_eq!(parse_size_mb("16GB"), Ok(16384));
        assert_eq!(parse_size_mb("16GiB"), Ok(16384));
        assert_eq!(parse_size_mb("16g"), Ok(16384));
        assert_eq!(parse_size_mb("512M"), Ok(512));
        assert_eq!(parse_size_mb("1T"), Ok(1024 * 1024));
        assert_eq!(parse_size_mb("500K"), Ok(1));
        assert_eq!(parse_size_mb("1.5G"), Ok(1536));
        assert_eq!(parse_size_mb("0.1G"), Ok(103));
        assert_eq!(parse_size_mb("4096"), Ok(4096));
        assert_eq!(parse_size_mb(" 2 gb "), Ok(2048));
    }

    #[test]
    fn bad_sizes() {
        for s in ["", "G", "16X", "1.2.3G", "-1G", "lots", "1e99T"] {
            assert!(parse_size_mb(s).is_err(), "{s:?} should fail");
        }
    }
}
