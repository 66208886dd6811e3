//! The Trials pane's charts, drawn by the metrics chart widget: optimisation history with the best so
//! far, intermediate values, a slice of one param, the Pareto front. The series are built when what
//! they show changes (kept in [`TrialsCharts`]), so an idle frame only draws.

use super::{ChartKind, TrialsView};
use crate::trials::{Direction, Distribution, Study, Trial, TrialState};
use crate::tui::chart::{
    ChartStyles, CurveChart, Point, PrepareKey, PreparedSeries, Smoothing, XMode,
};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::Widget;

/// One series and how to draw it.
pub struct Plotted {
    pub series: PreparedSeries,
    pub scatter: bool,
    /// The theme style key.
    pub style: &'static str,
}

/// What the chart shows, beside its series.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChartInfo {
    /// The chart's title: what x and y are.
    pub title: String,
    /// Why nothing is drawn, when so.
    pub empty: Option<String>,
}

/// Everything the drawn series depend on.
#[derive(Clone, Debug, PartialEq)]
struct Key {
    data: usize,
    study: usize,
    chart: ChartKind,
    slice: usize,
    marked: Vec<i64>,
    selected: Option<i64>,
    hide_pruned: bool,
    log_y: bool,
}

/// What a drawn chart depends on: the series' generation, the area, the theme's name.
type DrawnKey = (u64, Rect, String);

#[derive(Default)]
pub struct TrialsCharts {
    key: Option<Key>,
    pub plotted: Vec<Plotted>,
    pub info: ChartInfo,
    /// Bumped whenever the series are rebuilt.
    generation: u64,
    /// The last drawn chart: (generation, area, theme) and its cells. A 100 000-point scatter costs
    /// milliseconds to plot; an unchanged one is copied.
    drawn: std::cell::RefCell<Option<(DrawnKey, Buffer)>>,
}

impl TrialsCharts {
    /// Rebuilds the series when the data or the chart settings changed.
    pub fn prepare(&mut self, v: &TrialsView) {
        let key = Key {
            data: std::sync::Arc::as_ptr(&v.data) as usize,
            study: v.study_sel,
            chart: v.chart,
            slice: v.slice_param,
            marked: v.marked.iter().copied().collect(),
            selected: match v.chart {
                ChartKind::Intermediate if v.marked.is_empty() => {
                    v.selected_trial().map(|t| t.number)
                }
                _ => None,
            },
            hide_pruned: v.query.hide_pruned,
            log_y: v.log_y,
        };
        if self.key.as_ref() == Some(&key) {
            return;
        }
        let (plotted, info) = match v.study() {
            Some(s) => build(v, &s.study),
            None => (Vec::new(), ChartInfo::default()),
        };
        self.plotted = plotted;
        self.info = info;
        self.key = Some(key);
        self.generation += 1;
    }

    /// Draws the series in `area`, or copies the last drawing when nothing it shows changed.
    pub fn render(&self, buf: &mut Buffer, area: Rect, styles: ChartStyles, theme: &str) {
        let key = (self.generation, area, theme.to_string());
        let mut drawn = self.drawn.borrow_mut();
        if let Some((k, cells)) = drawn.as_ref()
            && *k == key
        {
            crate::tui::charts::copy(cells, buf, area);
            return;
        }
        let chart = CurveChart::new(self.plotted.iter().map(|p| &p.series))
            .styles(styles)
            .show_raw(false)
            .scatter(self.plotted.iter().map(|p| p.scatter).collect())
            .empty_hint("no finite values");
        let mut cells = Buffer::empty(area);
        crate::tui::charts::copy(buf, &mut cells, area);
        (&chart).render(area, &mut cells);
        crate::tui::charts::copy(&cells, buf, area);
        *drawn = Some((key, cells));
    }
}

fn prepared(label: &str, points: &[Point], log_y: bool) -> PreparedSeries {
    PreparedSeries::from_points(
        label,
        points,
        PrepareKey {
            version: 0,
            smoothing: Smoothing::None,
            x_mode: XMode::Step,
            log_y,
        },
    )
}

fn pt(x: f64, y: f64) -> Point {
    Point {
        step: x,
        time: None,
        epoch: None,
        value: y,
    }
}

/// Complete trials as dots, and pruned ones (when there are any) in their own dimmer series.
fn finished_dots(complete: &[Point], pruned: &[Point], log_y: bool) -> Vec<Plotted> {
    let mut out = vec![Plotted {
        series: prepared("complete", complete, log_y),
        scatter: true,
        style: "state.succeeded",
    }];
    if !pruned.is_empty() {
        out.push(Plotted {
            series: prepared("pruned", pruned, log_y),
            scatter: true,
            style: "state.cancelled",
        });
    }
    out
}

fn shown(v: &TrialsView, t: &Trial) -> bool {
    !(v.query.hide_pruned && t.state == TrialState::Pruned)
}

fn build(v: &TrialsView, s: &Study) -> (Vec<Plotted>, ChartInfo) {
    match v.chart {
        ChartKind::History => history(v, s),
        ChartKind::Intermediate => intermediate(v, s),
        ChartKind::Slice => slice(v, s),
        ChartKind::Pareto => pareto(v, s),
        ChartKind::Importance => (
            Vec::new(),
            ChartInfo {
                title: "param importance (PED-ANOVA, as Optuna 5.0)".into(),
                empty: None,
            },
        ),
    }
}

fn history(v: &TrialsView, s: &Study) -> (Vec<Plotted>, ChartInfo) {
    let dir = s.directions.first().copied().unwrap_or(Direction::Minimize);
    let value = |t: &Trial| t.values.first().copied().filter(|x| x.is_finite());
    let mut complete = Vec::new();
    let mut pruned = Vec::new();
    let mut best = Vec::new();
    let mut so_far: Option<f64> = None;
    for t in s.trials.iter().filter(|t| shown(v, t)) {
        let Some(y) = value(t) else { continue };
        let x = t.number as f64;
        match t.state {
            TrialState::Complete => {
                complete.push(pt(x, y));
                let better = so_far.is_none_or(|b| match dir {
                    Direction::Maximize => y > b,
                    _ => y < b,
                });
                if better {
                    so_far = Some(y);
                }
                if let Some(b) = so_far {
                    best.push(pt(x, b));
                }
            }
            TrialState::Pruned => pruned.push(pt(x, y)),
            _ => {}
        }
    }
    let mut out = finished_dots(&complete, &pruned, v.log_y);
    out.push(Plotted {
        series: prepared("best so far", &best, v.log_y),
        scatter: false,
        style: "chart.series.1",
    });
    let objective = if s.directions.len() > 1 {
        "objective 0"
    } else {
        "objective"
    };
    let info = ChartInfo {
        title: format!("history: {objective} by trial number, best so far"),
        empty: complete
            .is_empty()
            .then(|| "no complete trial with a finite value yet".into()),
    };
    (out, info)
}

/// The trials the intermediate chart shows: the marked ones, else the selected one and every running one.
fn intermediate_trials<'a>(v: &TrialsView, s: &'a Study) -> Vec<&'a Trial> {
    let selected = v.selected_trial().map(|t| t.number);
    s.trials
        .iter()
        .map(|t| t.as_ref())
        .filter(|t| shown(v, t) && !t.intermediate.is_empty())
        .filter(|t| {
            if v.marked.is_empty() {
                Some(t.number) == selected || t.state == TrialState::Running
            } else {
                v.marked.contains(&t.number)
            }
        })
        .collect()
}

/// Intermediate curves drawn at most (a study with 500 running trials would be a solid block).
const MAX_CURVES: usize = 24;

fn intermediate(v: &TrialsView, s: &Study) -> (Vec<Plotted>, ChartInfo) {
    let trials = intermediate_trials(v, s);
    let mut out = Vec::new();
    // Finished ones first, so the running ones draw over them.
    let (running, done): (Vec<&Trial>, Vec<&Trial>) = trials
        .into_iter()
        .partition(|t| t.state == TrialState::Running);
    for (i, t) in done.iter().chain(&running).take(MAX_CURVES).enumerate() {
        let pts: Vec<Point> = t
            .intermediate
            .iter()
            .map(|(step, y)| pt(step as f64, y))
            .collect();
        let running = t.state == TrialState::Running;
        out.push(Plotted {
            series: prepared(&format!("#{}", t.number), &pts, v.log_y),
            scatter: false,
            style: if running {
                "state.running"
            } else {
                SERIES_STYLES[i % SERIES_STYLES.len()]
            },
        });
    }
    let info = ChartInfo {
        title: if v.marked.is_empty() {
            "intermediate values: the selected trial and the running ones (bold); Space marks trials".into()
        } else {
            format!("intermediate values of {} marked trial(s)", v.marked.len())
        },
        empty: out
            .is_empty()
            .then(|| "no intermediate values reported by these trials".into()),
    };
    (out, info)
}

const SERIES_STYLES: [&str; 6] = [
    "chart.series.0",
    "chart.series.1",
    "chart.series.2",
    "chart.series.3",
    "chart.series.4",
    "chart.series.5",
];

/// Where a param value goes on the x axis: numbers as they are (log params as log10), a choice as its
/// index among the choices.
fn slice_x(t: &Trial, name: &str) -> Option<f64> {
    let value = t.params.get(name)?;
    match t.params.distribution(name) {
        Some(Distribution::Categorical { .. }) => t.params.internal(name),
        Some(Distribution::Float { log: true, .. }) | Some(Distribution::Int { log: true, .. }) => {
            value.as_f64().filter(|x| *x > 0.0).map(f64::log10)
        }
        _ => value.as_f64(),
    }
}

fn slice_axis(s: &Study, name: &str) -> String {
    let dist = s.trials.iter().find_map(|t| t.params.distribution(name));
    match dist {
        Some(Distribution::Categorical { choices }) => {
            let names: Vec<String> = choices
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{i}={}", crate::trials::report::param_text(c)))
                .collect();
            format!("{name} ({})", names.join(" "))
        }
        Some(Distribution::Float { log: true, .. }) | Some(Distribution::Int { log: true, .. }) => {
            format!("log10 {name}")
        }
        _ => name.to_string(),
    }
}

fn slice(v: &TrialsView, s: &Study) -> (Vec<Plotted>, ChartInfo) {
    let params = v.params();
    let Some(name) = params.get(v.slice_param.min(params.len().saturating_sub(1))) else {
        return (
            Vec::new(),
            ChartInfo {
                title: "slice".into(),
                empty: Some("this study has no params".into()),
            },
        );
    };
    let mut complete = Vec::new();
    let mut pruned = Vec::new();
    for t in s.trials.iter().filter(|t| shown(v, t)) {
        let (Some(x), Some(y)) = (slice_x(t, name), t.values.first().copied()) else {
            continue;
        };
        match t.state {
            TrialState::Complete => complete.push(pt(x, y)),
            TrialState::Pruned => pruned.push(pt(x, y)),
            _ => {}
        }
    }
    let out = finished_dots(&complete, &pruned, v.log_y);
    let info = ChartInfo {
        title: format!(
            "slice: objective by {} ([ ] other param, {}/{})",
            slice_axis(s, name),
            v.slice_param.min(params.len() - 1) + 1,
            params.len()
        ),
        empty: (complete.is_empty() && pruned.is_empty())
            .then(|| format!("no finished trial has {name} and a value")),
    };
    (out, info)
}

fn pareto(v: &TrialsView, s: &Study) -> (Vec<Plotted>, ChartInfo) {
    if s.directions.len() < 2 {
        return (
            Vec::new(),
            ChartInfo {
                title: "pareto front".into(),
                empty: Some("the Pareto front needs two objectives".into()),
            },
        );
    }
    let front: std::collections::BTreeSet<i64> = crate::trials::report::best_trials(s)
        .iter()
        .map(|t| t.number)
        .collect();
    let mut rest = Vec::new();
    let mut best = Vec::new();
    for t in s.trials.iter().filter(|t| t.state == TrialState::Complete) {
        let (Some(x), Some(y)) = (t.values.first(), t.values.get(1)) else {
            continue;
        };
        if front.contains(&t.number) {
            best.push(pt(*x, *y));
        } else {
            rest.push(pt(*x, *y));
        }
    }
    let name = |i: usize| {
        format!(
            "objective {i} ({})",
            crate::trials::report::direction_name(s.directions[i])
        )
    };
    let out = vec![
        Plotted {
            series: prepared("dominated", &rest, v.log_y),
            scatter: true,
            style: "text.dim",
        },
        Plotted {
            series: prepared("pareto front", &best, v.log_y),
            scatter: true,
            style: "chart.series.1",
        },
    ];
    let info = ChartInfo {
        title: format!("pareto front: {} (x) against {} (y)", name(0), name(1)),
        empty: best.is_empty().then(|| "no complete trial yet".into()),
    };
    (out, info)
}
