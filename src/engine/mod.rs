//! The engine drives runs: it creates them, schedules their steps over the DAG through an executor, keeps
//! the event log, and answers control requests. It runs in a foreground `sortie run` or as a detached
//! process that survives the terminal.

pub mod cache;
pub mod create;
pub mod detach;
pub mod progress;
pub mod scheduler;

pub use create::{Force, create_run, load_plan};
pub use progress::ProgressMode;
pub use scheduler::{DriveOptions, drive};
