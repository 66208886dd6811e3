//! Y range (TensorBoard's outlier-robust domain or plain min/max), nice ticks and tick labels.

/// How the y range is fitted to the visible data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RangeMode {
    /// 5th–95th percentile (TensorBoard's "ignore outliers").
    #[default]
    Robust,
    /// Every finite value fits.
    Fit,
}

impl RangeMode {
    pub fn toggled(self) -> RangeMode {
        match self {
            RangeMode::Robust => RangeMode::Fit,
            RangeMode::Fit => RangeMode::Robust,
        }
    }
}

/// Linear-interpolated quantile `p` of `scratch` (finite, non-empty), as d3.quantile computes it.
/// Reorders `scratch`; two selections instead of a sort keep it O(n).
pub fn quantile(scratch: &mut [f64], p: f64) -> f64 {
    let n = scratch.len();
    let h = (n - 1) as f64 * p.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let (_, &mut a, right) = scratch.select_nth_unstable_by(lo, f64::total_cmp);
    let frac = h - lo as f64;
    if frac == 0.0 || right.is_empty() {
        return a;
    }
    // Everything right of `lo` is >= a, so the next order statistic is their minimum.
    let b = right.iter().copied().fold(f64::INFINITY, f64::min);
    a + (b - a) * frac
}

/// Min and max of the finite values, or None if there are none. Independent lanes with select-style
/// updates vectorise; a non-finite value fails both comparisons and is skipped.
pub fn finite_min_max(values: &[f64]) -> Option<(f64, f64)> {
    const L: usize = 4;
    let mut lo = [f64::INFINITY; L];
    let mut hi = [f64::NEG_INFINITY; L];
    let chunks = values.chunks_exact(L);
    let rest = chunks.remainder();
    let mut lane = |k: usize, y: f64| {
        let ok = y.abs() < f64::INFINITY;
        lo[k] = if ok && y < lo[k] { y } else { lo[k] };
        hi[k] = if ok && y > hi[k] { y } else { hi[k] };
    };
    for c in chunks {
        for (k, &y) in c.iter().enumerate() {
            lane(k, y);
        }
    }
    for (k, &y) in rest.iter().enumerate() {
        lane(k, y);
    }
    let lo = lo.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = hi.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo <= hi).then_some((lo, hi))
}

/// The data bounds `(a, b)` of `scratch` (finite values) before padding: percentiles or min/max.
pub fn data_bounds(scratch: &mut [f64], mode: RangeMode) -> Option<(f64, f64)> {
    if scratch.is_empty() {
        return None;
    }
    Some(match mode {
        RangeMode::Robust => {
            let a = quantile(scratch, 0.05);
            let b = quantile(scratch, 0.95);
            (a, b)
        }
        RangeMode::Fit => scratch
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            }),
    })
}

/// TensorBoard's padding around `[a, b]`: 20 % of the span, `|a|·1.1 + 1.1` for a flat line, and the
/// lower bound pulled to `−0.1·b` when that brings zero into view at less than double the span.
/// `zero_intercept` is off for log scale, where zero is not a value.
pub fn padded(a: f64, b: f64, zero_intercept: bool) -> (f64, f64) {
    let span = b - a;
    let pad = if span == 0.0 {
        a.abs() * 1.1 + 1.1
    } else {
        span * 0.2
    };
    let lower = if zero_intercept && a >= 0.0 && a < span {
        -0.1 * b
    } else {
        a - pad
    };
    (lower, b + pad)
}

/// A 1/2/5 × 10^k step giving about `target` intervals over `span`.
pub fn nice_step(span: f64, target: usize) -> f64 {
    let raw = span / target.max(1) as f64;
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let m = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

/// Step for time axes: seconds, minutes, hours and days at human multiples.
pub fn time_step(span: f64, target: usize) -> f64 {
    const STEPS: [f64; 19] = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
        10800.0, 21600.0, 43200.0, 86400.0, 172800.0,
    ];
    let raw = span / target.max(1) as f64;
    if raw > 172800.0 {
        return nice_step(span / 86400.0, target) * 86400.0;
    }
    STEPS.iter().copied().find(|&s| s >= raw).unwrap_or(1.0)
}

/// Widens `[lo, hi]` outward to multiples of the step (d3's `nice`). Returns `(lo, hi, step)`.
pub fn nice_domain(lo: f64, hi: f64, target: usize) -> (f64, f64, f64) {
    let step = nice_step(hi - lo, target);
    let (nlo, nhi) = ((lo / step).floor() * step, (hi / step).ceil() * step);
    if nhi > nlo {
        (nlo, nhi, step)
    } else {
        (lo, hi, step)
    }
}

/// Log-scale domain (in log10 units): whole decades when it spans a few, else a plain nice domain.
pub fn nice_log_domain(lo: f64, hi: f64, target: usize) -> (f64, f64, f64) {
    if hi - lo >= 2.0 {
        let step = nice_step(hi - lo, target).round().max(1.0);
        ((lo / step).floor() * step, (hi / step).ceil() * step, step)
    } else {
        nice_domain(lo, hi, target)
    }
}

/// Log-scale tick positions (log10 units) in `[lo, hi]`: decades when there are at least two, else
/// 1-2-5 (or 1…9) multiples, so labels read as round original values.
pub fn log_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite() && hi >= lo) || hi - lo > 600.0 {
        return Vec::new();
    }
    let eps = 1e-9;
    let (first, last) = ((lo - eps).ceil() as i64, (hi + eps).floor() as i64);
    if last > first {
        let count = (last - first + 1) as usize;
        let stride = count.div_ceil(target.max(1)).max(1);
        return (first..=last)
            .filter(|k| k.rem_euclid(stride as i64) == 0)
            .map(|k| k as f64)
            .collect();
    }
    let within = |mantissas: &[f64]| -> Vec<f64> {
        ((lo.floor() as i64)..=(hi.ceil() as i64))
            .flat_map(|k| mantissas.iter().map(move |m| k as f64 + m.log10()))
            .filter(|&t| t >= lo - eps && t <= hi + eps)
            .collect()
    };
    let coarse = within(&[1.0, 2.0, 5.0]);
    if coarse.len() >= 2 {
        return coarse;
    }
    within(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
}

/// Multiples of `step` within `[lo, hi]` (with a little tolerance for float error).
pub fn ticks(lo: f64, hi: f64, step: f64) -> Vec<f64> {
    if !(step > 0.0 && lo.is_finite() && hi.is_finite() && hi >= lo) {
        return Vec::new();
    }
    let eps = step * 1e-9;
    let first = ((lo - eps) / step).ceil() as i64;
    let last = ((hi + eps) / step).floor() as i64;
    if last < first || last - first > 1000 {
        return Vec::new();
    }
    (first..=last).map(|k| k as f64 * step).collect()
}

fn trim_zeros(s: String) -> String {
    if !s.contains('.') {
        return s;
    }
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A tick label: as many decimals as `step` needs, k/M/G suffixes for large values, scientific for
/// tiny steps.
pub fn format_tick(v: f64, step: f64) -> String {
    let v = if v.abs() < step * 1e-6 { 0.0 } else { v };
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if step < 1e-4 || a >= 1e15 {
        return format_sci(v, 2);
    }
    for (scale, suffix) in [(1e9, "G"), (1e6, "M"), (1e3, "k")] {
        if a >= scale * 10.0 || (a >= scale && step >= scale / 10.0) {
            return format!("{}{suffix}", fixed(v / scale, step / scale));
        }
    }
    fixed(v, step)
}

/// `v` with the decimals `step` needs.
fn fixed(v: f64, step: f64) -> String {
    let decimals = (-(step.log10() + 1e-9).floor()).clamp(0.0, 12.0) as usize;
    trim_zeros(format!("{v:.decimals$}"))
}

fn format_sci(v: f64, digits: usize) -> String {
    let s = format!("{v:.digits$e}");
    match s.split_once('e') {
        Some((m, e)) => format!("{}e{e}", trim_zeros(m.to_string())),
        None => s,
    }
}

/// A value for the legend and readout: four significant digits, scientific outside [1e-3, 1e5).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        return format_sci(v, 3);
    }
    let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
    trim_zeros(format!("{v:.decimals$}"))
}

/// A duration as `45s`, `12m05s`, `1h02m`, `3d04h`, dropping a zero trailing unit (`2h`).
pub fn format_duration(secs: f64) -> String {
    if !secs.is_finite() {
        return format_value(secs);
    }
    let sign = if secs < 0.0 { "-" } else { "" };
    let s = secs.abs().round() as u64;
    let (d, h, m, sec) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    let body = if s < 60 {
        format!("{sec}s")
    } else if s < 3600 {
        pair(m, "m", sec, "s")
    } else if s < 86400 {
        pair(s / 3600, "h", m, "m")
    } else {
        pair(d, "d", h, "h")
    };
    format!("{sign}{body}")
}

fn pair(big: u64, big_unit: &str, small: u64, small_unit: &str) -> String {
    if small == 0 {
        format!("{big}{big_unit}")
    } else {
        format!("{big}{big_unit}{small:02}{small_unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robust_range_ignores_single_outlier() {
        let mut v: Vec<f64> = (0..1000).map(|i| 1.0 + (i % 10) as f64 * 0.1).collect();
        v[500] = 1e6;
        let (a, b) = data_bounds(&mut v.clone(), RangeMode::Robust).unwrap();
        assert!((a - 1.0).abs() < 1e-9 && (b - 1.9).abs() < 1e-9, "{a} {b}");
        let (lo, hi) = padded(a, b, true);
        assert!(hi < 3.0 && lo > 0.0, "{lo} {hi}");
        let (_, b) = data_bounds(&mut v, RangeMode::Fit).unwrap();
        assert_eq!(b, 1e6);
        v[3] = f64::NAN;
        v[7] = f64::INFINITY;
        v[9] = -5.0;
        assert_eq!(finite_min_max(&v), Some((-5.0, 1e6)));
        assert_eq!(finite_min_max(&[f64::NAN, f64::NEG_INFINITY]), None);
        assert_eq!(finite_min_max(&[]), None);
    }

    #[test]
    fn quantile_interpolates_like_d3() {
        let mut v = vec![4.0, 1.0, 3.0, 2.0, 5.0];
        assert_eq!(quantile(&mut v, 0.5), 3.0);
        assert_eq!(quantile(&mut v, 0.0), 1.0);
        assert_eq!(quantile(&mut v, 1.0), 5.0);
        // h = 4 · 0.3 = 1.2 → 2 + 0.2 · (3 − 2).
        assert!((quantile(&mut v, 0.3) - 2.2).abs() < 1e-12);
        assert_eq!(quantile(&mut [7.0], 0.95), 7.0);
    }

    #[test]
    fn padding_rules() {
        let near = |(lo, hi): (f64, f64), (a, b): (f64, f64)| {
            assert!(
                (lo - a).abs() < 1e-12 && (hi - b).abs() < 1e-12,
                "{lo} {hi}"
            );
        };
        // Flat line: |a|·1.1 + 1.1 either side.
        near(padded(2.0, 2.0, true), (-1.3, 5.3));
        // Small positive curve: zero comes into view.
        near(padded(0.5, 2.0, true), (-0.2, 2.3));
        // Far from zero: plain 20 % padding.
        near(padded(10.0, 12.0, true), (9.6, 12.4));
        near(padded(0.5, 2.0, false), (0.2, 2.3));
    }

    #[test]
    fn nice_ticks_and_labels() {
        assert_eq!(nice_domain(0.13, 0.87, 5), (0.0, 1.0, 0.2));
        assert_eq!(ticks(0.0, 1.0, 0.25), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(format_tick(0.2 * 3.0, 0.2), "0.6");
        assert_eq!(format_tick(25_000.0, 5_000.0), "25k");
        assert_eq!(format_tick(1_500_000.0, 500_000.0), "1.5M");
        assert_eq!(format_tick(3.0, 1.0), "3");
        assert_eq!(format_tick(2e-5, 1e-5), "2e-5");
        assert_eq!(format_value(0.123456), "0.1235");
        assert_eq!(format_value(1234.5678), "1235");
        assert_eq!(format_value(2.5e-7), "2.5e-7");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(time_step(7200.0, 4), 1800.0);
        assert_eq!(log_ticks(-3.2, 1.5, 8), vec![-3.0, -2.0, -1.0, 0.0, 1.0]);
        assert_eq!(log_ticks(-6.0, 6.0, 4), vec![-4.0, 0.0, 4.0]);
        let labels: Vec<String> = log_ticks(-0.5, 0.5, 4)
            .iter()
            .map(|t| format_value(10f64.powf(*t)))
            .collect();
        assert_eq!(labels, ["0.5", "1", "2"]);
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(45.0), "45s");
        assert_eq!(format_duration(725.0), "12m05s");
        assert_eq!(format_duration(3720.0), "1h02m");
        assert_eq!(format_duration(7200.0), "2h");
        assert_eq!(format_duration(100_000.0), "1d03h");
        assert_eq!(format_duration(-60.0), "-1m");
    }
}
