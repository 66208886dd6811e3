//! From a pipeline file to a [`Plan`]: parse, read the fields, link `needs`, order the steps, expand
//! them. Every stage keeps going after a problem so one run reports them all.

use super::diag::{Diagnostics, Sink, suggest, unlocated};
use super::expand::{self, join_dir};
use super::spec::{self, Spec};
use super::{Group, Plan, dag};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Reads and loads a pipeline file.
pub fn load(path: &Path) -> Result<Plan, Diagnostics> {
    let bytes = std::fs::read(path)
        .map_err(|e| unlocated(path, format!("cannot read the pipeline file: {e}")))?;
    let text =
        String::from_utf8(bytes).map_err(|e| not_utf8(path, e.as_bytes(), e.utf8_error()))?;
    load_str(&text, path)
}

/// The located error for the first byte that is not UTF-8 (TOML files must be UTF-8 throughout,
/// comments included).
fn not_utf8(path: &Path, bytes: &[u8], e: std::str::Utf8Error) -> Diagnostics {
    let at = e.valid_up_to();
    // The prefix is valid UTF-8 by definition, so line:col can be counted on it.
    let good = std::str::from_utf8(&bytes[..at]).unwrap_or_default();
    let mut sink = Sink::new(path, good);
    sink.error_help(
        at..at,
        format!("byte 0x{:02x} is not UTF-8", bytes[at]),
        "a pipeline file must be UTF-8 throughout, comments included",
    );
    sink.finish()
}

/// Loads a pipeline from its text. `path` names the file in messages, and relative workdirs are
/// taken from its directory.
pub fn load_str(text: &str, path: &Path) -> Result<Plan, Diagnostics> {
    let mut sink = Sink::new(path, text);
    let doc = match toml::de::DeTable::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let message = e.message().trim().replace('\n', "; ");
            sink.error(e.span().unwrap_or(0..0), format!("invalid TOML: {message}"));
            return Err(sink.finish());
        }
    };
    let spec = spec::read(doc.get_ref(), &mut sink);

    let source = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = source.parent().map_or_else(PathBuf::new, Path::to_path_buf);
    let p = &spec.pipeline;
    let workdir = join_dir(&dir, p.workdir.as_ref().map_or(".", |w| w.value.as_str()));
    let name = match &p.name {
        Some(n) => n.value.clone(),
        None => dir.file_name().map_or_else(
            || "pipeline".to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
    };
    let executor = p.executor.as_ref().map(|e| e.value).unwrap_or_default();
    let max_parallel = p.max_parallel.as_ref().map(|m| m.value);

    let needs = link(&spec, &mut sink);
    let order = match dag::order(&needs) {
        Ok(order) => order,
        Err(cycles) => {
            for cycle in cycles {
                report_cycle(&spec, &cycle, &mut sink);
            }
            // Expand anyway, in file order, to find the remaining problems.
            (0..spec.steps.len()).collect()
        }
    };

    let cx = expand::Context {
        env: &spec.env,
        defaults: &spec.defaults,
        workdir: &workdir,
        executor,
        project: &dir,
    };
    let mut groups = Vec::with_capacity(order.len());
    let mut instances = Vec::new();
    for &s in &order {
        let step = &spec.steps[s];
        let Some(step_name) = &step.name else {
            continue;
        };
        let group_needs: Vec<String> = needs[s]
            .iter()
            .filter_map(|&n| spec.steps[n].name.as_ref().map(|n| n.value.clone()))
            .collect();
        let made = expand::step(step, &step_name.value, &group_needs, &cx, &mut sink);
        let start = instances.len();
        instances.extend(made);
        groups.push(Group {
            name: step_name.value.clone(),
            needs: group_needs,
            instances: (start..instances.len()).collect(),
            is_matrix: step.matrix.is_some(),
        });
    }

    if sink.has_errors() {
        return Err(sink.finish());
    }
    let warnings = sink.take_warnings();
    Ok(Plan {
        name,
        source,
        workdir,
        executor,
        max_parallel,
        slurm: slurm_settings(&spec.slurm),
        groups,
        instances,
        warnings,
    })
}

fn slurm_settings(s: &spec::SlurmSpec) -> super::SlurmSettings {
    let d = super::SlurmSettings::default();
    super::SlurmSettings {
        max_queued: s.max_queued.as_ref().map_or(d.max_queued, |m| m.value),
        nfs_grace_s: s
            .nfs_grace
            .as_ref()
            .map_or(d.nfs_grace_s, |g| g.value.as_secs_f64()),
        poll_budget: s.poll_budget.as_ref().map_or(d.poll_budget, |b| b.value),
    }
}

/// Checks step names are unique and resolves each step's `needs` to step indices (without repeats or
/// self-references, which are reported).
fn link(spec: &Spec, sink: &mut Sink<'_>) -> Vec<Vec<usize>> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, step) in spec.steps.iter().enumerate() {
        let Some(name) = &step.name else { continue };
        match index.get(name.value.as_str()) {
            Some(&first) => {
                let first_at = spec.steps[first].name.as_ref().map_or(0, |n| n.span.start);
                let (line, _) = sink.line_col(first_at);
                sink.error_help(
                    name.span.clone(),
                    format!("duplicate step name `{}`", name.value),
                    format!("the first step named `{}` is on line {line}", name.value),
                );
            }
            None => {
                index.insert(&name.value, i);
            }
        }
    }
    let known: Vec<&str> = spec
        .steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.name.as_ref().map(|n| (i, n.value.as_str())))
        .filter(|(i, n)| index.get(n) == Some(i))
        .map(|(_, n)| n)
        .collect();

    spec.steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let mut out: Vec<usize> = Vec::new();
            for need in &step.needs {
                match index.get(need.value.as_str()) {
                    Some(&j) if j == i => sink.error(
                        need.span.clone(),
                        format!("step `{}` needs itself", need.value),
                    ),
                    Some(&j) => {
                        if !out.contains(&j) {
                            out.push(j);
                        }
                    }
                    None => {
                        let others: Vec<&str> = known
                            .iter()
                            .copied()
                            .filter(|k| step.name.as_ref().is_none_or(|n| n.value != *k))
                            .collect();
                        sink.error_help(
                            need.span.clone(),
                            format!("`needs` names unknown step `{}`", need.value),
                            suggest(&need.value, "steps are", &others),
                        );
                    }
                }
            }
            out
        })
        .collect()
}

fn report_cycle(spec: &Spec, cycle: &[usize], sink: &mut Sink<'_>) {
    let name = |i: usize| {
        spec.steps[i]
            .name
            .as_ref()
            .map_or("?", |n| n.value.as_str())
    };
    let mut path: Vec<&str> = cycle.iter().map(|&i| name(i)).collect();
    path.push(name(cycle[0]));
    let first = &spec.steps[cycle[0]];
    let span = first
        .name
        .as_ref()
        .map_or(first.header.clone(), |n| n.span.clone());
    sink.error_help(
        span,
        format!("cycle: {}", path.join(" -> ")),
        "remove one of these `needs`",
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::ExecutorKind;

    fn errors(text: &str) -> String {
        load_str(text, Path::new("p.toml"))
            .expect_err("should fail")
            .to_string()
    }

    fn plan(text: &str) -> Plan {
        load_str(text, Path::new("/proj/sortie.toml")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn step(name: &str, needs: &[&str]) -> String {
        let needs: Vec<String> = needs.iter().map(|n| format!("\"{n}\"")).collect();
        format!(
            "[[step]]\nname = \"{name}\"\nneeds = [{}]\nrun = \"true\"\n\n",
            needs.join(", ")
        )
    }

    fn order(p: &Plan) -> Vec<&str> {
        p.groups.iter().map(|g| g.name.as_str()).collect()
    }

    #[test]
    fn full_fixture_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pipelines/full.toml");
        let p = load(&path).unwrap_or_else(|e| panic!("{e}"));
        let dir = path.parent().unwrap();
        assert_eq!(p.name, "gnn-sweep");
        assert_eq!(p.source, path);
        assert_eq!(p.workdir, dir);
        assert_eq!(p.executor, ExecutorKind::Local);
        assert_eq!(p.max_parallel, Some(4));
        assert_eq!(order(&p), ["prepare", "train", "report"]);
        assert_eq!(p.instances.len(), 1 + 5 + 1);

        let prep = p.instance("prepare").unwrap();
        assert_eq!(prep.run, "python prep.py --out data/\ntouch data/.done\n");
        assert_eq!(prep.retries, 1);
        assert_eq!(prep.timeout_s, Some(7200.0));
        assert_eq!(prep.resources.mem_mb, Some(4096));
        assert_eq!(prep.env["PYTHONUNBUFFERED"], "1");

        let t = p.instance("train[model=gat,seed=1,lr=0.001]").unwrap();
        assert_eq!(
            t.run,
            "python train.py --model gat --seed 1 --lr 0.001 --out out/gat-1"
        );
        assert_eq!(t.needs, ["prepare"]);
        assert_eq!(t.workdir, dir.join("sub"));
        assert_eq!(t.inputs, ["data/*.pt", "src/**/*.py"]);
        assert_eq!(t.outputs, ["out/gat-1/model.pt"]);
        let env: Vec<&str> = t.env.keys().map(String::as_str).collect();
        assert_eq!(
            env,
            [
                "DATA",
                "PYTHONUNBUFFERED",
                "OMP_NUM_THREADS",
                "EPOCHS",
                "RUN_NAME"
            ]
        );
        assert_eq!(t.env["RUN_NAME"], "gat-1");
        assert_eq!(t.retries, 2);
        assert_eq!(t.retry_backoff_s, 10.0);
        assert_eq!(t.timeout_s, Some(5400.0));
        assert_eq!(
            t.resources,
            crate::pipeline::Resources {
                cpus: Some(2),
                mem_mb: Some(16384),
                gpus: Some(1),
                time_s: Some(7200),
                partition: Some("gpu".into()),
                account: Some("lab".into()),
                qos: Some("normal".into()),
                sbatch: vec!["--constraint=a100".into()],
            }
        );
        assert_eq!(t.setup.as_deref(), Some("module load cuda/12"));
        assert_eq!(t.wrap.as_deref(), Some("apptainer exec image.sif"));
        assert_eq!(t.executor, ExecutorKind::Slurm);
        assert!(p.instance("train[model=gat,seed=2,lr=0.001]").is_none());

        let r = p.instance("report").unwrap();
        assert_eq!(r.needs, ["train", "prepare"]);
        assert_eq!(r.timeout_s, Some(5400.0));
        assert_eq!(r.resources.mem_mb, Some(512));
        assert_eq!(r.resources.cpus, Some(1));
        // The plan survives the trip through plan.json.
        let back: Plan = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn unreadable_file() {
        let e = load(Path::new("/nonexistent/sortie.toml")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/sortie.toml: error: cannot read the pipeline file:"),
            "{e}"
        );
    }

    #[test]
    fn non_utf8_byte_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, b"[[step]]\nname = \"a\" # caf\xe9\nrun = \"x\"\n").unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}:2:17: error: byte 0xe9 is not UTF-8; help: a pipeline file must be UTF-8 throughout, comments included",
                path.display()
            )
        );
    }

    #[test]
    fn name_defaults_to_the_directory() {
        let p = plan("[[step]]\nname = \"a\"\nrun = \"x\"\n");
        assert_eq!(p.name, "proj");
        assert_eq!(p.source, Path::new("/proj/sortie.toml"));
        assert_eq!(p.executor, ExecutorKind::Local);
        assert_eq!(p.max_parallel, None);
    }

    #[test]
    fn relative_path_becomes_absolute() {
        let p = load_str(
            "[[step]]\nname = \"a\"\nrun = \"x\"\n",
            Path::new("sortie.toml"),
        )
        .unwrap();
        assert!(p.source.is_absolute() && p.workdir.is_absolute());
        assert_eq!(p.workdir, std::env::current_dir().unwrap());
    }

    #[test]
    fn topological_order_keeps_file_order_among_equals() {
        let text = [
            step("report", &["train", "eval"]),
            step("train", &["prepare"]),
            step("prepare", &[]),
            step("lint", &[]),
            step("eval", &["train"]),
        ]
        .concat();
        let p = plan(&text);
        // Whenever several steps are free, the one written first goes first (train before lint).
        assert_eq!(order(&p), ["prepare", "train", "lint", "eval", "report"]);
        // Instances come grouped in that order, and groups index them.
        for g in &p.groups {
            for &i in &g.instances {
                assert_eq!(p.instances[i].group, g.name);
            }
        }
        assert_eq!(p.groups[4].needs, ["train", "eval"]);
        assert_eq!(p.downstream_groups("train"), ["eval", "report"]);
    }

    #[test]
    fn unknown_need_suggests_the_closest_name() {
        let text = [step("prepare", &[]), step("train", &["prepar", "nothing"])].concat();
        assert_eq!(
            errors(&text),
            "p.toml:8:10: error: `needs` names unknown step `prepar`; help: did you mean `prepare`? steps are: `prepare`\n\
             p.toml:8:20: error: `needs` names unknown step `nothing`; help: steps are: `prepare`"
        );
    }

    #[test]
    fn needing_itself() {
        assert_eq!(
            errors(&step("a", &["a"])),
            "p.toml:3:10: error: step `a` needs itself"
        );
    }

    #[test]
    fn duplicate_names_point_at_the_second() {
        let text = [step("a", &[]), step("b", &[]), step("a", &[])].concat();
        assert_eq!(
            errors(&text),
            "p.toml:12:8: error: duplicate step name `a`; help: the first step named `a` is on line 2"
        );
    }

    #[test]
    fn cycle_names_the_whole_path() {
        let text = [
            step("start", &[]),
            step("b", &["c"]),
            step("a", &["b", "start"]),
            step("c", &["a"]),
            step("after", &["c"]),
        ]
        .concat();
        // Reported at the first step of the cycle in file order.
        assert_eq!(
            errors(&text),
            "p.toml:7:8: error: cycle: b -> c -> a -> b; help: remove one of these `needs`"
        );
    }

    #[test]
    fn repeated_needs_count_once() {
        let p = plan(&[step("a", &[]), step("b", &["a", "a"])].concat());
        assert_eq!(p.groups[1].needs, ["a"]);
    }

    #[test]
    fn ten_thousand_instances_and_a_fan_in() {
        let a: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        let b: Vec<String> = (0..100).map(|i| format!("\"v{i}\"")).collect();
        let text = format!(
            "[[step]]\nname = \"sweep\"\nrun = \"train --a {{{{a}}}} --b {{{{b}}}}\"\noutputs = [\"out/{{{{a}}}}/{{{{b}}}}.pt\"]\nmatrix = {{ a = [{}], b = [{}] }}\n\n[[step]]\nname = \"collect\"\nneeds = [\"sweep\"]\nrun = \"collect out/\"\n",
            a.join(", "),
            b.join(", ")
        );
        let p = plan(&text);
        assert_eq!(p.instances.len(), 10_001);
        assert_eq!(p.groups[0].instances.len(), 10_000);
        assert_eq!(p.instances[0].name, "sweep[a=0,b=v0]");
        assert_eq!(p.instances[1].name, "sweep[a=0,b=v1]");
        assert_eq!(p.instances[9_999].run, "train --a 99 --b v99");
        assert_eq!(p.instances[9_999].outputs, ["out/99/v99.pt"]);
        assert_eq!(p.instances[10_000].needs, ["sweep"]);
        assert_eq!(p.groups[1].instances, [10_000]);
        assert!(crate::pipeline::report::text(&p).contains("… and 9990 more"));
    }
}
