//! veil-game: pricing privacy in device-edge co-inference with the Stackelberg game of
//! *Spears and Shields* (SYSTEM.md section 7). Pure math: no burn, no tensors.
//!
//! The service provider (SP, leader) offers a reward `R`; each vehicle `i` (follower; speed
//! `v_i`, privacy value `c_i`) picks a privacy budget `eps_i` in `[eps_min, eps_max]` and gets
//! `U_i = R (eps_i/v_i) / sum_j(eps_j/v_j) - eps_i k_i` with `k_i = c_i + e/v_i`. The SP earns
//! `U_S = lambda a sum_i (1/v_i) log(b eps_i + 1) - R`.
//!
//! Key items:
//! - [`Scenario`] / [`Vehicle`]: the game's parameters, validated ([`GameError`]).
//! - [`followers`]: best responses (clamped), the interior closed form of Theorem 3, best-response
//!   dynamics for the general (boundary) case, and Theorem 4's uniqueness condition.
//! - [`leader`]: the SP's optimal reward by exact 1-D maximisation (centralised), by the
//!   distributed Algorithm 3 (no knowledge of `c_i`), and by a linear-price baseline.
//! - [`sweep`]: the data of Figs. 6-9 (utilities vs lambda, c, number of vehicles, speed).
//! - [`report`]: results as people read them: a solution's table, a figure's lines.

#![forbid(unsafe_code)]

pub mod followers;
pub mod leader;
pub mod report;
mod scenario;
pub mod sweep;

pub use leader::{Method, Solution, solve};
pub use scenario::{AccuracyFit, GameError, Scenario, Vehicle};
