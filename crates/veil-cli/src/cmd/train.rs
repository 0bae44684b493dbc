//! `veil train`: train a zoo model (or a spec file) on a dataset, save weights and a report.

use std::path::PathBuf;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use veil_data::DatasetId;
use veil_model::{Augment, EpochReport, Model, TrainConfig};

use crate::DataArgs;

/// Arguments of `veil train`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Zoo model name or path to a `.toml`/`.json` spec.
    #[arg(long, default_value = "lenet5")]
    pub model: String,
    /// Dataset: mnist, fashion-mnist, cifar10, gtsrb, postop, activity, synthetic, folder:PATH.
    #[arg(long, default_value = "mnist")]
    pub dataset: String,
    /// Passes over the training set (default depends on the dataset).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Samples per training step.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Peak Adam learning rate (cosine decay to 5 % of it).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Seed for initialisation, shuffling and augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Maximum random shift in pixels for augmentation (default: 2 for gtsrb, else 0).
    #[arg(long)]
    pub augment_shift: Option<usize>,
    /// Brightness/contrast jitter for augmentation (default: 0.2 for gtsrb, else 0).
    #[arg(long)]
    pub jitter: Option<f32>,
    /// Use only the first N training samples.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Output directory (default `runs/<model>-<dataset>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Data directory options.
    #[command(flatten)]
    pub data: DataArgs,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// What `veil train --json` prints (and `report.json` holds).
#[derive(Debug, Serialize)]
pub struct TrainOutput {
    /// Model name.
    pub model: String,
    /// Dataset name.
    pub dataset: String,
    /// Test accuracy after the last epoch, in `[0, 1]`.
    pub test_accuracy: f64,
    /// Training seconds (evaluation excluded).
    pub train_seconds: f64,
    /// Training throughput.
    pub images_per_second: f64,
    /// Saved weight file.
    pub weights: PathBuf,
    /// Training samples used.
    pub train_samples: usize,
    /// Test samples.
    pub test_samples: usize,
    /// Hyper-parameters.
    pub config: TrainConfig,
    /// Per-epoch history.
    pub epochs: Vec<EpochReport>,
}

fn default_epochs(id: &DatasetId) -> usize {
    match id {
        DatasetId::Mnist | DatasetId::FashionMnist => 12,
        DatasetId::Gtsrb | DatasetId::Cifar10 => 8,
        DatasetId::PostOperative => 200,
        DatasetId::Activity => 10,
        DatasetId::Folder(_) | DatasetId::Synthetic => 5,
    }
}

/// Runs `veil train`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let output = execute(&args)?;
    if args.json {
        return crate::print_json(&output);
    }
    for e in &output.epochs {
        crate::out(&format!(
            "epoch {:>3}  loss {:.4}  test accuracy {:.4}  ({:.1} s)",
            e.epoch,
            e.train_loss,
            e.test_accuracy.unwrap_or(f64::NAN),
            e.seconds
        ))?;
    }
    crate::out(&format!(
        "{} on {}: test accuracy {:.4} after {:.1} s of training ({:.0} images/s); weights in {}",
        output.model,
        output.dataset,
        output.test_accuracy,
        output.train_seconds,
        output.images_per_second,
        output.weights.display()
    ))
}

/// The default output directory of `veil train` for a model and dataset.
pub fn default_out_dir(model: &str, dataset: &str) -> PathBuf {
    PathBuf::from("runs").join(format!(
        "{}-{}",
        path_component(model),
        path_component(dataset)
    ))
}

/// `name` as one safe path component: characters other than ASCII letters, digits, `-`, `_`
/// and `.` become `_`, and a leading `.` too, so a spec named `../../x` or a dataset
/// `folder:/data` can never point outside `runs/`.
fn path_component(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with('.') {
        out.insert(0, '_');
    }
    out
}

/// The one rule for a command's default weights: what `veil train --model M --dataset D`
/// writes, `runs/<model>-<dataset>/model.safetensors`.
pub fn default_weights(model: &str, dataset: &str) -> PathBuf {
    default_out_dir(model, dataset).join(WEIGHTS_FILE)
}

/// File name of the weights in a training run's directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// Arguments of `veil train` with every default, for `model` on `dataset`.
pub fn default_args(model: &str, dataset: &str, data: Option<PathBuf>) -> Args {
    Args {
        model: model.into(),
        dataset: dataset.into(),
        epochs: None,
        batch_size: 64,
        lr: 1e-3,
        seed: 0,
        augment_shift: None,
        jitter: None,
        limit: None,
        out: None,
        data: DataArgs { data },
        json: true,
    }
}

/// Trains, saves weights and `report.json`, and returns the report (prints nothing on stdout).
pub fn execute(args: &Args) -> anyhow::Result<TrainOutput> {
    let (id, split) = super::load_dataset(&args.dataset, args.data.data.as_deref())?;
    let mut spec = super::resolve_spec(&args.model)?;
    let outputs = spec.output_shape()?;
    if outputs.dims().len() != 1 || outputs.numel() != split.train.classes {
        spec = spec.with_output_classes(split.train.classes)?;
        if !args.json {
            eprintln!(
                "note: {} resized to {} output classes for {}",
                spec.name,
                split.train.classes,
                id.name()
            );
        }
    }
    let train_set = match args.limit {
        Some(0) => bail!("--limit must be positive"),
        Some(n) => split.train.take(n),
        None => split.train.clone(),
    };
    let is_gtsrb = id == DatasetId::Gtsrb;
    let shift = args.augment_shift.unwrap_or(if is_gtsrb { 2 } else { 0 });
    let jitter = args.jitter.unwrap_or(if is_gtsrb { 0.2 } else { 0.0 });
    let cfg = TrainConfig {
        epochs: args.epochs.unwrap_or_else(|| default_epochs(&id)),
        batch_size: args.batch_size,
        lr: args.lr,
        seed: args.seed,
        augment: (shift > 0 || jitter > 0.0).then_some(Augment {
            max_shift: shift,
            jitter,
        }),
        ..TrainConfig::default()
    };
    let model = Model::init(spec.clone(), args.seed)?;
    let steps_per_epoch = train_set.len().div_ceil(cfg.batch_size.max(1)).max(1);
    let steps = steps_per_epoch * cfg.epochs;
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} steps ({per_sec}, eta {eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(format!("train {} on {}", spec.name, id.name()));
    let (trained, report) =
        veil_model::train(model, &train_set, Some(&split.test), &cfg, &mut |s| {
            bar.set_position(s.step as u64);
            if s.step % 20 == 0 {
                bar.set_message(format!("epoch {} loss {:.4}", s.epoch, s.loss));
            }
            // Without a terminal the bar is hidden: log one line per epoch instead.
            if bar.is_hidden() && s.step % steps_per_epoch == 0 {
                eprintln!(
                    "epoch {}/{} done ({} steps, last batch loss {:.4}, {:.0} s)",
                    s.epoch,
                    cfg.epochs,
                    s.step,
                    s.loss,
                    bar.elapsed().as_secs_f64()
                );
            }
        })?;
    bar.finish_and_clear();
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| default_out_dir(&spec.name, &id.name()));
    let weights = out_dir.join(WEIGHTS_FILE);
    trained
        .save(&weights)
        .with_context(|| format!("saving weights to {}", weights.display()))?;
    let output = TrainOutput {
        model: spec.name.clone(),
        dataset: id.name(),
        test_accuracy: report
            .epochs
            .last()
            .and_then(|e| e.test_accuracy)
            .unwrap_or(f64::NAN),
        train_seconds: report.train_seconds,
        images_per_second: report.images_per_second,
        weights,
        train_samples: train_set.len(),
        test_samples: split.test.len(),
        config: cfg,
        epochs: report.epochs,
    };
    std::fs::write(
        out_dir.join("report.json"),
        serde_json::to_string_pretty(&output)?,
    )
    .with_context(|| format!("writing {}", out_dir.join("report.json").display()))?;
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_directories_stay_inside_runs() {
        for (model, dataset) in [("../../../x", "mnist"), ("..", "folder:/etc"), ("", "..")] {
            let dir = default_out_dir(model, dataset);
            assert_eq!(dir.components().count(), 2, "{}", dir.display());
            assert!(!dir.to_string_lossy().contains("/."), "{}", dir.display());
        }
        assert_eq!(
            default_out_dir("lenet5", "mnist"),
            PathBuf::from("runs/lenet5-mnist")
        );
        assert_eq!(
            default_out_dir("lenet5", "folder:/data/x"),
            PathBuf::from("runs/lenet5-folder__data_x")
        );
    }
}
