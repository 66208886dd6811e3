//! Cache keys: what a step's result depends on. The key hashes the command after substitution (with setup
//! and wrap), the environment the pipeline sets, the params, the contents of the inputs and the keys of the
//! steps it needs. The parts are kept as a manifest in the attempt dir so `sortie why` can say which one
//! changed.

use crate::index::Index;
use crate::pipeline::Instance;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Manifest {
    pub key: String,
    /// The script that runs (setup, wrap and command).
    pub script: String,
    /// Environment the pipeline sets, as value hashes so secrets never land in files.
    pub env: BTreeMap<String, String>,
    pub params: BTreeMap<String, serde_json::Value>,
    /// Input file (relative to the workdir) → content hash. A pattern matching nothing is kept with "".
    pub inputs: BTreeMap<String, String>,
    /// Needed step instance → its key.
    pub upstream: BTreeMap<String, String>,
}

fn short_hash(s: &str) -> String {
    blake3::hash(s.as_bytes()).to_hex()[..16].to_string()
}

/// Files an input pattern stands for: a glob, expanded relative to the workdir; a directory means every file
/// below it.
fn expand_input(workdir: &Path, pattern: &str) -> Vec<PathBuf> {
    let full = workdir.join(pattern);
    let mut out = Vec::new();
    let Ok(paths) = glob::glob(&full.to_string_lossy()) else {
        return out;
    };
    for p in paths.flatten() {
        if p.is_dir() {
            walk(&p, &mut out);
        } else {
            out.push(p);
        }
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Computes the manifest and key of an instance. Input files are hashed through the index's hash cache, so
/// a step with inputs runs this on the index thread.
pub fn manifest(
    index: &mut Index,
    inst: &Instance,
    upstream: BTreeMap<String, String>,
) -> Result<Manifest, String> {
    manifest_produced(index, inst, upstream, &[])
}

/// [`manifest`] for a step submitted while steps it needs still run (SLURM dependencies): an input
/// that one of them will write (`produced`: absolute output path → producing instance) stands for
/// that producer's result, which its key in `upstream` already covers, instead of the file's current
/// (stale) contents.
pub fn manifest_produced(
    index: &mut Index,
    inst: &Instance,
    upstream: BTreeMap<String, String>,
    produced: &[(PathBuf, String)],
) -> Result<Manifest, String> {
    manifest_with(inst, upstream, produced, &mut |f| {
        index
            .hash_file(f)
            .map_err(|e| format!("cannot hash input {}: {e}", f.display()))
    })
}

/// [`manifest`] with the file hasher passed in; a step without inputs never calls it, so the engine
/// computes those keys on its own thread.
pub fn manifest_with(
    inst: &Instance,
    upstream: BTreeMap<String, String>,
    produced: &[(PathBuf, String)],
    hash: &mut dyn FnMut(&Path) -> Result<String, String>,
) -> Result<Manifest, String> {
    let mut m = Manifest {
        script: inst.script(),
        env: inst
            .env
            .iter()
            .map(|(k, v)| (k.clone(), short_hash(v)))
            .collect(),
        params: inst
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        upstream,
        ..Default::default()
    };
    for pattern in &inst.inputs {
        let full = inst.workdir.join(pattern);
        let pat = glob::Pattern::new(&full.to_string_lossy()).ok();
        if let Some((_, by)) = produced
            .iter()
            .find(|(out, _)| *out == full || pat.as_ref().is_some_and(|p| p.matches_path(out)))
        {
            m.inputs
                .insert(pattern.clone(), format!("written by {by} (still running)"));
            continue;
        }
        let files = expand_input(&inst.workdir, pattern);
        if files.is_empty() {
            m.inputs.insert(pattern.clone(), String::new());
        }
        for f in files {
            let rel = f
                .strip_prefix(&inst.workdir)
                .unwrap_or(&f)
                .to_string_lossy()
                .into_owned();
            // A glob or a directory can match a FIFO or a device, which hashing would read for ever.
            if let Some(kind) = crate::pipeline::inputs::special_kind(&f) {
                return Err(crate::pipeline::inputs::refusal(&rel, kind));
            }
            let h = hash(&f)?;
            m.inputs.insert(rel, h);
        }
    }
    let body = serde_json::to_vec(&(&m.script, &m.env, &m.params, &m.inputs, &m.upstream))
        .map_err(|e| e.to_string())?;
    m.key = blake3::hash(&body).to_hex()[..32].to_string();
    Ok(m)
}

/// A flag that turns true at the first SIGINT or SIGTERM, for [`Index::set_interrupt`]: hashing a
/// large input runs on the index thread while the engine's own loop (which reacts to signals) waits
/// for it, so the hash must stop by itself. Listening here does not take the signal from the engine.
pub fn interrupt_on_signals() -> std::io::Result<Arc<AtomicBool>> {
    use tokio::signal::unix::{SignalKind, signal};
    let flag = Arc::new(AtomicBool::new(false));
    let (mut int, mut term) = (
        signal(SignalKind::interrupt())?,
        signal(SignalKind::terminate())?,
    );
    let set = flag.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        set.store(true, Ordering::Relaxed);
    });
    Ok(flag)
}

/// Outputs that do not exist (a cached result is only used when all of them do).
pub fn missing_outputs(inst: &Instance) -> Vec<String> {
    inst.outputs
        .iter()
        .filter(|o| !inst.workdir.join(o).exists())
        .cloned()
        .collect()
}

/// How much older than its attempt an output may look and still count as written by it: clocks of
/// a file server and of this host differ a little.
const CLOCK_SLACK_S: f64 = 2.0;

/// Regular-file outputs older than the attempt in `result_dir` (its manifest is written just before
/// it starts): that attempt did not write them (`outputs = ["/etc/passwd"]`), so they prove nothing
/// about its result. Directories are not judged: rewriting a file inside one leaves its mtime alone.
pub fn unwritten_outputs(inst: &Instance, result_dir: &Path) -> Vec<String> {
    let mtime = |p: &Path| -> Option<f64> {
        let t = std::fs::metadata(p).ok()?.modified().ok()?;
        Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64())
    };
    let Some(started) = mtime(&result_dir.join(crate::runlog::paths::CACHE_MANIFEST_FILE)) else {
        return Vec::new();
    };
    inst.outputs
        .iter()
        .filter(|o| {
            let p = inst.workdir.join(o);
            p.is_file() && mtime(&p).is_some_and(|t| t + CLOCK_SLACK_S < started)
        })
        .cloned()
        .collect()
}

pub fn write_manifest(dir: &Path, m: &Manifest) -> std::io::Result<()> {
    // Read by `why`, `status` and later runs' cache decisions: whole or not at all.
    crate::util::write_atomic(
        &dir.join(crate::runlog::paths::CACHE_MANIFEST_FILE),
        &serde_json::to_vec_pretty(m)?,
    )
}

pub fn read_manifest(dir: &Path) -> Option<Manifest> {
    let b = std::fs::read(dir.join(crate::runlog::paths::CACHE_MANIFEST_FILE)).ok()?;
    serde_json::from_slice(&b).ok()
}

fn diff_maps<V: PartialEq>(
    what: &str,
    old: &BTreeMap<String, V>,
    new: &BTreeMap<String, V>,
    out: &mut Vec<String>,
) {
    for (k, v) in new {
        match old.get(k) {
            None => out.push(format!("{what} {k} is new")),
            Some(o) if o != v => out.push(format!("{what} {k} changed")),
            _ => {}
        }
    }
    for k in old.keys() {
        if !new.contains_key(k) {
            out.push(format!("{what} {k} was removed"));
        }
    }
}

/// Why `new` would not reuse the result recorded by `old`, one reason a line. Empty means it would.
pub fn explain(old: &Manifest, new: &Manifest) -> Vec<String> {
    let mut out = Vec::new();
    if old.script != new.script {
        out.push("the command changed".to_string());
    }
    diff_maps("param", &old.params, &new.params, &mut out);
    diff_maps("env", &old.env, &new.env, &mut out);
    diff_maps("input", &old.inputs, &new.inputs, &mut out);
    diff_maps("upstream step", &old.upstream, &new.upstream, &mut out);
    if out.is_empty() && old.key != new.key {
        out.push("the cache key changed".to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(script: &str) -> Manifest {
        Manifest {
            key: short_hash(script),
            script: script.into(),
            ..Default::default()
        }
    }

    #[test]
    fn explain_names_each_change() {
        let a = m("echo 1");
        let mut b = m("echo 2");
        b.inputs.insert("data.csv".into(), "abc".into());
        let why = explain(&a, &b);
        assert!(why.contains(&"the command changed".to_string()));
        assert!(why.contains(&"input data.csv is new".to_string()));
        assert!(explain(&a, &a).is_empty());
    }
}
