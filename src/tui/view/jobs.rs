//! The Jobs pane: the user's SLURM jobs, live and recent, in sortable columns with state glyphs and
//! colours, the pending reason, a used/limit bar, efficiency for finished jobs, and the age of the data.

use super::ViewCtx;
use crate::index::JobLink;
use crate::slurm::model::{Job, StateClass};
use crate::tui::app::App;
use crate::tui::data::{JobTarget, job_target};
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Row, Table, TableState};

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

/// Time used against the limit: a five-cell bar, the time used, and the limit when `with_limit`.
fn time_cell(j: &Job, with_limit: bool) -> String {
    let used = j.time_used_s.unwrap_or(0);
    match j.time_limit_s {
        Some(limit) if limit > 0 => {
            let filled = ((used as f64 / limit as f64) * 5.0).round().clamp(0.0, 5.0) as usize;
            let bar = format!("{}{}", "▰".repeat(filled), "▱".repeat(5 - filled));
            if with_limit {
                format!("{bar} {}/{}", clock(used), clock(limit))
            } else {
                format!("{bar} {}", clock(used))
            }
        }
        _ if with_limit => format!("{}/∞", clock(used)),
        _ => clock(used),
    }
}

/// What the job belongs to (`→ run step`) when a run of the project submitted it, and its pending
/// reason (first), nodes, or exit and efficiency.
fn detail_cell(j: &Job, links: &[JobLink]) -> String {
    let link = match job_target(links, &j.id) {
        Some(JobTarget::Step(l)) => format!("→ {} {}", l.run, l.step),
        Some(JobTarget::Array { run, steps }) => format!("→ {run} · {steps} steps"),
        None => String::new(),
    };
    let detail = status_text(j);
    match (link.is_empty(), detail.is_empty()) {
        (true, _) => detail,
        (false, true) => link,
        // What a pending job waits on comes first: it is why it is not running.
        (false, false) if j.state.class() == StateClass::Queued => format!("{detail} · {link}"),
        (false, false) => format!("{link} · {detail}"),
    }
}

fn status_text(j: &Job) -> String {
    if j.is_finished() {
        let code = match (j.exit_code, j.signal) {
            (_, Some(s)) if s != 0 => Some(format!("sig {s}")),
            (Some(c), _) if c != 0 => Some(format!("exit {c}")),
            _ => None,
        };
        let cpu = j.cpu_efficiency().map(|e| format!("cpu {:.0}%", e * 100.0));
        let mem = j.mem_efficiency().map(|e| format!("mem {:.0}%", e * 100.0));
        return [code, cpu, mem]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
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
    // Only the rows on screen are built: 10 000 jobs cost no more than 50.
    let inner = block.inner(area);
    let visible = inner.height.saturating_sub(1).max(1) as usize;
    let offset = app
        .job_sel
        .saturating_sub(visible - 1)
        .min(jobs.len().saturating_sub(1));
    let shown = &jobs[offset..(offset + visible).min(jobs.len())];
    // Ids and names as wide as those on screen: what is left goes to what the job waits on or belongs
    // to. The partition and the time limit only where there is room (the pane is half the screen in
    // the wide layout).
    let width_of = |f: fn(&Job) -> usize, lo: usize, hi: usize| {
        shown.iter().map(|j| f(j)).max().unwrap_or(0).clamp(lo, hi) as u16
    };
    let roomy = inner.width >= 100;
    let mut columns = vec![
        (
            "JOBID",
            Constraint::Length(width_of(|j| j.id.chars().count(), 5, 14)),
        ),
        (
            "NAME",
            Constraint::Length(width_of(|j| j.name.chars().count(), 4, 20)),
        ),
        ("ST", Constraint::Length(5)),
    ];
    if roomy {
        columns.push(("PARTITION", Constraint::Length(11)));
    }
    columns.extend([
        ("TIME", Constraint::Length(if roomy { 21 } else { 13 })),
        ("REASON / NODES / EFFICIENCY", Constraint::Min(16)),
    ]);
    let header = Row::new(
        columns
            .iter()
            .map(|(h, _)| Cell::from(Span::styled(*h, ctx.style("text.dim")))),
    );
    // sortie's own jobs link to their run and step.
    let links = app.snapshot.job_links.as_slice();
    let rows: Vec<Row> = shown
        .iter()
        .map(|j| {
            let st = ctx.style(state_key(j.state.class()));
            let mut cells = vec![
                Cell::from(Span::styled(j.id.clone(), ctx.style("text"))),
                Cell::from(Span::styled(j.name.clone(), ctx.style("text"))),
                Cell::from(Span::styled(
                    format!("{} {}", j.state.glyph(), j.state.code()),
                    st,
                )),
            ];
            if roomy {
                cells.push(Cell::from(Span::styled(
                    j.partition.clone().unwrap_or_default(),
                    ctx.style("text.dim"),
                )));
            }
            cells.extend([
                Cell::from(Span::styled(time_cell(j, roomy), ctx.style("text"))),
                Cell::from(Span::styled(detail_cell(j, links), ctx.style("text.dim"))),
            ]);
            Row::new(cells)
        })
        .collect();
    let table = Table::new(rows, columns.iter().map(|(_, c)| *c))
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
