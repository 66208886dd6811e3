//! The leaderboard of one study: its columns, and its trials in the order and selection the user asked
//! for. Built once per data or query change; a frame only formats the rows on screen.

use crate::trials::report::{param_text, short};
use crate::trials::{Direction, Study, Trial, TrialState};
use std::cmp::Ordering;
use std::collections::BTreeSet;

/// A leaderboard column.
#[derive(Clone, Debug, PartialEq)]
pub enum Column {
    Number,
    State,
    /// Objective `i` (one per direction).
    Value(usize),
    Param(String),
    Duration,
    UserAttr(String),
}

/// User attributes shown as columns at most (a study can carry many; the rest are in `--json`).
const MAX_ATTR_COLUMNS: usize = 6;

impl Column {
    pub fn header(&self, study: &Study) -> String {
        match self {
            Column::Number => "#".into(),
            Column::State => "state".into(),
            Column::Value(i) if study.directions.len() > 1 => format!("value {i}"),
            Column::Value(_) => "value".into(),
            Column::Param(p) => p.clone(),
            Column::Duration => "duration".into(),
            Column::UserAttr(a) => format!("@{a}"),
        }
    }
}

/// What the user asked the leaderboard for.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Query {
    /// Index into the columns; `None` sorts by the first objective, best first.
    pub sort: Option<usize>,
    pub reverse: bool,
    /// Only trials in this state.
    pub state: Option<TrialState>,
    pub hide_pruned: bool,
    /// Case-insensitive text every shown row contains (number, state, `param=value`, attributes).
    pub filter: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Board {
    pub columns: Vec<Column>,
    /// Indices into the study's trials, in display order.
    pub rows: Vec<usize>,
    /// Numbers of the best trials (the best one, or the Pareto front of several objectives).
    pub best: BTreeSet<i64>,
    /// Column widths from the headers and a sample of rows, so scrolling does not make them jump.
    pub widths: Vec<usize>,
}

/// Rows sampled for the widths: enough to catch long values, few enough for a 100 000-trial study.
const WIDTH_SAMPLE: usize = 400;

/// The columns of a study: number, state, its objectives, every param (first seen first), duration, and
/// its first few user attributes.
pub fn columns(study: &Study) -> Vec<Column> {
    let mut cols = vec![Column::Number, Column::State];
    cols.extend((0..study.directions.len().max(1)).map(Column::Value));
    let mut params: Vec<&str> = Vec::new();
    let mut attrs: Vec<&str> = Vec::new();
    for t in &study.trials {
        for k in t.params.names() {
            if !params.contains(&k) {
                params.push(k);
            }
        }
        for k in t.user_attrs.keys() {
            if attrs.len() < MAX_ATTR_COLUMNS && !attrs.contains(&k) {
                attrs.push(k);
            }
        }
    }
    cols.extend(params.into_iter().map(|p| Column::Param(p.to_string())));
    cols.push(Column::Duration);
    cols.extend(attrs.into_iter().map(|a| Column::UserAttr(a.to_string())));
    cols
}

/// Builds the leaderboard. `stale` says which running trials look dead (shown as such in the state).
pub fn build(study: &Study, q: &Query, stale: &dyn Fn(&Trial) -> bool) -> Board {
    let columns = columns(study);
    let filter = q.filter.to_lowercase();
    let mut rows: Vec<usize> = (0..study.trials.len())
        .filter(|&i| {
            let t = &study.trials[i];
            q.state.is_none_or(|s| t.state == s)
                && !(q.hide_pruned && t.state == TrialState::Pruned)
                && (filter.is_empty() || search_text(t, stale(t)).contains(&filter))
        })
        .collect();
    let sort = q.sort.and_then(|i| columns.get(i));
    match sort {
        None | Some(Column::Value(_)) => {
            let objective = match sort {
                Some(Column::Value(i)) => *i,
                _ => 0,
            };
            let dir = study
                .directions
                .get(objective)
                .copied()
                .unwrap_or(Direction::Minimize);
            rows.sort_by(|&a, &b| by_value(&study.trials[a], &study.trials[b], objective, dir));
        }
        Some(Column::Number) => rows.sort_by_key(|&i| study.trials[i].number),
        Some(Column::State) => rows.sort_by_key(|&i| state_rank(study.trials[i].state)),
        Some(Column::Duration) => rows
            .sort_by(|&a, &b| missing_last(study.trials[a].duration(), study.trials[b].duration())),
        Some(Column::Param(p)) => rows.sort_by(|&a, &b| {
            param_order(
                study.trials[a].params.get(p).as_ref(),
                study.trials[b].params.get(p).as_ref(),
            )
        }),
        Some(Column::UserAttr(k)) => rows.sort_by(|&a, &b| {
            param_order(
                study.trials[a].user_attrs.get(k),
                study.trials[b].user_attrs.get(k),
            )
        }),
    }
    if q.reverse {
        rows.reverse();
    }
    let best = crate::trials::report::best_trials(study)
        .iter()
        .map(|t| t.number)
        .collect();
    let mut board = Board {
        widths: Vec::new(),
        columns,
        rows,
        best,
    };
    board.widths = widths(study, &board, stale);
    board
}

/// Complete trials first, best first; then running, pruned (by the value they were pruned at), failed
/// and waiting ones: what did not finish stays apart from what did.
fn by_value(a: &Trial, b: &Trial, objective: usize, dir: Direction) -> Ordering {
    state_rank(a.state)
        .cmp(&state_rank(b.state))
        .then_with(|| {
            let (x, y) = (a.values.get(objective), b.values.get(objective));
            let flip = |o: Ordering| {
                if dir == Direction::Maximize {
                    o.reverse()
                } else {
                    o
                }
            };
            match (x.filter(|v| !v.is_nan()), y.filter(|v| !v.is_nan())) {
                (Some(x), Some(y)) => flip(x.total_cmp(y)),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            }
        })
        .then(a.number.cmp(&b.number))
}

fn state_rank(s: TrialState) -> u8 {
    match s {
        TrialState::Complete => 0,
        TrialState::Running => 1,
        TrialState::Pruned => 2,
        TrialState::Fail => 3,
        TrialState::Waiting => 4,
    }
}

fn missing_last(a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.total_cmp(&b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// Numbers by value, text by text, numbers before text, missing last.
fn param_order(a: Option<&serde_json::Value>, b: Option<&serde_json::Value>) -> Ordering {
    use serde_json::Value;
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => missing_last(x.as_f64(), y.as_f64()),
        (Some(Value::Number(_)), Some(_)) => Ordering::Less,
        (Some(_), Some(Value::Number(_))) => Ordering::Greater,
        (Some(x), Some(y)) => param_text(x).cmp(&param_text(y)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// A trial's state as the leaderboard shows it: a running trial that looks dead says so.
pub fn state_text(t: &Trial, stale: bool) -> String {
    let name = t.state.name().to_lowercase();
    if stale && t.state == TrialState::Running {
        format!("{name}·stale")
    } else {
        name
    }
}

/// What the filter looks in, lower case.
fn search_text(t: &Trial, stale: bool) -> String {
    let mut s = format!("#{} {}", t.number, state_text(t, stale));
    for (k, v) in t.params.iter() {
        s.push_str(&format!(" {k}={}", param_text(&v)));
    }
    for (k, v) in t.user_attrs.iter() {
        s.push_str(&format!(" {k}={}", param_text(v)));
    }
    s.to_lowercase()
}

/// The text of one cell.
pub fn cell(t: &Trial, c: &Column, stale: bool) -> String {
    match c {
        Column::Number => t.number.to_string(),
        Column::State => state_text(t, stale),
        Column::Value(i) => t.values.get(*i).map(|v| short(*v)).unwrap_or_default(),
        Column::Param(p) => t.params.get(p).as_ref().map(param_text).unwrap_or_default(),
        Column::Duration => t
            .duration()
            .map(crate::util::human_duration)
            .unwrap_or_default(),
        Column::UserAttr(k) => t.user_attrs.get(k).map(param_text).unwrap_or_default(),
    }
}

/// Cells wider than this are cut (a long attribute must not push the other columns off screen).
const MAX_WIDTH: usize = 24;

fn widths(study: &Study, board: &Board, stale: &dyn Fn(&Trial) -> bool) -> Vec<usize> {
    let stride = board.rows.len().div_ceil(WIDTH_SAMPLE).max(1);
    board
        .columns
        .iter()
        .map(|c| {
            let head = c.header(study).chars().count();
            let cells = board
                .rows
                .iter()
                .step_by(stride)
                .map(|&i| {
                    let t = &study.trials[i];
                    cell(t, c, stale(t)).chars().count()
                })
                .max()
                .unwrap_or(0);
            head.max(cells).clamp(1, MAX_WIDTH)
        })
        .collect()
}
