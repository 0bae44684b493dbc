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
//! - [`drive`]: a running fleet driven with requests (counters sampled, a fault injected)
//!   and the report of the run (`veil net load`).
//! - [`bench`]: a coordinator and a fleet started as processes on loopback, driven and
//!   checked against single-process inference (`veil net bench`).
//! - [`views`]: what a device observed, recorded for an audit, and read back per request.
//! - [`grpc`]: one unary gRPC method over mutual TLS carrying veil's frames.
//!
//! The node logic is transport-independent and also tested over an in-process message queue.

#![forbid(unsafe_code)]

pub mod bench;
pub mod cluster;
pub mod deploy;
pub mod drive;
pub mod grpc;
pub mod incoming;
pub mod load;
pub mod mask;
pub mod node;
pub mod planner;
pub mod views;
pub mod wire;

/// Errors of the runtime (named with the request, stage, layer or device).
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The model cannot be deployed as placed, or the fleet cannot run it.
    #[error("deployment: {0}")]
    Deploy(String),
    /// A parameter of a run (helper count, request count, duration) out of its range.
    #[error("{0}")]
    Invalid(String),
    /// The model spec cannot be lowered for the runtime.
    #[error(transparent)]
    Spec(#[from] veil_spec::SpecError),
    /// The planner failed (not: found no placement, which is an answer).
    #[error("planning {model}")]
    Plan {
        /// The model.
        model: String,
        /// The planner's error.
        #[source]
        source: veil_plan::PlanError,
    },
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
    /// A key or certificate file could not be read.
    #[error("reading {path}")]
    Keys {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A listen or peer address, TLS set-up, connection or server failed.
    #[error("{context}")]
    Transport {
        /// What was being done (with the peer or address).
        context: String,
        /// The transport's error.
        #[source]
        source: tonic::transport::Error,
    },
    /// A gRPC call failed (the peer's status).
    #[error("gRPC call failed")]
    Call(#[source] Box<tonic::Status>),
    /// A frame could not be decoded.
    #[error(transparent)]
    Wire(#[from] veil_codec::WireError),
    /// A peer answered with a frame that makes no sense at that point.
    #[error("{peer} answered {answer}")]
    Unexpected {
        /// The peer.
        peer: String,
        /// What it sent (debug form).
        answer: String,
    },
    /// The source refused the request; the reason is the source's.
    #[error("rejected: {0}")]
    Rejected(String),
    /// Node counters were not valid JSON.
    #[error("node counters")]
    Counters(#[source] serde_json::Error),
    /// A node could not listen on its address.
    #[error("listening on {addr}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The I/O runtime could not start.
    #[error("starting the I/O runtime")]
    RuntimeStart(#[source] std::io::Error),
    /// A file could not be written.
    #[error("{path}")]
    File {
        /// The file (or what was being started).
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A trace record could not be encoded.
    #[error("encoding a trace record")]
    Encode(#[source] serde_json::Error),
    /// Keys could not be generated or written.
    #[error(transparent)]
    Tls(#[from] veil_tls::TlsError),
    /// A process of a benchmark fleet failed or could not be started.
    #[error(transparent)]
    Harness(#[from] veil_harness::HarnessError),
    /// A task of the runtime panicked or was cancelled, or shared state was poisoned.
    #[error("runtime: {0}")]
    Runtime(String),
}
