//! What sortie knows of an Optuna study, whichever storage it came from: the trials with their params in
//! the user's own values (a categorical choice, not its index), values with their infinities, intermediate
//! values by step, attributes, and times as Unix seconds once the storage's time basis is settled.
//!
//! Kept compact (a 100 000-trial study is a few tens of MB) and shared: a study holds its trials behind
//! `Arc`s, so a snapshot for another thread copies pointers, and a reader that changes a trial someone
//! still holds copies that one trial only (`Arc::make_mut`).

mod attrs;
mod intermediate;
mod intern;
mod params;

pub use attrs::Attrs;
pub use intermediate::Intermediate;
pub use intern::Interner;
pub use params::{ParamSpace, Params};

use indexmap::IndexMap;
use serde_json::Value;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TrialState {
    Running,
    Complete,
    Pruned,
    Fail,
    Waiting,
}

impl TrialState {
    /// Optuna's name (`COMPLETE`), as the RDB stores it.
    pub fn name(self) -> &'static str {
        match self {
            TrialState::Running => "RUNNING",
            TrialState::Complete => "COMPLETE",
            TrialState::Pruned => "PRUNED",
            TrialState::Fail => "FAIL",
            TrialState::Waiting => "WAITING",
        }
    }

    pub fn from_name(s: &str) -> Option<TrialState> {
        Some(match s {
            "RUNNING" => TrialState::Running,
            "COMPLETE" => TrialState::Complete,
            "PRUNED" => TrialState::Pruned,
            "FAIL" => TrialState::Fail,
            "WAITING" => TrialState::Waiting,
            _ => return None,
        })
    }

    /// The journal's integer (Python's `TrialState` value).
    pub fn from_code(n: i64) -> Option<TrialState> {
        Some(match n {
            0 => TrialState::Running,
            1 => TrialState::Complete,
            2 => TrialState::Pruned,
            3 => TrialState::Fail,
            4 => TrialState::Waiting,
            _ => return None,
        })
    }

    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TrialState::Complete | TrialState::Pruned | TrialState::Fail
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    NotSet,
    Minimize,
    Maximize,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::NotSet => "NOT_SET",
            Direction::Minimize => "MINIMIZE",
            Direction::Maximize => "MAXIMIZE",
        }
    }

    pub fn from_name(s: &str) -> Option<Direction> {
        Some(match s {
            "NOT_SET" => Direction::NotSet,
            "MINIMIZE" => Direction::Minimize,
            "MAXIMIZE" => Direction::Maximize,
            _ => return None,
        })
    }

    pub fn from_code(n: i64) -> Option<Direction> {
        Some(match n {
            0 => Direction::NotSet,
            1 => Direction::Minimize,
            2 => Direction::Maximize,
            _ => return None,
        })
    }
}

/// A parameter's search space, in Optuna 3+ terms (legacy names are mapped on reading).
#[derive(Clone, Debug, PartialEq)]
pub enum Distribution {
    Float {
        low: f64,
        high: f64,
        log: bool,
        step: Option<f64>,
    },
    Int {
        low: i64,
        high: i64,
        log: bool,
        step: i64,
    },
    Categorical {
        choices: Vec<Value>,
    },
}

impl Distribution {
    /// The user's value of an internal one: ints as integers, a categorical index as its choice.
    /// `None` when the internal value cannot belong to this distribution (an index out of range).
    pub fn external(&self, internal: f64) -> Option<Value> {
        match self {
            Distribution::Float { .. } => Some(float_value(internal)),
            Distribution::Int { .. } => Some(Value::from(internal as i64)),
            Distribution::Categorical { .. } => self.choice(internal).cloned(),
        }
    }

    /// A categorical's choice at an internal index, without copying it.
    pub fn choice(&self, internal: f64) -> Option<&Value> {
        let Distribution::Categorical { choices } = self else {
            return None;
        };
        if !(internal.is_finite() && internal >= 0.0 && internal.fract() == 0.0) {
            return None;
        }
        choices.get(internal as usize)
    }

    /// Whether two trials' distributions of one param may coexist in a study (Optuna's compatibility
    /// rule: the same kind, and for a categorical the same choices).
    pub fn compatible(&self, other: &Distribution) -> bool {
        match (self, other) {
            (Distribution::Float { .. }, Distribution::Float { .. })
            | (Distribution::Int { .. }, Distribution::Int { .. }) => true,
            (
                Distribution::Categorical { choices: a },
                Distribution::Categorical { choices: b },
            ) => a == b,
            _ => false,
        }
    }
}

/// A float as JSON; non-finite values as the strings Python's json module would print bare.
pub fn float_value(v: f64) -> Value {
    if v.is_nan() {
        Value::from("NaN")
    } else if v == f64::INFINITY {
        Value::from("Infinity")
    } else if v == f64::NEG_INFINITY {
        Value::from("-Infinity")
    } else {
        serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Trial {
    /// The storage's id (global across studies); `number` is the user's.
    pub id: i64,
    pub number: i64,
    pub state: TrialState,
    /// One per objective; empty while running, failed or waiting.
    pub values: Box<[f64]>,
    pub params: Params,
    pub intermediate: Intermediate,
    /// Unix seconds.
    pub start: Option<f64>,
    pub end: Option<f64>,
    pub user_attrs: Attrs,
    pub system_attrs: Attrs,
    /// The RDB heartbeat (Unix seconds), when the study records heartbeats.
    pub heartbeat: Option<f64>,
}

impl Trial {
    pub fn new(id: i64, number: i64, state: TrialState) -> Trial {
        Trial {
            id,
            number,
            state,
            values: Box::default(),
            params: Params::default(),
            intermediate: Intermediate::default(),
            start: None,
            end: None,
            user_attrs: Attrs::default(),
            system_attrs: Attrs::default(),
            heartbeat: None,
        }
    }

    /// Gives back the spare room growing left, once a read has set everything.
    pub fn shrink_to_fit(&mut self) {
        self.params.shrink_to_fit();
        self.intermediate.shrink_to_fit();
        self.user_attrs.shrink_to_fit();
        self.system_attrs.shrink_to_fit();
    }

    pub fn duration(&self) -> Option<f64> {
        Some(self.end? - self.start?)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Study {
    pub id: i64,
    pub name: String,
    pub directions: Vec<Direction>,
    pub user_attrs: IndexMap<String, Value>,
    pub system_attrs: IndexMap<String, Value>,
    /// In trial-number order; shared with snapshots (clone the study to take one).
    pub trials: Vec<Arc<Trial>>,
}

/// So lists of trials, shared or borrowed, go to the same report functions.
impl AsRef<Trial> for Trial {
    fn as_ref(&self) -> &Trial {
        self
    }
}

impl Study {
    pub fn count(&self, state: TrialState) -> usize {
        self.trials.iter().filter(|t| t.state == state).count()
    }

    /// The best COMPLETE trial of a single-objective study, as Optuna picks it (−∞ < finite < +∞ when
    /// minimising; NaN never wins). `None` for several objectives or no complete trial.
    pub fn best(&self) -> Option<&Trial> {
        let [dir] = self.directions.as_slice() else {
            return None;
        };
        let sign = if *dir == Direction::Maximize {
            -1.0
        } else {
            1.0
        };
        self.trials
            .iter()
            .filter(|t| t.state == TrialState::Complete)
            .filter_map(|t| Some((t, sign * *t.values.first()?)))
            .filter(|(_, v)| !v.is_nan())
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(t, _)| &**t)
    }

    /// The time of the study's newest change that the trials tell (a start or an end).
    pub fn last_change(&self) -> Option<f64> {
        self.trials
            .iter()
            .flat_map(|t| [t.start, t.end, t.heartbeat])
            .flatten()
            .max_by(f64::total_cmp)
    }
}
