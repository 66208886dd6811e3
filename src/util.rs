//! Small facts about the process and the clock that every room needs (host, user, whether a pid
//! still runs, numbered lease files), the user-error type, the one
//! way to write a file another process reads (complete or not at all), and duration settings from the
//! environment.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, with sub-second precision, as written in every event.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Why `SORTIE_HOST` cannot be this host's name, if it cannot: the name becomes the index's file name
/// (`<host>.db`), so it must be one plain path component (`../../x` would put the index elsewhere).
pub fn host_problem() -> Option<String> {
    let h = std::env::var_os("SORTIE_HOST")?;
    let h = h.to_string_lossy();
    let bad = if h.is_empty() {
        return None;
    } else if h == "." || h == ".." || h.contains('/') {
        "is not a plain file name"
    } else if h.chars().any(char::is_control) {
        "contains a control character"
    } else if h.len() > 200 {
        "is longer than 200 bytes"
    } else {
        return None;
    };
    Some(format!(
        "SORTIE_HOST={h:?} {bad}: it names the index file, so it must be a host name"
    ))
}

/// This host's name. `SORTIE_HOST` overrides it so tests can play a second login node (see
/// [`host_problem`] for the names it may not be).
pub fn host() -> String {
    if let Ok(h) = std::env::var("SORTIE_HOST")
        && !h.is_empty()
    {
        return h;
    }
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The login name of the user running sortie.
pub fn user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.name)
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// Number of cores available to this process (the default parallelism).
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// A mistake in what the user asked for (bad input or usage): the CLI exits with code 2 on it, not 3.
#[derive(Debug)]
pub struct UserError(pub String);

impl std::fmt::Display for UserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UserError {}

/// Shorthand for returning a [`UserError`] as an eyre report.
pub fn user_error(msg: impl Into<String>) -> color_eyre::eyre::Report {
    color_eyre::eyre::Report::new(UserError(msg.into()))
}

/// A short human duration: `4.2s`, `3m12s`, `2h05m`.
/// `s` cut to `max` characters, the last one an ellipsis when anything was cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

pub fn human_duration(secs: f64) -> String {
    let s = secs.max(0.0);
    if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{}h{:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}

/// The fields of `/proc/<pid>/stat` after the command name (which may hold spaces and parentheses).
pub fn proc_stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Whether any live (non-zombie) process belongs to process group `pgid`. Zombies do not count: orphans
/// whose reaper is slow must not make a finished step look alive.
pub fn group_alive(pgid: u32) -> bool {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return false;
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(proc_stat_fields)
        .any(|f| {
            f.first().is_some_and(|s| s != "Z" && s != "X")
                && f.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid)
        })
}

/// The start time (clock ticks since boot) of a process.
pub fn process_start_time(pid: u32) -> Option<u64> {
    proc_stat_fields(pid)?.get(19)?.parse().ok()
}

/// Whether a local process exists (and is the same process, when its start time is known).
pub fn process_alive(pid: u32, start: Option<u64>) -> bool {
    let Ok(pid_i) = i32::try_from(pid) else {
        return false;
    };
    let exists = match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid_i), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    };
    if !exists {
        return false;
    }
    // A killed process whose parent never reaps it (an orphan under a PID 1 that does not reap) is a
    // zombie: it still answers kill(0) but is dead.
    if proc_stat_fields(pid).is_some_and(|f| f.first().is_some_and(|s| s == "Z" || s == "X")) {
        return false;
    }
    match (start, process_start_time(pid)) {
        (Some(want), Some(got)) => want == got,
        _ => true,
    }
}

/// The files `<n><suffix>` of `dir` (lease generations), by number; other names are skipped.
pub fn numbered_files(dir: &Path, suffix: &str) -> Vec<(u64, PathBuf)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<(u64, PathBuf)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n = name.strip_suffix(suffix)?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    v.sort();
    v
}

/// Whether an executable named `program` is on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            let p = dir.join(program);
            p.is_file()
                && std::fs::metadata(&p).is_ok_and(|m| {
                    use std::os::unix::fs::PermissionsExt;
                    m.permissions().mode() & 0o111 != 0
                })
        })
    })
}

/// A temporary name beside `path` for a file being written: hidden, and unique to this process and call,
/// so two writers never share one and readers that list the directory skip it.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tag: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(6)
        .collect();
    path.with_file_name(format!(".{name}.{}.{tag}.tmp", std::process::id()))
}

/// Whether `name` is one of [`temp_path`]'s names.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// Writes a complete temporary file beside `path` (fsynced), hands it to `publish`, and removes it after.
fn with_temp_file(
    path: &Path,
    bytes: &[u8],
    sync: bool,
    publish: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        if sync {
            f.sync_all()?;
        }
        publish(&tmp)
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Replaces `path` with `bytes` so that another process reads the old content or the new one, never a
/// part of it, even if this one dies halfway: a temporary file in the same directory, then a rename.
///
/// No fsync: the rename alone makes it whole-or-nothing for every other process (the page cache outlives a
/// killed writer, and NFS sends a file at close), and these files are written once per step, where an
/// fsync would cost more than the step's own bookkeeping.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    with_temp_file(path, bytes, false, |tmp| std::fs::rename(tmp, path))
}

/// Creates `path` with `bytes`, complete or not at all, failing with `AlreadyExists` when it exists:
/// exclusive creation for files other processes read. The temporary file is hard-linked to `path`
/// (atomic, and exclusive on local disks and NFS alike).
pub fn create_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    with_temp_file(path, bytes, true, |tmp| {
        match std::fs::hard_link(tmp, path) {
            Ok(()) => Ok(()),
            // NFS may answer a retransmitted link with EEXIST although the first one worked: the link
            // count of the temporary file tells.
            Err(_) if std::fs::metadata(tmp).is_ok_and(|m| m.nlink() == 2) => Ok(()),
            Err(e) => Err(e),
        }
    })
}

/// Removes [`temp_path`] leftovers in `dir` older than `age` (their writer died before publishing).
pub fn remove_stale_temps(dir: &Path, age: Duration) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let stale = e.file_name().to_str().is_some_and(is_temp_name)
            && e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|a| a > age));
        if stale {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// A duration in seconds from environment variable `var`: `Ok(None)` when unset or empty, an error that
/// names the variable and the value when it is not a number of seconds above 0 (or at least 0 with
/// `zero_ok`).
pub fn env_seconds(var: &str, zero_ok: bool) -> Result<Option<Duration>, UserError> {
    let Some(raw) = std::env::var_os(var) else {
        return Ok(None);
    };
    let text = raw.to_string_lossy();
    if text.trim().is_empty() {
        return Ok(None);
    }
    let want = if zero_ok {
        "a number of seconds, 0 or more"
    } else {
        "a number of seconds above 0"
    };
    match text.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && (s > 0.0 || (zero_ok && s == 0.0)) && s < 1e9 => {
            Ok(Some(Duration::from_secs_f64(s)))
        }
        _ => Err(UserError(format!("{var}={text:?} is not {want}"))),
    }
}

/// What `path` is when it exists and is neither a regular file nor a directory (symlinks followed).
pub fn special_file_kind(path: &std::path::Path) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let t = std::fs::metadata(path).ok()?.file_type();
    if t.is_file() || t.is_dir() {
        None
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn atomic_writes_publish_whole_files_and_leave_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        create_atomic(&p, b"one").unwrap();
        let again = create_atomic(&p, b"two").unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        write_atomic(&p, b"three").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"three");
        assert_eq!(names(dir.path()), ["a.json"]);
        assert!(is_temp_name(
            &temp_path(&p).file_name().unwrap().to_string_lossy()
        ));
    }

    #[test]
    fn env_seconds_takes_numbers_and_names_what_it_refuses() {
        let var = "SORTIE_TEST_ENV_SECONDS_UTIL";
        let get = |v: &str, zero_ok| {
            // SAFETY: only this test reads or writes this variable.
            unsafe { std::env::set_var(var, v) };
            env_seconds(var, zero_ok)
        };
        assert_eq!(
            get("2.5", false).unwrap(),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(get("", false).unwrap(), None);
        assert_eq!(get("0", true).unwrap(), Some(Duration::ZERO));
        for bad in ["0", "-1", "abc", "NaN", "inf", "1e300"] {
            let e = get(bad, false).unwrap_err().to_string();
            assert!(e.contains(var) && e.contains(bad), "{e}");
        }
    }
}
