//! The run directory's files, which are the truth about a run: the event log, the lease held by the one
//! engine that drives the run, control requests dropped by other processes, and the step attempt dirs.

pub mod control;
pub mod events;
pub mod lease;
pub mod liveness;
pub mod paths;
pub mod state;

pub use events::{Event, EventWriter, Record, RunState, StepState};
pub use paths::{Project, RunDir};
