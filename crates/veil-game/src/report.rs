//! The game's results as people read them (`veil game`): one solution as a table of the
//! vehicles' budgets and utilities ([`solution_text`]), a scenario read with an optional
//! measured accuracy fit ([`read_scenario`]), and the lines of a figure sweep grouped per
//! method and panel ([`figure_panels`]).

use std::path::Path;

use crate::leader::{Method, Solution};
use crate::scenario::{GameError, Scenario};
use crate::sweep::SweepRow;

/// The scenario in `config` (the documented default without one), with the accuracy curve of
/// the fit file `accuracy_fit` (written by `veil defend dp`) when given.
pub fn read_scenario(
    config: Option<&Path>,
    accuracy_fit: Option<&Path>,
) -> Result<Scenario, GameError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| GameError::Config {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    };
    let scenario = match config {
        Some(path) => Scenario::from_toml_str(&read(path)?, &path.display().to_string())?,
        None => Scenario::default(),
    };
    match accuracy_fit {
        Some(path) => scenario.with_accuracy_fit_toml(&read(path)?, &path.display().to_string()),
        None => Ok(scenario),
    }
}

/// A solved game as `veil game --json` prints it: the solution's fields, then the scenario's.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct SolvedGame<'a> {
    /// The solution.
    #[serde(flatten)]
    pub solution: &'a Solution,
    /// The game it solves.
    #[serde(flatten)]
    pub scenario: &'a Scenario,
}

/// `solution` of `scenario` in words: the leader's outcome, then one row per vehicle.
pub fn solution_text(solution: &Solution, scenario: &Scenario) -> String {
    let mut text = format!(
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
    );
    if let Some(p) = solution.price {
        text.push_str(&format!("\nposted price per unit of eps: {p:.4}"));
    }
    text.push_str(&format!(
        "\n{:>4} {:>8} {:>8} {:>10} {:>10}",
        "i", "speed", "c_i", "eps_i", "U_i"
    ));
    for (i, v) in scenario.vehicles.iter().enumerate() {
        text.push_str(&format!(
            "\n{:>4} {:>8.3} {:>8.3} {:>10.4} {:>10.4}",
            i, v.speed, v.privacy_value, solution.epsilons[i], solution.vehicle_utilities[i]
        ));
    }
    text
}

/// One panel of a figure: title, y label and one line (name, points) per method.
pub type PanelLines = (String, String, Vec<(String, Vec<(f64, f64)>)>);

/// Figure `fig`'s x label and its two panels (SP utility, mean vehicle utility), each with
/// one line per method, from the sweep's `rows`.
pub fn figure_panels(fig: u8, rows: &[SweepRow]) -> (&'static str, [PanelLines; 2]) {
    let x_label = match fig {
        6 => "profit coefficient lambda",
        7 => "privacy value c (all vehicles)",
        8 => "number of vehicles",
        _ => "speed v (all vehicles), m/s",
    };
    let lines = |value: fn(&SweepRow) -> f64| -> Vec<(String, Vec<(f64, f64)>)> {
        [Method::Centralized, Method::Distributed, Method::Linear]
            .into_iter()
            .map(|m| {
                let points = rows
                    .iter()
                    .filter(|r| r.method == m)
                    .map(|r| (r.x, value(r)))
                    .collect();
                (format!("{m:?}").to_lowercase(), points)
            })
            .collect()
    };
    let panels = [
        (
            format!("Fig. {fig}: SP utility"),
            "U_S".to_string(),
            lines(|r| r.sp_utility),
        ),
        (
            format!("Fig. {fig}: mean vehicle utility"),
            "mean U_i".to_string(),
            lines(|r| r.mean_vehicle_utility),
        ),
    ];
    (x_label, panels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_solution_reads_as_a_table_and_figures_group_by_method() {
        let scenario = Scenario::default();
        let solution = crate::solve(&scenario, Method::Centralized).expect("solve");
        let text = solution_text(&solution, &scenario);
        assert_eq!(text.lines().count(), 2 + scenario.vehicles.len(), "{text}");
        let rows = crate::sweep::figure(8, 0, 1).expect("fig 8");
        let (x, panels) = figure_panels(8, &rows);
        assert_eq!(x, "number of vehicles");
        assert_eq!(panels[0].2.len(), 3);
        assert!(panels[0].2.iter().all(|(_, p)| !p.is_empty()));
        assert!(read_scenario(Some(Path::new("/nonexistent.toml")), None).is_err());
    }
}
