//! veil-plan: which device computes what (DistPrivacy §II-B to §III, SYSTEM.md sections 4
//! and 5). Pure math: no burn, no tensors. The exact ILP is solved by microlp (pure Rust), or by
//! HiGHS (a C++ MIP solver) with the `highs` feature.
//!
//! - [`fleet`]: device catalog (RPi3, Nexus 5, STM32H7, custom), helpers, cameras, per-period
//!   budgets; fleet TOML files.
//! - [`privacy`]: privacy profiles (`veil profile` JSON or built-in) and `Nf_l(tau)`, `SP(tau)`.
//! - [`stages`]: a model's compute stages, segment costs (eqs. 2-4), transfer sizes and caps:
//!   [`ModelPlan`].
//! - [`placement`]: [`Placement`], latency and shared data (eqs. 5-7), constraint check.
//! - [`greedy`]: Algorithm 1 and the baselines against a [`greedy::Ledger`].
//! - [`ilp`]: the exact ILP (8a-8i) built with good_lp: time limit, warm start, gap.
//! - [`milp`]: its solvers, [`milp::ExactSolver`]: microlp (always) and HiGHS (feature).
//! - [`chart`]: the lines and labels of a simulation chart (drawn by the CLI).
//! - [`gap`]: the greedy against the exact ILP on preset instances.
//! - [`sim`]: Poisson workloads over periods, Fig. 3 figures.
//! - [`study`]: a simulation study as `veil simulate` runs it (which experiment, log lines,
//!   the placement-speed table).
//!
//! Errors: [`PlanError`].

#![forbid(unsafe_code)]

pub mod chart;
mod error;
pub mod experiment;
pub mod fleet;
pub mod gap;
pub mod greedy;
pub mod ilp;
pub mod milp;
pub mod placement;
pub mod privacy;
pub mod sim;
pub mod single;
pub mod stages;
pub mod study;

pub use error::PlanError;
pub use fleet::{Budgets, Device, DeviceClass, Fleet, Source};
pub use greedy::{Ledger, Placer, Strategy};
pub use placement::{Cost, Placement, Violation, check, request_cost};
pub use privacy::{Profile, StageCap};
pub use sim::{SimConfig, SimResult, simulate};
pub use stages::{ModelPlan, PrivacyRule, Stage};
