//! Parsers for the detail and capacity views: `scontrol show job -o <id>` (one `Key=Value` line per
//! job or array task) and `sinfo -N -o <SINFO_FORMAT>` (one line per node and partition), summed
//! into [`Partition`]s.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::slurm::decode::fields::{self, present};
use crate::slurm::decode::text::SEP;
use crate::slurm::decode::{DecodeError, split_state};
use crate::slurm::model::{Job, Partition};
use crate::slurm::paths::{expand_stdio, fix_default_array_path};

/// A job as `scontrol` describes it: the typed fields plus every raw `Key=Value`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct JobDetails {
    pub job: Job,
    pub fields: BTreeMap<String, String>,
}

/// Splits one `scontrol -o` line into keys and values. Values may contain spaces (`Comment=`,
/// `Command=`, `WorkDir=`), so a new key starts only at a word that begins with an upper-case letter
/// followed by `Key=`; `Comment=lr=0.1 step=2` stays one value. scontrol keys are all CamelCase.
pub fn key_values(line: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    for word in line.split(' ') {
        let key = word.split_once('=').map(|(k, _)| k).filter(|k| {
            k.starts_with(|c: char| c.is_ascii_uppercase())
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_:/".contains(c))
        });
        match key {
            Some(k) => {
                let value = &word[k.len() + 1..];
                out.insert(k.to_string(), value.to_string());
                current = Some(k.to_string());
            }
            None => {
                if let Some(v) = current.as_ref().and_then(|k| out.get_mut(k)) {
                    v.push(' ');
                    v.push_str(word);
                }
            }
        }
    }
    // Trailing spaces after the last pair are layout, not value.
    for v in out.values_mut() {
        let trimmed = v.trim_end().len();
        v.truncate(trimmed);
    }
    out
}

/// Parses `scontrol show job -o` output: one entry per line (array tasks each get a line).
pub fn show_job(bytes: &[u8]) -> Result<Vec<JobDetails>, DecodeError> {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, line)| {
            let kv = key_values(line.trim());
            let job = job_from(&kv)
                .ok_or_else(|| DecodeError::new("no JobId=", format!("line {}", n + 1)))?;
            Ok(JobDetails { job, fields: kv })
        })
        .collect()
}

fn job_from(kv: &BTreeMap<String, String>) -> Option<Job> {
    let get = |k: &str| kv.get(k).and_then(|v| present(v));
    let job_id: u64 = get("JobId")?.parse().ok()?;
    let array_job_id = get("ArrayJobId").and_then(|a| a.parse::<u64>().ok());
    let task = get("ArrayTaskId");
    let array_task_id = task.and_then(|t| t.parse::<u32>().ok());
    let array_task_str = task.filter(|_| array_task_id.is_none()).map(str::to_string);
    let (state, flags) = split_state(
        &get("JobState")
            .map(|s| vec![s.to_string()])
            .unwrap_or_default(),
    );
    let tres = get("TRES").unwrap_or("");
    let cpus = get("NumCPUs").and_then(|c| c.parse::<u32>().ok());
    let gres = get("TresPerNode")
        .or(get("TresPerJob"))
        .or(get("Gres"))
        .map(str::to_string);
    let mut job = Job {
        id: super::decode::array_id(
            job_id,
            array_job_id,
            array_task_id,
            array_task_str.as_deref(),
        ),
        job_id_raw: Some(job_id),
        array_job_id,
        array_task_id,
        array_task_str,
        name: get("JobName").unwrap_or("").to_string(),
        user: get("UserId").map(|u| u.split('(').next().unwrap_or(u).to_string()),
        account: get("Account").map(str::to_string),
        partition: get("Partition").map(str::to_string),
        state,
        flags,
        reason: get("Reason").map(str::to_string),
        submit: get("SubmitTime").and_then(fields::local_time),
        start: get("StartTime").and_then(fields::local_time),
        end: get("EndTime").and_then(fields::local_time),
        time_used_s: get("RunTime").and_then(fields::duration),
        time_limit_s: get("TimeLimit").and_then(fields::duration),
        nodes: get("NodeList").map(str::to_string),
        cpus,
        mem_mb: fields::tres(tres, "mem")
            .and_then(|m| fields::size_mb(m, 'M'))
            .map(|m| m.round() as u64),
        gpus: fields::gpus_in_tres(tres).or_else(|| gres.as_deref().and_then(fields::gpus_in_gres)),
        gres,
        work_dir: get("WorkDir").map(str::to_string),
        dependency: get("Dependency").map(str::to_string),
        comment: get("Comment").map(str::to_string),
        ..Job::default()
    };
    // scontrol prints expanded paths on 22.05; expanding again is harmless without `%`.
    job.stdout = get("StdOut").map(|p| fix_default_array_path(expand_stdio(p, &job), &job));
    job.stderr = get("StdErr").map(|p| fix_default_array_path(expand_stdio(p, &job), &job));
    if job.state.is_terminal() {
        (job.exit_code, job.signal) = get("ExitCode").map_or((None, None), fields::exit_pair);
    }
    Some(job)
}

/// `sinfo -h -N -o SINFO_FORMAT`: partition (`*` marks the default), availability, node, node
/// state, CPUs `alloc/idle/other/total`, GRES, GRES in use, time limit. `-o` rather than `-O`
/// because every release accepts these letters.
pub const SINFO_FORMAT: &str = "%P\x1f%a\x1f%N\x1f%T\x1f%C\x1f%G\x1f%b\x1f%l\x1f";

/// Sums `sinfo -N` node lines into partitions, in first-seen order.
pub fn partitions(bytes: &[u8]) -> Result<Vec<Partition>, DecodeError> {
    let text = String::from_utf8_lossy(bytes);
    let mut out: Vec<Partition> = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let cells: Vec<&str> = line.trim_end_matches(['\r', SEP]).split(SEP).collect();
        let [part, avail, _node, state, cpus, gres, gres_used, limit] = cells[..] else {
            return Err(DecodeError::new(
                format!("expected 8 fields, found {}", cells.len()),
                format!("line {}", n + 1),
            ));
        };
        let default = part.ends_with('*');
        let name = part.trim_end_matches('*').to_string();
        let i = match out.iter().position(|p| p.name == name) {
            Some(i) => i,
            None => {
                out.push(Partition {
                    name,
                    state: avail.to_string(),
                    default,
                    max_time_s: fields::duration(limit),
                    ..Partition::default()
                });
                out.len() - 1
            }
        };
        let p = &mut out[i];
        let state = state.to_ascii_lowercase();
        // `*` = not responding; drain/down/fail nodes take no work.
        let usable = !state.contains('*')
            && !["down", "drain", "fail", "maint", "reserved", "inval"]
                .iter()
                .any(|s| state.contains(s));
        p.nodes_total += 1;
        if usable && state.trim_end_matches(['~', '#', '!', '%', '$', '@', '^', '-']) == "idle" {
            p.nodes_idle += 1;
        }
        let mut c = cpus
            .split('/')
            .map(|x| x.trim().parse::<u32>().unwrap_or(0));
        let (_alloc, idle, _other, total) = (c.next(), c.next(), c.next(), c.next());
        p.cpus_total += total.unwrap_or(0);
        p.cpus_idle += idle.unwrap_or(0);
        let gpus = fields::gpus_in_gres(gres).unwrap_or(0);
        let used = fields::gpus_in_gres(gres_used).unwrap_or(0);
        p.gpus_total += gpus;
        if usable {
            p.gpus_idle += gpus.saturating_sub(used);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_with_spaces_stay_whole() {
        let kv = key_values("JobId=5 JobName=my job Comment=lr=0.1 step=2 WorkDir=/a b/c Power= ");
        assert_eq!(kv["JobName"], "my job");
        assert_eq!(kv["Comment"], "lr=0.1 step=2");
        assert_eq!(kv["WorkDir"], "/a b/c");
        assert_eq!(kv["Power"], "");
        let kv = key_values("AllocNode:Sid=h:1 ReqB:S:C:T=0:0:*:* CPUs/Task=1 TRES=cpu=1,mem=1G");
        assert_eq!(kv["AllocNode:Sid"], "h:1");
        assert_eq!(kv["CPUs/Task"], "1");
        assert_eq!(kv["TRES"], "cpu=1,mem=1G");
    }

    #[test]
    fn gpu_partitions_sum_over_nodes() {
        // Documented shape (the test cluster has no GPUs): two GPU nodes, one drained.
        let out = "gpu*\x1fup\x1fg01\x1fmixed\x1f8/24/0/32\x1fgpu:a100:4(S:0-1)\x1fgpu:a100:1(IDX:0)\x1f2-00:00:00\x1f\n\
                   gpu*\x1fup\x1fg02\x1fdrained\x1f0/0/32/32\x1fgpu:a100:4(S:0-1)\x1fgpu:a100:0(IDX:N/A)\x1f2-00:00:00\x1f\n\
                   cpu\x1fup\x1fc01\x1fidle\x1f0/64/0/64\x1f(null)\x1f(null)\x1finfinite\x1f\n";
        let parts = partitions(out.as_bytes()).unwrap();
        assert_eq!(parts.len(), 2);
        let gpu = &parts[0];
        assert_eq!(
            (gpu.name.as_str(), gpu.default, gpu.state.as_str()),
            ("gpu", true, "up")
        );
        assert_eq!(
            (
                gpu.nodes_total,
                gpu.nodes_idle,
                gpu.cpus_total,
                gpu.cpus_idle
            ),
            (2, 0, 64, 24)
        );
        assert_eq!((gpu.gpus_total, gpu.gpus_idle), (8, 3));
        assert_eq!(gpu.max_time_s, Some(2 * 86400));
        assert_eq!(
            (parts[1].nodes_idle, parts[1].max_time_s, parts[1].default),
            (1, None, false)
        );
        assert!(partitions(b"a\x1fb\n").is_err());
    }
}
