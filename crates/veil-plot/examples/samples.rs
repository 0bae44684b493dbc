//! Sample figures for eyeballing the chart style: `cargo run --release -p veil-plot --example
//! samples -- OUT_DIR` writes a few PNG+SVG pairs (spread as bands and as error bars, a count
//! axis, a crowded panel whose legend goes outside, a heat map) into OUT_DIR
//! (default /tmp/plot-samples).

use std::path::{Path, PathBuf};

use veil_plot::{Panel, Series, heat_map, line_charts};

/// `n` points of a noisy saturating curve, with a spread that shrinks as x grows.
fn curve(
    n: usize,
    scale: f64,
    rate: f64,
    x_of: impl Fn(usize) -> f64,
) -> (Vec<(f64, f64)>, Vec<f64>) {
    (0..n)
        .map(|i| {
            let x = x_of(i);
            let t = i as f64 / n.max(2) as f64;
            let y = scale * (1.0 - (-rate * t * 4.0).exp()) + 0.03 * (i as f64 * 1.7).sin();
            ((x, y), 0.04 + 0.06 * (1.0 - t))
        })
        .unzip()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("/tmp/plot-samples"), PathBuf::from);
    std::fs::create_dir_all(&out)?;

    // Three series with spread over many points: bands.
    let names = ["centralized", "distributed", "linear"];
    let series = |n: usize, x_of: &dyn Fn(usize) -> f64| -> Vec<Series> {
        names
            .iter()
            .enumerate()
            .map(|(k, name)| {
                let (pts, spread) = curve(n, 0.5 + 0.2 * k as f64, 1.0 + k as f64 * 0.6, x_of);
                Series::with_spread(*name, pts, spread)
            })
            .collect()
    };
    let bands = Panel {
        title: "Attack SSIM over training".into(),
        x_label: "epoch".into(),
        y_label: "SSIM".into(),
        series: series(40, &|i| i as f64 * 0.25),
    };
    line_charts(&out.join("bands.png"), &[bands], 640, 480)?;

    // A count axis (number of vehicles) with few points: error bars; two panels.
    let bars = Panel {
        title: "SP utility".into(),
        x_label: "number of vehicles".into(),
        y_label: "U_S".into(),
        series: series(6, &|i| (i as f64 + 1.0) * 2.0),
    };
    let plain = Panel {
        title: "Mean vehicle utility".into(),
        x_label: "number of vehicles".into(),
        y_label: "mean U_i".into(),
        series: series(6, &|i| (i as f64 + 1.0) * 2.0)
            .into_iter()
            .map(|s| {
                Series::new(
                    s.name,
                    s.points.iter().map(|&(x, y)| (x, 1.0 - y)).collect(),
                )
            })
            .collect(),
    };
    line_charts(&out.join("count-axis.png"), &[bars, plain], 1200, 480)?;

    crowded(&out)?;

    // Dense series (markers thinned) beside a one-series panel, as `veil defend` draws them.
    let dense = Panel {
        title: "Loss over steps".into(),
        x_label: "step".into(),
        y_label: "loss".into(),
        series: series(300, &|i| i as f64 * 10.0),
    };
    let single = Panel {
        title: "Accuracy kept (dp)".into(),
        x_label: "log10 eps".into(),
        y_label: "test accuracy".into(),
        series: vec![Series::new(
            "defended",
            (0..5)
                .map(|i| (i as f64 - 1.0, 0.6 + 0.08 * i as f64))
                .collect(),
        )],
    };
    line_charts(
        &out.join("dense-and-single.png"),
        &[dense, single],
        1200,
        500,
    )?;

    odd_scales_and_heat(&out)?;
    println!("wrote samples to {}", out.display());
    Ok(())
}

/// Eight crossing series filling the frame: the legend moves outside.
fn crowded(out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let crowded = Panel {
        title: "Accuracy kept vs attack SSIM".into(),
        x_label: "test accuracy kept (higher is better)".into(),
        y_label: "attack SSIM (lower is better)".into(),
        series: (0..8)
            .map(|k| {
                let pts = (0..12)
                    .map(|i| {
                        let x = 0.1 + 0.07 * i as f64;
                        (
                            x,
                            ((x * 9.0 + k as f64).sin() * 0.4 + 0.5) * (1.0 - 0.05 * k as f64),
                        )
                    })
                    .collect();
                Series::new(format!("defence {k}"), pts)
            })
            .collect(),
    };
    line_charts(&out.join("crowded.png"), &[crowded], 1000, 700)?;

    Ok(())
}

/// Huge and tiny values, a single-point series, a gap; and a heat map with a missing cell.
fn odd_scales_and_heat(out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    // Huge and tiny values, a single-point series, a gap.
    let odd = Panel {
        title: "Odd scales: huge x, tiny y, a gap in a line and a single-point series".into(),
        x_label: "samples".into(),
        y_label: "error".into(),
        series: vec![
            Series::new(
                "big",
                (0..8)
                    .map(|i| (i as f64 * 250_000.0, 2e-4 * (i as f64 + 1.0)))
                    .collect(),
            ),
            Series::new(
                "with gap",
                vec![(0.0, 1e-4), (5e5, f64::NAN), (1e6, 9e-4), (1.5e6, 1.2e-3)],
            ),
            Series::new("one point", vec![(1e6, 5e-4)]),
        ],
    };
    line_charts(&out.join("odd-scales.png"), &[odd], 640, 480)?;

    let rows: Vec<String> = ["conv1", "relu1", "pool1", "conv2", "relu2", "fc1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let cols: Vec<String> = [1, 2, 4, 8, 16].iter().map(|k| k.to_string()).collect();
    let cells: Vec<Vec<Option<f64>>> = (0..rows.len())
        .map(|r| {
            (0..cols.len())
                .map(|c| {
                    (r != 2 || c != 3)
                        .then(|| (0.95 - 0.13 * r as f64 + 0.02 * c as f64).clamp(0.0, 1.0))
                })
                .collect()
        })
        .collect();
    heat_map(
        &out.join("heat.png"),
        "SSIM of the inversion attack: lenet / mnist",
        &rows,
        &cols,
        &cells,
    )?;
    Ok(())
}
