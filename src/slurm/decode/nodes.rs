//! slurmrestd `GET /slurm/v0.0.NN/partitions` + `/nodes` → [`Partition`]s with idle counts, for the
//! REST backend (the CLI uses `sinfo`). v0.0.37/38 give flat fields (`state: "UP"`,
//! `max_time_limit: -1`); v0.0.39+ nest them (`partition.state: ["UP"]`, `maximums.time` NO_VAL).

use serde_json::Value;

use super::value::{Num, at, str_at, strings, u32_at};
use super::{DecodeError, parse_json};
use crate::slurm::decode::fields;
use crate::slurm::model::Partition;

pub fn partitions_json(partitions: &[u8], nodes: &[u8]) -> Result<Vec<Partition>, DecodeError> {
    let parts = parse_json(partitions)?;
    let nodes = parse_json(nodes)?;
    let list = |root: &Value, key: &str| -> Result<Vec<Value>, DecodeError> {
        match root.get(key) {
            Some(Value::Array(items)) => Ok(items.clone()),
            _ => Err(DecodeError::new(
                format!("no `{key}` array"),
                key.to_string(),
            )),
        }
    };
    let mut out: Vec<Partition> = list(&parts, "partitions")?
        .iter()
        .filter_map(partition)
        .collect();
    for node in list(&nodes, "nodes")? {
        add_node(&mut out, &node);
    }
    Ok(out)
}

fn partition(rec: &Value) -> Option<Partition> {
    let name = str_at(rec, &["name"])?;
    let state = strings(rec.get("state"))
        .into_iter()
        .chain(strings(at(rec, &["partition", "state"])))
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let flags: Vec<String> = strings(rec.get("flags"))
        .into_iter()
        .chain(strings(at(rec, &["partition", "state"])))
        .collect();
    // v0.0.38 writes -1 for INFINITE; v0.0.39+ a NO_VAL struct.
    let limit = match Num::of(rec.get("max_time_limit")) {
        Num::Unset => Num::of(at(rec, &["maximums", "time"])),
        n => n,
    };
    Some(Partition {
        name,
        state,
        default: flags.iter().any(|f| f.eq_ignore_ascii_case("default")),
        max_time_s: limit.i64().filter(|m| *m >= 0).map(|m| m as u64 * 60),
        ..Partition::default()
    })
}

fn add_node(parts: &mut [Partition], node: &Value) {
    let state = strings(node.get("state")).join("+").to_ascii_lowercase();
    let flags = strings(node.get("state_flags"))
        .join("+")
        .to_ascii_lowercase();
    let usable = ![
        "down",
        "drain",
        "fail",
        "maint",
        "not_responding",
        "reserved",
        "inval",
    ]
    .iter()
    .any(|s| state.contains(s) || flags.contains(s));
    let cpus = u32_at(node, &["cpus"]).unwrap_or(0);
    let alloc = u32_at(node, &["alloc_cpus"]).unwrap_or(0);
    let idle = if usable {
        u32_at(node, &["alloc_idle_cpus"])
            .or_else(|| u32_at(node, &["idle_cpus"]))
            .unwrap_or(cpus.saturating_sub(alloc))
    } else {
        0
    };
    let gpus = str_at(node, &["gres"])
        .and_then(|g| fields::gpus_in_gres(&g))
        .unwrap_or(0);
    let used = str_at(node, &["gres_used"])
        .and_then(|g| fields::gpus_in_gres(&g))
        .unwrap_or(0);
    for name in strings(node.get("partitions")) {
        let Some(p) = parts.iter_mut().find(|p| p.name == name) else {
            continue;
        };
        p.nodes_total += 1;
        if usable && state == "idle" {
            p.nodes_idle += 1;
        }
        p.cpus_total += cpus;
        p.cpus_idle += idle;
        p.gpus_total += gpus;
        if usable {
            p.gpus_idle += gpus.saturating_sub(used);
        }
    }
}
