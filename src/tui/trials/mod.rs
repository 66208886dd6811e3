//! The Trials pane's model: which study and trial are selected, how the leaderboard is sorted and
//! filtered, which chart shows. The leaderboard is rebuilt when data or the query change, never per
//! frame. `feed` is its data thread, `board` the leaderboard, `plots` the charts.

pub mod board;
pub mod feed;
pub mod plots;

use crate::trials::{Trial, TrialState};
use feed::{StudyView, TrialsSnapshot};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Which list of the Trials pane has the cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TrialsFocus {
    #[default]
    Studies,
    Board,
}

/// The chart under the leaderboard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ChartKind {
    /// Objective value per trial number, with the best so far.
    #[default]
    History,
    /// Intermediate values per step of the marked trials (or the selected one and the running ones).
    Intermediate,
    /// One param against the objective.
    Slice,
    /// PED-ANOVA importance as bars.
    Importance,
    /// The first two objectives, with the Pareto front.
    Pareto,
}

impl ChartKind {
    pub const ALL: [ChartKind; 5] = [
        ChartKind::History,
        ChartKind::Intermediate,
        ChartKind::Slice,
        ChartKind::Importance,
        ChartKind::Pareto,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ChartKind::History => "history",
            ChartKind::Intermediate => "intermediate",
            ChartKind::Slice => "slice",
            ChartKind::Importance => "importance",
            ChartKind::Pareto => "pareto",
        }
    }
}

/// When a running trial counts as stale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Staleness {
    /// A heartbeat (RDB studies that record them) older than this.
    pub heartbeat_grace_s: f64,
    /// No change seen for this long (any storage).
    pub unchanged_s: f64,
}

impl Default for Staleness {
    fn default() -> Staleness {
        Staleness {
            heartbeat_grace_s: 120.0,
            unchanged_s: 1800.0,
        }
    }
}

/// Why a running trial looks dead.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stale {
    /// Its heartbeat is this many seconds old.
    Heartbeat(f64),
    /// Nothing changed for this many seconds.
    Unchanged(f64),
}

#[derive(Clone, Debug, Default)]
pub struct TrialsView {
    pub data: Arc<TrialsSnapshot>,
    pub focus: TrialsFocus,
    pub study_sel: usize,
    pub row_sel: usize,
    pub query: board::Query,
    pub board: board::Board,
    pub chart: ChartKind,
    /// The param the slice chart shows (index into the study's params).
    pub slice_param: usize,
    /// Trials marked (by number) for the intermediate chart.
    pub marked: BTreeSet<i64>,
    pub log_y: bool,
    pub staleness: Staleness,
    /// The clock, fixed by tests; `None` reads the system's.
    pub now: Option<f64>,
    /// The filter text the board was built with.
    built_filter: String,
}

impl TrialsView {
    pub fn now(&self) -> f64 {
        self.now.unwrap_or_else(crate::util::now)
    }

    pub fn study(&self) -> Option<&StudyView> {
        self.data.studies.get(self.study_sel)
    }

    /// The trial under the leaderboard's cursor.
    pub fn selected_trial(&self) -> Option<&Trial> {
        let s = self.study()?;
        self.board
            .rows
            .get(self.row_sel)
            .and_then(|&i| s.study.trials.get(i))
            .map(|t| t.as_ref())
    }

    /// Whether (and why) a running trial looks dead.
    pub fn stale(&self, view: &StudyView, t: &Trial) -> Option<Stale> {
        stale(view, t, self.staleness, self.now())
    }

    /// Takes in a new snapshot, keeping the selected study (by file and name) and trial (by number).
    pub fn set_data(&mut self, data: Arc<TrialsSnapshot>, filter: &str) {
        let keep_study = self
            .study()
            .map(|s| (s.source.clone(), s.study.name.clone()));
        let keep_trial = self.selected_trial().map(|t| t.number);
        let same_study = |s: &StudyView| Some((s.source.clone(), s.study.name.clone()));
        self.data = data;
        if let Some(k) = keep_study {
            match self
                .data
                .studies
                .iter()
                .position(|s| same_study(s) == Some(k.clone()))
            {
                Some(p) => self.study_sel = p,
                None => self.marked.clear(),
            }
        }
        self.study_sel = self
            .study_sel
            .min(self.data.studies.len().saturating_sub(1));
        self.rebuild(filter);
        if let Some(n) = keep_trial {
            self.select_number(n);
        }
    }

    /// Rebuilds the leaderboard from the data and the query.
    pub fn rebuild(&mut self, filter: &str) {
        self.query.filter = filter.to_string();
        self.built_filter = filter.to_string();
        let (staleness, now) = (self.staleness, self.now());
        self.board = match self.study() {
            Some(v) => board::build(&v.study, &self.query, &|t| {
                stale(v, t, staleness, now).is_some()
            }),
            None => board::Board::default(),
        };
        self.row_sel = self.row_sel.min(self.board.rows.len().saturating_sub(1));
    }

    /// Rebuilds when the app's filter changed since the last build.
    pub fn follow_filter(&mut self, filter: &str) {
        if self.built_filter != filter {
            self.rebuild(filter);
        }
    }

    fn select_number(&mut self, number: i64) {
        if let Some(s) = self.study()
            && let Some(p) = self
                .board
                .rows
                .iter()
                .position(|&i| s.study.trials.get(i).is_some_and(|t| t.number == number))
        {
            self.row_sel = p;
        }
    }

    /// Selects study `i` and, when given, its trial `number` (the finder's jump).
    pub fn show(&mut self, study: usize, number: Option<i64>, filter: &str) {
        if study != self.study_sel {
            self.marked.clear();
            self.row_sel = 0;
        }
        self.study_sel = study.min(self.data.studies.len().saturating_sub(1));
        self.rebuild(filter);
        match number {
            Some(n) => {
                self.focus = TrialsFocus::Board;
                self.select_number(n);
            }
            None => self.focus = TrialsFocus::Studies,
        }
    }

    pub fn move_sel(&mut self, delta: isize, filter: &str) {
        match self.focus {
            TrialsFocus::Studies => {
                let n = self.data.studies.len();
                let next = clamp_step(self.study_sel, delta, n);
                if next != self.study_sel {
                    self.study_sel = next;
                    self.row_sel = 0;
                    self.marked.clear();
                    self.rebuild(filter);
                }
            }
            TrialsFocus::Board => {
                self.row_sel = clamp_step(self.row_sel, delta, self.board.rows.len());
            }
        }
    }

    /// Sorts by the next column (`s`); the first press leaves the default (value, best first).
    pub fn next_sort(&mut self, filter: &str) -> String {
        let n = self.board.columns.len();
        self.query.sort = match self.query.sort {
            None => Some(0),
            Some(i) if i + 1 < n => Some(i + 1),
            Some(_) => None,
        };
        self.rebuild(filter);
        format!("trials sorted by {}", self.sort_label())
    }

    pub fn sort_label(&self) -> String {
        let study = self.study().map(|s| &s.study);
        match (
            self.query.sort.and_then(|i| self.board.columns.get(i)),
            study,
        ) {
            (Some(c), Some(s)) => c.header(s),
            _ => "value (best first)".into(),
        }
    }

    pub fn cycle_state(&mut self, filter: &str) -> String {
        use TrialState::*;
        let order = [
            None,
            Some(Complete),
            Some(Running),
            Some(Pruned),
            Some(Fail),
            Some(Waiting),
        ];
        let i = order
            .iter()
            .position(|s| *s == self.query.state)
            .unwrap_or(0);
        self.query.state = order[(i + 1) % order.len()];
        self.rebuild(filter);
        match self.query.state {
            Some(s) => format!("only {} trials", s.name().to_lowercase()),
            None => "trials in every state".into(),
        }
    }

    pub fn toggle_pruned(&mut self, filter: &str) -> String {
        self.query.hide_pruned = !self.query.hide_pruned;
        self.rebuild(filter);
        if self.query.hide_pruned {
            "pruned trials hidden (leaderboard and charts)".into()
        } else {
            "pruned trials shown".into()
        }
    }

    pub fn cycle_chart(&mut self) -> String {
        let multi = self.study().is_some_and(|s| s.study.directions.len() > 1);
        let all = ChartKind::ALL;
        let mut i = all.iter().position(|c| *c == self.chart).unwrap_or(0);
        loop {
            i = (i + 1) % all.len();
            // The Pareto front needs two objectives; importance, one.
            let fits = match all[i] {
                ChartKind::Pareto => multi,
                ChartKind::Importance => !multi,
                _ => true,
            };
            if fits {
                break;
            }
        }
        self.chart = all[i];
        format!("chart: {}", self.chart.name())
    }

    /// The params the slice chart can show, in column order.
    pub fn params(&self) -> Vec<&str> {
        self.board
            .columns
            .iter()
            .filter_map(|c| match c {
                board::Column::Param(p) => Some(p.as_str()),
                _ => None,
            })
            .collect()
    }

    pub fn step_param(&mut self, delta: isize) -> String {
        let n = self.params().len();
        if n == 0 {
            return "this study has no params".into();
        }
        self.slice_param = (self.slice_param as isize + delta).rem_euclid(n as isize) as usize;
        self.chart = ChartKind::Slice;
        format!("slice: {}", self.params()[self.slice_param])
    }

    /// Marks or unmarks the selected trial for the intermediate chart.
    pub fn toggle_mark(&mut self) -> String {
        let Some(n) = self.selected_trial().map(|t| t.number) else {
            return "no trial selected".into();
        };
        if !self.marked.remove(&n) {
            self.marked.insert(n);
        }
        self.chart = ChartKind::Intermediate;
        format!(
            "{} trial(s) marked for the intermediate chart",
            self.marked.len()
        )
    }
}

fn clamp_step(cur: usize, delta: isize, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    (cur as isize + delta).clamp(0, n as isize - 1) as usize
}

/// Whether (and why) a running trial of `view` looks dead at `now`.
pub fn stale(view: &StudyView, t: &Trial, s: Staleness, now: f64) -> Option<Stale> {
    if t.state != TrialState::Running {
        return None;
    }
    if let Some(hb) = t.heartbeat
        && now - hb > s.heartbeat_grace_s
    {
        return Some(Stale::Heartbeat(now - hb));
    }
    let changed = view.changed_at.get(&t.id).copied().or(t.start)?;
    (now - changed > s.unchanged_s).then_some(Stale::Unchanged(now - changed))
}
