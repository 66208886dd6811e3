//! Making a new run: its id, its directory, the frozen plan and the first event.

use crate::pipeline::Plan;
use crate::runlog::events::{Event, EventWriter, StepInfo};
use crate::runlog::{Project, RunDir, StepState};
use color_eyre::eyre::{Result, WrapErr};

/// Run ids are six characters, easy to type, starting with a letter; a prefix is enough on the command line.
fn new_run_id() -> String {
    const FIRST: &[u8] = b"abcdefghjkmnpqrstuvwxyz";
    const REST: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut id = String::with_capacity(6);
    id.push(FIRST[fastrand::usize(..FIRST.len())] as char);
    for _ in 0..5 {
        id.push(REST[fastrand::usize(..REST.len())] as char);
    }
    id
}

/// Which steps must run even when the cache has their result.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Force {
    #[default]
    None,
    All,
    /// Step or instance names.
    Steps(Vec<String>),
}

impl Force {
    pub fn covers(&self, instance: &str, group: &str) -> bool {
        match self {
            Force::None => false,
            Force::All => true,
            Force::Steps(v) => v.iter().any(|s| s == instance || s == group),
        }
    }
}

/// Creates the run directory with `plan.json`, a copy of the pipeline file and the `run_created` event.
/// It fails, creating nothing, when this host's index cannot be opened: the engine could not drive the
/// run, which would be left `running` with nobody behind it.
pub fn create_run(project: &Project, plan: &Plan, force: &Force) -> Result<RunDir> {
    crate::index::Index::open_project(project)
        .map_err(|e| e.into_report("cannot open the index"))?;
    let runs = project.runs_dir();
    std::fs::create_dir_all(&runs).wrap_err_with(|| format!("cannot create {}", runs.display()))?;
    let run = loop {
        let id = new_run_id();
        let rd = project.run_dir(&id);
        match std::fs::create_dir(&rd.path) {
            Ok(()) => break rd,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e).wrap_err_with(|| format!("cannot create {}", rd.path.display()));
            }
        }
    };
    // Complete or absent: the index and the TUI read a run's plan while it is being created.
    crate::util::write_atomic(&run.plan(), &serde_json::to_vec(plan)?)
        .wrap_err_with(|| format!("cannot write {}", run.plan().display()))?;
    if let Ok(text) = std::fs::read(&plan.source) {
        let _ = crate::util::write_atomic(&run.pipeline_copy(), &text);
    }
    let mut log = EventWriter::open(&run.events())?;
    log.append(Event::RunCreated {
        run: run.id(),
        pipeline: plan.name.clone(),
        file: plan.source.to_string_lossy().into_owned(),
        workdir: plan.workdir.to_string_lossy().into_owned(),
        host: crate::util::host(),
        user: crate::util::user(),
        steps: plan
            .instances
            .iter()
            .map(|i| StepInfo {
                name: i.name.clone(),
                group: i.group.clone(),
                params: i
                    .params
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                needs: i.needs.clone(),
            })
            .collect(),
    })?;
    for inst in &plan.instances {
        if force.covers(&inst.name, &inst.group) {
            log.append(Event::StepState {
                step: inst.name.clone(),
                state: StepState::Pending,
                reason: Some("--force".into()),
                force: true,
            })?;
        }
    }
    log.sync()?;
    Ok(run)
}

/// Reads a run's frozen plan.
pub fn load_plan(run: &RunDir) -> Result<Plan> {
    let bytes = std::fs::read(run.plan())
        .wrap_err_with(|| format!("cannot read {}", run.plan().display()))?;
    serde_json::from_slice(&bytes).wrap_err_with(|| format!("{} is damaged", run.plan().display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn run_ids_are_short_and_typeable() {
        for _ in 0..100 {
            let id = super::new_run_id();
            assert_eq!(id.len(), 6);
            assert!(id.chars().next().unwrap().is_ascii_lowercase());
            assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
        }
    }
}
