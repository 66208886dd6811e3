//! The index's error type: what went wrong and with which file.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug)]
pub enum IndexError {
    /// SQLite failed while doing `what` on the index file `path`.
    Sqlite {
        path: PathBuf,
        what: String,
        source: rusqlite::Error,
    },
    /// Reading or creating a file failed.
    Io {
        path: PathBuf,
        what: String,
        source: std::io::Error,
    },
    /// The index was written by a newer sortie.
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    /// `SORTIE_HOST` cannot name the index file (the message says why).
    BadHost(String),
    /// The index has no runs at all.
    NoRuns,
    /// No run id equals or starts with `spec`.
    NoMatch { spec: String },
    /// Several run ids start with `spec` (newest first, at most a few).
    Ambiguous {
        spec: String,
        candidates: Vec<String>,
    },
}

impl IndexError {
    pub(crate) fn sqlite(
        path: impl Into<PathBuf>,
        what: impl Into<String>,
        e: rusqlite::Error,
    ) -> Self {
        IndexError::Sqlite {
            path: path.into(),
            what: what.into(),
            source: e,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, what: impl Into<String>, e: std::io::Error) -> Self {
        IndexError::Io {
            path: path.into(),
            what: what.into(),
            source: e,
        }
    }

    /// True for SQLITE_BUSY / SQLITE_LOCKED: another process holds the lock longer than we waited.
    pub fn is_busy(&self) -> bool {
        match self {
            IndexError::Sqlite { source, .. } => is_busy(source),
            _ => false,
        }
    }
}

impl IndexError {
    /// As a CLI error after `context`: the user's own mistakes (a bad `SORTIE_HOST`) exit 2.
    pub fn into_report(self, context: &str) -> color_eyre::Report {
        match self {
            IndexError::BadHost(m) => crate::util::user_error(m),
            e => color_eyre::eyre::eyre!("{context}: {e}"),
        }
    }
}

pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndexError::Sqlite { path, what, source } => {
                write!(f, "index {}: {what}: {source}", path.display())?;
                if matches!(
                    source.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
                ) {
                    f.write_str(
                        " (the index is only a cache of the run directories: delete it to rebuild)",
                    )?;
                }
                Ok(())
            }
            IndexError::Io { path, what, source } => {
                write!(f, "{what} {}: {source}", path.display())
            }
            IndexError::SchemaTooNew { path, found, known } => write!(
                f,
                "index {} has schema version {found}, newer than this sortie knows ({known}); \
                 upgrade sortie, or delete the file (it is rebuilt from the run directories)",
                path.display()
            ),
            IndexError::BadHost(m) => f.write_str(m),
            IndexError::NoRuns => f.write_str("no runs yet"),
            IndexError::NoMatch { spec } => write!(f, "no run id matches '{spec}'"),
            IndexError::Ambiguous { spec, candidates } => write!(
                f,
                "'{spec}' matches several runs: {}",
                candidates.join(", ")
            ),
        }
    }
}

impl std::error::Error for IndexError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            IndexError::Sqlite { source, .. } => Some(source),
            IndexError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, IndexError>;
