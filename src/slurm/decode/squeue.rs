//! One `squeue --json` (and slurmrestd `/slurm/v0.0.NN/jobs`) job record → [`Job`], for every
//! dialect from v0.0.37 on. Reads by shape, so a field that moved between a number and a NO_VAL
//! struct, or a string and an array, decodes either way; the dialect only decides what the
//! output-path fields mean.

use serde_json::Value;

use super::fields;
use super::meta::Dialect;
use super::value::{Num, at, exit_of, str_at, strings, time_at, u32_at, u64_at};
use super::{DecodeError, array_id, split_state};
use crate::slurm::model::{Job, StateClass};
use crate::slurm::paths::{default_stdout_pattern, expand_stdio};

pub fn job(rec: &Value, dialect: &Dialect, now: i64, at_path: &str) -> Result<Job, DecodeError> {
    let Some(job_id) = u64_at(rec, &["job_id"]) else {
        return Err(DecodeError::new(
            "job record without a numeric job_id",
            format!("{at_path}.job_id"),
        ));
    };
    // A plain job reports array_job_id 0 (or a NO_VAL struct holding 0).
    let array_job_id = u64_at(rec, &["array_job_id"]).filter(|a| *a > 0);
    let array_task_id = u32_at(rec, &["array_task_id"]).filter(|_| array_job_id.is_some());
    let array_task_str = str_at(rec, &["array_task_string"]).filter(|_| array_task_id.is_none());
    let (state, flags) = split_state(&strings(rec.get("job_state")));

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
        array_task_str: array_task_str.filter(|_| array_job_id.is_some()),
        name: str_at(rec, &["name"]).unwrap_or_default(),
        user: str_at(rec, &["user_name"]),
        account: str_at(rec, &["account"]),
        partition: str_at(rec, &["partition"]),
        state,
        flags,
        reason: str_at(rec, &["state_reason"]).filter(|r| r != "None"),
        submit: time_at(rec, &["submit_time"]),
        start: time_at(rec, &["start_time"]),
        end: time_at(rec, &["end_time"]),
        time_limit_s: Num::of(rec.get("time_limit")).u64().map(|m| m * 60),
        nodes: nodes(rec),
        cpus: u32_at(rec, &["cpus"]),
        work_dir: str_at(rec, &["current_working_directory"]),
        dependency: str_at(rec, &["dependency"]).filter(|d| d != "(null)"),
        comment: str_at(rec, &["comment"]),
        ..Job::default()
    };

    let tres = str_at(rec, &["tres_alloc_str"]).or_else(|| str_at(rec, &["tres_req_str"]));
    let tres = tres.as_deref().unwrap_or("");
    job.mem_mb = fields::tres(tres, "mem")
        .and_then(|m| fields::size_mb(m, 'M'))
        .map(|m| m.round() as u64)
        .or_else(|| memory_from_limits(rec, job.cpus));
    job.gres = str_at(rec, &["tres_per_node"])
        .or_else(|| str_at(rec, &["tres_per_job"]))
        .or_else(|| strings(rec.get("gres_detail")).first().cloned())
        .filter(|g| fields::present(g).is_some());
    job.gpus =
        fields::gpus_in_tres(tres).or_else(|| job.gres.as_deref().and_then(fields::gpus_in_gres));

    // A pending job's start_time is only an estimate, so it has used nothing yet.
    job.time_used_s = job
        .start
        .filter(|_| job.state.class() != StateClass::Queued)
        .map(|start| {
            let until = if job.state.is_terminal() {
                job.end.unwrap_or(now)
            } else {
                now
            };
            until.saturating_sub(start).max(0) as u64
        });

    if job.state.is_terminal() {
        let exit = exit_of(rec.get("exit_code"));
        job.exit_code = exit.code;
        job.signal = exit.signal;
    }

    job.stdout = stdio(rec, dialect, &job, "standard_output", "stdout_expanded");
    job.stderr = stdio(rec, dialect, &job, "standard_error", "stderr_expanded")
        .or_else(|| job.stdout.clone());
    Ok(job)
}

/// `nodes` is a string in every version; `job_resources.nodes` became an object in v0.0.41.
fn nodes(rec: &Value) -> Option<String> {
    str_at(rec, &["nodes"])
        .or_else(|| str_at(rec, &["job_resources", "nodes", "list"]))
        .or_else(|| str_at(rec, &["job_resources", "nodes"]))
        .filter(|n| fields::present(n).is_some())
}

fn memory_from_limits(rec: &Value, cpus: Option<u32>) -> Option<u64> {
    let per_node = u64_at(rec, &["memory_per_node"]);
    let nodes = u64_at(rec, &["node_count"]).unwrap_or(1).max(1);
    per_node
        .map(|m| m * nodes)
        .or_else(|| Some(u64_at(rec, &["memory_per_cpu"])? * u64::from(cpus.unwrap_or(1))))
        .filter(|m| *m > 0)
}

/// The job's stdout/stderr path: the expanded field when the release gives one, else the pattern
/// (Slurm's default when empty) expanded here.
fn stdio(
    rec: &Value,
    dialect: &Dialect,
    job: &Job,
    raw_key: &str,
    expanded_key: &str,
) -> Option<String> {
    if let Some(path) = str_at(rec, &[expanded_key]) {
        return Some(path);
    }
    let value = str_at(rec, &[raw_key]);
    let is_stdout = raw_key == "standard_output";
    match (value, dialect.squeue_paths_are_raw()) {
        (Some(v), Some(false)) => Some(v),
        (Some(v), _) => Some(expand_stdio(&v, job)),
        // Empty stdout means the default file; empty stderr means "same as stdout".
        (None, _)
            if is_stdout
                && job.work_dir.is_some()
                && at(rec, &["batch_flag"]) != Some(&Value::Bool(false)) =>
        {
            Some(expand_stdio(default_stdout_pattern(job), job))
        }
        (None, _) => None,
    }
}
