//! Opening the index file: choosing a journal mode that is safe for the filesystem it lives on, setting
//! pragmas, running migrations, and replacing a corrupt file (it is only an index: the run files are the
//! truth, so a fresh file loses nothing but the time to rebuild it).

use super::error::{IndexError, Result};
use super::schema;
use rusqlite::{Connection, ErrorCode, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Long enough that a reader never gives up while a writer commits a batch, even on a slow disk.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Environment override of the journal mode (`wal` or `delete`), mostly for tests.
pub const JOURNAL_ENV: &str = "SORTIE_INDEX_JOURNAL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Journal {
    Wal,
    Delete,
}

impl Journal {
    fn pragma(self) -> &'static str {
        match self {
            Journal::Wal => "WAL",
            Journal::Delete => "DELETE",
        }
    }

    pub fn parse(s: &str) -> Option<Journal> {
        match s.trim().to_ascii_lowercase().as_str() {
            "wal" => Some(Journal::Wal),
            "delete" => Some(Journal::Delete),
            _ => None,
        }
    }

    /// The journal mode `SORTIE_INDEX_JOURNAL` asks for: `Ok(None)` when unset or empty, an error naming
    /// the value and the valid ones when it is neither `wal` nor `delete`.
    pub fn from_env() -> std::result::Result<Option<Journal>, crate::util::UserError> {
        let Some(raw) = std::env::var_os(JOURNAL_ENV) else {
            return Ok(None);
        };
        let text = raw.to_string_lossy();
        if text.trim().is_empty() {
            return Ok(None);
        }
        Journal::parse(&text).map(Some).ok_or_else(|| {
            crate::util::UserError(format!(
                "{JOURNAL_ENV}={text:?} is not a journal mode (valid: wal, delete)"
            ))
        })
    }

    /// The env override, else WAL on local disks and DELETE on network or parallel filesystems, whose
    /// locking cannot carry WAL's shared-memory index. (The CLI refuses a bad override at startup.)
    pub fn for_dir(dir: &Path) -> Journal {
        if let Ok(Some(j)) = Journal::from_env() {
            return j;
        }
        if is_network_fs(dir) {
            Journal::Delete
        } else {
            Journal::Wal
        }
    }
}

/// Filesystem magic numbers (`statfs.f_type`) of network and parallel filesystems.
const NETWORK_FS_MAGIC: &[u32] = &[
    0x6969,      // NFS
    0x517B,      // SMB
    0xFF53_4D42, // CIFS
    0xFE53_4D42, // SMB2
    0x0BD0_0BD0, // Lustre
    0x4750_4653, // GPFS
    0x00C3_6400, // CephFS
    0x1983_0326, // BeeGFS
    0x5346_414F, // AFS
    0x6B41_4653, // kAFS
    0x6573_5546, // FUSE (sshfs and friends; could be anything, so assume the worst)
    0x0102_1997, // 9p
    0x2003_0528, // OrangeFS / PVFS2
];

/// Whether `dir` is on a network or parallel filesystem. When unsure (statfs fails), say yes: DELETE
/// mode is slower but safe everywhere, WAL on NFS can corrupt the file.
pub fn is_network_fs(dir: &Path) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        match nix::sys::statfs::statfs(dir) {
            // f_type is a signed word on some targets: compare its low 32 bits.
            Ok(s) => NETWORK_FS_MAGIC.contains(&(s.filesystem_type().0 as u32)),
            Err(_) => true,
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = dir;
        false
    }
}

/// An open, migrated connection.
pub struct Opened {
    pub conn: Connection,
    pub journal: String,
}

/// Opens (creating if needed) the index at `path`. A file that is not a database, or is corrupt, is
/// moved aside to `<name>.corrupt-<unix secs>` and replaced by a new one.
pub fn open(path: &Path, journal: Option<Journal>) -> Result<Opened> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| IndexError::io(&dir, "creating the index directory", e))?;
    let journal = journal.unwrap_or_else(|| Journal::for_dir(&dir));
    let seen = file_id(path);
    let seen_all = file_ids(path);
    match open_once(path, journal) {
        Err(IndexError::Sqlite { source, .. }) if is_corrupt(&source) => {
            quarantine(path, seen)?;
            open_once(path, journal)
        }
        // The file (or its -wal/-shm) was deleted or replaced while we opened it: SQLite reports a
        // disk I/O error. The index is a cache anyone may delete, so open the new file once more.
        Err(IndexError::Sqlite { source, .. })
            if is_io_error(&source) && (seen.is_none() || file_ids(path) != seen_all) =>
        {
            open_once(path, journal)
        }
        other => other,
    }
}

fn is_io_error(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(ErrorCode::SystemIoFailure)
}

fn is_corrupt(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
    )
}

fn open_once(path: &Path, journal: Journal) -> Result<Opened> {
    let err = |what: &str| {
        let what = what.to_string();
        move |e| IndexError::sqlite(path, what, e)
    };
    let mut conn = Connection::open(path).map_err(err("opening"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(err("setting busy_timeout"))?;
    // Reading the schema touches the file header: this is where "file is not a database" shows up.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(err("reading the schema"))?;
    // Only takes effect while the file is still empty, before the first table exists.
    conn.execute_batch("PRAGMA page_size = 16384")
        .map_err(err("setting page_size"))?;
    let mode = set_journal(&conn, journal).map_err(err("setting journal_mode"))?;
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -32768;",
    )
    .map_err(err("setting pragmas"))?;
    conn.set_prepared_statement_cache_capacity(64);
    // Cached statements stay compiled: without the stability guarantee SQLite 3.54 re-prepares a
    // statement whenever a bound value moves between 0/1 and other numbers (a row-count guess for
    // `col = ?`), which was a tenth of a live view's polling.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(err("enabling the query planner stability guarantee"))?;
    migrate(&mut conn, path)?;
    Ok(Opened {
        conn,
        journal: mode,
    })
}

/// Switches the journal mode; returns the mode in force. Leaving WAL needs every other connection
/// closed, so if that stays busy we keep the current mode rather than fail: both modes are correct on
/// a local disk.
fn set_journal(conn: &Connection, journal: Journal) -> rusqlite::Result<String> {
    let current: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    if current.eq_ignore_ascii_case(journal.pragma()) {
        return Ok(current.to_ascii_lowercase());
    }
    let sql = format!("PRAGMA journal_mode = {}", journal.pragma());
    for delay_ms in [0, 20, 100, 500] {
        std::thread::sleep(Duration::from_millis(delay_ms));
        match conn.query_row(&sql, [], |r| r.get::<_, String>(0)) {
            Ok(mode) => return Ok(mode.to_ascii_lowercase()),
            Err(e) if super::error::is_busy(&e) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(current.to_ascii_lowercase())
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let known = schema::current_version();
    let version = |c: &Connection| c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0));
    let found = version(conn).map_err(|e| IndexError::sqlite(path, "reading user_version", e))?;
    if found == known {
        return Ok(());
    }
    let too_new = |found| IndexError::SchemaTooNew {
        path: path.to_path_buf(),
        found,
        known,
    };
    if found > known {
        return Err(too_new(found));
    }
    let err = |e| IndexError::sqlite(path, "migrating the schema", e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err)?;
    // Another process may have migrated while we waited for the lock.
    let found = version(&tx).map_err(err)?;
    if found > known {
        return Err(too_new(found));
    }
    for sql in &schema::MIGRATIONS[found.max(0) as usize..] {
        tx.execute_batch(sql).map_err(err)?;
    }
    tx.pragma_update(None, "user_version", known).map_err(err)?;
    tx.commit().map_err(err)
}

/// (device, inode) of a file, to tell whether a path still names the file we found corrupt.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The ids of the index file and of its `-wal` and `-shm` companions (deleting any of them under an
/// opening connection can fail it).
fn file_ids(path: &Path) -> [Option<(u64, u64)>; 3] {
    let with = |suffix: &str| {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        file_id(Path::new(&p))
    };
    [file_id(path), with("-wal"), with("-shm")]
}

/// Moves a corrupt index and its journal files aside. If another process already replaced the file
/// (it is no longer the one we opened), leaves the new one alone.
fn quarantine(path: &Path, seen: Option<(u64, u64)>) -> Result<()> {
    if file_id(path) != seen {
        return Ok(());
    }
    let ts = crate::util::now() as u64;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let aside = path.with_file_name(format!("{name}.corrupt-{ts}"));
    std::fs::rename(path, &aside)
        .map_err(|e| IndexError::io(path, "moving aside the corrupt index", e))?;
    for suffix in ["-wal", "-shm", "-journal"] {
        let side = path.with_file_name(format!("{name}{suffix}"));
        if side.exists() {
            let _ = std::fs::rename(
                &side,
                aside.with_file_name(format!("{name}.corrupt-{ts}{suffix}")),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_override_parses() {
        assert_eq!(Journal::parse("WAL"), Some(Journal::Wal));
        assert_eq!(Journal::parse(" delete "), Some(Journal::Delete));
        assert_eq!(Journal::parse("memory"), None);
    }

    #[test]
    fn local_tmp_is_not_network() {
        // /tmp may be tmpfs or a local disk; either way not a network filesystem.
        let d = tempfile::tempdir().unwrap();
        assert!(!is_network_fs(d.path()));
        assert!(NETWORK_FS_MAGIC.contains(&0x6969));
    }

    #[test]
    fn opens_in_the_requested_mode() {
        let d = tempfile::tempdir().unwrap();
        let wal = open(&d.path().join("a/b/w.db"), Some(Journal::Wal)).unwrap();
        assert_eq!(wal.journal, "wal");
        let del = open(&d.path().join("d.db"), Some(Journal::Delete)).unwrap();
        assert_eq!(del.journal, "delete");
        let v: i64 = del
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, schema::current_version());
    }

    #[test]
    fn corrupt_file_is_moved_aside_and_rebuilt() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("host.db");
        std::fs::write(
            &p,
            b"this is not an SQLite database, just some bytes... ".repeat(100),
        )
        .unwrap();
        let o = open(&p, Some(Journal::Wal)).unwrap();
        let n: i64 = o
            .conn
            .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
        let aside: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("host.db.corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
    }

    #[test]
    fn newer_schema_is_a_clear_error() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("new.db");
        drop(open(&p, Some(Journal::Delete)).unwrap());
        let c = Connection::open(&p).unwrap();
        c.pragma_update(None, "user_version", 999).unwrap();
        drop(c);
        let e = open(&p, Some(Journal::Delete)).err().unwrap();
        assert!(
            matches!(e, IndexError::SchemaTooNew { found: 999, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("new.db"));
    }
}
