//! Spec lowering: a [`ModelSpec`] as the interpreters without burn see it, a list of linear
//! maps and element- or channel-wise ops with their shapes resolved. The one lowering behind
//! the secure engine (`veil-mpc::model`) and the distributed runtime (`veil-net::deploy`).
//!
//! Contract of [`lower`]:
//! - conv and linear layers become [`LoweredOp::Linear`] with a [`Linear`] kernel (weights
//!   in the `veil_spec::weights` layout: conv `[out, in, kh, kw]`, dense `[out, in]`);
//! - ReLU and pooling keep their place and carry their input shape;
//! - flatten, reshape and dropout (inference) change no value of the row-major `[c, h, w]`
//!   buffer and are reported only as [`LoweredOp::Reshape`] markers, for interpreters that
//!   partition channels and cannot cross a reshape;
//! - transposed convolutions are refused ([`SpecError::Unsupported`]): no classifier of the
//!   zoo has one, and neither interpreter evaluates them;
//! - grouped (and depthwise) convolutions lower with their groups;
//! - graph specs are refused ([`ModelSpec::require_chain`]), and so are, for now, padded pools, global average pools, batch normalisation, sigmoid and clip: each refusal
//!   names the layer (identity layers lower to nothing, like dropout).

use crate::kernels::Linear;
use crate::{LayerKind, ModelSpec, SpecError};

/// One lowered op, in spec order; `layer` names the spec layer it comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoweredOp {
    /// `y = W x + b`.
    Linear {
        /// Layer name (its weights are `<layer>.weight` and `<layer>.bias`).
        layer: String,
        /// The map and its shapes.
        linear: Linear,
    },
    /// Element-wise ReLU of `len` elements.
    Relu {
        /// Layer name.
        layer: String,
        /// Elements per sample.
        len: usize,
    },
    /// Max or average pooling of each map of a `[c, h, w]` input.
    Pool {
        /// Layer name.
        layer: String,
        /// Max (true) or average (false).
        max: bool,
        /// Input `[c, h, w]`.
        input: [usize; 3],
        /// Window `[kh, kw]`.
        kernel: [usize; 2],
        /// Stride `[sh, sw]` (the window when the spec gives none).
        stride: [usize; 2],
        /// Output `[h, w]` per map.
        output: [usize; 2],
    },
    /// A shape-only layer that is not a plain flatten or dropout (values unchanged).
    Reshape {
        /// Layer name.
        layer: String,
    },
}

fn chw(spec: &ModelSpec, index: usize, shape: &crate::Shape) -> Result<[usize; 3], SpecError> {
    shape
        .as_chw()
        .map(|(c, h, w)| [c, h, w])
        .ok_or_else(|| SpecError::Unsupported {
            model: spec.name.clone(),
            layer: spec.layers[index].name.clone(),
            reason: format!("needs a [c, h, w] tensor, has {shape}"),
        })
}

/// Lowers `spec` (validated here) as the module docs describe.
pub fn lower(spec: &ModelSpec) -> Result<Vec<LoweredOp>, SpecError> {
    let shapes = spec.validate()?;
    spec.require_chain("the lowering for secure inference and the runtime")?;
    let unsupported = |name: String, reason: &str| SpecError::Unsupported {
        model: spec.name.clone(),
        layer: name,
        reason: format!("{reason} cannot be lowered for secure inference and the runtime yet"),
    };
    let mut ops = Vec::with_capacity(spec.layers.len());
    for (i, layer) in spec.layers.iter().enumerate() {
        let (input, output) = (&shapes[i], &shapes[i + 1]);
        let name = layer.name.clone();
        match &layer.kind {
            LayerKind::Conv2d {
                kernel,
                stride,
                padding,
                groups,
                ..
            } => ops.push(LoweredOp::Linear {
                layer: name,
                linear: Linear::Conv {
                    input: chw(spec, i, input)?,
                    output: chw(spec, i, output)?,
                    kernel: *kernel,
                    stride: *stride,
                    padding: *padding,
                    groups: *groups,
                },
            }),
            LayerKind::Linear { out_features } => ops.push(LoweredOp::Linear {
                layer: name,
                linear: Linear::Dense {
                    input: input.numel(),
                    output: *out_features,
                },
            }),
            LayerKind::Relu => ops.push(LoweredOp::Relu {
                layer: name,
                len: input.numel(),
            }),
            LayerKind::MaxPool2d { padding, .. } | LayerKind::AvgPool2d { padding, .. }
                if *padding != [0, 0] =>
            {
                return Err(unsupported(name, "a padded pool"));
            }
            LayerKind::MaxPool2d { kernel, stride, .. }
            | LayerKind::AvgPool2d { kernel, stride, .. } => {
                let out = chw(spec, i, output)?;
                ops.push(LoweredOp::Pool {
                    layer: name,
                    max: matches!(layer.kind, LayerKind::MaxPool2d { .. }),
                    input: chw(spec, i, input)?,
                    kernel: *kernel,
                    stride: stride.unwrap_or(*kernel),
                    output: [out[1], out[2]],
                });
            }
            LayerKind::Flatten | LayerKind::Dropout { .. } | LayerKind::Identity => {}
            LayerKind::GlobalAvgPool2d
            | LayerKind::BatchNorm2d { .. }
            | LayerKind::Sigmoid
            | LayerKind::Clip { .. }
            | LayerKind::Add
            | LayerKind::Concat => {
                let what = format!("{} (layer kind)", layer.kind.op_name());
                return Err(unsupported(name, &what));
            }
            LayerKind::Reshape { .. } => ops.push(LoweredOp::Reshape { layer: name }),
            LayerKind::ConvTranspose2d { .. } => {
                return Err(SpecError::Unsupported {
                    model: spec.name.clone(),
                    layer: name,
                    reason: "transposed convolutions cannot be lowered".into(),
                });
            }
        }
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zoo;

    #[test]
    fn lenet5_lowers_to_its_linear_maps_and_channel_ops() {
        let ops = lower(&zoo::lenet5()).expect("lower");
        let names: Vec<String> = ops
            .iter()
            .map(|op| match op {
                LoweredOp::Linear { layer, .. }
                | LoweredOp::Relu { layer, .. }
                | LoweredOp::Pool { layer, .. }
                | LoweredOp::Reshape { layer } => layer.clone(),
            })
            .collect();
        assert_eq!(names.first().map(String::as_str), Some("conv1"));
        assert!(!names.iter().any(|n| n.starts_with("flatten")));
        let linear: Vec<usize> = ops
            .iter()
            .filter_map(|op| match op {
                LoweredOp::Linear { linear, .. } => Some(linear.weight_len()),
                _ => None,
            })
            .collect();
        assert_eq!(
            linear,
            vec![6 * 25, 16 * 6 * 25, 120 * 400, 84 * 120, 10 * 84]
        );
        let pool = ops
            .iter()
            .find_map(|op| match op {
                LoweredOp::Pool {
                    input,
                    output,
                    stride,
                    ..
                } => Some((*input, *output, *stride)),
                _ => None,
            })
            .expect("a pool");
        assert_eq!(pool, ([6, 28, 28], [14, 14], [2, 2]));
    }

    #[test]
    fn transposed_convolutions_are_refused_with_the_layer() {
        let spec = ModelSpec::from_json_str(
            r#"{"name": "up", "input_shape": [1, 4, 4], "layers": [
                {"name": "up1", "op": "conv_transpose2d", "out_channels": 1, "kernel": [2, 2], "stride": [2, 2]}]}"#,
        )
        .expect("spec");
        let err = lower(&spec).expect_err("refused").to_string();
        assert!(err.contains("up1"), "{err}");
    }
}
