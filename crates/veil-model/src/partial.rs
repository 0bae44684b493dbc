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
use crate::{Model, ModelError};

/// A conv layer of a model, located by name.
struct ConvRef<'a> {
    index: usize,
    conv: &'a burn::nn::conv::Conv2d,
    stride: [usize; 2],
    padding: [usize; 2],
}

fn conv_layer<'a>(model: &'a Model, layer: &str) -> Result<ConvRef<'a>, ModelError> {
    let index = model.spec().layer_index(layer)?;
    match (
        &model.spec().layers[index].kind,
        model.net.ops.get(index).and_then(Option::as_ref),
    ) {
        (
            LayerKind::Conv2d {
                stride, padding, ..
            },
            Some(Op::Conv(conv)),
        ) => Ok(ConvRef {
            index,
            conv,
            stride: *stride,
            padding: *padding,
        }),
        (kind, _) => Err(ModelError::Invalid(format!(
            "partial sums need a conv2d layer; `{layer}` of {} is {}",
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
