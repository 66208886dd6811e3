//! One `sacct --json` (and slurmrestd `/slurmdb/v0.0.NN/jobs`) job record → [`Job`], steps folded
//! in for MaxRSS and TotalCPU. Handles the pre-v0.0.40 exit-code trap: those dialects write
//! `SUCCESS/0` for any normal exit, so a non-COMPLETED job gets `exit_code: None`, not 0.

use serde_json::Value;

use super::fields;
use super::meta::Dialect;
use super::value::{Num, at, exit_of, str_at, strings, time_at, u32_at, u64_at};
use super::{DecodeError, array_id, split_state};
use crate::slurm::model::{Job, JobState};
use crate::slurm::paths::expand_stdio;

pub fn job(rec: &Value, dialect: &Dialect, at_path: &str) -> Result<Job, DecodeError> {
    let Some(job_id) = u64_at(rec, &["job_id"]) else {
        return Err(DecodeError::new(
            "job record without a numeric job_id",
            format!("{at_path}.job_id"),
        ));
    };
    let array_job_id = u64_at(rec, &["array", "job_id"]).filter(|a| *a > 0);
    let array_task_id = u32_at(rec, &["array", "task_id"]).filter(|_| array_job_id.is_some());
    let array_task_str = str_at(rec, &["array", "task"])
        .filter(|_| array_job_id.is_some() && array_task_id.is_none());
    let (state, flags) = split_state(&strings(at(rec, &["state", "current"])));
    let alloc = tres_list(at(rec, &["tres", "allocated"]));
    let req = tres_list(at(rec, &["tres", "requested"]));
    let pick = |kind: &str| {
        alloc
            .iter()
            .chain(&req)
            .find(|(t, _)| t == kind)
            .map(|(_, n)| *n)
    };

    let mut job = Job {
        id: array_id(
            job_id,
            array_job_id,
            array_task_id,
            array_task_str.as_deref(),
        ),
        job_id_raw: Some(job_id),
        array_job_id,
        array_task_id,
        array_task_str,
        name: str_at(rec, &["name"]).unwrap_or_default(),
        user: str_at(rec, &["user"]),
        account: str_at(rec, &["account"]),
        partition: str_at(rec, &["partition"]),
        state,
        flags,
        reason: str_at(rec, &["state", "reason"]).filter(|r| r != "None"),
        submit: time_at(rec, &["time", "submission"]),
        start: time_at(rec, &["time", "start"]),
        end: time_at(rec, &["time", "end"]),
        elapsed_s: u64_at(rec, &["time", "elapsed"]),
        time_limit_s: Num::of(at(rec, &["time", "limit"])).u64().map(|m| m * 60),
        nodes: str_at(rec, &["nodes"]).filter(|n| fields::present(n).is_some()),
        cpus: pick("cpu")
            .map(|n| n as u32)
            .or_else(|| u32_at(rec, &["required", "CPUs"])),
        mem_mb: pick("mem").or_else(|| required_memory(rec)),
        gpus: pick("gres/gpu").map(|n| n as u32),
        work_dir: str_at(rec, &["working_directory"]),
        comment: str_at(rec, &["comment", "job"]).or_else(|| str_at(rec, &["comment"])),
        ..Job::default()
    };
    job.time_used_s = job.elapsed_s;

    if job.state.is_terminal() {
        let exit = exit_of(rec.get("exit_code"));
        let unreliable = dialect
            .sacct_exit_code_unreliable()
            .unwrap_or_else(|| matches!(at(rec, &["exit_code", "status"]), Some(Value::String(_))));
        if exit.claims_success && unreliable && job.state != JobState::Completed {
            // Slurm saw *some* normal exit; which one only `sacct -P --format=ExitCode` knows.
            job.exit_code = None;
        } else {
            job.exit_code = exit.code;
            job.signal = exit.signal;
        }
    }

    let steps = rec
        .get("steps")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    job.max_rss_mb = steps
        .iter()
        .filter_map(step_max_rss_bytes)
        .fold(None, |m: Option<f64>, b| Some(m.map_or(b, |m| m.max(b))))
        .map(|b| b / 1048576.0);
    let job_cpu = cpu_seconds(at(rec, &["time", "total"])).filter(|s| *s > 0.0);
    let step_cpu: Option<f64> = steps
        .iter()
        .filter_map(|s| cpu_seconds(at(s, &["time", "total"])))
        .fold(None, |acc, s| Some(acc.unwrap_or(0.0) + s));
    job.total_cpu_s = job_cpu.or(step_cpu);

    // Only v0.0.41+ reports paths here; `stdout` is the raw pattern beside `stdout_expanded`.
    job.stdout = str_at(rec, &["stdout_expanded"])
        .or_else(|| str_at(rec, &["stdout"]).map(|p| expand_stdio(&p, &job)));
    job.stderr = str_at(rec, &["stderr_expanded"])
        .or_else(|| str_at(rec, &["stderr"]).map(|p| expand_stdio(&p, &job)))
        .or_else(|| job.stdout.clone());
    Ok(job)
}

/// `[{type: "cpu", name: null, count: 1}, {type: "gres", name: "gpu", count: 2}]` → (`cpu`, 1),
/// (`gres/gpu`, 2). Typed GPUs (`gpu:a100`) count towards `gres/gpu` when no untyped entry exists.
fn tres_list(v: Option<&Value>) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = Vec::new();
    for item in v
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let (Some(kind), Some(count)) = (str_at(item, &["type"]), u64_at(item, &["count"])) else {
            continue;
        };
        let key = match str_at(item, &["name"]) {
            Some(name) if kind == "gres" => {
                if name.starts_with("gpu:") {
                    if let Some(e) = out.iter_mut().find(|(k, _)| k == "gres/gpu:typed") {
                        e.1 += count;
                    } else {
                        out.push(("gres/gpu:typed".into(), count));
                    }
                    continue;
                }
                format!("gres/{name}")
            }
            _ => kind,
        };
        out.push((key, count));
    }
    if !out.iter().any(|(k, _)| k == "gres/gpu")
        && let Some(e) = out.iter_mut().find(|(k, _)| k == "gres/gpu:typed")
    {
        e.0 = "gres/gpu".into();
    }
    out
}

fn required_memory(rec: &Value) -> Option<u64> {
    let cpus = u64_at(rec, &["required", "CPUs"]).unwrap_or(1);
    u64_at(rec, &["required", "memory_per_node"])
        .or_else(|| Some(u64_at(rec, &["required", "memory_per_cpu"])? * cpus))
        .or_else(|| u64_at(rec, &["required", "memory"]))
        .filter(|m| *m > 0)
}

/// The step's peak memory: `tres.requested.max` entry of type `mem`, in bytes.
fn step_max_rss_bytes(step: &Value) -> Option<f64> {
    at(step, &["tres", "requested", "max"])?
        .as_array()?
        .iter()
        .find(|t| t.get("type").and_then(Value::as_str) == Some("mem"))
        .and_then(|t| Num::of(t.get("count")).f64())
}

/// `{seconds, microseconds}` → seconds.
fn cpu_seconds(v: Option<&Value>) -> Option<f64> {
    let v = v?;
    let s = Num::of(v.get("seconds")).f64()?;
    Some(s + Num::of(v.get("microseconds")).f64().unwrap_or(0.0) / 1e6)
}
