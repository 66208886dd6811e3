//! Content hashes of input files, cached by (path, size, mtime, inode) so that an unchanged file is not
//! read again to compute a cache key.

use super::error::{IndexError, Result};
use super::{Index, retry_busy};
use rusqlite::{OptionalExtension, params};
use std::io::{IsTerminal, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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
        // Opening a FIFO blocks and a device never ends: only regular files are read.
        if let Some(kind) = crate::util::special_file_kind(&abs) {
            return Err(io(std::io::Error::other(format!(
                "{kind}, not a regular file"
            ))));
        }
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

        let file = std::fs::File::open(&abs).map_err(io)?;
        let hash = hash_reader(file, meta.size(), &abs, &self.interrupt).map_err(io)?;
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

/// Bytes read between two looks at the interrupt flag: a few milliseconds of hashing.
const CHUNK: usize = 1 << 20;
/// A hash taking longer than this shows its progress on stderr.
const QUIET_FOR: Duration = Duration::from_secs(1);
/// Off a terminal, one progress line this often.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// Hashes `file` (`total` bytes long, for the progress line) chunk by chunk, stopping with an
/// `Interrupted` error as soon as `interrupt` is set.
fn hash_reader(
    mut file: impl Read,
    total: u64,
    path: &Path,
    interrupt: &AtomicBool,
) -> std::io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    let mut progress = HashProgress::new(path, total);
    let mut done = 0u64;
    loop {
        if interrupt.load(Ordering::Relaxed) {
            progress.finish();
            return Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "stopped by a signal",
            ));
        }
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                progress.finish();
                return Err(e);
            }
        };
        hasher.update(&buf[..n]);
        done += n as u64;
        progress.show(done);
    }
    progress.finish();
    Ok(hasher.finalize().to_hex().to_string())
}

/// The progress of one long hash on stderr: a line redrawn in place on a terminal, else a line every
/// few seconds. Nothing for hashes that take less than a second.
struct HashProgress<'p> {
    path: &'p Path,
    total: u64,
    started: Instant,
    last: Option<Instant>,
    tty: bool,
}

impl<'p> HashProgress<'p> {
    fn new(path: &'p Path, total: u64) -> Self {
        HashProgress {
            path,
            total,
            started: Instant::now(),
            last: None,
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn show(&mut self, done: u64) {
        if self.started.elapsed() < QUIET_FOR {
            return;
        }
        let every = if self.tty {
            Duration::from_millis(200)
        } else {
            PLAIN_EVERY
        };
        if self.last.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        self.last = Some(Instant::now());
        let line = format!(
            "hashing input {}: {} of {}",
            self.path.display(),
            gib(done),
            gib(self.total)
        );
        let mut err = std::io::stderr().lock();
        let _ = if self.tty {
            write!(err, "\r\x1b[K{line}")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }

    /// Clears the redrawn line.
    fn finish(&mut self) {
        if self.tty && self.last.is_some() {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
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
    fn an_interrupted_hash_stops_at_once() {
        let flag = std::sync::atomic::AtomicBool::new(true);
        let endless = std::io::repeat(0);
        let e = super::hash_reader(endless, 0, std::path::Path::new("x"), &flag).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::Interrupted);
        let flag = std::sync::atomic::AtomicBool::new(false);
        assert_eq!(
            super::hash_reader(&b"abc"[..], 3, std::path::Path::new("x"), &flag).unwrap(),
            blake3::hash(b"abc").to_hex().to_string()
        );
    }

    #[test]
    fn special_files_are_not_read() {
        let fx = Fixture::new();
        let mut ix = fx.index(Journal::Wal);
        let e = ix.hash_file(std::path::Path::new("/dev/zero")).unwrap_err();
        assert!(e.to_string().contains("a character device"), "{e}");
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
