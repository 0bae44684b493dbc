//! [`Network`]: the burn modules that hold a spec's parameters, one slot per spec layer.
//!
//! Layers without parameters or training state (relu, sigmoid, clip, add, concat, global
//! average pool, flatten, reshape, identity) have an empty slot; their behaviour comes from
//! the spec. The slot order always equals the spec's layer order.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::tensor::Device;
use veil_spec::{LayerKind, ModelSpec};

/// A burn module for one spec layer.
#[derive(Module, Debug)]
pub(crate) enum Op {
    /// conv2d.
    Conv(Conv2d),
    /// conv_transpose2d.
    ConvT(ConvTranspose2d),
    /// linear; burn stores the weight as `[in, out]`.
    Linear(Linear),
    /// maxpool2d.
    MaxPool(MaxPool2d),
    /// avgpool2d.
    AvgPool(AvgPool2d),
    /// dropout (identity outside training).
    Dropout(Dropout),
    /// batch_norm2d: batch statistics in training, running statistics otherwise.
    BatchNorm(BatchNorm),
}

/// `[top, left, bottom, right]` padding from a spec's `[h, w]`.
fn pad2d(padding: [usize; 2]) -> PaddingConfig2d {
    PaddingConfig2d::Explicit(padding[0], padding[1], padding[0], padding[1])
}

/// Parameters of a whole spec: `ops[i]` belongs to `spec.layers[i]`.
#[derive(Module, Debug)]
pub(crate) struct Network {
    pub(crate) ops: Vec<Option<Op>>,
}

impl Network {
    /// Builds freshly initialised (lazy, seeded through the device RNG) modules for `spec`.
    ///
    /// `spec` must be validated: the input channel counts come from its shapes.
    pub(crate) fn build(spec: &ModelSpec, device: &Device) -> Result<Self, veil_spec::SpecError> {
        let shapes = spec.validate()?;
        let sources = spec.sources()?;
        let mut ops = Vec::with_capacity(spec.layers.len());
        for (i, layer) in spec.layers.iter().enumerate() {
            let input = &shapes[sources[i][0].slot()];
            let in_dim = input.dims()[0];
            let op = match &layer.kind {
                LayerKind::Conv2d {
                    out_channels,
                    kernel,
                    stride,
                    padding,
                    groups,
                } => Some(Op::Conv(
                    Conv2dConfig::new([in_dim, *out_channels], *kernel)
                        .with_stride(*stride)
                        .with_padding(pad2d(*padding))
                        .with_groups(*groups)
                        .init(device),
                )),
                LayerKind::ConvTranspose2d {
                    out_channels,
                    kernel,
                    stride,
                    padding,
                    output_padding,
                } => Some(Op::ConvT(
                    ConvTranspose2dConfig::new([in_dim, *out_channels], *kernel)
                        .with_stride(*stride)
                        .with_padding(*padding)
                        .with_padding_out(*output_padding)
                        .init(device),
                )),
                LayerKind::Linear { out_features } => Some(Op::Linear(
                    LinearConfig::new(input.numel(), *out_features).init(device),
                )),
                LayerKind::MaxPool2d {
                    kernel,
                    stride,
                    padding,
                } => Some(Op::MaxPool(
                    MaxPool2dConfig::new(*kernel)
                        .with_strides(stride.unwrap_or(*kernel))
                        .with_padding(pad2d(*padding))
                        .init(),
                )),
                LayerKind::AvgPool2d {
                    kernel,
                    stride,
                    padding,
                    count_include_pad,
                } => Some(Op::AvgPool(
                    AvgPool2dConfig::new(*kernel)
                        .with_strides(stride.unwrap_or(*kernel))
                        .with_padding(pad2d(*padding))
                        .with_count_include_pad(*count_include_pad)
                        .init(),
                )),
                LayerKind::Dropout { prob } => Some(Op::Dropout(DropoutConfig::new(*prob).init())),
                LayerKind::BatchNorm2d { eps } => Some(Op::BatchNorm(
                    BatchNormConfig::new(in_dim).with_epsilon(*eps).init(device),
                )),
                LayerKind::Relu
                | LayerKind::Flatten
                | LayerKind::Reshape { .. }
                | LayerKind::GlobalAvgPool2d
                | LayerKind::Add
                | LayerKind::Concat
                | LayerKind::Sigmoid
                | LayerKind::Clip { .. }
                | LayerKind::Identity => None,
            };
            ops.push(op);
        }
        Ok(Network { ops })
    }
}

impl Network {
    /// Draws every lazily initialised parameter now (reading a parameter initialises it).
    pub(crate) fn materialise(&self) {
        for op in self.ops.iter().flatten() {
            match op {
                Op::Conv(m) => {
                    let _ = m.weight.val();
                    if let Some(b) = &m.bias {
                        let _ = b.val();
                    }
                }
                Op::ConvT(m) => {
                    let _ = m.weight.val();
                    if let Some(b) = &m.bias {
                        let _ = b.val();
                    }
                }
                Op::Linear(m) => {
                    let _ = m.weight.val();
                    if let Some(b) = &m.bias {
                        let _ = b.val();
                    }
                }
                Op::BatchNorm(m) => {
                    let _ = m.gamma.val();
                    let _ = m.beta.val();
                }
                Op::MaxPool(_) | Op::AvgPool(_) | Op::Dropout(_) => {}
            }
        }
    }
}

/// `net` (in training mode) with the layers named in `frozen` frozen: no gradients and no
/// training behaviour, so batch normalisation there keeps (and uses) its running statistics
/// and dropout there is off.
pub(crate) fn freeze_layers(spec: &ModelSpec, mut net: Network, frozen: &[String]) -> Network {
    for (i, layer) in spec.layers.iter().enumerate() {
        if !frozen.iter().any(|f| f.eq_ignore_ascii_case(&layer.name)) {
            continue;
        }
        if let Some(slot) = net.ops.get_mut(i) {
            *slot = slot.take().map(|op| op.freeze());
        }
    }
    net
}

/// Removes from `grads` the gradients of the parameters of the layers named in `frozen`, so an
/// optimiser step leaves them unchanged (their running statistics are kept by
/// [`freeze_layers`]).
pub(crate) fn drop_frozen(
    spec: &ModelSpec,
    net: &Network,
    frozen: &[String],
    grads: &mut burn::optim::GradientsParams,
) {
    for (i, layer) in spec.layers.iter().enumerate() {
        if !frozen.iter().any(|f| f.eq_ignore_ascii_case(&layer.name)) {
            continue;
        }
        match net.ops.get(i).and_then(Option::as_ref) {
            Some(Op::Conv(m)) => {
                grads.remove::<4>(m.weight.id);
                if let Some(b) = &m.bias {
                    grads.remove::<1>(b.id);
                }
            }
            Some(Op::ConvT(m)) => {
                grads.remove::<4>(m.weight.id);
                if let Some(b) = &m.bias {
                    grads.remove::<1>(b.id);
                }
            }
            Some(Op::Linear(m)) => {
                grads.remove::<2>(m.weight.id);
                if let Some(b) = &m.bias {
                    grads.remove::<1>(b.id);
                }
            }
            Some(Op::BatchNorm(m)) => {
                grads.remove::<1>(m.gamma.id);
                grads.remove::<1>(m.beta.id);
            }
            _ => {}
        }
    }
}
