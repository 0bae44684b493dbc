//! The inverse network's architecture.
//!
//! **Mirror decoder** (the default whenever the features are the output of a known device
//! part): the device part's own path from the image to the features, walked backwards, each
//! step undone by a layer of the same geometry, so the decoder is no larger than the path it
//! inverts. Walking from the split layer down to the image:
//! - `Conv2d` (kernel `k`, stride `s`, padding `p`) becomes a `ConvTranspose2d` with the same
//!   kernel, stride and padding (and the output padding that restores the input size), ReLU;
//!   the very first convolution, when it keeps the image size, is left to the final layer.
//! - A pooling window of stride `s` becomes a `ConvTranspose2d` of stride `s` and kernel
//!   `2s - 1` that restores the pooled map's size, ReLU; when the features are themselves a
//!   pooled output, a 3x3 convolution to `width` channels with ReLU (a lift) comes first.
//! - A `Linear` layer whose input was flattened from `[c, h, w]` becomes `Linear` to
//!   `width x h x w` values, ReLU, reshaped to `[width, h, w]`; any other `Linear` becomes a
//!   `Linear` to its input size (at least 256), ReLU. A `Flatten`/`Reshape` reached with the
//!   same number of values is undone by a `Reshape`.
//! - ReLU and dropout add nothing (every decoder step carries its own ReLU).
//! - Finally a 3x3 convolution (padding 1) to the image's channels; when the walk added no
//!   layer (features taken right after the first convolution), a 3x3 convolution to `width`
//!   channels with ReLU comes first.
//!
//! The width is twice the observed channels, clamped to `32..=64` (64 for flat features),
//! and half that (at least 16) for the steps that produce maps at the image's resolution,
//! which cost the most. On LeNet-5's `relu2` this is `convT 5x5 16->32 (10->14),
//! convT 3x3/2 32->16 (14->28), conv 3x3 16->1`.
//!
//! **Shape decoder** (the fallback for features no device part produced, e.g. a helper's
//! assembled view or an obfuscator's output, and for flat images), for features `[c, h, w]`
//! and images `[C, H, W]`, `h <= H`, `w <= W`:
//! 1. `lift`: conv_transpose 3x3, stride 1, padding 1, `c -> 64`, ReLU.
//! 2. `up1, up2, ...`: while doubling does not overshoot the image, conv_transpose 4x4,
//!    stride 2, padding 1 (doubles each side), 64 channels, ReLU.
//! 3. `out`: conv_transpose, stride 1, `64 -> C` channels, kernel `H - s + 1` (no padding) so
//!    the output is exactly `H x W`; 3x3 with padding 1 when the map already has the image size.
//!
//! Flat features get `linear 1024, ReLU, linear -> C*H*W` and a reshape.

use veil_spec::{Layer, LayerKind, ModelSpec, Shape, SpecError};

/// Width of the decoder's hidden feature maps.
pub const DECODER_WIDTH: usize = 64;

fn layer(name: &str, kind: LayerKind) -> Layer {
    Layer::new(name, kind)
}

/// Final stride-1 deconvolution from side `s <= target` to `target`: `(kernel, padding)` with
/// `(s - 1) + kernel - 2 padding = target`; a 3x3 kernel with padding 1 when `s == target`.
fn final_kernel(s: usize, target: usize) -> (usize, usize) {
    if s >= target {
        (3, 1)
    } else {
        (target - s + 1, 0)
    }
}

/// The inverse network from `observed` features back to the image: the mirror of `device`
/// (the device part that produced them, whose input is the image) when there is one and it
/// can be mirrored, else the shape decoder for `image`.
pub fn decoder_spec(
    device: Option<&ModelSpec>,
    observed: &Shape,
    image: [usize; 3],
) -> Result<ModelSpec, SpecError> {
    if let Some(device) = device
        && let Some(spec) = mirror_decoder(device, observed)?
    {
        return Ok(spec);
    }
    shape_decoder(observed, image)
}

/// The decoder the default attack trains against features of `model` at `layer`: the mirror
/// of the device part up to `layer` when it can be mirrored, else the shape decoder. The image
/// is `model`'s input, which must be `[c, h, w]`.
pub fn decoder_at(model: &ModelSpec, layer: &str) -> Result<ModelSpec, SpecError> {
    let split_end = model.split_index(layer)? + 1;
    let image = match *model.input_shape.dims() {
        [c, h, w] => [c, h, w],
        _ => {
            return Err(SpecError::Unsupported {
                model: model.name.clone(),
                layer: layer.to_string(),
                reason: "the model takes flat inputs: there is no image to reconstruct".into(),
            });
        }
    };
    let device = ModelSpec::new(
        format!("{} up to {layer}", model.name),
        model.input_shape.clone(),
        model.layers[..split_end].to_vec(),
    )?;
    let observed = model.validate()?[split_end].clone();
    decoder_spec(Some(&device), &observed, image)
}

/// A stride-`s` transposed convolution that takes `from` pixels to exactly `to`:
/// `(kernel, padding, output_padding)` with `(from - 1) s - 2 padding + kernel + output_padding
/// = to`, kernel at least `2s - 1`, `output_padding < s`.
fn upsampling(from: usize, to: usize, s: usize) -> (usize, usize, usize) {
    let mut k = (2 * s).saturating_sub(1).max(1);
    let base = (from.saturating_sub(1)) * s + k;
    if base < to {
        return (k + to - base, 0, 0);
    }
    let d = base - to;
    let mut p = d.div_ceil(2);
    let mut op = 2 * p - d;
    if op >= s {
        // stride 1 and an odd excess: one more kernel tap makes it even.
        k += 1;
        p = d.div_ceil(2);
        op = 0;
    }
    (k, p, op)
}

/// A 3x3 convolution (padding 1) to `width` channels with its ReLU, at the current
/// resolution.
fn push_lift(layers: &mut Vec<Layer>, width: usize) {
    let n = layers.len();
    layers.push(layer(
        &format!("lift{n}"),
        LayerKind::Conv2d {
            out_channels: width,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
            groups: 1,
        },
    ));
    layers.push(layer(&format!("relu{n}"), LayerKind::Relu));
}

/// A transposed convolution step with its ReLU.
fn push_deconv(
    layers: &mut Vec<Layer>,
    out: usize,
    k: [usize; 2],
    s: [usize; 2],
    p: [usize; 2],
    op: [usize; 2],
) {
    let n = layers.len();
    layers.push(layer(
        &format!("up{n}"),
        LayerKind::ConvTranspose2d {
            out_channels: out,
            kernel: k,
            stride: s,
            padding: p,
            output_padding: op,
        },
    ));
    layers.push(layer(&format!("relu{n}"), LayerKind::Relu));
}

/// Whether `observed` features can stand for the device part's output `last`: the same
/// spatial size (any number of maps), or the same number of flat values.
fn same_geometry(observed: &Shape, last: &Shape) -> bool {
    match (observed.as_chw(), last.as_chw()) {
        (Some((_, h, w)), Some((_, lh, lw))) => (h, w) == (lh, lw),
        (None, None) => observed.numel() == last.numel(),
        _ => false,
    }
}

/// For the linear layer `i` of `device`: the flatten (or reshape) right before it, as its
/// index and the `[c, h, w]` maps it flattened, if there is one.
fn flattened_input(
    device: &ModelSpec,
    shapes: &[Shape],
    i: usize,
) -> Option<(usize, (usize, usize, usize))> {
    let j = i.checked_sub(1)?;
    let flattens = matches!(
        device.layers[j].kind,
        LayerKind::Flatten | LayerKind::Reshape { .. }
    );
    flattens
        .then(|| shapes[j].as_chw().map(|chw| (j, chw)))
        .flatten()
}

/// A reshape of the current values to `shape`.
fn push_reshape(layers: &mut Vec<Layer>, shape: Vec<usize>) {
    let n = layers.len();
    layers.push(layer(&format!("reshape{n}"), LayerKind::Reshape { shape }));
}

/// A dense step to `out` values with its ReLU.
fn push_dense(layers: &mut Vec<Layer>, out: usize) {
    let n = layers.len();
    layers.push(layer(
        &format!("fc{n}"),
        LayerKind::Linear { out_features: out },
    ));
    layers.push(layer(&format!("relu{n}"), LayerKind::Relu));
}

/// The mirror decoder of `device` for `observed` features of its output (see the module
/// docs), or `None` when the path cannot be mirrored (a flat image, a layer kind without an
/// inverse step, features whose size does not match the path).
pub fn mirror_decoder(
    device: &ModelSpec,
    observed: &Shape,
) -> Result<Option<ModelSpec>, SpecError> {
    let shapes = device.validate()?;
    // A graph's path has branches to undo, which this mirror cannot: the shape decoder.
    if device.input_shape.as_chw().is_none() || !device.is_chain() {
        return Ok(None);
    }
    if !shapes
        .last()
        .is_some_and(|last| same_geometry(observed, last))
    {
        return Ok(None);
    }
    let start = observed
        .as_chw()
        .map_or(64, |(c, _, _)| (2 * c).clamp(32, 64));
    let image_side = device.input_shape.as_chw().map(|(_, h, w)| (h, w));
    // Maps at the image's resolution get half the width (they cost the most).
    let width_for = |target: &Shape| match (target.as_chw(), image_side) {
        (Some((_, h, w)), Some(side)) if (h, w) == side => (start / 2).max(16),
        _ => start,
    };
    let mut layers: Vec<Layer> = Vec::new();
    let mut current = observed.clone();
    let mut i = device.layers.len();
    while i > 0 {
        i -= 1;
        let (input, output) = (&shapes[i], &shapes[i + 1]);
        let width = width_for(input);
        match &device.layers[i].kind {
            LayerKind::Relu
            | LayerKind::Dropout { .. }
            | LayerKind::BatchNorm2d { .. }
            | LayerKind::Sigmoid
            | LayerKind::Clip { .. }
            | LayerKind::Identity => continue,
            LayerKind::Conv2d {
                kernel,
                stride,
                padding,
                ..
            } => {
                let (Some((_, ih, iw)), Some((_, oh, ow))) = (input.as_chw(), output.as_chw())
                else {
                    return Ok(None);
                };
                if i == 0 && *stride == [1, 1] && (ih, iw) == (oh, ow) {
                    continue; // the final 3x3 convolution stands in for the first one
                }
                // The rows the convolution's stride dropped come back as output padding.
                let rest =
                    |a: usize| (input.dims()[a + 1] + 2 * padding[a] - kernel[a]) % stride[a];
                push_deconv(
                    &mut layers,
                    width,
                    *kernel,
                    *stride,
                    *padding,
                    [rest(0), rest(1)],
                );
            }
            LayerKind::MaxPool2d { kernel, stride, .. }
            | LayerKind::AvgPool2d { kernel, stride, .. } => {
                let (Some(ih), Some(oh)) = (input.as_chw(), output.as_chw()) else {
                    return Ok(None);
                };
                let s = stride.unwrap_or(*kernel);
                let (kh, ph, oph) = upsampling(oh.1, ih.1, s[0]);
                let (kw, pw, opw) = upsampling(oh.2, ih.2, s[1]);
                if !layers.iter().any(|l| l.kind.has_params()) {
                    // Pooled features are first lifted at their own resolution.
                    push_lift(&mut layers, start);
                }
                push_deconv(&mut layers, width, [kh, kw], s, [ph, pw], [oph, opw]);
            }
            LayerKind::Linear { .. } => {
                if let Some((j, (_, h, w))) = flattened_input(device, &shapes, i) {
                    let width = width_for(&shapes[j]).max(start);
                    push_dense(&mut layers, width * h * w);
                    push_reshape(&mut layers, vec![width, h, w]);
                    i = j; // the flatten is undone too
                } else if input.as_chw().is_none() && i > 0 {
                    push_dense(&mut layers, input.numel().max(256));
                } else {
                    return Ok(None);
                }
            }
            LayerKind::Flatten | LayerKind::Reshape { .. } => {
                if current.as_chw().is_some() || current.numel() != input.numel() {
                    return Ok(None);
                }
                push_reshape(&mut layers, input.dims().to_vec());
            }
            LayerKind::ConvTranspose2d { .. }
            | LayerKind::GlobalAvgPool2d
            | LayerKind::Add
            | LayerKind::Concat => return Ok(None),
        }
        current = ModelSpec::new("inverse", observed.clone(), layers.clone())?.output_shape()?;
    }
    if current.as_chw().is_none() {
        return Ok(None);
    }
    finish(layers, observed, device, start)
}

/// Closes a mirrored path: a lift when nothing was mirrored, then the 3x3 projection to the
/// image's channels; `None` unless the result has exactly the image's shape.
fn finish(
    mut layers: Vec<Layer>,
    observed: &Shape,
    device: &ModelSpec,
    start: usize,
) -> Result<Option<ModelSpec>, SpecError> {
    let Some((image_c, _, _)) = device.input_shape.as_chw() else {
        return Ok(None);
    };
    if layers.is_empty() {
        push_lift(&mut layers, start);
    }
    layers.push(layer(
        "out",
        LayerKind::Conv2d {
            out_channels: image_c,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
            groups: 1,
        },
    ));
    let spec = ModelSpec::new("inverse", observed.clone(), layers)?;
    if spec.output_shape()? != device.input_shape {
        return Ok(None);
    }
    Ok(Some(spec))
}

/// The shape decoder from `features` back to `image` (both without batch dimension).
pub fn shape_decoder(features: &Shape, image: [usize; 3]) -> Result<ModelSpec, SpecError> {
    let [ic, ih, iw] = image;
    let Some((_, h, w)) = features.as_chw() else {
        let layers = vec![
            layer("fc1", LayerKind::Linear { out_features: 1024 }),
            layer("relu1", LayerKind::Relu),
            layer(
                "fc2",
                LayerKind::Linear {
                    out_features: ic * ih * iw,
                },
            ),
            layer(
                "reshape",
                LayerKind::Reshape {
                    shape: vec![ic, ih, iw],
                },
            ),
        ];
        return ModelSpec::new("inverse", features.clone(), layers);
    };
    if h > ih || w > iw {
        return Err(SpecError::Input(features.clone()));
    }
    let mut layers = vec![
        layer(
            "lift",
            LayerKind::ConvTranspose2d {
                out_channels: DECODER_WIDTH,
                kernel: [3, 3],
                stride: [1, 1],
                padding: [1, 1],
                output_padding: [0, 0],
            },
        ),
        layer("relu_lift", LayerKind::Relu),
    ];
    // Double while that does not overshoot the image, then one stride-1 deconvolution whose
    // kernel covers the rest exactly (`s - 1 + k = H`).
    let (mut sh, mut sw) = (h, w);
    let mut step = 0;
    while sh * 2 <= ih && sw * 2 <= iw {
        step += 1;
        layers.push(layer(
            &format!("up{step}"),
            LayerKind::ConvTranspose2d {
                out_channels: DECODER_WIDTH,
                kernel: [4, 4],
                stride: [2, 2],
                padding: [1, 1],
                output_padding: [0, 0],
            },
        ));
        layers.push(layer(&format!("relu_up{step}"), LayerKind::Relu));
        sh *= 2;
        sw *= 2;
    }
    let (kh, ph) = final_kernel(sh, ih);
    let (kw, pw) = final_kernel(sw, iw);
    layers.push(layer(
        "out",
        LayerKind::ConvTranspose2d {
            out_channels: ic,
            kernel: [kh, kw],
            stride: [1, 1],
            padding: [ph, pw],
            output_padding: [0, 0],
        },
    ));
    let spec = ModelSpec::new("inverse", features.clone(), layers)?;
    debug_assert_eq!(spec.output_shape()?, Shape::chw(ic, ih, iw));
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoders_reach_the_image_shape_for_every_lenet_split() {
        let lenet = veil_spec::zoo::lenet5();
        let shapes = lenet.validate().expect("valid");
        for (i, l) in lenet.layers.iter().enumerate().take(7) {
            let spec = shape_decoder(&shapes[i + 1], [1, 28, 28]).expect(&l.name);
            assert_eq!(
                spec.output_shape().expect("out"),
                Shape::chw(1, 28, 28),
                "{}",
                l.name
            );
        }
        let gtsrb = veil_spec::zoo::gtsrb_cnn();
        let shapes = gtsrb.validate().expect("valid");
        for (i, _) in gtsrb.layers.iter().enumerate().take(16) {
            let spec = shape_decoder(&shapes[i + 1], [3, 32, 32]).expect("decoder");
            assert_eq!(spec.output_shape().expect("out"), Shape::chw(3, 32, 32));
        }
    }

    #[test]
    fn same_size_features_get_the_papers_two_deconv_decoder() {
        let spec = shape_decoder(&Shape::chw(6, 28, 28), [1, 28, 28]).expect("decoder");
        let ops: Vec<&str> = spec.layers.iter().map(|l| l.kind.op_name()).collect();
        assert_eq!(ops, ["conv_transpose2d", "relu", "conv_transpose2d"]);
    }

    /// The device part of `spec` up to and including `layer`.
    fn prefix(spec: &ModelSpec, layer: &str) -> ModelSpec {
        let end = spec.layer_index(layer).expect("layer") + 1;
        ModelSpec::new(
            "device",
            spec.input_shape.clone(),
            spec.layers[..end].to_vec(),
        )
        .expect("prefix")
    }

    fn ops(spec: &ModelSpec) -> Vec<String> {
        spec.layers
            .iter()
            .map(|l| match &l.kind {
                LayerKind::Conv2d {
                    out_channels,
                    kernel,
                    stride,
                    ..
                } => format!("conv{}/{}->{out_channels}", kernel[0], stride[0]),
                LayerKind::ConvTranspose2d {
                    out_channels,
                    kernel,
                    stride,
                    ..
                } => format!("convT{}/{}->{out_channels}", kernel[0], stride[0]),
                LayerKind::Linear { out_features } => format!("fc->{out_features}"),
                other => other.op_name().to_string(),
            })
            .collect()
    }

    #[test]
    fn the_mirror_of_lenet_relu2_undoes_conv2_and_pool1() {
        let lenet = veil_spec::zoo::lenet5();
        let device = prefix(&lenet, "relu2");
        let spec = mirror_decoder(&device, &Shape::chw(16, 10, 10))
            .expect("valid")
            .expect("mirrored");
        assert_eq!(
            ops(&spec),
            ["convT5/1->32", "relu", "convT3/2->16", "relu", "conv3/1->1"]
        );
        // Four observed maps: the same path, the width still at least 32.
        let four = mirror_decoder(&device, &Shape::chw(4, 10, 10))
            .expect("valid")
            .expect("mirrored");
        assert_eq!(ops(&four), ops(&spec));
    }

    #[test]
    fn features_of_the_first_convolution_get_a_lift_and_a_projection() {
        let device = prefix(&veil_spec::zoo::lenet5(), "conv1");
        let spec = mirror_decoder(&device, &Shape::chw(1, 28, 28))
            .expect("valid")
            .expect("mirrored");
        assert_eq!(ops(&spec), ["conv3/1->32", "relu", "conv3/1->1"]);
    }

    #[test]
    fn pooled_features_are_lifted_before_they_are_upsampled() {
        let device = prefix(&veil_spec::zoo::lenet5(), "pool1");
        let spec = mirror_decoder(&device, &Shape::chw(6, 14, 14))
            .expect("valid")
            .expect("mirrored");
        assert_eq!(
            ops(&spec),
            ["conv3/1->32", "relu", "convT3/2->16", "relu", "conv3/1->1"]
        );
    }

    #[test]
    fn flat_features_are_lifted_back_onto_the_flattened_maps() {
        let device = prefix(&veil_spec::zoo::lenet5(), "relu4");
        let spec = mirror_decoder(&device, &Shape::flat(84))
            .expect("valid")
            .expect("mirrored");
        assert_eq!(
            ops(&spec),
            [
                "fc->256",
                "relu",
                "fc->1600",
                "relu",
                "reshape",
                "convT3/2->64",
                "relu",
                "convT5/1->64",
                "relu",
                "convT3/2->32",
                "relu",
                "conv3/1->1"
            ]
        );
    }

    #[test]
    fn every_split_of_the_zoo_cnns_mirrors_to_the_image() {
        for model in [
            veil_spec::zoo::lenet5(),
            veil_spec::zoo::gtsrb_cnn(),
            veil_spec::zoo::cifar_cnn(10),
        ] {
            let shapes = model.validate().expect("valid");
            let last = model.layers.len() - 1; // the logits are not a split a device sends
            for (i, l) in model.layers.iter().enumerate().take(last) {
                let device = prefix(&model, &l.name);
                let spec = mirror_decoder(&device, &shapes[i + 1])
                    .expect("valid")
                    .unwrap_or_else(|| panic!("{} {} not mirrored", model.name, l.name));
                assert_eq!(
                    spec.output_shape().expect("out"),
                    model.input_shape,
                    "{}",
                    l.name
                );
                if let Some((c, h, w)) = shapes[i + 1].as_chw() {
                    let some =
                        mirror_decoder(&device, &Shape::chw(1.max(c / 4), h, w)).expect("valid");
                    assert!(some.is_some(), "{} {} with fewer maps", model.name, l.name);
                }
            }
        }
    }

    #[test]
    fn upsampling_hits_the_target_size() {
        for s in 1..4 {
            for from in 1..20 {
                for to in from * s..from * s + s {
                    let (k, p, op) = upsampling(from, to, s);
                    assert!(op < s, "{from}->{to} stride {s}");
                    assert_eq!(
                        (from - 1) * s + k + op - 2 * p,
                        to,
                        "{from}->{to} stride {s}"
                    );
                }
            }
        }
    }
}
