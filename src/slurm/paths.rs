//! Expands Slurm's `--output`/`--error` filename patterns into the path the job really writes, since
//! older releases (and 25.05+ in `standard_output`) report the raw pattern.
//!
//! Checked against 22.05.8 (`sbatch -o 'pat-%A-%a-%J-%s-%t-%n-%N-%u-%x-%5j-%%-%b.out'` on a non-array
//! job wrote `pat-88-4294967294-88-batch-0-0-vm-root-fx-pat-00088-%-%b.out`): unknown letters stay as
//! they are, `%a` of a non-array job is NO_VAL, and a digit run zero-pads the number.

use super::model::Job;

/// `%a` of a job that is not part of an array (Slurm's NO_VAL).
const NO_VAL: u64 = 4_294_967_294;

/// Expands `pattern` for `job`. A pattern containing a backslash is taken literally (as Slurm does),
/// minus the backslashes. Relative results are joined to the job's work dir.
pub fn expand_stdio(pattern: &str, job: &Job) -> String {
    let expanded = if pattern.contains('\\') {
        pattern.replace('\\', "")
    } else {
        expand_fields(pattern, job)
    };
    match &job.work_dir {
        Some(dir) if !expanded.starts_with('/') && !dir.is_empty() => {
            format!("{}/{}", dir.trim_end_matches('/'), expanded)
        }
        _ => expanded,
    }
}

/// The file Slurm writes when no `--output` was given.
pub fn default_stdout_pattern(job: &Job) -> &'static str {
    if job.array_job_id.is_some() {
        "slurm-%A_%a.out"
    } else {
        "slurm-%j.out"
    }
}

/// squeue 22.05 `-O STDOUT` (and scontrol) print an array task's *default* file as
/// `slurm-<raw id>.out`, but Slurm writes `slurm-<array>_<task>.out` (seen on the test cluster:
/// task 6_3 with raw id 6 wrote `/tmp/slurm-6_3.out`). Put the real name back.
pub fn fix_default_array_path(path: String, job: &Job) -> String {
    let (Some(_), Some(raw)) = (job.array_task_id, job.job_id_raw) else {
        return path;
    };
    if path.rsplit('/').next() == Some(format!("slurm-{raw}.out").as_str()) {
        let dir = &path[..path.len() - format!("slurm-{raw}.out").len()];
        let real = expand_stdio(default_stdout_pattern(job), job);
        return format!("{dir}{}", real.rsplit('/').next().unwrap_or(&real));
    }
    path
}

fn expand_fields(pattern: &str, job: &Job) -> String {
    let job_id = job
        .job_id_raw
        .or_else(|| job.id.split(['_', '.']).next().and_then(|s| s.parse().ok()));
    let array_job = job.array_job_id.or(job_id);
    let task = job.array_task_id.map_or(NO_VAL, u64::from);
    let first_node = job.nodes.as_deref().map(first_host);

    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut width = String::new();
        while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            width.push(*d);
            chars.next();
        }
        let pad = width.parse::<usize>().unwrap_or(0).min(64);
        let num = |n: Option<u64>| n.map(|n| format!("{n:0pad$}"));
        let value = match chars.peek() {
            Some('%') if width.is_empty() => Some("%".to_string()),
            Some('j' | 'J') => num(job_id),
            Some('A') => num(array_job),
            // A pending array record stands for many tasks: no single file, keep `%a`.
            Some('a') if job.array_job_id.is_some() && job.array_task_id.is_none() => None,
            Some('a') => num(Some(task)),
            Some('s') => Some("batch".to_string()),
            Some('t' | 'n') => num(Some(0)),
            Some('N') => first_node.clone(),
            Some('u') => job.user.clone(),
            Some('x') => Some(job.name.clone()),
            _ => None,
        };
        match value {
            Some(v) => {
                chars.next();
                out.push_str(&v);
            }
            // Unknown letter (or a field we don't know yet): keep the text as Slurm does.
            None => {
                out.push('%');
                out.push_str(&width);
            }
        }
    }
    out
}

/// First host of a hostlist expression: `gpu[01-04,07],cpu1` → `gpu01`.
fn first_host(list: &str) -> String {
    let first = list.split(',').next().unwrap_or("");
    match first.split_once('[') {
        Some((prefix, rest)) => {
            let start = rest.split(['-', ',', ']']).next().unwrap_or("");
            format!("{prefix}{start}")
        }
        None => first.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        Job {
            id: "88".into(),
            job_id_raw: Some(88),
            name: "fx-pat".into(),
            user: Some("root".into()),
            nodes: Some("vm".into()),
            work_dir: Some("/tmp/sortie-fx".into()),
            ..Job::default()
        }
    }

    #[test]
    fn matches_what_slurm_22_05_wrote() {
        let p = "/tmp/sortie-fx/pat-%A-%a-%J-%s-%t-%n-%N-%u-%x-%5j-%%-%b.out";
        assert_eq!(
            expand_stdio(p, &job()),
            "/tmp/sortie-fx/pat-88-4294967294-88-batch-0-0-vm-root-fx-pat-00088-%-%b.out"
        );
        let task = Job {
            id: "89_3".into(),
            job_id_raw: Some(89),
            array_job_id: Some(89),
            array_task_id: Some(3),
            ..job()
        };
        let p = "/tmp/sortie-fx/pat-%A-%a-%J-%s-%t-%n-%N-%u-%x-%5j-%%-%3a.out";
        assert_eq!(
            expand_stdio(p, &task),
            "/tmp/sortie-fx/pat-89-3-89-batch-0-0-vm-root-fx-pat-00089-%-003.out"
        );
    }

    #[test]
    fn relative_paths_join_the_work_dir_and_defaults_follow_arrays() {
        assert_eq!(
            expand_stdio("%x-%j.out", &job()),
            "/tmp/sortie-fx/fx-pat-88.out"
        );
        let task = Job {
            array_job_id: Some(80),
            array_task_id: Some(2),
            ..job()
        };
        assert_eq!(default_stdout_pattern(&task), "slurm-%A_%a.out");
        assert_eq!(
            expand_stdio(default_stdout_pattern(&task), &task),
            "/tmp/sortie-fx/slurm-80_2.out"
        );
        assert_eq!(
            expand_stdio(default_stdout_pattern(&job()), &job()),
            "/tmp/sortie-fx/slurm-88.out"
        );
        let pending = Job {
            array_job_id: Some(80),
            array_task_str: Some("0-5%1".into()),
            ..job()
        };
        assert_eq!(
            expand_stdio("%x-%A_%a.out", &pending),
            "/tmp/sortie-fx/fx-pat-80_%a.out"
        );
    }

    #[test]
    fn default_array_paths_are_corrected() {
        let task = Job {
            id: "6_3".into(),
            job_id_raw: Some(6),
            array_job_id: Some(6),
            array_task_id: Some(3),
            ..job()
        };
        assert_eq!(
            fix_default_array_path("/tmp/slurm-6.out".into(), &task),
            "/tmp/slurm-6_3.out"
        );
        assert_eq!(
            fix_default_array_path("/tmp/mine-6.out".into(), &task),
            "/tmp/mine-6.out"
        );
        assert_eq!(
            fix_default_array_path("/tmp/slurm-88.out".into(), &job()),
            "/tmp/slurm-88.out"
        );
    }

    #[test]
    fn backslash_disables_expansion_and_odd_input_is_kept() {
        assert_eq!(expand_stdio("/o/a\\%j.out", &job()), "/o/a%j.out");
        assert_eq!(expand_stdio("/o/x%", &job()), "/o/x%");
        assert!(expand_stdio("/o/%9999999999999999999999j", &job()).len() < 200);
        let no_node = Job {
            nodes: None,
            ..job()
        };
        assert_eq!(expand_stdio("/o/%N.out", &no_node), "/o/%N.out");
        assert_eq!(first_host("gpu[01-04,07],cpu1"), "gpu01");
    }
}
