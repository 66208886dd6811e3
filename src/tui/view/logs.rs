//! The Logs pane: the tail of the selected step's stdout or stderr, following new lines, with ANSI colours
//! rendered, wrap on demand, and search matches marked.

use super::ViewCtx;
use crate::tui::app::App;
use ansi_to_tui::IntoText;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Paragraph, Wrap};

pub fn draw(frame: &mut Frame, area: Rect, app: &App, ctx: &ViewCtx, block: Block) {
    let Some(step) = &app.log_step else {
        super::hint(
            frame,
            area,
            ctx,
            block,
            "Select a step in the Runs pane and press l to follow its output here.",
        );
        return;
    };
    let which = if app.logs.stderr { "stderr" } else { "stdout" };
    let follow = if app.logs.follow { " · following" } else { "" };
    let block = block.title(Line::styled(
        format!(" {step} · {which}{follow} "),
        ctx.style("title"),
    ));
    let Some(tail) = app.logs.tail.as_ref().filter(|t| &t.step == step) else {
        super::hint(frame, area, ctx, block, "waiting for output…");
        return;
    };
    if tail.text.is_empty() {
        super::hint(frame, area, ctx, block, "(empty so far)");
        return;
    }
    let inner_h = block.inner(area).height as usize;
    let mut text: Text = tail
        .text
        .as_bytes()
        .into_text()
        .unwrap_or_else(|_| Text::raw(tail.text.clone()));
    if let Some(term) = &app.logs.search {
        for line in text.lines.iter_mut() {
            let plain: String = line.spans.iter().map(|s| s.content.as_ref()).collect();
            if plain.contains(term.as_str()) {
                line.spans
                    .insert(0, Span::styled("» ", ctx.style("log.match")));
            }
        }
    }
    if tail.truncated {
        text.lines.insert(
            0,
            Line::styled(
                "… (only the end of a large file is shown)",
                ctx.style("text.dim"),
            ),
        );
    }
    let total = text.lines.len();
    let scroll = if app.logs.follow { 0 } else { app.logs.scroll };
    let top = total.saturating_sub(inner_h + scroll);
    let mut p = Paragraph::new(text)
        .block(block)
        .scroll((top.min(u16::MAX as usize) as u16, 0));
    if app.logs.wrap {
        p = p.wrap(Wrap { trim: false });
    }
    frame.render_widget(p, area);
}
