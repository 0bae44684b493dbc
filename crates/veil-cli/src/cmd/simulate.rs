//! `veil simulate`: fleet simulations of DistPrivacy placement (`veil-plan`): a sweep from an
//! experiment file, or one panel of the paper's Fig. 3, as CSV, PNG and a JSON summary.

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;
use veil_plan::experiment::{Axis, Experiment, Metric, Row, figure, to_csv};
use veil_plot::{Panel, Series, line_charts};

/// Arguments of `veil simulate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Experiment file (TOML; see `veil_plan::experiment` for the keys and defaults).
    #[arg(long, conflicts_with = "figure")]
    pub config: Option<PathBuf>,
    /// Regenerate a panel of DistPrivacy's Fig. 3: 3a, 3b, 3c, 3d, 3e or 3f.
    #[arg(long)]
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
    pub solver: Option<super::SolverArg>,
    /// With --exact-gap: solver time limit per instance, seconds.
    #[arg(long, default_value_t = 60.0, requires = "exact_gap")]
    pub time_limit: f64,
    /// Output directory (CSV and PNG).
    #[arg(long, default_value = "runs/simulate")]
    pub out: PathBuf,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
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
        return scaling(&args);
    }
    if args.exact_gap {
        return exact_gap(&args);
    }
    let (name, experiment, metric, axis) = match (&args.figure, &args.config) {
        (Some(f), _) => {
            let fig = figure(f)?;
            (
                format!("fig{}", fig.name),
                fig.experiment,
                fig.metric,
                fig.axis,
            )
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let e = Experiment::from_toml_str(&text)
                .with_context(|| format!("experiment {}", path.display()))?;
            ("simulation".to_string(), e, Metric::Latency, Axis::Devices)
        }
        (None, None) => (
            "simulation".to_string(),
            Experiment::default(),
            Metric::Latency,
            Axis::Devices,
        ),
    };
    let rows = experiment.run(&mut |r| {
        if !args.json {
            eprintln!(
                "{} / {} / {} devices / tau {} / {}: latency {:.1} s total, {:.3} s mean, shared {:.1} MB, rejected {:.1} %",
                r.workload,
                r.mix,
                r.result.devices,
                r.result.tau,
                r.result.strategy,
                r.result.latency_total_s,
                r.result.latency_mean_s,
                r.result.shared_mb,
                100.0 * r.result.rejected_fraction
            );
        }
    })?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let csv = args.out.join(format!("{name}.csv"));
    std::fs::write(&csv, to_csv(&rows)).with_context(|| format!("writing {}", csv.display()))?;
    let png = args.out.join(format!("{name}.png"));
    plot(&png, &rows, metric, axis, &experiment)?;
    let out = Output {
        figure: args.figure.as_deref(),
        csv,
        png,
        configurations: &rows,
    };
    if args.json {
        return crate::print_json(&out);
    }
    crate::out(&format!(
        "{} configurations; {} and {}",
        rows.len(),
        out.csv.display(),
        out.png.display()
    ))
}

/// Draws `rows` as one line per (tau, strategy) along the axis (`veil_plan::chart`).
fn plot(
    path: &std::path::Path,
    rows: &[Row],
    metric: Metric,
    axis: Axis,
    e: &Experiment,
) -> anyhow::Result<()> {
    let chart = veil_plan::chart::lines(rows, metric, axis, e);
    line_charts(
        path,
        &[Panel {
            title: chart.title,
            x_label: chart.x_label,
            y_label: chart.y_label,
            series: chart
                .series
                .into_iter()
                .map(|(name, points)| Series::new(name, points))
                .collect(),
        }],
        900,
        600,
    )?;
    Ok(())
}

/// `veil simulate --scaling`: placement speed table.
fn scaling(args: &Args) -> anyhow::Result<()> {
    if args
        .devices
        .iter()
        .chain(&args.requests)
        .any(|&n| n == 0 || n > 1_000_000)
    {
        anyhow::bail!("--devices and --requests must be in 1..=1000000");
    }
    if !(0.0..=1.0).contains(&args.tau) {
        anyhow::bail!("--tau must be an SSIM in [0, 1], got {}", args.tau);
    }
    let rows =
        veil_plan::experiment::scaling(&args.model, args.tau, &args.devices, &args.requests, 0)?;
    if args.json {
        return crate::print_json(&rows);
    }
    let mut text = String::from(
        "| model | helpers | requests | placed | rejected once | seconds | placements/s | segments/s |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in &rows {
        text.push_str(&format!(
            "| {} | {} | {} | {} | {:.1} % | {:.3} | {:.0} | {:.0} |\n",
            r.model,
            r.devices,
            r.requests,
            r.placed,
            100.0 * r.rejected_fraction,
            r.seconds,
            r.placements_per_s,
            r.segments_per_s
        ));
    }
    crate::out(text.trim_end())
}

/// `veil simulate --exact-gap`: the greedy against the ILP on small instances.
fn exact_gap(args: &Args) -> anyhow::Result<()> {
    use veil_plan::ilp::{ExactConfig, ExactSolver};
    if !(args.time_limit.is_finite() && args.time_limit > 0.0) {
        anyhow::bail!("--time-limit must be a positive number of seconds");
    }
    let cfg = ExactConfig {
        solver: args
            .solver
            .map_or_else(ExactSolver::preferred, ExactSolver::from),
        time_limit_s: args.time_limit,
        ..ExactConfig::default()
    };
    let rows = veil_plan::gap::run_preset(&cfg, &mut |r| {
        if !args.json {
            eprintln!(
                "{} tau {} {} helpers {} requests: {:.2} s ({})",
                r.model, r.tau, r.devices, r.requests, r.exact_seconds, r.solver
            );
        }
    })?;
    if args.json {
        return crate::print_json(&rows);
    }
    crate::out(&veil_plan::gap::to_markdown(&rows, &cfg))
}
