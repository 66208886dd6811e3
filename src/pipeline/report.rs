//! What `sortie check` prints: the expanded DAG as text for people and as JSON for scripts.

use super::{Instance, Plan};
use serde_json::{Map, Value};
use std::fmt::Write;

/// Groups with more instances than this are shown abridged.
const FULL_LISTING_MAX: usize = 20;
const ABRIDGED_SHOWN: usize = 10;
const COMMAND_WIDTH: usize = 100;

/// The expanded DAG: a header line, then each step in order with its instances indented.
pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "pipeline {}: {} steps, {} instances, executor {}",
        plan.name,
        plan.groups.len(),
        plan.instances.len(),
        plan.executor.as_str()
    );
    for group in &plan.groups {
        out.push_str(&group.name);
        if !group.needs.is_empty() {
            let _ = write!(out, "  needs: {}", group.needs.join(", "));
        }
        out.push('\n');
        let shown = if group.instances.len() > FULL_LISTING_MAX {
            ABRIDGED_SHOWN
        } else {
            group.instances.len()
        };
        for &i in &group.instances[..shown] {
            let inst = &plan.instances[i];
            let _ = write!(out, "  {}  $ {}", inst.name, command_line(inst));
            if inst.executor != plan.executor {
                let _ = write!(out, "  [{}]", inst.executor.as_str());
            }
            out.push('\n');
        }
        let hidden = group.instances.len() - shown;
        if hidden > 0 {
            let _ = writeln!(out, "  … and {hidden} more");
        }
    }
    out
}

/// The first line of the command, shortened to fit one terminal line.
fn command_line(inst: &Instance) -> String {
    let mut lines = inst.run.lines().filter(|l| !l.trim().is_empty());
    let first = lines.next().unwrap_or("").trim();
    let more = lines.next().is_some();
    let mut s: String = first.chars().take(COMMAND_WIDTH).collect();
    if first.chars().count() > COMMAND_WIDTH || more {
        s.push('…');
    }
    s
}

/// The expanded plan as JSON, for `sortie check --json`.
pub fn json(plan: &Plan) -> Value {
    // Built by moving values into maps: `json!` would deep-copy every nested variable, which is
    // most of the time with 10 000 instances.
    let strings = |v: &[String]| Value::Array(v.iter().map(|s| Value::from(s.as_str())).collect());
    let groups = plan
        .groups
        .iter()
        .map(|g| {
            let names = g
                .instances
                .iter()
                .map(|&i| Value::from(plan.instances[i].name.as_str()))
                .collect();
            object([
                ("name", Value::from(g.name.as_str())),
                ("needs", strings(&g.needs)),
                ("instances", Value::Array(names)),
            ])
        })
        .collect();
    let instances = plan
        .instances
        .iter()
        .map(|i| {
            let params: Map<String, Value> = i
                .params
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            object([
                ("name", Value::from(i.name.as_str())),
                ("group", Value::from(i.group.as_str())),
                ("params", Value::Object(params)),
                ("needs", strings(&i.needs)),
                ("run", Value::from(i.run.as_str())),
                ("workdir", Value::from(i.workdir.to_string_lossy())),
                ("inputs", strings(&i.inputs)),
                ("outputs", strings(&i.outputs)),
                (
                    "resources",
                    serde_json::to_value(&i.resources).unwrap_or(Value::Null),
                ),
                ("retries", Value::from(i.retries)),
                ("timeout_s", i.timeout_s.map_or(Value::Null, Value::from)),
                ("executor", Value::from(i.executor.as_str())),
            ])
        })
        .collect();
    let order = plan
        .groups
        .iter()
        .map(|g| Value::from(g.name.as_str()))
        .collect();
    object([
        ("pipeline", Value::from(plan.name.as_str())),
        ("file", Value::from(plan.source.to_string_lossy())),
        ("executor", Value::from(plan.executor.as_str())),
        ("groups", Value::Array(groups)),
        ("instances", Value::Array(instances)),
        ("order", Value::Array(order)),
    ])
}

fn object<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::load_str;
    use std::path::Path;

    fn plan(text: &str) -> Plan {
        load_str(text, Path::new("/proj/sortie.toml")).unwrap_or_else(|e| panic!("{e}"))
    }

    const SMALL: &str = r#"[pipeline]
name = "demo"
[[step]]
name = "prepare"
run = """
python prep.py
echo done
"""
[[step]]
name = "train"
needs = ["prepare"]
run = "python train.py --seed {{seed}}"
matrix = { seed = [0, 1] }
executor = "slurm"
timeout = "1h"
"#;

    #[test]
    fn text_lists_steps_and_instances() {
        assert_eq!(
            text(&plan(SMALL)),
            "pipeline demo: 2 steps, 3 instances, executor local\n\
             prepare\n\
             \x20 prepare  $ python prep.py…\n\
             train  needs: prepare\n\
             \x20 train[seed=0]  $ python train.py --seed 0  [slurm]\n\
             \x20 train[seed=1]  $ python train.py --seed 1  [slurm]\n"
        );
    }

    #[test]
    fn big_groups_are_abridged_and_long_commands_cut() {
        let long = "x".repeat(150);
        let seeds = |n: usize| (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        let text_of = |n: usize| {
            text(&plan(&format!(
                "[[step]]\nname = \"s\"\nrun = \"{long} {{{{seed}}}}\"\nmatrix = {{ seed = [{}] }}\n",
                seeds(n)
            )))
        };
        let full = text_of(20);
        assert_eq!(full.lines().count(), 2 + 20);
        assert!(!full.contains("more"));
        let cut = text_of(21);
        assert_eq!(cut.lines().count(), 2 + 10 + 1);
        assert!(cut.ends_with("  … and 11 more\n"));
        let first = cut.lines().nth(2).unwrap();
        assert_eq!(first, format!("  s[seed=0]  $ {}…", "x".repeat(100)));
    }

    #[test]
    fn json_has_the_documented_shape() {
        let j = json(&plan(SMALL));
        assert_eq!(j["pipeline"], "demo");
        assert_eq!(j["file"], "/proj/sortie.toml");
        assert_eq!(j["executor"], "local");
        assert_eq!(j["order"], serde_json::json!(["prepare", "train"]));
        assert_eq!(
            j["groups"][1],
            serde_json::json!({"name": "train", "needs": ["prepare"], "instances": ["train[seed=0]", "train[seed=1]"]})
        );
        let i = &j["instances"][2];
        assert_eq!(i["name"], "train[seed=1]");
        assert_eq!(i["group"], "train");
        assert_eq!(i["params"], serde_json::json!({"seed": 1}));
        assert_eq!(i["needs"], serde_json::json!(["prepare"]));
        assert_eq!(i["run"], "python train.py --seed 1");
        assert_eq!(i["workdir"], "/proj");
        assert_eq!(i["inputs"], serde_json::json!([]));
        assert_eq!(i["outputs"], serde_json::json!([]));
        assert_eq!(i["resources"], serde_json::json!({}));
        assert_eq!(i["retries"], 0);
        assert_eq!(i["timeout_s"], 3600.0);
        assert_eq!(i["executor"], "slurm");
        assert_eq!(j["instances"][0]["timeout_s"], serde_json::Value::Null);
    }
}
