//! Against a real cluster (tests/cluster/start.sh): submit through `CliBackend`, see the jobs in
//! `jobs()` and, once ended, in `history()` with the right exit codes, through both the JSON and the
//! text paths, and through slurmrestd when it is up. Skips (with a message) when no cluster answers;
//! `SORTIE_REQUIRE_SLURM=1` turns the skip into a failure.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::backend::{HistoryQuery, JobQuery, SlurmBackend};
use super::cli_backend::{CliBackend, CliConfig, JsonPolicy};
use super::model::{Job, JobState};
use super::process::{ProcessRunner, Runner};
use super::rest_backend::{RestBackend, RestConfig};

fn cluster_answers() -> Result<(), String> {
    let args = vec!["--noheader".to_string(), "--format=%P".to_string()];
    match ProcessRunner.run("sinfo", &args, Duration::from_secs(15)) {
        Ok(out) if out.status == Some(0) => Ok(()),
        Ok(out) => Err(format!(
            "sinfo failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// `SLURM_REST_URL`, or the env file tests/cluster/start.sh writes.
fn rest_url() -> Option<String> {
    if let Ok(url) = std::env::var("SLURM_REST_URL") {
        return Some(url);
    }
    let env = std::fs::read_to_string("/tmp/sortie-slurm/env").ok()?;
    env.lines()
        .find_map(|l| l.strip_prefix("SLURM_REST_URL="))
        .map(|u| u.trim().to_string())
}

fn wait_until_ended(b: &CliBackend, ids: &[String]) -> Vec<Job> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let jobs = b
            .jobs(&JobQuery {
                ids: ids.to_vec(),
                ..JobQuery::default()
            })
            .expect("squeue");
        if jobs.len() == ids.len() && jobs.iter().all(Job::is_finished) {
            return jobs;
        }
        assert!(
            Instant::now() < deadline,
            "jobs did not end in time: {jobs:?}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[test]
fn submit_list_and_account_on_a_live_cluster() {
    let required = std::env::var("SORTIE_REQUIRE_SLURM").is_ok_and(|v| v == "1");
    if let Err(why) = cluster_answers() {
        assert!(
            !required,
            "SORTIE_REQUIRE_SLURM=1 but no Slurm cluster answers: {why}"
        );
        println!("SKIPPED: no Slurm cluster ({why}); set SORTIE_REQUIRE_SLURM=1 to require one");
        return;
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let script: PathBuf = dir.path().join("job.sh");
    std::fs::write(
        &script,
        "#!/bin/bash\necho hello from $SLURM_JOB_ID\nsleep 2\nexit ${SORTIE_EXIT:-0}\n",
    )
    .unwrap();
    let name = format!("sortie-live-{}", std::process::id());
    let out = format!("{}/%x-%j.out", dir.path().display());
    let args = |exit: &str| {
        vec![
            format!("--job-name={name}"),
            format!("--output={out}"),
            format!("--export=ALL,SORTIE_EXIT={exit}"),
            "--time=2".to_string(),
            "--mem=100M".to_string(),
        ]
    };
    let since = chrono::Utc::now().timestamp() - 5;

    let cli = CliBackend::new(CliConfig::default());
    let ok_id = cli.submit(&script, &args("0")).expect("sbatch");
    let bad_id = cli.submit(&script, &args("3")).expect("sbatch");
    let ids = vec![ok_id.clone(), bad_id.clone()];

    let seen = cli
        .jobs(&JobQuery {
            ids: ids.clone(),
            ..JobQuery::default()
        })
        .expect("squeue");
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.iter().all(|j| j.name == name));
    let details = cli.job_details(&ok_id).expect("scontrol");
    assert_eq!(
        details.first().map(|d| d.job.name.as_str()),
        Some(name.as_str())
    );
    cli.start_estimate(&bad_id).expect("squeue --start");
    assert!(!cli.partitions().expect("sinfo").is_empty());

    let ended = wait_until_ended(&cli, &ids);
    let ok_job = ended.iter().find(|j| j.id == ok_id).unwrap();
    let path = ok_job.stdout.clone().expect("stdout path");
    assert_eq!(path, format!("{}/{name}-{ok_id}.out", dir.path().display()));
    let text = std::fs::read_to_string(&path).expect("the job's output file");
    assert!(text.contains(&format!("hello from {ok_id}")), "{text}");

    // Accounting may lag the controller by a moment.
    let query = HistoryQuery {
        since,
        ids: ids.clone(),
        ..HistoryQuery::default()
    };
    let text_cli = CliBackend::new(CliConfig {
        json: JsonPolicy::Never,
        ..CliConfig::default()
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let (json_hist, text_hist) = loop {
        let a = cli.history(&query).expect("sacct --json");
        let b = text_cli.history(&query).expect("sacct -P");
        if (a.len() == 2 && a.iter().all(Job::is_finished)) || Instant::now() > deadline {
            break (a, b);
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    for hist in [&json_hist, &text_hist] {
        let ok_job = hist
            .iter()
            .find(|j| j.id == ok_id)
            .expect("ok job in sacct");
        let bad_job = hist
            .iter()
            .find(|j| j.id == bad_id)
            .expect("failed job in sacct");
        assert_eq!(
            (ok_job.state.clone(), ok_job.exit_code),
            (JobState::Completed, Some(0))
        );
        // Through JSON this needs the pre-23.11 exit-code repair.
        assert_eq!(
            (bad_job.state.clone(), bad_job.exit_code),
            (JobState::Failed, Some(3))
        );
        assert!(ok_job.elapsed_s.is_some_and(|e| e >= 2), "{ok_job:?}");
    }
    println!("CLI backend: {} commands", cli.rpc_count());

    if let Some(url) = rest_url() {
        let rest = RestBackend::new(RestConfig {
            url,
            user: crate::util::user(),
            token: None,
            api: None,
            timeout: Duration::from_secs(30),
        })
        .expect("REST client");
        let mut live: Vec<String> = rest
            .jobs(&JobQuery {
                ids: ids.clone(),
                ..JobQuery::default()
            })
            .expect("GET jobs")
            .into_iter()
            .map(|j| j.id)
            .collect();
        live.sort();
        let mut want = ids.clone();
        want.sort();
        assert_eq!(live, want);
        let hist = rest.history(&query).expect("GET slurmdb jobs");
        assert!(
            ids.iter().all(|id| hist.iter().any(|j| &j.id == id)),
            "{hist:?}"
        );
        assert!(!rest.partitions().expect("GET partitions").is_empty());
        println!(
            "REST backend (API v0.0.{}): {} requests",
            rest.api().unwrap().slurm,
            rest.rpc_count()
        );
    } else {
        println!("REST part skipped: no SLURM_REST_URL");
    }
}
