//! Incremental reading of an append-only line file (`metrics.jsonl`) from a byte offset.
//!
//! Reads go in bounded chunks so that a file of many gigabytes never sits in memory at once; only the
//! complete lines of a chunk are handed out, and a partial last line (the writer is mid-line, or NFS has
//! not shown the rest yet) is left for a later read by not advancing the offset past it.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Default chunk: large enough to amortise syscalls and per-batch work, small enough to bound memory.
pub const DEFAULT_CHUNK: usize = 8 << 20;

pub struct Tailer {
    file: File,
    path: PathBuf,
    buf: Vec<u8>,
    chunk: usize,
}

/// Complete lines read from a file.
#[derive(Debug)]
pub struct Chunk<'a> {
    /// Offset of the first byte of `data`.
    pub start: u64,
    /// Whole lines, each ending in `\n`; empty when there is nothing new.
    pub data: &'a [u8],
}

impl Chunk<'_> {
    /// The offset just after the last complete line: where the next read starts.
    pub fn next_offset(&self) -> u64 {
        self.start + self.data.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The lines, without their `\n` (a `\r` before it stays; the parser treats it as whitespace).
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        // Non-empty data always ends in `\n`; empty data has no lines at all.
        let body = self.data.strip_suffix(b"\n");
        body.into_iter().flat_map(|d| d.split(|&b| b == b'\n'))
    }
}

impl Tailer {
    pub fn open(path: &Path) -> io::Result<Tailer> {
        Ok(Tailer {
            file: File::open(path)?,
            path: path.to_path_buf(),
            buf: Vec::new(),
            chunk: DEFAULT_CHUNK,
        })
    }

    /// Sets the chunk size (mostly for tests); at least one byte.
    pub fn with_chunk(mut self, bytes: usize) -> Tailer {
        self.chunk = bytes.max(1);
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's current length.
    pub fn file_len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// The file's inode, to notice that the path now names a different file.
    pub fn inode(&self) -> io::Result<u64> {
        use std::os::unix::fs::MetadataExt;
        Ok(self.file.metadata()?.ino())
    }

    /// Reads the complete lines in `[offset, end)`, about one chunk's worth: more only when a single line
    /// is longer than a chunk (a line must be handed out whole). `end` is usually the file length seen at
    /// the start of a sync, so that a file that keeps growing cannot keep one sync going forever.
    pub fn read(&mut self, offset: u64, end: u64) -> io::Result<Chunk<'_>> {
        self.buf.clear();
        let mut want = self.chunk;
        let mut pos = offset;
        let mut scanned = 0;
        loop {
            let room = (end.saturating_sub(pos) as usize).min(want);
            if room == 0 {
                break;
            }
            let old = self.buf.len();
            self.buf.resize(old + room, 0);
            let n = read_full_at(&self.file, &mut self.buf[old..], pos)?;
            self.buf.truncate(old + n);
            pos += n as u64;
            if n < room {
                break; // the file is shorter than it was: take what is there
            }
            if self.buf[scanned..].contains(&b'\n') {
                break;
            }
            scanned = self.buf.len();
            // No line end yet: the line is longer than what we read; read as much again.
            want = self.buf.len();
        }
        let complete = self
            .buf
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        Ok(Chunk {
            start: offset,
            data: &self.buf[..complete],
        })
    }
}

/// `read_at` until the buffer is full or the file ends.
fn read_full_at(file: &File, mut buf: &mut [u8], mut pos: u64) -> io::Result<usize> {
    let mut total = 0;
    while !buf.is_empty() {
        match file.read_at(buf, pos) {
            Ok(0) => break,
            Ok(n) => {
                total += n;
                pos += n as u64;
                buf = &mut buf[n..];
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &Path, data: &[u8]) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(data)
            .unwrap();
    }

    /// Reads everything available from `offset` chunk by chunk; returns the lines and the new offset.
    fn drain(t: &mut Tailer, mut offset: u64) -> (Vec<String>, u64) {
        let end = t.file_len().unwrap();
        let mut out = Vec::new();
        loop {
            let c = t.read(offset, end).unwrap();
            if c.is_empty() {
                return (out, offset);
            }
            out.extend(c.lines().map(|l| String::from_utf8(l.to_vec()).unwrap()));
            offset = c.next_offset();
        }
    }

    #[test]
    fn partial_lines_wait_for_their_end() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.jsonl");
        append(&p, b"one\ntwo\nthr");
        let mut t = Tailer::open(&p).unwrap().with_chunk(3);
        let (lines, off) = drain(&mut t, 0);
        assert_eq!(lines, ["one", "two"]);
        assert_eq!(off, 8);
        let (lines, off2) = drain(&mut t, off);
        assert!(lines.is_empty());
        assert_eq!(off2, off);
        append(&p, b"ee\r\n\nfour\n");
        let (lines, off3) = drain(&mut t, off);
        assert_eq!(lines, ["three\r", "", "four"]);
        assert_eq!(off3, std::fs::metadata(&p).unwrap().len());
    }

    #[test]
    fn lines_longer_than_a_chunk_come_out_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.jsonl");
        let long = "x".repeat(1000);
        append(&p, format!("a\n{long}\nb\n").as_bytes());
        let mut t = Tailer::open(&p).unwrap().with_chunk(7);
        let (lines, _) = drain(&mut t, 0);
        assert_eq!(lines, ["a".to_string(), long, "b".to_string()]);
    }

    #[test]
    fn chunks_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.jsonl");
        append(&p, "0123456789\n".repeat(1000).as_bytes());
        let mut t = Tailer::open(&p).unwrap().with_chunk(100);
        let c = t.read(0, t.file_len().unwrap()).unwrap();
        assert!(c.data.len() <= 100 && !c.is_empty());
        // `end` bounds the read even if the file is longer.
        let c = t.read(0, 25).unwrap();
        assert_eq!(c.data, b"0123456789\n0123456789\n");
    }
}
