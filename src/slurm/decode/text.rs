//! The text fallback, for clusters without JSON support and for cheap polling: builders for the
//! `squeue -O name:\x1F,...`, `sacct -P --delimiter=\x1F` and `squeue --start -o` formats, and their
//! parsers. The unit separator never appears in job names, unlike `|` or `,`. sacct step rows
//! (`123.batch`, `123.extern`, `123.0`) are folded into their job, since MaxRSS and TotalCPU live there.

use std::collections::HashMap;

use super::fields::{self, present};
use super::{DecodeError, split_state};
use crate::slurm::jobid::JobId;
use crate::slurm::model::Job;
use crate::slurm::paths::{default_stdout_pattern, expand_stdio, fix_default_array_path};

/// ASCII unit separator, between fields.
pub const SEP: char = '\x1f';

/// The `squeue -O` fields sortie reads (all exist in 22.05; names are case-insensitive).
pub const SQUEUE_FIELDS: &[&str] = &[
    "JobArrayID",
    "JobID",
    "ArrayJobID",
    "ArrayTaskID",
    "Name",
    "UserName",
    "Account",
    "Partition",
    "State",
    "Reason",
    "TimeUsed",
    "TimeLimit",
    "SubmitTime",
    "StartTime",
    "EndTime",
    "Dependency",
    "STDOUT",
    "STDERR",
    "WorkDir",
    "NodeList",
    "NumCPUs",
    "MinMemory",
    "tres-alloc",
    "tres-per-node",
    "Comment",
];

/// The `sacct --format` fields sortie reads.
pub const SACCT_FIELDS: &[&str] = &[
    "JobID",
    "JobIDRaw",
    "JobName",
    "User",
    "Account",
    "Partition",
    "State",
    "ExitCode",
    "DerivedExitCode",
    "Submit",
    "Start",
    "End",
    "Elapsed",
    "Timelimit",
    "AllocCPUS",
    "ReqMem",
    "MaxRSS",
    "TotalCPU",
    "NodeList",
    "WorkDir",
    "Comment",
    "AllocTRES",
    "Reason",
];

/// The `-O` argument: `name:SEP` gives an untruncated field followed by SEP, so every line ends
/// with a separator.
pub fn squeue_format(fields: &[&str]) -> String {
    fields
        .iter()
        .map(|f| format!("{f}:{SEP}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The arguments that make sacct print `fields` for the parser: no header, exact sizes.
pub fn sacct_args(fields: &[&str]) -> Vec<String> {
    vec![
        "--parsable2".into(),
        "--noheader".into(),
        "--noconvert".into(),
        format!("--delimiter={SEP}"),
        format!("--format={}", fields.join(",")),
    ]
}

/// `squeue --start -o`: on 22.05 `--start` ignores `-O`, so this uses printf-style letters.
pub const START_FORMAT: &str = "%i\x1f%S\x1f%r\x1f";

/// Rows of `SEP`-separated values, each checked to have one value per field.
struct Rows<'a> {
    index: HashMap<String, usize>,
    rows: Vec<Vec<&'a str>>,
}

impl<'a> Rows<'a> {
    fn parse(text: &'a str, fields: &[&str]) -> Result<Rows<'a>, DecodeError> {
        let index = fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.to_ascii_lowercase(), i))
            .collect();
        let mut rows = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let mut cells: Vec<&str> = line.split(SEP).collect();
            // A trailing separator (squeue -O, -p) leaves one empty cell at the end.
            if cells.len() == fields.len() + 1 && cells.last() == Some(&"") {
                cells.pop();
            }
            if cells.len() != fields.len() {
                return Err(DecodeError::new(
                    format!("expected {} fields, found {}", fields.len(), cells.len()),
                    format!("line {}", n + 1),
                ));
            }
            rows.push(cells);
        }
        Ok(Rows { index, rows })
    }

    fn get(&self, row: &[&'a str], field: &str) -> Option<&'a str> {
        self.index
            .get(&field.to_ascii_lowercase())
            .and_then(|i| present(row[*i]))
    }
}

/// Parses `squeue -h -O <squeue_format(fields)>` output. Exit codes are not in squeue's text
/// formats: use sacct for finished jobs.
pub fn squeue_text(bytes: &[u8], fields: &[&str]) -> Result<Vec<Job>, DecodeError> {
    let text = String::from_utf8_lossy(bytes);
    let rows = Rows::parse(&text, fields)?;
    rows.rows.iter().map(|r| squeue_row(&rows, r)).collect()
}

fn squeue_row(rows: &Rows, r: &[&str]) -> Result<Job, DecodeError> {
    let get = |f: &str| rows.get(r, f);
    let task = get("ArrayTaskID");
    let array_task_id = task.and_then(|t| t.parse::<u32>().ok());
    let is_array = task.is_some();
    let job_id_raw = get("JobID").and_then(|j| j.parse::<u64>().ok());
    let id = get("JobArrayID")
        .or(get("JobID"))
        .ok_or_else(|| DecodeError::new("row without a job id", "JobArrayID"))?;
    let (state, flags) = split_state(
        &get("State")
            .map(|s| vec![s.to_string()])
            .unwrap_or_default(),
    );
    let tres = get("tres-alloc").unwrap_or("");
    let mut job = Job {
        id: id.to_string(),
        job_id_raw,
        array_job_id: get("ArrayJobID")
            .and_then(|a| a.parse().ok())
            .filter(|_| is_array),
        array_task_id,
        array_task_str: task.filter(|_| array_task_id.is_none()).map(str::to_string),
        name: get("Name").unwrap_or("").to_string(),
        user: get("UserName").map(str::to_string),
        account: get("Account").map(str::to_string),
        partition: get("Partition").map(str::to_string),
        state,
        flags,
        reason: get("Reason").map(str::to_string),
        submit: get("SubmitTime").and_then(fields::local_time),
        start: get("StartTime").and_then(fields::local_time),
        end: get("EndTime").and_then(fields::local_time),
        time_used_s: get("TimeUsed").and_then(fields::duration),
        time_limit_s: get("TimeLimit").and_then(fields::duration),
        nodes: get("NodeList").map(str::to_string),
        cpus: get("NumCPUs").and_then(|c| c.parse().ok()),
        mem_mb: fields::tres(tres, "mem")
            .or(get("MinMemory"))
            .and_then(|m| fields::size_mb(m, 'M'))
            .map(|m| m.round() as u64),
        gpus: fields::gpus_in_tres(tres)
            .or_else(|| get("tres-per-node").and_then(fields::gpus_in_gres)),
        gres: get("tres-per-node").map(str::to_string),
        work_dir: get("WorkDir").map(str::to_string),
        dependency: get("Dependency").map(str::to_string),
        comment: get("Comment").map(str::to_string),
        ..Job::default()
    };
    // 22.05 prints the raw `%` pattern; later releases may print the path. Expanding a path without
    // `%` changes nothing.
    job.stdout = match get("STDOUT") {
        Some(p) => Some(fix_default_array_path(expand_stdio(p, &job), &job)),
        None if job.work_dir.is_some() => Some(expand_stdio(default_stdout_pattern(&job), &job)),
        None => None,
    };
    job.stderr = get("STDERR")
        .map(|p| fix_default_array_path(expand_stdio(p, &job), &job))
        .or_else(|| job.stdout.clone());
    Ok(job)
}

/// Parses `sacct <sacct_args(fields)>` output, folding step rows into their job. Jobs come out in
/// the order sacct listed them.
pub fn sacct_text(bytes: &[u8], fields: &[&str]) -> Result<Vec<Job>, DecodeError> {
    let text = String::from_utf8_lossy(bytes);
    let rows = Rows::parse(&text, fields)?;
    let mut jobs: Vec<Job> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut step_cpu: HashMap<usize, f64> = HashMap::new();
    for r in &rows.rows {
        let get = |f: &str| rows.get(r, f);
        let Some(id) = get("JobID") else { continue };
        if let Some((parent, _step)) = id.split_once('.') {
            let Some(&i) = by_id.get(parent) else {
                continue;
            };
            if let Some(rss) = get("MaxRSS").and_then(|m| fields::size_mb(m, 'B')) {
                let job = &mut jobs[i];
                job.max_rss_mb = Some(job.max_rss_mb.map_or(rss, |m| m.max(rss)));
            }
            if let Some(cpu) = get("TotalCPU").and_then(fields::duration_f64) {
                *step_cpu.entry(i).or_default() += cpu;
            }
            continue;
        }
        by_id.insert(id.to_string(), jobs.len());
        jobs.push(sacct_row(&rows, r, id));
    }
    // The allocation row's TotalCPU already sums its steps; use the steps when it is missing or 0.
    for (i, cpu) in step_cpu {
        if jobs[i].total_cpu_s.is_none_or(|c| c == 0.0) {
            jobs[i].total_cpu_s = Some(cpu);
        }
    }
    Ok(jobs)
}

fn sacct_row(rows: &Rows, r: &[&str], id: &str) -> Job {
    let get = |f: &str| rows.get(r, f);
    let (array_job_id, array_task_id, array_task_str) = match JobId::parse(id) {
        Some(j) if j.tasks.is_some() => (Some(j.job), j.task(), j.range().map(str::to_string)),
        _ => (None, None, None),
    };
    let (state, flags) = split_state(
        &get("State")
            .map(|s| vec![s.to_string()])
            .unwrap_or_default(),
    );
    let tres = get("AllocTRES").unwrap_or("");
    let cpus = get("AllocCPUS").and_then(|c| c.parse::<u32>().ok());
    let req_mem = get("ReqMem").and_then(|m| {
        // Before 21.08 ReqMem ended in c (per CPU) or n (per node).
        let per_cpu = m.ends_with('c');
        fields::size_mb(m, 'M').map(|mb| {
            if per_cpu {
                mb * f64::from(cpus.unwrap_or(1))
            } else {
                mb
            }
        })
    });
    let mut job = Job {
        id: id.to_string(),
        job_id_raw: get("JobIDRaw").and_then(|j| j.parse().ok()),
        array_job_id,
        array_task_id,
        array_task_str,
        name: get("JobName").unwrap_or("").to_string(),
        user: get("User").map(str::to_string),
        account: get("Account").map(str::to_string),
        partition: get("Partition").map(str::to_string),
        state,
        flags,
        reason: get("Reason").map(str::to_string),
        submit: get("Submit").and_then(fields::local_time),
        start: get("Start").and_then(fields::local_time),
        end: get("End").and_then(fields::local_time),
        elapsed_s: get("Elapsed").and_then(fields::duration),
        time_limit_s: get("Timelimit").and_then(fields::duration),
        nodes: get("NodeList").map(str::to_string),
        cpus,
        mem_mb: fields::tres(tres, "mem")
            .and_then(|m| fields::size_mb(m, 'M'))
            .or(req_mem)
            .map(|m| m.round() as u64),
        gpus: fields::gpus_in_tres(tres),
        work_dir: get("WorkDir").map(str::to_string),
        comment: get("Comment").map(str::to_string),
        total_cpu_s: get("TotalCPU").and_then(fields::duration_f64),
        ..Job::default()
    };
    job.time_used_s = job.elapsed_s;
    if job.state.is_terminal() {
        (job.exit_code, job.signal) = get("ExitCode").map_or((None, None), fields::exit_pair);
    }
    job
}

/// One line of `squeue --start -h -o START_FORMAT`.
#[derive(Debug, Clone, PartialEq)]
pub struct StartEstimate {
    pub id: String,
    /// Unix seconds; `None` when the scheduler has no estimate yet (`N/A`).
    pub start: Option<i64>,
    pub reason: Option<String>,
}

pub fn start_estimates(bytes: &[u8]) -> Result<Vec<StartEstimate>, DecodeError> {
    let text = String::from_utf8_lossy(bytes);
    let rows = Rows::parse(&text, &["id", "start", "reason"])?;
    Ok(rows
        .rows
        .iter()
        .filter_map(|r| {
            Some(StartEstimate {
                id: rows.get(r, "id")?.to_string(),
                start: rows.get(r, "start").and_then(fields::local_time),
                reason: rows.get(r, "reason").map(str::to_string),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders() {
        assert_eq!(
            squeue_format(&["JobID", "State"]),
            "JobID:\u{1f},State:\u{1f}"
        );
        let args = sacct_args(&["JobID", "State"]);
        assert_eq!(
            args.last().map(String::as_str),
            Some("--format=JobID,State")
        );
        assert!(args.contains(&"--delimiter=\u{1f}".to_string()));
    }

    #[test]
    fn wrong_field_counts_are_errors_with_a_line() {
        let e = squeue_text(b"1\x1f2\x1f\n", &["JobID"]).unwrap_err();
        assert_eq!(e.at, "line 1");
        let e = sacct_text(b"1\x1fRUNNING\n\n2\n", &["JobID", "State"]).unwrap_err();
        assert_eq!(e.at, "line 3");
    }

    #[test]
    fn sacct_folds_steps_and_cancelled_by() {
        let f = &[
            "JobID",
            "State",
            "ExitCode",
            "MaxRSS",
            "TotalCPU",
            "Elapsed",
            "AllocCPUS",
            "ReqMem",
        ];
        let out = "7\x1fCANCELLED by 1000\x1f0:15\x1f\x1f\x1f00:10:00\x1f4\x1f1000Mc\n\
                   7.batch\x1fCANCELLED\x1f0:15\x1f1048576\x1f05:00.000\x1f00:10:00\x1f4\x1f\n\
                   7.0\x1fCANCELLED\x1f0:15\x1f3145728\x1f10:00.000\x1f00:10:00\x1f4\x1f\n\
                   9.extern\x1fCOMPLETED\x1f0:0\x1f\x1f\x1f\x1f\x1f\n";
        let jobs = sacct_text(out.as_bytes(), f).unwrap();
        assert_eq!(jobs.len(), 1);
        let j = &jobs[0];
        assert_eq!(j.state, crate::slurm::model::JobState::Cancelled);
        assert_eq!((j.exit_code, j.signal), (Some(0), Some(15)));
        assert_eq!(j.max_rss_mb, Some(3.0));
        assert_eq!(j.total_cpu_s, Some(900.0));
        assert_eq!(j.mem_mb, Some(4000));
        assert_eq!(j.cpu_efficiency(), Some(900.0 / 2400.0));
    }
}
