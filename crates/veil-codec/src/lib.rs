//! veil-codec: the one byte codec behind veil's wire formats (the secure engine's frames in
//! `veil-mpc::wire`, the runtime's in `veil-net::wire`).
//!
//! Contract, shared by every format built on it:
//! - integers and floats are little-endian, floats as their IEEE-754 bits;
//! - a sequence is a `u32` count followed by its items; a string is UTF-8 bytes so prefixed;
//! - [`Reader`] treats its input as hostile: every count is checked against the bytes left
//!   *before* anything is allocated, a short buffer is an error naming the byte offset, and
//!   [`Reader::finish`] refuses trailing bytes. Nothing here panics on any input.
//!
//! Errors are [`WireError`]s naming what was being decoded (`"material"`, `"frame"`, ...).

#![forbid(unsafe_code)]

mod reader;
mod writer;

pub use reader::Reader;
pub use writer::Writer;

/// A decoding failure: what was being read and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what}: {message}")]
pub struct WireError {
    /// What was being decoded.
    pub what: &'static str,
    /// Why it failed.
    pub message: String,
}
