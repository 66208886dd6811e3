//! Content hashes of input files, cached by (path, size, mtime, inode) so that an unchanged file is not
//! read again to compute a cache key.

use super::error::{IndexError, Result};
use super::{Index, retry_busy};
use rusqlite::{OptionalExtension, params};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A file modified this recently may change again within the same mtime tick (coarse on some
/// filesystems) without its size changing; such a hash is returned but not cached.
const RACY_WINDOW_NS: i128 = 2_000_000_000;

impl Index {
    /// The blake3 hex digest of the file's content. Re-reads the file only when its size, mtime or
    /// inode differ from when it was last hashed.
    pub fn hash_file(&mut self, path: &Path) -> Result<String> {
        let io = |e| IndexError::io(path, "hashing", e);
        let abs = std::path::absolute(path).map_err(io)?;
        let key = abs.to_string_lossy();
        let meta = std::fs::metadata(&abs).map_err(io)?;
        let size = meta.size() as i64;
        let mtime_ns = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
        // Stored as i64: nanoseconds since 1970 fit until the year 2262.
        let mtime_db = mtime_ns as i64;
        let inode = meta.ino() as i64;

        let cached = retry_busy(|| {
            self.conn
                .prepare_cached(
                    "SELECT hash FROM file_hashes \
                     WHERE path = ?1 AND size = ?2 AND mtime_ns = ?3 AND inode = ?4",
                )
                .and_then(|mut s| {
                    s.query_row(params![key, size, mtime_db, inode], |r| {
                        r.get::<_, String>(0)
                    })
                    .optional()
                })
                .map_err(self.sql_err("reading the hash cache"))
        })?;
        if let Some(hash) = cached {
            return Ok(hash);
        }

        let mut hasher = blake3::Hasher::new();
        let file = std::fs::File::open(&abs).map_err(io)?;
        hasher.update_reader(file).map_err(io)?;
        let hash = hasher.finalize().to_hex().to_string();
        self.hashes_computed += 1;

        let now_ns = (crate::util::now() * 1e9) as i128;
        if now_ns - mtime_ns >= RACY_WINDOW_NS {
            retry_busy(|| {
                self.conn
                    .prepare_cached(
                        "INSERT OR REPLACE INTO file_hashes (path, size, mtime_ns, inode, hash) \
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )
                    .and_then(|mut s| s.execute(params![key, size, mtime_db, inode, hash]))
                    .map_err(self.sql_err("writing the hash cache"))
            })?;
        }
        Ok(hash)
    }
}

#[cfg(test)]
mod tests {
    use crate::index::Journal;
    use crate::index::test_support::Fixture;
    use std::time::{Duration, SystemTime};

    fn set_mtime(path: &std::path::Path, t: SystemTime) {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    #[test]
    fn rehashes_only_when_size_mtime_or_inode_change() {
        let fx = Fixture::new();
        let mut ix = fx.index(Journal::Wal);
        let f = fx.tmp.path().join("data.csv");
        let past = SystemTime::now() - Duration::from_secs(3600);
        std::fs::write(&f, b"aaaa").unwrap();
        set_mtime(&f, past);

        let h1 = ix.hash_file(&f).unwrap();
        assert_eq!(h1, blake3::hash(b"aaaa").to_hex().to_string());
        assert_eq!(ix.hash_file(&f).unwrap(), h1);
        assert_eq!(ix.hashes_computed(), 1);

        // Same size and mtime: trusted, not re-read (the stale hash is the documented trade-off).
        std::fs::write(&f, b"bbbb").unwrap();
        set_mtime(&f, past);
        assert_eq!(ix.hash_file(&f).unwrap(), h1);
        assert_eq!(ix.hashes_computed(), 1);

        // A new mtime is re-read.
        set_mtime(&f, past + Duration::from_secs(1));
        assert_eq!(
            ix.hash_file(&f).unwrap(),
            blake3::hash(b"bbbb").to_hex().to_string()
        );
        assert_eq!(ix.hashes_computed(), 2);

        // A new size is re-read.
        std::fs::write(&f, b"ccccc").unwrap();
        set_mtime(&f, past + Duration::from_secs(1));
        assert_eq!(
            ix.hash_file(&f).unwrap(),
            blake3::hash(b"ccccc").to_hex().to_string()
        );
        assert_eq!(ix.hashes_computed(), 3);

        // The cache is in the index: another handle finds it.
        let mut other = fx.index(Journal::Wal);
        other.hash_file(&f).unwrap();
        assert_eq!(other.hashes_computed(), 0);
    }

    #[test]
    fn freshly_modified_files_are_not_cached() {
        let fx = Fixture::new();
        let mut ix = fx.index(Journal::Wal);
        let f = fx.tmp.path().join("new.txt");
        std::fs::write(&f, b"x").unwrap();
        ix.hash_file(&f).unwrap();
        ix.hash_file(&f).unwrap();
        assert_eq!(ix.hashes_computed(), 2);
        assert!(ix.hash_file(&fx.tmp.path().join("missing")).is_err());
    }
}
