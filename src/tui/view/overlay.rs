//! Overlays drawn over the panes: help (generated from the active keymap), the confirmation that names
//! what an action touches, the command/filter/search line, and the finder.

use super::ViewCtx;
use crate::tui::app::{App, Input, Overlay};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, List, ListItem, ListState, Paragraph, Wrap};

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// Help rows from the active keymap, the ones that change runs and open things first, so a small
/// terminal still shows what matters.
fn help_rows(app: &App, ctx: &ViewCtx) -> Vec<(String, String)> {
    use crate::tui::action::Action;
    use crate::tui::config::describe;
    // The table lists actions in help order.
    let rank = |d: &str| {
        crate::tui::action::ACTIONS
            .iter()
            .position(|s| s.help == d)
            .unwrap_or(usize::MAX)
    };
    // `1`…`5` take one row, not five.
    let focus = describe(&Action::FocusPane(1));
    let mut rows: Vec<(String, String)> = ctx
        .keymap
        .help_rows(app.focus)
        .into_iter()
        .filter(|(_, d)| !d.starts_with("focus the "))
        .collect();
    rows.sort_by_key(|(_, d)| rank(d));
    rows.push(("1…5".to_string(), focus.to_string()));
    rows
}

fn frame_block<'a>(title: &str, ctx: &ViewCtx, border: &str) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(ctx.style(border))
        .style(ctx.style("overlay"))
        .title(Line::styled(
            format!(" {title} "),
            ctx.style("title.focused"),
        ))
}

pub fn draw(frame: &mut Frame, area: Rect, app: &App, ctx: &ViewCtx) {
    match &app.overlay {
        None => {}
        Some(Overlay::Help) => {
            let rows = help_rows(app, ctx);
            let kw = rows
                .iter()
                .map(|(k, _)| k.chars().count())
                .max()
                .unwrap_or(0)
                .min(24);
            let lines: Vec<Line> = rows
                .into_iter()
                .map(|(k, d)| {
                    Line::from(vec![
                        Span::styled(format!("{k:>kw$}  "), ctx.style("footer.key")),
                        Span::styled(d, ctx.style("text")),
                    ])
                })
                .collect();
            let h = (lines.len() as u16 + 2).min(area.height.saturating_sub(2));
            let r = centered(area, 72, h);
            frame.render_widget(Clear, r);
            frame.render_widget(
                Paragraph::new(lines).block(frame_block(
                    "keys (Esc closes)",
                    ctx,
                    "overlay.border",
                )),
                r,
            );
        }
        Some(Overlay::Confirm(c)) => {
            let r = centered(area, 64, 7);
            frame.render_widget(Clear, r);
            frame.render_widget(
                Paragraph::new(vec![
                    Line::styled(c.message.clone(), ctx.style("text")),
                    Line::raw(""),
                    Line::from(vec![
                        Span::styled(" y ", ctx.style("confirm.danger")),
                        Span::styled(" yes   ", ctx.style("text")),
                        Span::styled(" n ", ctx.style("footer.key")),
                        Span::styled(" no", ctx.style("text")),
                    ]),
                ])
                .wrap(Wrap { trim: true })
                .block(frame_block("confirm", ctx, "confirm.danger")),
                r,
            );
        }
        Some(Overlay::Input(input)) => {
            let (prompt, text) = match input {
                Input::Command(t) => (":", t),
                Input::Filter(t) => ("filter /", t),
                Input::LogSearch(t) => ("search /", t),
                Input::LaunchFile(t) => ("launch pipeline file: ", t),
            };
            let r = Rect {
                x: area.x,
                y: area.y + area.height.saturating_sub(1),
                width: area.width,
                height: 1,
            };
            frame.render_widget(Clear, r);
            frame.render_widget(
                Paragraph::new(Line::from(vec![
                    Span::styled(prompt, ctx.style("footer.key")),
                    Span::styled(format!("{text}▏"), ctx.style("text")),
                ])),
                r,
            );
        }
        Some(Overlay::Finder(f)) => {
            let r = centered(
                area,
                80.min(area.width.saturating_sub(4)),
                area.height.saturating_sub(4).min(20),
            );
            frame.render_widget(Clear, r);
            let block = frame_block(
                &format!(
                    "find: {}▏  ({}/{})",
                    f.query,
                    f.matches.len(),
                    f.items.len()
                ),
                ctx,
                "overlay.border",
            );
            let items: Vec<ListItem> = f
                .matches
                .iter()
                .take(r.height as usize)
                .map(|m| {
                    let it = &f.items[m.item];
                    // Positions only for the rows on screen.
                    let indices = f.indices(m.item);
                    let mut spans = vec![Span::styled(
                        format!("{:<7}", it.kind.label()),
                        ctx.style("text.dim"),
                    )];
                    for (i, ch) in it.text.chars().enumerate() {
                        let key = if indices.binary_search(&i).is_ok() {
                            "match"
                        } else {
                            "text"
                        };
                        spans.push(Span::styled(ch.to_string(), ctx.style(key)));
                    }
                    ListItem::new(Line::from(spans))
                })
                .collect();
            let list = List::new(items)
                .block(block)
                .highlight_style(ctx.style("selection"));
            let mut st = ListState::default().with_selected(Some(f.selected));
            frame.render_stateful_widget(list, r, &mut st);
        }
    }
}
