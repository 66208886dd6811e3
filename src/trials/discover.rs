//! Finds the Optuna study files in a folder (optuna-dashboard#896 asks for exactly this): SQLite files
//! that are Optuna storages and journal files, a few levels down, skipping folders that never hold studies.

use super::{journal, rdb};
use std::path::{Path, PathBuf};

/// How deep below the folder to look: results/<model>/<seed>/study.db is common, deeper is rare.
const MAX_DEPTH: usize = 4;

/// Folders that hold environments, caches or version control, never a study.
fn skipped(name: &str) -> bool {
    name.starts_with('.')
        || matches!(
            name,
            "node_modules" | "__pycache__" | "site-packages" | "venv" | "env"
        )
}

/// The study files below `dir`, sorted by path.
pub fn study_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    walk(dir, 0, &mut found)?;
    found.sort();
    Ok(found)
}

fn walk(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            let name = entry.file_name();
            if depth < MAX_DEPTH && !skipped(&name.to_string_lossy()) {
                // An unreadable sub-folder is not the user's question: skip it.
                let _ = walk(&path, depth + 1, found);
            }
        } else if kind.is_file() && is_study_file(&path) {
            found.push(path);
        }
    }
    Ok(())
}

/// Whether a file is an Optuna storage: a SQLite file with Optuna's tables, or a journal.
pub fn is_study_file(path: &Path) -> bool {
    if rdb::looks_like_sqlite(path) {
        return rdb::RdbReader::open(path, None).is_ok();
    }
    journal::looks_like_journal(path)
}
