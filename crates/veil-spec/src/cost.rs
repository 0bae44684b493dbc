//! The cost model: parameters, multiplications and activation bytes per layer, and the cost of
//! one input-channel **segment** of a conv layer (DistPrivacy eqs. 2-4, SYSTEM.md section 4).
//!
//! Units: `macs` counts multiplications (one multiply-accumulate each); bytes assume `f32`
//! (4 bytes per scalar). Pooling, ReLU, sigmoid, clip, add, concat, flatten, reshape, identity
//! and dropout cost 0 multiplications; batch normalisation one per element (its scale).
//! Key types: [`LayerCost`], [`ModelCost`], [`SegmentCost`].

use serde::Serialize;

use crate::{LayerKind, ModelSpec, Shape, SpecError};

/// Bytes per scalar on the wire and in memory (`f32`).
pub const BYTES_PER_SCALAR: u64 = 4;

/// Cost of one layer for one sample.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerCost {
    /// Position in the layer list.
    pub index: usize,
    /// Layer name.
    pub name: String,
    /// Operation name (`conv2d`, `linear`, ...).
    pub op: &'static str,
    /// Input shape (of the first input, for a layer that reads several).
    pub input_shape: Shape,
    /// Output shape.
    pub output_shape: Shape,
    /// Trainable scalars (weights and biases).
    pub params: u64,
    /// Multiplications for one sample.
    pub macs: u64,
    /// Bytes of the output activation of one sample.
    pub activation_bytes: u64,
}

/// Cost of a whole model for one sample.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelCost {
    /// Per-layer costs in order.
    pub layers: Vec<LayerCost>,
    /// Sum of `params`.
    pub params: u64,
    /// Sum of `macs`.
    pub macs: u64,
}

/// Cost of computing one segment (l, p): input map p of conv layer l against the p-th input
/// slice of all P_l filters, producing partial sums for all P_l output maps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SegmentCost {
    /// `S_l^2 * P_l * o_l^2` multiplications (eq. 2; `S_l^2` is `kh * kw`).
    pub macs: u64,
    /// `S_l^2 * P_l` weights times 4 bytes (eq. 4, "4 bits" in the paper is a typo).
    pub weight_bytes: u64,
    /// `o_l^2 * 4`: bytes of one partial-sum map sent to the owner of that output map (eq. 6).
    pub partial_sum_bytes_per_map: u64,
    /// Number of input maps (segments) of the layer.
    pub segments: usize,
}

/// Per-layer costs of a validated spec.
pub fn model_cost(spec: &ModelSpec) -> Result<ModelCost, SpecError> {
    let shapes = spec.validate()?;
    let sources = spec.sources()?;
    let layers: Vec<LayerCost> = spec
        .layers
        .iter()
        .enumerate()
        .map(|(index, layer)| {
            let (input, output) = (&shapes[sources[index][0].slot()], &shapes[index + 1]);
            let (params, macs) = params_and_macs(&layer.kind, input, output);
            LayerCost {
                index,
                name: layer.name.clone(),
                op: layer.kind.op_name(),
                input_shape: input.clone(),
                output_shape: output.clone(),
                params,
                macs,
                activation_bytes: output.numel() as u64 * BYTES_PER_SCALAR,
            }
        })
        .collect();
    Ok(ModelCost {
        params: layers.iter().map(|l| l.params).sum(),
        macs: layers.iter().map(|l| l.macs).sum(),
        layers,
    })
}

/// `(params, multiplications)`; products saturate at `u64::MAX` instead of overflowing on
/// absurd (but valid) specs.
pub(crate) fn params_and_macs(kind: &LayerKind, input: &Shape, output: &Shape) -> (u64, u64) {
    let in_c = input.dims().first().copied().unwrap_or(0) as u64;
    let out_numel = output.numel() as u64;
    let mul = |xs: &[u64]| xs.iter().fold(1u64, |a, &b| a.saturating_mul(b));
    match kind {
        LayerKind::Conv2d {
            out_channels,
            kernel,
            groups,
            ..
        } => {
            let k = (kernel[0] * kernel[1]) as u64;
            let out = *out_channels as u64;
            let in_per_group = in_c / (*groups).max(1) as u64;
            (
                mul(&[out, in_per_group, k]).saturating_add(out),
                mul(&[out_numel, in_per_group, k]),
            )
        }
        LayerKind::BatchNorm2d { .. } => (2 * in_c, out_numel),
        LayerKind::ConvTranspose2d {
            out_channels,
            kernel,
            ..
        } => {
            let k = (kernel[0] * kernel[1]) as u64;
            let out = *out_channels as u64;
            // Every input scalar is scattered through an `out x kh x kw` kernel block.
            (
                mul(&[in_c, out, k]).saturating_add(out),
                mul(&[input.numel() as u64, out, k]),
            )
        }
        LayerKind::Linear { out_features } => {
            let (n_in, n_out) = (input.numel() as u64, *out_features as u64);
            (
                mul(&[n_in, n_out]).saturating_add(n_out),
                mul(&[n_in, n_out]),
            )
        }
        _ => (0, 0),
    }
}

/// Segment cost of the conv layer called `layer`, or an error if it is not a conv2d.
pub fn segment_cost(spec: &ModelSpec, layer: &str) -> Result<SegmentCost, SpecError> {
    let index = spec.layer_index(layer)?;
    let shapes = spec.validate()?;
    let l = &spec.layers[index];
    let LayerKind::Conv2d {
        out_channels,
        kernel,
        groups: 1,
        ..
    } = &l.kind
    else {
        return Err(SpecError::Param {
            index,
            layer: l.name.clone(),
            reason: format!(
                "segments exist only for conv2d layers without groups, not {}",
                l.kind.op_name()
            ),
        });
    };
    let input = &shapes[spec.sources()?[index][0].slot()];
    let (in_c, _, _) = input.as_chw().unwrap_or((0, 0, 0));
    let (_, oh, ow) = shapes[index + 1].as_chw().unwrap_or((0, 0, 0));
    let k = (kernel[0] * kernel[1]) as u64;
    let p = *out_channels as u64;
    let o2 = (oh * ow) as u64;
    Ok(SegmentCost {
        macs: k * p * o2,
        weight_bytes: k * p * BYTES_PER_SCALAR,
        partial_sum_bytes_per_map: o2 * BYTES_PER_SCALAR,
        segments: in_c,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zoo;

    /// Hand-computed for LeNet-5 (1x28x28):
    /// conv1 6x1x5x5 on 28x28 out: 6*25*784 = 117,600 mults, 6*25+6 = 156 params;
    /// conv2 16x6x5x5 on 10x10 out: 16*6*25*100 = 240,000 mults, 2,400+16 = 2,416 params;
    /// fc1 400x120 = 48,000 mults, 48,120 params; fc2 120x84 = 10,080 mults, 10,164 params;
    /// fc3 84x10 = 840 mults, 850 params. Totals: 416,520 mults, 61,706 params.
    #[test]
    fn lenet5_costs_match_hand_computation() {
        let cost = model_cost(&zoo::lenet5()).expect("cost");
        let by = |n: &str| {
            cost.layers
                .iter()
                .find(|l| l.name == n)
                .map(|l| (l.params, l.macs))
                .expect("layer")
        };
        assert_eq!(by("conv1"), (156, 117_600));
        assert_eq!(by("conv2"), (2_416, 240_000));
        assert_eq!(by("fc1"), (48_120, 48_000));
        assert_eq!(by("fc2"), (10_164, 10_080));
        assert_eq!(by("fc3"), (850, 840));
        assert_eq!(by("pool1"), (0, 0));
        assert_eq!(cost.macs, 416_520);
        assert_eq!(cost.params, 61_706);
        let conv1 = cost
            .layers
            .iter()
            .find(|l| l.name == "conv1")
            .expect("conv1");
        assert_eq!(conv1.activation_bytes, 6 * 28 * 28 * 4);
    }

    #[test]
    fn segments_of_a_layer_add_up_to_the_layer() {
        for name in ["lenet5", "cifar_cnn", "gtsrb_cnn", "vgg16"] {
            let spec = zoo::model(name).expect("zoo");
            let cost = model_cost(&spec).expect("cost");
            for layer in cost.layers.iter().filter(|l| l.op == "conv2d") {
                let seg = segment_cost(&spec, &layer.name).expect("segment");
                assert_eq!(
                    seg.macs * seg.segments as u64,
                    layer.macs,
                    "{name}/{}",
                    layer.name
                );
                let bias_bytes = layer.output_shape.dims()[0] as u64 * 4;
                assert_eq!(
                    seg.weight_bytes * seg.segments as u64 + bias_bytes,
                    layer.params * 4
                );
            }
        }
    }

    /// DistPrivacy eq. 2 for cifar_cnn conv12 (64 filters 3x3 on 32x32 output): 9*64*1024.
    #[test]
    fn segment_cost_follows_eq_2_and_4() {
        let spec = zoo::cifar_cnn(10);
        let seg = segment_cost(&spec, "conv12").expect("segment");
        assert_eq!(seg.macs, 9 * 64 * 1024);
        assert_eq!(seg.weight_bytes, 9 * 64 * 4);
        assert_eq!(seg.partial_sum_bytes_per_map, 1024 * 4);
        assert_eq!(seg.segments, 64);
        assert!(segment_cost(&spec, "relu11").is_err());
    }

    #[test]
    fn vgg16_totals_are_the_known_figures_at_128px() {
        // 138.36M params at 224px have 102.8M in fc1; at 128px fc1 sees 512*4*4 = 8192 inputs,
        // so params = 14,714,688 (convs) + 8192*4096+4096 + 4096*4096+4096 + 4096*1000+1000.
        let cost = model_cost(&zoo::model("vgg16").expect("zoo")).expect("cost");
        let fc = 8192 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000;
        assert_eq!(cost.params, 14_714_688 + fc);
    }
}
