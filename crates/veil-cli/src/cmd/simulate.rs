//! `veil simulate`: fleet simulations of DistPrivacy placement (`veil-plan`): a sweep from an
//! experiment file, or one panel of the paper's Fig. 3, as CSV, PNG and a JSON summary.

use std::path::PathBuf;

use serde::Serialize;
use veil_plan::experiment::{Row, to_csv};
use veil_plan::study::{Study, progress_line, scaling_checked, scaling_markdown};

/// Arguments of `veil simulate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Experiment file (TOML; see `veil_plan::experiment` for the keys and defaults).
    #[arg(long, conflicts_with = "figure")]
    pub config: Option<PathBuf>,
    /// Regenerate a panel of DistPrivacy's Fig. 3.
    #[arg(long, value_parser = veil_plan::experiment::FIGURE_NAMES)]
    pub figure: Option<String>,
    /// Time the greedy instead: `--model` requests on uniform fleets of each `--devices` size,
    /// for each `--requests` count.
    #[arg(long, conflicts_with_all = ["figure", "config"])]
    pub scaling: bool,
    /// With --scaling: the model of every request.
    #[arg(long, default_value = "vgg16", requires = "scaling")]
    pub model: String,
    /// With --scaling: tolerated SSIM.
    #[arg(long, default_value_t = 0.8, requires = "scaling")]
    pub tau: f64,
    /// With --scaling: fleet sizes.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10,100,1000,10000",
        requires = "scaling"
    )]
    pub devices: Vec<usize>,
    /// With --scaling: request counts.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "320",
        requires = "scaling"
    )]
    pub requests: Vec<usize>,
    /// Compare the greedy with the exact ILP on small instances (lenet5 and cifar_cnn, 1-4
    /// requests, 4-12 helpers) and print the table.
    #[arg(long, conflicts_with_all = ["figure", "config", "scaling"])]
    pub exact_gap: bool,
    /// With --exact-gap: the MILP solver (default: highs in builds with the `highs` feature,
    /// microlp otherwise).
    #[arg(long, value_enum, requires = "exact_gap")]
    pub solver: Option<veil_plan::ilp::ExactSolver>,
    /// With --exact-gap: solver time limit per instance, seconds.
    #[arg(long, default_value_t = 60.0, requires = "exact_gap")]
    pub time_limit: f64,
    /// The privacy constraint (overrides the experiment's): `sound` (default), `sound-plain`
    /// or `paper` (DistPrivacy's as published).
    #[arg(long, value_enum)]
    pub privacy_rule: Option<veil_plan::PrivacyRule>,
    /// Output directory (CSV and PNG).
    #[arg(long, default_value = "runs/simulate")]
    pub out: PathBuf,
}

#[derive(Serialize)]
struct Output<'a> {
    figure: Option<&'a str>,
    csv: PathBuf,
    png: PathBuf,
    configurations: &'a [Row],
}

/// Runs `veil simulate`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.scaling {
        let rows = scaling_checked(&args.model, args.tau, &args.devices, &args.requests)?;
        return crate::report(&rows, |x| scaling_markdown(x));
    }
    if args.exact_gap {
        return exact_gap(&args);
    }
    let study = match (&args.figure, &args.config) {
        (Some(f), _) => Study::Figure(f),
        (None, Some(path)) => Study::File(path),
        (None, None) => Study::Default,
    };
    let mut p = study.prepare()?;
    if let Some(rule) = args.privacy_rule {
        p.experiment.privacy_rule = rule;
    }
    let rows = p.experiment.run(&mut |r| {
        if !crate::json() {
            eprintln!("{}", progress_line(r));
        }
    })?;
    let chart = veil_plan::chart::lines(&rows, p.metric, p.axis, &p.experiment);
    let panel =
        veil_plot::Panel::from_lines(chart.title, chart.x_label, chart.y_label, chart.series);
    let (csv, png) = crate::write_figure(&args.out, &p.name, &to_csv(&rows), &[panel], (900, 600))?;
    let out = Output {
        figure: args.figure.as_deref(),
        csv,
        png,
        configurations: &rows,
    };
    crate::report(&out, |o| {
        let (csv, png) = (o.csv.display(), o.png.display());
        format!("{} configurations; {csv} and {png}", rows.len())
    })
}

/// `veil simulate --exact-gap`.
fn exact_gap(args: &Args) -> anyhow::Result<()> {
    use veil_plan::ilp::{ExactConfig, ExactSolver};
    if !(args.time_limit.is_finite() && args.time_limit > 0.0) {
        anyhow::bail!("--time-limit must be a positive number of seconds");
    }
    let cfg = ExactConfig {
        solver: args.solver.unwrap_or_else(ExactSolver::preferred),
        time_limit_s: args.time_limit,
        ..ExactConfig::default()
    };
    let rows = veil_plan::gap::run_preset(&cfg, &mut |r| {
        if !crate::json() {
            eprintln!("{}", veil_plan::gap::progress_line(r));
        }
    })?;
    crate::report(&rows, |x| veil_plan::gap::to_markdown(x, &cfg))
}
