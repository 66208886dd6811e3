//! How far each tailed file has been ingested. A source is named by what it is (a run's event log, an
//! attempt's metrics), not by its path, so two processes that spell the path differently still share
//! one offset.

use rusqlite::{Connection, OptionalExtension, params};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Events,
    Metrics,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Events => "events",
            Kind::Metrics => "metrics",
        }
    }
}

/// Which file: the run's event log (`step` empty, `attempt` 0) or one attempt's metrics.
#[derive(Debug, Clone, Copy)]
pub struct SourceKey<'a> {
    pub kind: Kind,
    pub run: &'a str,
    pub step: &'a str,
    pub attempt: u32,
}

/// Progress through a source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Bytes consumed: everything before is ingested; a partial line after it is not.
    pub offset: u64,
    /// The file's inode when last read: a different one means the file was replaced.
    pub inode: Option<u64>,
    /// Lines consumed (blank and bad ones included); the next line's 0-based number.
    pub lines: u64,
    pub bad_lines: u64,
}

impl Progress {
    /// Whether a file of this inode and length must be read from the start again: it was replaced
    /// or truncated, so what was ingested from it no longer matches.
    pub fn is_stale(&self, inode: u64, len: u64) -> bool {
        self.inode.is_some_and(|i| i != inode) || len < self.offset
    }
}

pub fn load(conn: &Connection, key: SourceKey) -> rusqlite::Result<Progress> {
    let row = conn
        .prepare_cached(
            "SELECT offset, inode, lines, bad_lines FROM sources \
             WHERE run = ?1 AND kind = ?2 AND step = ?3 AND attempt = ?4",
        )?
        .query_row(
            params![key.run, key.kind.as_str(), key.step, key.attempt],
            |r| {
                Ok(Progress {
                    offset: r.get::<_, i64>(0)? as u64,
                    inode: r.get::<_, Option<i64>>(1)?.map(|i| i as u64),
                    lines: r.get::<_, i64>(2)? as u64,
                    bad_lines: r.get::<_, i64>(3)? as u64,
                })
            },
        )
        .optional()?;
    Ok(row.unwrap_or_default())
}

pub fn store(conn: &Connection, key: SourceKey, path: &str, p: &Progress) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO sources (run, kind, step, attempt, path, offset, inode, lines, bad_lines) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
         ON CONFLICT (run, kind, step, attempt) DO UPDATE SET path = ?5, offset = ?6, inode = ?7, \
         lines = ?8, bad_lines = ?9",
    )?
    .execute(params![
        key.run,
        key.kind.as_str(),
        key.step,
        key.attempt,
        path,
        p.offset as i64,
        p.inode.map(|i| i as i64),
        p.lines as i64,
        p.bad_lines as i64
    ])?;
    Ok(())
}
