//! Reads the parsed TOML tree into typed fields that remember where they were written. Every unknown
//! key, wrong type and bad unit is reported (not only the first); a bad field is simply left unset.
//! Walking the spanned tree by hand, rather than through serde, is what makes "all errors at once" work.

use super::ExecutorKind;
use super::diag::{Sink, suggest};
use super::template::is_identifier;
use super::units::{parse_duration, parse_size_mb};
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

pub(crate) type Span = Range<usize>;
type Item<'i> = Spanned<DeValue<'i>>;

const TOP_KEYS: &[&str] = &["pipeline", "slurm", "env", "defaults", "step"];
const SLURM_KEYS: &[&str] = &["max_queued", "nfs_grace", "poll_budget"];
const SLURM_STEP_KEYS: &[&str] = &["array", "throttle", "mem_factor", "time_factor"];
const PIPELINE_KEYS: &[&str] = &["name", "executor", "max_parallel", "workdir"];
const STEP_FIELD_KEYS: &[&str] = &[
    "run",
    "env",
    "workdir",
    "inputs",
    "outputs",
    "retries",
    "retry_backoff",
    "timeout",
    "resources",
    "setup",
    "wrap",
    "executor",
    "slurm",
];
/// The longest step name: it names directories and Slurm files (`<name>.<seq>.<run>_<task>.err`),
/// and a file name has at most 255 bytes; the rest is room for the suffixes.
pub(crate) const MAX_STEP_NAME: usize = 200;
const STEP_ONLY_KEYS: &[&str] = &["name", "needs", "matrix"];
const RESOURCE_KEYS: &[&str] = &[
    "cpus",
    "mem",
    "gpus",
    "time",
    "partition",
    "account",
    "qos",
    "sbatch",
];
const DURATION_HELP: &str = r#"write "90s" or "01:30:00""#;
const SIZE_HELP: &str = r#"write "16G", "512M", or a number of MiB"#;

/// A value and the byte span it was written at.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct At<T> {
    pub value: T,
    pub span: Span,
}

impl<T> At<T> {
    fn new(value: T, span: Span) -> Self {
        At { value, span }
    }
}

/// A matrix cell value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum MatrixValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl MatrixValue {
    /// As shown in instance names and substituted into fields: strings raw, numbers as TOML prints them.
    pub fn display(&self) -> String {
        match self {
            MatrixValue::Str(s) => s.clone(),
            MatrixValue::Int(i) => i.to_string(),
            MatrixValue::Float(f) => toml::Value::Float(*f).to_string(),
            MatrixValue::Bool(b) => b.to_string(),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            MatrixValue::Str(s) => s.clone().into(),
            MatrixValue::Int(i) => (*i).into(),
            MatrixValue::Float(f) => (*f).into(),
            MatrixValue::Bool(b) => (*b).into(),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Spec {
    pub pipeline: PipelineSpec,
    pub slurm: SlurmSpec,
    pub env: Vec<EnvEntry>,
    pub defaults: StepFields,
    pub steps: Vec<StepSpec>,
}

#[derive(Debug, Default)]
pub(crate) struct PipelineSpec {
    pub name: Option<At<String>>,
    pub executor: Option<At<ExecutorKind>>,
    pub max_parallel: Option<At<usize>>,
    pub workdir: Option<At<String>>,
}

/// The pipeline's `[slurm]` table.
#[derive(Debug, Default)]
pub(crate) struct SlurmSpec {
    pub max_queued: Option<At<u32>>,
    pub nfs_grace: Option<At<Duration>>,
    pub poll_budget: Option<At<u32>>,
}

/// A step's `slurm = { ... }`.
#[derive(Clone, Debug, Default)]
pub(crate) struct SlurmStepSpec {
    pub array: Option<At<bool>>,
    pub throttle: Option<At<u32>>,
    pub mem_factor: Option<At<f64>>,
    pub time_factor: Option<At<f64>>,
}

#[derive(Clone, Debug)]
pub(crate) struct EnvEntry {
    pub key: At<String>,
    pub value: At<String>,
}

/// The fields a step and `[defaults]` share.
#[derive(Clone, Debug, Default)]
pub(crate) struct StepFields {
    pub run: Option<At<String>>,
    /// `run` was written, even if invalid, so a bad one is not also reported missing.
    pub run_given: bool,
    pub setup: Option<At<String>>,
    pub wrap: Option<At<String>>,
    pub workdir: Option<At<String>>,
    pub env: Vec<EnvEntry>,
    pub inputs: Option<Vec<At<String>>>,
    pub outputs: Option<Vec<At<String>>>,
    pub retries: Option<At<u32>>,
    pub retry_backoff: Option<At<Duration>>,
    pub timeout: Option<At<Duration>>,
    pub resources: ResourcesSpec,
    pub executor: Option<At<ExecutorKind>>,
    pub slurm: SlurmStepSpec,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct ResourcesSpec {
    pub cpus: Option<At<u32>>,
    pub mem_mb: Option<At<u64>>,
    pub gpus: Option<At<u32>>,
    pub time: Option<At<Duration>>,
    pub partition: Option<At<String>>,
    pub account: Option<At<String>>,
    pub qos: Option<At<String>>,
    pub sbatch: Option<Vec<At<String>>>,
}

#[derive(Debug)]
pub(crate) struct StepSpec {
    /// The `[[step]]` header (or the inline table).
    pub header: Span,
    pub name: Option<At<String>>,
    pub needs: Vec<At<String>>,
    pub matrix: Option<MatrixSpec>,
    /// The matrix was written but is unusable; expansion of this step is skipped.
    pub matrix_broken: bool,
    pub fields: StepFields,
}

#[derive(Debug)]
pub(crate) struct MatrixSpec {
    pub span: Span,
    pub keys: Vec<MatrixKey>,
    /// Each exclude entry as (key index, value index) pairs.
    pub exclude: Vec<Vec<(usize, usize)>>,
}

#[derive(Debug)]
pub(crate) struct MatrixKey {
    pub name: At<String>,
    pub values: Vec<At<MatrixValue>>,
}

impl StepFields {
    /// This step's fields over `defaults`: each field the step sets wins; `resources` merge field by
    /// field; `env` keeps the defaults' entries and lets the step's override them.
    pub fn over(&self, defaults: &StepFields) -> StepFields {
        fn pick<T: Clone>(own: &Option<T>, def: &Option<T>) -> Option<T> {
            own.as_ref().or(def.as_ref()).cloned()
        }
        let (r, d) = (&self.resources, &defaults.resources);
        StepFields {
            run: pick(&self.run, &defaults.run),
            run_given: self.run_given || defaults.run_given,
            setup: pick(&self.setup, &defaults.setup),
            wrap: pick(&self.wrap, &defaults.wrap),
            workdir: pick(&self.workdir, &defaults.workdir),
            env: defaults.env.iter().chain(&self.env).cloned().collect(),
            inputs: pick(&self.inputs, &defaults.inputs),
            outputs: pick(&self.outputs, &defaults.outputs),
            retries: pick(&self.retries, &defaults.retries),
            retry_backoff: pick(&self.retry_backoff, &defaults.retry_backoff),
            timeout: pick(&self.timeout, &defaults.timeout),
            resources: ResourcesSpec {
                cpus: pick(&r.cpus, &d.cpus),
                mem_mb: pick(&r.mem_mb, &d.mem_mb),
                gpus: pick(&r.gpus, &d.gpus),
                time: pick(&r.time, &d.time),
                partition: pick(&r.partition, &d.partition),
                account: pick(&r.account, &d.account),
                qos: pick(&r.qos, &d.qos),
                sbatch: pick(&r.sbatch, &d.sbatch),
            },
            executor: pick(&self.executor, &defaults.executor),
            slurm: SlurmStepSpec {
                array: pick(&self.slurm.array, &defaults.slurm.array),
                throttle: pick(&self.slurm.throttle, &defaults.slurm.throttle),
                mem_factor: pick(&self.slurm.mem_factor, &defaults.slurm.mem_factor),
                time_factor: pick(&self.slurm.time_factor, &defaults.slurm.time_factor),
            },
        }
    }
}

/// Reads the whole document. Problems go to `sink`; what could be read is returned.
pub(crate) fn read(doc: &DeTable<'_>, sink: &mut Sink<'_>) -> Spec {
    let mut r = Reader { sink };
    let mut spec = Spec::default();
    let mut saw_steps = false;
    for (key, value) in doc.iter() {
        match key.get_ref().as_ref() {
            "pipeline" => {
                if let Some(t) = r.table("pipeline", value) {
                    spec.pipeline = r.pipeline(t);
                }
            }
            "slurm" => {
                if let Some(t) = r.table("slurm", value) {
                    spec.slurm = r.slurm(t);
                }
            }
            "env" => {
                if let Some(t) = r.table("env", value) {
                    spec.env = r.env(t);
                }
            }
            "defaults" => {
                if let Some(t) = r.table("defaults", value) {
                    spec.defaults = r.defaults(t);
                }
            }
            "step" => {
                saw_steps = true;
                spec.steps = r.steps(value);
            }
            other => {
                let help = if PIPELINE_KEYS.contains(&other) {
                    format!("`{other}` belongs under [pipeline]")
                } else if STEP_FIELD_KEYS.contains(&other) || STEP_ONLY_KEYS.contains(&other) {
                    format!("`{other}` belongs in a [[step]] (or [defaults])")
                } else {
                    suggest(other, "expected one of", TOP_KEYS)
                };
                r.sink
                    .error_help(key.span(), format!("unknown top-level key `{other}`"), help);
            }
        }
    }
    if !saw_steps {
        r.sink.error_help(
            0..0,
            "the pipeline has no steps",
            "add a [[step]] with a `name` and a `run` command",
        );
    }
    spec
}

struct Reader<'s, 't> {
    sink: &'s mut Sink<'t>,
}

impl Reader<'_, '_> {
    fn pipeline(&mut self, t: &DeTable<'_>) -> PipelineSpec {
        let mut p = PipelineSpec::default();
        for (key, v) in t.iter() {
            match key.get_ref().as_ref() {
                "name" => {
                    p.name = self.string("name", v);
                    if let Some(n) = &p.name
                        && n.value.trim().is_empty()
                    {
                        self.sink
                            .error(n.span.clone(), "the pipeline name is empty");
                    }
                }
                "executor" => p.executor = self.executor("executor", v),
                "max_parallel" => {
                    p.max_parallel = self
                        .integer("max_parallel", v, 1, u32::MAX.into())
                        .map(|n| At::new(n.value as usize, n.span));
                }
                "workdir" => p.workdir = self.string("workdir", v),
                other => self.unknown(key, other, "[pipeline]", PIPELINE_KEYS),
            }
        }
        p
    }

    fn defaults(&mut self, t: &DeTable<'_>) -> StepFields {
        let mut f = StepFields::default();
        for (key, v) in t.iter() {
            let k = key.get_ref().as_ref();
            if self.step_field(k, v, &mut f) {
                continue;
            }
            if STEP_ONLY_KEYS.contains(&k) {
                self.sink.error_help(
                    key.span(),
                    format!("`{k}` cannot be set in [defaults]"),
                    "set it on each [[step]]",
                );
            } else {
                self.unknown(key, k, "[defaults]", STEP_FIELD_KEYS);
            }
        }
        f
    }

    fn steps(&mut self, value: &Item<'_>) -> Vec<StepSpec> {
        let Some(items) = value.get_ref().as_array() else {
            self.sink.error_help(
                value.span(),
                "`step` must be an array of tables",
                "write [[step]] before each step",
            );
            return Vec::new();
        };
        let mut steps = Vec::new();
        for item in items.iter() {
            match item.get_ref().as_table() {
                Some(t) => steps.push(self.step(item.span(), t)),
                None => self.sink.error(
                    item.span(),
                    format!("each step must be a table, not {}", a_type(item.get_ref())),
                ),
            }
        }
        steps
    }

    fn step(&mut self, header: Span, t: &DeTable<'_>) -> StepSpec {
        let mut s = StepSpec {
            header,
            name: None,
            needs: Vec::new(),
            matrix: None,
            matrix_broken: false,
            fields: StepFields::default(),
        };
        let mut name_given = false;
        for (key, v) in t.iter() {
            let k = key.get_ref().as_ref();
            match k {
                "name" => {
                    name_given = true;
                    s.name = self.string("name", v);
                    if let Some(n) = &s.name {
                        self.check_step_name(n);
                    }
                }
                "needs" => s.needs = self.strings("needs", v).unwrap_or_default(),
                "matrix" => match self.matrix(v) {
                    Some(m) => s.matrix = Some(m),
                    None => s.matrix_broken = true,
                },
                _ if self.step_field(k, v, &mut s.fields) => {}
                other => {
                    let expected: Vec<&str> = STEP_ONLY_KEYS
                        .iter()
                        .chain(STEP_FIELD_KEYS)
                        .copied()
                        .collect();
                    self.unknown(key, other, "[[step]]", &expected);
                }
            }
        }
        if !name_given {
            self.sink.error_help(
                s.header.clone(),
                "step has no `name`",
                "add `name = \"...\"` to the step",
            );
        }
        s
    }

    /// Reads one shared step field; false if `key` is not one.
    fn step_field(&mut self, key: &str, v: &Item<'_>, f: &mut StepFields) -> bool {
        match key {
            "run" => {
                f.run_given = true;
                f.run = self.string("run", v);
                if let Some(run) = &f.run
                    && run.value.trim().is_empty()
                {
                    self.sink.error(run.span.clone(), "`run` is empty");
                }
            }
            "setup" => f.setup = self.string("setup", v),
            "wrap" => f.wrap = self.string("wrap", v),
            "workdir" => f.workdir = self.string("workdir", v),
            "env" => {
                if let Some(t) = self.table("env", v) {
                    f.env = self.env(t);
                }
            }
            "inputs" => f.inputs = self.strings("inputs", v),
            "outputs" => f.outputs = self.strings("outputs", v),
            "retries" => {
                f.retries = self
                    .integer("retries", v, 0, u32::MAX.into())
                    .map(|n| At::new(n.value as u32, n.span));
            }
            "retry_backoff" => f.retry_backoff = self.duration("retry_backoff", v, true),
            "timeout" => f.timeout = self.duration("timeout", v, false),
            "resources" => {
                if let Some(t) = self.table("resources", v) {
                    f.resources = self.resources(t);
                }
            }
            "executor" => f.executor = self.executor("executor", v),
            "slurm" => {
                if let Some(t) = self.table("slurm", v) {
                    f.slurm = self.slurm_step(t);
                }
            }
            _ => return false,
        }
        true
    }

    fn resources(&mut self, t: &DeTable<'_>) -> ResourcesSpec {
        let mut r = ResourcesSpec::default();
        let small = |n: At<i64>| At::new(n.value as u32, n.span);
        for (key, v) in t.iter() {
            match key.get_ref().as_ref() {
                "cpus" => r.cpus = self.integer("cpus", v, 1, u32::MAX.into()).map(small),
                "gpus" => r.gpus = self.integer("gpus", v, 0, u32::MAX.into()).map(small),
                "mem" => r.mem_mb = self.size("mem", v),
                "time" => r.time = self.duration("time", v, false),
                "partition" => r.partition = self.string("partition", v),
                "account" => r.account = self.string("account", v),
                "qos" => r.qos = self.string("qos", v),
                "sbatch" => r.sbatch = self.strings("sbatch", v),
                other => self.unknown(key, other, "resources", RESOURCE_KEYS),
            }
        }
        r
    }

    fn slurm(&mut self, t: &DeTable<'_>) -> SlurmSpec {
        let mut s = SlurmSpec::default();
        let small = |n: At<i64>| At::new(n.value as u32, n.span);
        for (key, v) in t.iter() {
            match key.get_ref().as_ref() {
                "max_queued" => {
                    s.max_queued = self.integer("max_queued", v, 1, u32::MAX.into()).map(small)
                }
                "nfs_grace" => s.nfs_grace = self.duration("nfs_grace", v, true),
                "poll_budget" => s.poll_budget = self.integer("poll_budget", v, 1, 600).map(small),
                other => self.unknown(key, other, "[slurm]", SLURM_KEYS),
            }
        }
        s
    }

    fn slurm_step(&mut self, t: &DeTable<'_>) -> SlurmStepSpec {
        let mut s = SlurmStepSpec::default();
        for (key, v) in t.iter() {
            match key.get_ref().as_ref() {
                "array" => s.array = self.boolean("array", v),
                "throttle" => {
                    s.throttle = self
                        .integer("throttle", v, 1, u32::MAX.into())
                        .map(|n| At::new(n.value as u32, n.span))
                }
                "mem_factor" => s.mem_factor = self.factor("mem_factor", v),
                "time_factor" => s.time_factor = self.factor("time_factor", v),
                other => self.unknown(key, other, "slurm", SLURM_STEP_KEYS),
            }
        }
        s
    }

    fn boolean(&mut self, key: &str, v: &Item<'_>) -> Option<At<bool>> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(At::new(*b, v.span())),
            other => {
                self.sink.error(
                    v.span(),
                    format!("`{key}` must be true or false, not {}", a_type(other)),
                );
                None
            }
        }
    }

    /// A growth factor: a number of at least 1.
    fn factor(&mut self, key: &str, v: &Item<'_>) -> Option<At<f64>> {
        let n = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|i| i as f64),
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            other => {
                self.sink.error(
                    v.span(),
                    format!("`{key}` must be a number, not {}", a_type(other)),
                );
                return None;
            }
        };
        match n {
            Some(f) if f.is_finite() && (1.0..=100.0).contains(&f) => Some(At::new(f, v.span())),
            _ => {
                self.sink.error_help(
                    v.span(),
                    format!("`{key}` must be a number from 1 to 100"),
                    "2 doubles the request on each retry; 1 keeps it",
                );
                None
            }
        }
    }

    fn env(&mut self, t: &DeTable<'_>) -> Vec<EnvEntry> {
        let mut out = Vec::new();
        for (key, v) in t.iter() {
            let k = key.get_ref().as_ref();
            if !is_identifier(k) {
                self.sink.error_help(
                    key.span(),
                    format!("`{k}` is not a valid environment variable name"),
                    "use letters, digits and `_`, not starting with a digit",
                );
                continue;
            }
            let value = match v.get_ref() {
                DeValue::String(s) => s.to_string(),
                DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_) => {
                    match scalar(v.get_ref()) {
                        Some(m) => m.display(),
                        None => {
                            self.sink
                                .error(v.span(), format!("`{k}`: number out of range"));
                            continue;
                        }
                    }
                }
                other => {
                    self.sink.error(
                        v.span(),
                        format!(
                            "environment variable `{k}` must be a string, not {}",
                            a_type(other)
                        ),
                    );
                    continue;
                }
            };
            out.push(EnvEntry {
                key: At::new(k.to_string(), key.span()),
                value: At::new(value, v.span()),
            });
        }
        out
    }

    /// A matrix, or None (after reporting) when it cannot be used.
    fn matrix(&mut self, v: &Item<'_>) -> Option<MatrixSpec> {
        let t = self.table("matrix", v)?;
        let mut ok = true;
        let mut keys: Vec<MatrixKey> = Vec::new();
        let mut exclude_item = None;
        for (key, list) in t.iter() {
            let k = key.get_ref().as_ref();
            if k == "exclude" {
                exclude_item = Some(list);
                continue;
            }
            if !is_identifier(k) {
                self.sink.error_help(
                    key.span(),
                    format!("matrix key `{k}` is not an identifier"),
                    "use letters, digits and `_`, not starting with a digit",
                );
                ok = false;
                continue;
            }
            let Some(items) = list.get_ref().as_array() else {
                self.sink.error_help(
                    list.span(),
                    format!("matrix `{k}` must be a list of values"),
                    format!("write `{k} = [...]`"),
                );
                ok = false;
                continue;
            };
            if items.is_empty() {
                self.sink
                    .error(list.span(), format!("matrix `{k}` is an empty list"));
                ok = false;
                continue;
            }
            let mut values: Vec<At<MatrixValue>> = Vec::with_capacity(items.len());
            let mut seen = std::collections::HashSet::new();
            for item in items.iter() {
                match scalar(item.get_ref()) {
                    Some(m) => {
                        if !seen.insert(m.display()) {
                            self.sink.error(
                                item.span(),
                                format!("value `{}` appears twice in matrix `{k}`", m.display()),
                            );
                            ok = false;
                        }
                        values.push(At::new(m, item.span()));
                    }
                    None => {
                        let msg = match item.get_ref() {
                            DeValue::Float(_) => "matrix numbers must be finite".to_string(),
                            other => format!(
                                "matrix values must be strings, numbers or booleans, not {}",
                                a_type(other)
                            ),
                        };
                        self.sink.error(item.span(), msg);
                        ok = false;
                    }
                }
            }
            keys.push(MatrixKey {
                name: At::new(k.to_string(), key.span()),
                values,
            });
        }
        if keys.is_empty() && ok {
            self.sink.error(v.span(), "the matrix has no parameters");
            ok = false;
        }
        let exclude = match exclude_item {
            Some(item) => self.exclude(item, &keys),
            None => Some(Vec::new()),
        };
        match exclude {
            Some(exclude) if ok => Some(MatrixSpec {
                span: v.span(),
                keys,
                exclude,
            }),
            _ => None,
        }
    }

    fn exclude(&mut self, item: &Item<'_>, keys: &[MatrixKey]) -> Option<Vec<Vec<(usize, usize)>>> {
        let Some(entries) = item.get_ref().as_array() else {
            self.sink.error_help(
                item.span(),
                "matrix `exclude` must be a list of tables",
                "write `exclude = [{ model = \"gat\", seed = 2 }]`",
            );
            return None;
        };
        let names: Vec<&str> = keys.iter().map(|k| k.name.value.as_str()).collect();
        let mut out = Vec::new();
        let mut ok = true;
        for entry in entries.iter() {
            let Some(t) = entry.get_ref().as_table() else {
                self.sink.error(
                    entry.span(),
                    format!(
                        "each `exclude` entry must be a table, not {}",
                        a_type(entry.get_ref())
                    ),
                );
                ok = false;
                continue;
            };
            let mut pairs = Vec::new();
            for (key, v) in t.iter() {
                let k = key.get_ref().as_ref();
                let Some(ki) = names.iter().position(|n| *n == k) else {
                    self.sink.error_help(
                        key.span(),
                        format!("`exclude` names `{k}`, which is not a matrix key"),
                        suggest(k, "matrix keys", &names),
                    );
                    ok = false;
                    continue;
                };
                let shown = scalar(v.get_ref()).map(|m| m.display());
                match keys[ki]
                    .values
                    .iter()
                    .position(|x| Some(x.value.display()) == shown)
                {
                    Some(vi) => pairs.push((ki, vi)),
                    None => {
                        let list: Vec<String> =
                            keys[ki].values.iter().map(|x| x.value.display()).collect();
                        self.sink.error_help(
                            v.span(),
                            format!("`exclude` value is not one of matrix `{k}`'s values"),
                            format!("`{k}` is one of: {}", list.join(", ")),
                        );
                        ok = false;
                    }
                }
            }
            if t.is_empty() {
                self.sink.error(
                    entry.span(),
                    "empty `exclude` entry would exclude everything",
                );
                ok = false;
            }
            out.push(pairs);
        }
        ok.then_some(out)
    }

    fn check_step_name(&mut self, n: &At<String>) {
        let name = &n.value;
        let valid = !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !valid {
            self.sink.error_help(
                n.span.clone(),
                format!("invalid step name `{name}`"),
                "use letters, digits, `_`, `.` and `-`, not starting with `.`",
            );
        } else if name.len() > MAX_STEP_NAME {
            self.sink.error_help(
                n.span.clone(),
                format!(
                    "step name `{}…` is {} bytes long, more than the {MAX_STEP_NAME} a step name may have",
                    &name[..20],
                    name.len()
                ),
                "the name becomes directory and Slurm file names, which the filesystem limits to 255 bytes",
            );
        }
    }

    fn unknown(
        &mut self,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        k: &str,
        ctx: &str,
        expected: &[&str],
    ) {
        self.sink.error_help(
            key.span(),
            format!("unknown key `{k}` in {ctx}"),
            suggest(k, "expected one of", expected),
        );
    }

    fn table<'a, 'i>(&mut self, key: &str, v: &'a Item<'i>) -> Option<&'a DeTable<'i>> {
        let t = v.get_ref().as_table();
        if t.is_none() {
            self.sink.error(
                v.span(),
                format!("`{key}` must be a table, not {}", a_type(v.get_ref())),
            );
        }
        t
    }

    fn string(&mut self, key: &str, v: &Item<'_>) -> Option<At<String>> {
        match v.get_ref() {
            DeValue::String(s) => Some(At::new(s.to_string(), v.span())),
            other => {
                self.sink.error(
                    v.span(),
                    format!("`{key}` must be a string, not {}", a_type(other)),
                );
                None
            }
        }
    }

    fn strings(&mut self, key: &str, v: &Item<'_>) -> Option<Vec<At<String>>> {
        let Some(items) = v.get_ref().as_array() else {
            let help = match v.get_ref() {
                DeValue::String(s) => format!("write `{key} = [\"{s}\"]`"),
                _ => format!("write `{key} = [\"...\"]`"),
            };
            self.sink.error_help(
                v.span(),
                format!(
                    "`{key}` must be a list of strings, not {}",
                    a_type(v.get_ref())
                ),
                help,
            );
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push(At::new(s.to_string(), item.span())),
                other => {
                    self.sink.error(
                        item.span(),
                        format!("`{key}` entries must be strings, not {}", a_type(other)),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    fn integer(&mut self, key: &str, v: &Item<'_>, min: i64, max: i64) -> Option<At<i64>> {
        let n = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
            other => {
                self.sink.error(
                    v.span(),
                    format!("`{key}` must be an integer, not {}", a_type(other)),
                );
                return None;
            }
        };
        match n {
            Some(n) if n < min => {
                let msg = if min == 0 {
                    format!("`{key}` must be 0 or more")
                } else {
                    format!("`{key}` must be at least {min}")
                };
                self.sink.error(v.span(), msg);
                None
            }
            Some(n) if n <= max => Some(At::new(n, v.span())),
            _ => {
                self.sink.error(v.span(), format!("`{key}` is too large"));
                None
            }
        }
    }

    fn duration(&mut self, key: &str, v: &Item<'_>, allow_zero: bool) -> Option<At<Duration>> {
        let text = match v.get_ref() {
            DeValue::String(s) => s.as_ref(),
            // A bare number gets the same "no unit" explanation as a quoted one.
            DeValue::Integer(i) => i.as_str(),
            DeValue::Float(f) => f.as_str(),
            other => {
                self.sink.error_help(
                    v.span(),
                    format!("`{key}` must be a duration string, not {}", a_type(other)),
                    DURATION_HELP,
                );
                return None;
            }
        };
        match parse_duration(text) {
            Ok(d) if d.is_zero() && !allow_zero => {
                self.sink
                    .error(v.span(), format!("`{key}` must be more than zero"));
                None
            }
            Ok(d) => Some(At::new(d, v.span())),
            Err(e) => {
                self.sink
                    .error_help(v.span(), format!("`{key}`: {e}"), DURATION_HELP);
                None
            }
        }
    }

    fn size(&mut self, key: &str, v: &Item<'_>) -> Option<At<u64>> {
        let parsed = match v.get_ref() {
            DeValue::String(s) => parse_size_mb(s),
            DeValue::Integer(i) => parse_size_mb(i.as_str()),
            other => Err(format!("expected a size, not {}", a_type(other))),
        };
        match parsed {
            Ok(mb) => Some(At::new(mb, v.span())),
            Err(e) => {
                self.sink
                    .error_help(v.span(), format!("`{key}`: {e}"), SIZE_HELP);
                None
            }
        }
    }

    fn executor(&mut self, key: &str, v: &Item<'_>) -> Option<At<ExecutorKind>> {
        let s = self.string(key, v)?;
        match s.value.as_str() {
            "local" => Some(At::new(ExecutorKind::Local, s.span)),
            "slurm" => Some(At::new(ExecutorKind::Slurm, s.span)),
            other => {
                self.sink.error_help(
                    s.span,
                    format!("unknown executor `{other}`"),
                    suggest(other, "expected one of", &["local", "slurm"]),
                );
                None
            }
        }
    }
}

/// A scalar TOML value as a matrix value; None for other types and unrepresentable numbers.
fn scalar(v: &DeValue<'_>) -> Option<MatrixValue> {
    match v {
        DeValue::String(s) => Some(MatrixValue::Str(s.to_string())),
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .ok()
            .map(MatrixValue::Int),
        DeValue::Float(f) => f
            .as_str()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(MatrixValue::Float),
        DeValue::Boolean(b) => Some(MatrixValue::Bool(*b)),
        _ => None,
    }
}

/// "a string", "an integer", ... for messages.
fn a_type(v: &DeValue<'_>) -> String {
    let t = v.type_str();
    let article = if t.starts_with(['a', 'i']) { "an" } else { "a" };
    format!("{article} {t}")
}

#[cfg(test)]
mod tests {
    use crate::pipeline::load_str;
    use std::path::Path;

    /// The diagnostics for `text`, one string per line.
    fn errors(text: &str) -> Vec<String> {
        load_str(text, Path::new("p.toml"))
            .expect_err("should fail")
            .to_string()
            .lines()
            .map(String::from)
            .collect()
    }

    const STEP: &str = "[[step]]\nname = \"a\"\nrun = \"true\"\n";

    #[test]
    fn unknown_keys_everywhere_are_all_reported() {
        let text = "[pipeline]\nnmae = \"x\"\n\n[defaults]\nretry = 1\n\n[[step]]\nname = \"a\"\nrun = \"true\"\nrunn = \"x\"\nresources = { cpu = 2 }\n\nfoo = 1\n";
        assert_eq!(
            errors(text),
            [
                "p.toml:2:1: error: unknown key `nmae` in [pipeline]; help: did you mean `name`? expected one of: `name`, `executor`, `max_parallel`, `workdir`",
                "p.toml:5:1: error: unknown key `retry` in [defaults]; help: did you mean `retries`? expected one of: `run`, `env`, `workdir`, `inputs`, `outputs`, `retries`, `retry_backoff`, `timeout`, `resources`, `setup`, `wrap`, `executor`, `slurm`",
                "p.toml:10:1: error: unknown key `runn` in [[step]]; help: did you mean `run`? expected one of: `name`, `needs`, `matrix`, `run`, `env`, `workdir`, `inputs`, `outputs`, `retries`, `retry_backoff`, `timeout`, `resources`, `setup`, `wrap`, `executor`, `slurm`",
                "p.toml:11:15: error: unknown key `cpu` in resources; help: did you mean `cpus`? expected one of: `cpus`, `mem`, `gpus`, `time`, `partition`, `account`, `qos`, `sbatch`",
                // A key after the last [[step]] belongs to that step.
                "p.toml:13:1: error: unknown key `foo` in [[step]]; help: expected one of: `name`, `needs`, `matrix`, `run`, `env`, `workdir`, `inputs`, `outputs`, `retries`, `retry_backoff`, `timeout`, `resources`, `setup`, `wrap`, `executor`, `slurm`",
            ]
        );
    }

    #[test]
    fn misplaced_top_level_keys_get_a_hint() {
        let text = format!("name = \"x\"\nrun = \"y\"\nstep_ = 1\n{STEP}");
        assert_eq!(
            errors(&text),
            [
                "p.toml:1:1: error: unknown top-level key `name`; help: `name` belongs under [pipeline]",
                "p.toml:2:1: error: unknown top-level key `run`; help: `run` belongs in a [[step]] (or [defaults])",
                "p.toml:3:1: error: unknown top-level key `step_`; help: did you mean `step`? expected one of: `pipeline`, `slurm`, `env`, `defaults`, `step`",
            ]
        );
    }

    #[test]
    fn toml_syntax_error_is_located() {
        assert_eq!(
            errors("[pipeline]\nname = x\n"),
            [
                "p.toml:2:8: error: invalid TOML: string values must be quoted, expected literal string"
            ]
        );
    }

    #[test]
    fn no_steps() {
        assert_eq!(
            errors("[pipeline]\nname = \"x\"\n"),
            [
                "p.toml:1:1: error: the pipeline has no steps; help: add a [[step]] with a `name` and a `run` command"
            ]
        );
        assert_eq!(
            errors("[step]\nname = \"a\"\n"),
            [
                "p.toml:1:1: error: `step` must be an array of tables; help: write [[step]] before each step"
            ]
        );
    }

    #[test]
    fn executor_values() {
        let text = format!("[pipeline]\nexecutor = \"slrum\"\n{STEP}executor = 3\n");
        assert_eq!(
            errors(&text),
            [
                "p.toml:2:12: error: unknown executor `slrum`; help: did you mean `slurm`? expected one of: `local`, `slurm`",
                "p.toml:6:12: error: `executor` must be a string, not an integer",
            ]
        );
    }

    #[test]
    fn durations_are_checked() {
        let text = format!(
            "{STEP}timeout = 90\nretry_backoff = \"90\"\nresources = {{ time = \"soon\" }}\n\n[[step]]\nname = \"b\"\nrun = \"x\"\ntimeout = \"0s\"\nretry_backoff = [1]\n"
        );
        let e = errors(&text);
        assert_eq!(
            e[0],
            r#"p.toml:4:11: error: `timeout`: `90` has no unit, which is ambiguous; help: write "90s" or "01:30:00""#
        );
        assert_eq!(
            e[1],
            r#"p.toml:5:17: error: `retry_backoff`: `90` has no unit, which is ambiguous; help: write "90s" or "01:30:00""#
        );
        assert!(
            e[2].starts_with("p.toml:6:22: error: `time`: `soon` is not a valid duration"),
            "{}",
            e[2]
        );
        assert_eq!(
            e[3],
            "p.toml:11:11: error: `timeout` must be more than zero"
        );
        assert_eq!(
            e[4],
            r#"p.toml:12:17: error: `retry_backoff` must be a duration string, not an array; help: write "90s" or "01:30:00""#
        );
        assert_eq!(e.len(), 5);
    }

    #[test]
    fn sizes_are_checked() {
        let text = format!("{STEP}resources = {{ mem = \"16Q\" }}\n");
        assert_eq!(
            errors(&text),
            [
                r#"p.toml:4:21: error: `mem`: `16Q` is not a valid size (unknown unit `Q`); help: write "16G", "512M", or a number of MiB"#
            ]
        );
        let text = format!("{STEP}resources = {{ mem = 1.5 }}\n");
        assert_eq!(
            errors(&text),
            [
                r#"p.toml:4:21: error: `mem`: expected a size, not a float; help: write "16G", "512M", or a number of MiB"#
            ]
        );
    }

    #[test]
    fn integer_ranges() {
        let text = format!(
            "[pipeline]\nmax_parallel = 0\n{STEP}retries = -1\nresources = {{ cpus = 0, gpus = -1 }}\n\n[[step]]\nname = \"b\"\nrun = \"x\"\nretries = 1.5\nresources = {{ cpus = 99999999999 }}\n"
        );
        assert_eq!(
            errors(&text),
            [
                "p.toml:2:16: error: `max_parallel` must be at least 1",
                "p.toml:6:11: error: `retries` must be 0 or more",
                "p.toml:7:22: error: `cpus` must be at least 1",
                "p.toml:7:32: error: `gpus` must be 0 or more",
                "p.toml:12:11: error: `retries` must be an integer, not a float",
                "p.toml:13:22: error: `cpus` is too large",
            ]
        );
    }

    #[test]
    fn step_names() {
        let text = "[[step]]\nname = \".hidden\"\nrun = \"x\"\n\n[[step]]\nname = \"has space\"\nrun = \"x\"\n\n[[step]]\nname = \"\"\nrun = \"x\"\n\n[[step]]\nrun = \"x\"\n\n[[step]]\nname = \"ok_1.v2-final\"\nrun = \"x\"\n";
        let help = "help: use letters, digits, `_`, `.` and `-`, not starting with `.`";
        assert_eq!(
            errors(text),
            [
                format!("p.toml:2:8: error: invalid step name `.hidden`; {help}"),
                format!("p.toml:6:8: error: invalid step name `has space`; {help}"),
                format!("p.toml:10:8: error: invalid step name ``; {help}"),
                "p.toml:13:1: error: step has no `name`; help: add `name = \"...\"` to the step"
                    .to_string(),
            ]
        );
    }

    #[test]
    fn step_name_too_long_for_a_file_name() {
        let long = "a".repeat(5000);
        let text = format!("[[step]]\nname = \"{long}\"\nrun = \"x\"\n");
        assert_eq!(
            errors(&text),
            [format!(
                "p.toml:2:8: error: step name `{}…` is 5000 bytes long, more than the 200 a step name may have; help: the name becomes directory and Slurm file names, which the filesystem limits to 255 bytes",
                "a".repeat(20)
            )]
        );
    }

    #[test]
    fn run_missing_or_mistyped() {
        let text = "[[step]]\nname = \"a\"\n\n[[step]]\nname = \"b\"\nrun = [\"x\"]\n\n[[step]]\nname = \"c\"\nrun = \"  \"\n";
        assert_eq!(
            errors(text),
            [
                "p.toml:1:1: error: step `a` has no `run` command; help: add `run = \"...\"` to the step",
                "p.toml:6:7: error: `run` must be a string, not an array",
                "p.toml:10:7: error: `run` is empty",
            ]
        );
    }

    #[test]
    fn defaults_cannot_hold_step_identity() {
        let text = format!("[defaults]\nmatrix = {{ a = [1] }}\n{STEP}");
        assert_eq!(
            errors(&text),
            [
                "p.toml:2:1: error: `matrix` cannot be set in [defaults]; help: set it on each [[step]]"
            ]
        );
    }

    #[test]
    fn env_tables() {
        let text = format!("[env]\n\"BAD-NAME\" = \"x\"\nLIST = [1]\n{STEP}env = \"x\"\n");
        assert_eq!(
            errors(&text),
            [
                "p.toml:2:1: error: `BAD-NAME` is not a valid environment variable name; help: use letters, digits and `_`, not starting with a digit",
                "p.toml:3:8: error: environment variable `LIST` must be a string, not an array",
                "p.toml:7:7: error: `env` must be a table, not a string",
            ]
        );
    }

    #[test]
    fn list_fields() {
        let text = format!("{STEP}outputs = \"a.txt\"\ninputs = [\"a\", 2]\nneeds = \"b\"\n");
        assert_eq!(
            errors(&text),
            [
                "p.toml:4:11: error: `outputs` must be a list of strings, not a string; help: write `outputs = [\"a.txt\"]`",
                "p.toml:5:16: error: `inputs` entries must be strings, not an integer",
                "p.toml:6:9: error: `needs` must be a list of strings, not a string; help: write `needs = [\"b\"]`",
            ]
        );
    }

    #[test]
    fn matrix_shape_errors() {
        let text = "[[step]]\nname = \"a\"\nrun = \"x\"\nmatrix = { seed = [], \"1x\" = [1], lr = 0.1, m = [[1]], n = [1, 1], x = [nan] }\n\n[[step]]\nname = \"b\"\nrun = \"x\"\nmatrix = { seed = [1, 2], exclude = [{ sed = 1 }, { seed = 3 }, 5] }\n\n[[step]]\nname = \"c\"\nrun = \"x\"\nmatrix = {}\n\n[[step]]\nname = \"d\"\nrun = \"x\"\nmatrix = [1]\n";
        assert_eq!(
            errors(text),
            [
                "p.toml:4:19: error: matrix `seed` is an empty list",
                "p.toml:4:23: error: matrix key `1x` is not an identifier; help: use letters, digits and `_`, not starting with a digit",
                "p.toml:4:40: error: matrix `lr` must be a list of values; help: write `lr = [...]`",
                "p.toml:4:50: error: matrix values must be strings, numbers or booleans, not an array",
                "p.toml:4:64: error: value `1` appears twice in matrix `n`",
                "p.toml:4:73: error: matrix numbers must be finite",
                "p.toml:9:40: error: `exclude` names `sed`, which is not a matrix key; help: did you mean `seed`? matrix keys: `seed`",
                "p.toml:9:60: error: `exclude` value is not one of matrix `seed`'s values; help: `seed` is one of: 1, 2",
                "p.toml:9:65: error: each `exclude` entry must be a table, not an integer",
                "p.toml:14:10: error: the matrix has no parameters",
                "p.toml:19:10: error: `matrix` must be a table, not an array",
            ]
        );
    }

    #[test]
    fn slurm_tables() {
        let e = errors(
            "[slurm]\nmax_queued = 0\nnfs_grace = \"x\"\npoll = 3\n\n[[step]]\nname = \"a\"\nrun = \"true\"\nslurm = { array = 1, throttle = 0, mem_factor = 0.5, time_factor = \"2\", foo = 1 }\n",
        );
        assert_eq!(e.len(), 8, "{e:#?}");
        assert!(e[0].starts_with("p.toml:2:14: error: `max_queued` must be at least 1"));
        assert!(e[2].contains("unknown key `poll` in [slurm]; help: did you mean `poll_budget`?"));
        assert!(e[3].contains("`array` must be true or false, not an integer"));
        assert!(e[5].contains("`mem_factor` must be a number from 1 to 100"));
        assert!(e[6].contains("`time_factor` must be a number, not a string"));
        let p = load_str(
            "[pipeline]\nexecutor = \"slurm\"\n[slurm]\nmax_queued = 5\nnfs_grace = \"2m\"\n[defaults]\nslurm = { throttle = 2 }\n[[step]]\nname = \"a\"\nrun = \"true\"\nslurm = { array = false, mem_factor = 3 }\n",
            Path::new("p.toml"),
        )
        .unwrap();
        assert_eq!(p.slurm.max_queued, 5);
        assert_eq!(p.slurm.nfs_grace_s, 120.0);
        assert_eq!(p.slurm.poll_budget, 6);
        let s = &p.instances[0].slurm;
        assert!(!s.array);
        assert_eq!(s.throttle, Some(2));
        assert_eq!(s.mem_factor, 3.0);
        assert_eq!(s.time_factor, 1.5);
    }

    #[test]
    fn every_problem_in_one_pass() {
        let text = "[pipeline]\nexecutor = \"pbs\"\n\n[[step]]\nname = \"a\"\nrun = \"x\"\ntimeout = \"3\"\n\n[[step]]\nname = \"b\"\nneeds = [\"zz\"]\nrun = \"x\"\nresources = { mem = \"lots\" }\n";
        assert_eq!(errors(text).len(), 4);
    }
}
