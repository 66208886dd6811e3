//! Which Slurm backend a process talks to, chosen in one order by every command, the engine and the
//! TUI: `--rest`, then `SORTIE_SLURM_BACKEND` (`cli` or `rest`), then the configuration, else the
//! commands. Built here too: the text CLI backend (the cheapest for the controller, and sacct's text
//! exit codes are right) or slurmrestd (`SLURM_REST_URL`, `SLURM_JWT`).

use std::sync::Arc;
use std::time::Duration;

use super::backend::SlurmBackend;
use super::cli_backend::{CliBackend, CliConfig, JsonPolicy};
use super::rest_backend::{RestBackend, RestConfig};

pub const BACKEND_ENV: &str = "SORTIE_SLURM_BACKEND";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Cli,
    Rest,
}

impl BackendKind {
    /// `cli` or `rest`, in any case.
    pub fn parse(text: &str) -> Option<BackendKind> {
        match text.trim().to_ascii_lowercase().as_str() {
            "cli" => Some(BackendKind::Cli),
            "rest" => Some(BackendKind::Rest),
            _ => None,
        }
    }

    /// `SORTIE_SLURM_BACKEND`, if set; a value that is neither `cli` nor `rest` is refused with a
    /// line that names the variable (the CLI checks it at startup).
    pub fn from_env() -> Result<Option<BackendKind>, String> {
        match std::env::var(BACKEND_ENV) {
            Ok(v) if v.trim().is_empty() => Ok(None),
            Ok(v) => BackendKind::parse(&v)
                .map(Some)
                .ok_or_else(|| format!("{BACKEND_ENV}={v:?}: expected `cli` or `rest`")),
            Err(_) => Ok(None),
        }
    }

    /// The one order: the flag, the environment, the configuration, the commands.
    pub fn choose(rest_flag: bool, config: Option<BackendKind>) -> Result<BackendKind, String> {
        if rest_flag {
            return Ok(BackendKind::Rest);
        }
        Ok(BackendKind::from_env()?
            .or(config)
            .unwrap_or(BackendKind::Cli))
    }
}

/// Why there is no backend.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectError {
    /// A bad choice (exit 2).
    Usage(String),
    /// Nothing to talk to: no Slurm commands, no REST URL (exit 3).
    Missing(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Usage(m) | ConnectError::Missing(m) => f.write_str(m),
        }
    }
}

pub type Backend = Arc<dyn SlurmBackend + Send + Sync>;

/// The Slurm commands (text output). `timeout`: per command (default 30 s).
pub fn commands(timeout: Option<Duration>) -> Result<Backend, ConnectError> {
    if !crate::util::on_path("squeue") {
        return Err(ConnectError::Missing(
            "no SLURM found on this host (squeue is not on PATH)".into(),
        ));
    }
    let defaults = CliConfig::default();
    Ok(Arc::new(CliBackend::new(CliConfig {
        json: JsonPolicy::Never,
        timeout: timeout.unwrap_or(defaults.timeout),
        ..defaults
    })))
}

/// The backend of `kind`.
pub fn build(kind: BackendKind, timeout: Option<Duration>) -> Result<Backend, ConnectError> {
    match kind {
        BackendKind::Cli => commands(timeout),
        BackendKind::Rest => {
            let mut config = RestConfig::from_env().ok_or_else(|| {
                ConnectError::Missing(
                    "the REST backend needs SLURM_REST_URL (e.g. http://host:6820)".into(),
                )
            })?;
            if let Some(t) = timeout {
                config.timeout = t;
            }
            let backend =
                RestBackend::new(config).map_err(|e| ConnectError::Missing(e.to_string()))?;
            Ok(Arc::new(backend))
        }
    }
}

/// Chooses ([`BackendKind::choose`]) and builds.
pub fn open(
    rest_flag: bool,
    config: Option<BackendKind>,
    timeout: Option<Duration>,
) -> Result<Backend, ConnectError> {
    let kind = BackendKind::choose(rest_flag, config).map_err(ConnectError::Usage)?;
    build(kind, timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse() {
        assert_eq!(BackendKind::parse("REST"), Some(BackendKind::Rest));
        assert_eq!(BackendKind::parse(" cli "), Some(BackendKind::Cli));
        assert_eq!(BackendKind::parse("slurmrestd"), None);
    }
}
