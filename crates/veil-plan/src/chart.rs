//! The data of a fleet-simulation chart (DistPrivacy Fig. 3 and `veil simulate` sweeps): one
//! line per (tau, strategy) along the experiment's axis, with titles and axis labels. Drawing
//! is the caller's (veil-plot); this crate stays free of graphics.

use crate::experiment::{Axis, Experiment, Metric, Row, strategy as strategy_named};

/// A chart's lines and labels.
#[derive(Clone, Debug, PartialEq)]
pub struct LineChart {
    /// Title.
    pub title: String,
    /// Horizontal axis label (for categorical axes, the categories in order).
    pub x_label: String,
    /// Vertical axis label.
    pub y_label: String,
    /// `(legend label, points sorted by x)` per line.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

/// Groups `rows` of experiment `e` into one line per (tau, strategy), `metric` against `axis`
/// (categorical axes are numbered from 1 in the experiment's order).
pub fn lines(rows: &[Row], metric: Metric, axis: Axis, e: &Experiment) -> LineChart {
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
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for tau in &e.taus {
        for strategy in &e.strategies {
            let mut points: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| {
                    r.result.tau == *tau
                        && r.result.strategy
                            == strategy_named(strategy).map(|s| s.name()).unwrap_or("")
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
            series.push((name, points));
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
    LineChart {
        title: title.to_string(),
        x_label,
        y_label: y_label.to_string(),
        series,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sorted_line_per_tau_and_strategy() {
        let e = Experiment {
            requests: 20,
            devices: vec![12, 6],
            taus: vec![0.6, 0.8],
            strategies: vec!["distprivacy".into(), "no-privacy".into()],
            ..Experiment::default()
        };
        let rows = e.run(&mut |_| {}).expect("simulation");
        let chart = lines(&rows, Metric::Latency, Axis::Devices, &e);
        assert_eq!(chart.series.len(), 4);
        assert_eq!(chart.series[0].0, "SSIM 0.6 distprivacy");
        for (_, points) in &chart.series {
            let xs: Vec<f64> = points.iter().map(|p| p.0).collect();
            assert_eq!(xs, vec![6.0, 12.0], "every device count, sorted");
        }
        assert_eq!(chart.x_label, "helpers");
    }
}
