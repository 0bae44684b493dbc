//! The greedy against the exact ILP on small instances (`veil simulate --exact-gap`): the
//! preset instances, one row per instance ([`GapRow`]) and the Markdown table of
//! docs/BENCHMARKS.md.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::experiment::{Experiment, draw_fleet, profile_for};
use crate::fleet::Budgets;
use crate::ilp::ExactConfig;
use crate::sim::with_cameras;
use crate::{ModelPlan, PlanError, Strategy};

/// The preset instances: `(model, tau, helpers, requests in one period)`.
pub const PRESET: [(&str, f64, usize, usize); 7] = [
    ("lenet5", 0.95, 6, 1),
    ("lenet5", 0.95, 8, 2),
    ("lenet5", 0.6, 10, 3),
    ("lenet5", 0.95, 12, 4),
    ("cifar_cnn", 0.8, 4, 1),
    ("cifar_cnn", 0.4, 8, 1),
    ("cifar_cnn", 0.6, 8, 2),
];

/// Runs every [`PRESET`] instance with `cfg` (seed 0), calling `on_row` after each.
pub fn run_preset(
    cfg: &ExactConfig,
    on_row: &mut dyn FnMut(&GapRow),
) -> Result<Vec<GapRow>, PlanError> {
    PRESET
        .iter()
        .map(|&(model, tau, devices, requests)| {
            let row = exact_vs_greedy(model, tau, devices, requests, cfg, 0)?;
            on_row(&row);
            Ok(row)
        })
        .collect()
}

/// One row's outcome in one line, for the log while the preset runs.
pub fn progress_line(r: &GapRow) -> String {
    format!(
        "{} tau {} {} helpers {} requests: {:.2} s ({})",
        r.model, r.tau, r.devices, r.requests, r.exact_seconds, r.solver
    )
}

/// The rows as the Markdown table of docs/BENCHMARKS.md, with a closing line naming the
/// solver and the time limit.
pub fn to_markdown(rows: &[GapRow], cfg: &ExactConfig) -> String {
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.5}"));
    let mut text = String::from(
        "| model | tau | helpers | requests | paper binaries | count-form integers | greedy s | exact s | optimal | greedy gap | solver s |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        text.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} |\n",
            r.model,
            r.tau,
            r.devices,
            r.requests,
            r.paper_binaries,
            r.integer_columns,
            fmt(r.greedy_s),
            fmt(r.exact_s),
            if r.optimal {
                "yes".to_string()
            } else {
                format!("no (gap {:.1e})", r.mip_gap)
            },
            r.greedy_gap
                .map_or("-".to_string(), |g| format!("{:.2} %", 100.0 * g)),
            r.exact_seconds
        ));
    }
    text.push_str(&format!(
        "solver: {}, time limit {} s per instance",
        cfg.solver, cfg.time_limit_s
    ));
    text
}

/// Greedy against the exact ILP on one small instance.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GapRow {
    /// Model of the requests.
    pub model: String,
    /// Tolerated SSIM.
    pub tau: f64,
    /// Helpers.
    pub devices: usize,
    /// Requests placed together in one period.
    pub requests: usize,
    /// Binaries of the paper's formulation.
    pub paper_binaries: usize,
    /// Integer columns of veil's count form.
    pub integer_columns: usize,
    /// Sum of latencies of the greedy's placements (None: the greedy rejected a request).
    pub greedy_s: Option<f64>,
    /// Sum of latencies of the ILP's incumbent.
    pub exact_s: Option<f64>,
    /// The MILP solver used.
    pub solver: crate::milp::ExactSolver,
    /// Whether the solver proved optimality.
    pub optimal: bool,
    /// The solver's relative gap.
    pub mip_gap: f64,
    /// `(greedy - exact) / exact`.
    pub greedy_gap: Option<f64>,
    /// Seconds the solver took.
    pub exact_seconds: f64,
}

/// Runs the greedy and the ILP on `requests` requests of `model` at `tau` from one camera on a
/// uniform fleet of `devices` helpers (one period, full budgets).
pub fn exact_vs_greedy(
    model: &str,
    tau: f64,
    devices: usize,
    requests: usize,
    cfg: &ExactConfig,
    seed: u64,
) -> Result<GapRow, PlanError> {
    use crate::greedy::{Ledger, Placer};
    use crate::ilp::{Request, solve_exact};
    use crate::placement::rates;
    let spec = veil_spec::zoo::model(model)?;
    let plans = [ModelPlan::new(
        &spec,
        &profile_for(model, &BTreeMap::new())?,
        tau,
    )?];
    let mix = Experiment::default().mixes.remove(0);
    let fleet = draw_fleet(&mix, devices, &Budgets::default(), seed)?;
    let fleet = with_cameras(&fleet, 1, &[model.to_string()]);
    let rates = rates(&fleet);
    let placer = Placer {
        plans: &plans,
        rates: &rates,
        helpers: devices,
        strategy: Strategy::DISTPRIVACY,
    };
    let mut ledger = Ledger::new(&fleet);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let greedy: Option<Vec<_>> = (0..requests)
        .map(|_| placer.place(0, devices, &mut ledger, &mut rng))
        .collect();
    let total = |ps: &[crate::Placement]| -> f64 {
        ps.iter()
            .map(|p| crate::request_cost(&plans[0], p, &rates).latency_s)
            .sum()
    };
    let greedy_s = greedy.as_deref().map(total);
    let reqs = vec![
        Request {
            model: 0,
            source: devices
        };
        requests
    ];
    let exact = solve_exact(&fleet, &plans, &reqs, greedy.as_deref(), cfg)?;
    let paper_binaries = plans[0]
        .stages
        .iter()
        .filter(|s| !s.source_only)
        .map(|s| s.segments * devices)
        .sum::<usize>()
        * requests;
    let exact_s = exact.as_ref().map(|e| total(&e.placements));
    Ok(GapRow {
        model: model.to_string(),
        tau,
        devices,
        requests,
        paper_binaries,
        integer_columns: exact.as_ref().map_or(0, |e| e.integer_columns),
        greedy_s,
        exact_s,
        solver: cfg.solver,
        optimal: exact.as_ref().is_some_and(|e| e.optimal),
        mip_gap: exact.as_ref().map_or(f64::NAN, |e| e.gap),
        greedy_gap: match (greedy_s, exact_s) {
            (Some(g), Some(e)) if e > 0.0 => Some((g - e) / e),
            _ => None,
        },
        exact_seconds: exact.as_ref().map_or(0.0, |e| e.seconds),
    })
}
