//! The curves pane's chart: training-metric series drawn the way TensorBoard and W&B draw them
//! (debiased EMA or TWEMA smoothing, step/epoch/relative/wall x axes, log y, outlier-robust y range),
//! kept fast for million-point series by min/max-per-column decimation at render time.
//!
//! Flow for the app:
//! 1. Keep one [`PreparedSeries`] per shown series and call [`PreparedSeries::refresh`] with a
//!    [`PrepareKey`] (data version, smoothing, x mode, log-y) whenever data or settings may have
//!    changed; it re-smooths only when the key differs.
//! 2. Each frame, build a [`CurveChart`] over those prepared series with the theme's [`ChartStyles`]
//!    and render it by reference.

mod braille;
pub mod decimate;
pub mod range;
pub mod series;
pub mod widget;

pub use range::RangeMode;
pub use series::{
    DEFAULT_SMOOTHING, Line, Point, PrepareKey, PreparedSeries, Series, SeriesPoint, Smoothing,
    XMode, smooth_ema, smooth_ema_threads, smooth_twema,
};
pub use widget::{ChartStyles, CurveChart};
