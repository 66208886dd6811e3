//! sortie: pipelines, SLURM jobs, trials and training curves in one terminal.
//!
//! The library is the product; `main.rs` is a thin shell over [`cli`]. Dependencies point one way:
//! `cli` → `engine` → `executor`; everything may use `runlog`, `index`, `pipeline`, `metrics`, `util`.

// A panic is a crash report for the user: errors are values. Here rather than in Cargo.toml's [lints],
// which would reach the integration tests' helpers too (clippy.toml allows panics in unit tests).
// unwrap_used and expect_used are not on yet: 23 non-test sites are left.
#![deny(clippy::panic)]

pub mod cli;
pub mod engine;
pub mod executor;
pub mod index;
pub mod metrics;
pub mod pipeline;
pub mod runlog;
pub mod slurm;
pub mod trials;
pub mod tui;
pub mod util;
