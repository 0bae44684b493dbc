//! `veil plan`: place one request of a model on a fleet (DistPrivacy greedy or a baseline) and
//! show where each segment runs, the latency, the shared data and the constraint slack.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use veil_plan::experiment::{profile_for, read_profile, strategy};
use veil_plan::ilp::{ExactConfig, ExactSolver};
use veil_plan::single::plan_one;
use veil_plan::{Fleet, ModelPlan};

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
    #[arg(long, default_value = "distprivacy")]
    pub strategy: String,
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
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs `veil plan`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&args.tau) {
        anyhow::bail!("--tau must be an SSIM in [0, 1], got {}", args.tau);
    }
    let text = std::fs::read_to_string(&args.fleet)
        .with_context(|| format!("reading {}", args.fleet.display()))?;
    let fleet =
        Fleet::from_toml_str(&text).with_context(|| format!("fleet {}", args.fleet.display()))?;
    let spec = super::resolve_spec(&args.model)?;
    let profile = match &args.profile {
        Some(p) => read_profile(p)?,
        None => profile_for(&spec.name, &BTreeMap::new())?,
    };
    let plan = ModelPlan::new(&spec, &profile, args.tau)?;
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
    let Some(out) = plan_one(&fleet, plan, strategy(&args.strategy)?, exact.as_ref())? else {
        anyhow::bail!(
            "no placement of {} at tau {} fits this fleet (privacy caps or budgets); more or stronger helpers, or a higher tau, may",
            args.model,
            args.tau
        );
    };
    if args.json {
        return crate::print_json(&out);
    }
    let mut text = format!(
        "{} at tau {} ({}): latency {:.4} s, shared {:.1} kB, SP {}\nprivacy numbers: {}\n",
        out.model,
        out.tau,
        out.strategy,
        out.latency_s,
        out.shared_bytes / 1e3,
        out.sp.as_deref().unwrap_or("none"),
        out.profile
    );
    for s in &out.stages {
        let devices: Vec<String> = s.devices.iter().map(|(d, n)| format!("{d} x{n}")).collect();
        text.push_str(&format!(
            "  {:<8} {:>4} segments, cap {:<5} -> {}\n",
            s.stage,
            s.segments,
            s.cap.map_or("-".to_string(), |c| c.to_string()),
            devices.join(", ")
        ));
    }
    if let Some(e) = &out.exact {
        text.push_str(&format!(
            "exact ({}): {} (gap {:.2e}) in {:.2} s; the greedy's latency was {}\n",
            e.solver,
            if e.optimal {
                "optimal"
            } else {
                e.status.as_str()
            },
            e.mip_gap,
            e.seconds,
            e.greedy_latency_s
                .map_or("- (it found no placement)".to_string(), |l| format!(
                    "{l:.4} s"
                ))
        ));
    }
    let tightest = out
        .slack
        .iter()
        .map(|s| s.compute.min(s.memory).min(s.bandwidth))
        .fold(f64::INFINITY, f64::min);
    text.push_str(&format!(
        "smallest budget share left on a used device: {tightest:.3}"
    ));
    crate::out(&text)
}
