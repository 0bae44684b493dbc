//! The weight-file layout every interpreter agrees on.
//!
//! A veil weight file is a safetensors file whose `__metadata__` holds the model spec as JSON
//! under [`SPEC_METADATA_KEY`], and one `f32` tensor per parameter, named
//! `<layer>.weight` and `<layer>.bias`:
//!
//! | layer | weight shape | bias shape |
//! |---|---|---|
//! | conv2d | `[out, in, kh, kw]` | `[out]` |
//! | conv_transpose2d | `[in, out, kh, kw]` | `[out]` |
//! | linear | `[out, in]` (PyTorch order: row `j` holds the weights into output `j`) | `[out]` |
//!
//! This module is the one reader and writer of that format ([`read_file`], [`decode`],
//! [`write_file`]): the burn engine, the secure engine and the runtime's coordinator all go
//! through it, so they cannot disagree on names, shapes or byte order.

use std::collections::HashMap;
use std::path::Path;

use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};

use crate::{LayerKind, ModelSpec, SpecError};

/// Metadata key under which the spec JSON is stored.
pub const SPEC_METADATA_KEY: &str = "veil.spec";

/// Metadata key of the format tag, and the tag veil writes.
pub const FORMAT_KEY: &str = "veil.format";
/// The format tag of this layout.
pub const FORMAT: &str = "veil-weights-1";

/// A weight file's tensors: name to (shape in the file layout, row-major values).
pub type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

fn weights_err(path: &Path, reason: impl Into<String>) -> SpecError {
    SpecError::Weights {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Reads a veil weight file: the spec from its metadata, then every tensor its layout names,
/// checked for dtype and shape. Any defect is an error naming the file.
pub fn read_file(path: &Path) -> Result<(ModelSpec, Tensors), SpecError> {
    let bytes = std::fs::read(path).map_err(|e| weights_err(path, e.to_string()))?;
    decode(&bytes, path)
}

/// Like [`read_file`] on bytes already in memory; `path` only names them in errors.
pub fn decode(bytes: &[u8], path: &Path) -> Result<(ModelSpec, Tensors), SpecError> {
    let (_, metadata) = SafeTensors::read_metadata(bytes)
        .map_err(|e| weights_err(path, format!("not a safetensors file: {e}")))?;
    let spec_json = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get(SPEC_METADATA_KEY))
        .ok_or_else(|| {
            weights_err(
                path,
                format!("no `{SPEC_METADATA_KEY}` metadata: not a veil weight file"),
            )
        })?;
    let spec = ModelSpec::from_json_str(spec_json)?;
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| weights_err(path, format!("corrupt safetensors: {e}")))?;
    let mut tensors = Tensors::new();
    for entry in layout(&spec)? {
        let view = st
            .tensor(&entry.name)
            .map_err(|_| weights_err(path, format!("missing tensor {}", entry.name)))?;
        if view.dtype() != Dtype::F32 || view.shape() != entry.shape.as_slice() {
            return Err(weights_err(
                path,
                format!(
                    "tensor {} is {:?} {:?}, expected F32 {:?}",
                    entry.name,
                    view.dtype(),
                    view.shape(),
                    entry.shape
                ),
            ));
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        tensors.insert(entry.name, (entry.shape, values));
    }
    Ok((spec, tensors))
}

/// Checks that `tensors` holds every entry of `spec`'s [`layout`] with its shape and as many
/// values as the shape says (tensors beyond the layout are allowed).
pub fn check(spec: &ModelSpec, tensors: &Tensors) -> Result<(), SpecError> {
    let path = Path::new("(in memory)");
    for entry in layout(spec)? {
        match tensors.get(&entry.name) {
            Some((shape, values))
                if *shape == entry.shape && values.len() == shape.iter().product::<usize>() => {}
            Some((shape, values)) => {
                return Err(weights_err(
                    path,
                    format!(
                        "tensor {} is {shape:?} with {} values, expected {:?}",
                        entry.name,
                        values.len(),
                        entry.shape
                    ),
                ));
            }
            None => return Err(weights_err(path, format!("missing tensor {}", entry.name))),
        }
    }
    Ok(())
}

/// Writes `spec` and `tensors` (every entry of its [`layout`], shapes as there) to `path`,
/// creating its directory and replacing the file atomically (written beside it, then renamed).
pub fn write_file(path: &Path, spec: &ModelSpec, tensors: &Tensors) -> Result<(), SpecError> {
    let entries = layout(spec)?;
    let mut bytes = Vec::with_capacity(entries.len());
    for entry in &entries {
        let (shape, values) = tensors
            .get(&entry.name)
            .ok_or_else(|| weights_err(path, format!("missing tensor {}", entry.name)))?;
        if *shape != entry.shape || values.len() != shape.iter().product::<usize>() {
            return Err(weights_err(
                path,
                format!(
                    "tensor {} is {shape:?} with {} values, expected {:?}",
                    entry.name,
                    values.len(),
                    entry.shape
                ),
            ));
        }
        bytes.push(
            values
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect::<Vec<u8>>(),
        );
    }
    let mut views = Vec::with_capacity(entries.len());
    for (entry, data) in entries.iter().zip(&bytes) {
        let view = TensorView::new(Dtype::F32, entry.shape.clone(), data)
            .map_err(|e| weights_err(path, format!("tensor {}: {e}", entry.name)))?;
        views.push((entry.name.clone(), view));
    }
    let meta = HashMap::from([
        (SPEC_METADATA_KEY.to_string(), spec.to_json()),
        (FORMAT_KEY.to_string(), FORMAT.to_string()),
    ]);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| weights_err(path, e.to_string()))?;
    }
    // Written beside the target and renamed over it: a reader (another veil process) sees the
    // old file or the new one, never a partial write.
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Err(weights_err(path, "not a file path".to_string()));
    };
    // Unique per process and write: two threads writing one target never share a partial file.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let partial = path.with_file_name(format!(".{name}.{}.{n}.partial", std::process::id()));
    let written = safetensors::serialize_to_file(views, Some(meta), &partial)
        .map_err(|e| weights_err(path, e.to_string()))
        .and_then(|()| {
            std::fs::rename(&partial, path).map_err(|e| weights_err(path, e.to_string()))
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

/// `(weight, bias)` values of one layer, in the file layout.
pub type LayerParams = (Vec<f32>, Vec<f32>);

/// `(weight, bias)` values of each conv and linear layer of `spec`, in layer order and in
/// the file layout: the parameters a runtime slices per device.
pub fn compute_layer_params(
    spec: &ModelSpec,
    tensors: &Tensors,
) -> Result<Vec<LayerParams>, SpecError> {
    let take = |name: String| {
        tensors
            .get(&name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| weights_err(Path::new("(in memory)"), format!("missing tensor {name}")))
    };
    spec.layers
        .iter()
        .filter(|l| matches!(l.kind, LayerKind::Conv2d { .. } | LayerKind::Linear { .. }))
        .map(|l| {
            Ok((
                take(format!("{}.weight", l.name))?,
                take(format!("{}.bias", l.name))?,
            ))
        })
        .collect()
}

/// One parameter tensor a weight file must contain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorEntry {
    /// Tensor name, `<layer>.weight` or `<layer>.bias`.
    pub name: String,
    /// Expected shape.
    pub shape: Vec<usize>,
}

/// The tensors (names and shapes) a weight file for `spec` holds, in layer order: `weight`
/// and `bias` of each conv, transposed conv and linear layer, and of each batch
/// normalisation also its `running_mean` and `running_var`.
pub fn layout(spec: &ModelSpec) -> Result<Vec<TensorEntry>, SpecError> {
    let shapes = spec.validate()?;
    let sources = spec.sources()?;
    let mut entries = Vec::new();
    let mut push = |layer: &str, suffix: &str, shape: Vec<usize>| {
        entries.push(TensorEntry {
            name: format!("{layer}.{suffix}"),
            shape,
        })
    };
    for (index, layer) in spec.param_layers() {
        let input = &shapes[sources[index][0].slot()];
        let in_dim = input.dims()[0];
        let (weight, out) = match &layer.kind {
            LayerKind::Conv2d {
                out_channels,
                kernel,
                groups,
                ..
            } => (
                vec![*out_channels, in_dim / groups, kernel[0], kernel[1]],
                *out_channels,
            ),
            LayerKind::ConvTranspose2d {
                out_channels,
                kernel,
                ..
            } => (
                vec![in_dim, *out_channels, kernel[0], kernel[1]],
                *out_channels,
            ),
            LayerKind::Linear { out_features } => {
                (vec![*out_features, input.numel()], *out_features)
            }
            LayerKind::BatchNorm2d { .. } => (vec![in_dim], in_dim),
            _ => continue,
        };
        push(&layer.name, "weight", weight);
        push(&layer.name, "bias", vec![out]);
        if let LayerKind::BatchNorm2d { .. } = layer.kind {
            push(&layer.name, "running_mean", vec![in_dim]);
            push(&layer.name, "running_var", vec![in_dim]);
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zoo;

    #[test]
    fn lenet5_layout_names_and_shapes() {
        let entries = layout(&zoo::lenet5()).expect("layout");
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "conv1.weight",
                "conv1.bias",
                "conv2.weight",
                "conv2.bias",
                "fc1.weight",
                "fc1.bias",
                "fc2.weight",
                "fc2.bias",
                "fc3.weight",
                "fc3.bias"
            ]
        );
        assert_eq!(entries[2].shape, vec![16, 6, 5, 5]);
        assert_eq!(entries[4].shape, vec![120, 400]);
        let total: usize = entries
            .iter()
            .map(|e| e.shape.iter().product::<usize>())
            .sum();
        assert_eq!(total, 61_706);
    }

    #[test]
    fn files_round_trip_and_defects_are_errors_naming_the_file() {
        let spec = zoo::lenet5();
        let tensors: Tensors = layout(&spec)
            .expect("layout")
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                let n = e.shape.iter().product();
                (e.name, (e.shape, vec![i as f32 * 0.5; n]))
            })
            .collect();
        let dir = std::env::temp_dir().join(format!("veil-weights-test-{}", std::process::id()));
        let path = dir.join("w.safetensors");
        write_file(&path, &spec, &tensors).expect("write");
        let (back_spec, back) = read_file(&path).expect("read");
        assert_eq!(back_spec, spec);
        assert_eq!(back, tensors);
        let params = compute_layer_params(&spec, &back).expect("params");
        assert_eq!(params.len(), 5);
        assert_eq!(params[1].0.len(), 16 * 6 * 25);
        let bytes = std::fs::read(&path).expect("bytes");
        for cut in [0, 7, bytes.len() / 2, bytes.len() - 1] {
            let err = decode(&bytes[..cut], &path)
                .expect_err("truncated")
                .to_string();
            assert!(err.contains("w.safetensors"), "{err}");
        }
        let mut missing = tensors.clone();
        missing.remove("fc3.bias");
        assert!(write_file(&path, &spec, &missing).is_err());
        assert!(read_file(&dir.join("absent")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
