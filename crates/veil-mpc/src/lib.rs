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
//! - [`bench`]: the benchmark of `veil mpc bench`: the four parties as processes (or in
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

/// Errors of the secure engine.
#[derive(Debug, thiserror::Error)]
pub enum MpcError {
    /// A weight file could not be read or does not match its spec.
    #[error("weight file {path}: {message}")]
    Weights {
        /// File path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The model has a layer the secure engine cannot evaluate.
    #[error("unsupported model: {0}")]
    Unsupported(String),
    /// Input of the wrong size or out of range.
    #[error("bad input: {0}")]
    Input(String),
    /// A peer broke the protocol: a malformed, truncated or unexpected message (named with the
    /// party and the step).
    #[error("protocol error with {peer} at {step}: {message}")]
    Protocol {
        /// The other end.
        peer: String,
        /// The protocol step.
        step: String,
        /// What was wrong.
        message: String,
    },
    /// One incoming connection was refused before it became a party's link (TLS handshake
    /// refused or not finished in time, a certificate of no accepted party). The listener
    /// goes on serving: a stranger cannot stop a server.
    #[error("refused a connection from {peer}: {reason}")]
    Refused {
        /// The remote address.
        peer: String,
        /// Why.
        reason: String,
    },
    /// The transport failed (closed connection, timeout, TLS).
    #[error("transport to {peer}: {message}")]
    Transport {
        /// The other end.
        peer: String,
        /// What went wrong.
        message: String,
    },
}
