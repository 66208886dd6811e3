//! Chart data kept across frames: each series is converted once per data change, smoothed and transformed
//! once per (data, settings), and the drawn chart itself is reused while nothing it shows changed, so an
//! idle frame costs a copy, not a scan of a million points.

use super::app::App;
use super::chart::{ChartStyles, CurveChart, PrepareKey, PreparedSeries, Smoothing};
use super::view::ViewCtx;
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::Widget;
use std::cell::RefCell;
use std::sync::Arc;

struct Entry {
    label: String,
    /// Identity of the points vector (the data thread hands out a new Arc whenever a series' points
    /// change). Holding the Arc keeps its address from being reused by another vector.
    identity: usize,
    points: Arc<Vec<crate::index::Point>>,
    prepared: PreparedSeries,
}

/// Everything the drawn chart depends on.
#[derive(Clone, PartialEq)]
struct DrawKey {
    area: Rect,
    series: Vec<(String, usize, PrepareKey)>,
    show_raw: bool,
    cursor: Option<u64>,
    theme: String,
}

#[derive(Default)]
pub struct ChartCache {
    entries: Vec<Entry>,
    /// The last drawn chart and what it was drawn from.
    drawn: RefCell<Option<(DrawKey, Buffer)>>,
}

impl ChartCache {
    /// Brings the prepared series in line with the app's data and settings. Called before drawing.
    pub fn prepare(&mut self, app: &App) {
        let smoothing = if app.metrics.smoothing > 0.0 {
            Smoothing::Ema(app.metrics.smoothing)
        } else {
            Smoothing::None
        };
        let mut old = std::mem::take(&mut self.entries);
        let mut keys = Vec::new();
        for s in app
            .snapshot
            .series
            .iter()
            .filter(|s| !app.hidden_series.contains(&s.label))
        {
            let identity = Arc::as_ptr(&s.points) as usize;
            let key = PrepareKey {
                version: identity as u64,
                smoothing,
                x_mode: app.metrics.x_mode,
                log_y: app.metrics.log_y,
            };
            let entry = match old.iter().position(|e| e.label == s.label) {
                Some(p) => {
                    let mut e = old.swap_remove(p);
                    if e.identity != identity {
                        e.points = s.points.clone();
                        e.identity = identity;
                    }
                    e
                }
                None => Entry {
                    label: s.label.clone(),
                    identity,
                    points: s.points.clone(),
                    prepared: PreparedSeries::from_points(&s.label, &s.points, key),
                },
            };
            self.entries.push(entry);
            keys.push(key);
        }
        // A settings change re-smooths every kept series (reusing their buffers; a smoothing change
        // keeps x and the raw values), each on a thread of its own so the cores share the work whatever
        // the series' sizes (a long series also splits its smoothing across the cores).
        let stale: Vec<(&mut Entry, PrepareKey)> = self
            .entries
            .iter_mut()
            .zip(keys)
            .filter(|(e, k)| e.prepared.key() != *k)
            .collect();
        if stale.len() <= 1 {
            for (e, k) in stale {
                e.prepared.refresh_points(&e.label, &e.points, k);
            }
        } else {
            std::thread::scope(|scope| {
                for (e, k) in stale {
                    scope.spawn(move || {
                        e.prepared.refresh_points(&e.label, &e.points, k);
                    });
                }
            });
        }
    }

    pub fn render(&self, frame: &mut Frame, area: Rect, app: &App, ctx: &ViewCtx) {
        let key = DrawKey {
            area,
            series: self
                .entries
                .iter()
                .map(|e| (e.label.clone(), e.identity, e.prepared.key()))
                .collect(),
            show_raw: app.metrics.show_raw,
            cursor: app.metrics.cursor.map(f64::to_bits),
            theme: ctx.theme.name().to_string(),
        };
        let mut drawn = self.drawn.borrow_mut();
        if let Some((k, buf)) = drawn.as_ref()
            && *k == key
        {
            copy(buf, frame.buffer_mut(), area);
            return;
        }
        let styles = ChartStyles {
            series: (0..8)
                .map(|i| ctx.style(&format!("chart.series.{i}")))
                .collect(),
            raw: ctx.style("chart.raw"),
            axis: ctx.style("chart.axis"),
            text: ctx.style("text"),
            cursor: ctx.style("chart.cursor"),
        };
        let mut chart = CurveChart::new(self.entries.iter().map(|e| &e.prepared))
            .styles(styles)
            .show_raw(app.metrics.show_raw)
            .empty_hint("no finite points yet");
        if let (Some(frac), Some((lo, hi))) = (app.metrics.cursor, chart.x_bounds()) {
            chart = chart.cursor(Some(lo + frac * (hi - lo)));
        }
        // Start from what is under the chart (the pane's background), as drawing in place would.
        let mut buf = Buffer::empty(area);
        copy(frame.buffer_mut(), &mut buf, area);
        (&chart).render(area, &mut buf);
        copy(&buf, frame.buffer_mut(), area);
        *drawn = Some((key, buf));
    }
}

/// Copies the cells of `area` from one buffer to another, a row slice at a time.
pub(crate) fn copy(from: &Buffer, to: &mut Buffer, area: Rect) {
    let area = area.intersection(to.area).intersection(from.area);
    if area.is_empty() {
        return;
    }
    let w = usize::from(area.width);
    for y in area.top()..area.bottom() {
        let (a, b) = (from.index_of(area.x, y), to.index_of(area.x, y));
        to.content[b..b + w].clone_from_slice(&from.content[a..a + w]);
    }
}
