//! One module per `veil` sub-command, plus helpers they share.

pub mod attack;
pub mod bench;
pub mod compare;
pub mod defend;
pub mod eval;
pub mod game;
pub mod import;
pub mod models;
pub mod mpc;
pub mod net;
pub mod net_audit;
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
    ModelSpec::resolve(model).with_context(|| format!("model {model}"))
}

/// The weights a command uses without `--weights`: where `veil train` puts `model` (named by
/// its spec, so a spec file finds what `veil train --model FILE` wrote) on `dataset`.
pub fn default_weights(model: &str, dataset: &DatasetId) -> anyhow::Result<std::path::PathBuf> {
    let spec = resolve_spec(model)?;
    Ok(veil_model::session::default_weights(
        &spec.name,
        &dataset.name(),
    ))
}

/// Loads dataset `name` from `--data` or `$VEIL_DATA`.
pub fn load_dataset(name: &str, data: Option<&Path>) -> anyhow::Result<(DatasetId, Split)> {
    veil_data::load_named(name, data).with_context(|| format!("loading dataset {name}"))
}
