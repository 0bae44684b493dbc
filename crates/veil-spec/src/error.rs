//! [`SpecError`]: everything that can be wrong with a model spec, with the layer it concerns.

use crate::Shape;

/// Errors from building, parsing or validating a [`crate::ModelSpec`].
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A layer cannot accept the shape produced by the layers before it.
    #[error("layer {index} `{layer}`: {reason} (input shape {input})")]
    Shape {
        /// Position of the layer in the list.
        index: usize,
        /// Name of the layer.
        layer: String,
        /// Input shape the layer received.
        input: Shape,
        /// What is wrong.
        reason: String,
    },
    /// A hyper-parameter is out of range (zero kernel, dropout probability above 1, ...).
    #[error("layer {index} `{layer}`: invalid parameter: {reason}")]
    Param {
        /// Position of the layer in the list.
        index: usize,
        /// Name of the layer.
        layer: String,
        /// What is wrong.
        reason: String,
    },
    /// Two layers share a name, or a name is empty.
    #[error("layer names must be unique and non-empty: `{0}`")]
    Name(String),
    /// The input shape itself is unusable.
    #[error("invalid input shape {0}: every dimension must be positive and there must be 1 or 3")]
    Input(Shape),
    /// No layer of that name exists in the spec.
    #[error("model `{model}` has no layer named `{layer}` (layers: {available})")]
    UnknownLayer {
        /// Model name.
        model: String,
        /// Requested layer name.
        layer: String,
        /// Comma-separated list of the layer names that exist.
        available: String,
    },
    /// No zoo model of that name exists.
    #[error("unknown model `{name}` (zoo: {available})")]
    UnknownModel {
        /// Requested name.
        name: String,
        /// Comma-separated zoo names.
        available: String,
    },
    /// The spec text could not be parsed.
    #[error("cannot parse model spec as {format}: {message}")]
    Parse {
        /// "TOML" or "JSON".
        format: &'static str,
        /// Parser message.
        message: String,
    },
    /// A layer an interpreter cannot evaluate (see `veil_spec::lower`).
    #[error("model `{model}` layer `{layer}`: {reason}")]
    Unsupported {
        /// Model name.
        model: String,
        /// Layer name.
        layer: String,
        /// Why.
        reason: String,
    },
    /// A privacy profile is unusable (wrong version, bad numbers, nothing for a tau).
    #[error("privacy profile for {model}: {message}")]
    Profile {
        /// Model the profile is for.
        model: String,
        /// What is wrong.
        message: String,
    },
    /// A weight file could not be read or written, or does not match its spec's layout.
    #[error("weights {path}: {reason}")]
    Weights {
        /// File path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Reading a spec file failed.
    #[error("cannot read model spec {path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
}
