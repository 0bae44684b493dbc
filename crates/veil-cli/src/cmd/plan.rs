//! `veil plan`: place one request of a model on a fleet (DistPrivacy greedy or a baseline) and
//! show where each segment runs, the latency, the shared data and the constraint slack.

use std::path::PathBuf;

use veil_plan::Fleet;
use veil_plan::experiment::{STRATEGY_NAMES, strategy};
use veil_plan::ilp::{ExactConfig, ExactSolver};
use veil_plan::single::plan_request;

/// Arguments of `veil plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Fleet file (TOML: `[[helpers]]`, `[[sources]]`, `[budgets]`; see `veil_plan::fleet`).
    #[arg(long)]
    pub fleet: PathBuf,
    /// Model the request runs (zoo name, spec file or ONNX file).
    #[arg(long, default_value = "lenet5")]
    pub model: String,
    /// Tolerated SSIM.
    #[arg(long, default_value_t = 0.8)]
    pub tau: f64,
    /// Privacy profile JSON from `veil profile` (default: the built-in one for the model).
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// The privacy constraint: `sound` counts what a helper really observes with masked
    /// partial sums (flat inputs, one constrained stage per helper), `sound-plain` with plain
    /// partial sums, `paper` is DistPrivacy's as published.
    #[arg(long, value_enum, default_value_t = veil_plan::PrivacyRule::Sound)]
    pub privacy_rule: veil_plan::PrivacyRule,
    /// Placement: distprivacy (the greedy), no-privacy, single or random.
    #[arg(long, default_value = "distprivacy", value_parser = STRATEGY_NAMES)]
    pub strategy: String,
    /// Solve the placement exactly (ILP), warm-started from --strategy's placement.
    #[arg(long)]
    pub exact: bool,
    /// With --exact: the MILP solver (default: highs in builds with the `highs` feature,
    /// microlp otherwise).
    #[arg(long, value_enum, requires = "exact")]
    pub solver: Option<veil_plan::ilp::ExactSolver>,
    /// With --exact: solver time limit in seconds (the incumbent and its gap are reported).
    #[arg(long, default_value_t = 60.0, requires = "exact")]
    pub time_limit: f64,
}

/// Runs `veil plan`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if !(args.time_limit.is_finite() && args.time_limit > 0.0) {
        anyhow::bail!("--time-limit must be a positive number of seconds");
    }
    let exact = args.exact.then(|| ExactConfig {
        time_limit_s: args.time_limit,
        solver: args.solver.unwrap_or_else(ExactSolver::preferred),
        ..ExactConfig::default()
    });
    let fleet = Fleet::read(&args.fleet)?;
    let spec = super::resolve_spec(&args.model)?;
    let profile = args.profile.as_deref();
    let strategy = strategy(&args.strategy)?;
    let out = plan_request(
        &fleet,
        &spec,
        profile,
        (args.tau, args.privacy_rule),
        strategy,
        exact.as_ref(),
    )?;
    crate::report(&out, |x| x.text())
}
