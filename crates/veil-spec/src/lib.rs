//! veil-spec: the one declarative description of a CNN that every veil interpreter reads.
//!
//! Key types:
//! - [`ModelSpec`]: a named layer list with an input shape; serializable as TOML and JSON. A
//!   layer reads the layer before it unless it names its inputs, so a spec is a chain or a
//!   graph (residual adds, concatenation): [`graph`] resolves the data flow and the cut points.
//! - [`Layer`] / [`LayerKind`]: one operation (conv2d with groups, conv_transpose2d, padded
//!   pools, global average pool, batch_norm2d, relu, sigmoid, clip, add, concat, flatten,
//!   linear, dropout, reshape, identity) with its hyper-parameters and a name used in reports.
//! - [`Shape`]: an activation shape without the batch dimension (`[c, h, w]` or `[n]`).
//! - [`cost`]: parameters, multiplications and activation bytes per layer and per
//!   input-channel segment (DistPrivacy eqs. 2-4, SYSTEM.md section 4).
//! - [`kernels`]: conv, dense and pooling on plain numbers for the interpreters without burn.
//! - [`catalog`]: the zoo as a table of shapes, parameters and multiplications.
//! - [`zoo`]: every network of SYSTEM.md section 2, by name.
//! - [`weights`]: the tensor names and shapes a weight file must hold for a spec.
//! - [`fold`]: batch normalisation folded into the convolution before it.
//! - [`lower`]: a spec as linear maps and channel-wise ops, for the interpreters without burn.
//! - [`profile`]: privacy profiles (schema, `Nf(tau)` and `SP(tau)`), shared by the attack
//!   that writes them and the planner that enforces them.
//!
//! This crate never depends on burn: the planner, the game and the secure engine read it.

#![forbid(unsafe_code)]

pub mod catalog;
pub mod cost;
mod error;
pub mod fold;
mod gemm;
pub mod graph;
pub mod kernels;
mod layer;
pub mod lower;
pub mod profile;
mod shape;
mod spec;
pub mod weights;
pub mod zoo;

pub use error::SpecError;
pub use layer::{Arity, Layer, LayerKind, MAX_DIM};
pub use shape::{MAX_NUMEL, Shape};
pub use spec::{MAX_ACTIVATION, MAX_PARAMS, ModelSpec};
