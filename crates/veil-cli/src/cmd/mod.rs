//! One module per `veil` sub-command, plus helpers they share.

pub mod attack;
pub mod bench;
pub mod compare;
pub mod defend;
pub mod eval;
pub mod game;
pub mod models;
pub mod mpc;
pub mod net;
pub mod net_load;
pub mod plan;
pub mod profile;
pub mod simulate;
pub mod train;

use std::path::Path;

use anyhow::Context;
use veil_data::{DatasetId, Split};
use veil_spec::ModelSpec;

/// Resolves `--model`: a zoo name, or a path to a TOML/JSON spec file.
pub fn resolve_spec(model: &str) -> anyhow::Result<ModelSpec> {
    let path = Path::new(model);
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml") || e.eq_ignore_ascii_case("json"))
    {
        return ModelSpec::from_file(path).with_context(|| format!("model spec {model}"));
    }
    Ok(veil_spec::zoo::model(model)?)
}

/// Loads dataset `name` from `--data` or `$VEIL_DATA`.
pub fn load_dataset(name: &str, data: Option<&Path>) -> anyhow::Result<(DatasetId, Split)> {
    let id: DatasetId = name.parse()?;
    let root = if id.needs_data_dir() {
        Some(veil_data::data_dir(data)?)
    } else {
        None
    };
    let split = veil_data::load(&id, root.as_deref())
        .with_context(|| format!("loading dataset {}", id.name()))?;
    Ok((id, split))
}

/// `--solver` of the exact placement: the MILP solvers veil knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SolverArg {
    /// microlp, pure Rust (every build).
    Microlp,
    /// HiGHS (builds with the `highs` feature).
    Highs,
}

impl From<SolverArg> for veil_plan::ilp::ExactSolver {
    fn from(arg: SolverArg) -> Self {
        match arg {
            SolverArg::Microlp => veil_plan::ilp::ExactSolver::Microlp,
            SolverArg::Highs => veil_plan::ilp::ExactSolver::Highs,
        }
    }
}
