//! The coordinator's planning step: the live helpers become a [`veil_plan::Fleet`], the
//! planner's online greedy (DistPrivacy scoring, privacy profile and `tau` given) places one
//! request of the model, and the placement becomes a [`Deployment`] whose slices are cut from
//! the model's parameters.
//!
//! Key items: [`Planner`], [`Planner::place`].

use veil_plan::single::PlanReport;
use veil_plan::{Budgets, Device, Fleet, ModelPlan, Strategy};
use veil_spec::ModelSpec;

use crate::NetError;
use crate::cluster::Registered;
use crate::deploy::Deployment;

/// Everything needed to place the model again whenever the live fleet changes.
#[derive(Clone, Debug)]
pub struct Planner {
    spec: ModelSpec,
    profile: veil_plan::privacy::Profile,
    plan: ModelPlan,
    budgets: Budgets,
    params: Vec<(Vec<f32>, Vec<f32>)>,
    /// Bytes per partial-sum value on the wire (4 plain, 8 masked).
    partial_sum_bytes: u64,
}

impl Planner {
    /// A planner for `spec` whose parameters come from the weight file at `weights` (read
    /// without burn: the coordinator only slices parameters), which must hold `spec`; the
    /// privacy profile is `profile` when given (a `veil profile` JSON), else the built-in one.
    pub fn from_weight_file(
        spec: ModelSpec,
        weights: &std::path::Path,
        tau: f64,
        budgets: Budgets,
        profile: Option<veil_plan::privacy::Profile>,
    ) -> Result<Self, NetError> {
        let (file_spec, tensors) = veil_spec::weights::read_file(weights)?;
        if file_spec.name != spec.name {
            return Err(NetError::Deploy(format!(
                "{} holds {}, not {}",
                weights.display(),
                file_spec.name,
                spec.name
            )));
        }
        let params = veil_spec::weights::compute_layer_params(&file_spec, &tensors)?;
        match profile {
            Some(profile) => Self::with_profile(spec, &profile, tau, budgets, params),
            None => Self::new(spec, tau, budgets, params),
        }
    }

    /// A planner for `spec` at tolerated SSIM `tau` (the model's built-in privacy profile),
    /// with per-period `budgets`; `params` are the full weight and bias of every conv and
    /// linear layer, in order.
    pub fn new(
        spec: ModelSpec,
        tau: f64,
        budgets: Budgets,
        params: Vec<(Vec<f32>, Vec<f32>)>,
    ) -> Result<Self, NetError> {
        let profile = veil_plan::privacy::builtin(&spec.name).ok_or_else(|| {
            NetError::Deploy(format!(
                "no built-in privacy profile for {}: give a `veil profile` JSON (--profile)",
                spec.name
            ))
        })?;
        Self::with_profile(spec, &profile, tau, budgets, params)
    }

    /// [`Planner::new`] with the privacy profile `profile`.
    pub fn with_profile(
        spec: ModelSpec,
        profile: &veil_plan::privacy::Profile,
        tau: f64,
        budgets: Budgets,
        params: Vec<(Vec<f32>, Vec<f32>)>,
    ) -> Result<Self, NetError> {
        let plan = ModelPlan::new(&spec, profile, tau).map_err(|source| NetError::Plan {
            model: spec.name.clone(),
            source,
        })?;
        Ok(Planner {
            spec,
            profile: profile.clone(),
            plan,
            budgets,
            params,
            partial_sum_bytes: veil_spec::cost::BYTES_PER_SCALAR,
        })
    }

    /// The same planner under privacy rule `rule` (the sound rule by default; see
    /// [`veil_plan::PrivacyRule`]): the runtime's plain partial sums need
    /// [`veil_plan::PrivacyRule::SoundPlain`].
    pub fn under_rule(mut self, rule: veil_plan::PrivacyRule) -> Result<Self, NetError> {
        self.plan = ModelPlan::with_rule(&self.spec, &self.profile, self.plan.tau, rule)
            .map_err(|source| NetError::Plan {
                model: self.spec.name.clone(),
                source,
            })?
            .with_partial_sum_bytes(self.partial_sum_bytes);
        Ok(self)
    }

    /// The same planner counting partial sums as `mode` sends them (8-byte ring elements
    /// when masked, 4-byte floats when plain), so the planned bytes are the bytes sent.
    pub fn with_partial_sums(mut self, mode: crate::cluster::PartialSums) -> Self {
        self.partial_sum_bytes = match mode {
            crate::cluster::PartialSums::Masked => crate::mask::RING_BYTES,
            crate::cluster::PartialSums::Plain => veil_spec::cost::BYTES_PER_SCALAR,
        };
        self.plan = self.plan.with_partial_sum_bytes(self.partial_sum_bytes);
        self
    }

    /// The first stage no helper may hold at this tau (see
    /// [`ModelPlan::blocked_stage`]): while there is one, no fleet can run the model.
    pub fn blocked_stage(&self) -> Option<&str> {
        self.plan.blocked_stage().map(|s| s.name.as_str())
    }

    /// The model.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The full parameters per stage.
    pub fn params(&self) -> &[(Vec<f32>, Vec<f32>)] {
        &self.params
    }

    /// Places one request on `helpers` (planner device `i` is `helpers[i]`, the source comes
    /// after them). `Ok(None)` when no placement satisfies the constraints (too few helpers
    /// for the privacy constraint, budgets, memory).
    pub fn place(
        &self,
        helpers: &[Registered],
    ) -> Result<Option<(Deployment, PlanReport)>, NetError> {
        let fleet = Fleet {
            helpers: helpers
                .iter()
                .map(|r| Device {
                    name: r.name.clone(),
                    class: r.class.clone(),
                })
                .collect(),
            sources: Vec::new(),
            budgets: self.budgets.clone(),
        };
        let report =
            veil_plan::single::plan_one(&fleet, self.plan.clone(), Strategy::DISTPRIVACY, None)
                .map_err(|source| NetError::Plan {
                    model: self.spec.name.clone(),
                    source,
                })?;
        let Some(report) = report else {
            return Ok(None);
        };
        let deployment = Deployment::new(&self.spec, &report.owners, report.source)?;
        Ok(Some((deployment, report)))
    }
}
