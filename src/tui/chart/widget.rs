//! The curves widget: prepared series drawn as braille lines with axes, legend and a cursor readout.
//! Per render it only culls, decimates to the pane's dot width and fits the y range; smoothing lives in
//! [`PreparedSeries`], which the app caches.

use super::braille::BrailleGrid;
use super::decimate::{cull, inside, is_break};
use super::range::{
    RangeMode, data_bounds, finite_min_max, format_duration, format_tick, format_value, log_ticks,
    nice_domain, nice_log_domain, nice_step, padded, ticks, time_step,
};
use super::series::{Line, PreparedSeries, XMode};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line as TextLine, Span};
use ratatui::widgets::Widget;

/// Percentiles are taken over an even stride of at most this many values: exact enough for a 5 %/95 %
/// cut, and it keeps a million-point frame from copying and selecting the whole series.
const ROBUST_SAMPLE_CAP: usize = 1 << 16;

/// Longest label shown in the legend and readout before it is cut with `…`.
const MAX_LABEL: usize = 24;

/// Styles from the theme. Nothing here is a colour of its own: the defaults are plain styles.
#[derive(Clone, Debug, PartialEq)]
pub struct ChartStyles {
    /// One per series, in order; cycles when there are more series than styles.
    pub series: Vec<Style>,
    /// Patched over the series style for the raw line behind the smoothed one: a modifier alone (DIM)
    /// keeps each run's hue, a foreground colour makes every raw line that colour.
    pub raw: Style,
    /// Axis lines and tick labels.
    pub axis: Style,
    /// Legend, readout and empty-state text.
    pub text: Style,
    /// The vertical cursor line.
    pub cursor: Style,
}

impl Default for ChartStyles {
    fn default() -> Self {
        ChartStyles {
            series: Vec::new(),
            raw: Style::new().add_modifier(Modifier::DIM),
            axis: Style::new(),
            text: Style::new(),
            cursor: Style::new(),
        }
    }
}

impl ChartStyles {
    fn series_style(&self, i: usize) -> Style {
        if self.series.is_empty() {
            Style::new()
        } else {
            self.series[i % self.series.len()]
        }
    }
}

/// Several prepared series overlaid. All should share one x mode and log flag (the first one's are used
/// for labels). Later series draw over earlier ones, so pass the selected run last.
#[derive(Clone, Debug)]
pub struct CurveChart<'a> {
    series: Vec<&'a PreparedSeries>,
    styles: ChartStyles,
    show_raw: bool,
    legend: bool,
    range_mode: RangeMode,
    x_window: Option<(f64, f64)>,
    cursor: Option<f64>,
    empty_hint: &'a str,
    /// Series drawn as dots, unjoined (a trial is a point, not a step of a curve).
    scatter: Vec<bool>,
}

impl<'a> CurveChart<'a> {
    pub fn new(series: impl IntoIterator<Item = &'a PreparedSeries>) -> Self {
        CurveChart {
            series: series.into_iter().collect(),
            styles: ChartStyles::default(),
            show_raw: true,
            legend: true,
            range_mode: RangeMode::Robust,
            x_window: None,
            cursor: None,
            empty_hint: "no data",
            scatter: Vec::new(),
        }
    }

    pub fn styles(mut self, styles: ChartStyles) -> Self {
        self.styles = styles;
        self
    }

    pub fn series_styles(mut self, styles: Vec<Style>) -> Self {
        self.styles.series = styles;
        self
    }

    pub fn raw_style(mut self, style: Style) -> Self {
        self.styles.raw = style;
        self
    }

    pub fn axis_style(mut self, style: Style) -> Self {
        self.styles.axis = style;
        self
    }

    pub fn text_style(mut self, style: Style) -> Self {
        self.styles.text = style;
        self
    }

    pub fn cursor_style(mut self, style: Style) -> Self {
        self.styles.cursor = style;
        self
    }

    /// Draw the raw line faintly behind smoothed series.
    pub fn show_raw(mut self, on: bool) -> Self {
        self.show_raw = on;
        self
    }

    pub fn legend(mut self, on: bool) -> Self {
        self.legend = on;
        self
    }

    pub fn range_mode(mut self, mode: RangeMode) -> Self {
        self.range_mode = mode;
        self
    }

    /// Visible x range (zoom); None fits all series.
    pub fn x_window(mut self, window: Option<(f64, f64)>) -> Self {
        self.x_window = window;
        self
    }

    /// Vertical cursor at this x, with a readout row above the plot.
    pub fn cursor(mut self, x: Option<f64>) -> Self {
        self.cursor = x;
        self
    }

    /// Which series (by position) are dots rather than lines; the rest stay lines.
    pub fn scatter(mut self, flags: Vec<bool>) -> Self {
        self.scatter = flags;
        self
    }

    fn is_scatter(&self, i: usize) -> bool {
        self.scatter.get(i).copied().unwrap_or(false)
    }

    /// Text centred in the pane when nothing can be drawn.
    pub fn empty_hint(mut self, hint: &'a str) -> Self {
        self.empty_hint = hint;
        self
    }

    fn x_mode(&self) -> XMode {
        self.series
            .first()
            .map(|s| s.key().x_mode)
            .unwrap_or_default()
    }

    fn log_y(&self) -> bool {
        self.series.first().is_some_and(|s| s.key().log_y)
    }

    /// The x range drawn: the window if set, else the union of the series' extents.
    pub fn x_bounds(&self) -> Option<(f64, f64)> {
        if let Some((lo, hi)) = self.x_window
            && lo.is_finite()
            && hi.is_finite()
            && lo < hi
        {
            return Some((lo, hi));
        }
        let (lo, hi) = self
            .series
            .iter()
            .filter_map(|s| s.x_extent())
            .reduce(|(a, b), (c, d)| (a.min(c), b.max(d)))?;
        // A single x still needs a non-empty range to map onto.
        Some(if lo < hi {
            (lo, hi)
        } else {
            (lo - 0.5, hi + 0.5)
        })
    }

    /// Padded y range (log10 units when log-y) over the main lines' finite values inside the x range.
    fn y_bounds(&self, xlo: f64, xhi: f64) -> Option<(f64, f64)> {
        let (a, b) = match self.range_mode {
            RangeMode::Fit => self
                .series
                .iter()
                .filter_map(|s| finite_min_max(&s.main()[inside(s.xs(), xlo, xhi)]))
                .reduce(|(a, b), (c, d)| (a.min(c), b.max(d)))?,
            RangeMode::Robust => {
                let ranges: Vec<_> = self
                    .series
                    .iter()
                    .map(|s| inside(s.xs(), xlo, xhi))
                    .collect();
                let total: usize = ranges.iter().map(|r| r.len()).sum();
                let mut stride = total.div_ceil(ROBUST_SAMPLE_CAP).max(1);
                let mut scratch = Vec::with_capacity(total / stride + self.series.len());
                loop {
                    for (s, r) in self.series.iter().zip(&ranges) {
                        let main = &s.main()[r.clone()];
                        scratch.extend(main.iter().step_by(stride).filter(|v| v.is_finite()));
                    }
                    // A sparse series could hide all its finite values between strides.
                    if !scratch.is_empty() || stride == 1 {
                        break;
                    }
                    stride = 1;
                }
                data_bounds(&mut scratch, RangeMode::Robust)?
            }
        };
        Some(padded(a, b, !self.log_y()))
    }

    fn render_hint(&self, area: Rect, buf: &mut Buffer) {
        let span = Span::styled(self.empty_hint, self.styles.text);
        let w = (span.width() as u16).min(area.width);
        let x = area.x + (area.width - w) / 2;
        let y = area.y + area.height.saturating_sub(1) / 2;
        buf.set_span(x, y, &span, w);
    }

    fn x_label(&self, v: f64, step: f64, span: f64) -> String {
        match self.x_mode() {
            XMode::Step | XMode::Epoch => format_tick(v, step),
            XMode::Relative => format_duration(v),
            XMode::Wall => format_wall(
                v,
                if span > 86400.0 {
                    "%m-%d %H:%M"
                } else if step < 60.0 {
                    "%H:%M:%S"
                } else {
                    "%H:%M"
                },
            ),
        }
    }

    fn x_readout(&self, v: f64) -> String {
        match self.x_mode() {
            XMode::Step if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
            XMode::Step | XMode::Epoch => format_value(v),
            XMode::Relative => format_duration(v),
            XMode::Wall => format_wall(v, "%Y-%m-%d %H:%M:%S"),
        }
    }
}

fn format_wall(secs: f64, fmt: &str) -> String {
    let whole = secs.floor();
    match chrono::DateTime::from_timestamp(whole as i64, ((secs - whole) * 1e9) as u32) {
        Some(t) => t.with_timezone(&chrono::Local).format(fmt).to_string(),
        None => format_value(secs),
    }
}

/// World-to-dot mapping of the plot.
struct Mapping {
    xlo: f64,
    yhi: f64,
    sx: f64,
    sy: f64,
}

impl Mapping {
    fn dot(&self, p: [f64; 2]) -> [f64; 2] {
        // Clamped so an extreme outlier still clips to the edge instead of overflowing to inf.
        const FAR: f64 = 1e9;
        [
            ((p[0] - self.xlo) * self.sx).clamp(-FAR, FAR),
            ((self.yhi - p[1]) * self.sy).clamp(-FAR, FAR),
        ]
    }
}

/// Draws decimated points as a polyline; breaks split it and a lone point between breaks is a dot.
fn draw_polyline(grid: &mut BrailleGrid, pts: &[[f64; 2]], map: &Mapping, layer: u8, style: u16) {
    let mut prev: Option<[f64; 2]> = None;
    let mut run = 0usize;
    for &p in pts {
        if is_break(p) {
            if let (Some(q), 1) = (prev, run) {
                grid.line(q, q, layer, style);
            }
            prev = None;
            run = 0;
            continue;
        }
        let d = map.dot(p);
        if let Some(q) = prev {
            grid.line(q, d, layer, style);
        }
        prev = Some(d);
        run += 1;
    }
    if let (Some(q), 1) = (prev, run) {
        grid.line(q, q, layer, style);
    }
}

impl Widget for &CurveChart<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let area = area.intersection(buf.area);
        if area.is_empty() {
            return;
        }
        let Some((xlo, xhi)) = self.x_bounds() else {
            return self.render_hint(area, buf);
        };
        let log_y = self.log_y();

        let mut body = area;
        let readout_row = if self.cursor.is_some() && area.height >= 4 {
            body.y += 1;
            body.height -= 1;
            Some(Rect { height: 1, ..area })
        } else {
            None
        };
        let axes = body.width >= 12 && body.height >= 4;
        let plot_h = if axes { body.height - 2 } else { body.height };

        let Some((ylo, yhi)) = self.y_bounds(xlo, xhi) else {
            return self.render_hint(area, buf);
        };

        // The domain rounds to about half a row, so it stays tight; labels go on a coarser step.
        let fine = usize::from(plot_h) * 2;
        let (ylo, yhi, _) = if log_y {
            nice_log_domain(ylo, yhi, fine)
        } else {
            nice_domain(ylo, yhi, fine)
        };
        let target_y = usize::from(plot_h / 3).clamp(1, 8);
        let ystep = nice_step(yhi - ylo, target_y);
        let y_ticks = if log_y {
            log_ticks(ylo, yhi, target_y)
        } else {
            ticks(ylo, yhi, ystep)
        };
        let y_labels: Vec<String> = y_ticks
            .iter()
            .map(|&t| {
                if log_y {
                    format_value(10f64.powf(t))
                } else {
                    format_tick(t, ystep)
                }
            })
            .collect();
        let label_w = if axes {
            let widest = y_labels
                .iter()
                .map(|l| l.chars().count())
                .max()
                .unwrap_or(0);
            (widest as u16).min(body.width / 3)
        } else {
            0
        };
        let plot = if axes {
            Rect::new(
                body.x + label_w + 1,
                body.y,
                body.width - label_w - 1,
                plot_h,
            )
        } else {
            Rect {
                height: plot_h,
                ..body
            }
        };

        // Curves: every raw line first (layer 0), then the main lines over them (layer 1).
        let mut grid = BrailleGrid::new(plot.width, plot.height);
        let (dw, dh) = grid.dots();
        let map = Mapping {
            xlo,
            yhi,
            sx: (dw - 1) as f64 / (xhi - xlo),
            sy: (dh - 1) as f64 / (yhi - ylo),
        };
        // Decimated at the plot's own dot width, so each bucket is exactly one drawn column. Each
        // series keeps its decimations for the window, and the missing ones are made up front, the big
        // ones in parallel.
        let mut lines: Vec<(usize, Line)> = Vec::with_capacity(self.series.len() * 2);
        if self.show_raw {
            lines.extend(
                (0..self.series.len())
                    .filter(|&i| self.series[i].is_smoothed())
                    .map(|i| (i, Line::Raw)),
            );
        }
        lines.extend((0..self.series.len()).map(|i| (i, Line::Main)));
        // Dots are plotted one by one: a min/max per column would drop the points between them.
        let joined: Vec<(usize, Line)> = lines
            .iter()
            .copied()
            .filter(|&(i, _)| !self.is_scatter(i))
            .collect();
        self.decimate_all(&joined, xlo, xhi, dw);
        let mut styles = Vec::with_capacity(lines.len());
        for &(i, line) in &lines {
            let (style, layer) = match line {
                Line::Raw => (self.styles.series_style(i).patch(self.styles.raw), 0),
                Line::Main => (self.styles.series_style(i), 1),
            };
            styles.push(style);
            let style = (styles.len() - 1) as u16;
            if self.is_scatter(i) {
                let s = self.series[i];
                let range = inside(s.xs(), xlo, xhi);
                for (&x, &y) in s.xs()[range.clone()].iter().zip(&s.main()[range]) {
                    if y.is_finite() {
                        let d = map.dot([x, y]);
                        grid.line(d, d, layer, style);
                    }
                }
                continue;
            }
            self.series[i].decimated(line, xlo, xhi, dw, |pts| {
                draw_polyline(&mut grid, pts, &map, layer, style);
            });
        }
        grid.render(plot, buf, &styles);

        if axes {
            self.render_axes(buf, body, plot, label_w, (ylo, yhi), &y_ticks, &y_labels);
            self.render_x_labels(buf, body, plot, &map, (xlo, xhi));
        }
        if let Some(c) = self.cursor
            && c >= xlo
            && c <= xhi
        {
            let col = plot.x + ((map.dot([c, 0.0])[0].round() as u16) / 2).min(plot.width - 1);
            for y in plot.top()..plot.bottom() {
                if let Some(cell) = buf.cell_mut((col, y))
                    && matches!(cell.symbol(), " " | "\u{2800}")
                {
                    cell.set_char('│').set_style(self.styles.cursor);
                }
            }
            if axes && let Some(cell) = buf.cell_mut((col, plot.bottom())) {
                cell.set_char('┴').set_style(self.styles.cursor);
            }
        }
        if self.legend {
            self.render_legend(buf, plot);
        }
        if let (Some(row), Some(c)) = (readout_row, self.cursor) {
            self.render_readout(buf, row, c);
        }
    }
}

impl Widget for CurveChart<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        (&self).render(area, buf);
    }
}

/// Lines with at least this many points in the window are decimated on a thread of their own when
/// more than one needs it.
const PARALLEL_DECIMATE: usize = 100_000;

impl CurveChart<'_> {
    /// Fills the series' decimation caches for `lines` over `[xlo, xhi]` at `dw` columns: the big
    /// missing ones each on a thread (scanning a million points is milliseconds), the rest here.
    fn decimate_all(&self, lines: &[(usize, Line)], xlo: f64, xhi: f64, dw: usize) {
        let missing: Vec<(&PreparedSeries, Line)> = lines
            .iter()
            .map(|&(i, line)| (self.series[i], line))
            .filter(|(s, line)| !s.has_decimated(*line, xlo, xhi, dw))
            .collect();
        let big = |s: &PreparedSeries| cull(s.xs(), xlo, xhi).len() >= PARALLEL_DECIMATE;
        let (par, here): (Vec<_>, Vec<_>) = missing.into_iter().partition(|(s, _)| big(s));
        if par.len() > 1 && crate::util::cores() > 1 {
            std::thread::scope(|scope| {
                for (s, line) in par {
                    scope.spawn(move || s.decimated(line, xlo, xhi, dw, |_| ()));
                }
                for (s, line) in here {
                    s.decimated(line, xlo, xhi, dw, |_| ());
                }
            });
        } else {
            for (s, line) in par.into_iter().chain(here) {
                s.decimated(line, xlo, xhi, dw, |_| ());
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn render_axes(
        &self,
        buf: &mut Buffer,
        body: Rect,
        plot: Rect,
        label_w: u16,
        (ylo, yhi): (f64, f64),
        y_ticks: &[f64],
        y_labels: &[String],
    ) {
        let axis = self.styles.axis;
        let axis_x = plot.x - 1;
        for y in plot.top()..plot.bottom() {
            buf[(axis_x, y)].set_char('│').set_style(axis);
        }
        buf[(axis_x, plot.bottom())].set_char('└').set_style(axis);
        for x in plot.left()..plot.right() {
            buf[(x, plot.bottom())].set_char('─').set_style(axis);
        }
        let rows = f64::from(plot.height - 1);
        let mut last_row = None;
        for (t, label) in y_ticks.iter().zip(y_labels) {
            let row = ((yhi - t) / (yhi - ylo) * rows).round().clamp(0.0, rows) as u16;
            if last_row == Some(row) {
                continue;
            }
            last_row = Some(row);
            let y = plot.y + row;
            buf[(axis_x, y)].set_char('┤').set_style(axis);
            let w = (label.chars().count() as u16).min(label_w);
            buf.set_stringn(body.x + label_w - w, y, label, usize::from(w), axis);
        }
    }

    fn render_x_labels(
        &self,
        buf: &mut Buffer,
        body: Rect,
        plot: Rect,
        map: &Mapping,
        (xlo, xhi): (f64, f64),
    ) {
        let span = xhi - xlo;
        let target = usize::from(plot.width / 12).max(1);
        let step = match self.x_mode() {
            XMode::Step => nice_step(span, target).max(1.0),
            XMode::Epoch => nice_step(span, target),
            XMode::Relative | XMode::Wall => time_step(span, target),
        };
        let y = plot.bottom() + 1;
        let mut free_from = body.x;
        for t in ticks(xlo, xhi, step) {
            let col = plot.x + ((map.dot([t, 0.0])[0].round() as u16) / 2).min(plot.width - 1);
            let label = self.x_label(t, step, span);
            let w = label.chars().count() as u16;
            let x = col
                .saturating_sub(w / 2)
                .clamp(body.x, body.right().saturating_sub(w).max(body.x));
            if x < free_from || x + w > body.right() {
                continue;
            }
            buf[(col, plot.bottom())]
                .set_char('┬')
                .set_style(self.styles.axis);
            buf.set_stringn(x, y, &label, usize::from(w), self.styles.axis);
            free_from = x + w + 1;
        }
    }

    fn render_legend(&self, buf: &mut Buffer, plot: Rect) {
        if self.series.is_empty() || plot.height < 3 {
            return;
        }
        let entries: Vec<String> = self
            .series
            .iter()
            .map(|s| {
                let value = s.last_value().map_or("–".into(), format_value);
                format!(" {} {value}", crate::util::truncate(s.label(), MAX_LABEL))
            })
            .collect();
        // Swatch, entry, one column of margin on the left.
        let width = entries.iter().map(|e| e.chars().count()).max().unwrap_or(0) as u16 + 2;
        if width > plot.width / 2 {
            return;
        }
        let rows = (entries.len() as u16).min(plot.height - 1);
        let x = plot.right() - width;
        for (i, entry) in entries.iter().take(usize::from(rows)).enumerate() {
            let y = plot.y + i as u16;
            let more = entries.len() - usize::from(rows);
            buf.set_stringn(
                x,
                y,
                " ".repeat(usize::from(width)),
                usize::from(width),
                self.styles.text,
            );
            if i + 1 == usize::from(rows) && more > 0 {
                let text = format!("  +{} more", more + 1);
                buf.set_stringn(x, y, text, usize::from(width), self.styles.text);
                break;
            }
            buf[(x + 1, y)]
                .set_char('━')
                .set_style(self.styles.series_style(i));
            buf.set_stringn(x + 2, y, entry, usize::from(width - 2), self.styles.text);
        }
    }

    fn render_readout(&self, buf: &mut Buffer, row: Rect, x: f64) {
        let text = self.styles.text;
        let mut spans = vec![Span::styled(
            format!("{} {}", self.x_mode().name(), self.x_readout(x)),
            text,
        )];
        for (i, s) in self.series.iter().enumerate() {
            spans.push(Span::styled(" │ ", self.styles.axis));
            spans.push(Span::styled("━ ", self.styles.series_style(i)));
            let value = match s.nearest(x) {
                Some(j) => {
                    let (raw, smooth) = s.values_at(j);
                    if s.is_smoothed() {
                        format!("{} ~{}", format_value(raw), format_value(smooth))
                    } else {
                        format_value(raw)
                    }
                }
                None => "–".into(),
            };
            spans.push(Span::styled(
                format!("{} {value}", crate::util::truncate(s.label(), MAX_LABEL)),
                text,
            ));
        }
        buf.set_line(row.x, row.y, &TextLine::from(spans), row.width);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::chart::series::{PrepareKey, Series, Smoothing};
    use crate::tui::chart::{Point, PreparedSeries};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::style::Color;

    fn series(label: &str, n: usize, every: usize, scale: f64) -> Series {
        Series {
            label: label.into(),
            points: (0..n)
                .step_by(every)
                .map(|i| {
                    let s = i as f64;
                    Point {
                        step: s,
                        time: Some(1_700_000_000.0 + s * 3.7),
                        epoch: Some(s / 250.0),
                        // Deterministic wiggle on a decaying curve.
                        value: scale * (-s / 300.0).exp() + 0.15 * (s * 0.37).sin() + 0.3,
                    }
                })
                .collect(),
        }
    }

    fn prepared(key: PrepareKey) -> Vec<PreparedSeries> {
        vec![
            PreparedSeries::new(&series("train/loss", 1000, 1, 2.0), key),
            PreparedSeries::new(&series("val/loss", 1000, 50, 2.4), key),
        ]
    }

    fn styles() -> ChartStyles {
        ChartStyles {
            series: vec![
                Style::new().fg(Color::Cyan),
                Style::new().fg(Color::Magenta),
            ],
            raw: Style::new().add_modifier(Modifier::DIM),
            axis: Style::new().fg(Color::DarkGray),
            text: Style::new(),
            cursor: Style::new().fg(Color::Yellow),
        }
    }

    fn draw(chart: &CurveChart, w: u16, h: u16) -> Terminal<TestBackend> {
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
        term.draw(|f| f.render_widget(chart, f.area())).unwrap();
        term
    }

    #[test]
    fn two_series_with_legend() {
        let s = prepared(PrepareKey::default());
        let chart = CurveChart::new(&s).styles(styles());
        let term = draw(&chart, 80, 20);
        insta::assert_snapshot!(term.backend());
        // The theme reaches the buffer: the legend swatches carry the series styles.
        let buf = term.backend().buffer();
        let swatches: Vec<_> = buf.content().iter().filter(|c| c.symbol() == "━").collect();
        assert_eq!(swatches.len(), 2);
        assert_eq!(swatches[0].fg, Color::Cyan);
        assert_eq!(swatches[1].fg, Color::Magenta);
        // Raw lines are dimmed, smoothed lines are not.
        assert!(buf.content().iter().any(|c| c.fg == Color::Cyan
            && c.modifier.contains(Modifier::DIM)
            && c.symbol() != " "));
    }

    #[test]
    fn with_cursor_readout() {
        let s = prepared(PrepareKey::default());
        let chart = CurveChart::new(&s).styles(styles()).cursor(Some(500.0));
        let term = draw(&chart, 80, 20);
        insta::assert_snapshot!(term.backend());
        let buf = term.backend().buffer();
        assert!(
            buf.content()
                .iter()
                .any(|c| c.symbol() == "│" && c.fg == Color::Yellow)
        );
    }

    #[test]
    fn relative_time_axis_and_log_y() {
        let key = PrepareKey {
            x_mode: XMode::Relative,
            log_y: true,
            smoothing: Smoothing::Twema(0.6),
            ..PrepareKey::default()
        };
        let s = prepared(key);
        let chart = CurveChart::new(&s)
            .styles(styles())
            .range_mode(RangeMode::Fit);
        let term = draw(&chart, 80, 20);
        insta::assert_snapshot!(term.backend());
    }

    #[test]
    fn empty_state() {
        let chart = CurveChart::new([]).empty_hint("no metric selected");
        insta::assert_snapshot!(draw(&chart, 40, 7).backend());
        // Series without a finite value are empty too.
        let nan = Series {
            label: "x".into(),
            points: vec![Point {
                step: 0.0,
                time: None,
                epoch: None,
                value: f64::NAN,
            }],
        };
        let s = [PreparedSeries::new(&nan, PrepareKey::default())];
        let term = draw(&CurveChart::new(&s), 40, 7);
        assert!(format!("{}", term.backend()).contains("no data"));
    }

    #[test]
    fn tiny_sizes_do_not_panic() {
        let s = prepared(PrepareKey::default());
        let chart = CurveChart::new(&s).styles(styles()).cursor(Some(10.0));
        insta::assert_snapshot!(draw(&chart, 20, 5).backend());
        for (w, h) in [
            (1, 1),
            (2, 1),
            (1, 3),
            (5, 2),
            (11, 3),
            (12, 4),
            (13, 5),
            (30, 2),
        ] {
            draw(&chart, w, h);
            draw(&CurveChart::new(&s).x_window(Some((400.0, 401.0))), w, h);
        }
        let mut buf = Buffer::empty(Rect::new(0, 0, 20, 5));
        // An area partly outside the buffer is clipped, not indexed out of bounds.
        (&chart).render(Rect::new(10, 2, 30, 10), &mut buf);
    }

    #[test]
    fn zoom_window_and_gaps() {
        let mut s = series("loss", 1000, 1, 2.0);
        for p in &mut s.points[400..450] {
            p.value = f64::NAN;
        }
        s.points[600].value = 1e6;
        // Unsmoothed: an EMA would spread the spike over more than 5 % of the window.
        let key = PrepareKey {
            smoothing: Smoothing::None,
            ..PrepareKey::default()
        };
        let p = [PreparedSeries::new(&s, key)];
        let chart = CurveChart::new(&p).x_window(Some((300.0, 700.0)));
        assert_eq!(chart.x_bounds(), Some((300.0, 700.0)));
        let (lo, hi) = chart.y_bounds(300.0, 700.0).unwrap();
        assert!(hi < 10.0 && lo > -5.0, "outlier ignored: {lo} {hi}");
        draw(&chart, 60, 15);
        assert_eq!(
            super::super::decimate::cull(p[0].xs(), 300.0, 700.0),
            299..702
        );
    }
}
