//! The SLURM client: one typed [`Job`] model, decoders for every `--json` dialect from Slurm 21.08
//! (v0.0.37) to 26.05 (v0.0.45) and for the text fallback formats, and two [`SlurmBackend`]s: the
//! commands ([`CliBackend`]) and slurmrestd ([`RestBackend`]). See `docs/slurm.md`.
//!
//! - `model`: [`Job`], [`JobState`] (every state code, unknown ones kept), [`Partition`].
//! - `decode`: bytes → jobs; JSON picks its dialect from `meta`, text parses `\x1F`-separated rows.
//! - `scontrol`: `scontrol show job -o` details and `sinfo` capacity.
//! - `paths`: `%j`/`%A`/`%a`/`%x`/... expansion of output file patterns.
//! - `jobid`: [`JobId`], the one parser of `123`, `123_4` and `123_[4-9%2]`.
//! - `error`: [`SlurmError`], classified into transient / submit-limit / invalid-job / failed.
//! - `process`: running a command with a timeout (behind a trait for tests).
//! - `backend`, `cli_backend`, `rest_backend`: the trait and its implementations; `connect`: the
//!   one choice of backend (`--rest`, `SORTIE_SLURM_BACKEND`, config) and its construction.
//! - `poller`: one budgeted, adaptive polling service publishing [`poller::JobsSnapshot`]s.
//! - `shared`: one poller per user and host, elected through a lease; the others read its snapshot.

pub mod backend;
pub mod cli_backend;
pub mod connect;
pub mod decode;
pub mod error;
pub mod jobid;
pub mod lookup;
pub mod model;
pub mod paths;
pub mod poller;
pub mod process;
pub mod rest_backend;
pub mod scontrol;
pub mod shared;

#[cfg(test)]
mod fakes;
#[cfg(test)]
mod fixture_tests;
#[cfg(test)]
mod live_tests;

pub use backend::{HistoryQuery, JobQuery, SlurmBackend};
pub use cli_backend::{CliBackend, CliConfig, JsonPolicy};
pub use decode::{DecodeError, Dialect, JobList};
pub use error::SlurmError;
pub use jobid::JobId;
pub use model::{Job, JobState, Partition, StateClass};
pub use rest_backend::{RestBackend, RestConfig};
pub use scontrol::JobDetails;
