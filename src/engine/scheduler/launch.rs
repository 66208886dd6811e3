//! Launching: which ready steps go now, the cache decision, the attempt dir and its environment.
use super::{Engine, Launch};
use crate::engine::cache;
use crate::executor::{Finished, LaunchSpec, Outcome};
use crate::pipeline::Instance;
use crate::runlog::events::Event;
use crate::runlog::{RunDir, StepState};
use color_eyre::eyre::{Result, eyre};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

impl Engine {
    /// Blocks what can no longer run, cancels what must not, and launches what is ready.
    pub(super) async fn schedule(&mut self) -> Result<()> {
        let now = Instant::now();
        let mut for_slurm: Vec<(usize, Vec<String>)> = Vec::new();
        // This run's jobs in Slurm as the log knows them: submitted, their end not recorded yet. (The
        // monitor forgets a job the moment it sees it end, before the engine has recorded that end:
        // counting its list would let a submission into the log ahead of the end that made room.)
        let mut queued = self
            .slots
            .iter()
            .filter(|s| s.launch == Launch::Slurm && s.running.is_some())
            .count();
        for i in 0..self.slots.len() {
            if !matches!(self.state(i), StepState::Pending | StepState::Queued) {
                continue;
            }
            if self.cancelling || self.tripped {
                // Pending steps say why the run stopped: interrupted, terminated, or cancelled by request.
                let why = if self.cancelling {
                    format!("run {}", self.cancel_reason)
                } else {
                    "--fail-fast: another step failed".to_string()
                };
                self.set_state(i, StepState::Cancelled, Some(why), false)?;
                continue;
            }
            let mut waiting = false;
            let mut blocked_by = None;
            // A Slurm step may be submitted as soon as the Slurm jobs it needs are: afterok holds it.
            let mut after: Vec<String> = Vec::new();
            let eager = self.slots[i].launch == Launch::Slurm;
            'needs: for g in &self.plan.instances[i].needs {
                for &j in self.members.get(g).map(|v| v.as_slice()).unwrap_or(&[]) {
                    let sj = &self.slots[j];
                    let job = self.step(j).open_attempt().and_then(|a| a.job_id.clone());
                    match self.state(j) {
                        s if s.is_done_ok() => {}
                        StepState::Running
                            if eager
                                && sj.launch.holds_dependents()
                                && !sj.cancel_requested
                                && job.is_some() =>
                        {
                            after.extend(job);
                        }
                        StepState::Failed | StepState::Cancelled | StepState::Blocked => {
                            blocked_by = Some(j);
                            break 'needs;
                        }
                        _ => waiting = true,
                    }
                }
            }
            if let Some(j) = blocked_by {
                let why = format!("{} {}", self.plan.instances[j].name, self.state(j));
                self.set_state(i, StepState::Blocked, Some(why), false)?;
                continue;
            }
            if waiting || self.slots[i].not_before.is_some_and(|t| t > now) {
                continue;
            }
            match self.slots[i].launch {
                Launch::Slurm if queued < self.plan.slurm.max_queued as usize => {
                    queued += 1;
                    for_slurm.push((i, after));
                }
                Launch::Local if self.in_use + self.slots[i].weight <= self.parallel => {
                    self.launch(i).await?;
                }
                Launch::Slurm | Launch::Local => {}
            }
        }
        if !for_slurm.is_empty() {
            self.submit_slurm(for_slurm).await?;
        }
        self.show_status();
        Ok(())
    }

    pub(super) fn upstream_keys(&self, i: usize) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        for g in &self.plan.instances[i].needs {
            for &j in self.members.get(g).map(|v| v.as_slice()).unwrap_or(&[]) {
                if let Some(k) = &self.step(j).key {
                    m.insert(self.plan.instances[j].name.clone(), k.clone());
                }
            }
        }
        m
    }

    pub(super) fn upstream_dirs(&self, i: usize) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for g in &self.plan.instances[i].needs {
            let dirs: Vec<serde_json::Value> = self
                .members
                .get(g)
                .map(|v| v.as_slice())
                .unwrap_or(&[])
                .iter()
                .filter_map(|&j| {
                    // A Slurm parent still running (the child waits on it with afterok) will leave
                    // its result in its current attempt's dir.
                    if self.state(j) == StepState::Running
                        && self.slots[j].launch.holds_dependents()
                    {
                        let name = &self.plan.instances[j].name;
                        return Some(
                            self.run
                                .attempt_dir(name, self.step(j).attempt_number())
                                .to_string_lossy()
                                .into_owned(),
                        );
                    }
                    self.step(j).result_dir()
                })
                .map(serde_json::Value::String)
                .collect();
            m.insert(g.clone(), serde_json::Value::Array(dirs));
        }
        serde_json::Value::Object(m)
    }

    /// Decides the cache, then starts an attempt (or marks the step cached).
    pub(super) async fn launch(&mut self, i: usize) -> Result<()> {
        let Some(spec) = self.prepare(i).await? else {
            return Ok(());
        };
        let inst = self.plan.instances[i].clone();
        let (attempt, dir) = (spec.attempt, spec.dir.clone());
        let key = self.step(i).key.clone().unwrap_or_default();
        match self.exec.launch(spec, self.done_tx.clone()) {
            Ok(launched) => {
                let logged = self.emit(Event::AttemptStarted {
                    step: inst.name.clone(),
                    attempt,
                    host: self.host.clone(),
                    pid: launched.pid,
                    dir: dir.to_string_lossy().into_owned(),
                    cache_key: Some(key),
                    job_id: launched.job_id,
                    boot_id: crate::runlog::liveness::boot_id(),
                });
                // The command runs only once its attempt is in the log: an engine killed before this
                // line leaves a shell that exits unrun, never a step that runs twice.
                self.exec.release(&inst.name, attempt, logged.is_ok());
                logged?;
                self.mark_running(i, attempt);
                Ok(())
            }
            Err(e) => self.fail_without_start(i, attempt, e.to_string()),
        }
    }

    pub(super) fn mark_running(&mut self, i: usize, attempt: u32) {
        let name = self.plan.instances[i].name.clone();
        let slot = &mut self.slots[i];
        slot.running = Some(attempt);
        slot.started = Some(Instant::now());
        self.in_use += slot.weight;
        let detail = if attempt > 1 {
            format!("attempt {attempt}")
        } else {
            String::new()
        };
        self.progress.step(StepState::Running, &name, &detail);
    }

    /// Outputs of the Slurm steps `i` needs that are still running: `i` is submitted before they
    /// write them.
    pub(super) fn produced_upstream(&self, i: usize) -> Vec<(std::path::PathBuf, String)> {
        let mut out = Vec::new();
        for g in &self.plan.instances[i].needs {
            for &j in self.members.get(g).map(|v| v.as_slice()).unwrap_or(&[]) {
                if self.state(j) == StepState::Running {
                    let p = &self.plan.instances[j];
                    for o in &p.outputs {
                        out.push((p.workdir.join(o), p.name.clone()));
                    }
                }
            }
        }
        out
    }

    /// Decides the cache and makes the next attempt's dir; `None` when the step needs no attempt
    /// (a cache hit) or could not get one (it failed without starting).
    pub(super) async fn prepare(&mut self, i: usize) -> Result<Option<LaunchSpec>> {
        let inst = self.plan.instances[i].clone();
        if self.slots[i].resubmit {
            // Same attempt, same dir, same key: only the submission is new.
            let attempt = self.step(i).attempt_number();
            let dir = self.run.attempt_dir(&inst.name, attempt);
            let needs = self.upstream_dirs(i);
            return Ok(Some(self.spec(&inst, attempt, dir, &needs)));
        }
        let upstream = self.upstream_keys(i);
        let force = self.step(i).force;
        let produced = self.produced_upstream(i);
        let decided = if inst.inputs.is_empty() {
            // Nothing to hash: no need for the index thread.
            cache::manifest_with(&inst, upstream, &[], &mut |_| Err("no inputs".into()))
                .map(|m| self.decide(&inst, m, force))
        } else {
            let inst2 = inst.clone();
            let m = self
                .index
                .call(move |ix| cache::manifest_produced(ix, &inst2, upstream, &produced))
                .await
                .ok_or_else(|| eyre!("the index thread stopped"))?;
            m.map(|m| self.decide(&inst, m, force))
        };
        let (manifest, hit) = match decided {
            Ok(x) => x,
            Err(_) if self.interrupt.load(std::sync::atomic::Ordering::Relaxed) => return Ok(None),
            Err(msg) => {
                // It counts against the retries like any failure (else it would be retried for ever).
                let attempt = self.step(i).attempt_number() + 1;
                self.fail_without_start(i, attempt, msg)?;
                return Ok(None);
            }
        };
        let key = manifest.key.clone();
        match hit {
            CacheDecision::Hit(dir) => {
                self.emit(Event::Cache {
                    step: inst.name.clone(),
                    key,
                    hit: true,
                    from: Some(dir),
                    reason: "same key as an earlier success, outputs present".into(),
                })?;
                self.set_state(i, StepState::Cached, None, false)?;
                return Ok(None);
            }
            CacheDecision::Miss(reason) => self.emit(Event::Cache {
                step: inst.name.clone(),
                key: key.clone(),
                hit: false,
                from: None,
                reason,
            })?,
        }
        // Its number, and its place in the round, are the log's once it starts.
        let attempt = self.step(i).attempt_number() + 1;
        self.slots[i].cancel_requested = false;
        let dir = self.run.attempt_dir(&inst.name, attempt);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            self.fail_without_start(i, attempt, format!("cannot create {}: {e}", dir.display()))?;
            return Ok(None);
        }
        let _ = cache::write_manifest(&dir, &manifest);
        let needs = self.upstream_dirs(i);
        if !inst.needs.is_empty() {
            let _ = crate::util::write_atomic(
                &dir.join(crate::runlog::paths::NEEDS_FILE),
                needs.to_string().as_bytes(),
            );
        }
        let spec = self.spec(&inst, attempt, dir, &needs);
        if !self.made_dirs.contains(&inst.workdir)
            && let Err(e) = std::fs::create_dir_all(&inst.workdir)
        {
            self.fail_without_start(
                i,
                attempt,
                format!("cannot create workdir {}: {e}", inst.workdir.display()),
            )?;
            return Ok(None);
        }
        self.made_dirs.insert(inst.workdir.clone());
        Ok(Some(spec))
    }

    /// What an executor needs to start attempt `attempt` of `inst` in `dir`.
    fn spec(
        &self,
        inst: &Instance,
        attempt: u32,
        dir: std::path::PathBuf,
        needs: &serde_json::Value,
    ) -> LaunchSpec {
        LaunchSpec {
            run_id: self.run_id.clone(),
            step: inst.name.clone(),
            attempt,
            script: inst.script(),
            env: step_env(&self.run, inst, attempt, &dir, needs),
            workdir: inst.workdir.clone(),
            dir,
            timeout: inst.timeout_s.map(Duration::from_secs_f64),
        }
    }

    /// A step that could not even start fails (and is retried like any failure).
    pub(super) fn fail_without_start(&mut self, i: usize, attempt: u32, msg: String) -> Result<()> {
        let name = self.plan.instances[i].name.clone();
        self.emit(Event::AttemptStarted {
            step: name.clone(),
            attempt,
            host: self.host.clone(),
            pid: None,
            dir: self
                .run
                .attempt_dir(&name, attempt)
                .to_string_lossy()
                .into_owned(),
            cache_key: self.step(i).key.clone(),
            job_id: None,
            boot_id: None,
        })?;
        self.slots[i].running = Some(attempt);
        self.in_use += self.slots[i].weight;
        self.on_finished(Finished {
            step: name,
            attempt,
            outcome: Outcome::Lost(msg),
            facts: None,
        })
    }
}

enum CacheDecision {
    /// Reuse the result in this attempt dir.
    Hit(String),
    /// Run it, for this reason.
    Miss(String),
}

impl Engine {
    /// Looks for an earlier success with the same key whose outputs still exist.
    fn decide(
        &self,
        inst: &Instance,
        m: cache::Manifest,
        force: bool,
    ) -> (cache::Manifest, CacheDecision) {
        if force {
            return (m, CacheDecision::Miss("forced".into()));
        }
        if let Some(dir) = self.known.get(&m.key) {
            let missing = cache::missing_outputs(inst);
            let unwritten = cache::unwritten_outputs(inst, std::path::Path::new(dir));
            let reason = if !missing.is_empty() {
                format!("output {} is missing", missing.join(", "))
            } else if !unwritten.is_empty() {
                format!(
                    "output {} predates the attempt it would come from: the step did not write it",
                    unwritten.join(", ")
                )
            } else {
                return (m, CacheDecision::Hit(dir.clone()));
            };
            return (m, CacheDecision::Miss(reason));
        }
        let reason = match self.last_ok.get(&inst.name) {
            None => "no earlier success".to_string(),
            Some(dir) => match cache::read_manifest(std::path::Path::new(dir)) {
                Some(old) => {
                    let why = cache::explain(&old, &m);
                    if why.is_empty() {
                        "the cache key changed".into()
                    } else {
                        why.join("; ")
                    }
                }
                None => "the earlier success left no cache manifest".into(),
            },
        };
        (m, CacheDecision::Miss(reason))
    }
}

/// The environment a step sees on top of the inherited one.
fn step_env(
    run: &RunDir,
    inst: &Instance,
    attempt: u32,
    dir: &std::path::Path,
    needs: &serde_json::Value,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = inst
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let d = dir.to_string_lossy().into_owned();
    env.push(("SORTIE_RUN_ID".into(), run.id()));
    env.push((
        "SORTIE_RUN_DIR".into(),
        run.path.to_string_lossy().into_owned(),
    ));
    env.push(("SORTIE_STEP".into(), inst.name.clone()));
    env.push(("SORTIE_STEP_NAME".into(), inst.group.clone()));
    env.push(("SORTIE_ATTEMPT".into(), attempt.to_string()));
    env.push(("SORTIE_STEP_DIR".into(), d.clone()));
    env.push((
        "SORTIE_METRICS".into(),
        dir.join(crate::runlog::paths::METRICS_FILE)
            .to_string_lossy()
            .into_owned(),
    ));
    let params: serde_json::Map<String, serde_json::Value> = inst
        .params
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    env.push((
        "SORTIE_PARAMS".into(),
        serde_json::Value::Object(params).to_string(),
    ));
    for (k, v) in &inst.params {
        let name: String = k
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        let value = match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        env.push((format!("SORTIE_PARAM_{name}"), value));
    }
    env.push(("SORTIE_NEEDS".into(), needs.to_string()));
    env
}
