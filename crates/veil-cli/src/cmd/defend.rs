//! `veil defend`: shields judged by the accuracy they keep and by the attack they leave
//! (`veil-defense`). `obfnet` trains ObfNets in front of the frozen classifier; `dp` perturbs
//! the device-side parameters per privacy budget and fits `A = a ln(b eps + 1)` (written as a
//! fit file `veil game --accuracy-fit` reads); `noise` and `dropout` act on the transmitted
//! features; `split` moves the split deeper without any shield; `chart` puts the CSVs of
//! several runs on one privacy-utility chart and tabulates the attack SSIM each defence
//! leaves at equal accuracy.

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;
use veil_attack::AttackConfig;
use veil_defense::compare::{read_rows_csv, ssim_at_accuracy, write_rows_csv};
use veil_defense::features::FeatureShield;
use veil_defense::fit::{CurveFit, fit_log_curve};
use veil_defense::sweep::{Judge, Row, SettingSummary, summarise};
use veil_model::TrainConfig;
use veil_plot::{Panel, Series, line_charts};

/// Arguments of `veil defend`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which shield.
    #[command(subcommand)]
    pub shield: Shield,
}

/// The shields.
#[derive(Debug, clap::Subcommand)]
pub enum Shield {
    /// ObfNets trained in front of the frozen classifier, one picked at random per sample.
    Obfnet {
        /// The classifier and its data.
        #[command(flatten)]
        target: super::attack::TargetArgs,
        /// ObfNet variant: 1 (784-784) or 2 (784-1000-784).
        #[arg(long, default_value_t = 2)]
        variant: u8,
        /// ObfNets trained (different seeds).
        #[arg(long, default_value_t = 3)]
        count: usize,
        /// Training epochs per ObfNet.
        #[arg(long, default_value_t = 2)]
        obf_epochs: usize,
        /// Auxiliary images of the attack.
        #[arg(long, default_value_t = 10_000)]
        aux: usize,
        /// Victims of the attack.
        #[arg(long, default_value_t = 1_000)]
        victims: usize,
        /// Decoder epochs of the attack.
        #[arg(long, default_value_t = 5)]
        epochs: usize,
        /// Output directory (JSON, CSV, image grid).
        #[arg(long, default_value = "runs/defend")]
        out: PathBuf,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Model perturbation: clip the device part to G, add Laplace(2G/eps) to its parameters.
    Dp {
        /// Common options.
        #[command(flatten)]
        common: Common,
        /// Comma-separated privacy budgets.
        #[arg(long, value_delimiter = ',', default_value = "1,5,10,50,100,500")]
        eps: Vec<f64>,
        /// Clip bound G (default: the device part's largest absolute parameter, so no scaling).
        #[arg(long)]
        clip: Option<f64>,
        /// `deployed`: the attacker queries the perturbed device and trains on that (the
        /// stronger attack); `stale`: it trained once on the plain device and applies that
        /// decoder to the perturbed device's features (the setting of Spears and Shields).
        #[arg(long, default_value = "deployed")]
        attacker: String,
    },
    /// Additive noise on the transmitted features.
    Noise {
        /// Common options.
        #[command(flatten)]
        common: Common,
        /// gaussian (scale = sigma) or laplace (scale = b).
        #[arg(long, default_value = "gaussian")]
        kind: String,
        /// Comma-separated noise scales.
        #[arg(long, value_delimiter = ',', default_value = "0.1,0.5,1,2")]
        scales: Vec<f64>,
    },
    /// Dropout on the transmitted features (survivors scaled by 1 / (1 - p)).
    Dropout {
        /// Common options.
        #[command(flatten)]
        common: Common,
        /// Comma-separated drop probabilities.
        #[arg(long, value_delimiter = ',', default_value = "0.1,0.3,0.5,0.7,0.9")]
        rates: Vec<f64>,
    },
    /// No shield, a deeper split: the attack at each layer of `--layers` (which replaces
    /// `--layer`), accuracy unchanged.
    Split {
        /// Common options (`--draws` reseeds the decoder).
        #[command(flatten)]
        common: Common,
        /// Comma-separated split layers.
        #[arg(long, value_delimiter = ',', required = true)]
        layers: Vec<String>,
    },
    /// One privacy-utility chart (attack SSIM against accuracy) from the CSVs of several
    /// `veil defend` runs, and the SSIM each defence leaves at equal accuracy.
    Chart {
        /// Comma-separated CSV files written by `veil defend` runs.
        #[arg(long, value_delimiter = ',', required = true)]
        csv: Vec<PathBuf>,
        /// Comma-separated accuracy levels of the equal-accuracy table.
        #[arg(long, value_delimiter = ',', default_value = "0.99,0.98,0.97,0.95,0.9")]
        accuracy: Vec<f64>,
        /// Chart title.
        #[arg(long, default_value = "Attack SSIM left at each accuracy kept")]
        title: String,
        /// Output PNG (a CSV of the table is written beside it).
        #[arg(long, default_value = "runs/defend/compare.png")]
        png: PathBuf,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// Options every shield takes.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// The defended model and its data.
    #[command(flatten)]
    pub target: super::attack::TargetArgs,
    /// Split layer: the device sends its output.
    #[arg(long, default_value = "pool1")]
    pub layer: String,
    /// Noise draws per setting.
    #[arg(long, default_value_t = 3)]
    pub draws: usize,
    /// Auxiliary images of the attack.
    #[arg(long, default_value_t = 5_000)]
    pub aux: usize,
    /// Victims of the attack.
    #[arg(long, default_value_t = 1_000)]
    pub victims: usize,
    /// Decoder epochs of the attack.
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Output directory (CSV, PNG).
    #[arg(long, default_value = "runs/defend")]
    pub out: PathBuf,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Output {
    model: String,
    dataset: String,
    layer: String,
    accuracy_plain: f64,
    settings: Vec<SettingSummary>,
    rows: Vec<Row>,
    /// `A = a ln(b eps + 1)` fitted to the mean accuracies (dp only).
    fit: Option<CurveFit>,
    /// The fit as a file `veil game --accuracy-fit` reads (dp only).
    fit_file: Option<PathBuf>,
    csv: PathBuf,
    /// Accuracy and SSIM per setting.
    png: PathBuf,
    /// Reconstructions (draw 0) per setting: originals above, reconstructions below.
    grids: Vec<PathBuf>,
}

/// Runs `veil defend`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (common, settings): (&Common, Vec<Setting>) = match &args.shield {
        Shield::Obfnet {
            target,
            variant,
            count,
            obf_epochs,
            aux,
            victims,
            epochs,
            out,
            json,
        } => {
            return obfnet(
                target,
                *variant,
                *count,
                *obf_epochs,
                (*aux, *victims, *epochs),
                out,
                *json,
            );
        }
        Shield::Dp {
            common,
            eps,
            clip,
            attacker,
        } => {
            if let Some(e) = eps.iter().find(|e| !(e.is_finite() && **e > 0.0)) {
                anyhow::bail!("--eps values must be positive, got {e}");
            }
            if !matches!(attacker.as_str(), "deployed" | "stale") {
                anyhow::bail!("--attacker must be deployed or stale, got `{attacker}`");
            }
            (common, eps.iter().map(|&e| Setting::Dp(e, *clip)).collect())
        }
        Shield::Noise {
            common,
            kind,
            scales,
        } => {
            let make = match kind.as_str() {
                "gaussian" => |s| FeatureShield::Gaussian { sigma: s },
                "laplace" => |s| FeatureShield::Laplace { scale: s },
                other => anyhow::bail!("unknown --kind `{other}` (gaussian or laplace)"),
            };
            (
                common,
                scales.iter().map(|&s| Setting::Feature(make(s))).collect(),
            )
        }
        Shield::Dropout { common, rates } => (
            common,
            rates
                .iter()
                .map(|&p| Setting::Feature(FeatureShield::Dropout { p }))
                .collect(),
        ),
        Shield::Split { common, layers } => {
            (common, layers.iter().cloned().map(Setting::Split).collect())
        }
        Shield::Chart {
            csv,
            accuracy,
            title,
            png,
            json,
        } => return chart(csv, accuracy, title, png, *json),
    };
    for s in &settings {
        if let Setting::Feature(f) = s {
            f.check()?;
        }
    }
    if common.draws == 0 {
        anyhow::bail!("--draws must be at least 1");
    }
    let (id, split, model) = common.target.load()?;
    model.spec().layer_index(&common.layer)?;
    for s in &settings {
        if let Setting::Split(layer) = s {
            model.spec().layer_index(layer)?;
        }
    }
    let accuracy_plain = model.evaluate(&split.test)?;
    let mut judge = Judge {
        model: &model,
        data: &split,
        split: common.layer.clone(),
        attack: AttackConfig {
            aux_samples: common.aux,
            victims: common.victims,
            train: TrainConfig {
                epochs: common.epochs,
                ..AttackConfig::default().train
            },
            ..AttackConfig::default()
        },
    };
    let total = settings.len() * common.draws;
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "defend [{elapsed_precise}] {bar:30} {pos}/{len} (eta {eta}) {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(500));
    let mut rows = Vec::with_capacity(total);
    let mut grids = Vec::new();
    let stale = matches!(&args.shield, Shield::Dp { attacker, .. } if attacker == "stale");
    let stale_decoder = if stale {
        bar.set_message("training the stale attacker's decoder on the plain device");
        Some(judge.stale_decoder()?)
    } else {
        None
    };
    let name = match &args.shield {
        Shield::Dp { .. } if stale => "dp-stale".to_string(),
        Shield::Dp { .. } => "dp".to_string(),
        Shield::Noise { kind, .. } => kind.clone(),
        Shield::Dropout { .. } => "dropout".into(),
        _ => "split".into(),
    };
    let layer_tag = match &args.shield {
        Shield::Split { .. } => "layers".to_string(),
        _ => common.layer.clone(),
    };
    let stem = format!("{}-{}-{}", model.spec().name, layer_tag, name);
    std::fs::create_dir_all(&common.out)
        .with_context(|| format!("creating {}", common.out.display()))?;
    for setting in &settings {
        for draw in 0..common.draws {
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
                let grid = common
                    .out
                    .join(format!("{stem}-{}.png", file_safe(&row.label)));
                let originals: Vec<&[f32]> = (0..row.examples.len())
                    .map(|i| split.test.sample(i))
                    .collect();
                let recon: Vec<&[f32]> = row.examples.iter().map(Vec::as_slice).collect();
                veil_attack::grid::save_grid(&grid, split.test.shape, &originals, &recon)?;
                grids.push(grid);
            }
            row.examples = Vec::new();
            bar.inc(1);
            bar.set_message(format!(
                "{} {}: accuracy {:.3}, ssim {:.3}",
                row.defence, row.label, row.accuracy, row.ssim_mean
            ));
            if bar.is_hidden() && !common.json {
                eprintln!(
                    "{} {} draw {draw}: accuracy {:.4}, ssim {:.4}",
                    row.defence, row.label, row.accuracy, row.ssim_mean
                );
            }
            rows.push(row);
        }
    }
    bar.finish_and_clear();
    let summary = summarise(&rows);
    let fit = match &args.shield {
        Shield::Dp { .. } if summary.len() >= 2 => {
            let points: Vec<(f64, f64)> = summary.iter().map(|s| (s.param, s.accuracy)).collect();
            fit_log_curve(&points).ok()
        }
        _ => None,
    };
    let fit_file = match &fit {
        Some(f) => {
            let path = common.out.join(format!("{stem}-fit.toml"));
            let text = format!(
                "# Accuracy curve A = a ln(b eps + 1) fitted by least squares to the mean accuracy\n\
                 # per eps of `veil defend dp` ({} / {} split after {}, {} draws per eps).\n\
                 # Read by `veil game --accuracy-fit {}`.\n\
                 accuracy_a = {}\naccuracy_b = {}\nr2 = {}\nsource = \"{} {} {} eps {:?}\"\n",
                model.spec().name,
                id.name(),
                common.layer,
                common.draws,
                path.display(),
                f.a,
                f.b,
                f.r2,
                model.spec().name,
                id.name(),
                common.layer,
                summary.iter().map(|s| s.param).collect::<Vec<_>>(),
            );
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            Some(path)
        }
        None => None,
    };
    let csv = common.out.join(format!("{stem}.csv"));
    write_rows_csv(&csv, &rows)?;
    let png = common.out.join(format!("{stem}.png"));
    let x = |s: &SettingSummary| match name.as_str() {
        "dp" | "dp-stale" => s.param.log10(),
        _ => s.param,
    };
    let x_label = match name.as_str() {
        "dp" | "dp-stale" => "log10 eps",
        "split" => "split layer index",
        _ => "parameter",
    };
    line_charts(
        &png,
        &[
            Panel {
                title: format!("Accuracy kept ({name})"),
                x_label: x_label.into(),
                y_label: "test accuracy".into(),
                series: vec![Series {
                    name: "defended".into(),
                    points: summary.iter().map(|s| (x(s), s.accuracy)).collect(),
                    ..Default::default()
                }],
            },
            Panel {
                title: format!("Attack SSIM left ({name})"),
                x_label: x_label.into(),
                y_label: "SSIM".into(),
                series: vec![Series {
                    name: "attack".into(),
                    points: summary.iter().map(|s| (x(s), s.ssim_mean)).collect(),
                    ..Default::default()
                }],
            },
        ],
        1200,
        500,
    )?;
    let out = Output {
        model: model.spec().name.clone(),
        dataset: id.name(),
        layer: layer_tag.clone(),
        accuracy_plain,
        settings: summary,
        rows,
        fit,
        fit_file,
        csv,
        png,
        grids,
    };
    if common.json {
        return crate::print_json(&out);
    }
    let place = match name.as_str() {
        "split" => "no shield, deeper splits".to_string(),
        _ => format!("split after {}", out.layer),
    };
    let mut text = format!(
        "{} / {} {place}: plain accuracy {:.4}\n| {} | accuracy | SSIM | PSNR |\n|---|---|---|---|\n",
        out.model, out.dataset, out.accuracy_plain, name
    );
    for s in &out.settings {
        text.push_str(&format!(
            "| {} | {:.4} +- {:.4} | {:.4} +- {:.4} | {:.2} |\n",
            s.label, s.accuracy, s.accuracy_std, s.ssim_mean, s.ssim_std, s.psnr_mean
        ));
    }
    if let (Some(f), Some(file)) = (&out.fit, &out.fit_file) {
        text.push_str(&format!(
            "fit A = {:.4} ln({:.4} eps + 1), R^2 {:.4} -> {} (veil game --accuracy-fit)\n",
            f.a,
            f.b,
            f.r2,
            file.display()
        ));
    }
    text.push_str(&format!(
        "{}, {} and {} reconstruction grids in {}",
        out.csv.display(),
        out.png.display(),
        out.grids.len(),
        common.out.display()
    ));
    crate::out(&text)
}

/// One setting of a sweep.
#[derive(Clone, Debug)]
enum Setting {
    /// Privacy budget and optional clip bound.
    Dp(f64, Option<f64>),
    /// A feature shield.
    Feature(FeatureShield),
    /// No shield, split after this layer.
    Split(String),
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

/// One defence's curve on the chart.
#[derive(Serialize)]
struct Curve {
    name: String,
    file: PathBuf,
    settings: Vec<SettingSummary>,
    /// Per level of `--accuracy`: the lowest attack SSIM the defence leaves while keeping it.
    ssim_at_accuracy: Vec<Option<f64>>,
}

/// `veil defend chart`.
fn chart(
    files: &[PathBuf],
    levels: &[f64],
    title: &str,
    png: &std::path::Path,
    json: bool,
) -> anyhow::Result<()> {
    if let Some(a) = levels
        .iter()
        .find(|a| !(a.is_finite() && (0.0..=1.0).contains(*a)))
    {
        anyhow::bail!("--accuracy levels must lie in [0, 1], got {a}");
    }
    let mut curves: Vec<Curve> = Vec::new();
    for file in files {
        let rows = read_rows_csv(file)?;
        if rows.is_empty() {
            anyhow::bail!("{}: no rows", file.display());
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
    let names: Vec<String> = curves
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
    for (c, n) in curves.iter_mut().zip(&names) {
        c.name = n.clone();
    }
    if let Some(dir) = png.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    line_charts(
        png,
        &[Panel {
            title: title.to_string(),
            x_label: "test accuracy kept (higher is better)".into(),
            y_label: "attack SSIM (lower is better)".into(),
            series: curves
                .iter()
                .map(|c| Series {
                    name: c.name.clone(),
                    points: c
                        .settings
                        .iter()
                        .map(|s| (s.accuracy, s.ssim_mean))
                        .collect(),
                    ..Default::default()
                })
                .collect(),
        }],
        1000,
        700,
    )?;
    let table_csv = png.with_extension("csv");
    let mut text = format!(
        "defence,{}\n",
        levels
            .iter()
            .map(|a| format!("ssim_at_accuracy_{a}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    for c in &curves {
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
    std::fs::write(&table_csv, text).with_context(|| format!("writing {}", table_csv.display()))?;
    if json {
        return crate::print_json(&serde_json::json!({
            "accuracy_levels": levels,
            "curves": curves,
            "png": png,
            "csv": table_csv,
        }));
    }
    let mut text = format!(
        "Lowest attack SSIM at accuracy >= A (- : the defence never keeps A)\n| defence | {} |\n|---|{}\n",
        levels
            .iter()
            .map(|a| format!("A = {a}"))
            .collect::<Vec<_>>()
            .join(" | "),
        "---|".repeat(levels.len())
    );
    for c in &curves {
        let cells: Vec<String> = c
            .ssim_at_accuracy
            .iter()
            .map(|v| v.map_or("-".into(), |v| format!("{v:.3}")))
            .collect();
        text.push_str(&format!("| {} | {} |\n", c.name, cells.join(" | ")));
    }
    text.push_str(&format!("{} and {}", png.display(), table_csv.display()));
    crate::out(&text)
}

/// `veil defend obfnet`.
fn obfnet(
    target: &super::attack::TargetArgs,
    variant: u8,
    count: usize,
    obf_epochs: usize,
    (aux, victims, epochs): (usize, usize, usize),
    out: &std::path::Path,
    json: bool,
) -> anyhow::Result<()> {
    if !(variant == 1 || variant == 2) {
        anyhow::bail!("--variant must be 1 or 2, got {variant}");
    }
    if count == 0 || obf_epochs == 0 {
        anyhow::bail!("--count and --obf-epochs must be at least 1");
    }
    let (id, split, classifier) = target.load()?;
    let spec = veil_spec::zoo::model(&format!("obfnet{variant}"))?;
    let bar = indicatif::ProgressBar::new(count as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "obfnet [{elapsed_precise}] {bar:30} {pos}/{len} trained {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(500));
    let cfg = TrainConfig {
        epochs: obf_epochs,
        ..TrainConfig::default()
    };
    let obf = veil_defense::obfnet::train_obfnets(
        &spec,
        &classifier,
        &split.train,
        count,
        &cfg,
        &mut |n| bar.set_position(n as u64),
    )?;
    bar.set_message("attacking");
    let attack = AttackConfig {
        aux_samples: aux,
        victims,
        train: TrainConfig {
            epochs,
            ..AttackConfig::default().train
        },
        ..AttackConfig::default()
    };
    let report = veil_defense::obfnet::judge(&obf, &classifier, &split, &attack, 0)?;
    bar.finish_and_clear();
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let stem = format!("{}-obfnet{variant}x{count}", classifier.spec().name);
    let grid = out.join(format!("{stem}.png"));
    let originals: Vec<&[f32]> = (0..report.attack.examples.len())
        .map(|i| split.test.sample(i))
        .collect();
    let recon: Vec<&[f32]> = report.attack.examples.iter().map(Vec::as_slice).collect();
    veil_attack::grid::save_grid(&grid, split.test.shape, &originals, &recon)?;
    let value = serde_json::json!({
        "model": classifier.spec().name,
        "dataset": id.name(),
        "variant": variant,
        "count": count,
        "accuracy_plain": report.accuracy_plain,
        "accuracy_defended": report.accuracy_defended,
        "accuracy_each": report.accuracy_each,
        "ssim_mean": report.attack.ssim_mean,
        "ssim_std": report.attack.ssim_std,
        "psnr_mean": report.attack.psnr_mean,
        "mse_mean": report.attack.mse_mean,
        "ssim_raw_features": 1.0,
        "ssim_obfuscated_as_is": report.ssim_obfuscated_as_is,
        "ssim_conv_decoder": report.ssim_by_decoder[0],
        "ssim_dense_decoder": report.ssim_by_decoder[1],
        "attack_layer": report.attack.layer,
        "victims": report.attack.victims,
        "grid": grid,
    });
    std::fs::write(
        out.join(format!("{stem}.json")),
        serde_json::to_string_pretty(&value)?,
    )?;
    // The shared schema, so `veil defend chart` can put ObfNet beside the other shields.
    write_rows_csv(
        &out.join(format!("{stem}.csv")),
        &[veil_defense::sweep::Row {
            defence: format!("obfnet{variant}"),
            param: count as f64,
            label: format!("obfnet{variant} x{count}"),
            draw: 0,
            accuracy: report.accuracy_defended,
            ssim_mean: report.attack.ssim_mean,
            psnr_mean: report.attack.psnr_mean,
            mse_mean: report.attack.mse_mean,
            examples: Vec::new(),
        }],
    )?;
    if json {
        return crate::print_json(&value);
    }
    crate::out(&format!(
        "{} / {} with {count} ObfNet{variant}: accuracy {:.4} -> {:.4} (each {:?}); attack on obfuscated data SSIM {:.4} +- {:.4}, PSNR {:.2} dB (conv decoder {:.4}, dense {:.4}; raw input sent without ObfNet: SSIM 1; obfuscated image as is: {:.4}); grid {}",
        classifier.spec().name,
        id.name(),
        report.accuracy_plain,
        report.accuracy_defended,
        report.accuracy_each,
        report.attack.ssim_mean,
        report.attack.ssim_std,
        report.attack.psnr_mean,
        report.ssim_by_decoder[0],
        report.ssim_by_decoder[1],
        report.ssim_obfuscated_as_is,
        grid.display()
    ))
}
