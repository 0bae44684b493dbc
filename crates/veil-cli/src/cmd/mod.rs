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

use std::path::{Path, PathBuf};

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
/// ONNX file, its own initializers, whatever the dataset ([`import_onnx`]).
pub fn default_weights(model: &str, dataset: &DatasetId) -> anyhow::Result<std::path::PathBuf> {
    if is_onnx(model) {
        let report = import_onnx(Path::new(model))?;
        return Ok(PathBuf::from(report.weights));
    }
    let spec = resolve_spec(model)?;
    Ok(veil_model::session::default_weights(
        &spec.name,
        &dataset.name(),
    ))
}

/// The weight file of `veil eval` / `veil infer` and the model name it must hold (the spec's
/// name: an ONNX file's is its stem): `--weights` if given, else the model's default weights
/// (clap makes one of `--model` and `--weights` present).
pub fn weights_and_name(
    weights: Option<PathBuf>,
    model: Option<&str>,
    dataset: &DatasetId,
) -> anyhow::Result<(PathBuf, Option<String>)> {
    let Some(m) = model else {
        let w = weights.context("give --model or --weights")?;
        return Ok((w, None));
    };
    if is_onnx(m) && weights.is_none() {
        let report = import_onnx(Path::new(m))?;
        return Ok((PathBuf::from(report.weights), Some(report.model)));
    }
    let spec = resolve_spec(m)?;
    let w = match weights {
        Some(w) => w,
        None => veil_model::session::default_weights(&spec.name, &dataset.name()),
    };
    if !w.is_file() {
        anyhow::bail!(
            "no weights at {}: run `veil train --model {m} --dataset {}` or give --weights",
            w.display(),
            dataset.name()
        );
    }
    Ok((w, Some(spec.name)))
}

/// Imports the ONNX file `onnx` to `runs/<stem>-onnx-<h>/` (`model.safetensors`,
/// `spec.json`), where `<h>` is 8 hex digits of a hash of the file's canonical path: two files
/// with one stem never share a directory, and the same file always maps to the same one (it
/// is imported again each time, so an edited export is never shadowed by an old import).
pub fn import_onnx(onnx: &Path) -> anyhow::Result<veil_onnx::ImportReport> {
    let canonical = std::fs::canonicalize(onnx)
        .with_context(|| format!("importing {}: cannot read the file", onnx.display()))?;
    let stem = onnx.file_stem().unwrap_or_default().to_string_lossy();
    let tag = format!(
        "onnx-{:08x}",
        fnv1a(canonical.as_os_str().as_encoded_bytes()) as u32
    );
    let dir = veil_model::session::default_out_dir(&stem, &tag);
    veil_onnx::import_to_dir(onnx, &dir).with_context(|| format!("importing {}", onnx.display()))
}

/// 64-bit FNV-1a (a directory tag, not a security property).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Loads dataset `name` from `--data` or `$VEIL_DATA`.
pub fn load_dataset(name: &str, data: Option<&Path>) -> anyhow::Result<(DatasetId, Split)> {
    veil_data::load_named(name, data).with_context(|| format!("loading dataset {name}"))
}
