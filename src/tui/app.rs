//! The model and its `update`: the only place actions get meaning. Drawing reads this model and never
//! changes it; effects that touch the world (request files, launching an engine, the clipboard) are
//! returned to the event loop, which runs them off the UI thread.

use super::action::{Action, Edit, Pane, complete_command};
use super::data::{LogTail, Snapshot, Watch};
use crate::index::StepRow;
use crate::runlog::control::Request;
use crate::runlog::{RunState, StepState};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

/// Something for the event loop to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Steer a run (a request file, or take it over when no engine drives it).
    Request { run_dir: PathBuf, request: Request },
    /// Start a pipeline file in the background.
    Launch(PathBuf),
    /// Start a background engine for a run nobody drives (`sortie resume --detach`).
    Resume(PathBuf),
    /// `scancel` these SLURM jobs.
    CancelJobs(Vec<String>),
    /// Copy text to the clipboard with OSC 52.
    Yank(String),
    /// Load and switch to this theme (a file read: the event loop does it and reports back).
    Theme(String),
    /// Tell the data thread what is on screen.
    Watch(Watch),
}

/// A row of the DAG view: a step group, or one instance of an expanded group.
#[derive(Clone, Debug, PartialEq)]
pub enum DagRow {
    Group {
        name: String,
        depth: usize,
        needs: Vec<String>,
        /// Indices into `App::snapshot.steps`.
        members: Vec<usize>,
        matrix: bool,
        expanded: bool,
    },
    Instance {
        step: usize,
        depth: usize,
    },
}

/// What a pending confirmation will do.
#[derive(Clone, Debug, PartialEq)]
pub struct Confirm {
    pub message: String,
    pub effect: Effect,
}

/// Text entry overlays.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    Command(String),
    Filter(String),
    LaunchFile(String),
    LogSearch(String),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Overlay {
    Help,
    Confirm(Confirm),
    Input(Input),
    Finder(super::finder::FinderState),
}

/// Which list of the Runs pane has the selection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunsFocus {
    Runs,
    Dag,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MetricsView {
    pub smoothing: f64,
    pub log_y: bool,
    pub x_mode: crate::tui::chart::XMode,
    pub show_raw: bool,
    /// Cursor position as a fraction of the x range, when shown.
    pub cursor: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct LogsView {
    pub tail: Option<LogTail>,
    pub wrap: bool,
    pub follow: bool,
    /// Lines scrolled up from the end (when not following).
    pub scroll: usize,
    pub search: Option<String>,
    pub stderr: bool,
}

pub struct App {
    pub snapshot: Snapshot,
    pub focus: Pane,
    pub runs_focus: RunsFocus,
    pub run_sel: usize,
    pub dag_sel: usize,
    pub expanded: BTreeSet<String>,
    pub dag: Vec<DagRow>,
    pub filter: String,
    pub metrics: MetricsView,
    pub logs: LogsView,
    /// The step whose logs are shown (and is watched by the data thread), or `job N`.
    pub log_step: Option<String>,
    /// A file to follow instead of the step's log (a SLURM job's output).
    pub log_path: Option<PathBuf>,
    pub overlay: Option<Overlay>,
    /// A one-line message for the footer, with when it was set.
    pub status: Option<(String, Instant)>,
    pub data_error: Option<String>,
    pub data_at: Option<Instant>,
    pub read_only: bool,
    pub quit: bool,
    pub watch: Watch,
    /// The metric the user picked (the data thread falls back to the first one).
    pub metric_choice: Option<String>,
    /// Runs pinned for comparison: their curves are overlaid in the metrics pane.
    pub pinned: Vec<String>,
    /// Series (by legend label) the user hid from the metrics pane.
    pub hidden_series: BTreeSet<String>,
    pub cluster: bool,
    pub config_warnings: Vec<String>,
    /// Shown in the header.
    pub user: String,
    /// The Slurm poller's latest view of the user's jobs (None without a cluster).
    pub jobs: Option<std::sync::Arc<crate::slurm::poller::JobsSnapshot>>,
    /// Where each job of `jobs` is, by the ids steps recorded.
    pub job_index: crate::slurm::lookup::JobIndex,
    pub job_sel: usize,
    /// A step to select in the DAG once its run's steps arrive: (run, step).
    pub pending_step: Option<(String, String)>,
    pub job_sort: JobSort,
    /// The Trials pane: Optuna studies, their leaderboard and charts.
    pub trials: super::trials::TrialsView,
}

/// Columns the Jobs pane sorts by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum JobColumn {
    #[default]
    Submitted,
    Id,
    Name,
    State,
    Partition,
    Time,
}

impl JobColumn {
    pub const ALL: [JobColumn; 6] = [
        JobColumn::Submitted,
        JobColumn::Id,
        JobColumn::Name,
        JobColumn::State,
        JobColumn::Partition,
        JobColumn::Time,
    ];

    pub fn label(self) -> &'static str {
        match self {
            JobColumn::Submitted => "submitted",
            JobColumn::Id => "id",
            JobColumn::Name => "name",
            JobColumn::State => "state",
            JobColumn::Partition => "partition",
            JobColumn::Time => "time",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct JobSort {
    pub column: JobColumn,
    pub reverse: bool,
}

impl App {
    pub fn new(read_only: bool) -> App {
        App {
            snapshot: Snapshot::default(),
            focus: Pane::Runs,
            runs_focus: RunsFocus::Runs,
            run_sel: 0,
            dag_sel: 0,
            expanded: BTreeSet::new(),
            dag: Vec::new(),
            filter: String::new(),
            metrics: MetricsView {
                smoothing: 0.6,
                log_y: false,
                x_mode: crate::tui::chart::XMode::Step,
                show_raw: true,
                cursor: None,
            },
            logs: LogsView {
                follow: true,
                ..Default::default()
            },
            log_step: None,
            log_path: None,
            overlay: None,
            status: None,
            data_error: None,
            data_at: None,
            read_only,
            quit: false,
            watch: Watch::default(),
            metric_choice: None,
            pinned: Vec::new(),
            hidden_series: BTreeSet::new(),
            cluster: false,
            config_warnings: Vec::new(),
            user: crate::util::user(),
            jobs: None,
            job_index: Default::default(),
            job_sel: 0,
            pending_step: None,
            job_sort: JobSort::default(),
            trials: Default::default(),
        }
    }

    /// The jobs in the order the Jobs pane shows them (after the filter).
    pub fn sorted_jobs(&self) -> Vec<&crate::slurm::model::Job> {
        let Some(snap) = &self.jobs else {
            return Vec::new();
        };
        let f = self.filter.to_lowercase();
        let mut v: Vec<&crate::slurm::model::Job> = snap
            .jobs
            .iter()
            .filter(|j| {
                f.is_empty()
                    || j.id.contains(&f)
                    || j.name.to_lowercase().contains(&f)
                    || j.state.name().to_lowercase().contains(&f)
                    || j.partition.as_deref().unwrap_or("").contains(&f)
            })
            .collect();
        let key_num = |j: &crate::slurm::model::Job| j.job_id_raw.unwrap_or(0);
        match self.job_sort.column {
            // The poller lists newest submission first already.
            JobColumn::Submitted => {}
            JobColumn::Id => v.sort_by_key(|j| std::cmp::Reverse(key_num(j))),
            JobColumn::Name => v.sort_by(|a, b| a.name.cmp(&b.name)),
            JobColumn::State => v.sort_by_key(|j| j.state.code()),
            JobColumn::Partition => v.sort_by(|a, b| a.partition.cmp(&b.partition)),
            JobColumn::Time => v.sort_by_key(|j| std::cmp::Reverse(j.time_used_s.unwrap_or(0))),
        }
        if self.job_sort.reverse {
            v.reverse();
        }
        v
    }

    /// The poller's latest view of the user's jobs. `same` says they are the jobs of the last view
    /// (only the time they were read differs), which keeps the index.
    pub fn set_jobs(
        &mut self,
        jobs: std::sync::Arc<crate::slurm::poller::JobsSnapshot>,
        same: bool,
    ) {
        if !same {
            self.job_index = crate::slurm::lookup::JobIndex::new(&jobs.jobs);
        }
        self.job_sel = self.job_sel.min(jobs.jobs.len().saturating_sub(1));
        self.jobs = Some(jobs);
    }

    /// The Slurm job a step recorded (`123`, or `123_4` even while inside its array's pending record).
    pub fn slurm_job(&self, id: &str) -> Option<&crate::slurm::model::Job> {
        self.job_index.find(&self.jobs.as_ref()?.jobs, id)
    }

    pub fn selected_job(&self) -> Option<&crate::slurm::model::Job> {
        self.sorted_jobs().get(self.job_sel).copied()
    }

    /// Runs shown in the runs list (after the filter).
    pub fn visible_runs(&self) -> Vec<usize> {
        let f = self.filter.to_lowercase();
        (0..self.snapshot.runs.len())
            .filter(|&i| {
                let r = &self.snapshot.runs[i];
                f.is_empty()
                    || r.id.contains(&f)
                    || r.pipeline.to_lowercase().contains(&f)
                    || r.state.as_str().contains(&f)
            })
            .collect()
    }

    pub fn selected_run(&self) -> Option<&crate::index::RunRow> {
        let v = self.visible_runs();
        v.get(self.run_sel).map(|&i| &self.snapshot.runs[i])
    }

    /// The step instance under the DAG cursor (an instance row, or a one-instance group).
    pub fn selected_step(&self) -> Option<&StepRow> {
        match self.dag.get(self.dag_sel)? {
            DagRow::Instance { step, .. } => self.snapshot.steps.get(*step),
            DagRow::Group { members, .. } if members.len() == 1 => {
                self.snapshot.steps.get(members[0])
            }
            _ => None,
        }
    }

    /// The selected group's name (for a group row), or the selected instance's name.
    pub fn selected_step_name(&self) -> Option<String> {
        match self.dag.get(self.dag_sel)? {
            DagRow::Instance { step, .. } => self.snapshot.steps.get(*step).map(|s| s.name.clone()),
            DagRow::Group { name, members, .. } => {
                if members.len() == 1 {
                    self.snapshot.steps.get(members[0]).map(|s| s.name.clone())
                } else {
                    Some(name.clone())
                }
            }
        }
    }

    /// Takes in new data, keeping the selection on the same run and step when they still exist.
    pub fn on_snapshot(&mut self, snap: Snapshot) -> Vec<Effect> {
        let keep_run = self.selected_run().map(|r| r.id.clone());
        let keep_step = self.selected_step_name();
        self.snapshot = snap;
        self.data_at = Some(Instant::now());
        if let Some(id) = keep_run {
            let v = self.visible_runs();
            if let Some(p) = v.iter().position(|&i| self.snapshot.runs[i].id == id) {
                self.run_sel = p;
            }
        }
        self.clamp_runs();
        self.rebuild_dag();
        if let Some(name) = keep_step
            && let Some(p) = self.dag.iter().position(|r| self.row_name(r) == name)
        {
            self.dag_sel = p;
        }
        self.dag_sel = self.dag_sel.min(self.dag.len().saturating_sub(1));
        self.select_pending_step();
        self.sync_watch()
    }

    /// Shows `run` in the Runs pane, with `step` under the DAG cursor (its matrix group expanded):
    /// at once when the run's steps are here, else when they arrive.
    pub fn show_step(&mut self, run: &str, step: Option<&str>) -> Vec<Effect> {
        self.filter.clear();
        let Some(p) = self.snapshot.runs.iter().position(|r| r.id == run) else {
            self.set_status(format!("run {run} is not in this project's index"));
            return Vec::new();
        };
        if self.run_sel != p {
            self.run_sel = p;
            self.dag_sel = 0;
            self.expanded.clear();
            self.rebuild_dag();
        }
        self.focus = Pane::Runs;
        self.runs_focus = RunsFocus::Dag;
        self.pending_step = step.map(|s| (run.to_string(), s.to_string()));
        self.select_pending_step();
        self.sync_watch()
    }

    fn select_pending_step(&mut self) {
        let Some((run, step)) = self.pending_step.clone() else {
            return;
        };
        if self.snapshot.run.as_deref() != Some(run.as_str()) {
            return;
        }
        self.pending_step = None;
        if let Some(s) = self.snapshot.steps.iter().find(|s| s.name == step)
            && s.name != s.group
        {
            self.expanded.insert(s.group.clone());
            self.rebuild_dag();
        }
        if let Some(p) = self.dag.iter().position(|r| self.row_name(r) == step) {
            self.dag_sel = p;
        }
    }

    /// Enter on a Slurm job: its run and step, when one of the project's runs submitted it.
    fn show_job(&mut self) -> Vec<Effect> {
        use super::data::{JobTarget, job_target};
        let Some(id) = self.selected_job().map(|j| j.id.clone()) else {
            return Vec::new();
        };
        let target = match job_target(&self.snapshot.job_links, &id) {
            Some(JobTarget::Step(l)) => Some((l.run.clone(), Some(l.step.clone()))),
            Some(JobTarget::Array { run, .. }) => Some((run.to_string(), None)),
            None => None,
        };
        match target {
            Some((run, step)) => self.show_step(&run, step.as_deref()),
            None => {
                self.set_status(format!(
                    "job {id} was not submitted by a run of this project"
                ));
                Vec::new()
            }
        }
    }

    pub fn on_log(&mut self, tail: LogTail) {
        self.logs.tail = Some(tail);
    }

    fn row_name(&self, r: &DagRow) -> String {
        match r {
            DagRow::Group { name, .. } => name.clone(),
            DagRow::Instance { step, .. } => self
                .snapshot
                .steps
                .get(*step)
                .map(|s| s.name.clone())
                .unwrap_or_default(),
        }
    }

    fn clamp_runs(&mut self) {
        let n = self.visible_runs().len();
        self.run_sel = self.run_sel.min(n.saturating_sub(1));
    }

    /// Lays the selected run's steps out as groups by depth (longest path from a root), instances under
    /// expanded groups.
    pub fn rebuild_dag(&mut self) {
        let steps = &self.snapshot.steps;
        let mut groups: Vec<(String, Vec<String>, Vec<usize>, bool)> = Vec::new();
        for (i, s) in steps.iter().enumerate() {
            match groups.iter_mut().find(|g| g.0 == s.group) {
                Some(g) => g.2.push(i),
                None => groups.push((s.group.clone(), s.needs.clone(), vec![i], s.name != s.group)),
            }
        }
        let mut depth: std::collections::HashMap<String, usize> = Default::default();
        // Steps arrive in topological order, so one pass settles every depth.
        for g in &groups {
            let d =
                g.1.iter()
                    .filter_map(|n| depth.get(n))
                    .map(|d| d + 1)
                    .max()
                    .unwrap_or(0);
            depth.insert(g.0.clone(), d);
        }
        let mut rows = Vec::new();
        for (name, needs, members, matrix) in groups {
            let d = depth[&name];
            let expanded = matrix && self.expanded.contains(&name);
            rows.push(DagRow::Group {
                name,
                depth: d,
                needs,
                members: members.clone(),
                matrix,
                expanded,
            });
            if expanded {
                for m in members {
                    rows.push(DagRow::Instance { step: m, depth: d });
                }
            }
        }
        self.dag = rows;
    }

    /// Keeps the data thread watching what is on screen.
    fn sync_watch(&mut self) -> Vec<Effect> {
        let w = Watch {
            run: self.selected_run().map(|r| r.id.clone()),
            step: self.log_step.clone(),
            path: self.log_path.clone(),
            stderr: self.logs.stderr,
            metric: self.metric_choice.clone().or(self.snapshot.metric.clone()),
            compare: self.pinned.clone(),
        };
        if w != self.watch {
            self.watch = w.clone();
            return vec![Effect::Watch(w)];
        }
        Vec::new()
    }

    pub fn set_status(&mut self, msg: impl Into<String>) {
        self.status = Some((msg.into(), Instant::now()));
    }

    fn move_sel(&mut self, delta: isize) {
        match self.focus {
            Pane::Runs => match self.runs_focus {
                RunsFocus::Runs => {
                    let n = self.visible_runs().len();
                    self.run_sel = step_index(self.run_sel, delta, n);
                    self.dag_sel = 0;
                    self.expanded.clear();
                    self.rebuild_dag();
                }
                RunsFocus::Dag => self.dag_sel = step_index(self.dag_sel, delta, self.dag.len()),
            },
            Pane::Jobs => {
                let n = self.sorted_jobs().len();
                self.job_sel = step_index(self.job_sel, delta, n);
            }
            Pane::Logs => {
                self.logs.follow = false;
                self.logs.scroll = (self.logs.scroll as isize - delta).max(0) as usize;
                if self.logs.scroll == 0 && delta > 0 {
                    self.logs.follow = true;
                }
            }
            Pane::Metrics => {
                let keys = &self.snapshot.metric_keys;
                if !keys.is_empty() {
                    let cur = self
                        .snapshot
                        .metric
                        .as_ref()
                        .and_then(|m| keys.iter().position(|k| k == m))
                        .unwrap_or(0);
                    let next = step_index(cur, delta, keys.len());
                    self.metric_choice = Some(keys[next].clone());
                    self.snapshot.metric = Some(keys[next].clone());
                }
            }
            Pane::Trials => self.trials.move_sel(delta, &self.filter),
        }
    }

    /// Asks before a destructive action, naming exactly what it touches.
    fn confirm(&mut self, message: String, effect: Effect) {
        if self.read_only {
            self.set_status("read-only: actions that change runs are disabled");
            return;
        }
        self.overlay = Some(Overlay::Confirm(Confirm { message, effect }));
    }

    fn target_run_dir(&self) -> Option<(String, PathBuf, RunState)> {
        self.selected_run()
            .map(|r| (r.id.clone(), r.dir.clone(), r.state))
    }

    /// Gives an action its meaning. Returns effects for the event loop.
    pub fn update(&mut self, action: Action) -> Vec<Effect> {
        if self.read_only && action.is_destructive() {
            self.set_status("read-only: actions that change runs are disabled");
            return Vec::new();
        }
        match action {
            Action::Quit => self.quit = true,
            Action::Help => self.overlay = Some(Overlay::Help),
            Action::CommandMode => {
                self.overlay = Some(Overlay::Input(Input::Command(String::new())))
            }
            Action::Filter => {
                self.overlay = Some(Overlay::Input(Input::Filter(self.filter.clone())));
            }
            Action::Search => {
                self.overlay = Some(Overlay::Input(Input::LogSearch(
                    self.logs.search.clone().unwrap_or_default(),
                )));
            }
            Action::Finder => {
                self.overlay = Some(Overlay::Finder(super::finder::FinderState::new(
                    super::finder::items(&self.snapshot, self.jobs.as_deref(), &self.trials),
                )));
            }
            Action::NextPane => self.focus = self.next_pane(1),
            Action::PrevPane => self.focus = self.next_pane(-1),
            Action::FocusPane(n) => {
                if let Some(p) = Pane::ALL.get((n as usize).saturating_sub(1)) {
                    self.focus = *p;
                }
            }
            Action::Up
            | Action::Down
            | Action::PageUp
            | Action::PageDown
            | Action::Top
            | Action::Bottom => {
                let delta = match action {
                    Action::Up => -1,
                    Action::Down => 1,
                    Action::PageUp => -10,
                    Action::PageDown => 10,
                    Action::Top => -1_000_000,
                    _ => 1_000_000,
                };
                self.move_sel(delta);
                return self.sync_watch();
            }
            Action::Left => {
                if self.focus == Pane::Metrics {
                    let c = self.metrics.cursor.unwrap_or(1.0);
                    self.metrics.cursor = Some((c - 0.02).max(0.0));
                } else if self.focus == Pane::Runs {
                    self.runs_focus = RunsFocus::Runs;
                } else if self.focus == Pane::Trials {
                    self.trials.focus = super::trials::TrialsFocus::Studies;
                }
            }
            Action::Right => {
                if self.focus == Pane::Metrics {
                    let c = self.metrics.cursor.unwrap_or(0.0);
                    self.metrics.cursor = Some((c + 0.02).min(1.0));
                } else if self.focus == Pane::Runs && !self.dag.is_empty() {
                    self.runs_focus = RunsFocus::Dag;
                } else if self.focus == Pane::Trials && self.trials.study().is_some() {
                    self.trials.focus = super::trials::TrialsFocus::Board;
                }
            }
            Action::Enter => return self.enter(),
            Action::Back => {
                self.back();
                return self.sync_watch();
            }
            Action::Launch => {
                if self.read_only {
                    return Vec::new();
                }
                self.overlay = Some(Overlay::Input(Input::LaunchFile("sortie.toml".into())));
            }
            Action::Cancel if self.focus == Pane::Jobs => self.ask_cancel_job(),
            Action::Cancel => self.ask_cancel(),
            Action::Rerun | Action::RerunDownstream => {
                let downstream = action == Action::RerunDownstream;
                let Some((id, dir, _)) = self.target_run_dir() else {
                    self.set_status("no run selected");
                    return Vec::new();
                };
                let Some(step) = self
                    .selected_step_name()
                    .filter(|_| self.runs_focus == RunsFocus::Dag)
                else {
                    self.set_status("select a step in the DAG first (Enter on a run)");
                    return Vec::new();
                };
                let what = if downstream {
                    " and everything downstream"
                } else {
                    ""
                };
                self.confirm(
                    format!("Re-run {step}{what} in run {id}? Its current results are replaced."),
                    Effect::Request {
                        run_dir: dir,
                        request: Request::Rerun { step, downstream },
                    },
                );
            }
            Action::RetryFailed => {
                let Some((id, dir, _)) = self.target_run_dir() else {
                    self.set_status("no run selected");
                    return Vec::new();
                };
                let n = self
                    .snapshot
                    .steps
                    .iter()
                    .filter(|s| {
                        matches!(
                            s.state,
                            StepState::Failed | StepState::Blocked | StepState::Cancelled
                        )
                    })
                    .count();
                if n == 0 {
                    self.set_status(format!(
                        "run {id} has no failed, blocked or cancelled steps"
                    ));
                    return Vec::new();
                }
                self.confirm(
                    format!("Retry {n} failed, blocked or cancelled step(s) of run {id}?"),
                    Effect::Request {
                        run_dir: dir,
                        request: Request::Retry,
                    },
                );
            }
            Action::Resume => self.ask_resume(),
            Action::Logs if self.focus == Pane::Jobs => {
                let Some(j) = self.selected_job() else {
                    return Vec::new();
                };
                let Some(out) = j.stdout.clone() else {
                    self.set_status(format!("job {} has no known output file", j.id));
                    return Vec::new();
                };
                self.log_step = Some(format!("job {}", j.id));
                self.log_path = Some(PathBuf::from(out));
                self.logs.tail = None;
                self.logs.follow = true;
                self.logs.scroll = 0;
                self.focus = Pane::Logs;
                return self.sync_watch();
            }
            Action::Logs => {
                if let Some(name) = self.selected_step().map(|s| s.name.clone()) {
                    self.log_path = None;
                    self.log_step = Some(name);
                    self.logs.tail = None;
                    self.logs.follow = true;
                    self.logs.scroll = 0;
                    self.focus = Pane::Logs;
                    return self.sync_watch();
                }
                self.set_status("select a step instance to see its logs");
            }
            Action::Yank => {
                let text = if self.focus == Pane::Jobs {
                    self.selected_job().map(|j| j.id.clone())
                } else if self.runs_focus == RunsFocus::Dag {
                    self.selected_step_name()
                } else {
                    self.selected_run().map(|r| r.id.clone())
                };
                if let Some(t) = text {
                    self.set_status(format!("copied {t}"));
                    return vec![Effect::Yank(t)];
                }
            }
            Action::Confirm => {
                if let Some(Overlay::Confirm(c)) = self.overlay.take() {
                    self.set_status("working…");
                    return vec![c.effect];
                }
            }
            Action::Deny => {
                if matches!(self.overlay, Some(Overlay::Confirm(_))) {
                    self.overlay = None;
                    self.set_status("nothing changed");
                }
            }
            Action::SmoothMore => self.metrics.smoothing = (self.metrics.smoothing + 0.1).min(0.99),
            Action::SmoothLess => self.metrics.smoothing = (self.metrics.smoothing - 0.1).max(0.0),
            Action::ToggleLogY if self.focus == Pane::Trials => {
                self.trials.log_y = !self.trials.log_y;
            }
            Action::ToggleLogY => self.metrics.log_y = !self.metrics.log_y,
            Action::CycleXAxis => self.metrics.x_mode = self.metrics.x_mode.next(),
            Action::ToggleRaw => self.metrics.show_raw = !self.metrics.show_raw,
            Action::ToggleWrap => self.logs.wrap = !self.logs.wrap,
            Action::ToggleFollow => {
                self.logs.follow = !self.logs.follow;
                self.logs.scroll = 0;
            }
            Action::ToggleStderr => {
                self.logs.stderr = !self.logs.stderr;
                self.logs.tail = None;
                return self.sync_watch();
            }
            Action::SearchNext | Action::SearchPrev => {
                self.search_logs(action == Action::SearchNext);
            }
            Action::Theme(name) => return vec![Effect::Theme(name)],
            Action::Edit(e) => {
                return match self.overlay {
                    Some(Overlay::Input(_)) => self.input_key(e),
                    Some(Overlay::Finder(_)) => self.finder_key(e),
                    _ => Vec::new(),
                };
            }
            Action::Sort if self.focus == Pane::Trials => {
                let msg = self.trials.next_sort(&self.filter);
                self.set_status(msg);
            }
            Action::SortReverse if self.focus == Pane::Trials => {
                self.trials.query.reverse = !self.trials.query.reverse;
                self.trials.rebuild(&self.filter);
            }
            Action::CycleChart
            | Action::CycleStateFilter
            | Action::TogglePruned
            | Action::Mark
            | Action::NextParam
            | Action::PrevParam => {
                let msg = match action {
                    Action::CycleChart => self.trials.cycle_chart(),
                    Action::CycleStateFilter => self.trials.cycle_state(&self.filter),
                    Action::TogglePruned => self.trials.toggle_pruned(&self.filter),
                    Action::Mark => self.trials.toggle_mark(),
                    Action::NextParam => self.trials.step_param(1),
                    _ => self.trials.step_param(-1),
                };
                self.set_status(msg);
            }
            Action::Sort => {
                let all = JobColumn::ALL;
                let i = all
                    .iter()
                    .position(|c| *c == self.job_sort.column)
                    .unwrap_or(0);
                self.job_sort.column = all[(i + 1) % all.len()];
                self.set_status(format!("jobs sorted by {}", self.job_sort.column.label()));
            }
            Action::SortReverse => self.job_sort.reverse = !self.job_sort.reverse,
            Action::Pin => {
                if let Some(id) = self.selected_run().map(|r| r.id.clone()) {
                    return self.toggle_pin(id);
                }
            }
            Action::Redraw => {}
        }
        Vec::new()
    }

    fn next_pane(&self, delta: isize) -> Pane {
        let panes = self.panes();
        let cur = panes.iter().position(|p| *p == self.focus).unwrap_or(0);
        panes[step_wrap(cur, delta, panes.len())]
    }

    /// The panes that exist now (Jobs only with a cluster).
    pub fn panes(&self) -> Vec<Pane> {
        Pane::ALL
            .iter()
            .copied()
            .filter(|p| *p != Pane::Jobs || self.cluster)
            .collect()
    }

    fn enter(&mut self) -> Vec<Effect> {
        match self.focus {
            Pane::Runs => match self.runs_focus {
                RunsFocus::Runs => {
                    if !self.dag.is_empty() {
                        self.runs_focus = RunsFocus::Dag;
                    }
                }
                RunsFocus::Dag => match self.dag.get(self.dag_sel).cloned() {
                    Some(DagRow::Group {
                        name,
                        matrix: true,
                        expanded,
                        ..
                    }) => {
                        if expanded {
                            self.expanded.remove(&name);
                        } else {
                            self.expanded.insert(name);
                        }
                        self.rebuild_dag();
                    }
                    Some(_) => return self.update(Action::Logs),
                    None => {}
                },
            },
            Pane::Metrics => {
                self.metrics.cursor = match self.metrics.cursor {
                    Some(_) => None,
                    None => Some(1.0),
                };
            }
            Pane::Jobs => return self.show_job(),
            Pane::Trials => match self.trials.focus {
                super::trials::TrialsFocus::Studies if self.trials.study().is_some() => {
                    self.trials.focus = super::trials::TrialsFocus::Board;
                }
                super::trials::TrialsFocus::Board => {
                    let msg = self.trials.toggle_mark();
                    self.set_status(msg);
                }
                _ => {}
            },
            _ => {}
        }
        Vec::new()
    }

    fn back(&mut self) {
        if self.overlay.take().is_some() {
            return;
        }
        if self.focus == Pane::Runs && self.runs_focus == RunsFocus::Dag {
            self.runs_focus = RunsFocus::Runs;
        } else if self.focus == Pane::Trials
            && self.trials.focus == super::trials::TrialsFocus::Board
            && self.filter.is_empty()
        {
            self.trials.focus = super::trials::TrialsFocus::Studies;
        } else if !self.filter.is_empty() {
            self.filter.clear();
            self.clamp_runs();
            self.rebuild_dag();
            self.trials.follow_filter(&self.filter);
        } else if self.focus == Pane::Metrics {
            self.metrics.cursor = None;
        }
    }

    fn ask_cancel_job(&mut self) {
        let Some(j) = self.selected_job() else {
            self.set_status("no job selected");
            return;
        };
        if j.is_finished() {
            let msg = format!("job {} already ended ({})", j.id, j.state.name());
            self.set_status(msg);
            return;
        }
        let message = format!(
            "Cancel SLURM job {} ({}, {})? scancel stops it and every task of it.",
            j.id,
            j.name,
            j.state.name()
        );
        let id = j.id.clone();
        self.confirm(message, Effect::CancelJobs(vec![id]));
    }

    fn ask_cancel(&mut self) {
        let Some((id, dir, state)) = self.target_run_dir() else {
            self.set_status("no run selected");
            return;
        };
        if self.runs_focus == RunsFocus::Dag
            && let Some(step) = self.selected_step_name()
        {
            let live: Vec<&StepRow> = self
                .snapshot
                .steps
                .iter()
                .filter(|s| (s.name == step || s.group == step) && !s.state.is_final())
                .collect();
            if live.is_empty() {
                self.set_status(format!(
                    "{step} is not pending or running: nothing to cancel"
                ));
                return;
            }
            let running = live
                .iter()
                .filter(|s| s.state == StepState::Running)
                .count();
            self.confirm(
                format!(
                    "Cancel {step} in run {id}? {running} running instance(s) get SIGTERM (SIGKILL after the grace period), {} waiting one(s) will not start.",
                    live.len() - running
                ),
                Effect::Request {
                    run_dir: dir,
                    request: Request::Cancel { step: Some(step) },
                },
            );
            return;
        }
        if state != RunState::Running {
            self.set_status(format!("run {id} is already {state}"));
            return;
        }
        let running = self
            .snapshot
            .steps
            .iter()
            .filter(|s| s.state == StepState::Running)
            .count();
        self.confirm(
            format!("Cancel the whole run {id}? {running} running step(s) are stopped, nothing new starts."),
            Effect::Request {
                run_dir: dir,
                request: Request::Cancel { step: None },
            },
        );
    }

    fn ask_resume(&mut self) {
        let Some((id, dir, state)) = self.target_run_dir() else {
            self.set_status("no run selected");
            return;
        };
        // A run nobody drives may look finished (its steps ended unattended): the log still waits for
        // an engine to record it.
        if !self.snapshot.dead_engines.contains(&id) {
            let why = if state == RunState::Running {
                "has a live engine".to_string()
            } else {
                format!("is already {state}")
            };
            self.set_status(format!("run {id} {why}: nothing to resume"));
            return;
        }
        self.confirm(
            format!(
                "Resume run {id}? Its engine died; a background engine takes it over, follows the steps still running and starts the rest."
            ),
            Effect::Resume(dir),
        );
    }

    fn search_logs(&mut self, forward: bool) {
        let (Some(term), Some(tail)) = (self.logs.search.clone(), self.logs.tail.as_ref()) else {
            return;
        };
        let lines: Vec<&str> = tail.text.lines().collect();
        let n = lines.len();
        let current = n.saturating_sub(1 + self.logs.scroll);
        let hit = if forward {
            (current + 1..n).find(|&i| lines[i].contains(&term))
        } else {
            (0..current).rev().find(|&i| lines[i].contains(&term))
        };
        match hit {
            Some(i) => {
                self.logs.follow = false;
                self.logs.scroll = n - 1 - i;
            }
            None => self.set_status(format!("{term:?} not found")),
        }
    }

    /// Text typed into an input overlay. Returns effects when Enter submits it.
    fn input_key(&mut self, key: Edit) -> Vec<Effect> {
        let Some(Overlay::Input(input)) = self.overlay.as_mut() else {
            return Vec::new();
        };
        let text = match input {
            Input::Command(t) | Input::Filter(t) | Input::LaunchFile(t) | Input::LogSearch(t) => t,
        };
        match key {
            Edit::Char(c) => text.push(c),
            Edit::Backspace => {
                text.pop();
            }
            Edit::Up | Edit::Down => {}
            Edit::Tab => {
                if let Input::Command(t) = input {
                    let c = complete_command(t);
                    if let [one] = c.as_slice() {
                        *t = format!("{one} ");
                    } else if !c.is_empty() {
                        self.status = Some((c.join("  "), Instant::now()));
                    }
                }
            }
            Edit::Esc => {
                self.overlay = None;
            }
            Edit::Enter => {
                let input = match self.overlay.take() {
                    Some(Overlay::Input(i)) => i,
                    _ => return Vec::new(),
                };
                return self.submit(input);
            }
        }
        // The filter applies as it is typed, and the data thread follows the run it leaves selected.
        if let Some(Overlay::Input(Input::Filter(t))) = &self.overlay {
            self.filter = t.clone();
            self.clamp_runs();
            self.rebuild_dag();
            self.trials.follow_filter(&self.filter);
            return self.sync_watch();
        }
        Vec::new()
    }

    fn submit(&mut self, input: Input) -> Vec<Effect> {
        match input {
            Input::Command(line) => match Action::parse_command(&line) {
                Ok(a) => self.update(a),
                Err(e) => {
                    self.set_status(e);
                    Vec::new()
                }
            },
            Input::Filter(t) => {
                self.filter = t;
                self.clamp_runs();
                self.rebuild_dag();
                self.trials.follow_filter(&self.filter);
                self.sync_watch()
            }
            Input::LogSearch(t) => {
                self.logs.search = (!t.is_empty()).then_some(t);
                self.search_logs(false);
                Vec::new()
            }
            Input::LaunchFile(f) => {
                let path = PathBuf::from(f.trim());
                self.confirm(
                    format!("Launch {} in the background?", path.display()),
                    Effect::Launch(path),
                );
                Vec::new()
            }
        }
    }
}

impl App {
    /// Keys while the finder is open.
    fn finder_key(&mut self, key: Edit) -> Vec<Effect> {
        let Some(Overlay::Finder(f)) = self.overlay.as_mut() else {
            return Vec::new();
        };
        match key {
            Edit::Char(c) => {
                f.query.push(c);
                f.rematch();
            }
            Edit::Backspace => {
                f.query.pop();
                f.rematch();
            }
            Edit::Tab => {}
            Edit::Up => f.selected = f.selected.saturating_sub(1),
            Edit::Down => {
                f.selected = (f.selected + 1).min(f.matches.len().saturating_sub(1));
            }
            Edit::Esc => self.overlay = None,
            Edit::Enter => {
                let item = f.selected_item().cloned();
                self.overlay = None;
                if let Some(item) = item {
                    return self.jump_or_choose(item);
                }
            }
        }
        Vec::new()
    }

    /// Pins a run's curves into the metrics overlay, or unpins it.
    fn toggle_pin(&mut self, id: String) -> Vec<Effect> {
        if let Some(p) = self.pinned.iter().position(|r| *r == id) {
            self.pinned.remove(p);
            self.set_status(format!("run {id} no longer compared"));
        } else {
            self.pinned.push(id.clone());
            self.set_status(format!(
                "run {id} pinned: its curves are overlaid in Metrics"
            ));
        }
        self.sync_watch()
    }

    /// Shows what a finder item names. From the metrics pane, a run toggles its comparison overlay
    /// and a step toggles its curve.
    fn jump_or_choose(&mut self, item: super::finder::FinderItem) -> Vec<Effect> {
        use super::finder::FinderKind;
        if self.focus == Pane::Metrics {
            match item.kind {
                FinderKind::Run => return self.toggle_pin(item.target),
                FinderKind::Step => {
                    let label = item.target;
                    if !self.hidden_series.remove(&label) {
                        self.hidden_series.insert(label.clone());
                        self.set_status(format!("{label} hidden from the chart"));
                    } else {
                        self.set_status(format!("{label} shown"));
                    }
                    return Vec::new();
                }
                FinderKind::Metric | FinderKind::Job | FinderKind::Study | FinderKind::Trial => {}
            }
        }
        self.jump(item)
    }

    /// Shows what a finder item names.
    fn jump(&mut self, item: super::finder::FinderItem) -> Vec<Effect> {
        use super::finder::FinderKind;
        match item.kind {
            FinderKind::Run => {
                self.filter.clear();
                if let Some(p) = self.snapshot.runs.iter().position(|r| r.id == item.target) {
                    self.run_sel = p;
                }
                self.focus = Pane::Runs;
                self.runs_focus = RunsFocus::Runs;
                self.expanded.clear();
                self.rebuild_dag();
            }
            FinderKind::Step => {
                if let Some(s) = self.snapshot.steps.iter().find(|s| s.name == item.target) {
                    if s.name != s.group {
                        self.expanded.insert(s.group.clone());
                    }
                    self.rebuild_dag();
                }
                let target = item.target.clone();
                if let Some(p) = self.dag.iter().position(|r| self.row_name(r) == target) {
                    self.dag_sel = p;
                }
                self.focus = Pane::Runs;
                self.runs_focus = RunsFocus::Dag;
            }
            FinderKind::Metric => {
                self.metric_choice = Some(item.target.clone());
                self.snapshot.metric = Some(item.target);
                self.focus = Pane::Metrics;
            }
            FinderKind::Study | FinderKind::Trial => {
                self.filter.clear();
                let (study, number) = super::finder::trial_target(&item.target);
                self.trials.show(study, number, &self.filter);
                self.focus = Pane::Trials;
            }
            FinderKind::Job => {
                // The filter might hide it.
                self.filter.clear();
                if let Some(p) = self.sorted_jobs().iter().position(|j| j.id == item.target) {
                    self.job_sel = p;
                }
                self.focus = Pane::Jobs;
            }
        }
        self.sync_watch()
    }
}

fn step_index(cur: usize, delta: isize, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    (cur as isize + delta).clamp(0, n as isize - 1) as usize
}

fn step_wrap(cur: usize, delta: isize, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    (cur as isize + delta).rem_euclid(n as isize) as usize
}
