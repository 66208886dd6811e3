//! The index's schema, as an ordered list of migrations. `PRAGMA user_version` records how many have been
//! applied. Never edit a released migration: append a new one. Since the index holds nothing that the
//! run files do not, a migration may simply drop derived tables and reset `sources` so that the next sync
//! rebuilds them. Documented column by column in `docs/schema.md`. Foreign keys are not declared: rows
//! are removed explicitly, and a damaged log line must never make a later insert fail.

pub const MIGRATIONS: &[&str] = &[V1];

/// The schema version this build writes.
pub fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}

const V1: &str = r#"
CREATE TABLE runs (
    id          TEXT PRIMARY KEY,
    dir         TEXT NOT NULL,
    pipeline    TEXT NOT NULL,
    file        TEXT NOT NULL,
    workdir     TEXT NOT NULL,
    host        TEXT NOT NULL,
    user        TEXT NOT NULL,
    created     REAL NOT NULL,
    ended       REAL,
    state       TEXT NOT NULL,
    engine_host TEXT,
    engine_pid  INTEGER
);
CREATE INDEX runs_by_created ON runs (created DESC, id DESC);

CREATE TABLE steps (
    run        TEXT NOT NULL,
    name       TEXT NOT NULL,
    ord        INTEGER NOT NULL,
    step_group TEXT NOT NULL,
    params     TEXT NOT NULL,
    needs      TEXT NOT NULL,
    state      TEXT NOT NULL,
    reason     TEXT,
    attempts   INTEGER NOT NULL DEFAULT 0,
    exit_code  INTEGER,
    signal     INTEGER,
    started    REAL,
    ended      REAL,
    dir        TEXT,
    cache_key  TEXT,
    job_id     TEXT,
    PRIMARY KEY (run, name)
);

CREATE TABLE attempts (
    run       TEXT NOT NULL,
    step      TEXT NOT NULL,
    attempt   INTEGER NOT NULL,
    state     TEXT NOT NULL,
    host      TEXT NOT NULL,
    pid       INTEGER,
    dir       TEXT NOT NULL,
    started   REAL NOT NULL,
    ended     REAL,
    exit_code INTEGER,
    signal    INTEGER,
    cache_key TEXT,
    job_id    TEXT,
    reason    TEXT,
    PRIMARY KEY (run, step, attempt)
);
CREATE INDEX attempts_by_cache_key ON attempts (cache_key, ended) WHERE state = 'succeeded';
CREATE INDEX attempts_by_step ON attempts (step, ended) WHERE state = 'succeeded';

CREATE TABLE requests (
    run     TEXT NOT NULL,
    ts      REAL NOT NULL,
    id      TEXT NOT NULL,
    kind    TEXT NOT NULL,
    ok      INTEGER NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX requests_by_run ON requests (run, ts);

CREATE TABLE sources (
    run       TEXT NOT NULL,
    kind      TEXT NOT NULL,
    step      TEXT NOT NULL DEFAULT '',
    attempt   INTEGER NOT NULL DEFAULT 0,
    path      TEXT NOT NULL,
    offset    INTEGER NOT NULL DEFAULT 0,
    inode     INTEGER,
    lines     INTEGER NOT NULL DEFAULT 0,
    bad_lines INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run, kind, step, attempt)
);

CREATE TABLE metric_keys (
    id  INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE
);

CREATE TABLE series (
    id      INTEGER PRIMARY KEY,
    run     TEXT NOT NULL,
    step    TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    key_id  INTEGER NOT NULL,
    count   INTEGER NOT NULL DEFAULT 0,
    last    REAL,
    min     REAL,
    max     REAL,
    last_x  REAL,
    UNIQUE (run, step, attempt, key_id)
);

CREATE TABLE points (
    id    INTEGER PRIMARY KEY,
    line  INTEGER NOT NULL,
    x     REAL NOT NULL,
    epoch REAL,
    time  REAL,
    value REAL
);

CREATE TABLE point_ranges (
    series INTEGER NOT NULL,
    lo     INTEGER NOT NULL,
    hi     INTEGER NOT NULL,
    PRIMARY KEY (series, lo)
) WITHOUT ROWID;

CREATE TABLE file_hashes (
    path     TEXT PRIMARY KEY,
    size     INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode    INTEGER NOT NULL,
    hash     TEXT NOT NULL
);

CREATE VIEW metric_points AS
    SELECT s.run, s.step, s.attempt, k.key, p.line, p.x, p.epoch, p.time, p.value
    FROM series s
    JOIN metric_keys k ON k.id = s.key_id
    JOIN point_ranges r ON r.series = s.id
    JOIN points p ON p.id BETWEEN r.lo AND r.hi;
"#;
