//! Series data and the transforms that run once per (data version, settings), never per frame: x-axis
//! choice, smoothing (TensorBoard EMA, W&B TWEMA) and log-y. The result is a [`PreparedSeries`] the app
//! keeps across frames.

/// One logged value. `value` may be NaN or ±inf (a diverged step); those draw as gaps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub step: f64,
    /// Wall-clock seconds since the Unix epoch.
    pub time: Option<f64>,
    pub epoch: Option<f64>,
    pub value: f64,
}

impl From<&crate::index::Point> for Point {
    fn from(p: &crate::index::Point) -> Self {
        Point {
            step: p.x,
            time: p.time,
            epoch: p.epoch,
            value: p.value,
        }
    }
}

/// One curve: a run's metric, in logging order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<Point>,
}

/// What the x axis shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum XMode {
    #[default]
    Step,
    Epoch,
    /// Seconds since this series' first timed point (TensorBoard's "relative").
    Relative,
    /// Unix seconds, labelled as local clock time.
    Wall,
}

impl XMode {
    pub const ALL: [XMode; 4] = [XMode::Step, XMode::Epoch, XMode::Relative, XMode::Wall];

    pub fn name(self) -> &'static str {
        match self {
            XMode::Step => "step",
            XMode::Epoch => "epoch",
            XMode::Relative => "relative",
            XMode::Wall => "wall",
        }
    }

    /// The next mode, for a cycling key.
    pub fn next(self) -> XMode {
        let i = XMode::ALL.iter().position(|m| *m == self).unwrap_or(0);
        XMode::ALL[(i + 1) % XMode::ALL.len()]
    }

    /// The x of `p`, or None when the point lacks this axis. `t0` is the series' first time.
    fn x_of(self, p: &Point, t0: f64) -> Option<f64> {
        let x = match self {
            XMode::Step => Some(p.step),
            XMode::Epoch => p.epoch,
            XMode::Relative => p.time.map(|t| t - t0),
            XMode::Wall => p.time,
        }?;
        x.is_finite().then_some(x)
    }
}

/// TensorBoard's default smoothing weight.
pub const DEFAULT_SMOOTHING: f64 = 0.6;

/// W&B does not publish its `VIEWPORT_SCALE`; with 1000, a series of 1000 evenly spaced points smooths
/// like a plain EMA of weight `sw`, whatever the x units.
pub const TWEMA_VIEWPORT_SCALE: f64 = 1000.0;

/// Which smoother runs before decimation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Smoothing {
    None,
    /// TensorBoard's debiased EMA; weight in [0, 1].
    Ema(f64),
    /// W&B's time-weighted EMA; weight in [0, 1].
    Twema(f64),
}

impl Default for Smoothing {
    fn default() -> Self {
        Smoothing::Ema(DEFAULT_SMOOTHING)
    }
}

/// Clamps to [0, 1]; a non-finite weight means no smoothing, as in TensorBoard.
pub fn clamp_weight(weight: f64) -> f64 {
    if weight.is_finite() {
        weight.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// TensorBoard's check (issue #786): a constant line is returned as is so float drift cannot bend it.
/// NaN != NaN, so a series with gaps is never constant, exactly as there.
fn is_constant(values: &[f64]) -> bool {
    values
        .first()
        .is_some_and(|&v0| values.iter().all(|&v| v == v0))
}

/// TensorBoard's debiased EMA (`classicSmoothing`). Non-finite values pass through and neither update
/// the average nor count toward the debias; weight 1 yields 0 for every finite point, as it does there.
pub fn smooth_ema(values: &[f64], weight: f64) -> Vec<f64> {
    let mut out = Vec::new();
    smooth_ema_into(values, weight, &mut out);
    out
}

/// [`smooth_ema`] into a reused buffer.
pub fn smooth_ema_into(values: &[f64], weight: f64, out: &mut Vec<f64>) {
    // Written in place over a copy: non-finite values are already where they belong, and the loop has
    // no push (capacity checks kept the running average out of registers).
    out.clear();
    out.extend_from_slice(values);
    if is_constant(values) {
        return;
    }
    let w = clamp_weight(weight);
    let mut last = 0.0;
    // w^n kept as a running product: powi per point would cost more than the EMA itself.
    let mut w_pow = 1.0;
    for v in out.iter_mut() {
        let y = *v;
        if !y.is_finite() {
            continue;
        }
        last = last * w + (1.0 - w) * y;
        w_pow *= w;
        let debias = if w == 1.0 { 1.0 } else { 1.0 - w_pow };
        // Past the first few dozen points debias is exactly 1: skip the division.
        *v = if debias == 1.0 { last } else { last / debias };
    }
}

/// W&B's time-weighted EMA: the decay per point follows the x gap, so dense and sparse series smooth
/// alike. `xs` must be ascending. Non-finite values (or x) pass through as in [`smooth_ema`].
pub fn smooth_twema(xs: &[f64], ys: &[f64], weight: f64) -> Vec<f64> {
    let mut out = Vec::new();
    smooth_twema_into(xs, ys, weight, &mut out);
    out
}

/// [`smooth_twema`] into a reused buffer.
pub fn smooth_twema_into(xs: &[f64], ys: &[f64], weight: f64, out: &mut Vec<f64>) {
    let n = xs.len().min(ys.len());
    let ys = &ys[..n];
    // In place over a copy, as in `smooth_ema_into`.
    out.clear();
    out.extend_from_slice(ys);
    if is_constant(ys) {
        return;
    }
    let sw = clamp_weight(weight).sqrt().min(0.999);
    let finite = |i: &usize| xs[*i].is_finite() && ys[*i].is_finite();
    let first = (0..n).find(finite).map(|i| xs[i]);
    let last = (0..n).rev().find(finite).map(|i| xs[i]);
    let range = match (first, last) {
        (Some(a), Some(b)) => b - a,
        _ => 0.0,
    };
    let scale = if range > 0.0 {
        TWEMA_VIEWPORT_SCALE / range
    } else {
        0.0
    };
    let (mut last_y, mut debias) = (0.0, 0.0);
    let mut prev_x: Option<f64> = None;
    // Evenly spaced data repeats the same gap, so the powf is usually skipped.
    let (mut cached_dx, mut cached_a) = (0.0, 1.0);
    for (&x, v) in xs[..n].iter().zip(out.iter_mut()) {
        let y = *v;
        if !x.is_finite() || !y.is_finite() {
            continue;
        }
        let dx = prev_x.map_or(0.0, |p| (x - p) * scale);
        prev_x = Some(x);
        if dx != cached_dx {
            cached_dx = dx;
            cached_a = decay(sw, dx);
        }
        last_y = last_y * cached_a + y;
        debias = debias * cached_a + 1.0;
        *v = last_y / debias;
    }
}

/// Out of line on purpose: inlined, `powf` is a speculatable intrinsic and the compiler hoisted it out of
/// the cache check above, paying for it on every point.
#[inline(never)]
fn decay(sw: f64, dx: f64) -> f64 {
    sw.powf(dx)
}

/// Everything that decides a [`PreparedSeries`]' contents. `version` is the app's counter for the
/// series data; bump it on append or rewrite.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PrepareKey {
    pub version: u64,
    pub smoothing: Smoothing,
    pub x_mode: XMode,
    pub log_y: bool,
}

/// A series ready to draw: x in the chosen mode (ascending), raw and smoothed values (log10 when
/// `log_y`). Build once per [`PrepareKey`] and keep it across frames; [`PreparedSeries::refresh`]
/// re-prepares only when the key changed.
#[derive(Clone, Debug, Default)]
pub struct PreparedSeries {
    /// None until first built, so a default value never matches a key.
    key: Option<PrepareKey>,
    label: String,
    xs: Vec<f64>,
    raw: Vec<f64>,
    /// Meaningful only when `key.smoothing` is not `None`; kept allocated across re-prepares.
    smoothed: Vec<f64>,
    last_value: Option<f64>,
}

impl PreparedSeries {
    pub fn new(series: &Series, key: PrepareKey) -> Self {
        let mut p = PreparedSeries::default();
        p.rebuild(series, key);
        p
    }

    /// Re-prepares when `key` differs from the one this was built with; returns whether it did. The
    /// buffers are reused, so a re-prepare after an append does not fault in fresh memory.
    /// The label is always taken over (cheap, and it does not bump the version).
    pub fn refresh(&mut self, series: &Series, key: PrepareKey) -> bool {
        if self.key == Some(key) {
            if self.label != series.label {
                self.label.clone_from(&series.label);
            }
            return false;
        }
        self.rebuild(series, key);
        true
    }

    fn rebuild(&mut self, series: &Series, key: PrepareKey) {
        self.key = Some(key);
        self.label.clone_from(&series.label);
        let t0 = match key.x_mode {
            XMode::Relative => series
                .points
                .iter()
                .find_map(|p| p.time.filter(|t| t.is_finite()))
                .unwrap_or(0.0),
            _ => 0.0,
        };
        let (xs, raw) = (&mut self.xs, &mut self.raw);
        xs.clear();
        raw.clear();
        xs.reserve(series.points.len());
        raw.reserve(series.points.len());
        for p in &series.points {
            let Some(x) = key.x_mode.x_of(p, t0) else {
                continue;
            };
            // Log scale cannot place zero or negatives (-inf included); NaN/+inf stay as gaps.
            if key.log_y && p.value <= 0.0 {
                continue;
            }
            xs.push(x);
            raw.push(p.value);
        }
        if !xs.is_sorted() {
            // Stable, so points logged at the same x keep their order.
            let mut order: Vec<usize> = (0..xs.len()).collect();
            order.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]));
            *xs = order.iter().map(|&i| xs[i]).collect();
            *raw = order.iter().map(|&i| raw[i]).collect();
        }
        self.last_value = raw.iter().rev().copied().find(|v| v.is_finite());
        // Smooth in linear space (as TensorBoard does), before any log transform or decimation.
        match key.smoothing {
            Smoothing::None => self.smoothed.clear(),
            Smoothing::Ema(w) => smooth_ema_into(raw, w, &mut self.smoothed),
            Smoothing::Twema(w) => smooth_twema_into(xs, raw, w, &mut self.smoothed),
        }
        if key.log_y {
            raw.iter_mut().for_each(|v| *v = v.log10());
            self.smoothed.iter_mut().for_each(|v| *v = v.log10());
        }
    }

    /// The key this was built with (the default key if never built).
    pub fn key(&self) -> PrepareKey {
        self.key.unwrap_or_default()
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn len(&self) -> usize {
        self.xs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.xs.is_empty()
    }

    /// Ascending x values in the key's mode.
    pub fn xs(&self) -> &[f64] {
        &self.xs
    }

    /// Raw values, log10 when `log_y`.
    pub fn raw(&self) -> &[f64] {
        &self.raw
    }

    /// The line drawn in the series colour: smoothed values, or the raw ones when smoothing is off.
    pub fn main(&self) -> &[f64] {
        if self.is_smoothed() {
            &self.smoothed
        } else {
            &self.raw
        }
    }

    pub fn is_smoothed(&self) -> bool {
        self.key().smoothing != Smoothing::None
    }

    /// Smallest and largest x.
    pub fn x_extent(&self) -> Option<(f64, f64)> {
        Some((*self.xs.first()?, *self.xs.last()?))
    }

    /// The last finite raw value, in original units.
    pub fn last_value(&self) -> Option<f64> {
        self.last_value
    }

    /// Index of the point nearest to `x` (the earlier one on a tie).
    pub fn nearest(&self, x: f64) -> Option<usize> {
        if self.xs.is_empty() || x.is_nan() {
            return None;
        }
        let i = self.xs.partition_point(|&v| v < x);
        if i == 0 {
            return Some(0);
        }
        if i == self.xs.len() {
            return Some(i - 1);
        }
        Some(if x - self.xs[i - 1] <= self.xs[i] - x {
            i - 1
        } else {
            i
        })
    }

    /// (raw, smoothed) at `i`, in original units (log undone).
    pub fn values_at(&self, i: usize) -> (f64, f64) {
        let untransform = |v: f64| if self.key().log_y { 10f64.powf(v) } else { v };
        (untransform(self.raw[i]), untransform(self.main()[i]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
        for (x, y) in a.iter().zip(b) {
            assert!(
                x == y || (x.is_nan() && y.is_nan()) || (x - y).abs() < 1e-12,
                "{a:?} vs {b:?}"
            );
        }
    }

    fn pt(step: f64, time: Option<f64>, value: f64) -> Point {
        Point {
            step,
            time,
            epoch: None,
            value,
        }
    }

    #[test]
    fn ema_matches_hand_computation() {
        // w = 0.5: last = 0.5, 1.25, 2.125; debias = 0.5, 0.75, 0.875.
        close(
            &smooth_ema(&[1.0, 2.0, 3.0], 0.5),
            &[1.0, 1.25 / 0.75, 2.125 / 0.875],
        );
    }

    #[test]
    fn ema_nan_passes_through_without_poisoning() {
        // The NaN neither updates `last` nor counts toward the debias.
        close(
            &smooth_ema(&[1.0, f64::NAN, 2.0, f64::INFINITY, 3.0], 0.5),
            &[1.0, f64::NAN, 1.25 / 0.75, f64::INFINITY, 2.125 / 0.875],
        );
        let out = smooth_ema(&[f64::NAN, 4.0], 0.9);
        assert!(out[0].is_nan());
        assert!((out[1] - 4.0).abs() < 1e-12);
    }

    #[test]
    fn ema_constant_series_unchanged() {
        let v = vec![0.1; 50];
        assert_eq!(smooth_ema(&v, 0.6), v);
        assert!(smooth_ema(&[], 0.6).is_empty());
    }

    #[test]
    fn ema_weight_edges() {
        let v = [3.0, -1.0, 7.0];
        close(&smooth_ema(&v, 0.0), &v);
        // TensorBoard at exactly 1: the average never leaves 0 and is not debiased.
        close(&smooth_ema(&v, 1.0), &[0.0, 0.0, 0.0]);
        // Out-of-range and NaN weights clamp.
        close(&smooth_ema(&v, -3.0), &v);
        close(&smooth_ema(&v, f64::NAN), &v);
        close(&smooth_ema(&v, 7.0), &[0.0, 0.0, 0.0]);
    }

    #[test]
    fn twema_basic() {
        let xs = [0.0, 1.0, 2.0];
        let ys = [1.0, 2.0, 3.0];
        // range 2 → dx = 500 per step; sw = sqrt(0.25) = 0.5 → a = 0.5^500 ≈ 0: no memory.
        close(&smooth_twema(&xs, &ys, 0.25), &ys);
        // Weight 0: sw = 0, every gap forgets the past.
        close(&smooth_twema(&xs, &ys, 0.0), &ys);
        // A denser grid: with 1001 points dx = 1, so a = sw and the first two outputs are hand-computable.
        let xs: Vec<f64> = (0..=1000).map(f64::from).collect();
        let mut ys = vec![0.0; 1001];
        ys[0] = 1.0;
        ys[1] = 2.0;
        let out = smooth_twema(&xs, &ys, 0.25);
        assert!((out[0] - 1.0).abs() < 1e-12);
        // lastY = 1·0.5 + 2 = 2.5, debias = 1·0.5 + 1 = 1.5.
        assert!((out[1] - 2.5 / 1.5).abs() < 1e-12);
        // Gaps pass through; constant series unchanged.
        let out = smooth_twema(&[0.0, 1.0, 2.0], &[1.0, f64::NAN, 1.0], 0.5);
        assert!(out[1].is_nan() && (out[2] - 1.0).abs() < 1e-12);
        assert_eq!(smooth_twema(&[0.0, 5.0], &[2.0, 2.0], 0.9), vec![2.0, 2.0]);
    }

    #[test]
    fn relative_x_mode_per_series() {
        let s = Series {
            label: "loss".into(),
            points: vec![
                pt(0.0, None, 1.0),
                pt(1.0, Some(1000.0), 2.0),
                pt(2.0, Some(1060.0), 3.0),
                pt(3.0, Some(4600.0), 4.0),
            ],
        };
        let key = |x_mode| PrepareKey {
            x_mode,
            smoothing: Smoothing::None,
            ..PrepareKey::default()
        };
        let p = PreparedSeries::new(&s, key(XMode::Relative));
        // The untimed point is skipped; the first timed point is the origin.
        assert_eq!(p.xs(), &[0.0, 60.0, 3600.0]);
        assert_eq!(p.raw(), &[2.0, 3.0, 4.0]);
        let p = PreparedSeries::new(&s, key(XMode::Wall));
        assert_eq!(p.xs(), &[1000.0, 1060.0, 4600.0]);
        let p = PreparedSeries::new(&s, key(XMode::Epoch));
        assert!(p.is_empty());
        let p = PreparedSeries::new(&s, key(XMode::Step));
        assert_eq!(p.len(), 4);
    }

    #[test]
    fn log_y_drops_non_positive_and_keeps_original_values() {
        let s = Series {
            label: "lr".into(),
            points: [1.0, 0.0, -2.0, 100.0, f64::NAN]
                .iter()
                .enumerate()
                .map(|(i, &v)| pt(i as f64, None, v))
                .collect(),
        };
        let key = PrepareKey {
            log_y: true,
            smoothing: Smoothing::Ema(0.0),
            ..PrepareKey::default()
        };
        let p = PreparedSeries::new(&s, key);
        assert_eq!(p.xs(), &[0.0, 3.0, 4.0]);
        close(p.raw(), &[0.0, 2.0, f64::NAN]);
        assert_eq!(p.last_value(), Some(100.0));
        let (raw, smooth) = p.values_at(1);
        assert!((raw - 100.0).abs() < 1e-9 && (smooth - 100.0).abs() < 1e-9);
    }

    #[test]
    fn prepare_sorts_and_refresh_follows_key() {
        let s = Series {
            label: "a".into(),
            points: vec![pt(2.0, None, 2.0), pt(0.0, None, 0.0), pt(1.0, None, 1.0)],
        };
        let key = PrepareKey {
            smoothing: Smoothing::None,
            ..PrepareKey::default()
        };
        let mut d = PreparedSeries::default();
        assert!(d.refresh(&s, key), "a default value is never current");
        assert_eq!(d.len(), 3);
        let mut p = PreparedSeries::new(&s, key);
        assert_eq!(p.xs(), &[0.0, 1.0, 2.0]);
        assert_eq!(p.raw(), &[0.0, 1.0, 2.0]);
        assert_eq!(p.nearest(1.4), Some(1));
        assert_eq!(p.nearest(1.6), Some(2));
        assert_eq!(p.nearest(-5.0), Some(0));
        assert!(!p.refresh(&s, key));
        let key2 = PrepareKey { version: 1, ..key };
        assert!(p.refresh(&s, key2));
        assert_eq!(p.key(), key2);
    }
}
