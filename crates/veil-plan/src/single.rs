//! One request placed on a fresh fleet: where each segment runs, its latency and shared
//! data, and how much of each used device's budget is left ([`plan_one`], [`PlanReport`]).

use std::collections::BTreeMap;

use rand::SeedableRng;
use serde::Serialize;

use crate::greedy::{Ledger, Placer};
use crate::ilp::{ExactConfig, Request, solve_exact};
use crate::placement::{Usage, add_usage, budgets, rates};
use crate::{
    Device, DeviceClass, Fleet, ModelPlan, Placement, PlanError, Source, StageCap, Strategy, check,
    request_cost,
};

/// Where one stage's segments run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageReport {
    /// Stage (layer) name.
    pub stage: String,
    /// Segments of the stage.
    pub segments: usize,
    /// Privacy cap per helper (`None`: free).
    pub cap: Option<usize>,
    /// Device name -> segments it computes.
    pub devices: BTreeMap<String, usize>,
}

/// Budget share left on a used device after the request.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Slack {
    /// Device name.
    pub device: String,
    /// Share of the compute budget left.
    pub compute: f64,
    /// Share of the memory budget left.
    pub memory: f64,
    /// Share of the bandwidth budget left.
    pub bandwidth: f64,
}

/// The placement of one request and what it costs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanReport {
    /// Model name.
    pub model: String,
    /// Tolerated SSIM.
    pub tau: f64,
    /// Strategy name.
    pub strategy: &'static str,
    /// `SP(tau)`.
    pub sp: Option<String>,
    /// Where the privacy numbers come from.
    pub profile: String,
    /// Seconds (eqs. 5, 7).
    pub latency_s: f64,
    /// Bytes between distinct devices.
    pub shared_bytes: f64,
    /// Per stage.
    pub stages: Vec<StageReport>,
    /// Per used device.
    pub slack: Vec<Slack>,
    /// With the exact solver: how it went, and the greedy's latency for comparison.
    pub exact: Option<ExactSummary>,
    /// `owners[s][p]`: global device index of segment `p` of stage `s` (helpers are
    /// `0..helpers`, camera `c` is `helpers + c`), what a runtime deploys.
    pub owners: Vec<Vec<usize>>,
    /// Global device index of the request's camera.
    pub source: usize,
}

/// The exact solve behind a [`PlanReport`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExactSummary {
    /// The MILP solver used.
    pub solver: crate::milp::ExactSolver,
    /// Whether the solver proved optimality.
    pub optimal: bool,
    /// The solver's relative MIP gap.
    pub mip_gap: f64,
    /// The solver's status.
    pub status: String,
    /// Seconds the solver took.
    pub seconds: f64,
    /// Latency of the greedy's placement (the warm start), if it found one.
    pub greedy_latency_s: Option<f64>,
}

/// What `veil plan` asks: one request of `spec` at `tau` under `rule` on `fleet`, with the privacy profile
/// in `profile` (a `veil profile` JSON) or the built-in one. Unlike [`plan_one`], finding no
/// placement is an error that says what could help.
pub fn plan_request(
    fleet: &Fleet,
    spec: &veil_spec::ModelSpec,
    profile: Option<&std::path::Path>,
    (tau, rule): (f64, crate::PrivacyRule),
    strategy: Strategy,
    exact: Option<&ExactConfig>,
) -> Result<PlanReport, PlanError> {
    if !(0.0..=1.0).contains(&tau) {
        return Err(PlanError::config(
            "tau",
            format!("--tau must be an SSIM in [0, 1], got {tau}"),
        ));
    }
    let profile = match profile {
        Some(p) => crate::experiment::read_profile(p)?,
        None => crate::experiment::profile_for(&spec.name, &Default::default())?,
    };
    let plan = ModelPlan::with_rule(spec, &profile, tau, rule)?;
    let blocked = plan.blocked_stage().map(|s| s.name.clone());
    plan_one(fleet, plan, strategy, exact)?.ok_or_else(|| {
        let why = match blocked {
            Some(stage) => format!(
                "no helper may hold even one input map of {stage} (the profile's leakage of a single map exceeds tau), on any fleet; only a higher tau can help"
            ),
            None => "privacy caps or budgets; more or stronger helpers, or a higher tau may help"
                .to_string(),
        };
        PlanError::config(
            "placement",
            format!(
                "no placement of {} at tau {tau} fits this fleet: {why}",
                spec.name
            ),
        )
    })
}

/// Places one request of `plan` on `fleet` (full budgets) with `strategy`, or exactly with the
/// ILP when `exact` is given (warm-started from `strategy`'s placement); the request comes
/// from the first camera running `plan.model`, or from an added RPi3 camera. `Ok(None)` when
/// nothing fits. The placement is checked against every constraint before it is returned.
pub fn plan_one(
    fleet: &Fleet,
    plan: ModelPlan,
    strategy: Strategy,
    exact: Option<&ExactConfig>,
) -> Result<Option<PlanReport>, PlanError> {
    let (fleet, source) = with_camera(fleet, &plan.model);
    let helpers = fleet.helpers.len();
    let rates = rates(&fleet);
    let plans = [plan];
    let Some(Placed {
        placement,
        exact: exact_summary,
        strategy,
    }) = place(&fleet, &plans, &rates, helpers + source, strategy, exact)?
    else {
        return Ok(None);
    };
    check(
        &fleet,
        &plans,
        std::slice::from_ref(&placement),
        strategy.respects_privacy(),
    )
    .map_err(|v| {
        PlanError::config(
            "placement",
            format!("internal error, a constraint is broken: {v}"),
        )
    })?;
    let cost = request_cost(&plans[0], &placement, &rates);
    let names = device_names(&fleet);
    let stages = stage_reports(&plans[0], &placement, &names);
    let slack = slack(&fleet, &plans[0], &placement, &names);
    let [plan] = plans;
    Ok(Some(PlanReport {
        model: plan.model,
        tau: plan.tau,
        strategy: if exact_summary.is_some() {
            "exact"
        } else {
            strategy.name()
        },
        sp: plan.sp,
        profile: plan.profile_source,
        latency_s: cost.latency_s,
        shared_bytes: cost.shared_bytes,
        stages,
        slack,
        exact: exact_summary,
        owners: placement.devices.clone(),
        source: placement.source,
    }))
}

/// A copy of `fleet` and the index (among its cameras) of the first camera running `model`;
/// when none does, the copy gets an added RPi3 camera `cam-<n>` running it.
fn with_camera(fleet: &Fleet, model: &str) -> (Fleet, usize) {
    let mut fleet = fleet.clone();
    let source = match fleet.sources.iter().position(|s| s.model == model) {
        Some(c) => c,
        None => {
            fleet.sources.push(Source {
                device: Device {
                    name: format!("cam-{}", fleet.sources.len()),
                    class: DeviceClass::rpi3(),
                },
                model: model.to_string(),
            });
            fleet.sources.len() - 1
        }
    };
    (fleet, source)
}

/// A placement found by [`place`], not yet checked.
struct Placed {
    placement: Placement,
    /// The exact solve, when there was one.
    exact: Option<ExactSummary>,
    /// The strategy whose constraints the placement must meet (DistPrivacy for the exact
    /// solver).
    strategy: Strategy,
}

/// Places the one request of `plans[0]` from global device `source` on `fleet`: with the
/// greedy `strategy` (seeded with 0), then, when `exact` is given, with the ILP warm-started
/// from the greedy's placement. `Ok(None)` when the chosen method finds nothing.
fn place(
    fleet: &Fleet,
    plans: &[ModelPlan],
    rates: &[(f64, f64)],
    source: usize,
    strategy: Strategy,
    exact: Option<&ExactConfig>,
) -> Result<Option<Placed>, PlanError> {
    let helpers = fleet.helpers.len();
    let placer = Placer {
        plans,
        rates,
        helpers,
        strategy,
    };
    let mut ledger = Ledger::new(fleet);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let greedy = placer.place(0, source, &mut ledger, &mut rng);
    let Some(cfg) = exact else {
        return Ok(greedy.map(|placement| Placed {
            placement,
            exact: None,
            strategy,
        }));
    };
    let requests = [Request { model: 0, source }];
    let start = greedy.as_ref().map(std::slice::from_ref);
    let Some(solved) = solve_exact(fleet, plans, &requests, start, cfg)? else {
        return Ok(None);
    };
    let summary = ExactSummary {
        solver: solved.solver,
        optimal: solved.optimal,
        mip_gap: solved.gap,
        status: solved.status.clone(),
        seconds: solved.seconds,
        greedy_latency_s: greedy
            .as_ref()
            .map(|g| request_cost(&plans[0], g, rates).latency_s),
    };
    Ok(solved
        .placements
        .into_iter()
        .next()
        .map(|placement| Placed {
            placement,
            exact: Some(summary),
            strategy: Strategy::DISTPRIVACY,
        }))
}

/// Device names by global index: helpers, then cameras.
fn device_names(fleet: &Fleet) -> Vec<String> {
    fleet
        .helpers
        .iter()
        .chain(fleet.sources.iter().map(|s| &s.device))
        .map(|d| d.name.clone())
        .collect()
}

/// Per stage of `plan`, how many of its segments each device of `placement` computes.
fn stage_reports(plan: &ModelPlan, placement: &Placement, names: &[String]) -> Vec<StageReport> {
    plan.stages
        .iter()
        .zip(&placement.devices)
        .map(|(stage, row)| {
            let mut devices = BTreeMap::new();
            for &d in row {
                *devices.entry(names[d].clone()).or_insert(0) += 1;
            }
            StageReport {
                stage: stage.name.clone(),
                segments: stage.segments,
                cap: match stage.cap {
                    StageCap::Free => None,
                    StageCap::AtMost(n) => Some(n),
                },
                devices,
            }
        })
        .collect()
}

/// Budget shares left on each device that `placement` uses (computes on or sends from), in
/// global device order.
fn slack(fleet: &Fleet, plan: &ModelPlan, placement: &Placement, names: &[String]) -> Vec<Slack> {
    let mut usage = Usage::new(names.len());
    add_usage(plan, placement, &mut usage);
    budgets(fleet)
        .iter()
        .enumerate()
        .filter(|(d, _)| usage.macs[*d] > 0.0 || usage.sent[*d] > 0.0)
        .map(|(d, &(c, m, b))| Slack {
            device: names[d].clone(),
            compute: 1.0 - usage.macs[d] / c,
            memory: 1.0 - usage.memory[d] / m,
            bandwidth: 1.0 - usage.sent[d] / b,
        })
        .collect()
}

impl PlanReport {
    /// The placement in words: stages and their devices, the exact solve, the tightest budget.
    pub fn text(&self) -> String {
        let mut text = format!(
            "{} at tau {} ({}): latency {:.4} s, shared {:.1} kB, SP {}\nprivacy numbers: {}\n",
            self.model,
            self.tau,
            self.strategy,
            self.latency_s,
            self.shared_bytes / 1e3,
            self.sp.as_deref().unwrap_or("none"),
            self.profile
        );
        for s in &self.stages {
            let devices: Vec<String> = s.devices.iter().map(|(d, n)| format!("{d} x{n}")).collect();
            text.push_str(&format!(
                "  {:<8} {:>4} segments, cap {:<5} -> {}\n",
                s.stage,
                s.segments,
                s.cap.map_or("-".to_string(), |c| c.to_string()),
                devices.join(", ")
            ));
        }
        if let Some(e) = &self.exact {
            let status = if e.optimal {
                "optimal"
            } else {
                e.status.as_str()
            };
            let greedy = e
                .greedy_latency_s
                .map_or("- (it found no placement)".to_string(), |l| {
                    format!("{l:.4} s")
                });
            text.push_str(&format!(
                "exact ({}): {status} (gap {:.2e}) in {:.2} s; the greedy's latency was {greedy}\n",
                e.solver, e.mip_gap, e.seconds,
            ));
        }
        let tightest = self
            .slack
            .iter()
            .map(|s| s.compute.min(s.memory).min(s.bandwidth))
            .fold(f64::INFINITY, f64::min);
        text.push_str(&format!(
            "smallest budget share left on a used device: {tightest:.3}"
        ));
        text
    }
}
