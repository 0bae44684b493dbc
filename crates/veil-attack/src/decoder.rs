//! The inverse network's architecture, derived from the feature shape.
//!
//! Rule (for features `[c, h, w]` and images `[C, H, W]`, `h <= H`, `w <= W`):
//! 1. `lift`: conv_transpose 3x3, stride 1, padding 1, `c -> 64`, ReLU (the first deconvolution
//!    of the papers' two-layer decoder).
//! 2. `up1, up2, ...`: while doubling does not overshoot the image, conv_transpose 4x4,
//!    stride 2, padding 1 (doubles each side), 64 channels, ReLU.
//! 3. `out`: conv_transpose, stride 1, `64 -> C` channels, kernel `H - s + 1` (no padding) so
//!    the output is exactly `H x W`; 3x3 with padding 1 when the map already has the image size.
//!
//! When the features already have the image size this is exactly the papers' shallow decoder
//! (two 3x3 deconvolutions with a ReLU between them). Flat features (after a linear layer) get
//! `linear -> C*H*W` then a reshape, preceded by a 1024-unit hidden layer with ReLU.

use veil_spec::{Layer, LayerKind, ModelSpec, Shape, SpecError};

/// Width of the decoder's hidden feature maps.
pub const DECODER_WIDTH: usize = 64;

fn layer(name: &str, kind: LayerKind) -> Layer {
    Layer {
        name: name.to_string(),
        kind,
    }
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

/// The inverse network from `features` back to `image` (both without batch dimension).
pub fn decoder_spec(features: &Shape, image: [usize; 3]) -> Result<ModelSpec, SpecError> {
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
            let spec = decoder_spec(&shapes[i + 1], [1, 28, 28]).expect(&l.name);
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
            let spec = decoder_spec(&shapes[i + 1], [3, 32, 32]).expect("decoder");
            assert_eq!(spec.output_shape().expect("out"), Shape::chw(3, 32, 32));
        }
    }

    #[test]
    fn same_size_features_get_the_papers_two_deconv_decoder() {
        let spec = decoder_spec(&Shape::chw(6, 28, 28), [1, 28, 28]).expect("decoder");
        let ops: Vec<&str> = spec.layers.iter().map(|l| l.kind.op_name()).collect();
        assert_eq!(ops, ["conv_transpose2d", "relu", "conv_transpose2d"]);
    }
}
