//! veil-mpc: the secure engine (SYSTEM.md section 8). Two non-colluding servers evaluate a
//! CNN on additive secret shares in `Z_2^64`; the healthcare center, which owns the model and
//! receives the result, acts as the trusted dealer of correlated randomness.
//!
//! - [`ring`]: fixed-point encoding and the local truncation of shares, with its error bound.
//! - [`share`]: additive shares and the explicit [`share::reveal`].
//! - [`prg`], [`dcf`]: fixed-key AES PRG and distributed comparison functions (FSS).

#![forbid(unsafe_code)]

pub mod dcf;
pub mod prg;
pub mod ring;
pub mod share;
