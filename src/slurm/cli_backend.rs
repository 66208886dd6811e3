//! [`SlurmBackend`] over the Slurm commands (`squeue`, `sacct`, `sbatch`, `scancel`, `scontrol`,
//! `sinfo`). Listings try `--json` first and fall back to the text formats when JSON is unsupported
//! or undecodable, remembering per command which one worked. Every command has a timeout and is
//! counted; failures are classified from stderr (see [`SlurmError::classify`]).

use super::jobid::JobId;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{Local, TimeZone};

use super::backend::{
    HistoryQuery, JobQuery, SlurmBackend, format_time_limit, matches, parse_parsable,
};
use super::decode::{self, text};
use super::error::{Result, SlurmError};
use super::model::{Job, JobState, Partition};
use super::process::{ProcessRunner, Runner};
use super::scontrol::{self, JobDetails};

/// Whether listings use `--json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JsonPolicy {
    /// JSON first, text when JSON fails (remembered per command).
    #[default]
    Prefer,
    /// Text only: much cheaper for the controller on big clusters (squeue --json dumps everything).
    Never,
    /// JSON only, no fallback (for tests and diagnosis).
    Only,
}

#[derive(Debug, Clone)]
pub struct CliConfig {
    /// Per command. Slurm's own RPC timeout is often 10-60 s on a loaded controller.
    pub timeout: Duration,
    pub json: JsonPolicy,
    /// `-M cluster` for every query and action (federations, multi-cluster login nodes).
    pub cluster: Option<String>,
}

impl Default for CliConfig {
    fn default() -> CliConfig {
        CliConfig {
            timeout: Duration::from_secs(30),
            json: JsonPolicy::Prefer,
            cluster: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Text,
}

pub struct CliBackend {
    runner: Box<dyn Runner>,
    config: CliConfig,
    rpcs: AtomicU64,
    /// Which format worked last, per program.
    formats: Mutex<HashMap<&'static str, Format>>,
}

impl CliBackend {
    pub fn new(config: CliConfig) -> CliBackend {
        CliBackend::with_runner(config, Box::new(ProcessRunner))
    }

    pub fn with_runner(config: CliConfig, runner: Box<dyn Runner>) -> CliBackend {
        CliBackend {
            runner,
            config,
            rpcs: AtomicU64::new(0),
            formats: Mutex::new(HashMap::new()),
        }
    }

    /// Runs one command; `Ok(stdout)` on exit 0, else the classified error.
    fn run(&self, program: &'static str, mut args: Vec<String>) -> Result<Vec<u8>> {
        if let Some(cluster) = &self.config.cluster
            && program != "sbatch"
        {
            args.splice(0..0, ["-M".to_string(), cluster.clone()]);
        }
        self.rpcs.fetch_add(1, Ordering::Relaxed);
        let out = self.runner.run(program, &args, self.config.timeout)?;
        if out.status == Some(0) {
            Ok(out.stdout)
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let message = if stderr.trim().is_empty() {
                String::from_utf8_lossy(&out.stdout)
            } else {
                stderr
            };
            Err(SlurmError::classify(
                &command_line(program, &args),
                out.status,
                &message,
            ))
        }
    }

    fn format_for(&self, program: &'static str) -> Option<Format> {
        match self.config.json {
            JsonPolicy::Never => Some(Format::Text),
            JsonPolicy::Only => Some(Format::Json),
            JsonPolicy::Prefer => self
                .formats
                .lock()
                .ok()
                .and_then(|m| m.get(program).copied()),
        }
    }

    fn remember(&self, program: &'static str, format: Format) {
        if let Ok(mut m) = self.formats.lock() {
            m.insert(program, format);
        }
    }

    /// Runs the JSON form, else (or on failure that is not the controller's fault) the text form.
    fn listing(
        &self,
        program: &'static str,
        json_args: Vec<String>,
        json_decode: impl Fn(&[u8]) -> std::result::Result<Vec<Job>, decode::DecodeError>,
        text_args: Vec<String>,
        text_decode: impl Fn(&[u8]) -> std::result::Result<Vec<Job>, decode::DecodeError>,
    ) -> Result<Vec<Job>> {
        let cmd = |args: &[String]| command_line(program, args);
        let format = self.format_for(program);
        if format != Some(Format::Text) {
            let json_err = match self.run(program, json_args.clone()) {
                Ok(out) => match json_decode(&out) {
                    Ok(jobs) => {
                        self.remember(program, Format::Json);
                        return Ok(jobs);
                    }
                    Err(error) => SlurmError::Decode {
                        cmd: cmd(&json_args),
                        error,
                    },
                },
                // Overload and unknown ids would fail the text form too: don't switch formats.
                Err(
                    e @ (SlurmError::Transient { .. }
                    | SlurmError::TimedOut { .. }
                    | SlurmError::InvalidJob { .. }),
                ) => {
                    return Err(e);
                }
                Err(e) => e,
            };
            if self.config.json == JsonPolicy::Only {
                return Err(json_err);
            }
        }
        let out = self.run(program, text_args.clone())?;
        let jobs = text_decode(&out).map_err(|error| SlurmError::Decode {
            cmd: cmd(&text_args),
            error,
        })?;
        if self.config.json == JsonPolicy::Prefer {
            self.remember(program, Format::Text);
        }
        Ok(jobs)
    }

    /// Before v0.0.40, sacct's JSON hides non-zero exit codes; one text query restores them.
    fn repair_exit_codes(&self, jobs: &mut [Job], since: i64) {
        let missing: Vec<String> = jobs
            .iter()
            .filter(|j| j.is_finished() && j.exit_code.is_none() && j.state != JobState::Completed)
            .map(|j| j.id.clone())
            .collect();
        if missing.is_empty() {
            return;
        }
        let fields = ["JobID", "ExitCode", "State"];
        let mut args = text::sacct_args(&fields);
        args.extend([
            "--allocations".into(),
            "-S".into(),
            local_iso(since),
            "-j".into(),
            missing.join(","),
        ]);
        let Ok(out) = self.run("sacct", args) else {
            return;
        };
        let Ok(fixed) = text::sacct_text(&out, &fields) else {
            return;
        };
        for f in fixed {
            if let Some(j) = jobs.iter_mut().find(|j| j.id == f.id) {
                j.exit_code = f.exit_code;
                j.signal = f.signal;
            }
        }
    }

    fn scontrol_each(&self, verb: &str, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.run("scontrol", vec![verb.to_string(), ids.join(",")])
            .map(|_| ())
    }
}

/// Ids as `--jobs` takes them: `123` and `123_4`, not a pending array's `123_[5-9%2]` (that is
/// asked for as the whole array).
fn job_list(ids: &[String]) -> String {
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        let id = match JobId::parse(id) {
            Some(j) if j.range().is_some() => j.base(),
            _ => id.clone(),
        };
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out.join(",")
}

impl SlurmBackend for CliBackend {
    fn jobs(&self, query: &JobQuery) -> Result<Vec<Job>> {
        // `--local`: without it every squeue also asks the controller for the federation (a second
        // RPC, REQUEST_FED_INFO), which doubles the cost of a poll on clusters that have none.
        let mut filters = vec!["--states=all".to_string(), "--local".to_string()];
        if let Some(u) = &query.user {
            filters.push(format!("--user={u}"));
        }
        if !query.ids.is_empty() {
            filters.push(format!("--jobs={}", job_list(&query.ids)));
        }
        if !query.names.is_empty() {
            filters.push(format!("--name={}", query.names.join(",")));
        }
        let json_args = [vec!["--json".to_string()], filters.clone()].concat();
        let fields = text::SQUEUE_FIELDS;
        // No --array: pending tasks stay one `123_[4-9]` record, as in the JSON.
        let text_args = [
            vec![
                "--noheader".into(),
                "--noconvert".into(),
                format!("--Format={}", text::squeue_format(fields)),
            ],
            filters,
        ]
        .concat();
        let result = self.listing(
            "squeue",
            json_args,
            |b| decode::squeue_json(b).map(|l| l.jobs),
            text_args,
            |b| text::squeue_text(b, fields),
        );
        match result {
            // A single purged id: not in the controller any more, which is an answer, not an error.
            Err(SlurmError::InvalidJob { .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
            Ok(jobs) => Ok(jobs.into_iter().filter(|j| matches(j, query)).collect()),
        }
    }

    fn history(&self, query: &HistoryQuery) -> Result<Vec<Job>> {
        let mut filters = vec!["--starttime".to_string(), local_iso(query.since)];
        if let Some(until) = query.until {
            filters.extend(["--endtime".to_string(), local_iso(until)]);
        }
        match &query.user {
            Some(u) => filters.push(format!("--user={u}")),
            None if query.ids.is_empty() => {}
            None => filters.push("--allusers".into()),
        }
        if !query.ids.is_empty() {
            filters.push(format!("--jobs={}", job_list(&query.ids)));
        }
        if !query.names.is_empty() {
            filters.push(format!("--name={}", query.names.join(",")));
        }
        let json_args = [vec!["--json".to_string()], filters.clone()].concat();
        let fields = text::SACCT_FIELDS;
        let text_args = [text::sacct_args(fields), filters].concat();
        let unreliable = std::cell::Cell::new(false);
        let mut jobs = self.listing(
            "sacct",
            json_args,
            |b| {
                let list = decode::sacct_json(b)?;
                unreliable.set(list.dialect.sacct_exit_code_unreliable().unwrap_or(true));
                Ok(list.jobs)
            },
            text_args,
            |b| text::sacct_text(b, fields),
        )?;
        if unreliable.get() {
            self.repair_exit_codes(&mut jobs, query.since);
        }
        Ok(jobs)
    }

    fn submit(&self, script: &Path, extra_args: &[String]) -> Result<String> {
        let mut args = vec!["--parsable".to_string()];
        args.extend(extra_args.iter().cloned());
        args.push(script.to_string_lossy().into_owned());
        let out = self.run("sbatch", args.clone())?;
        let text = String::from_utf8_lossy(&out);
        parse_parsable(&text).ok_or_else(|| SlurmError::Failed {
            cmd: command_line("sbatch", &args),
            status: Some(0),
            stderr: format!("no job id in sbatch output: {:?}", text.trim()),
        })
    }

    fn cancel(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.run("scancel", ids.to_vec()).map(|_| ())
    }

    fn signal(&self, id: &str, signal: i32) -> Result<()> {
        self.run(
            "scancel",
            vec![
                "--full".into(),
                format!("--signal={signal}"),
                id.to_string(),
            ],
        )
        .map(|_| ())
    }

    fn hold(&self, ids: &[String]) -> Result<()> {
        self.scontrol_each("hold", ids)
    }

    fn release(&self, ids: &[String]) -> Result<()> {
        self.scontrol_each("release", ids)
    }

    fn requeue(&self, ids: &[String]) -> Result<()> {
        self.scontrol_each("requeue", ids)
    }

    fn update_time_limit(&self, id: &str, limit: Option<Duration>) -> Result<()> {
        let args = vec![
            "update".into(),
            format!("JobId={id}"),
            format!("TimeLimit={}", format_time_limit(limit)),
        ];
        self.run("scontrol", args).map(|_| ())
    }

    fn job_details(&self, id: &str) -> Result<Vec<JobDetails>> {
        match self.run(
            "scontrol",
            vec![
                "show".into(),
                "job".into(),
                "--oneliner".into(),
                id.to_string(),
            ],
        ) {
            Ok(out) => scontrol::show_job(&out).map_err(|error| SlurmError::Decode {
                cmd: "scontrol show job".into(),
                error,
            }),
            Err(SlurmError::InvalidJob { .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    fn partitions(&self) -> Result<Vec<Partition>> {
        let out = self.run(
            "sinfo",
            vec![
                "--noheader".into(),
                "--Node".into(),
                format!("--format={}", scontrol::SINFO_FORMAT),
            ],
        )?;
        scontrol::partitions(&out).map_err(|error| SlurmError::Decode {
            cmd: "sinfo".into(),
            error,
        })
    }

    fn start_estimate(&self, id: &str) -> Result<Option<i64>> {
        let args = vec![
            "--start".into(),
            "--noheader".into(),
            format!("--jobs={id}"),
            format!("--format={}", text::START_FORMAT),
        ];
        match self.run("squeue", args) {
            Ok(out) => {
                let rows = text::start_estimates(&out).map_err(|error| SlurmError::Decode {
                    cmd: "squeue --start".into(),
                    error,
                })?;
                Ok(rows.into_iter().find_map(|r| r.start))
            }
            Err(SlurmError::InvalidJob { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn first_call_cost(&self) -> u64 {
        // Text only: one command per call. JSON may fall back to text, or repair exit codes.
        if self.config.json == JsonPolicy::Never {
            1
        } else {
            2
        }
    }

    fn rpc_count(&self) -> u64 {
        self.rpcs.load(Ordering::Relaxed)
    }
}

/// A local wall-clock time as sacct's `--starttime` takes it.
fn local_iso(unix: i64) -> String {
    Local.timestamp_opt(unix, 0).single().map_or_else(
        || "1970-01-01T00:00:00".to_string(),
        |t| t.format("%Y-%m-%dT%H:%M:%S").to_string(),
    )
}

/// For error messages: the command as a shell would show it (the unit separator made visible).
fn command_line(program: &str, args: &[String]) -> String {
    let shown: Vec<String> = args.iter().map(|a| a.replace(text::SEP, "\\x1f")).collect();
    format!("{program} {}", shown.join(" "))
        .trim_end()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slurm::process::Output;
    use std::sync::Arc;

    type Reply = Box<dyn Fn(&str, &[String]) -> Result<Output> + Send + Sync>;

    /// Answers commands from a closure and logs them.
    struct Fake {
        log: Arc<Mutex<Vec<String>>>,
        reply: Reply,
    }

    impl Runner for Fake {
        fn run(&self, program: &str, args: &[String], _timeout: Duration) -> Result<Output> {
            self.log.lock().unwrap().push(command_line(program, args));
            (self.reply)(program, args)
        }
    }

    fn ok(stdout: &[u8]) -> Result<Output> {
        Ok(Output {
            status: Some(0),
            stdout: stdout.to_vec(),
            stderr: Vec::new(),
        })
    }

    fn fail(stderr: &str) -> Result<Output> {
        Ok(Output {
            status: Some(1),
            stdout: Vec::new(),
            stderr: stderr.as_bytes().to_vec(),
        })
    }

    fn backend(config: CliConfig, reply: Reply) -> (CliBackend, Arc<Mutex<Vec<String>>>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        (
            CliBackend::with_runner(
                config,
                Box::new(Fake {
                    log: log.clone(),
                    reply,
                }),
            ),
            log,
        )
    }

    const SQUEUE_TEXT: &[u8] = include_bytes!("../../fixtures/slurm/live-squeue-O-collapsed.txt");
    const SACCT_JSON: &[u8] = include_bytes!("../../fixtures/slurm/live-sacct-dbv0.0.38.json");

    #[test]
    fn falls_back_to_text_once_and_remembers() {
        let (b, log) = backend(
            CliConfig::default(),
            Box::new(|_, args| {
                if args.iter().any(|a| a == "--json") {
                    fail("squeue: unrecognized option '--json'")
                } else {
                    ok(SQUEUE_TEXT)
                }
            }),
        );
        let jobs = b
            .jobs(&JobQuery {
                user: Some("root".into()),
                ..JobQuery::default()
            })
            .unwrap();
        assert_eq!(jobs.len(), 25);
        assert_eq!(b.rpc_count(), 2);
        b.jobs(&JobQuery::default()).unwrap();
        assert_eq!(b.rpc_count(), 3, "the second call goes straight to text");
        let log = log.lock().unwrap();
        assert!(
            log[0].starts_with("squeue --json --states=all --local --user=root"),
            "{}",
            log[0]
        );
        assert!(
            log[2].contains("--Format=JobArrayID:\\x1f,JobID:\\x1f"),
            "{}",
            log[2]
        );
    }

    #[test]
    fn undecodable_json_also_falls_back() {
        let (b, _) = backend(
            CliConfig::default(),
            Box::new(|_, args| {
                if args.iter().any(|a| a == "--json") {
                    ok(b"{\"jobs\": [tru")
                } else {
                    ok(SQUEUE_TEXT)
                }
            }),
        );
        assert_eq!(
            b.jobs(&JobQuery {
                ids: vec!["19".into()],
                ..JobQuery::default()
            })
            .unwrap()
            .len(),
            1
        );
    }

    #[test]
    fn transient_errors_do_not_switch_formats() {
        let (b, log) = backend(
            CliConfig::default(),
            Box::new(|_, _| {
                fail(
                    "squeue: error: slurm_load_jobs error: Socket timed out on send/recv operation",
                )
            }),
        );
        assert!(b.jobs(&JobQuery::default()).unwrap_err().is_transient());
        assert!(b.jobs(&JobQuery::default()).unwrap_err().is_transient());
        assert_eq!(b.rpc_count(), 2);
        assert!(log.lock().unwrap().iter().all(|c| c.contains("--json")));
    }

    #[test]
    fn purged_ids_are_an_empty_answer() {
        let (b, _) = backend(
            CliConfig::default(),
            Box::new(|_, _| fail("slurm_load_jobs error: Invalid job id specified")),
        );
        assert_eq!(
            b.jobs(&JobQuery {
                ids: vec!["999999".into()],
                ..JobQuery::default()
            })
            .unwrap(),
            vec![]
        );
        assert_eq!(b.job_details("999999").unwrap(), vec![]);
        assert_eq!(b.start_estimate("999999").unwrap(), None);
    }

    #[test]
    fn sacct_json_exit_codes_are_repaired_from_text() {
        let (b, log) = backend(
            CliConfig::default(),
            Box::new(|_, args| {
                if args.iter().any(|a| a == "--json") {
                    ok(SACCT_JSON)
                } else {
                    ok(b"15\x1f3:0\x1fFAILED\n25\x1f0:0\x1fCANCELLED by 0\n")
                }
            }),
        );
        let jobs = b
            .history(&HistoryQuery {
                since: 1_795_738_500,
                ..HistoryQuery::default()
            })
            .unwrap();
        let fail = jobs.iter().find(|j| j.id == "15").unwrap();
        assert_eq!(fail.exit_code, Some(3));
        assert_eq!(
            jobs.iter().find(|j| j.id == "25").unwrap().exit_code,
            Some(0)
        );
        assert_eq!(b.rpc_count(), 2);
        let log = log.lock().unwrap();
        assert!(
            log[1].contains("--allocations") && log[1].contains("-j 11,15,25,"),
            "{}",
            log[1]
        );
        assert!(log[0].contains("--starttime"), "{}", log[0]);
    }

    #[test]
    fn actions_build_the_right_commands() {
        let (b, log) = backend(
            CliConfig {
                cluster: Some("hpc".into()),
                ..CliConfig::default()
            },
            Box::new(|program, _| match program {
                "sbatch" => ok(b"4242;hpc\n"),
                _ => ok(b""),
            }),
        );
        let id = b
            .submit(Path::new("/w/job.sh"), &["--job-name=x".into()])
            .unwrap();
        assert_eq!(id, "4242");
        b.cancel(&["1".into(), "2_3".into()]).unwrap();
        b.signal("7", 10).unwrap();
        b.hold(&["7".into(), "8".into()]).unwrap();
        b.update_time_limit("7", Some(Duration::from_secs(3600)))
            .unwrap();
        b.cancel(&[]).unwrap();
        assert_eq!(b.rpc_count(), 5);
        let log = log.lock().unwrap();
        assert_eq!(
            *log,
            vec![
                "sbatch --parsable --job-name=x /w/job.sh",
                "scancel -M hpc 1 2_3",
                "scancel -M hpc --full --signal=10 7",
                "scontrol -M hpc hold 7,8",
                "scontrol -M hpc update JobId=7 TimeLimit=0-01:00:00",
            ]
        );
    }

    #[test]
    fn submission_errors_are_classified() {
        let (b, _) = backend(
            CliConfig::default(),
            Box::new(|_, _| {
                fail(
                    "sbatch: error: QOSMaxSubmitJobPerUserLimit\nsbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)",
                )
            }),
        );
        assert!(matches!(
            b.submit(Path::new("a.sh"), &[]),
            Err(SlurmError::SubmitLimit { .. })
        ));
        let (b, _) = backend(
            CliConfig::default(),
            Box::new(|_, _| ok(b"Submitted batch job 5\n")),
        );
        assert!(matches!(
            b.submit(Path::new("a.sh"), &[]),
            Err(SlurmError::Failed { .. })
        ));
        let (b, _) = backend(
            CliConfig::default(),
            Box::new(|p, _| {
                Err(SlurmError::TimedOut {
                    cmd: p.into(),
                    after: Duration::from_secs(1),
                })
            }),
        );
        assert!(matches!(
            b.submit(Path::new("a.sh"), &[]),
            Err(SlurmError::TimedOut { .. })
        ));
    }

    #[test]
    fn text_only_policy_never_asks_for_json() {
        let (b, log) = backend(
            CliConfig {
                json: JsonPolicy::Never,
                ..CliConfig::default()
            },
            Box::new(|_, _| ok(b"")),
        );
        b.jobs(&JobQuery::default()).unwrap();
        b.history(&HistoryQuery::default()).unwrap();
        assert!(log.lock().unwrap().iter().all(|c| !c.contains("--json")));
        assert_eq!(b.rpc_count(), 2);
    }
}
