//! Training metrics written by user code: the line protocol and incremental reading of metric files.
//! Storing them is the index's job (`crate::index`); this module knows nothing of SQLite.

pub mod protocol;
pub mod tailer;

pub use protocol::{Axes, BadLine, MetricLine, Scratch, parse_line, scan_line};
pub use tailer::{Chunk, Tailer};

/// The environment variable that tells a step's code where to append its metric lines.
pub const METRICS_ENV: &str = "SORTIE_METRICS";
