//! The pipeline file (`sortie.toml`): serde types, loading with spans, validation, matrix expansion, the DAG.

pub mod plan;

pub use plan::*;
