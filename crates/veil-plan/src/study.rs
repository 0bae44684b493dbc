//! A simulation study as `veil simulate` runs it: which experiment (a Fig. 3 panel, an
//! experiment file or the default sweep) with its metric and axis ([`Study::prepare`]), one
//! line per configuration for the log ([`progress_line`]), and the placement-speed table of
//! `--scaling` ([`scaling_checked`], [`scaling_markdown`]).

use std::path::Path;

use crate::PlanError;
use crate::experiment::{Axis, Experiment, Metric, Row, ScalingRow, figure, scaling};

/// What to simulate.
#[derive(Clone, Debug, PartialEq)]
pub enum Study<'a> {
    /// A panel of the paper's Fig. 3 (`3a` ... `3f`).
    Figure(&'a str),
    /// An experiment file (TOML).
    File(&'a Path),
    /// The default sweep.
    Default,
}

/// A prepared study: a name for its files, the experiment, what to plot along what.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// `fig3a` ... or `simulation`.
    pub name: String,
    /// What is simulated.
    pub experiment: Experiment,
    /// The plotted metric.
    pub metric: Metric,
    /// The x axis.
    pub axis: Axis,
}

impl Study<'_> {
    /// The experiment, read or built.
    pub fn prepare(&self) -> Result<Prepared, PlanError> {
        let simulation = |experiment| Prepared {
            name: "simulation".into(),
            experiment,
            metric: Metric::Latency,
            axis: Axis::Devices,
        };
        match self {
            Study::Figure(f) => {
                let fig = figure(f)?;
                Ok(Prepared {
                    name: format!("fig{}", fig.name),
                    experiment: fig.experiment,
                    metric: fig.metric,
                    axis: fig.axis,
                })
            }
            Study::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| PlanError::Read {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
                let e = Experiment::from_toml_str(&text)
                    .map_err(|e| PlanError::config(path.display().to_string(), e.to_string()))?;
                Ok(simulation(e))
            }
            Study::Default => Ok(simulation(Experiment::default())),
        }
    }
}

/// One configuration's outcome in one line.
pub fn progress_line(r: &Row) -> String {
    format!(
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
    )
}

/// Largest fleet or request count `--scaling` accepts.
pub const MAX_SCALING: usize = 1_000_000;

/// [`scaling`] with its inputs checked: counts in `1..=MAX_SCALING`, tau an SSIM.
pub fn scaling_checked(
    model: &str,
    tau: f64,
    devices: &[usize],
    requests: &[usize],
) -> Result<Vec<ScalingRow>, PlanError> {
    if devices
        .iter()
        .chain(requests)
        .any(|&n| n == 0 || n > MAX_SCALING)
    {
        return Err(PlanError::config(
            "scaling",
            format!("--devices and --requests must be in 1..={MAX_SCALING}"),
        ));
    }
    if !(0.0..=1.0).contains(&tau) {
        return Err(PlanError::config(
            "scaling",
            format!("--tau must be an SSIM in [0, 1], got {tau}"),
        ));
    }
    scaling(model, tau, devices, requests, 0)
}

/// The scaling rows as a Markdown table.
pub fn scaling_markdown(rows: &[ScalingRow]) -> String {
    let mut text = String::from(
        "| model | helpers | requests | placed | rejected once | seconds | placements/s | segments/s |\n|---|---|---|---|---|---|---|---|",
    );
    for r in rows {
        text.push_str(&format!(
            "\n| {} | {} | {} | {} | {:.1} % | {:.3} | {:.0} | {:.0} |",
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
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn studies_prepare_and_scaling_inputs_are_checked() {
        let fig = Study::Figure("3a").prepare().expect("3a");
        assert_eq!(fig.name, "fig3a");
        assert_eq!(
            Study::Default.prepare().expect("default").name,
            "simulation"
        );
        assert!(
            Study::File(Path::new("/nonexistent/x.toml"))
                .prepare()
                .is_err()
        );
        assert!(scaling_checked("lenet5", 0.8, &[0], &[1]).is_err());
        assert!(scaling_checked("lenet5", 1.5, &[10], &[1]).is_err());
        let rows = scaling_checked("lenet5", 0.95, &[10], &[5]).expect("rows");
        let table = scaling_markdown(&rows);
        assert_eq!(table.lines().count(), 3, "{table}");
    }
}
