//! Turns one `[[step]]` (over `[defaults]`) into its instances: the matrix's cartesian product minus
//! `exclude`, with `{{param}}` substituted into every templated field. Templates are bound once per
//! step and values quoted once per value, so each instance is only concatenation.

use super::diag::{Sink, suggest};
use super::spec::{At, EnvEntry, MatrixSpec, StepFields, StepSpec};
use super::template::{Bound, Template};
use super::{ExecutorKind, Instance, Resources, SlurmStep};
use indexmap::IndexMap;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// More cells than this is almost certainly a mistake, and would exhaust memory before saying so.
const MAX_INSTANCES: usize = 1_000_000;

/// The longest file name (one path component) on the filesystems sortie runs on.
const MAX_FILE_NAME: usize = 255;

/// What every step shares.
pub(crate) struct Context<'a> {
    pub env: &'a [EnvEntry],
    pub defaults: &'a StepFields,
    pub workdir: &'a Path,
    pub executor: ExecutorKind,
    /// The pipeline file's directory: outputs outside it are warned about.
    pub project: &'a Path,
}

/// The instances of `step` (whose name is `name` and which needs the groups `needs`), or an empty
/// list after reporting why there are none.
pub(crate) fn step(
    step: &StepSpec,
    name: &str,
    needs: &[String],
    cx: &Context<'_>,
    sink: &mut Sink<'_>,
) -> Vec<Instance> {
    if step.matrix_broken {
        return Vec::new();
    }
    let f = step.fields.over(cx.defaults);
    let Some(run) = &f.run else {
        if !f.run_given {
            sink.error_help(
                step.header.clone(),
                format!("step `{name}` has no `run` command"),
                "add `run = \"...\"` to the step",
            );
        }
        return Vec::new();
    };
    let matrix = Matrix::new(step.matrix.as_ref());
    let keys: Vec<&str> = matrix.keys.iter().map(String::as_str).collect();
    let mut b = Binder {
        sink,
        keys: &keys,
        step: name,
        ok: true,
        quoted_keys: HashSet::new(),
    };
    let run_t = b.bind("run", run, true);
    let setup_t = f.setup.as_ref().map(|s| b.bind("setup", s, true));
    let wrap_t = f.wrap.as_ref().map(|s| b.bind("wrap", s, true));
    let workdir_t = f.workdir.as_ref().map(|s| b.bind("workdir", s, false));
    let inputs_t: Vec<Bound> = f.inputs.iter().flatten().map(|s| b.bind_glob(s)).collect();
    let input_spans: Vec<std::ops::Range<usize>> =
        f.inputs.iter().flatten().map(|s| s.span.clone()).collect();
    let output_spans: Vec<std::ops::Range<usize>> =
        f.outputs.iter().flatten().map(|s| s.span.clone()).collect();
    let mut warned_outputs = HashSet::new();
    let outputs_t: Vec<Bound> = f
        .outputs
        .iter()
        .flatten()
        .map(|s| b.bind("outputs", s, false))
        .collect();
    let env_t: Vec<(&str, Bound)> = cx
        .env
        .iter()
        .chain(&f.env)
        .map(|e| (e.key.value.as_str(), b.bind("env", &e.value, false)))
        .collect();
    let (ok, quoted_keys) = (b.ok, b.quoted_keys);
    let Some(quoted) = quote_values(&matrix, &quoted_keys, sink).filter(|_| ok) else {
        return Vec::new();
    };

    let total = matrix
        .values
        .iter()
        .try_fold(1usize, |acc, v| acc.checked_mul(v.len()))
        .filter(|&t| t <= MAX_INSTANCES);
    let Some(total) = total else {
        sink.error(
            matrix.span.clone().unwrap_or(step.header.clone()),
            format!("the matrix of step `{name}` has more than {MAX_INSTANCES} combinations"),
        );
        return Vec::new();
    };

    let resources = resources(&f);
    let retries = f.retries.as_ref().map_or(0, |r| r.value);
    let retry_backoff_s = f
        .retry_backoff
        .as_ref()
        .map_or(1.0, |d| d.value.as_secs_f64());
    let timeout_s = f.timeout.as_ref().map(|d| d.value.as_secs_f64());
    let executor = f.executor.as_ref().map_or(cx.executor, |e| e.value);
    let slurm = slurm_step(&f);

    // Most steps have one workdir for all instances; join it once.
    let fixed_workdir = match &workdir_t {
        Some(t) => join_dir(cx.workdir, &t.render(|_| "")),
        None => cx.workdir.to_path_buf(),
    };
    let mut out = Vec::new();
    let mut names = HashSet::new();
    let mut cell = vec![0usize; matrix.keys.len()];
    for _ in 0..total {
        if !matrix.excluded(&cell) {
            let raw = |k: usize| matrix.values[k][cell[k]].as_str();
            let shell = |k: usize| quoted[k][cell[k]].as_str();
            let inst_name = matrix.instance_name(name, &cell);
            if !names.insert(inst_name.clone()) {
                sink.error(
                    matrix.span.clone().unwrap_or(step.header.clone()),
                    format!("the matrix of step `{name}` makes two instances named `{inst_name}`"),
                );
                return Vec::new();
            }
            // A plain step's name is already limited; matrix values make names longer.
            let dir_name = crate::runlog::paths::step_dir_name(&inst_name);
            if !matrix.keys.is_empty() && dir_name.len() > MAX_FILE_NAME {
                sink.error_help(
                    matrix.span.clone().unwrap_or(step.header.clone()),
                    format!(
                        "the matrix of step `{name}` makes an instance whose directory name has {} bytes, more than the {MAX_FILE_NAME} a file name may have",
                        dir_name.len()
                    ),
                    "use shorter matrix values (the instance name is `step[key=value,...]`)",
                );
                return Vec::new();
            }
            let workdir = match &workdir_t {
                Some(t) if t.keys().next().is_some() => join_dir(cx.workdir, &t.render(raw)),
                _ => fixed_workdir.clone(),
            };
            let mut env = IndexMap::with_capacity(env_t.len());
            for (k, t) in &env_t {
                env.insert(k.to_string(), t.render(raw));
            }
            let inputs: Vec<String> = inputs_t.iter().map(|t| t.render(raw)).collect();
            refuse_special_inputs(&inputs, &input_spans, &workdir, sink);
            let outputs: Vec<String> = outputs_t.iter().map(|t| t.render(raw)).collect();
            for (k, o) in outputs.iter().enumerate() {
                if !warned_outputs.contains(&k) && !inside(&workdir.join(o), cx.project) {
                    warned_outputs.insert(k);
                    sink.warn(
                        output_spans[k].clone(),
                        format!(
                            "output `{o}` of step `{name}` is outside the project ({}): sortie cannot tell whether the step wrote it",
                            cx.project.display()
                        ),
                    );
                }
            }
            out.push(Instance {
                name: inst_name,
                group: name.to_string(),
                params: (0..matrix.keys.len())
                    .map(|k| (matrix.keys[k].clone(), matrix.json[k][cell[k]].clone()))
                    .collect(),
                run: run_t.render(shell),
                setup: setup_t.as_ref().map(|t| t.render(shell)),
                wrap: wrap_t.as_ref().map(|t| t.render(shell)),
                env,
                workdir,
                inputs,
                outputs,
                needs: needs.to_vec(),
                retries,
                retry_backoff_s,
                timeout_s,
                resources: resources.clone(),
                executor,
                slurm: slurm.clone(),
            });
        }
        advance(&mut cell, &matrix.values);
    }
    if out.is_empty() {
        sink.error(
            matrix.span.clone().unwrap_or(step.header.clone()),
            format!("`exclude` removes every combination of the matrix of step `{name}`"),
        );
    }
    out
}

/// Whether `path` is under `dir`, taking `..` lexically (enough for a warning).
fn inside(path: &Path, dir: &Path) -> bool {
    let mut norm = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                norm.pop();
            }
            std::path::Component::CurDir => {}
            c => norm.push(c),
        }
    }
    norm.starts_with(dir)
}

/// Reports inputs named literally (globs are checked when the run expands them) that exist but are not
/// regular files or directories: hashing a FIFO or `/dev/zero` would never end.
fn refuse_special_inputs(
    inputs: &[String],
    spans: &[std::ops::Range<usize>],
    workdir: &Path,
    sink: &mut Sink<'_>,
) {
    for (input, span) in inputs.iter().zip(spans) {
        if super::inputs::is_glob(input) {
            continue;
        }
        if let Some(kind) = super::inputs::special_kind(&workdir.join(input)) {
            sink.error(span.clone(), super::inputs::refusal(input, kind));
        }
    }
}

/// The shell-quoted form of each value of the keys in `shell_keys` (others are left empty), or None
/// after reporting values that cannot be quoted (a NUL byte).
fn quote_values(
    matrix: &Matrix,
    shell_keys: &HashSet<usize>,
    sink: &mut Sink<'_>,
) -> Option<Vec<Vec<String>>> {
    let mut ok = true;
    let mut quoted = Vec::with_capacity(matrix.keys.len());
    for (k, values) in matrix.values.iter().enumerate() {
        if !shell_keys.contains(&k) {
            quoted.push(vec![String::new(); values.len()]);
            continue;
        }
        let mut q = Vec::with_capacity(values.len());
        for (v, raw) in values.iter().enumerate() {
            match shlex::try_quote(raw) {
                Ok(s) => q.push(s.into_owned()),
                Err(_) => {
                    sink.error(
                        matrix.spans[k][v].clone(),
                        format!(
                            "matrix value of `{}` contains a NUL byte, which a shell command cannot hold",
                            matrix.keys[k]
                        ),
                    );
                    ok = false;
                    q.push(String::new());
                }
            }
        }
        quoted.push(q);
    }
    ok.then_some(quoted)
}

/// `rel` under `base` (unless absolute), with `.` components dropped. `..` is kept: resolving it
/// lexically would be wrong under symlinks.
pub(crate) fn join_dir(base: &Path, rel: &str) -> PathBuf {
    base.join(rel).components().collect()
}

/// Odometer step: the last key varies fastest, so the first written key varies slowest.
fn advance(cell: &mut [usize], values: &[Vec<String>]) {
    for k in (0..cell.len()).rev() {
        cell[k] += 1;
        if cell[k] < values[k].len() {
            return;
        }
        cell[k] = 0;
    }
}

fn slurm_step(f: &StepFields) -> SlurmStep {
    let s = &f.slurm;
    let d = SlurmStep::default();
    SlurmStep {
        array: s.array.as_ref().map_or(d.array, |a| a.value),
        throttle: s.throttle.as_ref().map(|t| t.value),
        mem_factor: s.mem_factor.as_ref().map_or(d.mem_factor, |m| m.value),
        time_factor: s.time_factor.as_ref().map_or(d.time_factor, |t| t.value),
    }
}

fn resources(f: &StepFields) -> Resources {
    let r = &f.resources;
    let text = |s: &Option<At<String>>| s.as_ref().map(|s| s.value.clone());
    Resources {
        cpus: r.cpus.as_ref().map(|c| c.value),
        mem_mb: r.mem_mb.as_ref().map(|m| m.value),
        gpus: r.gpus.as_ref().map(|g| g.value),
        // Slurm counts whole seconds (minutes, really); never round a limit down.
        time_s: r.time.as_ref().map(|t| t.value.as_secs_f64().ceil() as u64),
        partition: text(&r.partition),
        account: text(&r.account),
        qos: text(&r.qos),
        sbatch: r.sbatch.iter().flatten().map(|s| s.value.clone()).collect(),
    }
}

/// A step's matrix in the shapes expansion needs. A step without one is a matrix with no keys and
/// exactly one (empty) cell.
struct Matrix {
    span: Option<std::ops::Range<usize>>,
    keys: Vec<String>,
    /// Values as displayed, per key.
    values: Vec<Vec<String>>,
    json: Vec<Vec<serde_json::Value>>,
    spans: Vec<Vec<std::ops::Range<usize>>>,
    exclude: Vec<Vec<(usize, usize)>>,
}

impl Matrix {
    fn new(m: Option<&MatrixSpec>) -> Matrix {
        let Some(m) = m else {
            return Matrix {
                span: None,
                keys: Vec::new(),
                values: Vec::new(),
                json: Vec::new(),
                spans: Vec::new(),
                exclude: Vec::new(),
            };
        };
        Matrix {
            span: Some(m.span.clone()),
            keys: m.keys.iter().map(|k| k.name.value.clone()).collect(),
            values: m
                .keys
                .iter()
                .map(|k| k.values.iter().map(|v| v.value.display()).collect())
                .collect(),
            json: m
                .keys
                .iter()
                .map(|k| k.values.iter().map(|v| v.value.to_json()).collect())
                .collect(),
            spans: m
                .keys
                .iter()
                .map(|k| k.values.iter().map(|v| v.span.clone()).collect())
                .collect(),
            exclude: m.exclude.clone(),
        }
    }

    /// `train[model=gcn,seed=0]`: keys in written order, values raw; just `train` without a matrix.
    fn instance_name(&self, step: &str, cell: &[usize]) -> String {
        let mut out = step.to_string();
        for (k, key) in self.keys.iter().enumerate() {
            out.push(if k == 0 { '[' } else { ',' });
            out.push_str(key);
            out.push('=');
            out.push_str(&self.values[k][cell[k]]);
        }
        if !self.keys.is_empty() {
            out.push(']');
        }
        out
    }

    fn excluded(&self, cell: &[usize]) -> bool {
        self.exclude
            .iter()
            .any(|entry| entry.iter().all(|&(k, v)| cell[k] == v))
    }
}

/// Binds a step's templates to its matrix keys, reporting unknown parameters where they were written.
struct Binder<'a, 's, 't> {
    sink: &'s mut Sink<'t>,
    keys: &'a [&'a str],
    step: &'a str,
    ok: bool,
    /// Keys that appear in shell text, whose values must be quotable.
    quoted_keys: HashSet<usize>,
}

impl Binder<'_, '_, '_> {
    /// The bound template; on an unknown parameter, an empty one after reporting (and clearing `ok`).
    fn bind(&mut self, field: &str, s: &At<String>, shell: bool) -> Bound {
        let t = match Template::parse(&s.value) {
            Ok(t) => t,
            Err(raw) => {
                let span = self.span_of(s, &raw);
                self.sink.error_help(
                    span,
                    format!(
                        "unclosed placeholder `{raw}` in `{field}` of step `{}`",
                        self.step
                    ),
                    format!("close it: `{raw}}}}}`"),
                );
                self.ok = false;
                return Bound::default();
            }
        };
        match t.bind(self.keys) {
            Ok(b) => {
                if shell {
                    self.quoted_keys.extend(b.keys());
                }
                b
            }
            Err((name, raw)) => {
                let span = self.span_of(s, raw);
                let help = if self.keys.is_empty() {
                    format!(
                        "step `{}` has no matrix; parameters come from `matrix = {{ {name} = [...] }}`",
                        self.step
                    )
                } else {
                    suggest(name, "known parameters", self.keys)
                };
                self.sink.error_help(
                    span,
                    format!(
                        "unknown parameter `{{{{{name}}}}}` in `{field}` of step `{}`",
                        self.step
                    ),
                    help,
                );
                self.ok = false;
                Bound::default()
            }
        }
    }

    /// The span of `raw` inside the field's source when the source holds it verbatim (it always does
    /// unless written with escapes), else the whole field.
    fn span_of(&self, s: &At<String>, raw: &str) -> std::ops::Range<usize> {
        let src = self.sink.text().get(s.span.clone()).unwrap_or("");
        match src.find(raw) {
            Some(at) => s.span.start + at..s.span.start + at + raw.len(),
            None => s.span.clone(),
        }
    }

    fn bind_glob(&mut self, s: &At<String>) -> Bound {
        if let Err(e) = glob::Pattern::new(&s.value) {
            self.sink.error(
                s.span.clone(),
                format!(
                    "`inputs` entry `{}` is not a valid glob: {}",
                    s.value, e.msg
                ),
            );
            self.ok = false;
            return Bound::default();
        }
        self.bind("inputs", s, false)
    }
}

#[cfg(test)]
mod tests {
    use crate::pipeline::{ExecutorKind, Plan, load_str};
    use std::path::Path;

    fn plan(text: &str) -> Plan {
        load_str(text, Path::new("/proj/sortie.toml")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn errors(text: &str) -> String {
        load_str(text, Path::new("p.toml"))
            .expect_err("should fail")
            .to_string()
    }

    fn names(p: &Plan) -> Vec<&str> {
        p.instances.iter().map(|i| i.name.as_str()).collect()
    }

    #[test]
    fn product_in_written_key_order_minus_excludes() {
        let p = plan(
            r#"[[step]]
name = "train"
run = "t {{model}} {{seed}}"
matrix = { model = ["gcn", "gat"], seed = [0, 1, 2], exclude = [{ model = "gat", seed = 2 }, { seed = 1, model = "gcn" }] }
"#,
        );
        assert_eq!(
            names(&p),
            [
                "train[model=gcn,seed=0]",
                "train[model=gcn,seed=2]",
                "train[model=gat,seed=0]",
                "train[model=gat,seed=1]",
            ]
        );
        assert_eq!(p.instances[1].run, "t gcn 2");
        let params: Vec<_> = p.instances[1].params.iter().collect();
        assert_eq!(
            params,
            [
                (&"model".to_string(), &serde_json::json!("gcn")),
                (&"seed".to_string(), &serde_json::json!(2))
            ]
        );
        assert!(p.groups[0].is_matrix);
        assert_eq!(p.groups[0].instances, [0, 1, 2, 3]);
    }

    #[test]
    fn exclude_by_one_key_removes_a_whole_row() {
        let p = plan(
            "[[step]]\nname = \"s\"\nrun = \"x\"\nmatrix = { a = [1, 2], b = [true, false], exclude = [{ a = 1 }] }\n",
        );
        assert_eq!(names(&p), ["s[a=2,b=true]", "s[a=2,b=false]"]);
    }

    #[test]
    fn values_display_raw() {
        let p = plan(
            "[[step]]\nname = \"s\"\nrun = \"x --lr {{lr}} --f {{f}} --n {{n}}\"\nmatrix = { lr = [0.001, 1e3], f = [true], n = [\"a b\"] }\n",
        );
        assert_eq!(
            names(&p),
            ["s[lr=0.001,f=true,n=a b]", "s[lr=1000.0,f=true,n=a b]"]
        );
        assert_eq!(p.instances[0].run, "x --lr 0.001 --f true --n 'a b'");
        assert_eq!(p.instances[0].params["lr"], serde_json::json!(0.001));
    }

    #[test]
    fn hostile_value_becomes_one_argument() {
        let evil = "x'; rm -rf ~; '";
        let text = format!(
            "[[step]]\nname = \"s\"\nrun = \"echo {{{{v}}}} done\"\nmatrix = {{ v = [\"{}\", \"$(reboot)\", \"a\\\"b\\\\c\"] }}\n",
            evil.replace('\\', "\\\\")
        );
        let p = plan(&text);
        let values = [evil, "$(reboot)", "a\"b\\c"];
        for (inst, value) in p.instances.iter().zip(values) {
            let args = shlex::split(&inst.run).expect("valid shell words");
            assert_eq!(args, ["echo", value, "done"], "{}", inst.run);
        }
        // Nothing of the payload is left outside quotes.
        let words = shlex::split(&p.instances[0].run).unwrap();
        assert!(!words.iter().any(|w| w == "rm" || w == "-rf"));
        assert_eq!(p.instances[0].name, "s[v=x'; rm -rf ~; ']");
    }

    #[test]
    fn nul_byte_in_a_shell_value_is_an_error() {
        let text = "[[step]]\nname = \"s\"\nrun = \"echo {{v}}\"\nmatrix = { v = [\"ok\", \"a\\u0000b\"] }\n";
        assert_eq!(
            errors(text),
            "p.toml:4:23: error: matrix value of `v` contains a NUL byte, which a shell command cannot hold"
        );
        // Outside shell text (here only in the outputs) it is not quoted, so not an error.
        let text = "[[step]]\nname = \"s\"\nrun = \"echo\"\noutputs = [\"{{v}}\"]\nmatrix = { v = [\"a\\u0000b\"] }\n";
        assert!(load_str(text, Path::new("p.toml")).is_ok());
    }

    #[test]
    fn raw_substitution_outside_run() {
        let p = plan(
            r#"[env]
TAG = "{{model}}"
[[step]]
name = "s"
run = "x"
workdir = "runs/{{model}}"
inputs = ["in/{{model}}/*.csv"]
outputs = ["out/{{ model }} x.pt"]
setup = "cd {{model}}"
wrap = "env M={{model}}"
env = { OUT = "o/{{model}}" }
matrix = { model = ["a b"] }
"#,
        );
        let i = &p.instances[0];
        assert_eq!(i.workdir, Path::new("/proj/runs/a b"));
        assert_eq!(i.inputs, ["in/a b/*.csv"]);
        assert_eq!(i.outputs, ["out/a b x.pt"]);
        assert_eq!(i.env["TAG"], "a b");
        assert_eq!(i.env["OUT"], "o/a b");
        // setup and wrap are shell text too, so they get the quoted form.
        assert_eq!(i.setup.as_deref(), Some("cd 'a b'"));
        assert_eq!(i.wrap.as_deref(), Some("env M='a b'"));
    }

    #[test]
    fn unknown_parameter_points_at_the_placeholder() {
        let text = "[[step]]\nname = \"s\"\nrun = \"train --seed {{ sed }}\"\nmatrix = { seed = [1], model = [\"a\"] }\noutputs = [\"o/{{x}}\"]\n";
        assert_eq!(
            errors(text),
            "p.toml:3:21: error: unknown parameter `{{sed}}` in `run` of step `s`; help: did you mean `seed`? known parameters: `seed`, `model`\n\
             p.toml:5:15: error: unknown parameter `{{x}}` in `outputs` of step `s`; help: known parameters: `seed`, `model`"
        );
        let text = "[[step]]\nname = \"s\"\nrun = \"echo {{x}}\"\n";
        assert_eq!(
            errors(text),
            "p.toml:3:13: error: unknown parameter `{{x}}` in `run` of step `s`; help: step `s` has no matrix; parameters come from `matrix = { x = [...] }`"
        );
    }

    #[test]
    fn instance_too_long_for_a_directory_name() {
        let long = "v".repeat(300);
        let text =
            format!("[[step]]\nname = \"s\"\nrun = \"x\"\nmatrix = {{ a = [1, \"{long}\"] }}\n");
        assert_eq!(
            errors(&text),
            "p.toml:4:10: error: the matrix of step `s` makes an instance whose directory name has 305 bytes, more than the 255 a file name may have; help: use shorter matrix values (the instance name is `step[key=value,...]`)"
        );
    }

    #[test]
    fn outputs_outside_the_project_are_warned_about_once() {
        let text = "[[step]]\nname = \"s\"\nrun = \"x\"\noutputs = [\"ok/{{a}}\", \"/etc/passwd\", \"../x{{a}}\"]\nmatrix = { a = [1, 2] }\n";
        let p = plan(text);
        let w: Vec<String> = p.warnings.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            w,
            [
                "/proj/sortie.toml:4:24: warning: output `/etc/passwd` of step `s` is outside the project (/proj): sortie cannot tell whether the step wrote it",
                "/proj/sortie.toml:4:39: warning: output `../x1` of step `s` is outside the project (/proj): sortie cannot tell whether the step wrote it",
            ]
        );
    }

    #[test]
    fn unclosed_placeholder_points_at_it() {
        let text =
            "[[step]]\nname = \"s\"\nrun = \"train --seed {{seed\"\nmatrix = { seed = [1] }\n";
        assert_eq!(
            errors(text),
            "p.toml:3:21: error: unclosed placeholder `{{seed` in `run` of step `s`; help: close it: `{{seed}}`"
        );
    }

    #[test]
    fn unknown_parameter_in_defaults_points_at_defaults() {
        let text = "[defaults]\noutputs = [\"o/{{seed}}\"]\n\n[[step]]\nname = \"a\"\nrun = \"x\"\nmatrix = { seed = [1] }\n\n[[step]]\nname = \"b\"\nrun = \"x\"\n";
        assert_eq!(
            errors(text),
            "p.toml:2:15: error: unknown parameter `{{seed}}` in `outputs` of step `b`; help: step `b` has no matrix; parameters come from `matrix = { seed = [...] }`"
        );
    }

    #[test]
    fn every_combination_excluded() {
        let text =
            "[[step]]\nname = \"s\"\nrun = \"x\"\nmatrix = { a = [1], exclude = [{ a = 1 }] }\n";
        assert_eq!(
            errors(text),
            "p.toml:4:10: error: `exclude` removes every combination of the matrix of step `s`"
        );
    }

    #[test]
    fn bad_input_glob() {
        let text = "[[step]]\nname = \"s\"\nrun = \"x\"\ninputs = [\"ok/*.py\", \"a[b\"]\n";
        assert!(
            errors(text)
                .starts_with("p.toml:4:22: error: `inputs` entry `a[b` is not a valid glob"),
            "{}",
            errors(text)
        );
    }

    #[test]
    fn defaults_merge_under_the_step() {
        let p = plan(
            r#"[pipeline]
executor = "slurm"
[env]
A = "global"
B = "global"
[defaults]
retries = 1
timeout = "2h"
retry_backoff = "5s"
resources = { cpus = 1, mem = "4G", partition = "cpu", sbatch = ["--x"] }
env = { B = "defaults", C = "defaults" }
setup = "module load x"
[[step]]
name = "a"
run = "x"
retries = 3
executor = "local"
resources = { cpus = 8, gpus = 2 }
env = { C = "step", D = "step" }
[[step]]
name = "b"
run = "y"
"#,
        );
        let a = &p.instances[0];
        assert_eq!(a.retries, 3);
        assert_eq!(a.timeout_s, Some(7200.0));
        assert_eq!(a.retry_backoff_s, 5.0);
        assert_eq!(a.resources.cpus, Some(8));
        assert_eq!(a.resources.gpus, Some(2));
        assert_eq!(a.resources.mem_mb, Some(4096));
        assert_eq!(a.resources.partition.as_deref(), Some("cpu"));
        assert_eq!(a.resources.sbatch, ["--x"]);
        assert_eq!(a.setup.as_deref(), Some("module load x"));
        assert_eq!(a.executor, ExecutorKind::Local);
        let env: Vec<(&str, &str)> = a
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            env,
            [
                ("A", "global"),
                ("B", "defaults"),
                ("C", "step"),
                ("D", "step")
            ]
        );
        let b = &p.instances[1];
        assert_eq!(b.retries, 1);
        assert_eq!(b.resources.cpus, Some(1));
        assert_eq!(b.resources.gpus, None);
        assert_eq!(b.executor, ExecutorKind::Slurm);
        assert_eq!(b.env["C"], "defaults");
    }

    #[test]
    fn plain_step_defaults() {
        let p = plan("[[step]]\nname = \"s\"\nrun = \"x\"\n");
        let i = &p.instances[0];
        assert_eq!(i.name, "s");
        assert_eq!(i.retries, 0);
        assert_eq!(i.retry_backoff_s, 1.0);
        assert_eq!(i.timeout_s, None);
        assert_eq!(i.resources, crate::pipeline::Resources::default());
        assert_eq!(i.workdir, Path::new("/proj"));
        assert!(!p.groups[0].is_matrix);
    }

    #[test]
    fn workdirs_resolve_against_the_pipeline_file() {
        let p = plan(
            "[pipeline]\nworkdir = \"./work/\"\n[[step]]\nname = \"a\"\nrun = \"x\"\nworkdir = \"sub/./deeper\"\n[[step]]\nname = \"b\"\nrun = \"x\"\nworkdir = \"/abs/dir\"\n",
        );
        assert_eq!(p.workdir, Path::new("/proj/work"));
        assert_eq!(p.instances[0].workdir, Path::new("/proj/work/sub/deeper"));
        assert_eq!(p.instances[1].workdir, Path::new("/abs/dir"));
    }

    #[test]
    fn resource_time_rounds_up() {
        let p = plan(
            "[[step]]\nname = \"s\"\nrun = \"x\"\ntimeout = \"1500ms\"\nresources = { time = \"1500ms\" }\n",
        );
        assert_eq!(p.instances[0].resources.time_s, Some(2));
        assert_eq!(p.instances[0].timeout_s, Some(1.5));
    }
}
