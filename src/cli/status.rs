//! `sortie status` and `sortie runs`: read from this host's index after bringing it up to date.

use super::{EXIT_OK, open_index, resolve_run};
use crate::index::{RunRow, StepRow};
use crate::runlog::{Project, RunDir, RunState, StepState, lease, liveness};
use clap::Args;
use color_eyre::eyre::Result;
use serde_json::json;

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The run (id, prefix or `latest`; default latest).
    pub run: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RunsArgs {
    #[arg(long)]
    pub json: bool,
}

/// Local time of a Unix timestamp, for tables.
pub fn local_time(ts: f64) -> String {
    chrono::DateTime::from_timestamp(ts as i64, 0)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| "-".into())
}

use crate::util::human_duration as duration;

/// Who drives the run now, as the files tell it.
fn engine_json(run: &RunRow) -> serde_json::Value {
    match lease::current(&RunDir::new(run.dir.clone())) {
        Some(l) => json!({
            "host": l.host, "pid": l.pid, "alive": l.is_alive(),
            "heartbeat_age_s": (l.heartbeat_age() * 10.0).round() / 10.0,
        }),
        None => serde_json::Value::Null,
    }
}

fn engine_text(run: &RunRow) -> String {
    match lease::current(&RunDir::new(run.dir.clone())) {
        Some(l) if l.is_alive() => format!("engine {}", l.holder()),
        _ if run.state == RunState::Running => format!(
            "no live engine (it died): `sortie resume {}` takes over",
            run.id
        ),
        _ => "no engine".into(),
    }
}

fn step_json(
    s: &StepRow,
    slurm: &Slurm,
    seen: &crate::index::unattended::Unattended,
) -> serde_json::Value {
    let job = slurm.job(s);
    let now = crate::util::now();
    let heartbeat = seen.remote.get(&s.name).map(|r| {
        json!({
            "host": r.host,
            "age_s": r.heartbeat.map(|t| ((now - t).max(0.0) * 10.0).round() / 10.0),
            "text": r.describe(now),
        })
    });
    json!({
        "name": s.name, "step": s.group, "params": s.params, "state": s.state,
        "attempts": s.attempts, "exit_code": s.exit_code, "signal": s.signal,
        "reason": s.reason, "started": s.started, "ended": s.ended,
        "dir": s.dir, "job_id": s.job_id,
        "slurm": job.map(|j| json!({ "state": j.state.name(), "reason": j.reason })),
        "heartbeat": heartbeat,
    })
}

/// What Slurm says of the steps the log counts as running (submitted jobs may still wait in the
/// queue): one `squeue` for all of them, only when there are some and Slurm is here.
#[derive(Default)]
struct Slurm {
    jobs: Vec<crate::slurm::model::Job>,
    index: crate::slurm::lookup::JobIndex,
    /// Why Slurm could not be asked, if it could not.
    error: Option<String>,
}

impl Slurm {
    fn ask(steps: &[StepRow]) -> Slurm {
        use crate::slurm::backend::JobQuery;
        // Array tasks are asked for by their array (a pending task is inside its array's record).
        let mut ids: Vec<String> = steps
            .iter()
            .filter(|s| s.state == StepState::Running)
            .filter_map(|s| s.job_id.as_deref())
            .map(|id| crate::slurm::JobId::parse(id).map_or_else(|| id.to_string(), |j| j.base()))
            .collect();
        ids.sort();
        ids.dedup();
        if ids.is_empty() {
            return Slurm::default();
        }
        // An extra for a status: a hung controller may delay it a little, not the usual 30 s.
        let backend = match crate::slurm::connect::open(
            false,
            None,
            Some(std::time::Duration::from_secs(10)),
        ) {
            Ok(b) => b,
            // No Slurm here: the log's word stands.
            Err(crate::slurm::connect::ConnectError::Missing(_)) => return Slurm::default(),
            Err(e) => {
                return Slurm {
                    error: Some(e.to_string()),
                    ..Default::default()
                };
            }
        };
        match backend.jobs(&JobQuery {
            ids,
            ..Default::default()
        }) {
            Ok(jobs) => Slurm {
                index: crate::slurm::lookup::JobIndex::new(&jobs),
                jobs,
                error: None,
            },
            Err(e) => Slurm {
                error: Some(e.to_string()),
                ..Default::default()
            },
        }
    }

    /// The Slurm job of a step the log counts as running.
    fn job(&self, s: &StepRow) -> Option<&crate::slurm::model::Job> {
        if s.state != StepState::Running {
            return None;
        }
        self.index.find(&self.jobs, s.job_id.as_deref()?)
    }

    /// The job of a running step that still waits in the queue.
    fn waiting(&self, s: &StepRow) -> Option<&crate::slurm::model::Job> {
        self.job(s)
            .filter(|j| j.state.class() == crate::slurm::model::StateClass::Queued)
    }
}

pub fn status(project: &Project, a: StatusArgs) -> Result<i32> {
    let mut index = open_index(project)?;
    let resolved = resolve_run(project, &mut index, a.run.as_deref());
    // What the index holds of a damaged run is stale: say it is damaged instead.
    let damaged = crate::index::damaged_runs(project, |_| true);
    let wanted = resolved
        .as_ref()
        .ok()
        .map(|r| r.id.as_str())
        .or(a.run.as_deref());
    if let Some(d) = damaged.iter().find(|d| Some(d.id.as_str()) == wanted) {
        return Err(color_eyre::eyre::eyre!("{d}"));
    }
    let mut run = resolved?;
    let mut steps = index
        .steps(&run.id)
        .map_err(|e| color_eyre::eyre::eyre!("{e}"))?;
    let attempts = index
        .attempts(&run.id, None)
        .map_err(|e| color_eyre::eyre::eyre!("{e}"))?;
    let grace = liveness::heartbeat_grace().map_err(crate::util::user_error)?;
    let recorded = run.state;
    // Steps nobody watches may have ended, or run on another host: their files tell.
    let seen = crate::index::unattended::read_unattended(&mut run, &mut steps, &attempts, grace);
    let unrecorded = seen.unrecorded;
    let hint = (unrecorded > 0).then(|| {
        format!(
            "{unrecorded} step(s) ended or were lost while no engine was running (read from their \
             exit-code and heartbeat files); `sortie resume {}` records them and carries on",
            run.id
        )
    });
    let slurm = Slurm::ask(&steps);
    if a.json {
        let out = json!({
            "run": run.id, "state": run.state, "pipeline": run.pipeline, "file": run.file,
            "created": run.created, "ended": run.ended, "host": run.host,
            "engine": engine_json(&run),
            "recorded_state": recorded,
            "unrecorded_ends": unrecorded,
            "slurm_error": slurm.error,
            "steps": steps.iter().map(|s| step_json(s, &slurm, &seen)).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(EXIT_OK);
    }
    let end = run.ended.unwrap_or_else(crate::util::now);
    println!(
        "run {}  {}  {} {}  started {}  {}",
        run.id,
        run.pipeline,
        state_glyph(run.state),
        run.state,
        local_time(run.created),
        duration(end - run.created)
    );
    println!("  {}", engine_text(&run));
    if let Some(h) = &hint {
        println!("  {h}");
    }
    if let Some(e) = &slurm.error {
        println!("  (Slurm could not be asked which jobs still wait: {e})");
    }
    let width = steps
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(4)
        .min(60);
    for s in &steps {
        let waiting = slurm.waiting(s);
        let took = match (s.started, s.ended) {
            (Some(b), Some(e)) => duration(e - b),
            // A job still in the queue has not run yet; a running one has since its start.
            (Some(_), None) if waiting.is_some() => String::new(),
            (Some(b), None) => {
                let start = slurm.job(s).and_then(|j| j.start).map_or(b, |t| t as f64);
                duration(crate::util::now() - start)
            }
            _ => String::new(),
        };
        let tries = match s.attempts {
            0 => String::new(),
            1 => "1 attempt".into(),
            n => format!("{n} attempts"),
        };
        let mut reason = s
            .reason
            .as_deref()
            .map(|r| format!("  ({r})"))
            .unwrap_or_default();
        if let Some(r) = seen.remote.get(&s.name) {
            reason = format!("  {}", r.describe(crate::util::now()));
        }
        let (glyph, state) = match waiting {
            Some(j) => {
                reason = format!(
                    "  (waiting in Slurm: {})",
                    j.reason.as_deref().unwrap_or("pending")
                );
                (StepState::Queued.glyph(), StepState::Queued.as_str())
            }
            None => (s.state.glyph(), s.state.as_str()),
        };
        let job = s
            .job_id
            .as_deref()
            .map(|j| format!("  job {j}"))
            .unwrap_or_default();
        println!(
            "  {glyph} {state:<9} {:<width$}  {:>10}  {:>8}{job}{reason}",
            s.name, tries, took,
        );
    }
    Ok(EXIT_OK)
}

fn state_glyph(s: RunState) -> char {
    match s {
        RunState::Running => '▶',
        RunState::Succeeded => '✓',
        RunState::Failed => '✗',
        RunState::Cancelled => '⊘',
    }
}

pub fn runs(project: &Project, a: &RunsArgs) -> Result<i32> {
    let mut index = open_index(project)?;
    let damaged = index
        .sync_all(project)
        .map_err(|e| color_eyre::eyre::eyre!("cannot update the index: {e}"))?
        .damaged;
    let mut runs = index.runs().map_err(|e| color_eyre::eyre::eyre!("{e}"))?;
    runs.retain(|r| !damaged.iter().any(|d| d.id == r.id));
    if a.json {
        let out: Vec<serde_json::Value> = runs
            .iter()
            .map(|r| {
                json!({
                    "run": r.id, "state": r.state, "pipeline": r.pipeline, "created": r.created,
                    "ended": r.ended, "steps_total": r.steps_total, "steps_done": r.steps_done,
                    "steps_failed": r.steps_failed, "dir": r.dir,
                })
            })
            .chain(damaged.iter().map(
                |d| json!({"run": d.id, "state": "damaged", "problem": d.problem, "dir": d.dir}),
            ))
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(EXIT_OK);
    }
    if runs.is_empty() && damaged.is_empty() {
        println!(
            "no runs in {} yet: start one with `sortie run` (or try `sortie demo`)",
            project.root.display()
        );
        return Ok(EXIT_OK);
    }
    println!(
        "{:<8} {:<20} {:<11} {:>9}  {:<19}  {:>8}",
        "RUN", "PIPELINE", "STATE", "STEPS", "STARTED", "DURATION"
    );
    for r in &runs {
        let end = r.ended.unwrap_or_else(crate::util::now);
        println!(
            "{:<8} {:<20} {} {:<9} {:>9}  {:<19}  {:>8}",
            r.id,
            r.pipeline.chars().take(20).collect::<String>(),
            state_glyph(r.state),
            r.state.as_str(),
            format!("{}/{}", r.steps_done, r.steps_total),
            local_time(r.created),
            duration(end - r.created)
        );
    }
    for d in &damaged {
        println!("{:<8} {:<20} ✗ {:<9} {}", d.id, "", "damaged", d.problem);
    }
    Ok(EXIT_OK)
}
