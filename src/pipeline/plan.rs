//! The expanded pipeline: what the engine runs. Produced by [`super::load`] from a `sortie.toml`, saved
//! as `plan.json` in each run directory so a run never depends on the pipeline file changing later.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ExecutorKind {
    #[default]
    Local,
    Slurm,
}

impl ExecutorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutorKind::Local => "local",
            ExecutorKind::Slurm => "slurm",
        }
    }
}

/// Resources a step asks for. The local executor honours `cpus` (slots of its concurrency); the SLURM
/// executor turns all of them into `#SBATCH` lines.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Memory in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_mb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
    /// Wall-time limit in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<String>,
    /// Extra sbatch arguments, passed as they are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sbatch: Vec<String>,
}

/// How a step uses Slurm beyond its resources (`slurm = { ... }` on a step or in `[defaults]`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SlurmStep {
    /// Ready instances of a matrix step go to Slurm as one job array.
    pub array: bool,
    /// At most this many elements of an array run at once (`--array=...%N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<u32>,
    /// Memory of the next attempt after an out-of-memory end (OUT_OF_MEMORY or exit 137).
    pub mem_factor: f64,
    /// Time limit of the next attempt after a TIMEOUT.
    pub time_factor: f64,
}

impl Default for SlurmStep {
    fn default() -> Self {
        SlurmStep {
            array: true,
            throttle: None,
            mem_factor: 2.0,
            time_factor: 1.5,
        }
    }
}

/// The pipeline's `[slurm]` table.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SlurmSettings {
    /// Jobs of the run in Slurm (pending or running) at once.
    pub max_queued: u32,
    /// How long a finished job's exit file may take to appear (NFS) before the attempt counts as lost.
    pub nfs_grace_s: f64,
    /// The engine's own Slurm queries per minute (squeue, sacct); never exceeded.
    pub poll_budget: u32,
}

impl Default for SlurmSettings {
    fn default() -> Self {
        SlurmSettings {
            max_queued: 1000,
            nfs_grace_s: 60.0,
            poll_budget: 6,
        }
    }
}

/// One runnable step instance (a plain step, or one cell of a matrix).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Instance {
    /// `train[dataset=cora,seed=0]`, or the group name for a step without a matrix.
    pub name: String,
    /// The `[[step]]` name this instance comes from.
    pub group: String,
    /// Matrix values, in the order the matrix keys were written.
    #[serde(default)]
    pub params: IndexMap<String, serde_json::Value>,
    /// The `run` command after `{{param}}` substitution (values shell-quoted).
    pub run: String,
    /// Shell lines run before the command (`module load cuda`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<String>,
    /// A command prefix the step runs under (`pixi run`, `apptainer exec image.sif`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrap: Option<String>,
    /// `[env]` merged with the step's `env` (the step wins), values after substitution.
    #[serde(default)]
    pub env: IndexMap<String, String>,
    /// Absolute working directory.
    pub workdir: PathBuf,
    /// Input globs (relative to `workdir`), after substitution.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Output paths (relative to `workdir`), after substitution.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// Names of the `[[step]]` groups this instance needs (it waits for every instance of each).
    #[serde(default)]
    pub needs: Vec<String>,
    /// Retries after the first attempt.
    #[serde(default)]
    pub retries: u32,
    /// First retry delay in seconds; doubles on each later retry.
    #[serde(default)]
    pub retry_backoff_s: f64,
    /// Kill the attempt after this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
    #[serde(default)]
    pub resources: Resources,
    #[serde(default)]
    pub executor: ExecutorKind,
    #[serde(default)]
    pub slurm: SlurmStep,
}

impl Instance {
    /// The bash script an executor runs for this instance: `setup`, then the command, under `wrap` when
    /// one is given. The caller runs it with `bash -e -o pipefail`.
    pub fn script(&self) -> String {
        let mut s = String::new();
        if let Some(setup) = &self.setup {
            s.push_str(setup);
            if !setup.ends_with('\n') {
                s.push('\n');
            }
        }
        match &self.wrap {
            Some(wrap) => {
                let quoted = shlex::try_quote(&self.run)
                    .map(|q| q.into_owned())
                    .unwrap_or_else(|_| format!("'{}'", self.run.replace('\'', r"'\''")));
                s.push_str(&format!("{wrap} bash -e -o pipefail -c {quoted}\n"));
            }
            None => {
                s.push_str(&self.run);
                if !self.run.ends_with('\n') {
                    s.push('\n');
                }
            }
        }
        s
    }
}

/// A `[[step]]` group and its instances.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Group {
    pub name: String,
    pub needs: Vec<String>,
    /// Indices into [`Plan::instances`].
    pub instances: Vec<usize>,
    /// Whether the group has a matrix (even a one-cell one).
    #[serde(default)]
    pub is_matrix: bool,
}

/// The whole expanded pipeline.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Plan {
    pub name: String,
    /// The pipeline file (absolute).
    pub source: PathBuf,
    /// Absolute default working directory.
    pub workdir: PathBuf,
    pub executor: ExecutorKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<usize>,
    #[serde(default)]
    pub slurm: SlurmSettings,
    /// Groups in topological order (each after everything it needs; file order among equals).
    pub groups: Vec<Group>,
    /// All instances, grouped and in the groups' order.
    pub instances: Vec<Instance>,
    /// What `check` and `run` point out without refusing (outputs outside the project).
    #[serde(default, skip)]
    pub warnings: Vec<super::Diagnostic>,
}

impl Plan {
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    pub fn instance(&self, name: &str) -> Option<&Instance> {
        self.instances.iter().find(|i| i.name == name)
    }

    /// Names of the groups that need `group`, directly or through others.
    pub fn downstream_groups(&self, group: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut frontier = vec![group.to_string()];
        while let Some(g) = frontier.pop() {
            for other in &self.groups {
                if other.needs.contains(&g) && !out.contains(&other.name) {
                    out.push(other.name.clone());
                    frontier.push(other.name.clone());
                }
            }
        }
        out
    }
}
