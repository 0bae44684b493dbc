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
    /// A helper holding a segment of this stage may hold nothing of any other stage of the
    /// request ([`PrivacyRule::Sound`]: its joint view was never measured).
    pub exclusive: bool,
}

/// Which privacy constraint the planner enforces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum PrivacyRule {
    /// DistPrivacy's constraint (8f) as published: each conv stage on its own against the
    /// `Nf` of the layers it exposes; linear stages after the first unconstrained.
    Paper,
    /// What a helper really observes when partial sums travel masked (the runtime's default):
    /// a linear stage after the first is held by a helper only when the leakage of its input
    /// vector is measured and within tau (else the source runs it), and a helper holding a
    /// segment of a constrained stage holds nothing else of the request (views across stages
    /// are not measured, so they are not allowed).
    #[default]
    Sound,
    /// [`PrivacyRule::Sound`] with plain partial sums: the finisher of a map of a constrained
    /// conv stage receives every holder's contribution, which together show all its input
    /// maps; so the stage after a constrained conv stage runs on the source.
    SoundPlain,
}

impl PrivacyRule {
    /// The name on the command line (`--privacy-rule`).
    pub fn name(self) -> &'static str {
        match self {
            PrivacyRule::Paper => "paper",
            PrivacyRule::Sound => "sound",
            PrivacyRule::SoundPlain => "sound-plain",
        }
    }
}

/// The stages of a model for one tolerated SSIM.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelPlan {
    /// Model name.
    pub model: String,
    /// Tolerated SSIM.
    pub tau: f64,
    /// The privacy constraint enforced.
    pub rule: PrivacyRule,
    /// Stages in order.
    pub stages: Vec<Stage>,
    /// `SP(tau)` layer name, if any.
    pub sp: Option<String>,
    /// Where the privacy numbers come from.
    pub profile_source: String,
    /// Bytes per partial-sum value the costs count (4, plain `f32`, unless
    /// [`ModelPlan::with_partial_sum_bytes`] says otherwise).
    pub partial_sum_bytes: u64,
}

impl ModelPlan {
    /// Splits `spec` into stages with caps from `profile` at `tau` under the sound rule
    /// ([`PrivacyRule::Sound`]).
    pub fn new(spec: &ModelSpec, profile: &Profile, tau: f64) -> Result<Self, PlanError> {
        Self::with_rule(spec, profile, tau, PrivacyRule::Sound)
    }

    /// The same plan with partial sums of `bytes` bytes per value on the wire (a runtime that
    /// masks them sends 8-byte ring elements): rescales [`Stage::input_bytes_partial`] of
    /// every stage after a convolution, where partial sums travel, so the cost model counts
    /// what the runtime sends.
    pub fn with_partial_sum_bytes(mut self, bytes: u64) -> Self {
        let was = self.partial_sum_bytes.max(1);
        for s in 1..self.stages.len() {
            if !self.stages[s - 1].linear {
                let stage = &mut self.stages[s];
                stage.input_bytes_partial = stage.input_bytes_partial / was * bytes;
            }
        }
        self.partial_sum_bytes = bytes;
        self
    }

    /// The first stage no helper may hold any segment of (cap 0) that the source does not run
    /// either: while there is one, no fleet can place the model at this tau.
    pub fn blocked_stage(&self) -> Option<&Stage> {
        self.stages
            .iter()
            .skip(1)
            .find(|s| !s.source_only && s.cap == StageCap::AtMost(0))
    }

    /// Splits `spec` into stages with caps from `profile` at `tau` under `rule`.
    pub fn with_rule(
        spec: &ModelSpec,
        profile: &Profile,
        tau: f64,
        rule: PrivacyRule,
    ) -> Result<Self, PlanError> {
        if !(0.0..=1.0).contains(&tau) {
            return Err(PlanError::config(
                "tau",
                format!("tau must be an SSIM in [0, 1], got {tau}"),
            ));
        }
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
                rule,
            }
            .stage(s, first_linear_seen, stages.last())?;
            first_linear_seen |= stage.linear;
            stages.push(stage);
        }
        Ok(ModelPlan {
            model: spec.name.clone(),
            tau,
            rule,
            stages,
            sp: thresholds.sp,
            profile_source: profile
                .source
                .clone()
                .unwrap_or_else(|| format!("measured by veil on {}", profile.dataset)),
            partial_sum_bytes: BYTES_PER_SCALAR,
        })
    }

    /// Segments over all stages.
    pub fn total_segments(&self) -> usize {
        self.stages.iter().map(|s| s.segments).sum()
    }
}

/// Spec indices of `spec`'s conv and linear layers, in order. Errors when there are fewer
/// than two, when the spec is a graph, or when it has a layer the planner does not split
/// ([`plannable`]).
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
        .find(|(_, l)| !plannable(&l.kind))
    {
        return Err(PlanError::config(
            format!("model {}", spec.name),
            format!(
                "layer {i} `{}` is a {}, which the planner does not split (yet)",
                l.name,
                l.kind.op_name()
            ),
        ));
    }
    if let Err(e) = spec.require_chain("the planner") {
        return Err(PlanError::config(
            format!("model {}", spec.name),
            e.to_string(),
        ));
    }
    Ok(compute)
}

/// Whether the planner and the runtime handle this kind of layer: not transposed or grouped
/// convolutions, padded pools, global average pools, batch normalisation, sigmoid, clip,
/// add or concat (graph models run in the single-process interpreters).
fn plannable(kind: &LayerKind) -> bool {
    match kind {
        LayerKind::Conv2d { groups, .. } => *groups == 1,
        LayerKind::MaxPool2d { padding, .. } | LayerKind::AvgPool2d { padding, .. } => {
            *padding == [0, 0]
        }
        LayerKind::Linear { .. }
        | LayerKind::Relu
        | LayerKind::Flatten
        | LayerKind::Dropout { .. }
        | LayerKind::Reshape { .. }
        | LayerKind::Identity => true,
        LayerKind::ConvTranspose2d { .. }
        | LayerKind::GlobalAvgPool2d
        | LayerKind::BatchNorm2d { .. }
        | LayerKind::Add
        | LayerKind::Concat
        | LayerKind::Sigmoid
        | LayerKind::Clip { .. } => false,
    }
}

/// What one stage is built from: the validated spec, its shapes (`shapes[i]` is layer `i`'s
/// input, `shapes[i + 1]` its output), the compute layers ([`compute_layers`]) and the
/// privacy thresholds at `tau`.
struct Splitter<'a> {
    spec: &'a ModelSpec,
    shapes: &'a [Shape],
    compute: &'a [usize],
    thresholds: &'a Thresholds,
    rule: PrivacyRule,
}

/// A compute layer's segment costs: `(linear, segments, macs per segment, weight bytes per
/// segment)`.
type SegmentCosts = (bool, usize, u64, u64);

impl Splitter<'_> {
    /// Stage `s` (of `compute.len()`), given whether an earlier stage is linear and the
    /// previous stage.
    fn stage(
        &self,
        s: usize,
        first_linear_seen: bool,
        previous: Option<&Stage>,
    ) -> Result<Stage, PlanError> {
        let index = self.compute[s];
        let layer = &self.spec.layers[index];
        let (input, output) = (&self.shapes[index], &self.shapes[index + 1]);
        let in_numel = input.numel() as u64;
        let (linear, segments, macs, weights) = segment_costs(&layer.kind, input, output);
        let per_segment_input = in_numel / segments as u64 * BYTES_PER_SCALAR;
        let partial = self.partial_bytes(s, segments, per_segment_input);
        let (cap, forced_to_source) = self.cap(s, linear, first_linear_seen, previous)?;
        let first_linear_before_sp = linear && !first_linear_seen && cap != StageCap::Free;
        let source_only =
            s == 0 || s + 1 == self.compute.len() || first_linear_before_sp || forced_to_source;
        Ok(Stage {
            name: layer.name.clone(),
            index,
            linear,
            segments,
            segment_macs: macs,
            segment_weight_bytes: weights,
            input_bytes_whole: per_segment_input,
            input_bytes_partial: partial,
            source_only,
            cap,
            exclusive: self.rule != PrivacyRule::Paper
                && !source_only
                && matches!(cap, StageCap::AtMost(_)),
        })
    }

    /// The cap of stage `s`, and whether the rule sends it to the source.
    ///
    /// Exposed layers: after a stage run whole (the source's first stage, any linear stage)
    /// only its finished output ([`Splitter::finished_layer`]); after a conv stage that may be
    /// shared, the raw conv output onwards (the owner of a map forms it from partial sums).
    /// [`PrivacyRule::Paper`] keeps the published rule: linear stages after the first free.
    fn cap(
        &self,
        s: usize,
        linear: bool,
        first_linear_seen: bool,
        previous: Option<&Stage>,
    ) -> Result<(StageCap, bool), PlanError> {
        let index = self.compute[s];
        let Some(previous) = previous else {
            return Ok((StageCap::Free, false));
        };
        if self.rule == PrivacyRule::Paper {
            if linear && first_linear_seen {
                return Ok((StageCap::Free, false));
            }
            let exposed = match s {
                1 => index - 1..index,
                _ => self.compute[s - 1]..index,
            };
            return Ok((stage_cap(self.spec, self.thresholds, exposed)?, false));
        }
        let exposed = match s == 1 || previous.linear {
            true => {
                let finished = self.finished_layer(s);
                finished..finished + 1
            }
            false => self.compute[s - 1]..index,
        };
        let cap = match stage_cap(self.spec, self.thresholds, exposed) {
            Ok(cap) => cap,
            // A flat input whose leakage was never measured: only the source may see it.
            Err(_) if linear => StageCap::AtMost(0),
            Err(e) => return Err(e),
        };
        let plain_contributions = self.rule == PrivacyRule::SoundPlain
            && s >= 2
            && !previous.linear
            && !previous.source_only
            && matches!(previous.cap, StageCap::AtMost(_));
        // A flat input no helper may see goes to the source, like the first linear stage
        // before SP; a conv stage no helper may hold stays unplaceable, as in the paper.
        Ok((
            cap,
            (linear && cap == StageCap::AtMost(0)) || plain_contributions,
        ))
    }

    /// The layer whose output a stage run whole before stage `s` sends (the last layer before
    /// stage `s` that is not shape-only; the previous compute layer itself when nothing
    /// follows it).
    fn finished_layer(&self, s: usize) -> usize {
        let (from, to) = (self.compute[s - 1], self.compute[s]);
        (from + 1..to)
            .rev()
            .find(|&i| {
                !matches!(
                    self.spec.layers[i].kind,
                    LayerKind::Flatten | LayerKind::Reshape { .. }
                )
            })
            .unwrap_or(from)
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
    use crate::privacy::Profile;
    use crate::privacy::builtin;

    #[test]
    fn a_stage_no_helper_may_hold_blocks_every_fleet() {
        let spec = veil_spec::zoo::lenet5();
        let profile = builtin("lenet5").expect("profile");
        for tau in [0.4, 0.8, 0.9] {
            let plan = ModelPlan::new(&spec, &profile, tau).expect("plan");
            let blocked = plan.blocked_stage().map(|s| s.name.as_str());
            assert_eq!(blocked, Some("conv2"), "tau {tau}");
        }
        let plan = ModelPlan::new(&spec, &profile, 0.95).expect("plan");
        assert!(plan.blocked_stage().is_none());
    }

    #[test]
    fn lenet5_stages_follow_the_cost_model() {
        let spec = veil_spec::zoo::lenet5();
        let profile = builtin("lenet5").expect("profile");
        let plan = ModelPlan::with_rule(&spec, &profile, 0.8, PrivacyRule::Paper).expect("plan");
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
        // Masked partial sums travel as 8-byte ring elements: only partial-sum bytes after a
        // convolution change, and rescaling twice is rescaling once.
        let masked = plan
            .clone()
            .with_partial_sum_bytes(8)
            .with_partial_sum_bytes(8);
        assert_eq!(masked.stages[1].input_bytes_partial, 28 * 28 * 8);
        assert_eq!(masked.stages[2].input_bytes_partial, 16 * 10 * 10 * 8);
        assert_eq!(
            masked.stages[3].input_bytes_partial,
            plan.stages[3].input_bytes_partial
        );
        assert_eq!(masked.stages[1].input_bytes_whole, 14 * 14 * 4);
        let back = masked.with_partial_sum_bytes(4);
        assert_eq!(back.stages[1].input_bytes_partial, 28 * 28 * 4);
        assert!(plan.stages[0].source_only && plan.stages[4].source_only);
        assert!(!plan.stages[1].source_only && !plan.stages[3].source_only);
        assert_eq!(plan.total_segments(), 1 + 6 + 3);
        assert!(plan.stages.iter().all(|s| !s.exclusive));
    }

    /// A profile of `(layer, k, ssim)` cells over maps of `total` each.
    fn profile(cells: &[(&str, usize, usize, f64)]) -> Profile {
        let mut layers: Vec<String> = Vec::new();
        for (l, ..) in cells {
            if !layers.iter().any(|x| x == l) {
                layers.push(l.to_string());
            }
        }
        Profile {
            version: 1,
            model: "lenet5".into(),
            dataset: "mnist".into(),
            layers,
            entries: cells
                .iter()
                .map(
                    |&(layer, k, total_maps, ssim)| crate::privacy::ProfileCell {
                        layer: layer.into(),
                        k,
                        total_maps,
                        ssim_mean: ssim,
                        ssim_std: 0.0,
                        psnr_mean: 0.0,
                        mse_mean: 0.0,
                        confirmed: false,
                    },
                )
                .collect(),
            thresholds: vec![],
            source: None,
            partial: false,
        }
    }

    /// The sound rule: a flat stage's input is constrained like a map (fc2 sees relu3's 120
    /// values: on the source when they leak more than tau or were never measured, free at or
    /// after `SP`); constrained stages are exclusive; with plain partial sums the
    /// stage after a constrained conv stage runs on the source.
    #[test]
    fn the_sound_rule_constrains_flat_inputs_and_joint_views() {
        let spec = veil_spec::zoo::lenet5();
        let mut cells = vec![("pool1", 1, 6, 0.5), ("pool1", 6, 6, 0.9)];
        cells.extend([("conv2", 1, 16, 0.5), ("conv2", 16, 16, 0.9)]);
        let maps = profile(&cells);
        let plan = ModelPlan::new(&spec, &maps, 0.6).expect("plan");
        assert_eq!(plan.rule, PrivacyRule::Sound);
        let fc2 = &plan.stages[3];
        assert_eq!(fc2.cap, StageCap::AtMost(0));
        assert!(
            fc2.source_only,
            "relu3 never measured: only the source sees it"
        );
        assert!(plan.stages[1].exclusive && plan.stages[1].cap == StageCap::AtMost(1));
        cells.push(("relu3", 1, 1, 0.65));
        let leaky = ModelPlan::new(&spec, &profile(&cells), 0.6).expect("plan");
        assert!(leaky.stages[3].source_only, "relu3 leaks 0.65 > 0.6");
        let safe = ModelPlan::new(&spec, &profile(&cells), 0.7).expect("plan");
        // relu3 is within 0.7 with all its values: SP(0.7), after which stages are free.
        assert_eq!(safe.sp.as_deref(), Some("relu3"));
        assert!(!safe.stages[3].source_only && !safe.stages[3].exclusive);
        assert_eq!(safe.stages[3].cap, StageCap::Free);
        let paper = ModelPlan::with_rule(&spec, &maps, 0.6, PrivacyRule::Paper).expect("plan");
        assert!(!paper.stages[3].source_only && paper.stages[3].cap == StageCap::Free);
        // gtsrb_cnn: conv2..conv6 may be shared; plain partial sums send conv3..conv6 and fc1
        // to the source wherever the stage before is constrained.
        let gtsrb = veil_spec::zoo::gtsrb_cnn();
        let layers = ["relu1", "conv2", "conv3", "conv4", "conv5", "conv6"];
        let g: Vec<(&str, usize, usize, f64)> = layers
            .iter()
            .flat_map(|&l| [(l, 1, 64, 0.3), (l, 8, 64, 0.5), (l, 64, 64, 0.9)])
            .collect();
        let masked = ModelPlan::new(&gtsrb, &profile(&g), 0.6).expect("plan");
        let plain =
            ModelPlan::with_rule(&gtsrb, &profile(&g), 0.6, PrivacyRule::SoundPlain).expect("plan");
        let shared =
            |p: &ModelPlan| -> Vec<bool> { p.stages.iter().map(|s| !s.source_only).collect() };
        assert_eq!(shared(&masked)[..6], [false, true, true, true, true, true]);
        assert_eq!(shared(&plain)[..6], [false, true, false, true, false, true]);
    }

    #[test]
    fn graphs_and_layer_kinds_the_runtime_lacks_are_refused_by_name() {
        use veil_spec::{Layer, LayerKind, ModelSpec, Shape};
        let profile = builtin("lenet5").expect("profile");
        let err = ModelPlan::with_rule(
            &veil_spec::zoo::resnet8(43),
            &profile,
            0.8,
            PrivacyRule::Sound,
        )
        .expect_err("batch norm")
        .to_string();
        assert!(
            err.contains("stem_bn") && err.contains("batch_norm2d"),
            "{err}"
        );
        let conv = |out| LayerKind::Conv2d {
            out_channels: out,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
            groups: 1,
        };
        let residual = ModelSpec::new(
            "res",
            Shape::chw(1, 8, 8),
            vec![
                Layer::new("conv1", conv(2)),
                Layer::new("relu1", LayerKind::Relu),
                Layer::new("conv2", conv(2)),
                Layer::reading("add", &["conv2", "relu1"], LayerKind::Add),
                Layer::new("flatten", LayerKind::Flatten),
                Layer::new("fc", LayerKind::Linear { out_features: 3 }),
            ],
        )
        .expect("valid");
        let err = ModelPlan::with_rule(&residual, &profile, 0.8, PrivacyRule::Sound)
            .expect_err("graph")
            .to_string();
        assert!(err.contains("add") && err.contains("planner"), "{err}");
    }
}
