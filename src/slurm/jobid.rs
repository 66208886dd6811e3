//! A Slurm job id as users type it and sortie records it: a job `123`, an array task `123_4`, or the
//! pending rest of an array `123_[4-9%2]`. Parsed here and nowhere else.

use std::fmt;
use std::str::FromStr;

/// The part after `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Tasks {
    /// One task: `123_4`.
    One(u32),
    /// The task range of a pending array record, without brackets: `4-9%2`, `1,3,6-7`.
    Range(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobId {
    /// The job's id, or its array's.
    pub job: u64,
    pub tasks: Option<Tasks>,
}

/// What a bad id is told.
pub const EXPECTED: &str = "not a Slurm job id (expected 123, 123_4 or 123_[4-9%2])";

impl JobId {
    pub fn parse(text: &str) -> Option<JobId> {
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let (job, tasks) = match text.split_once('_') {
            Some((j, t)) => (j, Some(t)),
            None => (text, None),
        };
        if !digits(job) {
            return None;
        }
        let tasks = match tasks {
            None => None,
            Some(t) if digits(t) => Some(Tasks::One(t.parse().ok()?)),
            Some(t) => {
                let r = t.strip_prefix('[')?.strip_suffix(']')?;
                let ok =
                    !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit() || b",-%".contains(&b));
                if !ok {
                    return None;
                }
                Some(Tasks::Range(r.to_string()))
            }
        };
        Some(JobId {
            job: job.parse().ok()?,
            tasks,
        })
    }

    /// The job (or whole array) as `squeue -j` and `scancel` take it: `123`.
    pub fn base(&self) -> String {
        self.job.to_string()
    }

    pub fn task(&self) -> Option<u32> {
        match self.tasks {
            Some(Tasks::One(t)) => Some(t),
            _ => None,
        }
    }

    pub fn range(&self) -> Option<&str> {
        match &self.tasks {
            Some(Tasks::Range(r)) => Some(r),
            _ => None,
        }
    }

    /// Whether this id stands for array task `task` (as that task, or in its range).
    pub fn holds(&self, task: u32) -> bool {
        match &self.tasks {
            Some(Tasks::One(t)) => *t == task,
            Some(Tasks::Range(r)) => range_holds(r, task),
            None => false,
        }
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tasks {
            None => write!(f, "{}", self.job),
            Some(Tasks::One(t)) => write!(f, "{}_{t}", self.job),
            Some(Tasks::Range(r)) => write!(f, "{}_[{r}]", self.job),
        }
    }
}

impl FromStr for JobId {
    type Err = String;

    fn from_str(s: &str) -> Result<JobId, String> {
        JobId::parse(s).ok_or_else(|| format!("{s:?}: {EXPECTED}"))
    }
}

/// Whether an array task range like `5-9%2` or `1,3,6-7` holds `index`.
pub fn range_holds(range: &str, index: u32) -> bool {
    let range = range.split('%').next().unwrap_or("");
    range.split(',').any(|part| match part.split_once('-') {
        Some((a, b)) => match (a.trim().parse::<u32>(), b.trim().parse::<u32>()) {
            (Ok(a), Ok(b)) => (a..=b).contains(&index),
            _ => false,
        },
        None => part.trim().parse::<u32>() == Ok(index),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_and_print_back() {
        for (text, job, task, range) in [
            ("1", 1, None, None),
            ("123", 123, None, None),
            ("123_4", 123, Some(4), None),
            ("123_[1-3,5%2]", 123, None, Some("1-3,5%2")),
        ] {
            let id = JobId::parse(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(
                (id.job, id.task(), id.range()),
                (job, task, range),
                "{text}"
            );
            assert_eq!(id.to_string(), text);
            assert_eq!(id.base(), job.to_string());
        }
        for bad in [
            "", "abc", "12a", "_4", "123_", "123_[]", "1;rm", "-1", "123_[a]", "123_[4", "1_2_3",
        ] {
            assert_eq!(JobId::parse(bad), None, "{bad}");
            assert!(bad.parse::<JobId>().unwrap_err().contains(EXPECTED));
        }
    }

    #[test]
    fn tasks_and_ranges() {
        assert!(range_holds("5-9%2", 5));
        assert!(range_holds("5-9%2", 9));
        assert!(!range_holds("5-9%2", 4));
        assert!(range_holds("1,3,6-7", 6));
        let rest = JobId::parse("7_[2-4]").unwrap();
        assert!(rest.holds(3) && !rest.holds(5));
        assert!(JobId::parse("7_3").unwrap().holds(3));
        assert!(!JobId::parse("7").unwrap().holds(3));
    }
}
