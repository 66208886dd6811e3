//! The Trials pane: the studies found, the selected study's leaderboard (only the rows on screen are
//! formatted), and a chart of it through the curves widget. Pure: reads the model, writes the frame.

use super::ViewCtx;
use crate::trials::TrialState;
use crate::trials::report::{direction_name, short};
use crate::tui::app::App;
use crate::tui::chart::ChartStyles;
use crate::tui::trials::board::{Column, cell};
use crate::tui::trials::feed::StudyView;
use crate::tui::trials::plots::TrialsCharts;
use crate::tui::trials::{ChartKind, Stale, TrialsFocus, TrialsView};
use crate::util::truncate;
use ratatui::Frame;
use ratatui::layout::{Constraint, Direction as Split, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

/// Width from which the chart goes beside the leaderboard instead of under it.
const SIDE_BY_SIDE: u16 = 130;
/// Height from which the chart fits under the leaderboard.
const STACKED: u16 = 14;

pub fn draw(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    ctx: &ViewCtx,
    charts: &TrialsCharts,
    block: Block,
) {
    let v = &app.trials;
    if v.data.studies.is_empty() {
        let searched: Vec<String> = v
            .data
            .sources
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let mut text = format!(
            "No Optuna study found in {}. Open others with `sortie --trials PATH` (a .db or journal file, or a folder), or list them under [trials] paths in config.toml.",
            if searched.is_empty() {
                "the project folder".into()
            } else {
                searched.join(", ")
            }
        );
        if let Some(p) = v.data.problems.first() {
            text.push_str(&format!(" ✗ {p}"));
        }
        super::hint(frame, area, ctx, block, &text);
        return;
    }
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let problems = u16::from(!v.data.problems.is_empty());
    // While the leaderboard has the cursor the studies list shrinks to the selected one.
    let studies_h = if v.focus == TrialsFocus::Board {
        2
    } else {
        (v.data.studies.len() as u16 + 1).clamp(2, 6)
    };
    let rows = Layout::default()
        .direction(Split::Vertical)
        .constraints([
            Constraint::Length(studies_h),
            Constraint::Length(1),
            Constraint::Min(1),
            Constraint::Length(problems),
        ])
        .split(inner);
    studies(frame, rows[0], v, ctx);
    let body = rows[2];
    let (table, chart) = if body.width >= SIDE_BY_SIDE {
        let c = Layout::default()
            .direction(Split::Horizontal)
            .constraints([Constraint::Percentage(55), Constraint::Percentage(45)])
            .split(body);
        (c[0], Some(c[1]))
    } else if body.height >= STACKED {
        let c = Layout::default()
            .direction(Split::Vertical)
            .constraints([Constraint::Percentage(55), Constraint::Percentage(45)])
            .split(body);
        (c[0], Some(c[1]))
    } else {
        (body, None)
    };
    board_title(frame, rows[1], v, ctx, chart.is_some());
    leaderboard(frame, table, v, ctx);
    if let Some(c) = chart {
        draw_chart(frame, c, v, ctx, charts);
    }
    if problems > 0 {
        let n = v.data.problems.len();
        let text = format!(
            "⚠ {n} problem(s) reading studies, newest: {}",
            v.data.problems[n - 1]
        );
        frame.render_widget(
            Paragraph::new(Line::styled(text, ctx.style("warning"))),
            rows[3],
        );
    }
}

/// How long ago a Unix time was: "3m".
fn ago(now: f64, t: Option<f64>) -> String {
    match t {
        Some(t) => super::running_for(now - t),
        None => "-".into(),
    }
}

fn studies(frame: &mut Frame, area: Rect, v: &TrialsView, ctx: &ViewCtx) {
    let now = v.now();
    // What a researcher scans for (counts, best, last change: optuna-dashboard#252) fits in 80
    // columns; the direction and the file follow when there is room.
    let row = |cells: [&str; 11]| {
        format!(
            "{:<16} {:>6} {:>6} {:>6} {:>4} {:>4} {:>4} {:>13} {:>7}  {:<9} {}",
            truncate(cells[0], 16),
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            cells[5],
            cells[6],
            truncate(cells[7], 13),
            truncate(cells[8], 7),
            truncate(cells[9], 9),
            cells[10]
        )
    };
    let header = row([
        "study",
        "trials",
        "done",
        "pruned",
        "fail",
        "run",
        "wait",
        "best",
        "changed",
        "direction",
        "file",
    ]);
    let mut lines = vec![Line::styled(format!("  {header}"), ctx.style("header"))];
    let visible = usize::from(area.height.saturating_sub(1)).max(1);
    let offset = first_row(v.study_sel, visible);
    for (i, s) in v.data.studies.iter().enumerate().skip(offset).take(visible) {
        let st = &s.study;
        let dirs: Vec<&str> = st.directions.iter().map(|d| direction_name(*d)).collect();
        let sum = &s.summary;
        let best = match sum.best {
            Some((n, value)) => format!("{} #{n}", short(value)),
            None if sum.front > 0 => format!("{} on front", sum.front),
            None => "-".to_string(),
        };
        let file = s
            .source
            .file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_default();
        let counts = [
            st.trials.len(),
            sum.complete,
            sum.pruned,
            sum.failed,
            sum.running,
            sum.waiting,
        ]
        .map(|n| n.to_string());
        let text = row([
            &st.name,
            &counts[0],
            &counts[1],
            &counts[2],
            &counts[3],
            &counts[4],
            &counts[5],
            &best,
            &ago(now, sum.last_change),
            &dirs.join(","),
            &file,
        ]);
        let marker = if i == v.study_sel { "▸" } else { " " };
        let style = if i == v.study_sel && v.focus == TrialsFocus::Studies {
            ctx.style("selection")
        } else {
            ctx.style("text")
        };
        lines.push(Line::styled(format!("{marker} {text}"), style));
    }
    frame.render_widget(Paragraph::new(lines), area);
}

fn board_title(frame: &mut Frame, area: Rect, v: &TrialsView, ctx: &ViewCtx, chart: bool) {
    let Some(s) = v.study() else { return };
    let mut parts = vec![format!(
        "{} of {} trials",
        v.board.rows.len(),
        s.study.trials.len()
    )];
    // Why the selected trial looks dead comes first: it is what the user is looking at.
    if let Some(t) = v.selected_trial()
        && let Some(why) = v.stale(s, t)
    {
        parts.push(format!("#{} stale: {}", t.number, stale_text(why)));
    }
    parts.extend([
        format!(
            "sorted by {}{}",
            v.sort_label(),
            if v.query.reverse { " ↕" } else { "" }
        ),
        match v.query.state {
            Some(st) => format!("only {}", st.name().to_lowercase()),
            None => "all states".into(),
        },
    ]);
    if v.query.hide_pruned {
        parts.push("pruned hidden".into());
    }
    if !v.query.filter.is_empty() {
        parts.push(format!("filter {:?}", v.query.filter));
    }
    let stale = stale_count(v, s);
    if stale > 0 {
        parts.push(format!("{stale} stale"));
    }

    if !chart {
        parts.push("chart: widen or heighten the pane".into());
    }
    let line = Line::from(vec![
        Span::styled(format!("─ {} ", s.study.name), ctx.style("title")),
        Span::styled(parts.join(" · "), ctx.style("text.dim")),
    ]);
    frame.render_widget(Paragraph::new(line), area);
}

fn state_style(ctx: &ViewCtx, st: TrialState, stale: bool) -> Style {
    ctx.style(match st {
        TrialState::Running if stale => "stale",
        TrialState::Running => "state.running",
        TrialState::Complete => "state.succeeded",
        TrialState::Pruned => "state.cancelled",
        TrialState::Fail => "state.failed",
        TrialState::Waiting => "state.queued",
    })
}

/// The first row on screen: the cursor stays in view, at the bottom when scrolling down.
pub fn first_row(sel: usize, height: usize) -> usize {
    if height == 0 {
        0
    } else {
        sel.saturating_sub(height - 1)
    }
}

fn leaderboard(frame: &mut Frame, area: Rect, v: &TrialsView, ctx: &ViewCtx) {
    let Some(view) = v.study() else { return };
    let b = &v.board;
    let buf = frame.buffer_mut();
    let mut header = String::from("  ");
    for (c, w) in b.columns.iter().zip(&b.widths) {
        header.push_str(&pad(&c.header(&view.study), *w, numeric(c)));
        header.push(' ');
    }
    buf.set_stringn(
        area.x,
        area.y,
        &header,
        usize::from(area.width),
        ctx.style("header"),
    );
    let height = usize::from(area.height.saturating_sub(1));
    if b.rows.is_empty() {
        if height > 0 {
            buf.set_stringn(
                area.x + 2,
                area.y + 1,
                "no trial matches (/ filter, t state, p pruned)",
                usize::from(area.width.saturating_sub(2)),
                ctx.style("text.dim"),
            );
        }
        return;
    }
    let first = first_row(v.row_sel, height);
    for (line, &i) in b
        .rows
        .iter()
        .enumerate()
        .skip(first)
        .take(height)
        .map(|(n, i)| (n - first, i))
    {
        let t = &view.study.trials[i];
        let stale = v.stale(view, t).is_some();
        let selected = first + line == v.row_sel && v.focus == TrialsFocus::Board;
        let base = if selected {
            ctx.style("selection")
        } else {
            ctx.style("text")
        };
        let y = area.y + 1 + line as u16;
        let marker = if b.best.contains(&t.number) {
            "★"
        } else if v.marked.contains(&t.number) {
            "●"
        } else {
            " "
        };
        let row = Rect::new(area.x, y, area.width, 1);
        buf.set_style(row, base);
        let mut x = area.x;
        let right = area.right();
        let mut put = |text: &str, style: Style, x: &mut u16| {
            if *x < right {
                let (nx, _) = buf.set_stringn(*x, y, text, usize::from(right - *x), style);
                *x = nx;
            }
        };
        put(marker, base.patch(ctx.style("chart.series.1")), &mut x);
        put(" ", base, &mut x);
        for (c, w) in b.columns.iter().zip(&b.widths) {
            let text = pad(&cell(t, c, stale), *w, numeric(c));
            let style = match c {
                Column::State => base.patch(state_style(ctx, t.state, stale)),
                _ => base,
            };
            put(&text, style, &mut x);
            put(" ", base, &mut x);
        }
    }
}

fn numeric(c: &Column) -> bool {
    matches!(c, Column::Number | Column::Value(_) | Column::Duration)
}

fn pad(text: &str, w: usize, right: bool) -> String {
    let t = truncate(text, w);
    if right {
        format!("{t:>w$}")
    } else {
        format!("{t:<w$}")
    }
}

fn draw_chart(frame: &mut Frame, area: Rect, v: &TrialsView, ctx: &ViewCtx, charts: &TrialsCharts) {
    if area.height < 3 {
        return;
    }
    let title = Line::styled(
        format!(
            "─ {} (v: next chart{})",
            charts.info.title,
            if v.log_y { ", log y" } else { "" }
        ),
        ctx.style("title"),
    );
    frame.render_widget(Paragraph::new(title), Rect { height: 1, ..area });
    let plot = Rect {
        y: area.y + 1,
        height: area.height - 1,
        ..area
    };
    if v.chart == ChartKind::Importance {
        importance(frame, plot, v, ctx);
        return;
    }
    if let Some(why) = &charts.info.empty {
        frame.render_widget(
            Paragraph::new(Line::styled(why.clone(), ctx.style("text.dim"))),
            plot,
        );
        return;
    }
    let styles = ChartStyles {
        series: charts.plotted.iter().map(|p| ctx.style(p.style)).collect(),
        raw: ctx.style("chart.raw"),
        axis: ctx.style("chart.axis"),
        text: ctx.style("text"),
        cursor: ctx.style("chart.cursor"),
    };
    charts.render(frame.buffer_mut(), plot, styles, ctx.theme.name());
}

/// Importance as horizontal bars, largest first.
fn importance(frame: &mut Frame, area: Rect, v: &TrialsView, ctx: &ViewCtx) {
    let Some(s) = v.study() else { return };
    let Some(imp) = &s.importance else {
        let why = if s.study.directions.len() > 1 {
            "importance is computed for single-objective studies"
        } else {
            "not enough complete trials with params for an importance yet"
        };
        frame.render_widget(
            Paragraph::new(Line::styled(why, ctx.style("text.dim"))),
            area,
        );
        return;
    };
    let name_w = imp
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0)
        .min(24);
    let bar_w = usize::from(area.width).saturating_sub(name_w + 9).max(1);
    let lines: Vec<Line> = imp
        .iter()
        .take(usize::from(area.height))
        .map(|(name, x)| {
            let eighths = (x.clamp(0.0, 1.0) * (bar_w * 8) as f64).round() as usize;
            let mut bar = "█".repeat(eighths / 8);
            if !eighths.is_multiple_of(8) {
                bar.push([' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'][eighths % 8]);
            }
            Line::from(vec![
                Span::styled(
                    format!("{:<name_w$} ", truncate(name, name_w)),
                    ctx.style("text"),
                ),
                Span::styled(bar, ctx.style("chart.series.0")),
                Span::styled(format!(" {x:.3}"), ctx.style("text.dim")),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), area);
}

/// How many running trials of `s` look dead now (only running ones can).
fn stale_count(v: &TrialsView, s: &StudyView) -> usize {
    s.summary
        .running_at
        .iter()
        .filter_map(|&i| s.study.trials.get(i))
        .filter(|t| v.stale(s, t).is_some())
        .count()
}

/// What of the pane changes with the clock alone: the studies' ages and the stale trials.
pub fn clock_signature(v: &TrialsView) -> String {
    let now = v.now();
    let mut sig = String::new();
    for s in &v.data.studies {
        sig.push_str(&ago(now, s.summary.last_change));
        sig.push('|');
    }
    if let Some(s) = v.study() {
        sig.push_str(&stale_count(v, s).to_string());
    }
    sig
}

/// Why a trial looks stale, in words.
pub fn stale_text(s: Stale) -> String {
    match s {
        Stale::Heartbeat(age) => format!("heartbeat {} old", super::running_for(age)),
        Stale::Unchanged(age) => format!("unchanged for {}", super::running_for(age)),
    }
}
