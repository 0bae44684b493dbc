//! The model zoo: every network of SYSTEM.md section 2, exactly as defined there.
//!
//! Names are part of veil's interface (`veil models`, `--model`). Layer names follow the
//! papers: `conv11`, `relu22`, `pool3`, `fc1`. [`model`] returns a validated spec;
//! [`model_with_classes`] swaps the output width of the last linear layer (e.g. `cifar_cnn` on
//! GTSRB's 43 classes).
//!
//! The PE-HEALTH sensor networks (a)-(d) are only drawn in a figure of the paper that did not
//! survive extraction, so veil defines them (documented on [`postop_a`] and friends): small
//! 1-D convolutions (a `1 x k` kernel over a `1 x 1 x n` input) or plain FC stacks.
//!
//! Two graph models for bring-your-own-model work ([`resnet8`], [`mobilenet_tiny`]: batch
//! normalisation, a residual add, depthwise convolutions) are not from SYSTEM.md; they default
//! to GTSRB's 43 classes.

use crate::{Layer, LayerKind, ModelSpec, Shape, SpecError};

mod graphs;
pub use graphs::{mobilenet_tiny, resnet8};

/// Names of all zoo models, in the order `veil models` lists them.
pub fn names() -> &'static [&'static str] {
    &[
        "lenet5",
        "cifar_cnn",
        "gtsrb_cnn",
        "resnet8",
        "mobilenet_tiny",
        "vgg16",
        "vgg19",
        "secureml_a",
        "chameleon",
        "minionn",
        "lenet_large",
        "obfnet1",
        "obfnet2",
        "postop_a",
        "postop_b",
        "wearable_c",
        "wearable_d",
    ]
}

/// The zoo model called `name` (case-insensitive), validated.
pub fn model(name: &str) -> Result<ModelSpec, SpecError> {
    let spec = match name.to_ascii_lowercase().as_str() {
        "lenet5" => lenet5(),
        "cifar_cnn" => cifar_cnn(10),
        "gtsrb_cnn" => gtsrb_cnn(),
        "resnet8" => resnet8(43),
        "mobilenet_tiny" => mobilenet_tiny(43),
        "vgg16" => vgg(16, &[2, 2, 3, 3, 3], 1000),
        "vgg19" => vgg(19, &[2, 2, 4, 4, 4], 1000),
        "secureml_a" => secureml_a(),
        "chameleon" => chameleon(),
        "minionn" => minionn(),
        "lenet_large" => lenet_large(),
        "obfnet1" => obfnet(1),
        "obfnet2" => obfnet(2),
        "postop_a" => postop_a(),
        "postop_b" => postop_b(),
        "wearable_c" => wearable_c(),
        "wearable_d" => wearable_d(),
        _ => {
            return Err(SpecError::UnknownModel {
                name: name.to_string(),
                available: names().join(", "),
            });
        }
    };
    spec.validate()?;
    Ok(spec)
}

/// The zoo model with its classifier head resized to `classes` outputs (see
/// [`ModelSpec::with_output_classes`]).
pub fn model_with_classes(name: &str, classes: usize) -> Result<ModelSpec, SpecError> {
    model(name)?.with_output_classes(classes)
}

/// Small builder that names layers as the papers do.
struct Builder {
    layers: Vec<Layer>,
}

impl Builder {
    fn new() -> Self {
        Builder { layers: Vec::new() }
    }

    fn push(mut self, name: impl Into<String>, kind: LayerKind) -> Self {
        self.layers.push(Layer::new(name, kind));
        self
    }

    fn conv(self, name: impl Into<String>, out: usize, k: usize, s: usize, p: usize) -> Self {
        self.push(
            name,
            LayerKind::Conv2d {
                out_channels: out,
                kernel: [k, k],
                stride: [s, s],
                padding: [p, p],
                groups: 1,
            },
        )
    }

    /// A `1 x k` convolution over a `c x 1 x n` sensor vector, padded to keep the width.
    fn conv1d(self, name: impl Into<String>, out: usize, k: usize) -> Self {
        self.push(
            name,
            LayerKind::Conv2d {
                out_channels: out,
                kernel: [1, k],
                stride: [1, 1],
                padding: [0, k / 2],
                groups: 1,
            },
        )
    }

    fn relu(self, name: impl Into<String>) -> Self {
        self.push(name, LayerKind::Relu)
    }

    fn maxpool(self, name: impl Into<String>, k: usize) -> Self {
        self.push(
            name,
            LayerKind::MaxPool2d {
                kernel: [k, k],
                stride: None,
                padding: [0, 0],
            },
        )
    }

    fn flatten(self) -> Self {
        self.push("flatten", LayerKind::Flatten)
    }

    fn fc(self, name: impl Into<String>, out: usize) -> Self {
        self.push(name, LayerKind::Linear { out_features: out })
    }

    fn dropout(self, name: impl Into<String>, prob: f64) -> Self {
        self.push(name, LayerKind::Dropout { prob })
    }

    fn build(self, name: &str, input: Shape) -> ModelSpec {
        ModelSpec {
            name: name.to_string(),
            input_shape: input,
            layers: self.layers,
        }
    }
}

/// LeNet-5 as in the ObfNet paper: 1x28x28, conv 6 k5 p2, pool, conv 16 k5, pool, FC 120-84-10.
pub fn lenet5() -> ModelSpec {
    Builder::new()
        .conv("conv1", 6, 5, 1, 2)
        .relu("relu1")
        .maxpool("pool1", 2)
        .conv("conv2", 16, 5, 1, 0)
        .relu("relu2")
        .maxpool("pool2", 2)
        .flatten()
        .fc("fc1", 120)
        .relu("relu3")
        .fc("fc2", 84)
        .relu("relu4")
        .fc("fc3", 10)
        .build("lenet5", Shape::chw(1, 28, 28))
}

/// DistPrivacy / He et al. CIFAR network: three blocks of two k3 p1 convs and a max pool,
/// then FC 512 and FC `classes`. Layer names `conv11 .. conv32`, `relu11 .. relu32`.
pub fn cifar_cnn(classes: usize) -> ModelSpec {
    let mut b = Builder::new();
    for (block, width) in [(1, 64), (2, 128), (3, 128)] {
        for i in 1..=2 {
            b = b
                .conv(format!("conv{block}{i}"), width, 3, 1, 1)
                .relu(format!("relu{block}{i}"));
        }
        b = b.maxpool(format!("pool{block}"), 2);
    }
    b.flatten()
        .fc("fc1", 512)
        .relu("relu_fc1")
        .fc("fc2", classes)
        .build("cifar_cnn", Shape::chw(3, 32, 32))
}

/// Spears and shields GTSRB network: six k3 p1 convs of 64 channels with ReLU, a 2x2 max pool
/// after every two, FC 256, ReLU, FC 43.
pub fn gtsrb_cnn() -> ModelSpec {
    let mut b = Builder::new();
    for i in 1..=6 {
        b = b
            .conv(format!("conv{i}"), 64, 3, 1, 1)
            .relu(format!("relu{i}"));
        if i % 2 == 0 {
            b = b.maxpool(format!("pool{}", i / 2), 2);
        }
    }
    b.flatten()
        .fc("fc1", 256)
        .relu("relu7")
        .fc("fc2", 43)
        .build("gtsrb_cnn", Shape::chw(3, 32, 32))
}

/// VGG-16/19 on 3x128x128: blocks of k3 p1 convs (64, 128, 256, 512, 512 channels; `per_block`
/// convs each), a max pool after each block, then FC 4096 (dropout 0.5), FC 4096 (dropout 0.5),
/// FC `classes`. Conv names `conv{block}{i}`.
fn vgg(depth: usize, per_block: &[usize; 5], classes: usize) -> ModelSpec {
    let widths = [64, 128, 256, 512, 512];
    let mut b = Builder::new();
    for (block, (&n, &width)) in per_block.iter().zip(widths.iter()).enumerate() {
        for i in 1..=n {
            b = b
                .conv(format!("conv{}{i}", block + 1), width, 3, 1, 1)
                .relu(format!("relu{}{i}", block + 1));
        }
        b = b.maxpool(format!("pool{}", block + 1), 2);
    }
    b.flatten()
        .fc("fc1", 4096)
        .relu("relu_fc1")
        .dropout("drop_fc1", 0.5)
        .fc("fc2", 4096)
        .relu("relu_fc2")
        .dropout("drop_fc2", 0.5)
        .fc("fc3", classes)
        .build(&format!("vgg{depth}"), Shape::chw(3, 128, 128))
}

/// SecureML network A: FC 128, ReLU, FC 128, ReLU, FC 10 on flattened MNIST.
pub fn secureml_a() -> ModelSpec {
    Builder::new()
        .flatten()
        .fc("fc1", 128)
        .relu("relu1")
        .fc("fc2", 128)
        .relu("relu2")
        .fc("fc3", 10)
        .build("secureml_a", Shape::chw(1, 28, 28))
}

/// Chameleon / PE-HEALTH network (e): conv 5 k5 s2 p2, ReLU, FC 100, ReLU, FC 10.
pub fn chameleon() -> ModelSpec {
    Builder::new()
        .conv("conv1", 5, 5, 2, 2)
        .relu("relu1")
        .flatten()
        .fc("fc1", 100)
        .relu("relu2")
        .fc("fc2", 10)
        .build("chameleon", Shape::chw(1, 28, 28))
}

/// MiniONN / PE-HEALTH network (f): conv 16 k5, ReLU, pool, conv 16 k5, ReLU, pool,
/// FC 100, ReLU, FC 10.
pub fn minionn() -> ModelSpec {
    Builder::new()
        .conv("conv1", 16, 5, 1, 0)
        .relu("relu1")
        .maxpool("pool1", 2)
        .conv("conv2", 16, 5, 1, 0)
        .relu("relu2")
        .maxpool("pool2", 2)
        .flatten()
        .fc("fc1", 100)
        .relu("relu3")
        .fc("fc2", 10)
        .build("minionn", Shape::chw(1, 28, 28))
}

/// SecureNN network C (a large LeNet): conv 20 k5, ReLU, pool, conv 50 k5, ReLU, pool,
/// FC 500, ReLU, FC 10.
pub fn lenet_large() -> ModelSpec {
    Builder::new()
        .conv("conv1", 20, 5, 1, 0)
        .relu("relu1")
        .maxpool("pool1", 2)
        .conv("conv2", 50, 5, 1, 0)
        .relu("relu2")
        .maxpool("pool2", 2)
        .flatten()
        .fc("fc1", 500)
        .relu("relu3")
        .fc("fc2", 10)
        .build("lenet_large", Shape::chw(1, 28, 28))
}

/// ObfNet1 (784-784) and ObfNet2 (784-1000-784) with ReLU after every FC; they take a 1x28x28
/// image, flatten it and reshape their output back to 1x28x28 so that they compose with
/// `lenet5`.
fn obfnet(variant: usize) -> ModelSpec {
    let b = Builder::new().flatten();
    let b = if variant == 1 {
        b.fc("fc1", 784).relu("relu1")
    } else {
        b.fc("fc1", 1000).relu("relu1").fc("fc2", 784).relu("relu2")
    };
    b.push(
        "reshape",
        LayerKind::Reshape {
            shape: vec![1, 28, 28],
        },
    )
    .build(&format!("obfnet{variant}"), Shape::chw(1, 28, 28))
}

/// PE-HEALTH network (a), veil's definition: the 8 Post-operative attributes as a 1x1x8
/// vector; conv 8 `1x3` (same width), ReLU, FC 16, ReLU, FC 3.
pub fn postop_a() -> ModelSpec {
    Builder::new()
        .conv1d("conv1", 8, 3)
        .relu("relu1")
        .flatten()
        .fc("fc1", 16)
        .relu("relu2")
        .fc("fc2", 3)
        .build("postop_a", Shape::chw(1, 1, 8))
}

/// PE-HEALTH network (b), veil's definition: FC 16, ReLU, FC 3 on the 8 Post-operative
/// attributes.
pub fn postop_b() -> ModelSpec {
    Builder::new()
        .flatten()
        .fc("fc1", 16)
        .relu("relu1")
        .fc("fc2", 3)
        .build("postop_b", Shape::chw(1, 1, 8))
}

/// PE-HEALTH network (c), veil's definition: the 7 wearable readings (accF, accV, accL,
/// antenna, RSSI, phase, frequency) as 1x1x7; conv 16 `1x3`, ReLU, conv 16 `1x3`, ReLU,
/// FC 32, ReLU, FC 4.
pub fn wearable_c() -> ModelSpec {
    Builder::new()
        .conv1d("conv1", 16, 3)
        .relu("relu1")
        .conv1d("conv2", 16, 3)
        .relu("relu2")
        .flatten()
        .fc("fc1", 32)
        .relu("relu3")
        .fc("fc2", 4)
        .build("wearable_c", Shape::chw(1, 1, 7))
}

/// PE-HEALTH network (d), veil's definition: FC 64, ReLU, FC 32, ReLU, FC 4 on the 7
/// wearable readings.
pub fn wearable_d() -> ModelSpec {
    Builder::new()
        .flatten()
        .fc("fc1", 64)
        .relu("relu1")
        .fc("fc2", 32)
        .relu("relu2")
        .fc("fc3", 4)
        .build("wearable_d", Shape::chw(1, 1, 7))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_zoo_model_is_valid_and_reachable_by_name() {
        for name in names() {
            let spec = model(name).expect("valid zoo model");
            assert_eq!(spec.name, *name);
        }
        assert!(matches!(
            model("resnet"),
            Err(SpecError::UnknownModel { .. })
        ));
        assert_eq!(model("LeNet5").expect("case-insensitive").name, "lenet5");
    }

    #[test]
    fn zoo_output_widths_match_the_papers() {
        let out = |n: &str| model(n).expect("zoo").output_shape().expect("shape");
        assert_eq!(out("gtsrb_cnn"), Shape::flat(43));
        assert_eq!(out("cifar_cnn"), Shape::flat(10));
        assert_eq!(out("vgg16"), Shape::flat(1000));
        assert_eq!(out("obfnet2"), Shape::chw(1, 28, 28));
        assert_eq!(out("postop_a"), Shape::flat(3));
        assert_eq!(out("wearable_c"), Shape::flat(4));
        let conv_count = |n: &str| {
            model(n)
                .expect("zoo")
                .layers
                .iter()
                .filter(|l| matches!(l.kind, LayerKind::Conv2d { .. }))
                .count()
        };
        assert_eq!(conv_count("vgg16"), 13);
        assert_eq!(conv_count("vgg19"), 16);
        assert_eq!(conv_count("gtsrb_cnn"), 6);
    }

    #[test]
    fn classes_can_be_overridden_except_for_autoencoders() {
        let spec = model_with_classes("cifar_cnn", 43).expect("valid");
        assert_eq!(spec.output_shape().expect("shape"), Shape::flat(43));
        assert!(model_with_classes("obfnet1", 43).is_err());
    }
}
