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

/// One line per (tau, strategy) along the axis.
fn plot(
    path: &std::path::Path,
    rows: &[Row],
    metric: Metric,
    axis: Axis,
    e: &Experiment,
) -> anyhow::Result<()> {
    let labels: Vec<String> = match axis {
        Axis::Devices => e.devices.iter().map(|d| d.to_string()).collect(),
        Axis::Mix => e.mixes.iter().map(|m| m.label.clone()).collect(),
        Axis::Workload => e.workloads.iter().map(|w| w.label.clone()).collect(),
    };
    let x_of = |r: &Row| -> Option<f64> {
        match axis {
            Axis::Devices => Some(r.result.devices as f64),
            Axis::Mix => labels
                .iter()
                .position(|l| *l == r.mix)
                .map(|i| i as f64 + 1.0),
            Axis::Workload => labels
                .iter()
                .position(|l| *l == r.workload)
                .map(|i| i as f64 + 1.0),
        }
    };
    let mut series: Vec<Series> = Vec::new();
    for tau in &e.taus {
        for strategy in &e.strategies {
            let mut points: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| {
                    r.result.tau == *tau
                        && r.result.strategy
                            == veil_plan::experiment::strategy(strategy)
                                .map(|s| s.name())
                                .unwrap_or("")
                })
                .filter_map(|r| {
                    let y = match metric {
                        Metric::Latency => r.result.latency_total_s,
                        Metric::SharedData => r.result.shared_mb,
                    };
                    x_of(r).map(|x| (x, y))
                })
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let name = if e.strategies.len() > 1 {
                format!("SSIM {tau} {strategy}")
            } else {
                format!("SSIM {tau}")
            };
            series.push(Series { name, points });
        }
    }
    let x_label = match axis {
        Axis::Devices => "helpers".to_string(),
        Axis::Mix => format!(
            "fleet mix STM32H7/RPi3 (1..{}: {})",
            labels.len(),
            labels.join(", ")
        ),
        Axis::Workload => format!("workload (1..{}: {})", labels.len(), labels.join(", ")),
    };
    let (title, y_label) = match metric {
        Metric::Latency => ("Total latency of all requests", "seconds"),
        Metric::SharedData => ("Data shared between devices", "MB"),
    };
    line_charts(
        path,
        &[Panel {
            title: title.to_string(),
            x_label,
            y_label: y_label.to_string(),
            series,
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
    let cases: &[(&str, f64, usize, usize)] = &[
        ("lenet5", 0.8, 6, 1),
        ("lenet5", 0.8, 8, 2),
        ("lenet5", 0.6, 10, 3),
        ("lenet5", 0.8, 12, 4),
        ("cifar_cnn", 0.8, 4, 1),
        ("cifar_cnn", 0.4, 8, 1),
        ("cifar_cnn", 0.6, 8, 2),
    ];
    let mut rows = Vec::new();
    for &(model, tau, devices, requests) in cases {
        let row = veil_plan::experiment::exact_vs_greedy(model, tau, devices, requests, &cfg, 0)?;
        if !args.json {
            eprintln!(
                "{model} tau {tau} {devices} helpers {requests} requests: {:.2} s ({})",
                row.exact_seconds, cfg.solver
            );
        }
        rows.push(row);
    }
    if args.json {
        return crate::print_json(&rows);
    }
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.5}"));
    let mut text = String::from(
        "| model | tau | helpers | requests | paper binaries | count-form integers | greedy s | exact s | optimal | greedy gap | solver s |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in &rows {
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
    crate::out(&text)
}
