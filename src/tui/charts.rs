//! Chart data kept across frames: each series is smoothed and transformed once per (data, settings) and
//! reused until either changes; drawing then only decimates to the pane's width.

use super::app::App;
use super::chart::{ChartStyles, CurveChart, PrepareKey, PreparedSeries, Series, Smoothing};
use super::view::ViewCtx;
use ratatui::Frame;
use ratatui::layout::Rect;
use std::sync::Arc;

#[derive(Default)]
pub struct ChartCache {
    /// (step, identity of the points vector, prepared series), in draw order.
    entries: Vec<(String, usize, PreparedSeries)>,
}

impl ChartCache {
    /// Brings the prepared series in line with the app's data and settings. Called before drawing.
    pub fn prepare(&mut self, app: &App) {
        let smoothing = if app.metrics.smoothing > 0.0 {
            Smoothing::Ema(app.metrics.smoothing)
        } else {
            Smoothing::None
        };
        let mut next = Vec::with_capacity(app.snapshot.series.len());
        for s in &app.snapshot.series {
            // The data thread hands out a new Arc whenever a series' points change.
            let identity = Arc::as_ptr(&s.points) as usize;
            let key = PrepareKey {
                version: identity as u64,
                smoothing,
                x_mode: app.metrics.x_mode,
                log_y: app.metrics.log_y,
            };
            let pos = self.entries.iter().position(|e| e.0 == s.step);
            let entry = match pos {
                Some(p) => {
                    let mut e = self.entries.swap_remove(p);
                    if e.2.key() != key {
                        e.2 = PreparedSeries::new(&to_series(&s.step, &s.points), key);
                    }
                    e.1 = identity;
                    e
                }
                None => (
                    s.step.clone(),
                    identity,
                    PreparedSeries::new(&to_series(&s.step, &s.points), key),
                ),
            };
            next.push(entry);
        }
        self.entries = next;
    }

    pub fn render(&self, frame: &mut Frame, area: Rect, app: &App, ctx: &ViewCtx) {
        let styles = ChartStyles {
            series: (0..8)
                .map(|i| ctx.style(&format!("chart.series.{i}")))
                .collect(),
            raw: ctx.style("chart.raw"),
            axis: ctx.style("chart.axis"),
            text: ctx.style("text"),
            cursor: ctx.style("chart.cursor"),
        };
        let mut chart = CurveChart::new(self.entries.iter().map(|e| &e.2))
            .styles(styles)
            .show_raw(app.metrics.show_raw)
            .empty_hint("no finite points yet");
        if let (Some(frac), Some((lo, hi))) = (app.metrics.cursor, chart.x_bounds()) {
            chart = chart.cursor(Some(lo + frac * (hi - lo)));
        }
        frame.render_widget(&chart, area);
    }
}

fn to_series(label: &str, points: &[crate::index::Point]) -> Series {
    Series {
        label: label.to_string(),
        points: points.iter().map(Into::into).collect(),
    }
}
