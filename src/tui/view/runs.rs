//! The Runs pane: the runs list beside the selected run's DAG, drawn as layers with edges; matrix steps
//! grouped with a progress bar and count, expandable; every state with a glyph and a colour.

use super::ViewCtx;
use crate::index::StepRow;
use crate::runlog::StepState;
use crate::slurm::model::{Job, StateClass};
use crate::tui::app::{App, DagRow, RunsFocus};
use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, List, ListItem, ListState, Paragraph};

pub fn draw(frame: &mut Frame, area: Rect, app: &App, ctx: &ViewCtx, block: Block) {
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if app.snapshot.runs.is_empty() {
        frame.render_widget(
            Paragraph::new(vec![
                Line::styled("No runs here yet.", ctx.style("text")),
                Line::styled(
                    "Press n to launch a pipeline, or run `sortie run` / `sortie demo` in a shell.",
                    ctx.style("text.dim"),
                ),
            ]),
            inner,
        );
        return;
    }
    let cols = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([
            Constraint::Length(34.min(inner.width / 2)),
            Constraint::Min(10),
        ])
        .split(inner);
    runs_list(frame, cols[0], app, ctx);
    dag(frame, cols[1], app, ctx);
}

fn runs_list(frame: &mut Frame, area: Rect, app: &App, ctx: &ViewCtx) {
    let now = crate::util::now();
    let items: Vec<ListItem> = app
        .visible_runs()
        .into_iter()
        .map(|i| {
            let r = &app.snapshot.runs[i];
            let glyph = match r.state {
                crate::runlog::RunState::Running => '▶',
                crate::runlog::RunState::Succeeded => '✓',
                crate::runlog::RunState::Failed => '✗',
                crate::runlog::RunState::Cancelled => '⊘',
            };
            let style = ctx.style(&format!("state.{}", r.state.as_str()));
            // Nobody drives it: say so where the pipeline's name was (`e` resumes it).
            if app.snapshot.dead_engines.contains(&r.id) {
                return ListItem::new(Line::from(vec![
                    Span::styled("!", ctx.style("state.failed")),
                    Span::raw(" "),
                    Span::styled(format!("{} ", r.id), ctx.style("text")),
                    Span::styled("engine died ", ctx.style("state.failed")),
                    Span::styled(format!("{:>3}/{:<3}", r.steps_done, r.steps_total), style),
                ]));
            }
            let took = match r.ended {
                Some(e) => crate::util::human_duration(e - r.created),
                None => super::running_for(now - r.created),
            };
            let pin = if app.pinned.contains(&r.id) {
                "◆"
            } else {
                " "
            };
            ListItem::new(Line::from(vec![
                Span::styled(format!("{glyph}"), style),
                Span::styled(pin, ctx.style("match")),
                Span::styled(format!("{} ", r.id), ctx.style("text")),
                Span::styled(format!("{:<10.10} ", r.pipeline), ctx.style("text.dim")),
                Span::styled(format!("{:>3}/{:<3}", r.steps_done, r.steps_total), style),
                Span::styled(format!(" {took}"), ctx.style("text.dim")),
            ]))
        })
        .collect();
    let title = if app.filter.is_empty() {
        " runs ".to_string()
    } else {
        format!(" runs /{} ", app.filter)
    };
    let focused = app.runs_focus == RunsFocus::Runs;
    let list = List::new(items)
        .block(
            Block::default()
                .borders(Borders::RIGHT)
                .border_style(ctx.style("border"))
                .title(Line::styled(
                    title,
                    ctx.style(if focused { "title.focused" } else { "title" }),
                )),
        )
        .highlight_style(if focused {
            ctx.style("selection")
        } else {
            ctx.style("text")
        });
    let mut state = ListState::default().with_selected(Some(app.run_sel));
    frame.render_stateful_widget(list, area, &mut state);
}

/// A bar of `width` cells: done ▰, rest ▱.
fn bar(done: usize, total: usize, width: usize) -> String {
    let filled = if total == 0 {
        0
    } else {
        (done * width).div_ceil(total).min(width)
    };
    format!("{}{}", "▰".repeat(filled), "▱".repeat(width - filled))
}

/// The state a group shows: running beats failed beats pending beats the rest.
fn group_state(members: &[&StepRow]) -> StepState {
    let order = [
        StepState::Running,
        StepState::Failed,
        StepState::Queued,
        StepState::Pending,
        StepState::Blocked,
        StepState::Cancelled,
        StepState::Succeeded,
        StepState::Cached,
    ];
    order
        .into_iter()
        .find(|st| members.iter().any(|m| m.state == *st))
        .unwrap_or(StepState::Pending)
}

/// A step the engine counts as running while its Slurm job still waits in the queue: that job.
fn waiting_in_slurm<'a>(s: &StepRow, app: &'a App) -> Option<&'a Job> {
    if s.state != StepState::Running {
        return None;
    }
    let j = app.slurm_job(s.job_id.as_deref()?)?;
    (j.state.class() == StateClass::Queued).then_some(j)
}

/// A step's glyph, state word and its style key, and how long it has run: a step whose Slurm job is
/// still pending shows as queued, with what it waits on, and no running time (there is none yet); a
/// running one counts from its job's start.
fn shown_state(s: &StepRow, app: &App, now: f64) -> (char, String, String, String) {
    match waiting_in_slurm(s, app) {
        Some(j) => (
            StepState::Queued.glyph(),
            format!("queued · {}", j.reason.as_deref().unwrap_or("in Slurm")),
            "state.queued".to_string(),
            String::new(),
        ),
        None => {
            // A running Slurm step has run since its job started, not since it was submitted.
            let started = s
                .job_id
                .as_deref()
                .and_then(|id| app.slurm_job(id))
                .and_then(|j| j.start);
            let time = match started {
                Some(t) if s.state == StepState::Running => super::running_for(now - t as f64),
                _ => elapsed(s, now),
            };
            // Another host runs it: say where, and how fresh its heartbeat is.
            let word = match app.snapshot.remote.get(&s.name) {
                Some(r) if s.state == StepState::Running => r.describe(now),
                _ => s.state.to_string(),
            };
            (
                s.state.glyph(),
                word,
                format!("state.{}", s.state.as_str()),
                time,
            )
        }
    }
}

/// The time a DAG row shows for a step (empty while its Slurm job waits in the queue).
pub fn step_time(s: &StepRow, app: &App, now: f64) -> String {
    shown_state(s, app, now).3
}

fn elapsed(s: &StepRow, now: f64) -> String {
    match (s.started, s.ended) {
        (Some(b), Some(e)) => crate::util::human_duration(e - b),
        (Some(b), None) if s.state == StepState::Running => super::running_for(now - b),
        _ => String::new(),
    }
}

fn dag(frame: &mut Frame, area: Rect, app: &App, ctx: &ViewCtx) {
    let now = crate::util::now();
    let steps = &app.snapshot.steps;
    let mut items = Vec::new();
    for row in &app.dag {
        match row {
            DagRow::Group {
                name,
                depth,
                needs,
                members,
                matrix,
                expanded,
            } => {
                let ms: Vec<&StepRow> = members.iter().filter_map(|&i| steps.get(i)).collect();
                let st = group_state(&ms);
                let style = ctx.style(&format!("state.{}", st.as_str()));
                let indent = "   ".repeat(*depth);
                let edge = if *depth > 0 { "└▶ " } else { "" };
                let mut spans = vec![
                    Span::styled(format!("{indent}{edge}"), ctx.style("text.dim")),
                    Span::styled(format!("{} ", st.glyph()), style),
                    Span::styled(name.clone(), ctx.style("text")),
                ];
                if *matrix {
                    let done = ms.iter().filter(|m| m.state.is_done_ok()).count();
                    let waiting = ms
                        .iter()
                        .filter(|m| waiting_in_slurm(m, app).is_some())
                        .count();
                    let running =
                        ms.iter().filter(|m| m.state == StepState::Running).count() - waiting;
                    let failed = ms.iter().filter(|m| m.state == StepState::Failed).count();
                    spans.push(Span::styled(
                        format!(" {} {done}/{}", bar(done, ms.len(), 6), ms.len()),
                        style,
                    ));
                    if running > 0 {
                        spans.push(Span::styled(
                            format!("  ▶{running}"),
                            ctx.style("state.running"),
                        ));
                    }
                    if waiting > 0 {
                        spans.push(Span::styled(
                            format!("  {}{waiting}", StepState::Queued.glyph()),
                            ctx.style("state.queued"),
                        ));
                    }
                    if failed > 0 {
                        spans.push(Span::styled(
                            format!("  ✗{failed}"),
                            ctx.style("state.failed"),
                        ));
                    }
                    spans.push(Span::styled(
                        if *expanded { "  ▾" } else { "  ▸" },
                        ctx.style("text.dim"),
                    ));
                } else if let Some(m) = ms.first() {
                    let (glyph, word, key, time) = shown_state(m, app, now);
                    if key != format!("state.{}", st.as_str()) {
                        // The group's glyph said running: say queued instead.
                        spans[1] = Span::styled(format!("{glyph} "), ctx.style(&key));
                    }
                    spans.push(Span::styled(format!("  {word}"), ctx.style(&key)));
                    spans.push(Span::styled(format!("  {time}"), ctx.style("text.dim")));
                    if let Some(j) = &m.job_id {
                        spans.push(Span::styled(format!("  job {j}"), ctx.style("text.dim")));
                    }
                }
                if needs.len() > 1 {
                    spans.push(Span::styled(
                        format!("  ← {}", needs.join(", ")),
                        ctx.style("text.dim"),
                    ));
                }
                items.push(ListItem::new(Line::from(spans)));
            }
            DagRow::Instance { step, depth } => {
                let Some(s) = steps.get(*step) else { continue };
                let (glyph, word, key, time) = shown_state(s, app, now);
                let style = ctx.style(&key);
                let label = s.name.strip_prefix(&s.group).unwrap_or(&s.name);
                let mut spans = vec![
                    Span::raw(format!("{}    ", "   ".repeat(*depth))),
                    Span::styled(format!("{glyph} "), style),
                    Span::styled(label.to_string(), ctx.style("text")),
                    Span::styled(format!("  {word}"), style),
                    Span::styled(format!("  {time}"), ctx.style("text.dim")),
                ];
                if s.attempts > 1 {
                    spans.push(Span::styled(
                        format!("  try {}", s.attempts),
                        ctx.style("text.dim"),
                    ));
                }
                if let Some(j) = &s.job_id {
                    spans.push(Span::styled(format!("  job {j}"), ctx.style("text.dim")));
                }
                items.push(ListItem::new(Line::from(spans)));
            }
        }
    }
    let focused = app.runs_focus == RunsFocus::Dag;
    let title = app
        .selected_run()
        .map(|r| format!(" {} · {} ", r.id, r.pipeline))
        .unwrap_or_default();
    let list = List::new(items)
        .block(Block::default().title(Line::styled(
            title,
            ctx.style(if focused { "title.focused" } else { "title" }),
        )))
        .highlight_style(if focused {
            ctx.style("selection")
        } else {
            ctx.style("text")
        });
    let mut state = ListState::default().with_selected(focused.then_some(app.dag_sel));
    frame.render_stateful_widget(list, area, &mut state);
}
