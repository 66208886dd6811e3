//! sortie: pipelines, SLURM jobs, trials and training curves in one terminal.
//!
//! The library is the product; `main.rs` is a thin shell over [`cli`]. Dependencies point one way:
//! `cli` → `engine` → `executor`; everything may use `runlog`, `index`, `pipeline`, `metrics`, `util`.

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
