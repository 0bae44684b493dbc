//! veil-onnx: an ONNX file (as PyTorch's exporter writes it) as a veil [`ModelSpec`] and the
//! weight tensors of veil's layout ([`veil_spec::weights`]), so every veil interpreter can run
//! a model trained elsewhere.
//!
//! Scope (issue #20, first step): **sequential graphs** — every node reads the previous node's
//! output — of `Conv` (groups 1, dilation 1, symmetric padding), `Gemm` and `MatMul` (+ `Add`)
//! with constant weights, `Relu`, `MaxPool` and `AveragePool` without padding, `Flatten`,
//! `Reshape` to a constant shape (batch entry 0 or -1), `Identity` and inference `Dropout`
//! (dropped), and a final `Softmax` or `LogSoftmax` over the classes (dropped: veil's models
//! output logits, which is what an argmax and an inversion attack need), for default-domain
//! opsets 9 to 18, with a single graph output. Anything else is an [`OnnxError::Unsupported`]
//! naming the node, the operator and what is missing; [`coverage`] lists, for a whole file,
//! which nodes import would accept.
//!
//! The file is attacker input: prost decodes it without unbounded allocation (every length is
//! bounded by the bytes read), tensor sizes are checked before their values are copied, and
//! non-finite weights are refused.
//!
//! Key items: [`import`], [`Imported`], [`import_to_dir`] (what `veil import` runs),
//! [`coverage`] and [`check_file`] (`veil import --check`), [`OnnxError`].

mod graph_ops;
mod lower;
mod ops;
mod proto;
mod report;
mod tensor;

pub use lower::{NodeSupport, OPSETS, coverage};
pub use ops::SUPPORTED;
pub use report::{CoverageReport, ImportReport, check_file, import_to_dir};
pub use tensor::MAX_ELEMENTS;

use veil_spec::weights::Tensors;
use veil_spec::{ModelSpec, SpecError};

/// Largest ONNX file import reads (1 GiB).
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// Everything that can go wrong importing an ONNX file.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The bytes are not an ONNX protobuf.
    #[error("not an ONNX model")]
    Decode(#[source] prost::DecodeError),
    /// A structural problem of the file (no graph, no input, an opset out of range).
    #[error("{0}")]
    Invalid(String),
    /// A node import cannot translate.
    #[error("node `{node}` ({op}): {what}")]
    Unsupported {
        /// Node name (or its position when unnamed).
        node: String,
        /// Operator.
        op: String,
        /// What is missing or out of range.
        what: String,
    },
    /// A constant tensor is malformed or of a kind import does not read.
    #[error("tensor `{name}`: {what}")]
    Tensor {
        /// Tensor name.
        name: String,
        /// The defect.
        what: String,
    },
    /// The translated layers do not form a valid veil spec, or a weight has the wrong shape.
    #[error("the imported model is not a valid veil model: {0}")]
    Spec(#[from] SpecError),
    /// Writing the imported model failed.
    #[error("cannot write {path}")]
    Write {
        /// The file or directory.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing the weight file failed.
    #[error("cannot write {path}")]
    WriteWeights {
        /// The weight file.
        path: String,
        /// Why.
        #[source]
        source: SpecError,
    },
    /// Reading the file failed.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// An imported model.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The veil spec (validated).
    pub spec: ModelSpec,
    /// Its weights in veil's layout (every tensor [`veil_spec::weights::layout`] names).
    pub tensors: Tensors,
    /// The default-domain opset of the file.
    pub opset: i64,
    /// Nodes that were dropped (identity, dropout, the final softmax), as `name (op)`.
    pub dropped: Vec<String>,
}

/// Imports the ONNX model in `bytes` under the model name `name`.
pub fn import(bytes: &[u8], name: &str) -> Result<Imported, OnnxError> {
    let model = decode_model(bytes)?;
    lower::lower(&model, name)
}

/// Reads an ONNX file (at most [`MAX_FILE_BYTES`]).
pub(crate) fn read_file(path: &std::path::Path) -> Result<Vec<u8>, OnnxError> {
    let read_err = |source| OnnxError::Read {
        path: path.display().to_string(),
        source,
    };
    let len = std::fs::metadata(path).map_err(read_err)?.len();
    if len > MAX_FILE_BYTES {
        return Err(OnnxError::Invalid(format!(
            "{}: {len} bytes, more than the {MAX_FILE_BYTES} import reads",
            path.display()
        )));
    }
    std::fs::read(path).map_err(read_err)
}

/// Reads and imports an ONNX file; the model is named after the file stem.
pub fn import_file(path: &std::path::Path) -> Result<Imported, OnnxError> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("imported");
    import(&read_file(path)?, stem)
}

pub(crate) fn decode_model(bytes: &[u8]) -> Result<proto::ModelProto, OnnxError> {
    <proto::ModelProto as prost::Message>::decode(bytes).map_err(OnnxError::Decode)
}
