//! The MILP back ends of the exact placement ([`crate::ilp`]): **microlp**, pure Rust and
//! always built, and **HiGHS**, a C++ solver behind the `highs` cargo feature (built from
//! source: cmake, a C++ compiler and libclang). Both take the same good_lp model and answer
//! with the same [`Solved`], so every caller and test is solver-agnostic.
//!
//! Contract of [`solve`]: `Ok(None)` means the model is infeasible or the time limit passed
//! before any feasible point was found; `Ok(Some(s))` carries one value per column (in the
//! order the columns were added), the objective of those values, and whether the solver
//! proved them optimal. A solver that is not compiled in is an error naming the feature.

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use good_lp::constraint::Constraint;
use good_lp::variable::UnsolvedProblem;
use good_lp::{ResolutionError, Solution, SolutionStatus, SolverModel, Variable};
use good_lp::{WithInitialSolution, WithTimeLimit};
use serde::{Deserialize, Serialize};

use crate::PlanError;
use crate::ilp::ExactConfig;

/// Which MILP solver an exact solve uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum ExactSolver {
    /// microlp: pure Rust branch and bound, single-threaded; always available.
    Microlp,
    /// HiGHS: needs the `highs` feature of veil-plan (or veil-cli).
    Highs,
}

impl ExactSolver {
    /// Every solver, in the order they are listed to users.
    pub const ALL: [ExactSolver; 2] = [ExactSolver::Microlp, ExactSolver::Highs];

    /// HiGHS when this build has it, microlp otherwise.
    pub const fn preferred() -> ExactSolver {
        if cfg!(feature = "highs") {
            ExactSolver::Highs
        } else {
            ExactSolver::Microlp
        }
    }

    /// Whether this build can solve with it.
    pub const fn is_available(self) -> bool {
        match self {
            ExactSolver::Microlp => true,
            ExactSolver::Highs => cfg!(feature = "highs"),
        }
    }

    /// The solvers this build has.
    pub fn available() -> Vec<ExactSolver> {
        ExactSolver::ALL
            .into_iter()
            .filter(|s| s.is_available())
            .collect()
    }

    /// The name used on the command line and in JSON.
    pub const fn name(self) -> &'static str {
        match self {
            ExactSolver::Microlp => "microlp",
            ExactSolver::Highs => "highs",
        }
    }
}

impl fmt::Display for ExactSolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ExactSolver {
    type Err = PlanError;

    fn from_str(s: &str) -> Result<Self, PlanError> {
        ExactSolver::ALL
            .into_iter()
            .find(|solver| solver.name() == s)
            .ok_or_else(|| {
                PlanError::config("exact", format!("unknown solver {s:?} (microlp or highs)"))
            })
    }
}

/// A model ready for a back end: the good_lp problem, its rows, its columns in creation order
/// and an optional warm start (one value per column).
pub struct Model {
    /// Objective and variables.
    pub problem: UnsolvedProblem,
    /// Rows.
    pub constraints: Vec<Constraint>,
    /// Columns, in the order good_lp created them.
    pub columns: Vec<Variable>,
    /// A feasible point to start from, one value per column.
    pub warm_start: Option<Vec<f64>>,
}

/// What a back end found.
#[derive(Clone, Debug, PartialEq)]
pub struct Solved {
    /// One value per column, in column order.
    pub values: Vec<f64>,
    /// Objective of `values`.
    pub objective: f64,
    /// Relative gap between the incumbent and the best bound (0 when proven optimal).
    pub gap: f64,
    /// Whether optimality was proven (within the solver's tolerance).
    pub optimal: bool,
    /// The solver's own word for how it ended.
    pub status: String,
    /// Wall-clock seconds of the solve.
    pub seconds: f64,
}

/// Solves `model` with `cfg.solver` (see the module contract).
pub fn solve(model: Model, cfg: &ExactConfig) -> Result<Option<Solved>, PlanError> {
    if !(cfg.time_limit_s.is_finite() && cfg.time_limit_s > 0.0) {
        return Err(PlanError::config(
            "exact",
            format!(
                "time limit must be positive seconds, got {}",
                cfg.time_limit_s
            ),
        ));
    }
    match cfg.solver {
        ExactSolver::Microlp => solve_microlp(model, cfg),
        ExactSolver::Highs => solve_highs(model, cfg),
    }
}

fn solve_microlp(model: Model, cfg: &ExactConfig) -> Result<Option<Solved>, PlanError> {
    let Model {
        problem,
        constraints,
        columns,
        warm_start,
    } = model;
    let mut problem = problem
        .using(good_lp::microlp)
        .with_time_limit(cfg.time_limit_s);
    if let Some(values) = warm_start {
        problem = problem.with_initial_solution(columns.iter().copied().zip(values));
    }
    for c in constraints {
        problem.add_constraint(c);
    }
    let started = Instant::now();
    let solution = match problem.solve() {
        Ok(solution) => solution,
        // good_lp's microlp back end answers `Other` only when the time limit passed before
        // any feasible point was found.
        Err(ResolutionError::Infeasible | ResolutionError::Other(_)) => return Ok(None),
        Err(e) => return Err(PlanError::solver(ExactSolver::Microlp, e)),
    };
    let seconds = started.elapsed().as_secs_f64();
    let optimal = matches!(solution.status(), SolutionStatus::Optimal);
    let values = columns.iter().map(|&v| solution.value(v)).collect();
    let inner = solution.into_inner();
    let gap = if optimal {
        0.0
    } else {
        inner.gap().filter(|g| g.is_finite()).unwrap_or(f64::NAN)
    };
    Ok(Some(Solved {
        values,
        objective: inner.objective(),
        gap,
        optimal,
        status: format!("{:?}", inner.termination_reason()),
        seconds,
    }))
}

#[cfg(not(feature = "highs"))]
fn solve_highs(_: Model, _: &ExactConfig) -> Result<Option<Solved>, PlanError> {
    Err(PlanError::SolverUnavailable {
        solver: ExactSolver::Highs,
        how: "rebuild with `--features highs` (needs cmake, g++ and libclang-dev), or use microlp",
    })
}

#[cfg(feature = "highs")]
fn solve_highs(model: Model, cfg: &ExactConfig) -> Result<Option<Solved>, PlanError> {
    use highs::{HighsModelStatus, HighsSolutionStatus};
    let Model {
        problem,
        constraints,
        warm_start,
        ..
    } = model;
    let mut problem = problem.using(good_lp::highs);
    for c in constraints {
        problem.add_constraint(c);
    }
    let solver = ExactSolver::Highs;
    let mut inner = problem
        .try_into_inner()
        .map_err(|e| PlanError::solver(solver, e))?;
    let threads = i32::try_from(cfg.threads.max(1)).unwrap_or(i32::MAX);
    for (name, result) in [
        ("output_flag", inner.try_set_option("output_flag", false)),
        (
            "time_limit",
            inner.try_set_option("time_limit", cfg.time_limit_s),
        ),
        ("threads", inner.try_set_option("threads", threads)),
    ] {
        result.map_err(|e| PlanError::solver(solver, format!("option {name}: {e:?}")))?;
    }
    if let Some(values) = warm_start {
        inner
            .try_set_solution(Some(&values), None, None, None)
            .map_err(|e| PlanError::solver(solver, format!("warm start refused: {e:?}")))?;
    }
    let started = Instant::now();
    let solved = inner
        .try_solve()
        .map_err(|e| PlanError::solver(solver, format!("{e:?}")))?;
    let seconds = started.elapsed().as_secs_f64();
    if solved.primal_solution_status() != HighsSolutionStatus::Feasible {
        return Ok(None);
    }
    let status = solved.status();
    let gap = solved.mip_gap();
    Ok(Some(Solved {
        values: solved.get_solution().columns().to_vec(),
        objective: solved.objective_value(),
        gap: if gap.is_finite() { gap } else { 0.0 },
        optimal: status == HighsModelStatus::Optimal,
        status: format!("{status:?}"),
        seconds,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solver_names_round_trip_and_unknown_names_are_refused() {
        for s in ExactSolver::ALL {
            assert_eq!(s.name().parse::<ExactSolver>().ok(), Some(s));
        }
        assert!("cplex".parse::<ExactSolver>().is_err());
        assert!(ExactSolver::available().contains(&ExactSolver::Microlp));
        assert!(ExactSolver::preferred().is_available());
    }
}
