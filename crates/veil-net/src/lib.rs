//! veil-net: the distributed runtime (SYSTEM.md sections 4 and 9; issue #8, in progress).
//!
//! - [`deploy`]: a placement turned into per-device work: which input maps of which conv
//!   layer each device owns, the weight slices it needs (and nothing more), and where its
//!   outputs go.
//! - [`node`]: one device's execution of requests as messages arrive: partial sums of its
//!   channels for all output maps, reduced at the owners of the next layer's maps, which add
//!   the bias and apply the channel-wise layers.
//! - [`wire`]: the frames of the runtime, decoded defensively.
//! - [`cluster`]: nodes and the coordinator over gRPC (registration, heartbeats, planning,
//!   assignment under plan epochs, re-planning around dead helpers, retries, rejections with
//!   reasons, admission limits).
//! - [`planner`]: the live fleet placed with the planner's greedy.
//! - [`load`]: a Poisson load generator with latency percentiles, per-link bytes and traces.
//! - [`grpc`]: one unary gRPC method over mutual TLS carrying veil's frames.
//!
//! The node logic is transport-independent and also tested over an in-process message queue.

#![forbid(unsafe_code)]

pub mod cluster;
pub mod deploy;
pub mod grpc;
pub mod load;
pub mod node;
pub mod planner;
pub mod wire;

/// Errors of the runtime (named with the request, stage, layer or device).
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The model cannot be deployed as placed.
    #[error("deployment: {0}")]
    Deploy(String),
    /// A message that does not fit the deployment (unknown stage, map or size).
    #[error("device {device}: bad message for request {request}: {message}")]
    Message {
        /// Receiving device.
        device: usize,
        /// Request id.
        request: u64,
        /// What is wrong.
        message: String,
    },
}
