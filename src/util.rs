//! Small facts about the process and the clock that every room needs.

use std::time::{SystemTime, UNIX_EPOCH};

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
