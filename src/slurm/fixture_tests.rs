//! Every fixture under `fixtures/slurm/` decoded with concrete expectations: `live-*` were captured
//! from the 22.05.8 test cluster (`fixtures/slurm/capture-live.sh`), the others are written from
//! the per-version parser definitions. Then garbage: truncations, mutations, random bytes.

use chrono::{Local, NaiveDateTime, TimeZone};

use super::decode::{self, JobList, nodes, text};
use super::model::{Job, JobState};
use super::scontrol;

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("../../fixtures/slurm/", $name)).as_slice()
    };
}

/// Every JSON fixture and which decoder reads it.
const JSON_FIXTURES: &[(&str, &[u8], bool)] = &[
    (
        "live-squeue-v0.0.38.json",
        fixture!("live-squeue-v0.0.38.json"),
        false,
    ),
    (
        "live-rest-slurm-v0.0.37-jobs.json",
        fixture!("live-rest-slurm-v0.0.37-jobs.json"),
        false,
    ),
    (
        "live-rest-slurm-v0.0.38-jobs.json",
        fixture!("live-rest-slurm-v0.0.38-jobs.json"),
        false,
    ),
    (
        "squeue-v0.0.39.json",
        fixture!("squeue-v0.0.39.json"),
        false,
    ),
    (
        "squeue-v0.0.40.json",
        fixture!("squeue-v0.0.40.json"),
        false,
    ),
    (
        "squeue-v0.0.41.json",
        fixture!("squeue-v0.0.41.json"),
        false,
    ),
    (
        "squeue-v0.0.42.json",
        fixture!("squeue-v0.0.42.json"),
        false,
    ),
    (
        "squeue-v0.0.42-complex.json",
        fixture!("squeue-v0.0.42-complex.json"),
        false,
    ),
    (
        "squeue-v0.0.43.json",
        fixture!("squeue-v0.0.43.json"),
        false,
    ),
    (
        "squeue-v0.0.45.json",
        fixture!("squeue-v0.0.45.json"),
        false,
    ),
    (
        "live-sacct-dbv0.0.38.json",
        fixture!("live-sacct-dbv0.0.38.json"),
        true,
    ),
    (
        "live-rest-slurmdb-v0.0.37-jobs.json",
        fixture!("live-rest-slurmdb-v0.0.37-jobs.json"),
        true,
    ),
    (
        "live-rest-slurmdb-v0.0.38-jobs.json",
        fixture!("live-rest-slurmdb-v0.0.38-jobs.json"),
        true,
    ),
    ("sacct-v0.0.39.json", fixture!("sacct-v0.0.39.json"), true),
    ("sacct-v0.0.40.json", fixture!("sacct-v0.0.40.json"), true),
    ("sacct-v0.0.41.json", fixture!("sacct-v0.0.41.json"), true),
    ("sacct-v0.0.42.json", fixture!("sacct-v0.0.42.json"), true),
    ("sacct-v0.0.44.json", fixture!("sacct-v0.0.44.json"), true),
];

/// The live fixtures were captured at about this time (2026-11-27T00:15:28Z).
const LIVE_NOW: i64 = 1_795_738_528;

fn squeue(bytes: &[u8]) -> JobList {
    decode::squeue_json_at(bytes, LIVE_NOW).unwrap()
}

fn sacct(bytes: &[u8]) -> JobList {
    decode::sacct_json(bytes).unwrap()
}

fn by_id<'a>(jobs: &'a [Job], id: &str) -> &'a Job {
    jobs.iter()
        .find(|j| j.id == id)
        .unwrap_or_else(|| panic!("no job {id}"))
}

fn local(s: &str) -> i64 {
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").unwrap();
    Local
        .from_local_datetime(&naive)
        .earliest()
        .unwrap()
        .timestamp()
}

#[test]
fn live_squeue_v0_0_38() {
    let list = squeue(fixture!("live-squeue-v0.0.38.json"));
    assert_eq!(list.dialect.parser, Some(38));
    assert_eq!(list.dialect.release.as_deref(), Some("22.05.8"));
    let jobs = &list.jobs;

    let ok = by_id(jobs, "14");
    assert_eq!(
        (ok.state.clone(), ok.exit_code, ok.signal),
        (JobState::Completed, Some(0), None)
    );
    assert_eq!(ok.comment.as_deref(), Some("step=train lr=0.1"));
    assert_eq!(ok.stdout.as_deref(), Some("/tmp/sortie-fx/fx-ok-14.out"));
    assert_eq!(
        (ok.cpus, ok.mem_mb, ok.nodes.as_deref()),
        (Some(1), Some(500), Some("vm"))
    );
    assert_eq!(
        (ok.submit, ok.start, ok.end),
        (Some(1795738513), Some(1795738513), Some(1795738516))
    );
    assert_eq!(ok.time_used_s, Some(3));
    assert!(ok.is_finished());

    // The raw wait status: 768 = exit 3; 9 = SIGKILL; 253 = Slurm's OOM marker (signal 125).
    let fail = by_id(jobs, "15");
    assert_eq!(
        (fail.state.clone(), fail.exit_code, fail.signal),
        (JobState::Failed, Some(3), None)
    );
    assert_eq!(fail.reason.as_deref(), Some("NonZeroExitCode"));
    assert_eq!(by_id(jobs, "16").signal, Some(9));
    let oom = by_id(jobs, "17");
    assert_eq!(
        (oom.state.clone(), oom.signal, oom.mem_mb),
        (JobState::OutOfMemory, Some(125), Some(60))
    );

    let running = by_id(jobs, "18");
    assert_eq!(
        (running.state.clone(), running.time_limit_s),
        (JobState::Running, Some(60))
    );
    assert_eq!((running.exit_code, running.time_used_s), (None, Some(5)));
    assert!(running.is_active());

    // The pending array collapses to one record; its file pattern keeps %a.
    let array = by_id(jobs, "19_[0-5%1]");
    assert_eq!((array.array_job_id, array.array_task_id), (Some(19), None));
    assert_eq!(array.array_task_str.as_deref(), Some("0-5%1"));
    assert_eq!(
        array.stdout.as_deref(),
        Some("/tmp/sortie-fx/fx-array-19_%a.out")
    );
    assert_eq!(
        array.stderr.as_deref(),
        Some("/tmp/sortie-fx/fx-array-19_%a.err")
    );
    assert_eq!(
        (array.reason.as_deref(), array.time_used_s),
        (Some("Resources"), None)
    );

    let task = by_id(jobs, "6_0");
    assert_eq!(
        (task.job_id_raw, task.array_job_id, task.array_task_id),
        (Some(8), Some(6), Some(0))
    );
    assert_eq!(task.stdout.as_deref(), Some("/tmp/slurm-6_0.out"));

    assert_eq!(
        by_id(jobs, "20").dependency.as_deref(),
        Some("afterok:19_*(unfulfilled)")
    );
    assert_eq!(
        by_id(jobs, "21").reason.as_deref(),
        Some("DependencyNeverSatisfied")
    );
    assert_eq!(by_id(jobs, "22").reason.as_deref(), Some("JobHeldUser"));
    assert_eq!(by_id(jobs, "23").time_limit_s, Some(2 * 86400));
    // time_limit null is UNLIMITED; 525600 min is the 365-day default of this cluster.
    assert_eq!(by_id(jobs, "5").time_limit_s, None);
    assert_eq!(by_id(jobs, "12").time_limit_s, Some(525_600 * 60));
    // The name was submitted as bytes ff fe: replaced, not fatal.
    assert_eq!(by_id(jobs, "24").name, "fx-\u{fffd}\u{fffd}-name");
    assert_eq!(
        by_id(jobs, "24").stdout.as_deref(),
        Some("/tmp/sortie-fx/badname-24.out")
    );
}

#[test]
fn live_rest_jobs_v0_0_37_and_38_agree() {
    let v37 = squeue(fixture!("live-rest-slurm-v0.0.37-jobs.json"));
    let v38 = squeue(fixture!("live-rest-slurm-v0.0.38-jobs.json"));
    assert_eq!(
        (v37.dialect.parser, v38.dialect.parser),
        (Some(37), Some(38))
    );
    assert_eq!(v37.jobs.len(), 18);
    assert_eq!(v37.jobs, v38.jobs);
    let rest = by_id(&v38.jobs, "56");
    assert_eq!(
        (rest.state.clone(), rest.name.as_str()),
        (JobState::Running, "fx-rest")
    );
    assert_eq!(
        rest.stdout.as_deref(),
        Some("/tmp/sortie-fx/fx-rest-56.out")
    );
    assert_eq!(by_id(&v37.jobs, "19_5").array_task_id, Some(5));
}

#[test]
fn live_sacct_dbv0_0_38_and_the_exit_code_trap() {
    let list = sacct(fixture!("live-sacct-dbv0.0.38.json"));
    assert_eq!(list.dialect.parser, Some(38));
    assert_eq!(list.dialect.sacct_exit_code_unreliable(), Some(true));
    let jobs = &list.jobs;

    let ok = by_id(jobs, "14");
    assert_eq!(
        (ok.exit_code, ok.elapsed_s, ok.comment.as_deref()),
        (Some(0), Some(3), Some("step=train lr=0.1"))
    );
    assert_eq!((ok.cpus, ok.mem_mb), (Some(1), Some(500)));
    assert_eq!(ok.max_rss_mb, Some(229_376.0 / 1_048_576.0));
    assert_eq!(ok.total_cpu_s, Some(0.005351));
    assert!(ok.cpu_efficiency().is_some() && ok.mem_efficiency().is_some());

    // `exit 3` reads SUCCESS/0 in dbv0.0.38: the decoder says "unknown", never 0.
    let fail = by_id(jobs, "15");
    assert_eq!(
        (fail.state.clone(), fail.exit_code),
        (JobState::Failed, None)
    );
    assert_eq!(
        (by_id(jobs, "16").exit_code, by_id(jobs, "16").signal),
        (Some(0), Some(9))
    );
    assert_eq!(by_id(jobs, "17").signal, Some(125));
    let timeout = by_id(jobs, "18");
    assert_eq!(
        (timeout.state.clone(), timeout.signal),
        (JobState::Timeout, Some(15))
    );
    assert_eq!(
        (timeout.time_limit_s, timeout.elapsed_s),
        (Some(60), Some(88))
    );

    let task = by_id(jobs, "19_0");
    assert_eq!(
        (task.job_id_raw, task.array_job_id, task.array_task_id),
        (Some(27), Some(19), Some(0))
    );
    assert_eq!(by_id(jobs, "19_5").job_id_raw, Some(19));
    let cancelled = by_id(jobs, "25");
    assert_eq!(
        (
            cancelled.state.clone(),
            cancelled.start,
            cancelled.exit_code
        ),
        (JobState::Cancelled, None, None)
    );
    assert_eq!(cancelled.max_rss_mb, None);
}

#[test]
fn live_rest_slurmdb_matches_cli_sacct() {
    let cli = sacct(fixture!("live-sacct-dbv0.0.38.json"));
    for (name, bytes, parser) in [
        (
            "v0.0.37",
            fixture!("live-rest-slurmdb-v0.0.37-jobs.json"),
            37,
        ),
        (
            "v0.0.38",
            fixture!("live-rest-slurmdb-v0.0.38-jobs.json"),
            38,
        ),
    ] {
        let rest = sacct(bytes);
        assert_eq!(rest.dialect.parser, Some(parser), "{name}");
        for job in &rest.jobs {
            if let Some(c) = cli.jobs.iter().find(|c| c.id == job.id) {
                assert_eq!(
                    (&job.state, job.exit_code, job.signal),
                    (&c.state, c.exit_code, c.signal),
                    "{name} {}",
                    job.id
                );
                assert_eq!(
                    (job.elapsed_s, job.max_rss_mb),
                    (c.elapsed_s, c.max_rss_mb),
                    "{name} {}",
                    job.id
                );
            }
        }
        let fail = by_id(&rest.jobs, "15");
        assert_eq!(
            (fail.state.clone(), fail.exit_code),
            (JobState::Failed, None),
            "{name}"
        );
    }
}

#[test]
fn live_sacct_text_has_the_real_exit_codes() {
    let jobs = text::sacct_text(fixture!("live-sacct-P.txt"), text::SACCT_FIELDS).unwrap();
    let fail = by_id(&jobs, "15");
    assert_eq!(
        (fail.state.clone(), fail.exit_code, fail.signal),
        (JobState::Failed, Some(3), None)
    );
    assert_eq!(by_id(&jobs, "16").signal, Some(9));
    assert_eq!(
        (by_id(&jobs, "17").state.clone(), by_id(&jobs, "17").signal),
        (JobState::OutOfMemory, Some(125))
    );
    let ok = by_id(&jobs, "14");
    assert_eq!(ok.max_rss_mb, Some(229_376.0 / 1_048_576.0));
    assert_eq!(
        (ok.total_cpu_s, ok.elapsed_s, ok.time_limit_s),
        (Some(0.005), Some(3), None)
    );
    assert_eq!(
        (ok.mem_mb, ok.cpus, ok.comment.as_deref()),
        (Some(500), Some(1), Some("step=train lr=0.1"))
    );
    assert_eq!(ok.submit, Some(local("2026-11-27T00:15:13")));
    let timeout = by_id(&jobs, "18");
    assert_eq!(
        (timeout.time_limit_s, timeout.elapsed_s, timeout.signal),
        (Some(60), Some(88), Some(15))
    );
    let task = by_id(&jobs, "19_0");
    assert_eq!(
        (task.job_id_raw, task.array_job_id, task.array_task_id),
        (Some(27), Some(19), Some(0))
    );
    let cancelled = by_id(&jobs, "25");
    assert_eq!(
        (
            cancelled.start,
            cancelled.nodes.as_deref(),
            cancelled.time_limit_s
        ),
        (None, None, None)
    );
    // No step row survives as a job of its own.
    assert!(jobs.iter().all(|j| !j.id.contains('.')));
    // The capture script's jobs had all ended: text and JSON must agree on them.
    let json = sacct(fixture!("live-sacct-dbv0.0.38.json")).jobs;
    let ours: Vec<&Job> = jobs.iter().filter(|j| j.name.starts_with("fx-")).collect();
    assert_eq!(ours.len(), 15);
    for j in ours {
        let k = by_id(&json, &j.id);
        assert_eq!(
            (&k.state, k.elapsed_s, k.max_rss_mb, k.signal),
            (&j.state, j.elapsed_s, j.max_rss_mb, j.signal),
            "{}",
            j.id
        );
    }
}

#[test]
fn live_squeue_text_matches_json() {
    let json = squeue(fixture!("live-squeue-v0.0.38.json")).jobs;
    let collapsed =
        text::squeue_text(fixture!("live-squeue-O-collapsed.txt"), text::SQUEUE_FIELDS).unwrap();
    let mut a: Vec<&str> = json.iter().map(|j| j.id.as_str()).collect();
    let mut b: Vec<&str> = collapsed.iter().map(|j| j.id.as_str()).collect();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b);
    for t in &collapsed {
        let j = by_id(&json, &t.id);
        assert_eq!(
            (&t.state, &t.stdout, &t.time_limit_s),
            (&j.state, &j.stdout, &j.time_limit_s),
            "{}",
            t.id
        );
        assert_eq!(
            (&t.array_job_id, &t.array_task_id, &t.array_task_str),
            (&j.array_job_id, &j.array_task_id, &j.array_task_str)
        );
    }
    let array = by_id(&collapsed, "19_[0-5%1]");
    assert_eq!(array.submit, Some(local("2026-11-27T00:15:21")));
    assert_eq!(array.start, Some(local("2026-11-27T00:21:00")));
    assert_eq!(by_id(&collapsed, "18").time_used_s, Some(5));
    assert_eq!(by_id(&collapsed, "24").end, None); // EndTime=NONE

    // With --array every pending task has its own line.
    let expanded = text::squeue_text(fixture!("live-squeue-O.txt"), text::SQUEUE_FIELDS).unwrap();
    let task = by_id(&expanded, "19_3");
    assert_eq!(
        (task.array_task_id, task.job_id_raw, task.state.clone()),
        (Some(3), Some(19), JobState::Pending)
    );
    assert_eq!(
        task.stdout.as_deref(),
        Some("/tmp/sortie-fx/fx-array-19_3.out")
    );
    assert_eq!(
        by_id(&expanded, "14").comment.as_deref(),
        Some("step=train lr=0.1")
    );
}

#[test]
fn live_scontrol_sinfo_and_start() {
    let details = scontrol::show_job(fixture!("live-scontrol-show-job.txt")).unwrap();
    assert_eq!(details.len(), 6);
    let running = &details[0].job;
    assert_eq!(
        (
            running.id.as_str(),
            running.state.clone(),
            running.user.as_deref()
        ),
        ("18", JobState::Running, Some("root"))
    );
    assert_eq!(
        (running.time_limit_s, running.time_used_s, running.mem_mb),
        (Some(60), Some(5), Some(500))
    );
    assert_eq!(
        running.stdout.as_deref(),
        Some("/tmp/sortie-fx/fx-timeout-18.out")
    );
    assert_eq!(running.start, Some(local("2026-11-27T00:15:23")));
    assert_eq!(details[0].fields["Priority"], "4294901745");
    let array = &details[1].job;
    assert_eq!(
        (array.id.as_str(), array.array_task_str.as_deref()),
        ("19_[0-5%1]", Some("0-5%1"))
    );
    let dep = &details[2].job;
    assert_eq!(
        (dep.dependency.as_deref(), dep.start, dep.time_limit_s),
        (Some("afterok:19_*(unfulfilled)"), None, None)
    );

    let parts = scontrol::partitions(fixture!("live-sinfo.txt")).unwrap();
    let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["debug", "alt", "urgent"]);
    let debug = &parts[0];
    assert!(debug.default && !parts[1].default);
    assert_eq!(
        (debug.state.as_str(), debug.nodes_total, debug.nodes_idle),
        ("up", 1, 0)
    );
    assert_eq!(
        (
            debug.cpus_total,
            debug.cpus_idle,
            debug.gpus_total,
            debug.max_time_s
        ),
        (2, 1, 0, None)
    );

    let starts = text::start_estimates(fixture!("live-squeue-start.txt")).unwrap();
    let expected = text::StartEstimate {
        id: "60".into(),
        start: Some(local("2026-11-27T01:18:57")),
        reason: Some("BeginTime".into()),
    };
    assert_eq!(starts, vec![expected]);
}

#[test]
fn live_rest_partitions() {
    let parts = nodes::partitions_json(
        fixture!("live-rest-slurm-v0.0.38-partitions.json"),
        fixture!("live-rest-slurm-v0.0.38-nodes.json"),
    )
    .unwrap();
    let debug = parts.iter().find(|p| p.name == "debug").unwrap();
    assert!(debug.default);
    assert_eq!(
        (debug.state.as_str(), debug.max_time_s, debug.nodes_total),
        ("up", None, 1)
    );
    assert_eq!(
        (debug.cpus_total, debug.cpus_idle, debug.nodes_idle),
        (2, 1, 0)
    );
    assert_eq!(parts.len(), 3);
}

#[test]
fn documented_squeue_v0_0_39() {
    let list = squeue(fixture!("squeue-v0.0.39.json"));
    assert_eq!(
        (list.dialect.parser, list.dialect.release.as_deref()),
        (Some(39), Some("23.02.7"))
    );
    let task = by_id(&list.jobs, "2001_3");
    assert_eq!(
        (task.job_id_raw, task.array_job_id, task.array_task_id),
        (Some(2004), Some(2001), Some(3))
    );
    assert_eq!(
        (task.time_limit_s, task.cpus, task.mem_mb, task.gpus),
        (Some(7200), Some(8), Some(32768), Some(2))
    );
    assert_eq!(
        task.stdout.as_deref(),
        Some("/home/ana/proj/logs/train-2001_3.out")
    );
    assert_eq!(task.gres.as_deref(), Some("gres:gpu:2"));
    assert_eq!(task.time_used_s, Some((LIVE_NOW - 1_780_000_000) as u64));
    let rest = by_id(&list.jobs, "2001_[4-9%2]");
    assert_eq!(
        (rest.reason.as_deref(), rest.array_task_id),
        (Some("JobArrayTaskLimit"), None)
    );
    let failed = by_id(&list.jobs, "1990");
    assert_eq!(
        (failed.exit_code, failed.signal, failed.time_limit_s),
        (Some(1), None, None)
    );
    assert_eq!((failed.array_job_id, failed.mem_mb), (None, Some(4000)));
}

#[test]
fn documented_squeue_v0_0_40_state_arrays_and_exit_structs() {
    let list = squeue(fixture!("squeue-v0.0.40.json"));
    assert_eq!(list.dialect.parser, Some(40));
    let completing = by_id(&list.jobs, "3001");
    assert_eq!(
        (completing.state.clone(), completing.flags.clone()),
        (JobState::Completed, vec!["COMPLETING".to_string()])
    );
    assert!(!completing.is_finished() && completing.is_active());
    assert_eq!(
        (completing.exit_code, completing.mem_mb, completing.submit),
        (Some(0), Some(16000), Some(1_779_990_000))
    );
    assert_eq!(by_id(&list.jobs, "3002").exit_code, Some(2));
    let killed = by_id(&list.jobs, "3003");
    assert_eq!(
        (killed.exit_code, killed.signal, killed.time_limit_s),
        (Some(0), Some(9), None)
    );
    let requeued = by_id(&list.jobs, "3004");
    assert_eq!(
        (requeued.state.clone(), requeued.flags.clone()),
        (JobState::Pending, vec!["REQUEUED".to_string()])
    );
    assert_eq!(
        (requeued.exit_code, requeued.start, requeued.time_limit_s),
        (None, None, None)
    );
}

#[test]
fn documented_squeue_v0_0_41_to_v0_0_45() {
    let v41 = squeue(fixture!("squeue-v0.0.41.json"));
    let job = by_id(&v41.jobs, "4000_7");
    // No top-level `nodes`: taken from the v0.0.41 `job_resources.nodes` object.
    assert_eq!(
        (job.nodes.as_deref(), job.gpus, job.mem_mb),
        (Some("g[01-02]"), Some(8), Some(131_072))
    );
    assert_eq!(
        (job.time_limit_s, job.stdout.as_deref()),
        (Some(86400), Some("/scratch/ana/run/pretrain-4000_7.out"))
    );

    let v42 = squeue(fixture!("squeue-v0.0.42.json"));
    let orphan = by_id(&v42.jobs, "5010");
    assert_eq!(
        (orphan.reason.as_deref(), orphan.dependency.as_deref()),
        (
            Some("DependencyNeverSatisfied"),
            Some("afterok:5000_*(failed)")
        )
    );
    assert_eq!(
        (orphan.time_limit_s, orphan.start, orphan.end, orphan.mem_mb),
        (None, None, None, Some(2048))
    );
    let timeout = by_id(&v42.jobs, "5011");
    assert_eq!(
        (
            timeout.state.clone(),
            timeout.signal,
            timeout.nodes.as_deref()
        ),
        (JobState::Timeout, Some(15), Some("c05"))
    );
    assert_eq!(timeout.time_used_s, Some(7300));

    let complex = squeue(fixture!("squeue-v0.0.42-complex.json"));
    let sweep = by_id(&complex.jobs, "6000_[0-99%10]");
    assert_eq!(
        (sweep.time_limit_s, sweep.start, sweep.submit, sweep.gpus),
        (None, None, Some(1_780_000_000), Some(1))
    );
    assert_eq!(
        sweep.stdout.as_deref(),
        Some("/scratch/ana/sweep/sweep-6000_%a.out")
    );

    // v0.0.43 reports the raw pattern beside the expanded path; without the latter, we expand.
    let v43 = squeue(fixture!("squeue-v0.0.43.json"));
    let eval = by_id(&v43.jobs, "7001");
    assert_eq!(
        eval.stdout.as_deref(),
        Some("/scratch/ana/run/logs/eval-7001.out")
    );
    assert_eq!(
        eval.stderr.as_deref(),
        Some("/scratch/ana/run/logs/eval-7001.err")
    );
    let arr = by_id(&v43.jobs, "7000_12");
    assert_eq!(
        arr.stdout.as_deref(),
        Some("/scratch/ana/run/arr-7000_012.out")
    );
    assert_eq!(
        (arr.state.clone(), arr.flags.clone()),
        (JobState::Running, vec!["SIGNALING".to_string()])
    );

    let v45 = squeue(fixture!("squeue-v0.0.45.json"));
    assert_eq!(v45.dialect.parser, Some(45));
    let cloudy = by_id(&v45.jobs, "9001");
    assert_eq!(
        (cloudy.state.clone(), cloudy.flags.clone()),
        (JobState::Pending, vec!["POWER_UP_NODE".to_string()])
    );
    assert_eq!(
        cloudy.stdout.as_deref(),
        Some("/scratch/ana/run/slurm-9001.out")
    );
    let odd = by_id(&v45.jobs, "9002");
    assert_eq!(odd.state, JobState::Unknown("HIBERNATING".into()));
    assert!(!odd.is_finished() && !odd.is_active());
}

#[test]
fn documented_sacct_v0_0_39_to_v0_0_44() {
    let v39 = sacct(fixture!("sacct-v0.0.39.json"));
    assert_eq!(v39.dialect.parser, Some(39));
    let prep = by_id(&v39.jobs, "2100");
    assert_eq!(
        (prep.state.clone(), prep.exit_code),
        (JobState::Failed, None),
        "the pre-v0.0.40 trap"
    );
    assert_eq!(
        (prep.total_cpu_s, prep.max_rss_mb, prep.time_limit_s),
        (Some(12.5), Some(100.0), Some(600))
    );
    assert_eq!((prep.cpus, prep.mem_mb), (Some(2), Some(4096)));
    assert_eq!(prep.cpu_efficiency(), Some(12.5 / 60.0));
    let train = by_id(&v39.jobs, "2101_1");
    assert_eq!(
        (train.signal, train.gpus, train.time_limit_s),
        (Some(9), Some(2), None)
    );
    assert_eq!(
        (train.comment.as_deref(), train.job_id_raw),
        (Some("sweep=lr"), Some(2103))
    );

    let v40 = sacct(fixture!("sacct-v0.0.40.json"));
    let prep = by_id(&v40.jobs, "3100");
    assert_eq!(
        (prep.exit_code, prep.reason.as_deref()),
        (Some(3), Some("NonZeroExitCode"))
    );
    assert_eq!(
        (prep.max_rss_mb, prep.total_cpu_s),
        (Some(2048.0), Some(150.001))
    );
    assert_eq!(prep.mem_efficiency(), Some(0.25));

    let v41 = sacct(fixture!("sacct-v0.0.41.json"));
    let pre = by_id(&v41.jobs, "4000_7");
    assert_eq!(
        (pre.state.clone(), pre.signal, pre.gpus),
        (JobState::Timeout, Some(15), Some(8))
    );
    assert_eq!(
        pre.stdout.as_deref(),
        Some("/scratch/ana/run/pretrain-4000_7.out")
    );
    assert_eq!(
        (pre.total_cpu_s, pre.max_rss_mb),
        (Some(680_000.0), Some(102_400.0))
    );

    let v42 = sacct(fixture!("sacct-v0.0.42.json"));
    let big = by_id(&v42.jobs, "5200");
    assert_eq!(
        (big.state.clone(), big.signal, big.gpus),
        (JobState::OutOfMemory, Some(125), Some(1))
    );
    assert_eq!(big.stdout.as_deref(), Some("/scratch/ana/bigmem-5200.out"));
    assert_eq!(big.mem_efficiency(), Some(1.0));

    let v44 = sacct(fixture!("sacct-v0.0.44.json"));
    let sweep = by_id(&v44.jobs, "6000_[40-99%10]");
    assert_eq!(
        (sweep.nodes.clone(), sweep.start, sweep.gpus, sweep.mem_mb),
        (None, None, Some(1), Some(8192))
    );
    // From v0.0.40 on, SUCCESS/0 is the truth, even for a cancelled job.
    assert_eq!(by_id(&v44.jobs, "6100").exit_code, Some(0));
}

#[test]
fn truncated_json_never_panics() {
    for (name, bytes, is_sacct) in JSON_FIXTURES {
        let step = (bytes.len() / 61).max(1);
        for cut in (0..bytes.len()).step_by(step) {
            let part = &bytes[..cut];
            let r = if *is_sacct {
                decode::sacct_json(part)
            } else {
                decode::squeue_json(part)
            };
            if let Err(e) = r {
                assert!(!e.at.is_empty(), "{name} cut at {cut}");
            }
        }
    }
}

/// Replaces every value inside each job record, one at a time, with an odd one.
#[test]
fn mutated_records_never_panic() {
    let odd = [
        serde_json::json!(null),
        serde_json::json!(-1),
        serde_json::json!(1e300),
        serde_json::json!("x"),
        serde_json::json!([]),
        serde_json::json!({"set": true, "infinite": false, "number": -5}),
        serde_json::json!([{"deep": [1]}]),
    ];
    for (_, bytes, is_sacct) in JSON_FIXTURES {
        let root = decode::parse_json(bytes).unwrap();
        let Some(first) = root["jobs"].get(0).cloned() else {
            continue;
        };
        let dialect = decode::Dialect::from_reply(&root);
        let mut paths = Vec::new();
        leaf_paths(&first, &mut Vec::new(), &mut paths);
        for path in paths {
            for value in &odd {
                let mut rec = first.clone();
                set(&mut rec, &path, value.clone());
                let _ = if *is_sacct {
                    decode::sacct::job(&rec, &dialect, "jobs[0]")
                } else {
                    decode::squeue::job(&rec, &dialect, LIVE_NOW, "jobs[0]")
                };
            }
        }
    }
}

fn leaf_paths(v: &serde_json::Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map {
                prefix.push(k.clone());
                out.push(prefix.clone());
                leaf_paths(child, prefix, out);
                prefix.pop();
            }
        }
        serde_json::Value::Array(items) => {
            for (i, child) in items.iter().enumerate().take(2) {
                prefix.push(i.to_string());
                leaf_paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn set(v: &mut serde_json::Value, path: &[String], value: serde_json::Value) {
    let mut cur = v;
    for key in path {
        cur = match cur {
            serde_json::Value::Array(items) => {
                match key.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                    Some(c) => c,
                    None => return,
                }
            }
            other => &mut other[key.as_str()],
        };
    }
    *cur = value;
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = fastrand::Rng::with_seed(0x5107);
    let text_inputs: Vec<&[u8]> = vec![
        fixture!("live-sacct-P.txt"),
        fixture!("live-squeue-O.txt"),
        fixture!("live-scontrol-show-job.txt"),
        fixture!("live-sinfo.txt"),
    ];
    for round in 0..400 {
        let len = rng.usize(0..512);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        // Half the rounds: a real fixture with random bytes flipped, so parsers get past line one.
        if round % 2 == 0 {
            let (_, base, _) = JSON_FIXTURES[round % JSON_FIXTURES.len()];
            bytes = base.to_vec();
            for _ in 0..8 {
                let i = rng.usize(..bytes.len());
                bytes[i] = rng.u8(..);
            }
        } else if round % 4 == 1 {
            bytes = text_inputs[round % text_inputs.len()].to_vec();
            for _ in 0..8 {
                let i = rng.usize(..bytes.len());
                bytes[i] = *[0x1f, b'\n', b'=', b' ', b':', b'-', 0xff]
                    .get(rng.usize(..7))
                    .unwrap_or(&0);
            }
        }
        let _ = decode::squeue_json(&bytes);
        let _ = decode::sacct_json(&bytes);
        let _ = text::squeue_text(&bytes, text::SQUEUE_FIELDS);
        let _ = text::sacct_text(&bytes, text::SACCT_FIELDS);
        let _ = text::start_estimates(&bytes);
        let _ = scontrol::show_job(&bytes);
        let _ = scontrol::partitions(&bytes);
        let _ = nodes::partitions_json(&bytes, &bytes);
    }
}
