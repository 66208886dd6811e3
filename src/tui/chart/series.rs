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

/// What [`PreparedSeries`] reads from a logged point, so it can prepare straight from the index's rows
/// as well as from [`Point`]s, without converting a million points first.
pub trait SeriesPoint {
    fn step(&self) -> f64;
    fn time(&self) -> Option<f64>;
    fn epoch(&self) -> Option<f64>;
    fn value(&self) -> f64;
}

impl SeriesPoint for Point {
    fn step(&self) -> f64 {
        self.step
    }
    fn time(&self) -> Option<f64> {
        self.time
    }
    fn epoch(&self) -> Option<f64> {
        self.epoch
    }
    fn value(&self) -> f64 {
        self.value
    }
}

impl SeriesPoint for crate::index::Point {
    fn step(&self) -> f64 {
        self.x
    }
    fn time(&self) -> Option<f64> {
        self.time
    }
    fn epoch(&self) -> Option<f64> {
        self.epoch
    }
    fn value(&self) -> f64 {
        self.value
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
    fn x_of(self, p: &impl SeriesPoint, t0: f64) -> Option<f64> {
        let x = match self {
            XMode::Step => Some(p.step()),
            XMode::Epoch => p.epoch(),
            XMode::Relative => p.time().map(|t| t - t0),
            XMode::Wall => p.time(),
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
    smooth_ema_threads(values, weight, out, 1);
}

/// Series shorter than this are smoothed on one thread: below it, a thread costs more than it saves.
const EMA_MIN_CHUNK: usize = 1 << 18;

/// [`smooth_ema_into`] on up to `threads` threads for a long series. The EMA forgets: after `warm`
/// finite points (`w^warm < 2^-64`) the average no longer holds a trace of what came before, and the
/// debias is exactly 1. So each chunk after the first starts `warm` finite points early, from zero, and
/// reaches the chunk with the same average the sequential pass has there (to the last bit or so).
pub fn smooth_ema_threads(values: &[f64], weight: f64, out: &mut Vec<f64>, threads: usize) {
    // Resizing a reused buffer of the same length writes nothing: every element is overwritten below.
    out.resize(values.len(), 0.0);
    if is_constant(values) {
        out.copy_from_slice(values);
        return;
    }
    let w = clamp_weight(weight);
    let warm = ema_warmup(w);
    let chunks = match warm {
        Some(warm) if threads > 1 => (values.len() / EMA_MIN_CHUNK)
            .min(threads)
            .min(values.len() / (4 * warm).max(1))
            .max(1),
        _ => 1,
    };
    if chunks <= 1 {
        ema_run(values, 0, w, 1.0, out);
        return;
    }
    let warm = warm.unwrap_or(0);
    let len = values.len().div_ceil(chunks);
    std::thread::scope(|scope| {
        let mut parts = out.chunks_mut(len).enumerate();
        let first = parts.next();
        for (k, part) in parts {
            scope.spawn(move || ema_chunk(values, k * len, w, warm, part));
        }
        if let Some((_, part)) = first {
            ema_run(values, 0, w, 1.0, part);
        }
    });
}

/// Finite points after which an EMA of weight `w` has forgotten its start below f64 precision, or None
/// when it never does (weight 1, or so close to it that the warm-up would be most of the series).
fn ema_warmup(w: f64) -> Option<usize> {
    if w <= 0.0 {
        return Some(0);
    }
    if w >= 0.9999 {
        return None;
    }
    Some((64.0 * std::f64::consts::LN_2 / -w.ln()).ceil() as usize + 1)
}

/// The smoothed values of `values[start..start + out.len()]`: from `warm` finite points before `start`,
/// or from the beginning (debiased) when there are not that many.
fn ema_chunk(values: &[f64], start: usize, w: f64, warm: usize, out: &mut [f64]) {
    let end = start + out.len();
    let mut seen = 0;
    let mut from = start;
    while from > 0 && seen < warm {
        from -= 1;
        if values[from].is_finite() {
            seen += 1;
        }
    }
    if seen < warm {
        // Close to the start: run from it, debias included.
        ema_run(&values[..end], start, w, 1.0, out);
    } else {
        // w^warm is below 2^-64, so the debias is exactly 1 from here on: start its power at 0.
        ema_run(&values[from..end], start - from, w, 0.0, out);
    }
}

/// TensorBoard's debiased EMA over `values`, from a zero average and the debias power `w_pow` (1 at the
/// start of a series), writing `out` for `values[skip..]` only. Non-finite values pass through and
/// neither update the average nor count toward the debias; weight 1 yields 0 for every finite point,
/// as it does there.
fn ema_run(values: &[f64], skip: usize, w: f64, mut w_pow: f64, out: &mut [f64]) {
    let mut last = 0.0;
    for &y in &values[..skip] {
        if y.is_finite() {
            last = last * w + (1.0 - w) * y;
            w_pow *= w;
        }
    }
    for (o, &y) in out.iter_mut().zip(&values[skip..]) {
        if !y.is_finite() {
            *o = y;
            continue;
        }
        last = last * w + (1.0 - w) * y;
        // w^n kept as a running product: powi per point would cost more than the EMA itself.
        w_pow *= w;
        let debias = if w == 1.0 { 1.0 } else { 1.0 - w_pow };
        // Past the first few dozen points debias is exactly 1: skip the division.
        *o = if debias == 1.0 { last } else { last / debias };
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

/// Which line of a [`PreparedSeries`] to decimate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line {
    /// The raw values (drawn faintly behind a smoothed line).
    Raw,
    /// [`PreparedSeries::main`].
    Main,
}

/// One line's decimation for the window it was last drawn over.
#[derive(Clone, Debug, Default)]
struct Decimated {
    /// `(lo, hi, columns)` as bits; None until computed.
    window: Option<(u64, u64, usize)>,
    points: Vec<[f64; 2]>,
}

/// A series ready to draw: x in the chosen mode (ascending), raw and smoothed values (log10 when
/// `log_y`). Build once per [`PrepareKey`] and keep it across frames; [`PreparedSeries::refresh`]
/// re-prepares only when the key changed.
#[derive(Debug, Default)]
pub struct PreparedSeries {
    /// None until first built, so a default value never matches a key.
    key: Option<PrepareKey>,
    label: String,
    xs: Vec<f64>,
    raw: Vec<f64>,
    /// Meaningful only when `key.smoothing` is not `None`; kept allocated across re-prepares.
    smoothed: Vec<f64>,
    last_value: Option<f64>,
    /// The raw and main lines decimated for the last window drawn ([`Line`] order), so a frame that
    /// changes neither (a cursor move; a smoothing change, for the raw line) does not scan them again.
    decimated: std::sync::Mutex<[Decimated; 2]>,
}

impl Clone for PreparedSeries {
    fn clone(&self) -> Self {
        PreparedSeries {
            key: self.key,
            label: self.label.clone(),
            xs: self.xs.clone(),
            raw: self.raw.clone(),
            smoothed: self.smoothed.clone(),
            last_value: self.last_value,
            decimated: std::sync::Mutex::new(self.decimations().clone()),
        }
    }
}

impl PreparedSeries {
    pub fn new(series: &Series, key: PrepareKey) -> Self {
        Self::from_points(&series.label, &series.points, key)
    }

    /// [`PreparedSeries::new`] from any points, e.g. the index's rows, without converting them first.
    pub fn from_points<P: SeriesPoint>(label: &str, points: &[P], key: PrepareKey) -> Self {
        let mut p = PreparedSeries::default();
        p.rebuild(label, points, key);
        p
    }

    /// Re-prepares when `key` differs from the one this was built with; returns whether it did. The
    /// buffers are reused, so a re-prepare after an append does not fault in fresh memory.
    /// The label is always taken over (cheap, and it does not bump the version).
    pub fn refresh(&mut self, series: &Series, key: PrepareKey) -> bool {
        self.refresh_points(&series.label, &series.points, key)
    }

    /// [`PreparedSeries::refresh`] from any points.
    pub fn refresh_points<P: SeriesPoint>(
        &mut self,
        label: &str,
        points: &[P],
        key: PrepareKey,
    ) -> bool {
        if self.key == Some(key) {
            if self.label != label {
                self.label = label.to_string();
            }
            return false;
        }
        self.rebuild(label, points, key);
        true
    }

    fn rebuild<P: SeriesPoint>(&mut self, label: &str, points: &[P], key: PrepareKey) {
        let old = self.key.replace(key);
        if self.label != label {
            self.label = label.to_string();
        }
        let same_data = old.is_some_and(|o| {
            o.version == key.version && o.x_mode == key.x_mode && o.log_y == key.log_y
        });
        if same_data && !key.log_y {
            // Only the smoothing changed: x and the raw values stand, and so does the raw line's
            // decimation. (Under log-y the raw values are log10 already, and smoothing runs before it.)
            self.smooth(key);
            self.decimations()[Line::Main as usize] = Decimated::default();
            return;
        }
        *self.decimations() = Default::default();
        let t0 = match key.x_mode {
            XMode::Relative => points
                .iter()
                .find_map(|p| p.time().filter(|t| t.is_finite()))
                .unwrap_or(0.0),
            _ => 0.0,
        };
        let (xs, raw) = (&mut self.xs, &mut self.raw);
        xs.clear();
        raw.clear();
        xs.reserve(points.len());
        raw.reserve(points.len());
        for p in points {
            let Some(x) = key.x_mode.x_of(p, t0) else {
                continue;
            };
            let value = p.value();
            // Log scale cannot place zero or negatives (-inf included); NaN/+inf stay as gaps.
            if key.log_y && value <= 0.0 {
                continue;
            }
            xs.push(x);
            raw.push(value);
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
        self.smooth(key);
        if key.log_y {
            self.raw.iter_mut().for_each(|v| *v = v.log10());
            self.smoothed.iter_mut().for_each(|v| *v = v.log10());
        }
    }

    /// `smoothed` from `raw` (linear values). A long series is smoothed on every core.
    fn smooth(&mut self, key: PrepareKey) {
        match key.smoothing {
            Smoothing::None => self.smoothed.clear(),
            Smoothing::Ema(w) => {
                let threads = if self.raw.len() >= 2 * EMA_MIN_CHUNK {
                    crate::util::cores()
                } else {
                    1
                };
                smooth_ema_threads(&self.raw, w, &mut self.smoothed, threads);
            }
            Smoothing::Twema(w) => smooth_twema_into(&self.xs, &self.raw, w, &mut self.smoothed),
        }
    }

    fn decimations(&self) -> std::sync::MutexGuard<'_, [Decimated; 2]> {
        self.decimated
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `line` decimated over the window `[lo, hi]` drawn `columns` dots wide (see
    /// [`super::decimate::decimate_into`]), handed to `f`. Kept until the window, the width or the line
    /// changes, so only the first frame for a window scans the points.
    pub fn decimated<R>(
        &self,
        line: Line,
        lo: f64,
        hi: f64,
        columns: usize,
        f: impl FnOnce(&[[f64; 2]]) -> R,
    ) -> R {
        let mut cache = self.decimations();
        let d = &mut cache[line as usize];
        let window = Some((lo.to_bits(), hi.to_bits(), columns));
        if d.window != window {
            let ys = match line {
                Line::Raw => &self.raw,
                Line::Main => self.main(),
            };
            super::decimate::decimate_into(&self.xs, ys, lo, hi, columns, &mut d.points);
            d.window = window;
        }
        f(&d.points)
    }

    /// Whether [`PreparedSeries::decimated`] has `line` for this window already.
    pub fn has_decimated(&self, line: Line, lo: f64, hi: f64, columns: usize) -> bool {
        self.decimations()[line as usize].window == Some((lo.to_bits(), hi.to_bits(), columns))
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
    fn threaded_ema_matches_the_sequential_pass() {
        let mut r = 11u64;
        let n = 4 * EMA_MIN_CHUNK + 123;
        let mut v: Vec<f64> = (0..n)
            .map(|i| {
                r = r
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (-(i as f64) / 1e5).exp() + ((r >> 33) as f64 / (1u64 << 31) as f64 - 0.5)
            })
            .collect();
        // Gaps, one of them long and right before a chunk boundary.
        v[5] = f64::NAN;
        for x in &mut v[EMA_MIN_CHUNK - 9000..EMA_MIN_CHUNK + 3] {
            *x = f64::NAN;
        }
        v[2 * EMA_MIN_CHUNK] = f64::INFINITY;
        for w in [0.0, 0.6, 0.99, 0.9995, 1.0] {
            let seq = smooth_ema(&v, w);
            for threads in [2, 3, 4] {
                let mut par = vec![7.0; 10];
                smooth_ema_threads(&v, w, &mut par, threads);
                assert_eq!(par.len(), seq.len());
                for (i, (a, b)) in seq.iter().zip(&par).enumerate() {
                    assert!(
                        a.to_bits() == b.to_bits() || (a - b).abs() <= 1e-14 * a.abs().max(1.0),
                        "w {w}, {threads} threads, point {i}: {a} vs {b}"
                    );
                }
            }
        }
        let flat = vec![0.25; n];
        let mut out = Vec::new();
        smooth_ema_threads(&flat, 0.6, &mut out, 4);
        assert_eq!(out, flat);
    }

    #[test]
    fn smoothing_change_keeps_data_and_matches_a_full_prepare() {
        let s = Series {
            label: "a".into(),
            points: (0..500)
                .map(|i| pt(f64::from(i), None, f64::from(i % 7) + 0.5))
                .collect(),
        };
        let key = |w| PrepareKey {
            smoothing: Smoothing::Ema(w),
            ..PrepareKey::default()
        };
        let mut p = PreparedSeries::new(&s, key(0.6));
        let raw_line = p.decimated(Line::Raw, 0.0, 499.0, 40, <[_]>::to_vec);
        let main_06 = p.decimated(Line::Main, 0.0, 499.0, 40, <[_]>::to_vec);
        assert!(p.refresh(&s, key(0.9)));
        let fresh = PreparedSeries::new(&s, key(0.9));
        assert_eq!(p.xs(), fresh.xs());
        assert_eq!(p.raw(), fresh.raw());
        assert_eq!(p.main(), fresh.main());
        // The raw line's decimation is kept, the main line's is redone for the new smoothing.
        assert!(p.has_decimated(Line::Raw, 0.0, 499.0, 40));
        assert!(!p.has_decimated(Line::Main, 0.0, 499.0, 40));
        assert_eq!(
            p.decimated(Line::Raw, 0.0, 499.0, 40, <[_]>::to_vec),
            raw_line
        );
        let main_09 = p.decimated(Line::Main, 0.0, 499.0, 40, <[_]>::to_vec);
        assert_ne!(main_09, main_06);
        assert_eq!(
            main_09,
            fresh.decimated(Line::Main, 0.0, 499.0, 40, <[_]>::to_vec)
        );
        // A different window decimates again; so does new data.
        assert!(!p.has_decimated(Line::Main, 0.0, 250.0, 40));
        assert!(p.refresh(
            &s,
            PrepareKey {
                version: 1,
                ..key(0.9)
            }
        ));
        assert!(!p.has_decimated(Line::Raw, 0.0, 499.0, 40));
        // Smoothing off: the main line is the raw one.
        assert!(p.refresh(
            &s,
            PrepareKey {
                version: 1,
                smoothing: Smoothing::None,
                ..key(0.0)
            }
        ));
        assert_eq!(p.main(), p.raw());
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
