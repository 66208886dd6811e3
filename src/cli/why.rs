//! `sortie why [STEP]`: for each step instance of the pipeline file, whether it would re-run now and why
//! (which input, param, env, command or upstream change), by comparing its cache manifest with the one of
//! its last success.

use super::{EXIT_OK, open_index};
use crate::engine::cache::{self, Manifest};
use crate::runlog::Project;
use crate::util::user_error;
use clap::Args;
use color_eyre::eyre::{Result, eyre};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct WhyArgs {
    /// A step or step instance (default: all).
    pub step: Option<String>,
    /// The pipeline file.
    #[arg(long, short = 'f', default_value = "sortie.toml")]
    pub file: PathBuf,
    #[arg(long)]
    pub json: bool,
}

pub fn why(project_arg: &Option<PathBuf>, a: WhyArgs) -> Result<i32> {
    let plan = crate::pipeline::load(&a.file).map_err(color_eyre::eyre::Report::new)?;
    if let Some(s) = &a.step
        && plan.group(s).is_none()
        && plan.instance(s).is_none()
    {
        return Err(user_error(format!(
            "{}: no step or step instance named {s:?}",
            a.file.display()
        )));
    }
    let project = match project_arg {
        Some(p) => Project::new(p.clone()),
        None => Project::new(plan.source.parent().unwrap_or(Path::new(".")).to_path_buf()),
    };
    let mut index = open_index(&project)?;
    index
        .sync_all(&project)
        .map_err(|e| eyre!("cannot update the index: {e}"))?;
    // Keys in topological order: an instance's key needs its upstream keys as they would be now.
    let mut keys: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    for inst in &plan.instances {
        let mut upstream = BTreeMap::new();
        for g in &inst.needs {
            if let Some(group) = plan.group(g) {
                for &j in &group.instances {
                    let n = &plan.instances[j].name;
                    if let Some(k) = keys.get(n) {
                        upstream.insert(n.clone(), k.clone());
                    }
                }
            }
        }
        let now: Manifest = cache::manifest(&mut index, inst, upstream).map_err(|e| eyre!(e))?;
        keys.insert(inst.name.clone(), now.key.clone());
        let selected = match &a.step {
            None => true,
            Some(s) => *s == inst.name || *s == inst.group,
        };
        if !selected {
            continue;
        }
        let mut reasons = Vec::new();
        let mut from = None;
        match index.last_success(&inst.name).map_err(|e| eyre!("{e}"))? {
            None => reasons.push("it never succeeded".to_string()),
            Some(prev) => {
                from = Some(prev.run.clone());
                for o in cache::unwritten_outputs(inst, &prev.dir) {
                    reasons.push(format!(
                        "output {o} predates its last success: the step did not write it"
                    ));
                }
                match cache::read_manifest(&prev.dir) {
                    Some(old) if old.key == now.key => {}
                    Some(old) => reasons.extend(cache::explain(&old, &now)),
                    None => reasons.push("its last success left no cache manifest".into()),
                }
            }
        }
        for o in cache::missing_outputs(inst) {
            reasons.push(format!("output {o} is missing"));
        }
        out.push((inst.name.clone(), reasons, from));
    }
    if a.json {
        let v: Vec<serde_json::Value> = out
            .iter()
            .map(|(n, r, f)| serde_json::json!({"step": n, "reruns": !r.is_empty(), "reasons": r, "last_success_run": f}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(EXIT_OK);
    }
    for (name, reasons, from) in out {
        if reasons.is_empty() {
            let from = from
                .map(|r| format!(" (result of run {r})"))
                .unwrap_or_default();
            println!("≡ {name}: up to date, would be cached{from}");
        } else {
            println!("▶ {name}: would run: {}", reasons.join("; "));
        }
    }
    Ok(EXIT_OK)
}
