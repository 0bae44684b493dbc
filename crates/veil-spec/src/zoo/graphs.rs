//! The zoo's graph models: a CIFAR-style ResNet-8 with batch normalisation and a small
//! MobileNet of depthwise-separable blocks, both for 3x32x32 inputs (GTSRB, CIFAR-10).
//!
//! Layer names: `stem_*` for the first convolution, `b{n}_*` for block `n`; the output of each
//! block (`b{n}_out`) and of the stem (`stem_relu`) are cut points, where `veil attack` and
//! `veil profile` can split the model.

use crate::{Layer, LayerKind, ModelSpec, Shape};

/// Builds a graph spec layer by layer; every layer reads the one before it unless given
/// inputs.
struct Graph {
    layers: Vec<Layer>,
}

impl Graph {
    fn new() -> Self {
        Graph { layers: Vec::new() }
    }

    /// Name of the last layer (`input` before the first).
    fn last(&self) -> String {
        self.layers
            .last()
            .map_or_else(|| crate::graph::INPUT.to_string(), |l| l.name.clone())
    }

    fn push(&mut self, name: &str, kind: LayerKind) -> &mut Self {
        self.layers.push(Layer::new(name, kind));
        self
    }

    fn reading(&mut self, name: &str, inputs: &[&str], kind: LayerKind) -> &mut Self {
        self.layers.push(Layer::reading(name, inputs, kind));
        self
    }

    /// Convolution (no bias needed, but veil's convolutions always carry one) with batch
    /// normalisation: `{name}_conv`, `{name}_bn`.
    fn conv_bn(
        &mut self,
        name: &str,
        out: usize,
        k: usize,
        stride: usize,
        groups: usize,
    ) -> &mut Self {
        self.push(
            &format!("{name}_conv"),
            LayerKind::Conv2d {
                out_channels: out,
                kernel: [k, k],
                stride: [stride, stride],
                padding: [k / 2, k / 2],
                groups,
            },
        )
        .push(&format!("{name}_bn"), LayerKind::BatchNorm2d { eps: 1e-5 })
    }

    fn head(mut self, classes: usize, name: &str) -> ModelSpec {
        self.push("gap", LayerKind::GlobalAvgPool2d)
            .push("flatten", LayerKind::Flatten)
            .push(
                "fc",
                LayerKind::Linear {
                    out_features: classes,
                },
            );
        ModelSpec {
            name: name.to_string(),
            input_shape: Shape::chw(3, 32, 32),
            layers: self.layers,
        }
    }
}

/// ResNet-8 (He et al. 2016, the CIFAR family with n = 1): a 3x3 convolution to 16 channels,
/// three basic blocks of 16, 32 and 64 channels (two 3x3 convolutions with batch
/// normalisation and a residual add; the second and third halve the resolution and project
/// the shortcut with a 1x1 convolution), global average pooling and a linear classifier.
/// 78k parameters, 12.5M multiplications per 32x32 image.
pub fn resnet8(classes: usize) -> ModelSpec {
    let mut g = Graph::new();
    g.conv_bn("stem", 16, 3, 1, 1)
        .push("stem_relu", LayerKind::Relu);
    for (n, (width, stride)) in [(16, 1), (32, 2), (64, 2)].into_iter().enumerate() {
        let block = format!("b{}", n + 1);
        let input = g.last();
        g.conv_bn(&format!("{block}_a"), width, 3, stride, 1)
            .push(&format!("{block}_relu"), LayerKind::Relu)
            .conv_bn(&format!("{block}_b"), width, 3, 1, 1);
        let residual = format!("{block}_b_bn");
        let shortcut = match stride {
            1 => input,
            _ => {
                let proj = format!("{block}_proj");
                g.reading(
                    &format!("{proj}_conv"),
                    &[&input],
                    LayerKind::Conv2d {
                        out_channels: width,
                        kernel: [1, 1],
                        stride: [stride, stride],
                        padding: [0, 0],
                        groups: 1,
                    },
                )
                .push(&format!("{proj}_bn"), LayerKind::BatchNorm2d { eps: 1e-5 });
                format!("{proj}_bn")
            }
        };
        g.reading(
            &format!("{block}_add"),
            &[&residual, &shortcut],
            LayerKind::Add,
        )
        .push(&format!("{block}_out"), LayerKind::Relu);
    }
    g.head(classes, "resnet8")
}

/// A small MobileNet (Howard et al. 2017): a 3x3 convolution to 16 channels, four
/// depthwise-separable blocks (a 3x3 depthwise convolution and a 1x1 pointwise one, each with
/// batch normalisation and ReLU6) to 32, 64, 64 and 128 channels, the first three halving the
/// resolution, then global average pooling and a linear classifier.
pub fn mobilenet_tiny(classes: usize) -> ModelSpec {
    let relu6 = || LayerKind::Clip { min: 0.0, max: 6.0 };
    let mut g = Graph::new();
    g.conv_bn("stem", 16, 3, 1, 1).push("stem_relu", relu6());
    let mut channels = 16;
    for (n, (width, stride)) in [(32, 2), (64, 2), (64, 2), (128, 1)]
        .into_iter()
        .enumerate()
    {
        let block = format!("b{}", n + 1);
        g.conv_bn(&format!("{block}_dw"), channels, 3, stride, channels)
            .push(&format!("{block}_dw_relu"), relu6())
            .conv_bn(&format!("{block}_pw"), width, 1, 1, 1)
            .push(&format!("{block}_out"), relu6());
        channels = width;
    }
    g.head(classes, "mobilenet_tiny")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resnet8_is_a_graph_with_cuts_between_its_blocks() {
        let spec = resnet8(43);
        let shapes = spec.validate().expect("valid");
        assert!(!spec.is_chain());
        assert_eq!(shapes.last(), Some(&Shape::flat(43)));
        let by_name = |n: &str| shapes[spec.layer_index(n).expect("layer") + 1].clone();
        assert_eq!(by_name("b1_out"), Shape::chw(16, 32, 32));
        assert_eq!(by_name("b2_out"), Shape::chw(32, 16, 16));
        assert_eq!(by_name("b3_out"), Shape::chw(64, 8, 8));
        let cuts: Vec<&str> = spec
            .cut_points()
            .expect("cuts")
            .into_iter()
            .map(|i| spec.layers[i].name.as_str())
            .collect();
        for name in ["stem_relu", "b1_out", "b2_out", "b3_out", "gap"] {
            assert!(cuts.contains(&name), "{name} in {cuts:?}");
        }
        for inside in ["b1_relu", "b2_a_bn", "b3_proj_conv"] {
            assert!(!cuts.contains(&inside), "{inside} in {cuts:?}");
        }
        let cost = crate::cost::model_cost(&spec).expect("cost");
        assert!((70_000..90_000).contains(&cost.params), "{}", cost.params);
    }

    #[test]
    fn mobilenet_tiny_uses_depthwise_convolutions() {
        let spec = mobilenet_tiny(43);
        assert!(spec.is_chain());
        let shapes = spec.validate().expect("valid");
        assert_eq!(shapes.last(), Some(&Shape::flat(43)));
        let dw = &spec.layers[spec.layer_index("b2_dw_conv").expect("layer")];
        assert!(matches!(dw.kind, LayerKind::Conv2d { groups: 32, .. }));
        let weights = crate::weights::layout(&spec).expect("layout");
        let w = weights
            .iter()
            .find(|t| t.name == "b2_dw_conv.weight")
            .expect("weight");
        assert_eq!(w.shape, vec![32, 1, 3, 3]);
        assert!(weights.iter().any(|t| t.name == "b4_pw_bn.running_var"));
    }
}
