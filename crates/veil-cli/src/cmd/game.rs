//! `veil game`: the Stackelberg incentive game of co-inference (`veil-game`).
//!
//! `veil game [--config GAME.toml] [--method M] [--json]` solves one scenario (the documented
//! default without `--config`); `veil game --figure 6|7|8|9 [--out DIR]` regenerates a figure of
//! Spears and Shields as CSV and PNG.

use std::path::PathBuf;

use serde::Serialize;
use veil_game::report::{SolvedGame, figure_panels, read_scenario, solution_text};
use veil_game::sweep::{SweepRow, figure, to_csv};
use veil_game::{Method, solve};

/// Arguments of `veil game`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Scenario file (TOML: `vehicles = [{ speed, privacy_value }, ...]`, `unit_expense`,
    /// `profit_coefficient`, `eps_min`, `eps_max`, `accuracy_a`, `accuracy_b`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// How the service provider sets its reward: centralized, distributed or linear.
    #[arg(long, value_enum, ignore_case = true, default_value_t = Method::Centralized)]
    pub method: Method,
    /// Regenerate figure 6, 7, 8 or 9 (all three methods) instead of solving one scenario.
    #[arg(long, value_parser = clap::value_parser!(u8).range(6..=9))]
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
    let scenario = read_scenario(args.config.as_deref(), args.accuracy_fit.as_deref())?;
    let solution = solve(&scenario, args.method)?;
    let out = SolvedGame {
        solution: &solution,
        scenario: &scenario,
    };
    crate::report(&out, |o| solution_text(o.solution, o.scenario))
}

/// `veil game --figure N`: the sweep's CSV and chart.
fn run_figure(fig: u8, args: &Args) -> anyhow::Result<()> {
    let rows = figure(fig, args.seed, args.fleets)?;
    let (x_label, panels) = figure_panels(fig, &rows);
    let panels =
        panels.map(|(title, y, lines)| veil_plot::Panel::from_lines(title, x_label, y, lines));
    let name = format!("fig{fig}");
    let (csv, png) = crate::write_figure(&args.out, &name, &to_csv(&rows), &panels, (1200, 480))?;
    let out = FigureOutput {
        figure: fig,
        fleets: args.fleets,
        csv,
        png,
        rows: &rows,
    };
    crate::report(&out, |o| {
        format!("figure {fig}: {} and {}", o.csv.display(), o.png.display())
    })
}
