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
    /// Training produced a loss that is not a finite number: the weights are ruined, and
    /// nothing trained from here on may be saved or scored.
    #[error(
        "training diverged at step {step} of epoch {epoch}: the loss is {loss}; lower the learning rate"
    )]
    Diverged {
        /// Epoch (from 1).
        epoch: usize,
        /// Step (from 1, counted over all epochs).
        step: usize,
        /// The loss.
        loss: f32,
    },
}
