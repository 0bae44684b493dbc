//! [`Layer`] and [`LayerKind`]: one named operation of a model spec, the layers it reads, and
//! its shape rule.

use serde::{Deserialize, Serialize};

use crate::Shape;

/// One named layer. The name is how reports and split points refer to it (`conv11`, `relu22`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    /// Unique name within the model.
    pub name: String,
    /// The layers whose outputs this layer reads, by name (`input` is the model's input), each
    /// defined before it. Empty (the default, and how a chain is written): the layer before
    /// it, or the model's input for the first layer. Only [`Arity::Many`] operations read
    /// more than one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<String>,
    /// The operation and its hyper-parameters.
    #[serde(flatten)]
    pub kind: LayerKind,
}

impl Layer {
    /// A layer that reads the layer before it.
    pub fn new(name: impl Into<String>, kind: LayerKind) -> Self {
        Layer {
            name: name.into(),
            inputs: Vec::new(),
            kind,
        }
    }

    /// A layer that reads the named layers (`input`: the model's input).
    pub fn reading(name: impl Into<String>, inputs: &[&str], kind: LayerKind) -> Self {
        Layer {
            name: name.into(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            kind,
        }
    }
}

/// How many inputs an operation takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arity {
    /// Exactly one.
    One,
    /// Two or more.
    Many,
}

fn one() -> [usize; 2] {
    [1, 1]
}

fn zero() -> [usize; 2] {
    [0, 0]
}

fn one_group() -> usize {
    1
}

fn is_one(v: &usize) -> bool {
    *v == 1
}

fn is_zero(v: &[usize; 2]) -> bool {
    *v == [0, 0]
}

fn is_false(v: &bool) -> bool {
    !*v
}

fn bn_eps() -> f64 {
    1e-5
}

/// The operation a layer performs. `[h, w]` pairs give height first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerKind {
    /// 2-D convolution with bias; weight layout `[out, in, kh, kw]`.
    Conv2d {
        /// Number of filters (output channels).
        out_channels: usize,
        /// Kernel size.
        kernel: [usize; 2],
        /// Stride (default 1).
        #[serde(default = "one")]
        stride: [usize; 2],
        /// Zero padding on each side (default 0).
        #[serde(default = "zero")]
        padding: [usize; 2],
        /// Channel groups (default 1): input and output channels split into this many equal
        /// groups, each output group convolving only its input group (depthwise: as many
        /// groups as input channels); weight layout `[out, in / groups, kh, kw]`.
        #[serde(default = "one_group", skip_serializing_if = "is_one")]
        groups: usize,
    },
    /// 2-D transposed convolution with bias; weight layout `[in, out, kh, kw]`.
    ConvTranspose2d {
        /// Number of output channels.
        out_channels: usize,
        /// Kernel size.
        kernel: [usize; 2],
        /// Stride (default 1).
        #[serde(default = "one")]
        stride: [usize; 2],
        /// Padding removed from each side of the full output (default 0).
        #[serde(default = "zero")]
        padding: [usize; 2],
        /// Extra rows/columns added on one side of the output (default 0).
        #[serde(default = "zero")]
        output_padding: [usize; 2],
    },
    /// Max pooling; padded positions never win (they count as minus infinity).
    MaxPool2d {
        /// Window size.
        kernel: [usize; 2],
        /// Stride (defaults to the window size when omitted).
        #[serde(default)]
        stride: Option<[usize; 2]>,
        /// Padding on each side (default 0; at most half the window).
        #[serde(default = "zero", skip_serializing_if = "is_zero")]
        padding: [usize; 2],
    },
    /// Average pooling.
    AvgPool2d {
        /// Window size.
        kernel: [usize; 2],
        /// Stride (defaults to the window size when omitted).
        #[serde(default)]
        stride: Option<[usize; 2]>,
        /// Zero padding on each side (default 0; at most half the window).
        #[serde(default = "zero", skip_serializing_if = "is_zero")]
        padding: [usize; 2],
        /// Whether padded positions count in the divisor (PyTorch's default, `true`, is
        /// exported to ONNX explicitly; absent means `false`, ONNX's default).
        #[serde(default, skip_serializing_if = "is_false")]
        count_include_pad: bool,
    },
    /// Mean over each channel's map: `[c, h, w]` to `[c, 1, 1]`.
    GlobalAvgPool2d,
    /// Per-channel batch normalisation with running statistics; at inference
    /// `(x - running_mean) / sqrt(running_var + eps) * weight + bias`. Tensors
    /// `<name>.weight`, `.bias`, `.running_mean`, `.running_var`, each `[c]`.
    BatchNorm2d {
        /// Added to the variance (default 1e-5, PyTorch's).
        #[serde(default = "bn_eps")]
        eps: f64,
    },
    /// Element-wise sum of two or more inputs of one shape (a residual connection).
    Add,
    /// Inputs stacked along the first axis: channels of `[c, h, w]` maps with equal `h` and
    /// `w`, or flat vectors end to end.
    Concat,
    /// Element-wise logistic function `1 / (1 + e^-x)`.
    Sigmoid,
    /// Element-wise clamp to `[min, max]` (ReLU6 is `min = 0, max = 6`).
    Clip {
        /// Lower bound.
        min: f64,
        /// Upper bound (at least `min`).
        max: f64,
    },
    /// Passes its input on unchanged (ONNX `Identity`; a named point to split at).
    Identity,
    /// Element-wise `max(0, x)`.
    Relu,
    /// `[c, h, w]` to `[c*h*w]`, row-major.
    Flatten,
    /// Fully connected layer with bias; weight layout `[out, in]`.
    Linear {
        /// Output features.
        out_features: usize,
    },
    /// Dropout during training, identity at inference.
    Dropout {
        /// Probability of zeroing an element, in `[0, 1)`.
        prob: f64,
    },
    /// Reinterpret the activation with another shape of the same size (row-major).
    Reshape {
        /// Target shape without batch.
        shape: Vec<usize>,
    },
}

impl LayerKind {
    /// Short operation name as used in the spec files.
    pub fn op_name(&self) -> &'static str {
        match self {
            LayerKind::Conv2d { .. } => "conv2d",
            LayerKind::ConvTranspose2d { .. } => "conv_transpose2d",
            LayerKind::MaxPool2d { .. } => "maxpool2d",
            LayerKind::AvgPool2d { .. } => "avgpool2d",
            LayerKind::Relu => "relu",
            LayerKind::Flatten => "flatten",
            LayerKind::Linear { .. } => "linear",
            LayerKind::Dropout { .. } => "dropout",
            LayerKind::Reshape { .. } => "reshape",
            LayerKind::GlobalAvgPool2d => "global_avg_pool2d",
            LayerKind::BatchNorm2d { .. } => "batch_norm2d",
            LayerKind::Add => "add",
            LayerKind::Concat => "concat",
            LayerKind::Sigmoid => "sigmoid",
            LayerKind::Clip { .. } => "clip",
            LayerKind::Identity => "identity",
        }
    }

    /// Whether the layer owns trainable parameters (weight and bias; batch normalisation
    /// also holds its running statistics).
    pub fn has_params(&self) -> bool {
        matches!(
            self,
            LayerKind::Conv2d { .. }
                | LayerKind::ConvTranspose2d { .. }
                | LayerKind::Linear { .. }
                | LayerKind::BatchNorm2d { .. }
        )
    }

    /// How many inputs the operation takes.
    pub fn arity(&self) -> Arity {
        match self {
            LayerKind::Add | LayerKind::Concat => Arity::Many,
            _ => Arity::One,
        }
    }

    /// Output shape for `inputs` (one shape per input, in the layer's `inputs` order), or a
    /// reason why the layer cannot take them.
    pub fn output_shape_of(&self, inputs: &[&Shape]) -> Result<Shape, String> {
        match (self.arity(), inputs) {
            (Arity::One, [input]) => self.output_shape(input),
            (Arity::One, _) => Err(format!(
                "{} takes one input, got {}",
                self.op_name(),
                inputs.len()
            )),
            (Arity::Many, [_, _, ..]) => self.combine(inputs),
            (Arity::Many, _) => Err(format!(
                "{} takes two or more inputs, got {}",
                self.op_name(),
                inputs.len()
            )),
        }
    }

    /// The shape rule of the many-input operations.
    fn combine(&self, inputs: &[&Shape]) -> Result<Shape, String> {
        let first = inputs[0];
        match self {
            LayerKind::Add => match inputs.iter().find(|s| **s != first) {
                Some(other) => Err(format!(
                    "add needs inputs of one shape, got {first} and {other}"
                )),
                None => Ok(first.clone()),
            },
            _ => {
                let tail = |s: &Shape| s.dims()[1..].to_vec();
                if let Some(other) = inputs
                    .iter()
                    .find(|s| s.dims().len() != first.dims().len() || tail(s) != tail(first))
                {
                    return Err(format!(
                        "concat needs inputs that differ only in the first dimension, got {first} and {other}"
                    ));
                }
                let mut dims = first.dims().to_vec();
                dims[0] = inputs
                    .iter()
                    .try_fold(0usize, |acc, s| acc.checked_add(s.dims()[0]))
                    .ok_or("concat: the channel count overflows")?;
                Ok(Shape(dims))
            }
        }
    }

    /// Output shape for `input`, or a reason why the layer cannot take it.
    ///
    /// The reason is a plain sentence; [`crate::ModelSpec::validate`] adds layer context.
    pub fn output_shape(&self, input: &Shape) -> Result<Shape, String> {
        let need_chw = || {
            input
                .as_chw()
                .ok_or_else(|| format!("{} needs a [c, h, w] input", self.op_name()))
        };
        match self {
            LayerKind::Conv2d {
                out_channels,
                kernel,
                stride,
                padding,
                groups,
            } => {
                let (c, h, w) = need_chw()?;
                if *groups == 0 || c % groups != 0 || out_channels % groups != 0 {
                    return Err(format!(
                        "{groups} groups must divide the {c} input and {out_channels} output channels"
                    ));
                }
                let oh = conv_out(h, kernel[0], stride[0], padding[0])?;
                let ow = conv_out(w, kernel[1], stride[1], padding[1])?;
                Ok(Shape::chw(*out_channels, oh, ow))
            }
            LayerKind::ConvTranspose2d {
                out_channels,
                kernel,
                stride,
                padding,
                output_padding,
            } => {
                let (_, h, w) = need_chw()?;
                let out = |i: usize, k: usize, s: usize, p: usize, op: usize| {
                    ((i - 1) * s + k + op)
                        .checked_sub(2 * p)
                        .filter(|&o| o > 0)
                        .ok_or_else(|| "padding removes the whole output".to_string())
                };
                let oh = out(h, kernel[0], stride[0], padding[0], output_padding[0])?;
                let ow = out(w, kernel[1], stride[1], padding[1], output_padding[1])?;
                Ok(Shape::chw(*out_channels, oh, ow))
            }
            LayerKind::MaxPool2d {
                kernel,
                stride,
                padding,
            }
            | LayerKind::AvgPool2d {
                kernel,
                stride,
                padding,
                ..
            } => {
                let (c, h, w) = need_chw()?;
                let stride = stride.unwrap_or(*kernel);
                let oh = conv_out(h, kernel[0], stride[0], padding[0])?;
                let ow = conv_out(w, kernel[1], stride[1], padding[1])?;
                Ok(Shape::chw(c, oh, ow))
            }
            LayerKind::GlobalAvgPool2d => {
                let (c, _, _) = need_chw()?;
                Ok(Shape::chw(c, 1, 1))
            }
            LayerKind::BatchNorm2d { .. } => {
                need_chw()?;
                Ok(input.clone())
            }
            LayerKind::Relu
            | LayerKind::Dropout { .. }
            | LayerKind::Sigmoid
            | LayerKind::Clip { .. }
            | LayerKind::Identity => Ok(input.clone()),
            LayerKind::Add | LayerKind::Concat => self.output_shape_of(&[input]),
            LayerKind::Flatten => Ok(Shape::flat(input.numel())),
            LayerKind::Linear { .. } if input.dims().len() != 1 => Err(format!(
                "linear needs a flat input; add a flatten layer before it (got {} dims)",
                input.dims().len()
            )),
            LayerKind::Linear { out_features } => Ok(Shape::flat(*out_features)),
            LayerKind::Reshape { shape } => {
                let target = Shape(shape.clone());
                if target.numel() != input.numel() {
                    return Err(format!(
                        "cannot reshape {} elements into {target}",
                        input.numel()
                    ));
                }
                Ok(target)
            }
        }
    }

    /// Checks hyper-parameters that do not depend on the input shape.
    pub fn check_params(&self) -> Result<(), String> {
        let positive = |what: &str, v: &[usize]| {
            if v.contains(&0) {
                Err(format!("{what} must be positive, got {v:?}"))
            } else if v.iter().any(|&x| x > MAX_DIM) {
                Err(format!("{what} {v:?} exceeds the limit {MAX_DIM}"))
            } else {
                Ok(())
            }
        };
        let bounded = |what: &str, v: &[usize]| {
            if v.iter().any(|&x| x > MAX_DIM) {
                Err(format!("{what} {v:?} exceeds the limit {MAX_DIM}"))
            } else {
                Ok(())
            }
        };
        match self {
            LayerKind::Conv2d {
                out_channels,
                kernel,
                stride,
                padding,
                groups,
            } => {
                positive("out_channels", &[*out_channels])?;
                positive("kernel", kernel)?;
                positive("stride", stride)?;
                positive("groups", &[*groups])?;
                bounded("padding", padding)
            }
            LayerKind::ConvTranspose2d {
                out_channels,
                kernel,
                stride,
                padding,
                output_padding,
            } => {
                positive("out_channels", &[*out_channels])?;
                positive("kernel", kernel)?;
                positive("stride", stride)?;
                bounded("padding", padding)?;
                if output_padding[0] >= stride[0] || output_padding[1] >= stride[1] {
                    return Err(format!(
                        "output_padding {output_padding:?} must be smaller than stride {stride:?}"
                    ));
                }
                Ok(())
            }
            LayerKind::MaxPool2d {
                kernel,
                stride,
                padding,
            }
            | LayerKind::AvgPool2d {
                kernel,
                stride,
                padding,
                ..
            } => {
                positive("kernel", kernel)?;
                positive("stride", &stride.unwrap_or(*kernel))?;
                bounded("padding", padding)?;
                if padding[0] * 2 > kernel[0] || padding[1] * 2 > kernel[1] {
                    return Err(format!(
                        "pool padding {padding:?} must be at most half the window {kernel:?}"
                    ));
                }
                Ok(())
            }
            LayerKind::BatchNorm2d { eps } if !(eps.is_finite() && *eps > 0.0) => Err(format!(
                "batch_norm2d eps must be a positive finite number, got {eps}"
            )),
            LayerKind::Clip { min, max } if !(min.is_finite() && max.is_finite() && min <= max) => {
                Err(format!(
                    "clip bounds must be finite with min <= max, got [{min}, {max}]"
                ))
            }
            LayerKind::Linear { out_features } => positive("out_features", &[*out_features]),
            LayerKind::Dropout { prob } if !(0.0..1.0).contains(prob) => {
                Err(format!("dropout probability must be in [0, 1), got {prob}"))
            }
            LayerKind::Reshape { shape } if !Shape(shape.clone()).is_valid() => Err(format!(
                "reshape target {shape:?} must have 1 or 3 positive dims of at most {MAX_DIM}"
            )),
            _ => Ok(()),
        }
    }
}

/// Largest size of any dimension, kernel, stride or padding veil accepts (guards the
/// arithmetic of shape inference against overflow on hostile spec files).
pub const MAX_DIM: usize = 1 << 20;

/// `(i + 2p - k) / s + 1`, or an error when the window does not fit.
fn conv_out(i: usize, k: usize, s: usize, p: usize) -> Result<usize, String> {
    let padded = i + 2 * p; // all operands <= MAX_DIM, checked by check_params / validate
    if padded < k {
        return Err(format!(
            "kernel {k} is larger than the padded input {padded}"
        ));
    }
    Ok((padded - k) / s + 1)
}
