//! `veil game`: the Stackelberg incentive game of co-inference (`veil-game`).
//!
//! `veil game [--config GAME.toml] [--method M] [--json]` solves one scenario (the documented
//! default without `--config`); `veil game --figure 6|7|8|9 [--out DIR]` regenerates a figure of
//! Spears and Shields as CSV and PNG.

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;
use veil_game::sweep::{SweepRow, figure, to_csv};
use veil_game::{Method, Scenario, Solution, solve};
use veil_plot::{Panel, Series, line_charts};

/// Arguments of `veil game`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Scenario file (TOML: `vehicles = [{ speed, privacy_value }, ...]`, `unit_expense`,
    /// `profit_coefficient`, `eps_min`, `eps_max`, `accuracy_a`, `accuracy_b`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// How the service provider sets its reward: centralized, distributed or linear.
    #[arg(long, default_value = "centralized")]
    pub method: String,
    /// Regenerate figure 6, 7, 8 or 9 (all three methods) instead of solving one scenario.
    #[arg(long)]
    pub figure: Option<u8>,
    /// Seed of the first random fleet of the figure sweeps.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Random fleets averaged at every point of a figure.
    #[arg(long, default_value_t = 10)]
    pub fleets: usize,
    /// Output directory for figures.
    #[arg(long, default_value = "runs/game")]
    pub out: PathBuf,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Accuracy curve `A = a ln(b eps + 1)` measured by `veil defend dp` (its `*-fit.toml`),
    /// replacing the scenario's `accuracy_a` and `accuracy_b`.
    #[arg(long)]
    pub accuracy_fit: Option<PathBuf>,
}

#[derive(Serialize)]
struct GameOutput<'a> {
    #[serde(flatten)]
    solution: &'a Solution,
    #[serde(flatten)]
    scenario: &'a Scenario,
}

#[derive(Serialize)]
struct FigureOutput<'a> {
    figure: u8,
    fleets: usize,
    csv: PathBuf,
    png: PathBuf,
    rows: &'a [SweepRow],
}

/// Runs `veil game`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(fig) = args.figure {
        if args.accuracy_fit.is_some() {
            anyhow::bail!(
                "--accuracy-fit applies to one scenario; the --figure sweeps use the paper's a = 0.2, b = 1"
            );
        }
        return run_figure(fig, &args);
    }
    let method: Method = args.method.parse()?;
    let scenario = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading game config {}", path.display()))?;
            Scenario::from_toml_str(&text, &path.display().to_string())?
        }
        None => Scenario::default(),
    };
    let scenario = match &args.accuracy_fit {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading accuracy fit {}", path.display()))?;
            scenario.with_accuracy_fit_toml(&text, &path.display().to_string())?
        }
        None => scenario,
    };
    let solution = solve(&scenario, method)?;
    if args.json {
        return crate::print_json(&GameOutput {
            solution: &solution,
            scenario: &scenario,
        });
    }
    crate::out(&format!(
        "{:?}: reward {:.4}, SP utility {:.4}, {} search rounds, followers {}",
        solution.method,
        solution.reward,
        solution.sp_utility,
        solution.iterations,
        if solution.interior {
            "interior (Theorem 3)"
        } else {
            "with clamped budgets"
        }
    ))?;
    if let Some(p) = solution.price {
        crate::out(&format!("posted price per unit of eps: {p:.4}"))?;
    }
    crate::out(&format!(
        "{:>4} {:>8} {:>8} {:>10} {:>10}",
        "i", "speed", "c_i", "eps_i", "U_i"
    ))?;
    for (i, v) in scenario.vehicles.iter().enumerate() {
        crate::out(&format!(
            "{:>4} {:>8.3} {:>8.3} {:>10.4} {:>10.4}",
            i, v.speed, v.privacy_value, solution.epsilons[i], solution.vehicle_utilities[i]
        ))?;
    }
    Ok(())
}

fn run_figure(fig: u8, args: &Args) -> anyhow::Result<()> {
    let rows = figure(fig, args.seed, args.fleets)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let csv = args.out.join(format!("fig{fig}.csv"));
    std::fs::write(&csv, to_csv(&rows)).with_context(|| format!("writing {}", csv.display()))?;
    let x_label = match fig {
        6 => "profit coefficient lambda",
        7 => "privacy value c (all vehicles)",
        8 => "number of vehicles",
        _ => "speed v (all vehicles), m/s",
    };
    let series = |value: fn(&SweepRow) -> f64| -> Vec<Series> {
        [Method::Centralized, Method::Distributed, Method::Linear]
            .into_iter()
            .map(|m| Series {
                name: format!("{m:?}").to_lowercase(),
                points: rows
                    .iter()
                    .filter(|r| r.method == m)
                    .map(|r| (r.x, value(r)))
                    .collect(),
                ..Default::default()
            })
            .collect()
    };
    let panels = [
        Panel {
            title: format!("Fig. {fig}: SP utility"),
            x_label: x_label.into(),
            y_label: "U_S".into(),
            series: series(|r| r.sp_utility),
        },
        Panel {
            title: format!("Fig. {fig}: mean vehicle utility"),
            x_label: x_label.into(),
            y_label: "mean U_i".into(),
            series: series(|r| r.mean_vehicle_utility),
        },
    ];
    let png = args.out.join(format!("fig{fig}.png"));
    line_charts(&png, &panels, 1200, 480)?;
    if args.json {
        return crate::print_json(&FigureOutput {
            figure: fig,
            fleets: args.fleets,
            csv,
            png,
            rows: &rows,
        });
    }
    crate::out(&format!(
        "figure {fig}: {} and {}",
        csv.display(),
        png.display()
    ))
}
