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
