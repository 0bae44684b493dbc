//! [`PlanError`]: every failure of the planner, with the device, layer or file it concerns.

/// Errors of the planner.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The model spec is invalid.
    #[error(transparent)]
    Spec(#[from] veil_spec::SpecError),
    /// A fleet, profile or experiment description is malformed.
    #[error("{what}: {message}")]
    Config {
        /// Which file or section.
        what: String,
        /// What is wrong.
        message: String,
    },
    /// A profile does not cover a model or a tolerated SSIM.
    #[error("privacy profile for {model}: {message}")]
    Profile {
        /// Model name.
        model: String,
        /// What is missing.
        message: String,
    },
    /// The exact solver failed (not for infeasibility, which is an answer).
    #[error("exact solver {solver}: {message}")]
    Solver {
        /// Which solver.
        solver: crate::milp::ExactSolver,
        /// What it said.
        message: String,
    },
    /// The requested exact solver is not compiled into this build.
    #[error("the {solver} solver is not compiled into this build: {how}")]
    SolverUnavailable {
        /// Which solver.
        solver: crate::milp::ExactSolver,
        /// How to get it.
        how: &'static str,
    },
    /// Reading a file failed.
    #[error("cannot read {path}: {message}")]
    Read {
        /// File path.
        path: String,
        /// What went wrong.
        message: String,
    },
}

impl PlanError {
    /// A configuration error about `what`.
    pub fn config(what: impl Into<String>, message: impl Into<String>) -> Self {
        PlanError::Config {
            what: what.into(),
            message: message.into(),
        }
    }

    /// A failure of `solver`.
    pub fn solver(solver: crate::milp::ExactSolver, message: impl ToString) -> Self {
        PlanError::Solver {
            solver,
            message: message.to_string(),
        }
    }
}
