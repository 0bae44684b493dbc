//! Channel-partitioned execution of one conv layer (SYSTEM.md section 4).
//!
//! A segment `(l, p)` is input map `p` of conv layer `l`. [`conv_partial_sums`] convolves a
//! contiguous range of input maps with the matching input slice of **all** filters and returns
//! the partial sums for every output map, without bias. Summing the partial sums of a
//! partition of the input channels and adding the bias gives the full layer output
//! ([`add_bias`]); the unit tests check that identity.

use std::ops::Range;

use burn::tensor::Tensor;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use veil_spec::LayerKind;

use crate::network::Op;
use crate::{Activation, Model, ModelError};

/// A conv layer of a model, located by name.
struct ConvRef<'a> {
    index: usize,
    conv: &'a burn::nn::conv::Conv2d,
    stride: [usize; 2],
    padding: [usize; 2],
}

fn conv_layer<'a>(model: &'a Model, layer: &str) -> Result<ConvRef<'a>, ModelError> {
    let index = model.spec().layer_index(layer)?;
    // Partial sums take the conv's input as the activation before it (`shapes()[index]`):
    // in a graph a conv may read an earlier layer (a projection shortcut), which is refused.
    let previous = veil_spec::graph::Source::before(index);
    if model.spec().sources()?[index].as_slice() != [previous] {
        return Err(ModelError::Invalid(format!(
            "partial sums of `{layer}` of {}: it reads {}, not the layer before it",
            model.spec().name,
            model.spec().layers[index].inputs.join(", ")
        )));
    }
    match (
        &model.spec().layers[index].kind,
        model.net.ops.get(index).and_then(Option::as_ref),
    ) {
        (
            LayerKind::Conv2d {
                stride,
                padding,
                groups: 1,
                ..
            },
            Some(Op::Conv(conv)),
        ) => Ok(ConvRef {
            index,
            conv,
            stride: *stride,
            padding: *padding,
        }),
        (kind, _) => Err(ModelError::Invalid(format!(
            "partial sums need a conv2d layer without groups; `{layer}` of {} is {}",
            model.spec().name,
            kind.op_name()
        ))),
    }
}

/// Partial sums of conv layer `layer` for input channels `channels`.
///
/// `x` holds only those channels: `[b, channels.len(), h, w]` where `h, w` is the layer's input
/// size. Returns `[b, out_channels, oh, ow]` without bias.
pub fn conv_partial_sums(
    model: &Model,
    layer: &str,
    x: Tensor<4>,
    channels: Range<usize>,
) -> Result<Tensor<4>, ModelError> {
    let ConvRef {
        index,
        conv,
        stride,
        padding,
    } = conv_layer(model, layer)?;
    let (in_c, h, w) = model.shapes()[index].as_chw().unwrap_or((0, 0, 0));
    let [_, xc, xh, xw] = x.dims();
    if channels.start >= channels.end
        || channels.end > in_c
        || xc != channels.len()
        || (xh, xw) != (h, w)
    {
        return Err(ModelError::Shape {
            context: format!(
                "partial sums of {}/{layer} for channels {channels:?} of {in_c}",
                model.spec().name
            ),
            expected: vec![channels.len(), h, w],
            got: vec![xc, xh, xw],
        });
    }
    let weight = conv.weight.val().narrow(1, channels.start, channels.len());
    Ok(conv2d(
        x,
        weight,
        None,
        ConvOptions::new(stride, padding, [1, 1], 1),
    ))
}

/// Partial sums of conv layer `layer` for several input-channel groups, on host values.
///
/// `inputs` holds samples of the layer's full input `[in_c, h, w]`, sample-major. For every
/// sample and every group in `groups` (in order) this returns the partial sums of output maps
/// `outputs` from that group's channels only: `[groups.len() * outputs.len(), oh, ow]` per
/// sample, group-major, without bias. This is what a device that owns output maps `outputs`
/// receives from devices holding the channel groups (SYSTEM.md section 4).
pub fn partial_sums_values(
    model: &Model,
    layer: &str,
    inputs: &[f32],
    groups: &[Range<usize>],
    outputs: Range<usize>,
) -> Result<Vec<f32>, ModelError> {
    let index = conv_layer(model, layer)?.index;
    let input_shape = model.shapes()[index].clone();
    let (out_c, oh, ow) = model.shapes()[index + 1].as_chw().unwrap_or((0, 0, 0));
    let in_c = input_shape.as_chw().map_or(0, |(c, _, _)| c);
    let per = input_shape.numel().max(1);
    if inputs.is_empty() || !inputs.len().is_multiple_of(per) {
        return Err(ModelError::Shape {
            context: format!("inputs of {}/{layer}", model.spec().name),
            expected: input_shape.dims().to_vec(),
            got: vec![inputs.len()],
        });
    }
    if outputs.start >= outputs.end || outputs.end > out_c {
        return Err(ModelError::Invalid(format!(
            "output maps {outputs:?} of {}/{layer}, which has {out_c}",
            model.spec().name
        )));
    }
    let n = inputs.len() / per;
    let plane = oh * ow;
    let per_out = groups.len() * outputs.len() * plane;
    let mut out = vec![0.0f32; n * per_out];
    for start in (0..n).step_by(256) {
        let end = (start + 256).min(n);
        let batch = inputs[start * per..end * per].to_vec();
        let Activation::Maps(x) = Activation::from_values(batch, &input_shape, model.device())?
        else {
            return Err(ModelError::Invalid(format!(
                "{}/{layer} has flat inputs",
                model.spec().name
            )));
        };
        for (g, range) in groups.iter().enumerate() {
            if range.start >= range.end || range.end > in_c {
                return Err(ModelError::Invalid(format!(
                    "channel group {range:?} of {}/{layer}, which has {in_c} input maps",
                    model.spec().name
                )));
            }
            let sums = conv_partial_sums(
                model,
                layer,
                x.clone().narrow(1, range.start, range.len()),
                range.clone(),
            )?
            .narrow(1, outputs.start, outputs.len());
            let values = Activation::Maps(sums).into_values()?;
            let chunk = outputs.len() * plane;
            for (i, sample) in values.chunks_exact(chunk).enumerate() {
                let at = (start + i) * per_out + g * chunk;
                out[at..at + chunk].copy_from_slice(sample);
            }
        }
    }
    Ok(out)
}

/// Adds the bias of conv layer `layer` to summed partial sums `[b, out, oh, ow]`.
pub fn add_bias(model: &Model, layer: &str, sums: Tensor<4>) -> Result<Tensor<4>, ModelError> {
    let conv = conv_layer(model, layer)?.conv;
    Ok(match &conv.bias {
        Some(b) => {
            let out = b.dims()[0];
            sums + b.val().reshape([1, out, 1, 1])
        }
        None => sums,
    })
}
