//! Whether an attempt no engine watches still runs, and how it ended: the one place that says it, for the
//! engine that adopts an attempt (resume), and through `index::unattended` for `sortie status` and the
//! TUI.
//!
//! Three witnesses, in order: the exit-code file (the step's own shell wrote how it ended); on the host
//! and boot that started the attempt, the process table (its process group); anywhere else, the heartbeat
//! file the engine's beater (`executor::beater`, one process per engine) rewrites every few seconds. An attempt on another host is alive while its
//! heartbeat is fresher than the grace, and lost after; on the same host name with another boot id the
//! machine rebooted, so its processes are surely gone.

use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// The heartbeat file in an attempt dir: one JSON line, replaced (temp file + rename) every beat.
pub const HEARTBEAT_FILE: &str = "heartbeat";
/// Dropped into an attempt dir by an engine on another host to cancel it: the beater of the step's host
/// sees it and terminates the step's process group (a process on another host cannot be signalled).
pub const CANCEL_FILE: &str = "cancel";
/// Seconds a heartbeat may be old before its attempt is taken as lost.
pub const GRACE_VAR: &str = "SORTIE_HEARTBEAT_GRACE";
/// NFS caches file attributes for up to `acregmax` (60 s by default), so another host may see a
/// heartbeat's mtime that late; twice that leaves room for the beat interval and a slow server.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(120);

/// The grace from `SORTIE_HEARTBEAT_GRACE`, or the default. A value that is not a positive number of
/// seconds is refused, never silently replaced.
pub fn heartbeat_grace() -> Result<Duration, String> {
    parse_grace(std::env::var(GRACE_VAR).ok().as_deref())
}

fn parse_grace(value: Option<&str>) -> Result<Duration, String> {
    match value {
        None => Ok(DEFAULT_GRACE),
        Some(v) => v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| {
                format!("{GRACE_VAR}={v:?}: expected a positive number of seconds (default 120)")
            }),
    }
}

/// How often the beater beats: eight beats per grace, at most every 5 s (a beat is one small file per
/// running step).
pub fn beat_interval(grace: Duration) -> Duration {
    (grace / 8).clamp(Duration::from_millis(200), Duration::from_secs(5))
}

/// This machine's boot id: it changes at every boot, so a recorded one that differs means a reboot.
/// Read once per process (the engine records it with every attempt).
pub fn boot_id() -> Option<String> {
    static ID: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        Some(id.trim().to_string()).filter(|s| !s.is_empty())
    })
    .clone()
}

/// What the beater writes in the heartbeat file.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Heartbeat {
    pub host: String,
    #[serde(default)]
    pub boot_id: Option<String>,
    pub pid: u32,
    pub pgid: u32,
    /// Unix seconds when it was written (the writer's clock).
    pub time: f64,
}

/// Renews the heartbeat of the attempt in `dir` whose shell (and process group) is `pid`, as this host
/// sees it now. Temp file + rename: a reader on any host sees a whole line, and two beaters of one
/// attempt (an engine's and the one of the engine that resumed it) never share a temp file.
pub fn write_heartbeat(dir: &Path, pid: u32) -> std::io::Result<()> {
    let beat = Heartbeat {
        host: crate::util::host(),
        boot_id: boot_id(),
        pid,
        pgid: pid,
        time: crate::util::now(),
    };
    let mut line = serde_json::to_vec(&beat).map_err(std::io::Error::other)?;
    line.push(b'\n');
    crate::util::write_atomic(&dir.join(HEARTBEAT_FILE), &line)
}

/// The heartbeat of an attempt and when it was last renewed: the newer of the time written inside and the
/// file's mtime (either may lag: a skewed clock on the writer, cached attributes on NFS).
pub fn read_heartbeat(dir: &Path) -> Option<(Heartbeat, f64)> {
    let path = dir.join(HEARTBEAT_FILE);
    let hb: Heartbeat = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    let at = mtime(&path).map_or(hb.time, |m| m.max(hb.time));
    Some((hb, at))
}

fn mtime(path: &Path) -> Option<f64> {
    let t = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64())
}

/// What the exit-code file says: a number written by the step's shell, `signal:N` when a signal ended
/// it, `timeout` when the engine stopped it at its time limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ExitRecord {
    Exited(i32),
    Signaled(i32),
    TimedOut,
}

pub fn read_exit_code(dir: &Path) -> Option<ExitRecord> {
    let text = std::fs::read_to_string(dir.join(super::paths::EXIT_CODE_FILE)).ok()?;
    let t = text.trim();
    if let Some(sig) = t.strip_prefix("signal:") {
        return sig.parse().ok().map(ExitRecord::Signaled);
    }
    if t == "timeout" {
        return Some(ExitRecord::TimedOut);
    }
    t.parse().ok().map(ExitRecord::Exited)
}

/// Whether any live process is in process group `pgid` on this host.
pub fn group_running(pgid: u32) -> bool {
    let Ok(p) = i32::try_from(pgid) else {
        return false;
    };
    !matches!(
        nix::sys::signal::killpg(nix::unistd::Pid::from_raw(p), None),
        Err(nix::errno::Errno::ESRCH)
    ) && super::lease::group_alive(pgid)
}

/// The facts about an attempt that decide its liveness (from the event log or the index).
#[derive(Clone, Copy, Debug)]
pub struct AttemptRef<'a> {
    pub dir: &'a Path,
    /// The host whose engine started it.
    pub host: &'a str,
    /// That host's boot id then, when recorded.
    pub boot_id: Option<&'a str>,
    /// The step's shell, which leads its process group.
    pub pid: Option<u32>,
    pub started: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Liveness {
    /// The exit-code file says how it ended (and when the file was written).
    Ended { exit: ExitRecord, at: Option<f64> },
    /// Still runs. `heartbeat` is when its heartbeat was last renewed, for an attempt of another host
    /// (`None`: this host's process table says so, or its first beat is not written yet).
    Alive {
        host: String,
        heartbeat: Option<f64>,
    },
    /// Gone without an exit code.
    Lost(String),
    /// Nothing here tells (an attempt without a process of its own, such as a Slurm job that has not
    /// written its sentinel yet: Slurm is its witness).
    Unknown,
}

/// The liveness of an attempt as seen from this host now.
pub fn liveness(a: &AttemptRef, grace: Duration) -> Liveness {
    if let Some(exit) = read_exit_code(a.dir) {
        let at = mtime(&a.dir.join(super::paths::EXIT_CODE_FILE));
        return Liveness::Ended { exit, at };
    }
    let beat = read_heartbeat(a.dir);
    let here = crate::util::host();
    // The boot the attempt started in: recorded with it, else the one its heartbeat names.
    let started_boot = a
        .boot_id
        .map(str::to_string)
        .or_else(|| beat.as_ref().and_then(|(h, _)| h.boot_id.clone()));
    if a.host == here {
        if let (Some(then), Some(now)) = (started_boot, boot_id())
            && then != now
        {
            return Liveness::Lost(format!(
                "{here} rebooted since the attempt started (its boot id changed): its processes are gone"
            ));
        }
        return match a.pid {
            Some(p) if group_running(p) => Liveness::Alive {
                host: a.host.to_string(),
                heartbeat: None,
            },
            Some(_) => Liveness::Lost("the process ended while no engine watched it".into()),
            None if beat.is_some() => {
                Liveness::Lost("the process ended while no engine watched it".into())
            }
            None => Liveness::Unknown,
        };
    }
    let now = crate::util::now();
    match beat {
        Some((_, at)) if now - at < grace.as_secs_f64() => Liveness::Alive {
            host: a.host.to_string(),
            heartbeat: Some(at),
        },
        Some((_, at)) => Liveness::Lost(format!(
            "no heartbeat from {} for {:.0} s (grace {:.0} s, {GRACE_VAR}): its process is taken as gone",
            a.host,
            now - at,
            grace.as_secs_f64()
        )),
        // Not written yet, or an attempt from before heartbeats: the start counts as the first beat.
        None if a.pid.is_some() && now - a.started < grace.as_secs_f64() => Liveness::Alive {
            host: a.host.to_string(),
            heartbeat: None,
        },
        None if a.pid.is_some() => Liveness::Lost(format!(
            "no heartbeat from {} since the attempt started {:.0} s ago (grace {:.0} s, {GRACE_VAR})",
            a.host,
            now - a.started,
            grace.as_secs_f64()
        )),
        None => Liveness::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt<'a>(dir: &'a Path, host: &'a str, boot: Option<&'a str>) -> AttemptRef<'a> {
        AttemptRef {
            dir,
            host,
            boot_id: boot,
            pid: Some(u32::MAX / 2),
            started: crate::util::now(),
        }
    }

    fn beat(dir: &Path, host: &str, time: f64) {
        std::fs::write(
            dir.join(HEARTBEAT_FILE),
            format!(r#"{{"host":"{host}","boot_id":"b","pid":7,"pgid":7,"time":{time}}}"#),
        )
        .unwrap();
    }

    #[test]
    fn another_host_is_alive_while_its_heartbeat_is_fresh() {
        let d = tempfile::tempdir().unwrap();
        let grace = Duration::from_secs(60);
        let a = attempt(d.path(), "elsewhere-7f3", None);
        // No beat yet, just started: alive.
        assert!(matches!(liveness(&a, grace), Liveness::Alive { .. }));
        beat(d.path(), "elsewhere-7f3", crate::util::now());
        assert!(matches!(
            liveness(&a, grace),
            Liveness::Alive {
                heartbeat: Some(_),
                ..
            }
        ));
        // The file's mtime counts too: an old time inside a freshly written file is a fresh beat.
        beat(d.path(), "elsewhere-7f3", 1.0);
        assert!(matches!(liveness(&a, grace), Liveness::Alive { .. }));
        let tiny = Duration::from_millis(1);
        std::thread::sleep(Duration::from_millis(20));
        match liveness(&a, tiny) {
            Liveness::Lost(m) => assert!(m.contains("no heartbeat from elsewhere-7f3"), "{m}"),
            other => panic!("{other:?}"),
        }
        std::fs::write(d.path().join(super::super::paths::EXIT_CODE_FILE), "3\n").unwrap();
        assert!(matches!(
            liveness(&a, tiny),
            Liveness::Ended {
                exit: ExitRecord::Exited(3),
                ..
            }
        ));
    }

    #[test]
    fn the_same_host_after_a_reboot_is_lost_at_once() {
        let d = tempfile::tempdir().unwrap();
        let here = crate::util::host();
        let Some(now) = boot_id() else { return };
        let grace = Duration::from_secs(600);
        let before = attempt(d.path(), &here, Some("another-boot"));
        match liveness(&before, grace) {
            Liveness::Lost(m) => assert!(m.contains("rebooted"), "{m}"),
            other => panic!("{other:?}"),
        }
        // Same boot: the process table decides (this pid does not exist).
        let same = attempt(d.path(), &here, Some(&now));
        assert!(matches!(liveness(&same, grace), Liveness::Lost(_)));
        let me = AttemptRef {
            pid: Some(nix::unistd::getpgrp().as_raw() as u32),
            ..same
        };
        assert!(matches!(
            liveness(&me, grace),
            Liveness::Alive {
                heartbeat: None,
                ..
            }
        ));
    }

    #[test]
    fn the_grace_is_a_positive_number_or_refused() {
        assert_eq!(parse_grace(None), Ok(DEFAULT_GRACE));
        for bad in ["0", "-3", "abc", "", "inf", "NaN"] {
            let e = parse_grace(Some(bad)).unwrap_err();
            assert!(e.contains(GRACE_VAR) && e.contains("positive"), "{e}");
        }
        assert_eq!(parse_grace(Some(" 2.5")), Ok(Duration::from_secs_f64(2.5)));
        assert_eq!(beat_interval(DEFAULT_GRACE), Duration::from_secs(5));
        assert_eq!(
            beat_interval(Duration::from_secs(2)),
            Duration::from_millis(250)
        );
    }
}
