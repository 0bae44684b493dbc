//! One module per `veil` sub-command, plus helpers they share.

pub mod attack;
pub mod bench;
pub mod compare;
pub mod defend;
pub mod eval;
pub mod game;
pub mod import;
pub mod infer;
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

/// Whether `--model` names an ONNX file (extension `.onnx`, any case) rather than a zoo name
/// or a spec file.
pub fn is_onnx(model: &str) -> bool {
    Path::new(model)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

/// Resolves `--model`: a zoo name, a path to a TOML/JSON spec file, or an ONNX file (its
/// graph imported by `veil_onnx`, the model named after the file stem).
pub fn resolve_spec(model: &str) -> anyhow::Result<ModelSpec> {
    if is_onnx(model) {
        let imported = veil_onnx::import_file(Path::new(model))
            .with_context(|| format!("importing {model}"))?;
        return Ok(imported.spec);
    }
    ModelSpec::resolve(model).with_context(|| format!("model {model}"))
}

/// The weights a command uses without `--weights`: where `veil train` puts `model` (named by
/// its spec, so a spec file finds what `veil train --model FILE` wrote) on `dataset`. For an
/// ONNX file, its own initializers: the file is imported (again, so an edited export is never
/// shadowed by an old import) to `runs/<stem>-onnx/`, whatever the dataset.
pub fn default_weights(model: &str, dataset: &DatasetId) -> anyhow::Result<std::path::PathBuf> {
    if is_onnx(model) {
        let report = import_onnx(Path::new(model))?;
        return Ok(std::path::PathBuf::from(report.weights));
    }
    let spec = resolve_spec(model)?;
    Ok(veil_model::session::default_weights(
        &spec.name,
        &dataset.name(),
    ))
}

/// The weight file of `veil eval` / `veil infer` and the model name it must hold: `--weights`
/// with `--model` as the expected name (an ONNX file's name is its stem), or, without
/// `--weights`, the model's default weights (clap makes one of the two present).
pub fn weights_and_name(
    weights: Option<std::path::PathBuf>,
    model: Option<&str>,
    dataset: &DatasetId,
) -> anyhow::Result<(std::path::PathBuf, Option<String>)> {
    let name = match model {
        Some(m) if is_onnx(m) => Some(resolve_spec(m)?.name),
        other => other.map(str::to_string),
    };
    match (weights, model) {
        (Some(w), _) => Ok((w, name)),
        (None, Some(m)) => {
            let w = default_weights(m, dataset)?;
            if !w.is_file() {
                anyhow::bail!(
                    "no weights at {}: run `veil train --model {m} --dataset {}` or give --weights",
                    w.display(),
                    dataset.name()
                );
            }
            Ok((w, name))
        }
        (None, None) => anyhow::bail!("give --model or --weights"),
    }
}

/// Imports the ONNX file `onnx` to `runs/<stem>-onnx/` (`model.safetensors`, `spec.json`).
pub fn import_onnx(onnx: &Path) -> anyhow::Result<veil_onnx::ImportReport> {
    let stem = onnx.file_stem().unwrap_or_default().to_string_lossy();
    let dir = veil_model::session::default_out_dir(&stem, "onnx");
    veil_onnx::import_to_dir(onnx, &dir).with_context(|| format!("importing {}", onnx.display()))
}

/// Loads dataset `name` from `--data` or `$VEIL_DATA`.
pub fn load_dataset(name: &str, data: Option<&Path>) -> anyhow::Result<(DatasetId, Split)> {
    veil_data::load_named(name, data).with_context(|| format!("loading dataset {name}"))
}
