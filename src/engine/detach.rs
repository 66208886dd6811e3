//! Running an engine in the background, and steering a run from another process: the pieces both the
//! CLI and the TUI use.

use crate::runlog::control::{self, Request};
use crate::runlog::events::{Event, read_from};
use crate::runlog::{Project, RunDir, lease};
use color_eyre::eyre::{Result, WrapErr, eyre};
use std::path::Path;
use std::time::{Duration, Instant};

/// The project a run directory belongs to: `<root>/.sortie/runs/<id>`.
pub fn project_of(run: &RunDir) -> Project {
    let root = run
        .path
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    Project::new(root.to_path_buf())
}

/// Starts `sortie engine RUN_DIR` in a new session (no controlling terminal, so no SIGHUP when the SSH
/// session ends), its output in the run's `engine.log`. Waits until it holds the lease.
pub fn spawn_detached(run: &RunDir, jobs: Option<u32>, fail_fast: bool) -> Result<u32> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().wrap_err("cannot find the sortie executable")?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run.engine_log())
        .wrap_err_with(|| format!("cannot open {}", run.engine_log().display()))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("engine").arg(&run.path);
    if let Some(j) = jobs {
        cmd.arg("-j").arg(j.to_string());
    }
    if fail_fast {
        cmd.arg("--fail-fast");
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = cmd.spawn().wrap_err("cannot start the background engine")?;
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(l) = crate::runlog::lease::current(run)
            && l.pid == pid
        {
            // Reap it later from nobody: the engine outlives us; dropping the handle leaves it running.
            return Ok(pid);
        }
        if let Some(status) = child.try_wait()? {
            let tail = std::fs::read_to_string(run.engine_log()).unwrap_or_default();
            let last = tail.lines().last().unwrap_or("").to_string();
            return Err(eyre!(
                "the background engine exited at once ({status}): {last} (see {})",
                run.engine_log().display()
            ));
        }
        if Instant::now() > deadline {
            return Err(eyre!(
                "the background engine did not take the run's lease within 15 s (see {})",
                run.engine_log().display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for the engine's answer to request `id` in the run's log, reading from `from`. `None` if no
/// engine answered (it died, or none was alive) within `timeout`.
pub fn wait_answer(run: &RunDir, id: &str, from: u64, timeout: Duration) -> Option<(bool, String)> {
    let mut offset = from;
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(batch) = read_from(&run.events(), offset) {
            offset = batch.offset;
            for r in batch.records {
                if let Event::Request {
                    id: rid,
                    ok,
                    message,
                    ..
                } = r.event
                    && rid == id
                {
                    return Some((ok, message));
                }
            }
        }
        let alive = lease::current(run).is_some_and(|l| l.is_alive());
        if !alive || Instant::now() >= deadline {
            // One more look: it may have answered just before it stopped.
            let batch = read_from(&run.events(), offset).ok()?;
            return batch.records.into_iter().find_map(|r| match r.event {
                Event::Request {
                    id: rid,
                    ok,
                    message,
                    ..
                } if rid == id => Some((ok, message)),
                _ => None,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Size of the run's event log: answers to a request come after it.
pub fn log_len(run: &RunDir) -> u64 {
    std::fs::metadata(run.events())
        .map(|m| m.len())
        .unwrap_or(0)
}

/// Sends `request` to the run's engine and returns its answer. When no engine drives the run, starts one
/// in the background to answer it (and carry on). Used by the TUI, which must never drive a run itself.
pub fn steer_in_background(run: &RunDir, request: Request) -> Result<String> {
    let from = log_len(run);
    let id = control::submit(run, request)?;
    let live = lease::current(run).is_some_and(|l| l.is_alive());
    if !live {
        spawn_detached(run, None, false)?;
    }
    match wait_answer(run, &id, from, Duration::from_secs(30)) {
        Some((true, m)) => Ok(m),
        Some((false, m)) => Err(eyre!(m)),
        None => Err(eyre!(
            "the engine of run {} did not answer (see {})",
            run.id(),
            run.engine_log().display()
        )),
    }
}
