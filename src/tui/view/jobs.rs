//! The Jobs pane: the user's SLURM jobs, live and recent, in sortable columns with state glyphs and
//! colours, the pending reason, a used/limit bar, efficiency for finished jobs, and the age of the data.

use super::ViewCtx;
use crate::slurm::model::{Job, StateClass};
use crate::tui::app::App;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Row, Table, TableState};
use std::collections::HashMap;

fn state_key(c: StateClass) -> &'static str {
    match c {
        StateClass::Queued => "state.queued",
        StateClass::Running => "state.running",
        StateClass::Succeeded => "state.succeeded",
        StateClass::Failed => "state.failed",
        StateClass::Cancelled => "state.cancelled",
        StateClass::Preempted | StateClass::Suspended => "state.blocked",
        StateClass::Unknown => "text.dim",
    }
}

/// `1:02:03` or `12:05`.
fn clock(s: u64) -> String {
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

fn time_cell(j: &Job) -> String {
    let used = j.time_used_s.unwrap_or(0);
    match j.time_limit_s {
        Some(limit) if limit > 0 => {
            let filled = ((used as f64 / limit as f64) * 5.0).round().clamp(0.0, 5.0) as usize;
            format!(
                "{}{} {}/{}",
                "▰".repeat(filled),
                "▱".repeat(5 - filled),
                clock(used),
                clock(limit)
            )
        }
        _ => format!("{}/∞", clock(used)),
    }
}

fn detail_cell(j: &Job, links: &HashMap<&str, &str>) -> String {
    if let Some(step) = links.get(j.id.as_str()) {
        return format!("→ {step}");
    }
    if j.is_finished() {
        let cpu = j
            .cpu_efficiency()
            .map(|e| format!("cpu {:.0}%", e * 100.0))
            .unwrap_or_default();
        let mem = j
            .mem_efficiency()
            .map(|e| format!(" mem {:.0}%", e * 100.0))
            .unwrap_or_default();
        let code = match (j.exit_code, j.signal) {
            (_, Some(s)) if s != 0 => format!("sig {s} "),
            (Some(c), _) if c != 0 => format!("exit {c} "),
            _ => String::new(),
        };
        return format!("{code}{cpu}{mem}");
    }
    match (&j.reason, &j.nodes) {
        (Some(r), _) if j.state.class() == StateClass::Queued => r.clone(),
        (_, Some(n)) => n.clone(),
        (Some(r), None) => r.clone(),
        _ => String::new(),
    }
}

pub fn draw(frame: &mut Frame, area: Rect, app: &App, ctx: &ViewCtx, block: Block) {
    let Some(snap) = &app.jobs else {
        super::hint(frame, area, ctx, block, "Asking SLURM for your jobs…");
        return;
    };
    let age = snap
        .age()
        .map(|a| {
            if snap.stale {
                format!("stale {}", super::age_text(a.as_secs()))
            } else {
                format!("{} ago", super::age_text(a.as_secs()))
            }
        })
        .unwrap_or_else(|| "not read yet".into());
    let sort = format!(
        "{}{}",
        app.job_sort.column.label(),
        if app.job_sort.reverse { " ↑" } else { "" }
    );
    let title_style = if snap.stale || snap.error.is_some() {
        ctx.style("stale")
    } else {
        ctx.style("title")
    };
    let mut title = format!(
        " {} jobs · {age} · {:.1} rpc/min · by {sort} ",
        snap.jobs.len(),
        snap.rpc_per_min
    );
    if let Some(e) = &snap.error {
        title.push_str(&format!("· ✗ {} ", e.lines().next().unwrap_or("")));
    }
    let block = block.title(Line::styled(title, title_style));
    let jobs = app.sorted_jobs();
    if jobs.is_empty() {
        super::hint(frame, area, ctx, block, "No jobs in the last day.");
        return;
    }
    let header = Row::new(
        [
            "JOBID",
            "NAME",
            "ST",
            "PARTITION",
            "TIME",
            "REASON / NODES / EFFICIENCY",
        ]
        .map(|h| Cell::from(Span::styled(h, ctx.style("text.dim")))),
    );
    // Only the rows on screen are built: 10 000 jobs cost no more than 50.
    let visible = block.inner(area).height.saturating_sub(1).max(1) as usize;
    let offset = app
        .job_sel
        .saturating_sub(visible - 1)
        .min(jobs.len().saturating_sub(1));
    // sortie's own jobs link to their step.
    let links: HashMap<&str, &str> = app
        .snapshot
        .steps
        .iter()
        .filter_map(|s| Some((s.job_id.as_deref()?, s.name.as_str())))
        .collect();
    let rows: Vec<Row> = jobs
        .iter()
        .skip(offset)
        .take(visible)
        .map(|j| {
            let st = ctx.style(state_key(j.state.class()));
            Row::new(vec![
                Cell::from(Span::styled(j.id.clone(), ctx.style("text"))),
                Cell::from(Span::styled(j.name.clone(), ctx.style("text"))),
                Cell::from(Span::styled(
                    format!("{} {}", j.state.glyph(), j.state.code()),
                    st,
                )),
                Cell::from(Span::styled(
                    j.partition.clone().unwrap_or_default(),
                    ctx.style("text.dim"),
                )),
                Cell::from(Span::styled(time_cell(j), ctx.style("text"))),
                Cell::from(Span::styled(detail_cell(j, &links), ctx.style("text.dim"))),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(12),
            Constraint::Min(12),
            Constraint::Length(6),
            Constraint::Length(10),
            Constraint::Length(22),
            Constraint::Min(16),
        ],
    )
    .header(header)
    .block(block)
    .row_highlight_style(if app.focus == crate::tui::action::Pane::Jobs {
        ctx.style("selection")
    } else {
        ctx.style("text")
    });
    let mut state = TableState::default().with_selected(Some(app.job_sel.saturating_sub(offset)));
    frame.render_stateful_widget(table, area, &mut state);
}
