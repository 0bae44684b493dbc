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
//! The secure engine reads these tensors directly, without burn.

use crate::{LayerKind, ModelSpec, SpecError};

/// Metadata key under which the spec JSON is stored.
pub const SPEC_METADATA_KEY: &str = "veil.spec";

/// One parameter tensor a weight file must contain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorEntry {
    /// Tensor name, `<layer>.weight` or `<layer>.bias`.
    pub name: String,
    /// Expected shape.
    pub shape: Vec<usize>,
}

/// The tensors (names and shapes) a weight file for `spec` holds, in layer order.
pub fn layout(spec: &ModelSpec) -> Result<Vec<TensorEntry>, SpecError> {
    let shapes = spec.validate()?;
    let mut entries = Vec::new();
    for (index, layer) in spec.param_layers() {
        let in_dim = shapes[index].dims()[0];
        let weight = match &layer.kind {
            LayerKind::Conv2d {
                out_channels,
                kernel,
                ..
            } => vec![*out_channels, in_dim, kernel[0], kernel[1]],
            LayerKind::ConvTranspose2d {
                out_channels,
                kernel,
                ..
            } => vec![in_dim, *out_channels, kernel[0], kernel[1]],
            LayerKind::Linear { out_features } => vec![*out_features, shapes[index].numel()],
            _ => continue,
        };
        let out = match &layer.kind {
            LayerKind::ConvTranspose2d { .. } => weight[1],
            _ => weight[0],
        };
        entries.push(TensorEntry {
            name: format!("{}.weight", layer.name),
            shape: weight,
        });
        entries.push(TensorEntry {
            name: format!("{}.bias", layer.name),
            shape: vec![out],
        });
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
}
