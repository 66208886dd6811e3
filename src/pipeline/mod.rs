//! The pipeline file (`sortie.toml`): reading it with locations, validation, matrix expansion, the DAG,
//! and the expanded [`Plan`] the engine runs. Entry points: [`load`] and [`load_str`].

mod dag;
mod diag;
mod expand;
pub mod inputs;
mod load;
pub mod plan;
pub mod report;
mod spec;
pub mod template;
pub mod units;

pub(crate) use diag::closest;
pub use diag::{Diagnostic, Diagnostics};
pub use load::{load, load_str};
pub use plan::*;
