//! The work of one request: a model's compute stages (conv and linear layers), their segments,
//! costs (DistPrivacy eqs. 2-4) and transfer sizes (the reduce-scatter of SYSTEM.md
//! section 4), and the privacy cap of each stage for a tolerated SSIM.
//!
//! Key type: [`ModelPlan`], built once per model and `tau` and shared by every request.
//!
//! Transfer rule between stage `s - 1` and stage `s`, for one segment of `s` placed on `j`:
//! if all segments of `s - 1` ran on one device, that device formed the whole output, applied
//! the channel-wise layers (ReLU, pooling) and sends `j` the segment's finished input
//! ([`Stage::input_bytes_whole`] bytes); otherwise every device holding segments of `s - 1`
//! sends `j` its partial sums for the segment ([`Stage::input_bytes_partial`] bytes), and `j`
//! adds them, adds the bias and applies the channel-wise layers itself.

use serde::Serialize;
use veil_spec::cost::BYTES_PER_SCALAR;
use veil_spec::{LayerKind, ModelSpec, Shape};

use crate::PlanError;
use crate::privacy::{Profile, StageCap, Thresholds, stage_cap};

/// A conv or linear layer of a model, split into segments.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stage {
    /// Layer name.
    pub name: String,
    /// Spec index of the layer.
    pub index: usize,
    /// Whether it is a linear layer (one segment, run whole on one device).
    pub linear: bool,
    /// Segments: input maps of a conv layer, 1 for a linear layer.
    pub segments: usize,
    /// Multiplications of one segment (eq. 2; eq. 3 for a linear layer).
    pub segment_macs: u64,
    /// Weight bytes of one segment (eq. 4, 4-byte words; a linear layer adds its bias).
    pub segment_weight_bytes: u64,
    /// Bytes of one segment's finished input, sent by a single device that ran the whole
    /// previous stage.
    pub input_bytes_whole: u64,
    /// Bytes of partial sums for one segment's input, sent by each of several devices that
    /// share the previous stage.
    pub input_bytes_partial: u64,
    /// Whether the source must run it: the first and last stages, and the first linear stage
    /// when it comes before `SP(tau)` (constraints 8g and 8h).
    pub source_only: bool,
    /// Most segments one helper may hold (constraint 8f).
    pub cap: StageCap,
}

/// The stages of a model for one tolerated SSIM.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelPlan {
    /// Model name.
    pub model: String,
    /// Tolerated SSIM.
    pub tau: f64,
    /// Stages in order.
    pub stages: Vec<Stage>,
    /// `SP(tau)` layer name, if any.
    pub sp: Option<String>,
    /// Where the privacy numbers come from.
    pub profile_source: String,
}

impl ModelPlan {
    /// Splits `spec` into stages with caps from `profile` at `tau`.
    pub fn new(spec: &ModelSpec, profile: &Profile, tau: f64) -> Result<Self, PlanError> {
        let shapes = spec.validate()?;
        let thresholds = profile.thresholds_at(tau)?;
        let compute = compute_layers(spec)?;
        let mut stages = Vec::with_capacity(compute.len());
        let mut first_linear_seen = false;
        for s in 0..compute.len() {
            let stage = Splitter {
                spec,
                shapes: &shapes,
                compute: &compute,
                thresholds: &thresholds,
            }
            .stage(s, first_linear_seen)?;
            first_linear_seen |= stage.linear;
            stages.push(stage);
        }
        Ok(ModelPlan {
            model: spec.name.clone(),
            tau,
            stages,
            sp: thresholds.sp,
            profile_source: profile
                .source
                .clone()
                .unwrap_or_else(|| format!("measured by veil on {}", profile.dataset)),
        })
    }

    /// Segments over all stages.
    pub fn total_segments(&self) -> usize {
        self.stages.iter().map(|s| s.segments).sum()
    }
}

/// Spec indices of `spec`'s conv and linear layers, in order. Errors when there are fewer
/// than two, or when the model has a transposed convolution (which the planner does not
/// split).
fn compute_layers(spec: &ModelSpec) -> Result<Vec<usize>, PlanError> {
    let compute: Vec<usize> = spec
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| matches!(l.kind, LayerKind::Conv2d { .. } | LayerKind::Linear { .. }))
        .map(|(i, _)| i)
        .collect();
    if compute.len() < 2 {
        return Err(PlanError::config(
            format!("model {}", spec.name),
            "needs at least two conv or linear layers to distribute",
        ));
    }
    if let Some((i, l)) = spec
        .layers
        .iter()
        .enumerate()
        .find(|(_, l)| matches!(l.kind, LayerKind::ConvTranspose2d { .. }))
    {
        return Err(PlanError::config(
            format!("model {}", spec.name),
            format!(
                "layer {i} `{}` is a conv_transpose2d, which the planner does not split",
                l.name
            ),
        ));
    }
    Ok(compute)
}

/// What one stage is built from: the validated spec, its shapes (`shapes[i]` is layer `i`'s
/// input, `shapes[i + 1]` its output), the compute layers ([`compute_layers`]) and the
/// privacy thresholds at `tau`.
struct Splitter<'a> {
    spec: &'a ModelSpec,
    shapes: &'a [Shape],
    compute: &'a [usize],
    thresholds: &'a Thresholds,
}

/// A compute layer's segment costs: `(linear, segments, macs per segment, weight bytes per
/// segment)`.
type SegmentCosts = (bool, usize, u64, u64);

impl Splitter<'_> {
    /// Stage `s` (of `compute.len()`), given whether an earlier stage is linear.
    fn stage(&self, s: usize, first_linear_seen: bool) -> Result<Stage, PlanError> {
        let index = self.compute[s];
        let layer = &self.spec.layers[index];
        let (input, output) = (&self.shapes[index], &self.shapes[index + 1]);
        let in_numel = input.numel() as u64;
        let (linear, segments, macs, weights) = segment_costs(&layer.kind, input, output);
        let per_segment_input = in_numel / segments as u64 * BYTES_PER_SCALAR;
        let partial = self.partial_bytes(s, segments, per_segment_input);
        // Layers whose outputs a helper of this stage sees: after the source's first stage
        // only the finished input; after a shared stage, the raw conv output onwards.
        let exposed = match s {
            0 => index..index,
            1 => index - 1..index,
            _ => self.compute[s - 1]..index,
        };
        let cap = if s == 0 || (linear && first_linear_seen) {
            StageCap::Free
        } else {
            stage_cap(self.spec, self.thresholds, exposed)?
        };
        let first_linear_before_sp = linear && !first_linear_seen && cap != StageCap::Free;
        Ok(Stage {
            name: layer.name.clone(),
            index,
            linear,
            segments,
            segment_macs: macs,
            segment_weight_bytes: weights,
            input_bytes_whole: per_segment_input,
            input_bytes_partial: partial,
            source_only: s == 0 || s + 1 == self.compute.len() || first_linear_before_sp,
            cap,
        })
    }

    /// Bytes of partial sums per segment of stage `s`: the previous conv stage's raw output
    /// split over `segments`; the finished input (`per_segment_input`) when the previous
    /// stage is linear or there is none.
    fn partial_bytes(&self, s: usize, segments: usize, per_segment_input: u64) -> u64 {
        match s
            .checked_sub(1)
            .map(|p| &self.spec.layers[self.compute[p]].kind)
        {
            Some(LayerKind::Conv2d { .. }) => {
                self.shapes[self.compute[s - 1] + 1].numel() as u64 / segments as u64
                    * BYTES_PER_SCALAR
            }
            _ => per_segment_input,
        }
    }
}

/// Segment costs of a conv layer (one segment per input map, eq. 2 and 4) or a linear layer
/// (one segment, eq. 3, weights plus bias). Only called on the layers [`compute_layers`]
/// keeps.
fn segment_costs(kind: &LayerKind, input: &Shape, output: &Shape) -> SegmentCosts {
    let in_numel = input.numel() as u64;
    match kind {
        LayerKind::Conv2d {
            out_channels,
            kernel,
            ..
        } => {
            let (in_c, _, _) = input.as_chw().unwrap_or((1, 0, 0));
            let (_, oh, ow) = output.as_chw().unwrap_or((0, 0, 0));
            let k = (kernel[0] * kernel[1]) as u64;
            let p = *out_channels as u64;
            (
                false,
                in_c,
                k * p * (oh * ow) as u64,
                k * p * BYTES_PER_SCALAR,
            )
        }
        LayerKind::Linear { out_features } => {
            let n = *out_features as u64;
            (true, 1, in_numel * n, (in_numel * n + n) * BYTES_PER_SCALAR)
        }
        _ => unreachable!("filtered to conv and linear layers"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::builtin;

    #[test]
    fn lenet5_stages_follow_the_cost_model() {
        let spec = veil_spec::zoo::lenet5();
        let plan = ModelPlan::new(&spec, &builtin("lenet5").expect("profile"), 0.8).expect("plan");
        let names: Vec<&str> = plan.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["conv1", "conv2", "fc1", "fc2", "fc3"]);
        let conv2 = &plan.stages[1];
        // 16 filters 5x5 on a 10x10 output per input map (eq. 2); 16*25 weights of 4 bytes.
        assert_eq!((conv2.segments, conv2.segment_macs), (6, 16 * 25 * 100));
        assert_eq!(conv2.segment_weight_bytes, 16 * 25 * 4);
        // pool1 maps are 14x14; conv1's partial sums are 28x28 per map.
        assert_eq!(conv2.input_bytes_whole, 14 * 14 * 4);
        assert_eq!(conv2.input_bytes_partial, 28 * 28 * 4);
        let fc1 = &plan.stages[2];
        assert_eq!((fc1.segments, fc1.segment_macs), (1, 400 * 120));
        assert_eq!(fc1.input_bytes_whole, 400 * 4);
        assert_eq!(fc1.input_bytes_partial, 16 * 10 * 10 * 4);
        assert!(plan.stages[0].source_only && plan.stages[4].source_only);
        assert!(!plan.stages[1].source_only && !plan.stages[3].source_only);
        assert_eq!(plan.total_segments(), 1 + 6 + 3);
    }
}
