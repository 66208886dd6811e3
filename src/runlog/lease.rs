//! The lease: the one engine that drives a run holds it. Leases are files `lease/<generation>.json`; a new
//! holder takes the next generation by atomic exclusive creation (a complete temporary file hard-linked to
//! the name: safe on NFS v3+ and on local disks), so two processes that try to take over a dead engine at
//! once cannot both win, and a crash never leaves a half-written lease. The holder rewrites its file as a
//! heartbeat (temporary file, then rename); a holder that sees a higher generation has lost the run and
//! must stop. A lease file that cannot be read (left by an older version, or a damaged disk) counts as
//! held until its mtime is a lease timeout old, then as expired.

use super::RunDir;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LeaseInfo {
    pub generation: u64,
    pub host: String,
    pub pid: u32,
    /// Start time of the holder process (from /proc), so a reused pid is not taken for the holder.
    #[serde(default)]
    pub pid_start: Option<u64>,
    pub acquired: f64,
    pub heartbeat: f64,
    /// Set when the holder let go cleanly.
    #[serde(default)]
    pub released: bool,
    /// The lease file, when it could not be read: then `heartbeat` is its mtime.
    #[serde(skip)]
    pub unreadable: Option<PathBuf>,
}

/// The environment variable that shortens the lease timeout (seconds).
pub const LEASE_TIMEOUT_ENV: &str = "SORTIE_LEASE_TIMEOUT";

/// How long a heartbeat stays valid. `SORTIE_LEASE_TIMEOUT` (seconds) shortens it for tests; the CLI
/// refuses a bad value at startup, so here one only falls back to the default.
pub fn lease_timeout() -> Duration {
    crate::util::env_seconds(LEASE_TIMEOUT_ENV, false)
        .ok()
        .flatten()
        .unwrap_or(Duration::from_secs(30))
}

/// How often the holder renews: six renewals per timeout, so a slow NFS write or two does not lose it.
pub fn heartbeat_interval() -> Duration {
    lease_timeout() / 6
}

impl LeaseInfo {
    /// Whether the holder should be taken as alive now, seen from this host.
    pub fn is_alive(&self) -> bool {
        if self.released {
            return false;
        }
        // On the holder's own host the process table is the better witness than the clock (an unreadable
        // lease names no host: only its age tells).
        if self.unreadable.is_none() && self.host == crate::util::host() {
            return process_alive(self.pid, self.pid_start);
        }
        let age = crate::util::now() - self.heartbeat;
        age < lease_timeout().as_secs_f64()
    }

    pub fn heartbeat_age(&self) -> f64 {
        (crate::util::now() - self.heartbeat).max(0.0)
    }

    /// Who holds the lease, in words: `pid P on HOST`, or the unreadable file that stands for a holder.
    pub fn holder(&self) -> String {
        match &self.unreadable {
            Some(path) => format!(
                "an unreadable lease file {}, written {:.0}s ago",
                path.display(),
                self.heartbeat_age()
            ),
            None => format!("pid {} on {}", self.pid, self.host),
        }
    }
}

pub use crate::util::{group_alive, process_alive, process_start_time};

fn lease_files(run: &RunDir) -> Vec<(u64, PathBuf)> {
    crate::util::numbered_files(&run.lease_dir(), ".json")
}

/// The newest lease of a run, if any engine ever held it.
pub fn current(run: &RunDir) -> Option<LeaseInfo> {
    let (generation, path) = lease_files(run).pop()?;
    match std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<LeaseInfo>(&b).ok())
    {
        Some(info) => Some(info),
        None => Some(unreadable(generation, &path)),
    }
}

/// A lease whose file cannot be read: held by an unknown engine until its mtime is a timeout old.
fn unreadable(generation: u64, path: &Path) -> LeaseInfo {
    let written = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
        // Gone between the listing and the stat: as old as can be.
        .unwrap_or(0.0);
    LeaseInfo {
        generation,
        host: String::new(),
        pid: 0,
        pid_start: None,
        acquired: written,
        heartbeat: written,
        released: false,
        unreadable: Some(path.to_path_buf()),
    }
}

/// Says once per process that an unreadable lease file is taken as expired.
fn warn_unreadable(path: &Path, age: f64) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        eprintln!(
            "sortie: warning: lease file {} is unreadable (empty or half written); it was last written {age:.0}s ago, so it counts as expired",
            path.display()
        );
    }
}

/// Why a lease could not be taken.
#[derive(Debug)]
pub enum LeaseError {
    /// A live engine holds it.
    Held(LeaseInfo),
    Io(std::io::Error),
}

impl std::fmt::Display for LeaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeaseError::Held(LeaseInfo {
                unreadable: Some(path),
                heartbeat,
                ..
            }) => write!(
                f,
                "the run's lease file {} is unreadable (empty or half written {:.0}s ago); it counts as held until it is {:.0}s old",
                path.display(),
                (crate::util::now() - heartbeat).max(0.0),
                lease_timeout().as_secs_f64()
            ),
            LeaseError::Held(i) => write!(
                f,
                "the run is driven by a live engine (pid {} on {}, heartbeat {:.0}s ago)",
                i.pid,
                i.host,
                i.heartbeat_age()
            ),
            LeaseError::Io(e) => write!(f, "cannot take the run's lease: {e}"),
        }
    }
}

impl std::error::Error for LeaseError {}

/// A lease this process holds.
#[derive(Debug)]
pub struct Lease {
    run: RunDir,
    pub info: LeaseInfo,
    path: PathBuf,
}

impl Lease {
    /// Takes the run's lease unless a live engine holds it.
    pub fn acquire(run: &RunDir) -> Result<Lease, LeaseError> {
        std::fs::create_dir_all(run.lease_dir()).map_err(LeaseError::Io)?;
        crate::util::remove_stale_temps(&run.lease_dir(), lease_timeout());
        for _ in 0..20 {
            let next = match current(run) {
                Some(info) if info.is_alive() => return Err(LeaseError::Held(info)),
                Some(info) => {
                    if let Some(path) = &info.unreadable {
                        warn_unreadable(path, info.heartbeat_age());
                    }
                    info.generation + 1
                }
                None => 1,
            };
            let path = run.lease_dir().join(format!("{next}.json"));
            let pid = std::process::id();
            let now = crate::util::now();
            let info = LeaseInfo {
                generation: next,
                host: crate::util::host(),
                pid,
                pid_start: process_start_time(pid),
                acquired: now,
                heartbeat: now,
                released: false,
                unreadable: None,
            };
            let body = serde_json::to_vec(&info).map_err(|e| LeaseError::Io(e.into()))?;
            match crate::util::create_atomic(&path, &body) {
                Ok(()) => {
                    return Ok(Lease {
                        run: run.clone(),
                        info,
                        path,
                    });
                }
                // Somebody else took this generation first: look again.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(LeaseError::Io(e)),
            }
        }
        Err(LeaseError::Io(std::io::Error::other(
            "lease contention did not settle",
        )))
    }

    /// Whether a newer generation exists (another process took over: this one must stop).
    pub fn lost(&self) -> bool {
        lease_files(&self.run)
            .last()
            .is_some_and(|(g, _)| *g > self.info.generation)
    }

    /// Renews the heartbeat. Returns false if the lease was lost.
    pub fn heartbeat(&mut self) -> std::io::Result<bool> {
        if self.lost() {
            return Ok(false);
        }
        self.info.heartbeat = crate::util::now();
        self.write()?;
        Ok(true)
    }

    /// Lets go cleanly so the next process need not wait for the timeout.
    pub fn release(mut self) -> std::io::Result<()> {
        if self.lost() {
            return Ok(());
        }
        self.info.released = true;
        self.write()
    }

    fn write(&self) -> std::io::Result<()> {
        crate::util::write_atomic(&self.path, &serde_json::to_vec(&self.info)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_takeover_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path().join("r1"));
        let mut a = Lease::acquire(&run).unwrap();
        assert_eq!(a.info.generation, 1);
        assert!(matches!(Lease::acquire(&run), Err(LeaseError::Held(_))));
        assert!(a.heartbeat().unwrap());
        a.release().unwrap();
        let b = Lease::acquire(&run).unwrap();
        assert_eq!(b.info.generation, 2);
        assert_eq!(current(&run).unwrap().pid, std::process::id());
    }

    #[test]
    fn dead_holder_on_this_host_is_taken_over_and_notices() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path().join("r1"));
        std::fs::create_dir_all(run.lease_dir()).unwrap();
        // A holder whose pid cannot exist.
        let dead = LeaseInfo {
            generation: 4,
            host: crate::util::host(),
            pid: u32::MAX / 2,
            pid_start: None,
            acquired: 0.0,
            heartbeat: crate::util::now(),
            released: false,
            unreadable: None,
        };
        std::fs::write(
            run.lease_dir().join("4.json"),
            serde_json::to_vec(&dead).unwrap(),
        )
        .unwrap();
        let old = Lease {
            run: run.clone(),
            info: dead,
            path: run.lease_dir().join("4.json"),
        };
        let new = Lease::acquire(&run).unwrap();
        assert_eq!(new.info.generation, 5);
        assert!(old.lost());
    }

    /// Sets a file's mtime `secs` into the past.
    fn age_file(path: &Path, secs: u64) {
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(std::time::SystemTime::now() - Duration::from_secs(secs))
            .unwrap();
    }

    #[test]
    fn an_unreadable_lease_is_held_until_its_mtime_is_a_timeout_old() {
        for body in [
            &b""[..],
            &b"{\"generation\": 3, \"ho"[..],
            &b"\x00\xffgarbage"[..],
        ] {
            let dir = tempfile::tempdir().unwrap();
            let run = RunDir::new(dir.path().join("r1"));
            std::fs::create_dir_all(run.lease_dir()).unwrap();
            let path = run.lease_dir().join("3.json");
            std::fs::write(&path, body).unwrap();
            // Fresh: maybe an engine of an older version still writing it.
            let held = Lease::acquire(&run).unwrap_err();
            assert!(matches!(held, LeaseError::Held(_)), "{held}");
            assert!(held.to_string().contains("3.json"), "{held}");
            age_file(&path, lease_timeout().as_secs() + 5);
            let l = current(&run).unwrap();
            assert_eq!(l.unreadable.as_deref(), Some(path.as_path()));
            assert!(!l.is_alive());
            let new = Lease::acquire(&run).unwrap();
            assert_eq!(new.info.generation, 4);
            assert_eq!(current(&run).unwrap().pid, std::process::id());
        }
    }

    #[test]
    fn concurrent_acquires_have_exactly_one_winner() {
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let run = RunDir::new(dir.path().join("r1"));
            if round % 2 == 1 {
                // Half the rounds take over from a released holder, so every racer wants generation 2.
                Lease::acquire(&run).unwrap().release().unwrap();
            }
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
            let winners: Vec<_> = (0..8)
                .map(|_| {
                    let (run, barrier) = (run.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        Lease::acquire(&run).ok().map(|l| l.info.generation)
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .filter_map(|t| t.join().unwrap())
                .collect();
            assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
            let names: Vec<_> = std::fs::read_dir(run.lease_dir())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            assert!(
                names.iter().all(|n| !crate::util::is_temp_name(n)),
                "temporary files left: {names:?}"
            );
        }
    }

    #[test]
    fn stale_temporary_files_are_ignored_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path().join("r1"));
        std::fs::create_dir_all(run.lease_dir()).unwrap();
        let tmp = crate::util::temp_path(&run.lease_dir().join("1.json"));
        std::fs::write(&tmp, b"{").unwrap();
        assert!(current(&run).is_none());
        age_file(&tmp, lease_timeout().as_secs() + 5);
        let l = Lease::acquire(&run).unwrap();
        assert_eq!(l.info.generation, 1);
        assert!(!tmp.exists());
    }
}
