//! Control requests: how a CLI or TUI, on this or another login node, steers a run's engine. A request is a
//! small JSON file written under a temporary name and renamed into `control/` (`util::write_atomic`), so
//! the engine never reads a half-written one (the temporary names start with a dot and are skipped); the engine answers with a `request` event in the run's log and moves the file to
//! `control/done/`.

use super::RunDir;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Request {
    /// Cancel the whole run, or one step (an instance name, or a step name meaning all its instances).
    Cancel {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<String>,
    },
    /// Run the failed, blocked and cancelled steps again.
    Retry,
    /// Run a step again even if it succeeded, and with `downstream` everything that needs it.
    Rerun { step: String, downstream: bool },
}

impl Request {
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Cancel { .. } => "cancel",
            Request::Retry => "retry",
            Request::Rerun { .. } => "rerun",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Envelope {
    pub id: String,
    pub ts: f64,
    pub host: String,
    pub pid: u32,
    pub user: String,
    #[serde(flatten)]
    pub request: Request,
}

/// Drops a request for the engine. Returns its id, which the engine's answer event carries.
pub fn submit(run: &RunDir, request: Request) -> std::io::Result<String> {
    let dir = run.control_dir();
    std::fs::create_dir_all(&dir)?;
    let ts = crate::util::now();
    // Ids sort by time (and, within one process, by call order) so the engine handles requests in the
    // order they were made.
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 1000;
    let id = format!(
        "{:016}{seq:03}-{}",
        (ts * 1e6) as u64,
        std::iter::repeat_with(fastrand::alphanumeric)
            .take(6)
            .collect::<String>()
            .to_lowercase()
    );
    let env = Envelope {
        id: id.clone(),
        ts,
        host: crate::util::host(),
        pid: std::process::id(),
        user: crate::util::user(),
        request,
    };
    crate::util::write_atomic(
        &dir.join(format!("{id}.json")),
        &serde_json::to_vec_pretty(&env)?,
    )?;
    Ok(id)
}

/// A request file found in the control directory.
pub struct Pending {
    pub path: PathBuf,
    /// The parsed request, or why it could not be read.
    pub request: Result<Envelope, String>,
}

impl Pending {
    pub fn id(&self) -> String {
        self.path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// Requests waiting for the engine, oldest first.
pub fn pending(run: &RunDir) -> Vec<Pending> {
    let Ok(rd) = std::fs::read_dir(run.control_dir()) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let request = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| parse(&b));
            Pending { path, request }
        })
        .collect()
}

/// Reads a request file's bytes. Also the fuzzing entry point for request files.
pub fn parse(bytes: &[u8]) -> Result<Envelope, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

/// Moves a handled request out of the way.
pub fn done(run: &RunDir, p: &Pending) -> std::io::Result<()> {
    let done = run.control_dir().join("done");
    std::fs::create_dir_all(&done)?;
    let name = p.path.file_name().unwrap_or_default();
    std::fs::rename(&p.path, done.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submit_then_pending_then_done() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path().join("r"));
        let a = submit(&run, Request::Cancel { step: None }).unwrap();
        let b = submit(
            &run,
            Request::Rerun {
                step: "x".into(),
                downstream: true,
            },
        )
        .unwrap();
        std::fs::write(run.control_dir().join("zzz.json"), b"{broken").unwrap();
        // A submitter that died mid-write leaves only a temporary file, which is no request.
        let tmp = crate::util::temp_path(&run.control_dir().join("yyy.json"));
        std::fs::write(tmp, b"{\"id\":").unwrap();
        let p = pending(&run);
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].id(), a);
        assert_eq!(p[1].request.as_ref().unwrap().id, b);
        assert!(p[2].request.is_err());
        for x in &p {
            done(&run, x).unwrap();
        }
        assert!(pending(&run).is_empty());
    }
}
