//! From a placement to per-device work (SYSTEM.md section 4).
//!
//! A model's compute layers (conv and linear) are its *stages*; the channel-wise layers after
//! a stage (ReLU, pooling, dropout, flatten) belong to it as its *post ops*. A conv stage has
//! one segment per input map; a linear stage one segment. `owners[s][p]` is the device of
//! segment `p` of stage `s` (the planner's `Placement::devices`).
//!
//! Data flow of stage `s`: each device holding segments of `s` convolves its input maps with
//! the matching weight slice, giving partial sums for **all** output maps. If one device holds
//! every segment of `s` (*whole*), it finishes the output itself (bias and post ops) and sends
//! each finished map to the owner of the next stage's segment with that index (all maps to
//! the one owner of a linear next stage). Otherwise (*shared*) each device sends its partial
//! sums of map `q` to that owner, the *reducer* of `q`, which adds the contributions of every
//! device, the bias, and applies the post ops. A linear stage always runs whole. This is the
//! transfer rule of `veil_plan::stages`, so the runtime moves the bytes the cost model counts.
//!
//! Key items: [`Deployment`], [`Stage`], [`DeviceWork`], [`Deployment::work_of`].

use serde::{Deserialize, Serialize};
use veil_spec::ModelSpec;
use veil_spec::kernels::Linear;
use veil_spec::lower::{LoweredOp, lower};

use crate::NetError;

/// A channel-wise op after a stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PostOp {
    /// `max(0, x)`.
    Relu,
    /// Max pooling of each `[h, w]` map.
    MaxPool {
        /// Map size before.
        size: [usize; 2],
        /// Window.
        kernel: [usize; 2],
        /// Stride.
        stride: [usize; 2],
    },
    /// Average pooling of each `[h, w]` map.
    AvgPool {
        /// Map size before.
        size: [usize; 2],
        /// Window.
        kernel: [usize; 2],
        /// Stride.
        stride: [usize; 2],
    },
}

/// One stage of a deployed model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// Layer name.
    pub layer: String,
    /// Its compute (a conv over all input maps, or a dense layer).
    pub kernel: Linear,
    /// Channel-wise ops until the next stage.
    pub post: Vec<PostOp>,
    /// Output channels (maps of a conv, 1 for a dense layer's vector).
    pub channels: usize,
    /// Elements of one finished output channel (after post ops).
    pub finished_len: usize,
    /// Device of each segment.
    pub owners: Vec<usize>,
}

impl Stage {
    /// Segments (input maps of a conv, 1 for a dense layer).
    pub fn segments(&self) -> usize {
        match self.kernel {
            Linear::Conv { input, .. } => input[0],
            Linear::Dense { .. } => 1,
        }
    }

    /// Distinct devices of this stage, ascending.
    pub fn devices(&self) -> Vec<usize> {
        let mut d = self.owners.clone();
        d.sort_unstable();
        d.dedup();
        d
    }

    /// Whether one device runs the whole stage.
    pub fn whole(&self) -> bool {
        self.devices().len() == 1
    }

    /// Elements of one output channel before post ops.
    pub fn raw_len(&self) -> usize {
        match self.kernel {
            Linear::Conv { output, .. } => output[1] * output[2],
            Linear::Dense { output, .. } => output,
        }
    }
}

/// A model placed on devices.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// Model name.
    pub model: String,
    /// The source device (camera): runs the first and last stage, receives the result.
    pub source: usize,
    /// Stages in order.
    pub stages: Vec<Stage>,
    /// Input elements.
    pub input_len: usize,
}

impl Deployment {
    /// Checks the invariants [`Deployment::new`] establishes, for a deployment that arrived
    /// from elsewhere (a node decoding its assignment): at least one stage; each stage's
    /// geometry positive and within `veil_spec::MAX_ACTIVATION` / `MAX_PARAMS`, one owner per
    /// segment, a conv's output maps equal to its channels (1 for a dense layer) and its
    /// finished channel no longer than its raw output; the first stage reads `input_len`
    /// values and every later stage reads what the one before finishes. Nothing else indexes
    /// a deployment safely.
    pub fn validate(&self) -> Result<(), String> {
        let Some(first) = self.stages.first() else {
            return Err("a deployment without stages".into());
        };
        if input_len(first) != self.input_len || self.input_len == 0 {
            return Err(format!(
                "input of {} values, the first stage reads {}",
                self.input_len,
                input_len(first)
            ));
        }
        for (i, s) in self.stages.iter().enumerate() {
            check_stage(s).map_err(|m| format!("stage {i} ({}): {m}", s.layer))?;
            if let Some(next) = self.stages.get(i + 1) {
                let finished = s.channels.saturating_mul(s.finished_len);
                if input_len(next) != finished {
                    return Err(format!(
                        "stage {} reads {} values, stage {i} finishes {finished}",
                        i + 1,
                        input_len(next)
                    ));
                }
            }
        }
        Ok(())
    }

    /// Stage boundaries where data crosses devices (a message hop on the request's critical
    /// path): every boundary except a whole stage followed by a whole stage on the same device.
    pub fn hops(&self) -> usize {
        self.stages
            .windows(2)
            .filter(|w| !(w[0].whole() && w[1].whole() && w[0].owners[0] == w[1].owners[0]))
            .count()
    }
}

/// Values a stage reads.
fn input_len(s: &Stage) -> usize {
    match s.kernel {
        Linear::Conv { input, .. } => input.iter().fold(1usize, |a, &d| a.saturating_mul(d)),
        Linear::Dense { input, .. } => input,
    }
}

/// One stage's own invariants (see [`Deployment::validate`]).
fn check_stage(s: &Stage) -> Result<(), String> {
    let limit = veil_spec::MAX_ACTIVATION;
    let (raw, params) = match s.kernel {
        Linear::Conv {
            input,
            output,
            kernel,
            groups,
            ..
        } => {
            if input.contains(&0) || output.contains(&0) || kernel.contains(&0) {
                return Err("an empty conv".into());
            }
            if groups != 1 {
                return Err(format!(
                    "a conv of {groups} groups (the runtime splits full convs only)"
                ));
            }
            if output[0] != s.channels {
                return Err(format!(
                    "{} output maps, {} channels",
                    output[0], s.channels
                ));
            }
            let weights = (output[0] as u64) * (input[0] as u64) * (kernel[0] * kernel[1]) as u64;
            (output[1].saturating_mul(output[2]), weights)
        }
        Linear::Dense { input, output } => {
            if input == 0 || output == 0 || s.channels != 1 {
                return Err("a dense layer is one channel of positive sizes".into());
            }
            (output, (input as u64).saturating_mul(output as u64))
        }
    };
    if input_len(s) > limit
        || raw.saturating_mul(s.channels) > limit
        || params > veil_spec::MAX_PARAMS
    {
        return Err("larger than the activation or parameter budget".into());
    }
    if s.owners.len() != s.segments() {
        return Err(format!(
            "{} owners for {} segments",
            s.owners.len(),
            s.segments()
        ));
    }
    if s.finished_len == 0 || s.finished_len > raw {
        return Err(format!(
            "finished channel of {} values, raw {raw}",
            s.finished_len
        ));
    }
    Ok(())
}

/// What one device holds for one stage: its segments and the weight slice for them, and the
/// biases of the output channels it finishes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageWork {
    /// Stage index.
    pub stage: usize,
    /// Its segments (input channels), ascending.
    pub segments: Vec<usize>,
    /// Weight slice `[out, segments, kh, kw]` (conv) or the whole `[out, in]` (dense).
    pub weight: Vec<f32>,
    /// Bias of each output channel this device finishes (channel index, bias values: one
    /// per conv map, `out` values for a dense layer).
    pub bias: Vec<(usize, Vec<f32>)>,
}

/// Everything one device receives from the coordinator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceWork {
    /// Device id.
    pub device: usize,
    /// Per stage where the device computes or finishes something.
    pub stages: Vec<StageWork>,
}

impl DeviceWork {
    /// Weight and bias values held (what the device must store).
    pub fn parameters(&self) -> usize {
        self.stages
            .iter()
            .map(|s| s.weight.len() + s.bias.iter().map(|(_, b)| b.len()).sum::<usize>())
            .sum()
    }
}

impl Deployment {
    /// Stages of `spec` with segment owners `owners[s][p]` and source `source`.
    pub fn new(spec: &ModelSpec, owners: &[Vec<usize>], source: usize) -> Result<Self, NetError> {
        let mut stages = stages_of(spec)?;
        if stages.len() != owners.len() {
            return Err(NetError::Deploy(format!(
                "{} has {} compute layers, the placement {}",
                spec.name,
                stages.len(),
                owners.len()
            )));
        }
        for (s, o) in stages.iter_mut().zip(owners) {
            if o.len() != s.segments() {
                return Err(NetError::Deploy(format!(
                    "{}: {} segments, the placement assigns {}",
                    s.layer,
                    s.segments(),
                    o.len()
                )));
            }
            s.owners = o.clone();
        }
        let (first, last) = (&stages[0], &stages[stages.len() - 1]);
        if first.devices() != [source] || last.devices() != [source] {
            return Err(NetError::Deploy(format!(
                "the source device {source} must run the first and the last stage"
            )));
        }
        Ok(Deployment {
            model: spec.name.clone(),
            source,
            stages,
            input_len: spec.input_shape.numel(),
        })
    }

    /// The device that finishes output channel `q` of stage `s`: the owner of segment `q` of
    /// the next stage (conv), its one owner (dense), or the source after the last stage. In a
    /// whole stage, its one device.
    pub fn finisher(&self, s: usize, q: usize) -> usize {
        let stage = &self.stages[s];
        if stage.whole() {
            return stage.owners[0];
        }
        match self.stages.get(s + 1) {
            Some(next) if matches!(next.kernel, Linear::Conv { .. }) => next.owners[q],
            Some(next) => next.owners[0],
            None => self.source,
        }
    }

    /// Where finished channel `q` of stage `s` goes: the device that needs it as input.
    pub fn consumer(&self, s: usize, q: usize) -> usize {
        match self.stages.get(s + 1) {
            Some(next) if matches!(next.kernel, Linear::Conv { .. }) => next.owners[q],
            Some(next) => next.owners[0],
            None => self.source,
        }
    }

    /// The slices device `device` needs, cut from the full parameters `params` (per stage:
    /// weight in the spec's layout, bias).
    pub fn work_of(&self, device: usize, params: &[(Vec<f32>, Vec<f32>)]) -> DeviceWork {
        let mut stages = Vec::new();
        for (s, stage) in self.stages.iter().enumerate() {
            let segments: Vec<usize> = (0..stage.segments())
                .filter(|&p| stage.owners[p] == device)
                .collect();
            let (w, b) = &params[s];
            let weight = match stage.kernel {
                Linear::Conv {
                    input,
                    output,
                    kernel,
                    ..
                } if !segments.is_empty() => {
                    let k = kernel[0] * kernel[1];
                    let mut slice = Vec::with_capacity(output[0] * segments.len() * k);
                    for o in 0..output[0] {
                        for &p in &segments {
                            let at = (o * input[0] + p) * k;
                            slice.extend_from_slice(&w[at..at + k]);
                        }
                    }
                    slice
                }
                Linear::Dense { .. } if !segments.is_empty() => w.clone(),
                _ => Vec::new(),
            };
            let bias: Vec<(usize, Vec<f32>)> = match stage.kernel {
                Linear::Conv { .. } => (0..stage.channels)
                    .filter(|&q| self.finisher(s, q) == device)
                    .map(|q| (q, vec![b[q]]))
                    .collect(),
                Linear::Dense { .. } if !segments.is_empty() => vec![(0, b.clone())],
                Linear::Dense { .. } => Vec::new(),
            };
            if !segments.is_empty() || !bias.is_empty() {
                stages.push(StageWork {
                    stage: s,
                    segments,
                    weight,
                    bias,
                });
            }
        }
        DeviceWork { device, stages }
    }

    /// The kernel of stage `s` restricted to `n` input channels (a conv) or whole (dense).
    pub fn linear_for(&self, s: usize, n: usize) -> Linear {
        match self.stages[s].kernel {
            // Full convolutions only: the planner never places a grouped one.
            Linear::Conv {
                input,
                output,
                kernel,
                stride,
                padding,
                ..
            } => Linear::Conv {
                input: [n, input[1], input[2]],
                output,
                kernel,
                stride,
                padding,
                groups: 1,
            },
            ref dense @ Linear::Dense { .. } => dense.clone(),
        }
    }
}

/// `spec`'s stages without owners: one per compute layer of the lowered model, each with the
/// channel-wise ops that follow it as post ops. Errors on what the runtime cannot deploy: a
/// channel-wise op before the first compute layer, a conv after a dense layer, a reshape.
fn stages_of(spec: &ModelSpec) -> Result<Vec<Stage>, NetError> {
    let mut stages: Vec<Stage> = Vec::new();
    for op in lower(spec)? {
        let bad =
            |layer: &str, m: &str| NetError::Deploy(format!("{} layer {layer}: {m}", spec.name));
        match op {
            LoweredOp::Linear { layer, linear } => {
                let (channels, finished_len) = match linear {
                    Linear::Conv { output, .. } => {
                        if stages
                            .last()
                            .is_some_and(|s| matches!(s.kernel, Linear::Dense { .. }))
                        {
                            return Err(bad(&layer, "a conv after a dense layer is not supported"));
                        }
                        (output[0], output[1] * output[2])
                    }
                    Linear::Dense { output, .. } => (1, output),
                };
                stages.push(Stage {
                    layer,
                    kernel: linear,
                    post: Vec::new(),
                    channels,
                    finished_len,
                    owners: Vec::new(),
                });
            }
            LoweredOp::Relu { layer, .. } => stages
                .last_mut()
                .ok_or_else(|| bad(&layer, "a ReLU before the first compute layer"))?
                .post
                .push(PostOp::Relu),
            LoweredOp::Pool {
                layer,
                max,
                input,
                kernel,
                stride,
                output,
            } => {
                let s = stages
                    .last_mut()
                    .ok_or_else(|| bad(&layer, "pooling before the first compute layer"))?;
                let size = [input[1], input[2]];
                s.post.push(if max {
                    PostOp::MaxPool {
                        size,
                        kernel,
                        stride,
                    }
                } else {
                    PostOp::AvgPool {
                        size,
                        kernel,
                        stride,
                    }
                });
                s.finished_len = output[0] * output[1];
            }
            LoweredOp::Reshape { layer } => {
                return Err(bad(&layer, "reshape layers are not deployable"));
            }
        }
    }
    Ok(stages)
}

/// Applies `post` to one channel's values.
pub fn apply_post(post: &[PostOp], mut x: Vec<f32>) -> Vec<f32> {
    for op in post {
        x = match op {
            PostOp::Relu => x.into_iter().map(|v| v.max(0.0)).collect(),
            PostOp::MaxPool {
                size,
                kernel,
                stride,
            } => veil_spec::kernels::pool_windows([1, size[0], size[1]], *kernel, *stride)
                .iter()
                .map(|w| w.iter().map(|&i| x[i]).fold(f32::NEG_INFINITY, f32::max))
                .collect(),
            PostOp::AvgPool {
                size,
                kernel,
                stride,
            } => veil_spec::kernels::pool_windows([1, size[0], size[1]], *kernel, *stride)
                .iter()
                .map(|w| w.iter().map(|&i| x[i]).sum::<f32>() / w.len() as f32)
                .collect(),
        };
    }
    x
}
