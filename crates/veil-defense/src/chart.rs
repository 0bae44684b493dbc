//! Shields side by side: the CSVs of several campaigns ([`crate::compare`] schema) on one
//! privacy-utility chart (attack SSIM against accuracy kept, with the spread over draws) and
//! the table of the lowest SSIM each defence leaves at equal accuracy
//! ([`crate::compare::ssim_at_accuracy`]). This is `veil defend chart`.
//!
//! Key items: [`compare_files`], [`Comparison`].

use std::path::{Path, PathBuf};

use serde::Serialize;
use veil_plot::{Panel, Series, line_charts};

use crate::DefenseError;
use crate::campaign::create_dir;
use crate::compare::{read_rows_csv, ssim_at_accuracy};
use crate::sweep::{SettingSummary, summarise};

/// One defence's curve.
#[derive(Clone, Debug, Serialize)]
pub struct Curve {
    /// Defence name (with the file's stem when two files hold the same defence).
    pub name: String,
    /// The CSV it came from.
    pub file: PathBuf,
    /// Mean and spread per setting.
    pub settings: Vec<SettingSummary>,
    /// Per accuracy level: the lowest attack SSIM the defence leaves while keeping it
    /// (`None`: no setting keeps it).
    pub ssim_at_accuracy: Vec<Option<f64>>,
}

/// The comparison and the files written.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// Accuracy levels of the table.
    pub accuracy_levels: Vec<f64>,
    /// One curve per defence.
    pub curves: Vec<Curve>,
    /// The chart (an SVG is beside it).
    pub png: PathBuf,
    /// The table as CSV.
    pub csv: PathBuf,
}

/// Reads `files`, draws the chart to `png` (titled `title`) and writes the equal-accuracy
/// table at `levels` beside it (`png` with extension `.csv`).
pub fn compare_files(
    files: &[PathBuf],
    levels: &[f64],
    title: &str,
    png: &Path,
) -> Result<Comparison, DefenseError> {
    if let Some(a) = levels
        .iter()
        .find(|a| !(a.is_finite() && (0.0..=1.0).contains(*a)))
    {
        return Err(DefenseError::Invalid(format!(
            "accuracy levels must lie in [0, 1], got {a}"
        )));
    }
    let curves = read_curves(files, levels)?;
    if let Some(dir) = png.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_dir(dir)?;
    }
    let series = curves
        .iter()
        .map(|c| {
            Series::with_spread(
                c.name.clone(),
                c.settings
                    .iter()
                    .map(|s| (s.accuracy, s.ssim_mean))
                    .collect(),
                c.settings.iter().map(|s| s.ssim_std).collect(),
            )
        })
        .collect();
    line_charts(
        png,
        &[Panel {
            title: title.to_string(),
            x_label: "test accuracy kept (higher is better)".into(),
            y_label: "attack SSIM (lower is better)".into(),
            series,
        }],
        1000,
        700,
    )?;
    let csv = png.with_extension("csv");
    std::fs::write(&csv, table_csv(&curves, levels)).map_err(|e| DefenseError::io(&csv, e))?;
    Ok(Comparison {
        accuracy_levels: levels.to_vec(),
        curves,
        png: png.to_path_buf(),
        csv,
    })
}

/// One curve per defence in each file; names made unique with the file stem.
fn read_curves(files: &[PathBuf], levels: &[f64]) -> Result<Vec<Curve>, DefenseError> {
    let mut curves: Vec<Curve> = Vec::new();
    for file in files {
        let rows = read_rows_csv(file)?;
        if rows.is_empty() {
            return Err(DefenseError::File {
                path: file.display().to_string(),
                message: "no rows".into(),
            });
        }
        let summary = summarise(&rows);
        let mut names: Vec<String> = Vec::new();
        for s in &summary {
            if !names.contains(&s.defence) {
                names.push(s.defence.clone());
            }
        }
        for name in names {
            let settings: Vec<SettingSummary> = summary
                .iter()
                .filter(|s| s.defence == name)
                .cloned()
                .collect();
            curves.push(Curve {
                ssim_at_accuracy: levels
                    .iter()
                    .map(|&a| ssim_at_accuracy(&settings, a))
                    .collect(),
                name,
                file: file.clone(),
                settings,
            });
        }
    }
    let unique: Vec<String> = curves
        .iter()
        .map(|c| {
            if curves.iter().filter(|d| d.name == c.name).count() > 1 {
                let stem = c
                    .file
                    .file_stem()
                    .map_or(String::new(), |s| s.to_string_lossy().into_owned());
                format!("{} ({stem})", c.name)
            } else {
                c.name.clone()
            }
        })
        .collect();
    for (c, n) in curves.iter_mut().zip(unique) {
        c.name = n;
    }
    Ok(curves)
}

/// The equal-accuracy table as CSV (empty cell: the defence never keeps that accuracy).
fn table_csv(curves: &[Curve], levels: &[f64]) -> String {
    let header: Vec<String> = levels
        .iter()
        .map(|a| format!("ssim_at_accuracy_{a}"))
        .collect();
    let mut text = format!("defence,{}\n", header.join(","));
    for c in curves {
        let cells: Vec<String> = c
            .ssim_at_accuracy
            .iter()
            .map(|v| v.map_or(String::new(), |v| format!("{v:.4}")))
            .collect();
        text.push_str(&format!(
            "{},{}\n",
            c.name.replace(',', ";"),
            cells.join(",")
        ));
    }
    text
}

impl Comparison {
    /// The table as Markdown ("-": the defence never keeps that accuracy), then the files.
    pub fn markdown(&self) -> String {
        let levels: Vec<String> = self
            .accuracy_levels
            .iter()
            .map(|a| format!("A = {a}"))
            .collect();
        let mut text = format!(
            "Lowest attack SSIM at accuracy >= A (- : the defence never keeps A)\n| defence | {} |\n|---|{}\n",
            levels.join(" | "),
            "---|".repeat(levels.len())
        );
        for c in &self.curves {
            let cells: Vec<String> = c
                .ssim_at_accuracy
                .iter()
                .map(|v| v.map_or("-".into(), |v| format!("{v:.3}")))
                .collect();
            text.push_str(&format!("| {} | {} |\n", c.name, cells.join(" | ")));
        }
        text.push_str(&format!(
            "{} and {}",
            self.png.display(),
            self.csv.display()
        ));
        text
    }
}
