//! The header (backend, user, data age, counts by state, the pane tabs) and the footer (status message
//! or the keys that matter here).

use super::{ViewCtx, is_wide};
use crate::runlog::StepState;
use crate::tui::action::{Action, Pane};
use crate::tui::app::App;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

/// Seconds after which data counts as stale.
pub const STALE_AFTER_S: f64 = 10.0;

/// How long a status message stays in the footer.
pub const STATUS_SHOWN_S: u64 = 6;

/// The header's word on the data: its error, `loading…`, `stale 42s` or `live`.
pub fn freshness(app: &App) -> String {
    let age = app.data_at.map(|t| t.elapsed().as_secs_f64());
    match (&app.data_error, age) {
        (Some(e), _) => format!(" ✗ {e} "),
        (None, None) => " loading… ".to_string(),
        (None, Some(a)) if a > STALE_AFTER_S => format!(" stale {a:.0}s "),
        (None, Some(_)) => " live ".to_string(),
    }
}

/// The status message, while it is shown.
pub fn status(app: &App) -> Option<&str> {
    app.status
        .as_ref()
        .filter(|(_, at)| at.elapsed().as_secs() < STATUS_SHOWN_S)
        .map(|(m, _)| m.as_str())
}

/// Display width of spans.
fn width(spans: &[Span]) -> usize {
    spans.iter().map(|s| s.width()).sum()
}

pub fn draw(frame: &mut Frame, area: Rect, app: &App, ctx: &ViewCtx) {
    let avail = area.width as usize;
    let mut left = vec![Span::styled(" sortie ", ctx.style("header"))];
    let freshness = freshness(app);
    let key = match (&app.data_error, app.data_at) {
        (Some(_), _) => "error",
        (None, Some(_)) if freshness == " live " => "text.dim",
        _ => "stale",
    };
    left.push(Span::styled(freshness, ctx.style(key)));
    // In the one-pane layout the tabs are the only sign of the other panes: they come first.
    let mut tabs = Vec::new();
    if !is_wide(frame.area()) {
        for p in app.panes() {
            let key = if p == app.focus {
                "title.focused"
            } else {
                "text.dim"
            };
            tabs.push(Span::styled(
                format!(" {}:{}", p.index() + 1, p.title()),
                ctx.style(key),
            ));
        }
        tabs.push(Span::raw(" "));
    }
    let mut counts: Vec<(StepState, usize)> = Vec::new();
    for s in &app.snapshot.steps {
        match counts.iter_mut().find(|c| c.0 == s.state) {
            Some(c) => c.1 += 1,
            None => counts.push((s.state, 1)),
        }
    }
    counts.sort_by_key(|c| c.0 as u8);
    let counts: Vec<Span> = counts
        .into_iter()
        .map(|(st, n)| {
            Span::styled(
                format!(" {}{n}", st.glyph()),
                ctx.style(&format!("state.{}", st.as_str())),
            )
        })
        .collect();
    let backend = if app.cluster {
        "local + slurm"
    } else {
        "local"
    };
    let who = Span::styled(format!(" {backend} · {} ", app.user), ctx.style("text.dim"));
    let mut spans = left;
    spans.extend(tabs);
    // Then what fits of the backend/user and the counts.
    if width(&spans) + who.width() <= avail {
        spans.push(who);
    }
    if width(&spans) + width(&counts) <= avail {
        spans.extend(counts);
    }
    frame.render_widget(
        Paragraph::new(Line::from(spans)).style(ctx.style("header")),
        area,
    );
}

/// The footer: which-key hints while a chord is pending, else the latest status message for a few
/// seconds, else key hints for the focused pane (as many as fit, help and quit always).
pub fn footer(frame: &mut Frame, area: Rect, app: &App, ctx: &ViewCtx) {
    if !ctx.hints.is_empty() {
        let mut spans = Vec::new();
        for (k, d) in ctx.hints {
            spans.push(Span::styled(format!(" {k}"), ctx.style("footer.key")));
            spans.push(Span::styled(format!(" {d} "), ctx.style("footer")));
        }
        spans.push(Span::styled(" Esc", ctx.style("footer.key")));
        spans.push(Span::styled(" cancel", ctx.style("footer")));
        frame.render_widget(
            Paragraph::new(Line::from(spans)).style(ctx.style("footer")),
            area,
        );
        return;
    }
    if let Some(msg) = status(app) {
        frame.render_widget(
            Paragraph::new(Line::styled(format!(" {msg}"), ctx.style("footer"))),
            area,
        );
        return;
    }
    let mut actions = vec![(Action::Help, "help")];
    match app.focus {
        Pane::Runs => actions.extend([
            (Action::Enter, "open"),
            (Action::Cancel, "cancel"),
            (Action::Rerun, "re-run"),
            (Action::RetryFailed, "retry"),
            (Action::Logs, "logs"),
        ]),
        Pane::Metrics => actions.extend([
            (Action::Down, "metric"),
            (Action::SmoothMore, "smooth+"),
            (Action::SmoothLess, "smooth-"),
            (Action::ToggleLogY, "log y"),
            (Action::CycleXAxis, "x axis"),
        ]),
        Pane::Logs => actions.extend([
            (Action::ToggleFollow, "follow"),
            (Action::ToggleWrap, "wrap"),
            (Action::ToggleStderr, "stderr"),
            (Action::Search, "search"),
        ]),
        _ => {}
    }
    actions.extend([
        (Action::Finder, "find"),
        (Action::CommandMode, "command"),
        (Action::NextPane, "pane"),
    ]);
    let hint = |a: &Action, label: &str| -> Option<Vec<Span<'static>>> {
        if app.read_only && a.is_destructive() {
            return None;
        }
        let k = ctx.keymap.keys_for(app.focus, a).into_iter().next()?;
        Some(vec![
            Span::styled(format!(" {k}"), ctx.style("footer.key")),
            Span::styled(format!(" {label} "), ctx.style("footer")),
        ])
    };
    let mut tail = hint(&Action::Quit, "quit").unwrap_or_default();
    if app.read_only {
        tail.push(Span::styled(" read-only ", ctx.style("warning")));
    }
    let avail = area.width as usize;
    let mut spans: Vec<Span> = Vec::new();
    for (a, label) in actions {
        if let Some(h) = hint(&a, label)
            && width(&spans) + width(&h) + width(&tail) <= avail
        {
            spans.extend(h);
        }
    }
    spans.extend(tail);
    frame.render_widget(
        Paragraph::new(Line::from(spans)).style(ctx.style("footer")),
        area,
    );
}
