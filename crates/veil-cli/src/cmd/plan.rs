//! `veil plan`: place one request of a model on a fleet (DistPrivacy greedy or a baseline) and
//! show where each segment runs, the latency, the shared data and the constraint slack.

use std::path::PathBuf;

use veil_plan::Fleet;
use veil_plan::greedy::Strategy;
use veil_plan::ilp::{ExactConfig, ExactSolver};
use veil_plan::single::plan_request;

/// Arguments of `veil plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Fleet file (TOML: `[[helpers]]`, `[[sources]]`, `[budgets]`; see `veil_plan::fleet`).
    #[arg(long)]
    pub fleet: PathBuf,
    /// Zoo model the request runs.
    #[arg(long, default_value = "lenet5")]
    pub model: String,
    /// Tolerated SSIM.
    #[arg(long, default_value_t = 0.8)]
    pub tau: f64,
    /// Privacy profile JSON from `veil profile` (default: the built-in one for the model).
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Placement: distprivacy (the greedy), no-privacy, single or random.
    #[arg(long, value_enum, default_value_t = StrategyArg::Distprivacy)]
    pub strategy: StrategyArg,
    /// Solve the placement exactly (ILP), warm-started from --strategy's placement.
    #[arg(long)]
    pub exact: bool,
    /// With --exact: the MILP solver (default: highs in builds with the `highs` feature,
    /// microlp otherwise).
    #[arg(long, value_enum, requires = "exact")]
    pub solver: Option<super::SolverArg>,
    /// With --exact: solver time limit in seconds (the incumbent and its gap are reported).
    #[arg(long, default_value_t = 60.0, requires = "exact")]
    pub time_limit: f64,
}

/// `--strategy` of `veil plan`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StrategyArg {
    /// DistPrivacy's greedy (Algorithm 1, alpha 0.7, beta 0.3).
    #[value(alias = "greedy")]
    Distprivacy,
    /// Layer-wise split without privacy caps.
    NoPrivacy,
    /// Every helper stage on the strongest helper.
    Single,
    /// Each segment on a random feasible helper.
    Random,
}

impl From<StrategyArg> for Strategy {
    fn from(arg: StrategyArg) -> Self {
        match arg {
            StrategyArg::Distprivacy => Strategy::DISTPRIVACY,
            StrategyArg::NoPrivacy => Strategy::NoPrivacy,
            StrategyArg::Single => Strategy::Single,
            StrategyArg::Random => Strategy::Random,
        }
    }
}

/// Runs `veil plan`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if !(args.time_limit.is_finite() && args.time_limit > 0.0) {
        anyhow::bail!("--time-limit must be a positive number of seconds");
    }
    let exact = args.exact.then(|| ExactConfig {
        time_limit_s: args.time_limit,
        solver: args
            .solver
            .map_or_else(ExactSolver::preferred, ExactSolver::from),
        ..ExactConfig::default()
    });
    let fleet = Fleet::read(&args.fleet)?;
    let spec = super::resolve_spec(&args.model)?;
    let profile = args.profile.as_deref();
    let strategy = args.strategy.into();
    let out = plan_request(&fleet, &spec, profile, args.tau, strategy, exact.as_ref())?;
    crate::report(&out, |x| x.text())
}
