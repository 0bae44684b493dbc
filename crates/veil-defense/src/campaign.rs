//! A shield's campaign: every setting of one shield, each judged over several draws by the
//! accuracy it keeps and the attack it leaves ([`crate::sweep::Judge`]), written as one
//! run's files. This is what `veil defend dp|noise|dropout|split` runs.
//!
//! Files in the output directory, named `<model>-<layer>-<shield>` (`layers` instead of the
//! layer for `split`): the rows in the shared CSV schema (`.csv`, [`crate::compare`]), the
//! accuracy and SSIM per setting as a chart (`.png` and `.svg`), one reconstruction grid per
//! setting (draw 0) and, for `dp`, the accuracy-fit file the incentive game reads
//! (`-fit.toml`, [`veil_game::AccuracyFit`]).
//!
//! Key items: [`Shield`], [`Campaign`], [`run`], [`CampaignReport`].

use std::path::{Path, PathBuf};

use serde::Serialize;
use veil_attack::AttackConfig;
use veil_data::Split;
use veil_model::Model;
use veil_plot::{Panel, Series, line_charts};

use crate::DefenseError;
use crate::compare::write_rows_csv;
use crate::features::FeatureShield;
use crate::fit::{CurveFit, fit_log_curve};
use crate::sweep::{Judge, Row, SettingSummary, summarise};

/// Who attacks a perturbed device part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Attacker {
    /// Queries the perturbed device and trains on what it really sends (the stronger one).
    Deployed,
    /// Trained its decoder once on the plain device and applies it to the perturbed device's
    /// features (the setting of Spears and Shields).
    Stale,
}

/// Additive noise on the transmitted features.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum NoiseKind {
    /// Gaussian noise, scale = sigma.
    Gaussian,
    /// Laplace noise, scale = b.
    Laplace,
}

/// One shield and the settings it is swept over.
#[derive(Clone, Debug, PartialEq)]
pub enum Shield {
    /// Model perturbation (clip to `clip`, Laplace(2G/eps) on the device part) per budget.
    Dp {
        /// Privacy budgets (each > 0).
        eps: Vec<f64>,
        /// Clip bound G (default: the device part's largest |parameter|).
        clip: Option<f64>,
        /// Who attacks.
        attacker: Attacker,
    },
    /// Noise on the transmitted features, per scale.
    Noise {
        /// Gaussian or Laplace.
        kind: NoiseKind,
        /// Noise scales.
        scales: Vec<f64>,
    },
    /// Dropout on the transmitted features, per drop probability.
    Dropout {
        /// Drop probabilities.
        rates: Vec<f64>,
    },
    /// No shield, the split moved to each of these layers.
    Split {
        /// Split layers.
        layers: Vec<String>,
    },
}

/// One setting of a sweep.
#[derive(Clone, Debug)]
pub enum Setting {
    /// A privacy budget and an optional clip bound.
    Dp(f64, Option<f64>),
    /// A shield on the transmitted features.
    Feature(FeatureShield),
    /// No shield, the split after this layer.
    Split(String),
}

impl Shield {
    /// The shield's name in file names, rows and charts.
    pub fn name(&self) -> &'static str {
        match self {
            Shield::Dp {
                attacker: Attacker::Stale,
                ..
            } => "dp-stale",
            Shield::Dp { .. } => "dp",
            Shield::Noise {
                kind: NoiseKind::Gaussian,
                ..
            } => "gaussian",
            Shield::Noise {
                kind: NoiseKind::Laplace,
                ..
            } => "laplace",
            Shield::Dropout { .. } => "dropout",
            Shield::Split { .. } => "split",
        }
    }

    /// The settings, checked: budgets positive and finite, feature shields in their domain.
    fn settings(&self) -> Result<Vec<Setting>, DefenseError> {
        let settings: Vec<Setting> = match self {
            Shield::Dp { eps, clip, .. } => {
                if let Some(e) = eps.iter().find(|e| !(e.is_finite() && **e > 0.0)) {
                    return Err(DefenseError::Invalid(format!(
                        "eps values must be positive, got {e}"
                    )));
                }
                eps.iter().map(|&e| Setting::Dp(e, *clip)).collect()
            }
            Shield::Noise { kind, scales } => scales
                .iter()
                .map(|&s| {
                    Setting::Feature(match kind {
                        NoiseKind::Gaussian => FeatureShield::Gaussian { sigma: s },
                        NoiseKind::Laplace => FeatureShield::Laplace { scale: s },
                    })
                })
                .collect(),
            Shield::Dropout { rates } => rates
                .iter()
                .map(|&p| Setting::Feature(FeatureShield::Dropout { p }))
                .collect(),
            Shield::Split { layers } => layers.iter().cloned().map(Setting::Split).collect(),
        };
        for s in &settings {
            if let Setting::Feature(f) = s {
                f.check()?;
            }
        }
        if settings.is_empty() {
            return Err(DefenseError::Invalid("no settings to sweep".into()));
        }
        Ok(settings)
    }
}

/// A campaign: the shield, where the device splits, and how hard the attacker tries.
#[derive(Clone, Debug)]
pub struct Campaign {
    /// The shield and its settings.
    pub shield: Shield,
    /// Split layer: the device sends its output (ignored by [`Shield::Split`]).
    pub layer: String,
    /// Noise draws (or decoder seeds for `split`) per setting, at least 1.
    pub draws: usize,
    /// The attack (`layer` and `maps` are set per setting).
    pub attack: AttackConfig,
    /// Output directory.
    pub out: PathBuf,
}

impl Campaign {
    /// Checks what needs no model (budgets, scales, rates, draws): cheap, so callers check
    /// before loading or training anything. [`run`] checks again.
    pub fn check(&self) -> Result<Vec<Setting>, DefenseError> {
        let settings = self.shield.settings()?;
        if self.draws == 0 {
            return Err(DefenseError::Invalid("--draws must be at least 1".into()));
        }
        // Checked here, before a model is loaded or trained: nothing to score without victims.
        if self.attack.victims == 0 {
            return Err(DefenseError::Invalid("--victims must be at least 1".into()));
        }
        Ok(settings)
    }
}

/// What a campaign measured and wrote.
#[derive(Clone, Debug, Serialize)]
pub struct CampaignReport {
    /// Model name.
    pub model: String,
    /// Dataset name.
    pub dataset: String,
    /// Split layer (`layers` for a split sweep).
    pub layer: String,
    /// The shield's name.
    pub shield: String,
    /// Test accuracy of the undefended model.
    pub accuracy_plain: f64,
    /// Mean and spread per setting.
    pub settings: Vec<SettingSummary>,
    /// Every setting and draw.
    pub rows: Vec<Row>,
    /// `A = a ln(b eps + 1)` fitted to the mean accuracies (dp with two budgets or more).
    pub fit: Option<CurveFit>,
    /// The fit as a file `veil game --accuracy-fit` reads.
    pub fit_file: Option<PathBuf>,
    /// The rows in the shared schema.
    pub csv: PathBuf,
    /// Accuracy and SSIM per setting (an SVG is beside it).
    pub png: PathBuf,
    /// Reconstructions (draw 0) per setting: originals above, reconstructions below.
    pub grids: Vec<PathBuf>,
}

/// Progress of a campaign, for a bar.
#[derive(Debug)]
pub enum Progress<'a> {
    /// A phase that takes a while (e.g. training the stale attacker's decoder).
    Phase(&'a str),
    /// One setting and draw measured: `done` of `total`.
    Measured {
        /// Rows measured so far.
        done: usize,
        /// Rows in all.
        total: usize,
        /// The latest row.
        row: &'a Row,
    },
}

/// Runs `campaign` against `model` (trained, undefended) on `data` (auxiliary images from
/// its training split, victims and accuracy from its test split) and writes its files.
pub fn run(
    model: &Model,
    dataset: &str,
    data: &Split,
    campaign: &Campaign,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<CampaignReport, DefenseError> {
    let settings = campaign.check()?;
    model.spec().split_index(&campaign.layer)?;
    for s in &settings {
        if let Setting::Split(layer) = s {
            model.spec().split_index(layer)?;
        }
    }
    let name = campaign.shield.name();
    let layer_tag = match campaign.shield {
        Shield::Split { .. } => "layers".to_string(),
        _ => campaign.layer.clone(),
    };
    let stem = format!("{}-{layer_tag}-{name}", model.spec().name);
    create_dir(&campaign.out)?;
    let accuracy_plain = model.evaluate(&data.test)?;
    let (rows, grids) = measure(
        model,
        data,
        campaign,
        &settings,
        accuracy_plain,
        &stem,
        progress,
    )?;
    let summary = summarise(&rows);
    let fit = match campaign.shield {
        Shield::Dp { .. } if summary.len() >= 2 => {
            let points: Vec<(f64, f64)> = summary.iter().map(|s| (s.param, s.accuracy)).collect();
            fit_log_curve(&points).ok()
        }
        _ => None,
    };
    let fit_file = match &fit {
        Some(f) => {
            let source = format!("{} {dataset} {}", model.spec().name, campaign.layer);
            Some(write_fit_file(
                &campaign.out,
                &stem,
                f,
                &source,
                campaign.draws,
                &summary,
            )?)
        }
        None => None,
    };
    let csv = campaign.out.join(format!("{stem}.csv"));
    write_rows_csv(&csv, &rows)?;
    let png = campaign.out.join(format!("{stem}.png"));
    draw(&png, name, &summary)?;
    Ok(CampaignReport {
        model: model.spec().name.clone(),
        dataset: dataset.to_string(),
        layer: layer_tag,
        shield: name.to_string(),
        accuracy_plain,
        settings: summary,
        rows,
        fit,
        fit_file,
        csv,
        png,
        grids,
    })
}

/// Judges every setting and draw; saves a grid of draw 0 of each setting.
fn measure(
    model: &Model,
    data: &Split,
    campaign: &Campaign,
    settings: &[Setting],
    accuracy_plain: f64,
    stem: &str,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(Vec<Row>, Vec<PathBuf>), DefenseError> {
    let mut judge = Judge {
        model,
        data,
        split: campaign.layer.clone(),
        attack: campaign.attack.clone(),
    };
    let stale_decoder = match campaign.shield {
        Shield::Dp {
            attacker: Attacker::Stale,
            ..
        } => {
            progress(Progress::Phase(
                "training the stale attacker's decoder on the plain device",
            ));
            Some(judge.stale_decoder()?)
        }
        _ => None,
    };
    let total = settings.len() * campaign.draws;
    let (mut rows, mut grids) = (Vec::with_capacity(total), Vec::new());
    for setting in settings {
        for draw in 0..campaign.draws {
            let mut row = match setting {
                Setting::Dp(eps, clip) => match &stale_decoder {
                    Some(d) => judge.perturbation_stale(*eps, *clip, draw, d)?,
                    None => judge.perturbation(*eps, *clip, draw)?,
                },
                Setting::Feature(f) => judge.feature_shield(*f, draw)?,
                Setting::Split(layer) => {
                    judge.split = layer.clone();
                    judge.undefended(accuracy_plain, draw)?
                }
            };
            if draw == 0 {
                let grid = campaign
                    .out
                    .join(format!("{stem}-{}.png", file_safe(&row.label)));
                veil_attack::grid::save_victim_grid(&grid, &data.test, &row.examples)?;
                grids.push(grid);
            }
            row.examples = Vec::new();
            rows.push(row);
            let done = rows.len();
            if let Some(row) = rows.last() {
                progress(Progress::Measured { done, total, row });
            }
        }
    }
    Ok((rows, grids))
}

/// Writes the accuracy-fit file `<stem>-fit.toml` in `dir`.
fn write_fit_file(
    dir: &Path,
    stem: &str,
    f: &CurveFit,
    source: &str,
    draws: usize,
    summary: &[SettingSummary],
) -> Result<PathBuf, DefenseError> {
    let path = dir.join(format!("{stem}-fit.toml"));
    let budgets: Vec<f64> = summary.iter().map(|s| s.param).collect();
    let fit = veil_game::AccuracyFit {
        accuracy_a: f.a,
        accuracy_b: f.b,
        r2: Some(f.r2),
        source: Some(format!("{source} eps {budgets:?}")),
    };
    let text = fit.to_toml(&format!(
        "Accuracy curve A = a ln(b eps + 1) fitted by least squares to the mean accuracy\n\
         per eps of `veil defend dp` ({source}, {draws} draws per eps).\n\
         Read by `veil game --accuracy-fit {}`.",
        path.display()
    ))?;
    std::fs::write(&path, text).map_err(|e| DefenseError::io(&path, e))?;
    Ok(path)
}

/// The chart axis of a shield named `name`: what a setting's parameter becomes, and its label.
fn axis_of(name: &str) -> (fn(f64) -> f64, &'static str) {
    match name {
        "dp" | "dp-stale" => (f64::log10, "log10 eps"),
        "split" => (|x| x, "split layer index"),
        _ => (|x| x, "parameter"),
    }
}

/// Draws a campaign's chart again from its CSV (`veil defend chart --settings`): for a new
/// chart style without re-running the attacks. The shield is the rows' `defence`.
pub fn redraw(csv: &Path, png: &Path) -> Result<Vec<SettingSummary>, DefenseError> {
    let rows = crate::compare::read_rows_csv(csv)?;
    let summary = summarise(&rows);
    let Some(name) = summary.first().map(|s| s.defence.clone()) else {
        return Err(DefenseError::File {
            path: csv.display().to_string(),
            message: "no rows".into(),
        });
    };
    if summary.iter().any(|s| s.defence != name) {
        return Err(DefenseError::File {
            path: csv.display().to_string(),
            message: "rows of several shields: one campaign's CSV is needed".into(),
        });
    }
    if let Some(dir) = png.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_dir(dir)?;
    }
    draw(png, &name, &summary)?;
    Ok(summary)
}

/// The campaign's chart: accuracy kept and attack SSIM left per setting, with the spread over
/// draws.
fn draw(png: &Path, name: &str, summary: &[SettingSummary]) -> Result<(), DefenseError> {
    let (x, x_label) = axis_of(name);
    let panel = |title: String, y_label: &str, series: Series| Panel {
        title,
        x_label: x_label.into(),
        y_label: y_label.into(),
        series: vec![series],
    };
    let accuracy = Series::with_spread(
        "defended",
        summary.iter().map(|s| (x(s.param), s.accuracy)).collect(),
        summary.iter().map(|s| s.accuracy_std).collect(),
    );
    let ssim = Series::with_spread(
        "attack",
        summary.iter().map(|s| (x(s.param), s.ssim_mean)).collect(),
        summary.iter().map(|s| s.ssim_std).collect(),
    );
    line_charts(
        png,
        &[
            panel(format!("Accuracy kept ({name})"), "test accuracy", accuracy),
            panel(format!("Attack SSIM left ({name})"), "SSIM", ssim),
        ],
        1200,
        500,
    )?;
    Ok(())
}

/// Creates `dir` and its parents.
pub(crate) fn create_dir(dir: &Path) -> Result<(), DefenseError> {
    std::fs::create_dir_all(dir).map_err(|e| DefenseError::io(dir, e))
}

/// `label` with everything but letters, digits, `.`, `-` and `_` replaced by `_`.
fn file_safe(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl CampaignReport {
    /// The report as Markdown: one table row per setting, the fit, and the files.
    pub fn markdown(&self) -> String {
        let place = match self.shield.as_str() {
            "split" => "no shield, deeper splits".to_string(),
            _ => format!("split after {}", self.layer),
        };
        let mut text = format!(
            "{} / {} {place}: plain accuracy {:.4}\n| {} | accuracy | SSIM | PSNR |\n|---|---|---|---|\n",
            self.model, self.dataset, self.accuracy_plain, self.shield
        );
        for s in &self.settings {
            text.push_str(&format!(
                "| {} | {:.4} +- {:.4} | {:.4} +- {:.4} | {:.2} |\n",
                s.label, s.accuracy, s.accuracy_std, s.ssim_mean, s.ssim_std, s.psnr_mean
            ));
        }
        if let (Some(f), Some(file)) = (&self.fit, &self.fit_file) {
            text.push_str(&format!(
                "fit A = {:.4} ln({:.4} eps + 1), R^2 {:.4} -> {} (veil game --accuracy-fit)\n",
                f.a,
                f.b,
                f.r2,
                file.display()
            ));
        }
        text.push_str(&format!(
            "{}, {} and {} reconstruction grids",
            self.csv.display(),
            self.png.display(),
            self.grids.len(),
        ));
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shields_name_their_files_and_check_their_settings() {
        let dp = |attacker| Shield::Dp {
            eps: vec![1.0, 10.0],
            clip: None,
            attacker,
        };
        assert_eq!(dp(Attacker::Deployed).name(), "dp");
        assert_eq!(dp(Attacker::Stale).name(), "dp-stale");
        let bad = Shield::Dp {
            eps: vec![1.0, 0.0],
            clip: None,
            attacker: Attacker::Deployed,
        };
        assert!(bad.settings().is_err());
        let nan = Shield::Noise {
            kind: NoiseKind::Laplace,
            scales: vec![f64::NAN],
        };
        assert!(nan.settings().is_err());
        let drop = Shield::Dropout {
            rates: vec![0.1, 1.5],
        };
        assert!(drop.settings().is_err());
        assert!(Shield::Split { layers: vec![] }.settings().is_err());
        let campaign = |victims| Campaign {
            shield: dp(Attacker::Deployed),
            layer: "conv1".into(),
            draws: 1,
            attack: AttackConfig::with_budget(10, victims, 1),
            out: PathBuf::from("unused"),
        };
        assert!(campaign(1).check().is_ok());
        let none = campaign(0).check().expect_err("no victims");
        assert!(none.to_string().contains("--victims"), "{none}");
        assert_eq!(file_safe("eps=5, clip/2"), "eps_5__clip_2");
    }

    fn row(defence: &str, param: f64, draw: usize, accuracy: f64, ssim: f64) -> Row {
        Row {
            defence: defence.into(),
            param,
            label: format!("eps={param}"),
            draw,
            accuracy,
            ssim_mean: ssim,
            psnr_mean: 20.0,
            mse_mean: 0.01,
            examples: Vec::new(),
        }
    }

    #[test]
    fn a_run_is_redrawn_from_its_csv_with_its_spread() {
        let dir = tempfile::tempdir().expect("tmp");
        let csv = dir.path().join("run.csv");
        let rows = [
            row("dp", 1.0, 0, 0.10, 0.20),
            row("dp", 1.0, 1, 0.20, 0.30),
            row("dp", 10.0, 0, 0.90, 0.60),
            row("dp", 10.0, 1, 0.80, 0.70),
        ];
        write_rows_csv(&csv, &rows).expect("csv");
        let png = dir.path().join("out/run.png");
        let summary = redraw(&csv, &png).expect("redraw");
        assert_eq!(summary.len(), 2);
        assert!((summary[0].accuracy_std - 0.05).abs() < 1e-9, "{summary:?}");
        assert!(png.is_file() && png.with_extension("svg").is_file());
        let mixed = dir.path().join("mixed.csv");
        write_rows_csv(
            &mixed,
            &[
                row("dp", 1.0, 0, 0.1, 0.2),
                row("dropout", 0.5, 0, 0.9, 0.8),
            ],
        )
        .expect("csv");
        assert!(redraw(&mixed, &png).is_err());
    }
}
