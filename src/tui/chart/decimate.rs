//! Per-render downsampling to what the pane can show: cull to the visible x window, then keep the min and
//! max of each dot column (so spikes and dips survive), with gaps for non-finite values.

use std::ops::Range;

/// Marks a gap in decimated output: the line is not joined across it.
pub fn is_break(p: [f64; 2]) -> bool {
    p[1].is_nan()
}

/// Indices of `xs` (ascending) inside `[lo, hi]`, widened by one point past each edge so the line runs
/// to the pane border instead of stopping at the last point inside.
pub fn cull(xs: &[f64], lo: f64, hi: f64) -> Range<usize> {
    let start = xs.partition_point(|&x| x < lo);
    let end = xs.partition_point(|&x| x <= hi);
    if start >= end && (start == 0 || end == xs.len()) {
        // Entirely left or right of the window: nothing crosses it.
        return start..start;
    }
    start.saturating_sub(1)..(end + 1).min(xs.len())
}

/// Indices strictly inside `[lo, hi]`, for statistics that must not see the edge points.
pub fn inside(xs: &[f64], lo: f64, hi: f64) -> Range<usize> {
    xs.partition_point(|&x| x < lo)..xs.partition_point(|&x| x <= hi)
}

/// Min/max-per-column decimation of `(xs, ys)` (xs ascending) over the window `[lo, hi]` drawn
/// `columns` dots wide. Appends to `out` (cleared first) at most two points per column, in x order,
/// plus the edge points from [`cull`]. A non-finite y ends the current run: a break marker (y = NaN)
/// is emitted so the renderer never joins across a gap.
///
/// Column `c` holds the x that round to dot `c`, the renderer's own mapping, so each bucket is exactly
/// one drawn dot column. Column ends are found by binary search, so the per-point work is only the
/// min/max scan of `ys`.
pub fn decimate_into(
    xs: &[f64],
    ys: &[f64],
    lo: f64,
    hi: f64,
    columns: usize,
    out: &mut Vec<[f64; 2]>,
) {
    out.clear();
    let n = xs.len().min(ys.len());
    let (xs, ys) = (&xs[..n], &ys[..n]);
    if columns == 0 || !(lo.is_finite() && hi.is_finite() && hi > lo) {
        return;
    }
    let outer = cull(xs, lo, hi);
    let inner = inside(xs, lo, hi);
    let scale = (columns - 1) as f64 / (hi - lo);
    let mut scan = Scan { xs, ys, out };
    // Edge points outside the window are buckets of their own.
    if outer.start < inner.start {
        scan.run(outer.start, inner.start);
    }
    // Points per x unit, to guess where each column ends: exact for evenly spaced steps, and a plain
    // binary search over the whole series would miss the cache at every probe.
    let density = if inner.len() > 1 {
        (inner.len() - 1) as f64 / (xs[inner.end - 1] - xs[inner.start])
    } else {
        0.0
    };
    let mut i = inner.start;
    while i < inner.end {
        let col = ((xs[i] - lo) * scale + 0.5).floor();
        // First x that rounds to the next column.
        let next = lo + (col + 0.5) / scale;
        let guess = i + ((next - xs[i]) * density).min(inner.len() as f64) as usize;
        let j = first_at_least(xs, i, inner.end, guess, next).max(i + 1);
        scan.run(i, j);
        i = j;
    }
    if inner.end.max(outer.start) < outer.end {
        scan.run(inner.end.max(outer.start), outer.end);
    }
    if scan.out.last().is_some_and(|p| is_break(*p)) {
        scan.out.pop();
    }
}

/// First index in `a..b` (xs ascending) whose x is at least `t`, or `b`: a galloping search outward
/// from `guess`, so it touches memory near the answer only.
fn first_at_least(xs: &[f64], a: usize, b: usize, guess: usize, t: f64) -> usize {
    let g = guess.clamp(a, b);
    if g < b && xs[g] < t {
        // Answer in (g, b]; everything before `lo` is below t.
        let (mut lo, mut step) = (g + 1, 1);
        while lo + step <= b && xs[lo + step - 1] < t {
            lo += step;
            step *= 2;
        }
        let hi = (lo + step).min(b);
        lo + xs[lo..hi].partition_point(|&x| x < t)
    } else {
        // Answer in [a, g]; `hi` is b or an index at or above t.
        let (mut hi, mut step) = (g, 1);
        while hi >= a + step && xs[hi - step] >= t {
            hi -= step;
            step *= 2;
        }
        let lo = hi.saturating_sub(step).max(a);
        lo + xs[lo..hi].partition_point(|&x| x < t)
    }
}

struct Scan<'a> {
    xs: &'a [f64],
    ys: &'a [f64],
    out: &'a mut Vec<[f64; 2]>,
}

impl Scan<'_> {
    /// Emits the min and max (in x order) of each finite run in `a..b`, with a break for each gap.
    fn run(&mut self, a: usize, b: usize) {
        let seg = &self.ys[a..b];
        if let Some((min_i, max_i)) = finite_min_max(seg) {
            // The common case, a column without gaps.
            self.flush(a + min_i, a + max_i);
            return;
        }
        let mut have = false;
        let (mut min_i, mut max_i) = (a, a);
        let (mut min_v, mut max_v) = (0.0f64, 0.0f64);
        for (i, &y) in self.ys[a..b].iter().enumerate() {
            if !y.is_finite() {
                if have {
                    self.flush(a + min_i, a + max_i);
                    have = false;
                }
                if self.out.last().is_some_and(|p| !is_break(*p)) {
                    self.out.push([self.xs[a + i], f64::NAN]);
                }
                continue;
            }
            if !have {
                have = true;
                (min_i, max_i, min_v, max_v) = (i, i, y, y);
            } else if y < min_v {
                // Strict comparisons keep the first of equal values, so flat runs stay put.
                min_v = y;
                min_i = i;
            } else if y > max_v {
                max_v = y;
                max_i = i;
            }
        }
        if have {
            self.flush(a + min_i, a + max_i);
        }
    }

    fn flush(&mut self, min_i: usize, max_i: usize) {
        let (a, b) = (min_i.min(max_i), min_i.max(max_i));
        self.out.push([self.xs[a], self.ys[a]]);
        if a != b {
            self.out.push([self.xs[b], self.ys[b]]);
        }
    }
}

/// Indices of the (first) min and max of `seg`, or None if it is empty or holds a non-finite value.
/// Values first, over independent lanes with select-style updates that the compiler vectorises (`y · 0`
/// is NaN exactly for NaN and ±inf); then one chunked search for where they occur.
fn finite_min_max(seg: &[f64]) -> Option<(usize, usize)> {
    const L: usize = 4;
    let mut lo = [f64::INFINITY; L];
    let mut hi = [f64::NEG_INFINITY; L];
    let mut bad = [0.0f64; L];
    let chunks = seg.chunks_exact(L);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..L {
            let y = c[k];
            lo[k] = if y < lo[k] { y } else { lo[k] };
            hi[k] = if y > hi[k] { y } else { hi[k] };
            bad[k] += y * 0.0;
        }
    }
    for (k, &y) in rest.iter().enumerate() {
        lo[k] = if y < lo[k] { y } else { lo[k] };
        hi[k] = if y > hi[k] { y } else { hi[k] };
        bad[k] += y * 0.0;
    }
    if seg.is_empty() || bad.iter().any(|&b| b != 0.0) {
        return None;
    }
    let lo = lo.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = hi.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (mut lo_i, mut hi_i) = (None, None);
    const C: usize = 16;
    for (ci, c) in seg.chunks(C).enumerate() {
        // Branch-free test per chunk; only a chunk holding an extreme is searched point by point.
        if !c.iter().fold(false, |hit, &y| hit | (y == lo) | (y == hi)) {
            continue;
        }
        for (j, &y) in c.iter().enumerate() {
            if lo_i.is_none() && y == lo {
                lo_i = Some(ci * C + j);
            }
            if hi_i.is_none() && y == hi {
                hi_i = Some(ci * C + j);
            }
        }
        if let (Some(a), Some(b)) = (lo_i, hi_i) {
            return Some((a, b));
        }
    }
    None
}

/// [`decimate_into`] into a fresh vector.
pub fn decimate(xs: &[f64], ys: &[f64], lo: f64, hi: f64, columns: usize) -> Vec<[f64; 2]> {
    let mut out = Vec::with_capacity(columns * 2 + 4);
    decimate_into(xs, ys, lo, hi, columns, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(n: usize) -> (Vec<f64>, Vec<f64>) {
        let xs: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let ys: Vec<f64> = xs.iter().map(|x| (x * 0.01).sin()).collect();
        (xs, ys)
    }

    #[test]
    fn keeps_spike_and_dip_and_respects_columns() {
        let (xs, mut ys) = ramp(100_000);
        ys[31_337] = 1e6;
        ys[77_777] = -1e6;
        let out = decimate(&xs, &ys, 0.0, 99_999.0, 160);
        assert!(out.len() <= 2 * 160, "{} points", out.len());
        assert!(out.len() >= 160);
        assert!(out.iter().any(|p| p == &[31_337.0, 1e6]));
        assert!(out.iter().any(|p| p == &[77_777.0, -1e6]));
        assert!(out.windows(2).all(|w| w[0][0] <= w[1][0]), "x order kept");
        assert!(!out.iter().any(|p| is_break(*p)));
    }

    #[test]
    fn fewer_points_than_columns_pass_through() {
        let xs = [0.0, 1.0, 2.0];
        let ys = [5.0, 6.0, 7.0];
        assert_eq!(
            decimate(&xs, &ys, 0.0, 2.0, 100),
            vec![[0.0, 5.0], [1.0, 6.0], [2.0, 7.0]]
        );
    }

    #[test]
    fn gaps_become_single_breaks() {
        let xs: Vec<f64> = (0..10).map(f64::from).collect();
        let mut ys = vec![1.0; 10];
        ys[0] = f64::NAN;
        ys[4] = f64::NAN;
        ys[5] = f64::INFINITY;
        ys[9] = f64::NAN;
        let out = decimate(&xs, &ys, 0.0, 9.0, 1000);
        let breaks: Vec<usize> = (0..out.len()).filter(|&i| is_break(out[i])).collect();
        // No leading or trailing break, one for the two adjacent bad values.
        assert_eq!(breaks.len(), 1);
        assert_eq!(out.len(), 7);
        assert_eq!(out[3][0], 4.0);
    }

    #[test]
    fn culls_to_window_keeping_edge_points() {
        let (xs, ys) = ramp(1000);
        let out = decimate(&xs, &ys, 100.5, 200.5, 400);
        assert_eq!(out.first().unwrap()[0], 100.0);
        assert_eq!(out.last().unwrap()[0], 201.0);
        assert_eq!(cull(&xs, 2000.0, 3000.0), 1000..1000);
        assert_eq!(cull(&xs, -10.0, -5.0), 0..0);
        assert_eq!(cull(&xs, -10.0, 0.0), 0..2);
        assert_eq!(inside(&xs, 10.0, 12.0), 10..13);
        // Degenerate windows or widths draw nothing instead of dividing by zero.
        assert!(decimate(&xs, &ys, 5.0, 5.0, 10).is_empty());
        assert!(decimate(&xs, &ys, 0.0, 10.0, 0).is_empty());
    }

    #[test]
    fn lanes_agree_with_a_plain_scan() {
        let mut r = 7u64;
        for len in [1, 3, 8, 9, 17, 64, 101] {
            let seg: Vec<f64> = (0..len)
                .map(|_| {
                    r = r
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((r >> 33) % 5) as f64
                })
                .collect();
            let first = |v: f64| seg.iter().position(|&y| y == v).unwrap();
            let lo = seg.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = seg.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            assert_eq!(
                finite_min_max(&seg),
                Some((first(lo), first(hi))),
                "{seg:?}"
            );
        }
        assert_eq!(finite_min_max(&[]), None);
        assert_eq!(finite_min_max(&[1.0; 20]), Some((0, 0)));
        let mut gap = [1.0; 20];
        gap[19] = f64::NAN;
        assert_eq!(finite_min_max(&gap), None);
        gap[19] = 1.0;
        gap[3] = f64::NEG_INFINITY;
        assert_eq!(finite_min_max(&gap), None);
    }

    #[test]
    fn galloping_search_matches_partition_point() {
        let xs: Vec<f64> = (0..200).map(|i| f64::from(i / 3)).collect();
        for t in [-1.0, 0.0, 0.5, 7.0, 33.0, 66.0, 66.5, 100.0] {
            for (a, b) in [(0, 200), (10, 50), (150, 200), (5, 5)] {
                let want = a + xs[a..b].partition_point(|&x| x < t);
                for guess in [0, a, (a + b) / 2, b, 199, 500] {
                    assert_eq!(
                        first_at_least(&xs, a, b, guess, t),
                        want,
                        "{t} {a} {b} {guess}"
                    );
                }
            }
        }
    }

    #[test]
    fn one_column_keeps_extremes_in_order() {
        let xs = [0.0, 1.0, 2.0, 3.0];
        let ys = [0.0, -3.0, 9.0, 1.0];
        assert_eq!(
            decimate(&xs, &ys, 0.0, 3.0, 1),
            vec![[1.0, -3.0], [2.0, 9.0]]
        );
    }
}
