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

pub fn draw(frame: &mut Frame, area: Rect, app: &App, ctx: &ViewCtx) {
    let mut spans = vec![Span::styled(" sortie ", ctx.style("header"))];
    let backend = if app.cluster {
        "local + slurm"
    } else {
        "local"
    };
    spans.push(Span::styled(
        format!(" {backend} · {} ", app.user),
        ctx.style("text.dim"),
    ));
    let age = app.data_at.map(|t| t.elapsed().as_secs_f64());
    match (&app.data_error, age) {
        (Some(e), _) => spans.push(Span::styled(format!(" ✗ {e} "), ctx.style("error"))),
        (None, None) => spans.push(Span::styled(" loading… ", ctx.style("stale"))),
        (None, Some(a)) if a > STALE_AFTER_S => {
            spans.push(Span::styled(format!(" stale {a:.0}s "), ctx.style("stale")))
        }
        (None, Some(_)) => spans.push(Span::styled(" live ", ctx.style("text.dim"))),
    }
    let mut counts: Vec<(StepState, usize)> = Vec::new();
    for s in &app.snapshot.steps {
        match counts.iter_mut().find(|c| c.0 == s.state) {
            Some(c) => c.1 += 1,
            None => counts.push((s.state, 1)),
        }
    }
    counts.sort_by_key(|c| c.0 as u8);
    for (st, n) in counts {
        spans.push(Span::styled(
            format!(" {}{n}", st.glyph()),
            ctx.style(&format!("state.{}", st.as_str())),
        ));
    }
    if !is_wide(frame.area()) {
        spans.push(Span::raw("  "));
        for p in app.panes() {
            let key = if p == app.focus {
                "title.focused"
            } else {
                "text.dim"
            };
            spans.push(Span::styled(
                format!(" {}:{} ", p.index() + 1, p.title()),
                ctx.style(key),
            ));
        }
    }
    frame.render_widget(
        Paragraph::new(Line::from(spans)).style(ctx.style("header")),
        area,
    );
}

/// The footer: the latest status message for a few seconds, else key hints for the focused pane.
pub fn footer(frame: &mut Frame, area: Rect, app: &App, ctx: &ViewCtx) {
    if let Some((msg, at)) = &app.status
        && at.elapsed().as_secs() < 6
    {
        frame.render_widget(
            Paragraph::new(Line::styled(format!(" {msg}"), ctx.style("footer"))),
            area,
        );
        return;
    }
    let mut actions = vec![
        (Action::Help, "help"),
        (Action::Finder, "find"),
        (Action::CommandMode, "command"),
        (Action::NextPane, "pane"),
    ];
    match app.focus {
        Pane::Runs => actions.extend([
            (Action::Enter, "open"),
            (Action::Cancel, "cancel"),
            (Action::Rerun, "re-run"),
            (Action::RetryFailed, "retry"),
            (Action::Logs, "logs"),
        ]),
        Pane::Metrics => actions.extend([
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
    actions.push((Action::Quit, "quit"));
    let mut spans = Vec::new();
    for (a, label) in actions {
        if app.read_only && a.is_destructive() {
            continue;
        }
        if let Some(k) = ctx.keymap.keys_for(app.focus, &a).into_iter().next() {
            spans.push(Span::styled(format!(" {k}"), ctx.style("footer.key")));
            spans.push(Span::styled(format!(" {label} "), ctx.style("footer")));
        }
    }
    if app.read_only {
        spans.push(Span::styled(" read-only ", ctx.style("warning")));
    }
    frame.render_widget(
        Paragraph::new(Line::from(spans)).style(ctx.style("footer")),
        area,
    );
}
