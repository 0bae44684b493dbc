//! [`ModelError`]: failures of the plaintext engine, with context.

use std::path::PathBuf;

/// Errors from building, running, training or (de)serialising a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The spec itself is invalid.
    #[error(transparent)]
    Spec(#[from] veil_spec::SpecError),
    /// Reading a dataset failed.
    #[error(transparent)]
    Data(#[from] veil_data::DataError),
    /// An input does not match what a layer expects.
    #[error("{context}: expected shape {expected:?}, got {got:?}")]
    Shape {
        /// Where (model, layer).
        context: String,
        /// Expected dims (without batch unless stated).
        expected: Vec<usize>,
        /// Received dims.
        got: Vec<usize>,
    },
    /// A weight file could not be read or written.
    #[error("weights {path}: {reason}")]
    Weights {
        /// File path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A request that makes no sense for this model (e.g. partial sums of a linear layer).
    #[error("{0}")]
    Invalid(String),
}
