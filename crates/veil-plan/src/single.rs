//! One request placed on a fresh fleet: where each segment runs, its latency and shared
//! data, and how much of each used device's budget is left ([`plan_one`], [`PlanReport`]).

use std::collections::BTreeMap;

use rand::SeedableRng;
use serde::Serialize;

use crate::greedy::{Ledger, Placer};
use crate::ilp::{ExactConfig, Request, solve_exact};
use crate::placement::{Usage, add_usage, budgets, rates};
use crate::{
    Device, DeviceClass, Fleet, ModelPlan, PlanError, Source, StageCap, Strategy, check,
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
    let mut fleet = fleet.clone();
    let source = match fleet.sources.iter().position(|s| s.model == plan.model) {
        Some(c) => c,
        None => {
            fleet.sources.push(Source {
                device: Device {
                    name: format!("cam-{}", fleet.sources.len()),
                    class: DeviceClass::rpi3(),
                },
                model: plan.model.clone(),
            });
            fleet.sources.len() - 1
        }
    };
    let helpers = fleet.helpers.len();
    let rates = rates(&fleet);
    let plans = [plan];
    let placer = Placer {
        plans: &plans,
        rates: &rates,
        helpers,
        strategy,
    };
    let mut ledger = Ledger::new(&fleet);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let greedy = placer.place(0, helpers + source, &mut ledger, &mut rng);
    let (placement, exact_summary, strategy) = match exact {
        None => match greedy {
            Some(p) => (p, None, strategy),
            None => return Ok(None),
        },
        Some(cfg) => {
            let requests = [Request {
                model: 0,
                source: helpers + source,
            }];
            let start = greedy.as_ref().map(std::slice::from_ref);
            let Some(solved) = solve_exact(&fleet, &plans, &requests, start, cfg)? else {
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
                    .map(|g| request_cost(&plans[0], g, &rates).latency_s),
            };
            let Some(p) = solved.placements.into_iter().next() else {
                return Ok(None);
            };
            (p, Some(summary), Strategy::DISTPRIVACY)
        }
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
    let names: Vec<String> = fleet
        .helpers
        .iter()
        .chain(fleet.sources.iter().map(|s| &s.device))
        .map(|d| d.name.clone())
        .collect();
    let stages = plans[0]
        .stages
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
        .collect();
    let mut usage = Usage::new(names.len());
    add_usage(&plans[0], &placement, &mut usage);
    let slack = budgets(&fleet)
        .iter()
        .enumerate()
        .filter(|(d, _)| usage.macs[*d] > 0.0 || usage.sent[*d] > 0.0)
        .map(|(d, &(c, m, b))| Slack {
            device: names[d].clone(),
            compute: 1.0 - usage.macs[d] / c,
            memory: 1.0 - usage.memory[d] / m,
            bandwidth: 1.0 - usage.sent[d] / b,
        })
        .collect();
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
