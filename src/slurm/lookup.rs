//! Finding a job by the id sortie recorded for it: `123`, or an array task `123_4` that may still sit
//! inside its array's pending record (`123_[4-9%2]`, one line in `squeue` for every task not started).

use super::jobid::{JobId, range_holds};
use super::model::Job;
use std::collections::HashMap;

/// Where each job of a list is, by the ids it answers to. Built once per list, so that looking up
/// every job on screen (or every tracked attempt) costs no scan of the whole list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobIndex {
    by_id: HashMap<String, usize>,
    /// Jobs that are not array tasks, by Slurm's numeric id.
    by_raw: HashMap<u64, usize>,
    /// Array records (started tasks and pending rests), by their array's id.
    arrays: HashMap<u64, Vec<usize>>,
}

impl JobIndex {
    pub fn new(jobs: &[Job]) -> JobIndex {
        let mut ix = JobIndex::default();
        for (i, j) in jobs.iter().enumerate() {
            ix.by_id.entry(j.id.clone()).or_insert(i);
            match j.array_job_id {
                Some(a) if j.array_task_id.is_some() || j.array_task_str.is_some() => {
                    ix.arrays.entry(a).or_default().push(i)
                }
                _ => {
                    if let Some(n) = j.job_id_raw {
                        ix.by_raw.entry(n).or_insert(i);
                    }
                }
            }
        }
        ix
    }

    /// The record of job `id` in `jobs` (the list this index was built from).
    pub fn find<'a>(&self, jobs: &'a [Job], id: &str) -> Option<&'a Job> {
        if let Some(&i) = self.by_id.get(id) {
            return jobs.get(i);
        }
        let id = JobId::parse(id)?;
        let i = match (id.tasks.is_some(), id.task()) {
            (true, Some(t)) => *self.arrays.get(&id.job)?.iter().find(|&&i| {
                jobs.get(i).is_some_and(|j| {
                    j.array_task_id == Some(t)
                        || j.array_task_str
                            .as_deref()
                            .is_some_and(|r| range_holds(r, t))
                })
            })?,
            // A range is found by its own id only (above).
            (true, None) => return None,
            (false, _) => *self.by_raw.get(&id.job)?,
        };
        jobs.get(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slurm::JobState;

    #[test]
    fn finds_elements_inside_pending_array_records() {
        let jobs = vec![
            Job {
                id: "10_[2-5%2]".into(),
                job_id_raw: Some(10),
                array_job_id: Some(10),
                array_task_str: Some("2-5%2".into()),
                state: JobState::Pending,
                ..Job::default()
            },
            Job {
                id: "10_1".into(),
                job_id_raw: Some(12),
                array_job_id: Some(10),
                array_task_id: Some(1),
                state: JobState::Running,
                ..Job::default()
            },
            Job {
                id: "11".into(),
                job_id_raw: Some(11),
                state: JobState::Completed,
                ..Job::default()
            },
        ];
        let ix = JobIndex::new(&jobs);
        let find = |id: &str| ix.find(&jobs, id).map(|j| j.id.as_str());
        assert_eq!(find("10_1"), Some("10_1"));
        assert_eq!(find("10_4"), Some("10_[2-5%2]"));
        assert_eq!(find("10_[2-5%2]"), Some("10_[2-5%2]"));
        assert_eq!(find("10_6"), None);
        assert_eq!(find("11"), Some("11"));
        // The pending array's own numeric id is not a plain job.
        assert_eq!(find("10"), None);
        assert_eq!(find("12"), None);
        assert_eq!(find("x_1"), None);
        assert_eq!(JobIndex::new(&[]).find(&jobs, "11"), None);
    }
}
