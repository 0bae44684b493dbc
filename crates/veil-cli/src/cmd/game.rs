//! `veil game`: the Stackelberg incentive game of co-inference (`veil-game`).
//!
//! `veil game [--config GAME.toml] [--method M] [--json]` solves one scenario (the documented
//! default without `--config`); `veil game --figure 6|7|8|9 [--out DIR]` regenerates a figure of
//! Spears and Shields as CSV and PNG.

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;
use veil_game::report::{figure_panels, read_scenario, solution_text};
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
    #[arg(long, value_enum, default_value_t = MethodArg::Centralized)]
    pub method: MethodArg,
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

/// `--method` of `veil game`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodArg {
    /// Exact 1-D maximisation with full information.
    #[value(alias = "centralised")]
    Centralized,
    /// Algorithm 3 from the vehicles' replies.
    Distributed,
    /// Posted linear price per unit of privacy budget.
    Linear,
}

impl From<MethodArg> for Method {
    fn from(arg: MethodArg) -> Self {
        match arg {
            MethodArg::Centralized => Method::Centralized,
            MethodArg::Distributed => Method::Distributed,
            MethodArg::Linear => Method::Linear,
        }
    }
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
    let scenario = read_scenario(args.config.as_deref(), args.accuracy_fit.as_deref())?;
    let solution = solve(&scenario, args.method.into())?;
    match crate::json() {
        true => crate::print_json(&GameOutput {
            solution: &solution,
            scenario: &scenario,
        }),
        false => crate::out(&solution_text(&solution, &scenario)),
    }
}

/// `veil game --figure N`: the sweep's CSV and chart.
fn run_figure(fig: u8, args: &Args) -> anyhow::Result<()> {
    let rows = figure(fig, args.seed, args.fleets)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let csv = args.out.join(format!("fig{fig}.csv"));
    std::fs::write(&csv, to_csv(&rows)).with_context(|| format!("writing {}", csv.display()))?;
    let (x_label, panels) = figure_panels(fig, &rows);
    let panels = panels.map(|(title, y_label, lines)| Panel {
        title,
        x_label: x_label.into(),
        y_label,
        series: lines
            .into_iter()
            .map(|(name, points)| Series::new(name, points))
            .collect(),
    });
    let png = args.out.join(format!("fig{fig}.png"));
    line_charts(&png, &panels, 1200, 480)?;
    if crate::json() {
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
