//! [`Layer`] and [`LayerKind`]: one named operation of a model spec and its shape rule.

use serde::{Deserialize, Serialize};

use crate::Shape;

/// One named layer. The name is how reports and split points refer to it (`conv11`, `relu22`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    /// Unique name within the model.
    pub name: String,
    /// The operation and its hyper-parameters.
    #[serde(flatten)]
    pub kind: LayerKind,
}

fn one() -> [usize; 2] {
    [1, 1]
}

fn zero() -> [usize; 2] {
    [0, 0]
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
    /// Max pooling without padding.
    MaxPool2d {
        /// Window size.
        kernel: [usize; 2],
        /// Stride (defaults to the window size when omitted).
        #[serde(default)]
        stride: Option<[usize; 2]>,
    },
    /// Average pooling without padding.
    AvgPool2d {
        /// Window size.
        kernel: [usize; 2],
        /// Stride (defaults to the window size when omitted).
        #[serde(default)]
        stride: Option<[usize; 2]>,
    },
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
        }
    }

    /// Whether the layer owns trainable parameters (weight and bias).
    pub fn has_params(&self) -> bool {
        matches!(
            self,
            LayerKind::Conv2d { .. } | LayerKind::ConvTranspose2d { .. } | LayerKind::Linear { .. }
        )
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
            } => {
                let (_, h, w) = need_chw()?;
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
            LayerKind::MaxPool2d { kernel, stride } | LayerKind::AvgPool2d { kernel, stride } => {
                let (c, h, w) = need_chw()?;
                let stride = stride.unwrap_or(*kernel);
                let oh = conv_out(h, kernel[0], stride[0], 0)?;
                let ow = conv_out(w, kernel[1], stride[1], 0)?;
                Ok(Shape::chw(c, oh, ow))
            }
            LayerKind::Relu | LayerKind::Dropout { .. } => Ok(input.clone()),
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
            } => {
                positive("out_channels", &[*out_channels])?;
                positive("kernel", kernel)?;
                positive("stride", stride)?;
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
            LayerKind::MaxPool2d { kernel, stride } | LayerKind::AvgPool2d { kernel, stride } => {
                positive("kernel", kernel)?;
                positive("stride", &stride.unwrap_or(*kernel))
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
