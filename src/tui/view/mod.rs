//! Drawing: pure functions of the model. Nothing here changes state or does I/O.

pub mod header;
mod jobs;
mod logs;
mod metrics;
mod overlay;
mod runs;
pub mod trials;

pub use runs::step_time;

use super::action::Pane;
use super::app::App;
use super::config::{Keymap, Theme};
use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

/// What drawing needs besides the model.
pub struct ViewCtx<'a> {
    pub theme: &'a Theme,
    pub keymap: &'a Keymap,
    pub charts: &'a super::ChartCache,
    pub trials: &'a super::trials::plots::TrialsCharts,
    /// Which-key hints while a chord is pending: (next key, what it does).
    pub hints: &'a [(String, String)],
}

impl ViewCtx<'_> {
    pub fn style(&self, key: &str) -> Style {
        self.theme.style(key)
    }
}

/// Wide enough for several panes side by side.
/// How long something has been running, as the panes show it: seconds for the first minute, then
/// minutes. The text changes once a minute after that, so a screen with only long-running steps on
/// it needs no redraw every second.
pub fn running_for(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m", s / 60)
    } else if s < 2 * 86400 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else {
        // A study last touched weeks ago: hours would be a long, unreadable number.
        format!("{}d{:02}h", s / 86400, s % 86400 / 3600)
    }
}

/// The age of polled data: in tens of seconds, then minutes (it changes at most every 10 s).
pub fn age_text(secs: u64) -> String {
    if secs < 10 {
        "<10s".to_string()
    } else if secs < 60 {
        format!("{}s", secs / 10 * 10)
    } else {
        format!("{}m", secs / 60)
    }
}

pub fn is_wide(area: Rect) -> bool {
    area.width >= 160 && area.height >= 40
}

pub fn draw(frame: &mut Frame, app: &App, ctx: &ViewCtx) {
    let area = frame.area();
    frame.render_widget(Block::default().style(ctx.style("text")), area);
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(1),
            Constraint::Min(3),
            Constraint::Length(1),
        ])
        .split(area);
    header::draw(frame, rows[0], app, ctx);
    if is_wide(area) {
        let cols = Layout::default()
            .direction(Direction::Horizontal)
            .constraints([Constraint::Percentage(50), Constraint::Percentage(50)])
            .split(rows[1]);
        let left = Layout::default()
            .direction(Direction::Vertical)
            .constraints([Constraint::Percentage(60), Constraint::Percentage(40)])
            .split(cols[0]);
        let right = Layout::default()
            .direction(Direction::Vertical)
            .constraints([Constraint::Percentage(60), Constraint::Percentage(40)])
            .split(cols[1]);
        pane(frame, left[0], app, ctx, Pane::Runs);
        pane(frame, left[1], app, ctx, Pane::Logs);
        // A focused Trials pane takes the big slot: its leaderboard and chart need the room.
        let (top, below) = if app.focus == Pane::Trials {
            (Pane::Trials, Pane::Metrics)
        } else if app.focus == Pane::Jobs || app.cluster {
            (Pane::Metrics, Pane::Jobs)
        } else {
            (Pane::Metrics, Pane::Trials)
        };
        pane(frame, right[0], app, ctx, top);
        pane(frame, right[1], app, ctx, below);
    } else {
        pane(frame, rows[1], app, ctx, app.focus);
    }
    header::footer(frame, rows[2], app, ctx);
    overlay::draw(frame, area, app, ctx);
}

/// A bordered pane; its title carries the number that focuses it.
fn block<'a>(app: &App, ctx: &ViewCtx, p: Pane, extra: &str) -> Block<'a> {
    let focused = app.focus == p;
    let (b, t) = if focused {
        ("border.focused", "title.focused")
    } else {
        ("border", "title")
    };
    Block::default()
        .borders(Borders::ALL)
        .border_style(ctx.style(b))
        .title(Line::styled(
            format!(" {} {}{} ", p.index() + 1, p.title(), extra),
            ctx.style(t),
        ))
}

fn pane(frame: &mut Frame, area: Rect, app: &App, ctx: &ViewCtx, p: Pane) {
    match p {
        Pane::Runs => runs::draw(frame, area, app, ctx, block(app, ctx, p, "")),
        Pane::Logs => logs::draw(frame, area, app, ctx, block(app, ctx, p, "")),
        Pane::Metrics => metrics::draw(frame, area, app, ctx, block(app, ctx, p, "")),
        Pane::Jobs if app.cluster => jobs::draw(frame, area, app, ctx, block(app, ctx, p, "")),
        Pane::Jobs => hint(
            frame,
            area,
            ctx,
            block(app, ctx, p, ""),
            "No SLURM cluster found on this host (no squeue on PATH): sortie shows jobs when one is there.",
        ),
        Pane::Trials => trials::draw(frame, area, app, ctx, ctx.trials, block(app, ctx, p, "")),
    }
}

/// An empty or error state: a short explanation inside the pane.
fn hint(frame: &mut Frame, area: Rect, ctx: &ViewCtx, block: Block, text: &str) {
    frame.render_widget(
        Paragraph::new(Line::styled(text.to_string(), ctx.style("text.dim")))
            .wrap(Wrap { trim: true })
            .block(block),
        area,
    );
}
