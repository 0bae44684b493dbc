//! veil-mpc: the secure engine (SYSTEM.md section 8). Two non-colluding servers evaluate a
//! CNN on additive secret shares in `Z_2^64`; the healthcare center, which owns the model and
//! receives the result, acts as the trusted dealer of correlated randomness.
//!
//! - [`ring`]: fixed-point encoding and the local truncation of shares, with its error bound.
//! - [`share`]: additive shares and the explicit [`share::reveal`].
//! - [`prg`], [`dcf`]: fixed-key AES PRG and distributed comparison functions (FSS).
//! - [`dealer`]: the healthcare center's model shares and per-inference material.
//! - [`engine`]: one server's online phase.
//! - [`transport`]: the frame format and the in-memory link double.
//! - [`local`]: every party in one process over the in-memory link.
//! - [`net`]: TCP with mutual TLS, framed messages with timeouts.
//! - [`roles`]: the server, dealer and sensor processes.
//! - [`wire`]: byte encodings of model shares, material and shares, decoded defensively.
//! - [`mod@bench`]: the benchmark of `veil mpc bench`: the four parties as processes (or in
//!   memory), scored against plaintext inference.
//! - [`model`]: the public architecture and secret weights compiled from a weight file.

#![forbid(unsafe_code)]

pub mod bench;
pub mod dcf;
pub mod dealer;
pub mod engine;
pub mod local;
pub mod model;
pub mod net;
pub mod prg;
pub mod ring;
pub mod roles;
pub mod share;
pub mod transport;
pub mod wire;

use std::time::Duration;

/// Errors of the secure engine. Each names where it happened (a path, a party, a protocol
/// step); an underlying error (I/O, TLS, decoding, a spec) is its [`std::error::Error::source`],
/// so print the chain (`{:#}` of `anyhow`) to see it.
#[derive(Debug, thiserror::Error)]
pub enum MpcError {
    /// A weight file could not be read or does not match its spec.
    #[error("weight file {path}")]
    Weights {
        /// File path.
        path: String,
        /// What is wrong (`veil_spec::weights`' error).
        #[source]
        source: Box<veil_spec::SpecError>,
    },
    /// The spec cannot be compiled for the secure engine: it does not validate or lower, or
    /// its parameters do not fit it.
    #[error("unsupported model {model}")]
    Model {
        /// Model name.
        model: String,
        /// Why.
        #[source]
        source: Box<veil_spec::SpecError>,
    },
    /// The model has a layer the secure engine cannot evaluate.
    #[error("unsupported model: {0}")]
    Unsupported(String),
    /// Input of the wrong size or out of range.
    #[error("bad input: {0}")]
    Input(String),
    /// The operating system's random generator failed (no dealer secrets without it).
    #[error("the OS random generator failed")]
    Entropy(#[source] rand::rand_core::OsError),
    /// A peer broke the protocol: a truncated or unexpected message, or one that does not fit
    /// the step (named with the party and the step).
    #[error("protocol error with {peer} at {step}: {violation}")]
    Protocol {
        /// The other end.
        peer: String,
        /// The protocol step.
        step: String,
        /// What was wrong.
        violation: Violation,
    },
    /// A peer's message could not be decoded (a malformed, short or long payload).
    #[error("protocol error with {peer} at {step}: undecodable message")]
    Malformed {
        /// The other end.
        peer: String,
        /// The protocol step.
        step: String,
        /// The decoder's error.
        #[source]
        source: veil_codec::WireError,
    },
    /// The model spec a peer sent does not parse or validate.
    #[error("protocol error with {peer} at {step}: unusable model spec")]
    Spec {
        /// The other end.
        peer: String,
        /// The protocol step.
        step: String,
        /// What is wrong with the spec.
        #[source]
        source: Box<veil_spec::SpecError>,
    },
    /// One incoming connection was refused before it became a party's link (TLS handshake
    /// refused or not finished in time, a certificate of no accepted party). The listener
    /// goes on serving: a stranger cannot stop a server.
    #[error("refused a connection from {peer}: {reason}")]
    Refused {
        /// The remote address.
        peer: String,
        /// Why.
        reason: Refusal,
        /// The TLS layer's error, when it refused the handshake.
        #[source]
        source: Option<std::io::Error>,
    },
    /// An I/O operation on the transport failed (runtime, listen, accept, connect, TLS
    /// handshake, read, write).
    #[error("transport to {peer}: {action}")]
    Transport {
        /// The other end (`-` before one is known).
        peer: String,
        /// What was being done.
        action: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Something awaited on the transport did not happen within the timeout.
    #[error("transport to {peer}: no {awaited} within {after:?}")]
    Timeout {
        /// The other end (`-` before one is known).
        peer: String,
        /// What was awaited (a connection, a frame, a send to complete).
        awaited: String,
        /// The timeout.
        after: Duration,
    },
    /// The peer closed the link (or dropped its in-memory end) in the middle of the session.
    #[error("transport to {peer}: connection closed {during}")]
    Closed {
        /// The other end.
        peer: String,
        /// When: what was under way.
        during: String,
    },
    /// A party's TLS credentials or configuration are unusable.
    #[error("TLS set-up of {party}")]
    Tls {
        /// The party whose credentials, configuration or name failed.
        party: String,
        /// `veil-tls`'s error.
        #[source]
        source: veil_tls::TlsError,
    },
    /// A server thread of an in-process run panicked.
    #[error("server {party} panicked")]
    Panicked {
        /// The server.
        party: String,
    },
}

/// How a peer broke the protocol: what [`MpcError::Protocol`] reports when there is no
/// underlying error, only a message that does not fit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// The dealer's material has fewer items than the architecture consumes.
    #[error("material ran out")]
    MaterialRanOut,
    /// The next material item is not ReLU material for this many elements.
    #[error("expected ReLU material for {0} elements")]
    ExpectedRelu(usize),
    /// The next material item is not linear-layer material.
    #[error("expected linear material")]
    ExpectedLinear,
    /// Linear material whose triples do not fit the layer and batch.
    #[error("linear material of the wrong size")]
    LinearSize,
    /// The dealer's material has more items than the architecture consumes.
    #[error("material left over")]
    MaterialLeftOver,
    /// The model shares end before this linear layer.
    #[error("no model shares for this layer")]
    NoModelShares,
    /// The model shares do not fit the architecture (named).
    #[error("shares do not fit the architecture of {0}")]
    SharesDoNotFit(String),
    /// A frame of another kind than expected.
    #[error("unexpected {name} message (kind {kind})", name = crate::net::Kind::name(*.kind))]
    UnexpectedKind {
        /// The kind byte that arrived.
        kind: u8,
    },
    /// A frame of another step than expected (the step that arrived).
    #[error("message of step {0} arrived")]
    WrongStep(u32),
    /// An open frame whose payload does not hold the expected number of values.
    #[error("{got} payload bytes, expected {} ({expected} values of {width} bytes)", .expected * .width)]
    PayloadSize {
        /// Payload bytes received.
        got: usize,
        /// Values expected.
        expected: usize,
        /// Bytes per value.
        width: usize,
    },
    /// An open frame of packed values with a value at or above `2^bits`.
    #[error("an opened value wider than {0} bits")]
    OpenedTooWide(u32),
    /// A frame too short for its header (bytes received).
    #[error("truncated frame of {0} bytes")]
    Truncated(usize),
    /// A frame whose length field disagrees with its size.
    #[error("length field {field}, frame body {body}")]
    LengthMismatch {
        /// The length field.
        field: usize,
        /// Bytes after the length field.
        body: usize,
    },
    /// A length field outside the accepted range.
    #[error(
        "frame length {length} outside {min}..={max}",
        min = transport::FRAME_HEADER - 4,
        max = transport::MAX_FRAME
    )]
    FrameLength {
        /// The length field.
        length: usize,
    },
    /// The sensor sent a batch after the dealer said done.
    #[error("the sensor sent more batches than the dealer")]
    ExtraBatches,
    /// The sensor's batch does not match the dealer's announcement.
    #[error("{samples} samples / {words} words, the dealer announced {announced} samples")]
    InputSize {
        /// Samples the sensor announced.
        samples: usize,
        /// Words it sent.
        words: usize,
        /// Samples the dealer announced.
        announced: usize,
    },
    /// The servers' input-mask frames disagree on the form of the input, or a mask does not
    /// fit the batch (words received, words expected).
    #[error("input mask of {got} words, expected {expected} (or both servers asking for shares)")]
    InputMask {
        /// Words received.
        got: usize,
        /// Words expected.
        expected: usize,
    },
    /// An input form byte other than 0 (shares) or 1 (masked), or a masked input for a model
    /// whose first layer is not linear.
    #[error("input form {0}")]
    InputForm(u8),
    /// A server's output shares do not fit the batch.
    #[error("{words} words for {samples} samples")]
    OutputSize {
        /// Words received.
        words: usize,
        /// Samples in the batch.
        samples: usize,
    },
    /// The model spec is not UTF-8 (the length of its valid prefix).
    #[error("the model spec is not UTF-8 (valid up to byte {0})")]
    SpecNotUtf8(usize),
}

/// Why an incoming connection was refused ([`MpcError::Refused`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The TLS handshake did not finish within the timeout.
    #[error("TLS handshake not finished within {0:?}")]
    HandshakeTimeout(Duration),
    /// The TLS layer refused the handshake (the error is the source).
    #[error("TLS handshake refused")]
    Handshake,
    /// The verified certificate is of none of the accepted parties.
    #[error("certificate is not one of {0:?}")]
    Certificate(Vec<String>),
    /// The party already has its link; the first connection of each party stays.
    #[error("a second connection of {0}")]
    SecondConnection(String),
    /// This many handshakes were already running; the connection was closed at once.
    #[error("{0} handshakes already in progress")]
    Busy(usize),
}
