//! The secure engine's view of a model: the public [`Architecture`] (what both servers know:
//! layer kinds and shapes) and the secret [`LayerWeights`] (known to the healthcare center
//! only), compiled from a veil weight file (`veil_spec::weights`) without burn.
//!
//! Compilation drops shape-only layers (flatten, reshape) and inference no-ops (dropout), and
//! moves a max pool in front of the ReLU before it: `maxpool(relu(x)) = relu(maxpool(x))`
//! exactly, since ReLU is monotone, and the pooled tensor is smaller, so fewer secure
//! comparisons run.
//!
//! Key items: [`Architecture`], [`Op`], [`Linear`], [`LayerWeights`], [`compile`],
//! [`read_weight_file`] (a thin mapping of `veil_spec::weights::read_file`'s errors),
//! [`Linear::apply`].

use std::path::Path;

use veil_spec::ModelSpec;
use veil_spec::lower::{LoweredOp, lower};

use crate::MpcError;
use crate::dealer::COMPARE_BITS;
use crate::ring::FRAC_BITS;

pub use veil_spec::kernels::Linear;

/// One step of secure evaluation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `y = W x + b`, then truncation.
    Linear {
        /// Layer name (its weights are `<name>.weight` and `<name>.bias`).
        layer: String,
        /// Shapes.
        linear: Linear,
    },
    /// Element-wise ReLU on `len` elements.
    Relu {
        /// Layer name.
        layer: String,
        /// Elements per sample.
        len: usize,
    },
    /// Max pooling of a `[c, h, w]` input.
    MaxPool {
        /// Layer name.
        layer: String,
        /// Input `[c, h, w]`.
        input: [usize; 3],
        /// Window `[kh, kw]`.
        kernel: [usize; 2],
        /// Stride `[sh, sw]`.
        stride: [usize; 2],
        /// Output `[h, w]` per channel.
        output: [usize; 2],
    },
    /// Average pooling: a window sum (local), times the public `1 / (kh kw)`, truncated.
    AvgPool {
        /// Layer name.
        layer: String,
        /// Input `[c, h, w]`.
        input: [usize; 3],
        /// Window `[kh, kw]`.
        kernel: [usize; 2],
        /// Stride `[sh, sw]`.
        stride: [usize; 2],
        /// Output `[h, w]` per channel.
        output: [usize; 2],
    },
}

impl Op {
    /// The layer the op comes from.
    pub fn layer(&self) -> &str {
        match self {
            Op::Linear { layer, .. }
            | Op::Relu { layer, .. }
            | Op::MaxPool { layer, .. }
            | Op::AvgPool { layer, .. } => layer,
        }
    }

    /// For each output element of a pooling op, the input indices of its window
    /// ([`veil_spec::kernels::pool_windows`]).
    pub fn windows(input: [usize; 3], kernel: [usize; 2], stride: [usize; 2]) -> Vec<Vec<usize>> {
        veil_spec::kernels::pool_windows(input, kernel, stride)
    }
}

/// What both servers know about a model: its name, input and output sizes and its ops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Architecture {
    /// Model name.
    pub name: String,
    /// Input elements per sample.
    pub input_len: usize,
    /// Output elements (logits) per sample.
    pub output_len: usize,
    /// Ops in evaluation order.
    pub ops: Vec<Op>,
}

/// The fewest online bytes per sample this protocol family sends between the two servers:
/// each comparison (a ReLU, or one pair of a max-pool level) opens one masked value of its
/// comparison width plus one bit ([`comparison_widths`]; `ceil((width + 1) / 8)` bytes) per
/// server, and each linear layer whose input the sensor did not mask opens one masked ring
/// element (8 bytes) per input element per server. Frame headers are not counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OnlineFloor {
    /// Comparisons per sample.
    pub comparisons: usize,
    /// Linear-layer input elements opened per sample (every linear layer but a first one).
    pub linear_openings: usize,
    /// `2 x ceil((width + 1) / 8)` bytes per comparison (both servers).
    pub comparison_bytes: usize,
    /// `2 x 8` bytes per linear opening (both servers).
    pub linear_bytes: usize,
}

impl OnlineFloor {
    /// Both terms, bytes per sample.
    pub fn bytes(&self) -> usize {
        self.comparison_bytes + self.linear_bytes
    }
}

impl Architecture {
    /// This architecture's [`OnlineFloor`] with the comparison widths `widths` (one per
    /// comparison step, as [`comparison_widths`] returns them; a missing one counts as
    /// [`COMPARE_BITS`]).
    pub fn online_floor(&self, widths: &[u32]) -> OnlineFloor {
        let mut widths = widths.iter();
        let mut open_bytes =
            || (widths.next().copied().unwrap_or(COMPARE_BITS) + 1).div_ceil(8) as usize;
        let (mut comparisons, mut linear_openings, mut comparison_bytes) = (0, 0, 0);
        for (i, op) in self.ops.iter().enumerate() {
            match op {
                Op::Linear { linear, .. } if i > 0 => linear_openings += linear.input_len(),
                Op::Relu { len, .. } => {
                    comparisons += len;
                    comparison_bytes += 2 * open_bytes() * len;
                }
                Op::MaxPool {
                    input,
                    kernel,
                    output,
                    ..
                } => {
                    let windows = input[0] * output[0] * output[1];
                    for pairs in crate::dealer::pool_levels(kernel[0] * kernel[1]) {
                        comparisons += windows * pairs;
                        comparison_bytes += 2 * open_bytes() * windows * pairs;
                    }
                }
                _ => {}
            }
        }
        OnlineFloor {
            comparisons,
            linear_openings,
            comparison_bytes,
            linear_bytes: 2 * 8 * linear_openings,
        }
    }
}

/// The largest input magnitude the protocol evaluates: the sensor clamps every input value to
/// `[-INPUT_BOUND, INPUT_BOUND]` before encoding it ([`crate::local::encode_input`]). veil's
/// image datasets hold values in `[0, 1]` and its tabular ones standardised features, so the
/// clamp changes no real sample's result; it makes the comparison widths below sound for
/// *every* input.
pub const INPUT_BOUND: f64 = 16.0;

/// Fewest comparison bits [`comparison_widths`] returns.
pub const MIN_COMPARE_BITS: u32 = 8;

/// The comparison width of every comparison step, in the order the dealer issues ReLU
/// material (each ReLU op, then each level of each max pool): the smallest `n` (at least
/// [`MIN_COMPARE_BITS`], at most [`COMPARE_BITS`]) with `|x| <= 2^(n - 1)` in ring units for
/// every value `x` the step compares, whatever the input within [`INPUT_BOUND`] — one bit of
/// margin over what [`crate::engine::relu`] needs (`|x| < 2^n`).
///
/// The bound is interval arithmetic on the plaintext weights, element by element: a linear
/// layer maps input bounds `b` to `|W| b + |bias|`, ReLU and max pooling keep the larger
/// bound, a max-pool level compares differences bounded by the sum of the two bounds, average
/// pooling averages. Fixed-point errors (far below a unit of the bound, see
/// [`eval_with_bound`]) are covered by the margin bit and 64 units of slack. The widths are
/// public: both servers see them as the bit count of their comparison keys; they reveal about
/// `log2` of an l1-norm bound per layer and nothing about the inputs.
pub fn comparison_widths(arch: &Architecture, weights: &[LayerWeights]) -> Vec<u32> {
    let mut b = vec![INPUT_BOUND; arch.input_len];
    let mut widths = Vec::new();
    let mut layers = weights.iter();
    for op in &arch.ops {
        match op {
            Op::Linear { linear, .. } => {
                let Some(lw) = layers.next() else {
                    // No weights (a test's bare architecture): nothing is known, full width.
                    b = vec![f64::INFINITY; linear.output_len()];
                    continue;
                };
                let abs_w: Vec<f64> = lw.weight.iter().map(|v| f64::from(v.abs())).collect();
                let per_bias = linear.output_len() / lw.bias.len().max(1);
                b = linear
                    .apply(&abs_w, &b)
                    .iter()
                    .enumerate()
                    .map(|(k, v)| {
                        let bound = v + lw
                            .bias
                            .get(k / per_bias.max(1))
                            .map_or(0.0, |c| f64::from(c.abs()));
                        // `0 x inf` or a non-finite weight: unknown, so unbounded (a NaN would
                        // vanish in the `max` below and understate the width).
                        if bound.is_nan() { f64::INFINITY } else { bound }
                    })
                    .collect();
            }
            Op::Relu { .. } => widths.push(width_for(b.iter().copied().fold(0.0, f64::max))),
            Op::MaxPool {
                input,
                kernel,
                stride,
                ..
            } => {
                let mut cands: Vec<Vec<f64>> = Op::windows(*input, *kernel, *stride)
                    .iter()
                    .map(|w| {
                        w.iter()
                            .map(|&i| b.get(i).copied().unwrap_or(f64::INFINITY))
                            .collect()
                    })
                    .collect();
                for pairs in crate::dealer::pool_levels(kernel[0] * kernel[1]) {
                    let mut widest = 0.0f64;
                    for c in &mut cands {
                        let mut next = Vec::with_capacity(pairs + 1);
                        for p in 0..pairs.min(c.len() / 2) {
                            widest = widest.max(c[2 * p] + c[2 * p + 1]);
                            next.push(c[2 * p].max(c[2 * p + 1]));
                        }
                        if c.len() % 2 == 1 {
                            next.push(c[c.len() - 1]);
                        }
                        *c = next;
                    }
                    widths.push(width_for(widest));
                }
                b = cands
                    .iter()
                    .map(|c| c.first().copied().unwrap_or(0.0))
                    .collect();
            }
            Op::AvgPool {
                input,
                kernel,
                stride,
                ..
            } => {
                b = Op::windows(*input, *kernel, *stride)
                    .iter()
                    .map(|w| {
                        let sum: f64 = w
                            .iter()
                            .map(|&i| b.get(i).copied().unwrap_or(f64::INFINITY))
                            .sum();
                        sum / w.len().max(1) as f64
                    })
                    .collect();
            }
        }
    }
    widths
}

/// The comparison width for values bounded by `bound` (a real number; see
/// [`comparison_widths`]).
fn width_for(bound: f64) -> u32 {
    let units = bound * f64::from(1u32 << FRAC_BITS) + 64.0;
    if !units.is_finite() || units >= 2f64.powi(COMPARE_BITS as i32) {
        return COMPARE_BITS;
    }
    (units.log2().ceil() as u32 + 1).clamp(MIN_COMPARE_BITS, COMPARE_BITS)
}

/// The secret parameters of one linear layer (known to the healthcare center only).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerWeights {
    /// Layer name.
    pub layer: String,
    /// Weight, in the layout of [`Linear::apply`].
    pub weight: Vec<f32>,
    /// Bias, one per output channel (conv) or feature (dense).
    pub bias: Vec<f32>,
}

pub use veil_spec::weights::Tensors;

/// Reads a veil weight file with the one reader of the format, `veil_spec::weights`.
pub fn read_weight_file(path: &Path) -> Result<(ModelSpec, Tensors), MpcError> {
    veil_spec::weights::read_file(path).map_err(|source| MpcError::Weights {
        path: path.display().to_string(),
        source: Box::new(source),
    })
}

/// Compiles `spec` with `tensors` into the public architecture and the secret weights.
/// Transposed convolutions are not supported (no zoo classifier has one).
pub fn compile(
    spec: &ModelSpec,
    tensors: &Tensors,
) -> Result<(Architecture, Vec<LayerWeights>), MpcError> {
    compile_inner(spec, Some(tensors))
}

/// The public architecture alone (what a server derives from the spec the dealer sends).
pub fn architecture(spec: &ModelSpec) -> Result<Architecture, MpcError> {
    Ok(compile_inner(spec, None)?.0)
}

fn compile_inner(
    spec: &ModelSpec,
    tensors: Option<&Tensors>,
) -> Result<(Architecture, Vec<LayerWeights>), MpcError> {
    let unsupported = |source| MpcError::Model {
        model: spec.name.clone(),
        source: Box::new(source),
    };
    let output_len = spec
        .validate()
        .map_err(unsupported)?
        .last()
        .map_or(0, |s| s.numel());
    let mut ops = Vec::new();
    let mut weights = Vec::new();
    let mut pending_relu: Option<(String, usize)> = None;
    // The parameters of the conv and linear layers in spec order: the same order as the
    // lowered linear ops (one reader of the tensors, `veil_spec::weights`).
    let mut params = match tensors {
        Some(t) => Some(
            veil_spec::weights::compute_layer_params(spec, t)
                .map_err(unsupported)?
                .into_iter(),
        ),
        None => None,
    };
    for op in lower(spec).map_err(unsupported)? {
        // A ReLU waits one op: if a max pool follows, the pool runs first.
        let max_pool_next = matches!(op, LoweredOp::Pool { max: true, .. });
        if !max_pool_next && let Some((layer, len)) = pending_relu.take() {
            ops.push(Op::Relu { layer, len });
        }
        match op {
            LoweredOp::Linear { layer, linear } => {
                if let Some(params) = params.as_mut() {
                    let (weight, bias) = params.next().ok_or_else(|| {
                        MpcError::Unsupported(format!("no parameters for {layer}"))
                    })?;
                    weights.push(LayerWeights {
                        layer: layer.clone(),
                        weight,
                        bias,
                    });
                }
                ops.push(Op::Linear { layer, linear });
            }
            LoweredOp::Relu { layer, len } => pending_relu = Some((layer, len)),
            LoweredOp::Pool {
                layer,
                max,
                input,
                kernel,
                stride,
                output,
            } => {
                ops.push(if max {
                    Op::MaxPool {
                        layer,
                        input,
                        kernel,
                        stride,
                        output,
                    }
                } else {
                    Op::AvgPool {
                        layer,
                        input,
                        kernel,
                        stride,
                        output,
                    }
                });
                if let Some((relu, _)) = pending_relu.take() {
                    ops.push(Op::Relu {
                        layer: relu,
                        len: input[0] * output[0] * output[1],
                    });
                }
            }
            LoweredOp::Reshape { .. } => {}
        }
    }
    if let Some((layer, _)) = pending_relu {
        ops.push(Op::Relu {
            layer,
            len: output_len,
        });
    }
    Ok((
        Architecture {
            name: spec.name.clone(),
            input_len: spec.input_shape.numel(),
            output_len,
            ops,
        },
        weights,
    ))
}

/// Plaintext reference in `f64` of what the secure engine computes (same op order), for tests
/// and error bounds.
pub fn eval_f64(arch: &Architecture, weights: &[LayerWeights], input: &[f32]) -> Vec<f64> {
    eval_with_bound(arch, weights, input).0
}

/// The `f64` reference logits and, per logit, a bound on how far the secure engine's logits
/// can be from them (the *documented error bound*).
///
/// The bound propagates, element by element, the errors of fixed point with
/// `u = 2^-FRAC_BITS` ([`crate::ring::ULP`]) for activations and `v = 2^-WEIGHT_FRAC_BITS`
/// ([`crate::ring::WEIGHT_ULP`]) for weights: inputs are rounded to within `u/2`, weights to
/// within `v/2`, biases to within `uv/2`; a linear layer with input errors `e` gives output
/// errors at most `(|W| + v/2) e + (v/2) |x| + uv/2 + 2u` (the last term: the floor of
/// truncation and the one-unit slack of share truncation); ReLU and max pooling are computed
/// exactly on the fixed-point values and are 1-Lipschitz, so they pass the errors on (max over
/// a window); average pooling adds its rounded `1/k` factor's error and a truncation. It holds
/// unless a share truncation fails, which happens with probability at most `2^-27` per
/// truncated element while products stay below `2^8` (see [`crate::ring`]).
pub fn eval_with_bound(
    arch: &Architecture,
    weights: &[LayerWeights],
    input: &[f32],
) -> (Vec<f64>, Vec<f64>) {
    let u = crate::ring::ULP;
    let weight_ulp = crate::ring::WEIGHT_ULP;
    let mut x: Vec<f64> = input.iter().map(|&v| f64::from(v)).collect();
    let mut err: Vec<f64> = vec![u / 2.0; x.len()];
    let mut next_weights = weights.iter();
    for op in &arch.ops {
        (x, err) = match op {
            Op::Linear { linear, .. } => {
                let Some(lw) = next_weights.next() else {
                    return (x, err);
                };
                let w: Vec<f64> = lw.weight.iter().map(|&v| f64::from(v)).collect();
                let w_abs: Vec<f64> = w.iter().map(|w| w.abs() + weight_ulp / 2.0).collect();
                let half_v = vec![weight_ulp / 2.0; w.len()];
                let x_abs: Vec<f64> = x.iter().map(|v| v.abs()).collect();
                let mut y = linear.apply(&w, &x);
                let e1 = linear.apply(&w_abs, &err);
                let e2 = linear.apply(&half_v, &x_abs);
                let per = y.len() / lw.bias.len().max(1);
                for (k, y_k) in y.iter_mut().enumerate() {
                    *y_k += f64::from(lw.bias[k / per.max(1)]);
                }
                let e = e1
                    .iter()
                    .zip(&e2)
                    .map(|(a, b)| a + b + u * weight_ulp / 2.0 + 2.0 * u)
                    .collect();
                (y, e)
            }
            Op::Relu { .. } => (x.iter().map(|v| v.max(0.0)).collect(), err),
            Op::MaxPool {
                input,
                kernel,
                stride,
                ..
            } => {
                let wins = Op::windows(*input, *kernel, *stride);
                (
                    wins.iter()
                        .map(|win| win.iter().map(|&i| x[i]).fold(f64::NEG_INFINITY, f64::max))
                        .collect(),
                    wins.iter()
                        .map(|win| win.iter().map(|&i| err[i]).fold(0.0, f64::max))
                        .collect(),
                )
            }
            Op::AvgPool {
                input,
                kernel,
                stride,
                ..
            } => {
                let wins = Op::windows(*input, *kernel, *stride);
                let k = (kernel[0] * kernel[1]) as f64;
                (
                    wins.iter()
                        .map(|win| win.iter().map(|&i| x[i]).sum::<f64>() / k)
                        .collect(),
                    wins.iter()
                        .map(|win| {
                            let sum_abs: f64 = win.iter().map(|&i| x[i].abs()).sum();
                            let sum_err: f64 = win.iter().map(|&i| err[i]).sum();
                            (1.0 / k + u / 2.0) * sum_err + sum_abs * u / 2.0 + 2.0 * u
                        })
                        .collect(),
                )
            }
        };
    }
    (x, err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use veil_spec::weights::layout;

    /// A hand-computed width: `|W| b + |bias|` over inputs bounded by 16 gives 48.25 and 16;
    /// `48.25 x 2^12 + 64 = 197,696 < 2^18`, plus the margin bit: 19. An unknown bound (a NaN
    /// weight, no weights) gives the full width.
    #[test]
    fn comparison_widths_follow_the_interval_bound() {
        let arch = Architecture {
            name: "tiny".into(),
            input_len: 2,
            output_len: 2,
            ops: vec![
                Op::Linear {
                    layer: "fc".into(),
                    linear: Linear::Dense {
                        input: 2,
                        output: 2,
                    },
                },
                Op::Relu {
                    layer: "relu".into(),
                    len: 2,
                },
            ],
        };
        let weights = |w0: f32| {
            vec![LayerWeights {
                layer: "fc".into(),
                weight: vec![w0, -2.0, 0.5, 0.5],
                bias: vec![0.25, 0.0],
            }]
        };
        assert_eq!(comparison_widths(&arch, &weights(1.0)), vec![19]);
        assert_eq!(
            comparison_widths(&arch, &weights(f32::NAN)),
            vec![COMPARE_BITS]
        );
        assert_eq!(comparison_widths(&arch, &[]), vec![COMPARE_BITS]);
        assert_eq!(width_for(0.0), MIN_COMPARE_BITS);
    }

    #[test]
    fn relu_then_pool_compiles_to_pool_then_relu() {
        let spec = veil_spec::zoo::model("minionn").expect("zoo");
        let mut tensors = Tensors::new();
        for e in layout(&spec).expect("layout") {
            let n = e.shape.iter().product();
            tensors.insert(e.name, (e.shape, vec![0.0; n]));
        }
        let (arch, w) = compile(&spec, &tensors).expect("compile");
        let kinds: Vec<String> = arch
            .ops
            .iter()
            .map(|o| match o {
                Op::Linear { layer, .. }
                | Op::Relu { layer, .. }
                | Op::MaxPool { layer, .. }
                | Op::AvgPool { layer, .. } => layer.clone(),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "conv1", "pool1", "relu1", "conv2", "pool2", "relu2", "fc1", "relu3", "fc2"
            ]
        );
        assert_eq!(w.len(), 4);
        assert_eq!((arch.input_len, arch.output_len), (784, 10));
        let Op::Relu { len, .. } = &arch.ops[2] else {
            panic!("relu")
        };
        assert_eq!(*len, 16 * 12 * 12);
    }
}
