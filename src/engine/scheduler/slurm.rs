//! The engine's Slurm side: turning ready steps into `sbatch` calls (single jobs, or arrays for
//! matrix steps, with `afterok` dependencies on the jobs they need), recording the intent before
//! each call and the job id after, healing a crash between the two on resume, and growing the next
//! attempt's request after an out-of-memory, a timeout or a node failure.

use super::{Engine, Launch};
use crate::executor::slurm::SlurmExecutor;
use crate::executor::slurm::script::{self, Element, JobScript};
use crate::executor::{Finished, JobFacts, LaunchSpec, Outcome};
use crate::pipeline::Instance;
use crate::runlog::StepState;
use crate::runlog::events::{Event, SlurmRequest};
use crate::runlog::state::{AttemptFold, RunFold, StepFold};
use crate::slurm::SlurmError;
use color_eyre::eyre::{Result, eyre};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long to wait before submitting again after Slurm did not take a job (limits, outages).
const SUBMIT_AGAIN_AFTER: Duration = Duration::from_secs(30);

/// The Slurm job name of a submission: the step, a per-run number, the run (so `squeue` shows what
/// it is and every submission's name is unique, which is how a lost job id is found again).
pub(super) fn job_name(group: &str, seq: u32, run_id: &str) -> String {
    let group: String = group
        .chars()
        .map(|c| {
            if c.is_whitespace() || c == ',' {
                '_'
            } else {
                c
            }
        })
        .collect();
    format!("{group}.{seq}.{run_id}")
}

/// The highest submission number used in a run so far.
pub(super) fn last_submit_seq(f: &RunFold) -> u32 {
    f.steps
        .values()
        .flat_map(|s| &s.attempts)
        .filter_map(|a| {
            let name = a.submit_name.as_deref()?;
            let mut parts = name.rsplitn(3, '.');
            let _run = parts.next()?;
            parts.next()?.parse::<u32>().ok()
        })
        .max()
        .unwrap_or(0)
}

/// Grows `req` after an attempt ended with `class`: more memory after running out of it, more time
/// after a timeout, the failed node avoided. `facts` gives Slurm's values when the step named none.
pub(super) fn escalate(
    inst: &Instance,
    req: &mut SlurmRequest,
    class: &str,
    facts: Option<&JobFacts>,
) {
    let r = &inst.resources;
    match class {
        "oom" => {
            let base = req.mem_mb.or(r.mem_mb).or(facts.and_then(|f| f.mem_mb));
            if let Some(b) = base {
                req.mem_mb = Some((b as f64 * inst.slurm.mem_factor).ceil() as u64);
            }
        }
        "timeout" => {
            let base = req
                .time_s
                .or(r.time_s)
                .or(facts.and_then(|f| f.time_limit_s))
                .or(inst.timeout_s.map(|t| t.ceil() as u64));
            if let Some(b) = base {
                req.time_s = Some((b as f64 * inst.slurm.time_factor).ceil() as u64);
            }
        }
        "node_fail" => {
            if let Some(n) = facts.and_then(|f| f.nodes.clone())
                && !n.is_empty()
                && !req.exclude.contains(&n)
            {
                req.exclude.push(n);
            }
        }
        _ => {}
    }
}

/// What the next attempt of a step asks for, from the log: the last attempt's request, grown by
/// how it ended.
pub(super) fn next_request(inst: &Instance, s: &StepFold) -> SlurmRequest {
    let Some(last) = s.last_attempt() else {
        return SlurmRequest::default();
    };
    let mut req = last.request.clone().unwrap_or_default();
    if last.ended.is_some()
        && let Some(class) = &last.class
    {
        escalate(inst, &mut req, class, None);
    }
    req
}

/// A submission that did not reach Slurm and will be tried again (and how to say why).
fn submit_again(e: &SlurmError) -> bool {
    match e {
        SlurmError::SubmitLimit { .. } | SlurmError::Transient { .. } => true,
        // A parent ended between the decision and the call: the next pass sees its state.
        SlurmError::Failed { stderr, .. } => stderr.contains("Job dependency problem"),
        _ => false,
    }
}

/// Runs a Slurm call on a blocking thread: a slow controller must not stall the engine's async thread
/// (its timers, ends and control requests).
async fn off_thread<T: Send + 'static>(
    cmd: &str,
    call: impl FnOnce() -> Result<T, SlurmError> + Send + 'static,
) -> Result<T, SlurmError> {
    tokio::task::spawn_blocking(call).await.unwrap_or_else(|e| {
        Err(SlurmError::Spawn {
            cmd: cmd.into(),
            message: e.to_string(),
        })
    })
}

/// One attempt going into a submission.
struct Part {
    i: usize,
    spec: LaunchSpec,
    deps: Vec<String>,
}

impl Engine {
    /// Sends a cancel to whichever executor runs the attempt.
    pub(super) fn cancel_attempt(&self, i: usize, attempt: u32) {
        let name = &self.plan.instances[i].name;
        match (&self.slurm, self.slots[i].launch) {
            (Some(sl), Launch::Slurm) => sl.cancel(name, attempt),
            _ => self.exec.cancel(name, attempt),
        }
    }

    /// The SLURM executor, which `Engine::new` starts whenever a step needs it.
    fn slurm_executor(&self) -> Result<Arc<SlurmExecutor>> {
        self.slurm.clone().ok_or_else(|| {
            eyre!(
                "run {}: a Slurm step without the Slurm executor",
                self.run_id
            )
        })
    }

    /// Test hook (`SORTIE_FAULT=POINT:STEP`): dies like `kill -9` at a point of a submission.
    fn fault(&mut self, point: &str, steps: &[&str]) {
        let Ok(f) = std::env::var("SORTIE_FAULT") else {
            return;
        };
        if let Some((p, step)) = f.split_once(':')
            && p == point
            && steps.contains(&step)
        {
            let _ = self.log.sync();
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        }
    }

    /// Picks up a Slurm attempt a dead engine left: follows its job, finds the job by name when the
    /// id was never recorded, or submits the attempt again when no job exists.
    pub(super) async fn resume_slurm(&mut self, i: usize, a: AttemptFold) -> Result<()> {
        let name = self.plan.instances[i].name.clone();
        let sl = self.slurm_executor()?;
        let job = match (&a.job_id, &a.submit_name) {
            (Some(job), _) => Some(job.clone()),
            (None, Some(submit_name)) => {
                // squeue, then sacct: seconds on a busy controller, so off the engine's thread.
                let (sl2, wanted, since) = (sl.clone(), submit_name.clone(), self.created as i64);
                let found = off_thread("squeue", move || sl2.find_by_name(&wanted, since))
                    .await
                    .map_err(|e| {
                        eyre!(
                            "run {}: cannot ask Slurm whether {name} attempt {} (job name {submit_name}) \
                             was submitted: {e}; nothing was submitted, run `sortie resume {}` again",
                            self.run_id,
                            a.attempt,
                            self.run_id
                        )
                    })?;
                match found {
                    Some(base) => {
                        let job = match a.array_index {
                            Some(k) => format!("{base}_{k}"),
                            None => base,
                        };
                        self.emit(Event::JobSubmitted {
                            step: name.clone(),
                            attempt: a.attempt,
                            job_id: job.clone(),
                        })?;
                        Some(job)
                    }
                    None => None,
                }
            }
            (None, None) => None,
        };
        let slot = &mut self.slots[i];
        match job {
            Some(job) => {
                slot.running = Some(a.attempt);
                slot.started = Some(Instant::now());
                sl.track(
                    &name,
                    a.attempt,
                    &job,
                    Path::new(&a.dir),
                    self.done_tx.clone(),
                );
                self.progress.step(
                    StepState::Running,
                    &name,
                    &format!("following Slurm job {job}"),
                );
            }
            None => {
                // The intent is logged but no job exists: this attempt is submitted now, once.
                slot.resubmit = true;
                self.progress.step(
                    StepState::Pending,
                    &name,
                    "was never submitted; submitting it now",
                );
            }
        }
        Ok(())
    }

    /// Submits the ready Slurm steps: matrix instances on their first attempt together as arrays,
    /// the rest one job each.
    pub(super) async fn submit_slurm(&mut self, ready: Vec<(usize, Vec<String>)>) -> Result<()> {
        let mut arrays: BTreeMap<(String, Vec<String>), Vec<Part>> = BTreeMap::new();
        let mut singles = Vec::new();
        for (i, mut deps) in ready {
            let arrayable = self.plan.instances[i].slurm.array
                && self.step(i).attempt_number() == 0
                && !self.slots[i].resubmit;
            let Some(spec) = self.prepare(i).await? else {
                continue;
            };
            deps.sort();
            deps.dedup();
            let part = Part { i, spec, deps };
            if arrayable {
                let key = (self.plan.instances[i].group.clone(), part.deps.clone());
                arrays.entry(key).or_default().push(part);
            } else {
                singles.push(part);
            }
        }
        let max = self.slurm.as_ref().map_or(1001, |s| s.max_array_size());
        for (_, parts) in arrays {
            if parts.len() < 2 {
                singles.extend(parts);
                continue;
            }
            let mut parts = parts;
            while !parts.is_empty() {
                let rest = parts.split_off(parts.len().min(max));
                self.submit_array(parts).await?;
                parts = rest;
            }
        }
        for part in singles {
            self.submit_single(part).await?;
        }
        Ok(())
    }

    fn next_name(&mut self, group: &str) -> String {
        self.submit_seq += 1;
        job_name(group, self.submit_seq, &self.run_id)
    }

    /// Writes `command.sh` and `job.sh` into the attempt dir; returns `job.sh`'s path and the
    /// options that must go on sbatch's command line.
    fn write_job_files(
        &self,
        part: &Part,
        name: &str,
        element: bool,
    ) -> std::io::Result<(PathBuf, Vec<String>)> {
        let inst = &self.plan.instances[part.i];
        let spec = &part.spec;
        std::fs::write(spec.dir.join("command.sh"), &spec.script)?;
        let comment = format!(
            "sortie:{}:{}:{}",
            self.run_id,
            inst.name.replace(char::is_whitespace, "_"),
            spec.attempt
        );
        let (text, extra) = script::job_script(&JobScript {
            run_id: &self.run_id,
            step: &inst.name,
            attempt: spec.attempt,
            name,
            comment: &comment,
            dir: &spec.dir,
            workdir: &inst.workdir,
            env: &spec.env,
            resources: &inst.resources,
            request: &self.slots[part.i].request,
            timeout_s: inst.timeout_s,
            element,
        });
        let path = spec.dir.join("job.sh");
        std::fs::write(&path, text)?;
        Ok((path, extra))
    }

    /// The log's record of an attempt about to be submitted: started, and the job name it will have.
    fn record_intent(&mut self, part: &Part, name: &str, index: Option<u32>) -> Result<()> {
        let i = part.i;
        self.emit(Event::AttemptStarted {
            step: self.plan.instances[i].name.clone(),
            attempt: part.spec.attempt,
            host: self.host.clone(),
            pid: None,
            dir: part.spec.dir.to_string_lossy().into_owned(),
            cache_key: self.step(i).key.clone(),
            job_id: None,
            boot_id: None,
        })?;
        self.emit(Event::SubmitIntent {
            step: self.plan.instances[i].name.clone(),
            attempt: part.spec.attempt,
            name: name.to_string(),
            array_index: index,
            request: self.slots[i].request.clone(),
            after: part.deps.clone(),
        })
    }

    async fn submit_single(&mut self, part: Part) -> Result<()> {
        let group = self.plan.instances[part.i].group.clone();
        let name = self.next_name(&group);
        let (path, mut args) = match self.write_job_files(&part, &name, false) {
            Ok(x) => x,
            Err(e) => {
                let msg = format!(
                    "cannot write the batch script in {}: {e}",
                    part.spec.dir.display()
                );
                return self.fail_without_start(part.i, part.spec.attempt, msg);
            }
        };
        self.record_intent(&part, &name, None)?;
        let step = self.plan.instances[part.i].name.clone();
        self.fault("after_intent", &[&step]);
        args.extend(script::dependency_args(&part.deps));
        let result = self.sbatch(path, args, &name).await;
        self.after_submit(vec![(part, None)], result, &name)
    }

    async fn submit_array(&mut self, parts: Vec<Part>) -> Result<()> {
        let first = &self.plan.instances[parts[0].i];
        let (group, workdir) = (first.group.clone(), first.workdir.clone());
        let (resources, timeout_s, throttle) = (
            first.resources.clone(),
            first.timeout_s,
            first.slurm.throttle,
        );
        let request = self.slots[parts[0].i].request.clone();
        let deps = parts[0].deps.clone();
        let name = self.next_name(&group);
        let slurm_dir = self.run.path.join("slurm");
        let mut elements = Vec::with_capacity(parts.len());
        let mut written = Ok(());
        for (k, part) in parts.iter().enumerate() {
            if let Err(e) = self.write_job_files(part, &name, true) {
                written = Err(format!(
                    "cannot write the batch script in {}: {e}",
                    part.spec.dir.display()
                ));
                break;
            }
            elements.push(Element {
                index: k as u32,
                dir: part.spec.dir.clone(),
            });
        }
        let mut options = script::identity_options(
            &name,
            &format!("sortie:{}:{}:array", self.run_id, group),
            &slurm_dir.join(format!("{name}_%a.out")),
            &slurm_dir.join(format!("{name}_%a.err")),
            &workdir,
        );
        options.push(script::array_option(parts.len(), throttle));
        options.extend(script::resource_options(&resources, &request, timeout_s));
        let (driver, mut args) = script::array_driver(&options, &self.run_id, &group, &elements);
        let driver_path = slurm_dir.join(format!("{name}.sh"));
        let written = written.and_then(|()| {
            std::fs::create_dir_all(&slurm_dir)
                .and_then(|()| std::fs::write(&driver_path, driver))
                .map_err(|e| format!("cannot write {}: {e}", driver_path.display()))
        });
        if let Err(msg) = written {
            for part in parts {
                self.fail_without_start(part.i, part.spec.attempt, msg.clone())?;
            }
            return Ok(());
        }
        for (k, part) in parts.iter().enumerate() {
            self.record_intent(part, &name, Some(k as u32))?;
        }
        let steps: Vec<String> = parts
            .iter()
            .map(|p| self.plan.instances[p.i].name.clone())
            .collect();
        let refs: Vec<&str> = steps.iter().map(String::as_str).collect();
        self.fault("after_intent", &refs);
        args.extend(script::dependency_args(&deps));
        let result = self.sbatch(driver_path, args, &name).await;
        let parts = parts
            .into_iter()
            .enumerate()
            .map(|(k, p)| (p, Some(k as u32)))
            .collect();
        self.after_submit(parts, result, &name)
    }

    /// Runs sbatch off the engine's thread. An sbatch that timed out may still have made the job:
    /// it is looked up by name before anyone submits again.
    async fn sbatch(
        &self,
        script: PathBuf,
        args: Vec<String>,
        name: &str,
    ) -> std::result::Result<String, SlurmError> {
        let Some(sl) = self.slurm.clone() else {
            return Err(SlurmError::Spawn {
                cmd: "sbatch".into(),
                message: "the Slurm executor is not running".into(),
            });
        };
        let (name, since) = (name.to_string(), self.created as i64);
        off_thread("sbatch", move || match sl.submit(&script, &args) {
            Err(SlurmError::TimedOut { cmd, after }) => {
                for _ in 0..3 {
                    std::thread::sleep(Duration::from_secs(5));
                    if let Ok(Some(id)) = sl.find_by_name(&name, since) {
                        return Ok(id);
                    }
                }
                Err(SlurmError::Transient {
                    cmd,
                    message: format!("sbatch did not answer within {after:?} and made no job"),
                })
            }
            other => other,
        })
        .await
    }

    /// Records what sbatch answered for each attempt of a submission.
    fn after_submit(
        &mut self,
        parts: Vec<(Part, Option<u32>)>,
        result: std::result::Result<String, SlurmError>,
        name: &str,
    ) -> Result<()> {
        match result {
            Ok(id) => {
                let steps: Vec<String> = parts
                    .iter()
                    .map(|(p, _)| self.plan.instances[p.i].name.clone())
                    .collect();
                let refs: Vec<&str> = steps.iter().map(String::as_str).collect();
                self.fault("after_sbatch", &refs);
                let sl = self.slurm_executor()?;
                for (part, index) in parts {
                    let job = match index {
                        Some(k) => format!("{id}_{k}"),
                        None => id.clone(),
                    };
                    let step = self.plan.instances[part.i].name.clone();
                    self.emit(Event::JobSubmitted {
                        step: step.clone(),
                        attempt: part.spec.attempt,
                        job_id: job.clone(),
                    })?;
                    self.slots[part.i].resubmit = false;
                    self.mark_running(part.i, part.spec.attempt);
                    sl.track(
                        &step,
                        part.spec.attempt,
                        &job,
                        &part.spec.dir,
                        self.done_tx.clone(),
                    );
                }
                Ok(())
            }
            Err(e) if submit_again(&e) => {
                let why = format!(
                    "Slurm did not take job {name} ({e}); submitting again in {}s",
                    SUBMIT_AGAIN_AFTER.as_secs()
                );
                for (part, _) in parts {
                    let slot = &mut self.slots[part.i];
                    slot.resubmit = true;
                    self.set_state(part.i, StepState::Queued, Some(why.clone()), false)?;
                    self.slots[part.i].not_before = Some(Instant::now() + SUBMIT_AGAIN_AFTER);
                }
                Ok(())
            }
            Err(e) => {
                let why = format!("sbatch refused job {name}: {e}");
                for (part, _) in parts {
                    let slot = &mut self.slots[part.i];
                    slot.running = Some(part.spec.attempt);
                    let step = self.plan.instances[part.i].name.clone();
                    self.on_finished(Finished {
                        step,
                        attempt: part.spec.attempt,
                        outcome: Outcome::Lost(why.clone()),
                        facts: None,
                    })?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::pipeline::{Resources, SlurmStep};

    /// A Slurm step asking for 100 MB and 60 s, grown ×2 and ×1.5.
    pub(in crate::engine::scheduler) fn inst() -> Instance {
        Instance {
            name: "train[seed=0]".into(),
            group: "train".into(),
            params: Default::default(),
            run: "true".into(),
            setup: None,
            wrap: None,
            env: Default::default(),
            workdir: "/w".into(),
            inputs: vec![],
            outputs: vec![],
            needs: vec![],
            retries: 2,
            retry_backoff_s: 0.0,
            timeout_s: None,
            resources: Resources {
                mem_mb: Some(100),
                time_s: Some(60),
                ..Resources::default()
            },
            executor: crate::pipeline::ExecutorKind::Slurm,
            slurm: SlurmStep {
                mem_factor: 2.0,
                time_factor: 1.5,
                ..SlurmStep::default()
            },
        }
    }

    #[test]
    fn requests_grow_by_class() {
        let i = inst();
        let mut r = SlurmRequest::default();
        escalate(&i, &mut r, "oom", None);
        assert_eq!(r.mem_mb, Some(200));
        escalate(&i, &mut r, "oom", None);
        assert_eq!(r.mem_mb, Some(400));
        escalate(&i, &mut r, "timeout", None);
        assert_eq!(r.time_s, Some(90));
        let facts = JobFacts {
            nodes: Some("n7".into()),
            ..JobFacts::default()
        };
        escalate(&i, &mut r, "node_fail", Some(&facts));
        escalate(&i, &mut r, "node_fail", Some(&facts));
        assert_eq!(r.exclude, ["n7"]);
        // No memory named anywhere: Slurm's allocation is the base.
        let mut bare = inst();
        bare.resources.mem_mb = None;
        let mut r = SlurmRequest::default();
        escalate(&bare, &mut r, "oom", None);
        assert_eq!(r.mem_mb, None);
        let facts = JobFacts {
            mem_mb: Some(500),
            ..JobFacts::default()
        };
        escalate(&bare, &mut r, "oom", Some(&facts));
        assert_eq!(r.mem_mb, Some(1000));
    }

    #[test]
    fn job_names_are_unique_and_readable() {
        assert_eq!(job_name("train", 3, "abc123"), "train.3.abc123");
        assert_eq!(job_name("a b,c", 1, "r"), "a_b_c.1.r");
    }
}
