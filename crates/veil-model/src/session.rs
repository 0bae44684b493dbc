//! A training session as `veil train` runs it: a spec trained on a dataset with the dataset's
//! defaults, saved as a weight file with a JSON report in a run directory; and the one rule
//! for where default weights live ([`default_weights`]: `runs/<model>-<dataset>/model.safetensors`),
//! which every command that needs a trained model follows.
//!
//! Key items: [`TrainRequest`], [`train_to_dir`], [`TrainOutput`], [`default_weights`],
//! [`evaluate_file`] (`veil eval`), [`infer_file`] (`veil infer`).

use std::path::{Path, PathBuf};

use serde::Serialize;
use veil_data::{DatasetId, Split};
use veil_spec::{ModelSpec, Shape};

use crate::{Augment, EpochReport, Model, ModelError, StepInfo, TrainConfig};

/// The weight file's name in a run directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// The run directory of `model` trained on `dataset`: `runs/<model>-<dataset>`, with every
/// character outside `[A-Za-z0-9._-]` replaced by `_` and no leading dot, so a name never
/// leaves `runs/`.
pub fn default_out_dir(model: &str, dataset: &str) -> PathBuf {
    PathBuf::from("runs").join(format!(
        "{}-{}",
        path_component(model),
        path_component(dataset)
    ))
}

/// Where `veil train` puts the weights of `model` on `dataset` by default; every command
/// that takes `--weights` looks there when it is absent.
pub fn default_weights(model: &str, dataset: &str) -> PathBuf {
    default_out_dir(model, dataset).join(WEIGHTS_FILE)
}

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

/// Epochs `veil train` runs on `id` by default.
pub fn default_epochs(id: &DatasetId) -> usize {
    match id {
        DatasetId::Mnist | DatasetId::FashionMnist => 12,
        DatasetId::Gtsrb | DatasetId::Cifar10 => 8,
        DatasetId::PostOperative => 200,
        DatasetId::Activity => 10,
        DatasetId::Folder(_) | DatasetId::Synthetic => 5,
    }
}

/// What to train; `None` fields take the dataset's defaults.
#[derive(Clone, Debug)]
pub struct TrainRequest {
    /// The model (its output is resized to the dataset's classes when they differ).
    pub spec: ModelSpec,
    /// Epochs (default: [`default_epochs`]).
    pub epochs: Option<usize>,
    /// Samples per batch.
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Seed of the initial weights and the shuffling.
    pub seed: u64,
    /// Random shift augmentation in pixels (default: 2 on GTSRB, else none).
    pub augment_shift: Option<usize>,
    /// Brightness/contrast jitter (default: 0.2 on GTSRB, else none).
    pub jitter: Option<f32>,
    /// Train on the first N training samples only.
    pub limit: Option<usize>,
    /// Run directory (default: [`default_out_dir`]).
    pub out: Option<PathBuf>,
}

impl TrainRequest {
    /// `veil train`'s defaults for `spec`: the dataset's epochs and augmentation, batch 64,
    /// learning rate 1e-3, seed 0, the default run directory.
    pub fn defaults(spec: ModelSpec) -> Self {
        TrainRequest {
            spec,
            epochs: None,
            batch_size: 64,
            lr: 1e-3,
            seed: 0,
            augment_shift: None,
            jitter: None,
            limit: None,
            out: None,
        }
    }
}

/// What a session wrote (`report.json` in the run directory holds the same).
#[derive(Clone, Debug, Serialize)]
pub struct TrainOutput {
    /// Model name.
    pub model: String,
    /// Dataset name.
    pub dataset: String,
    /// Test accuracy after the last epoch.
    pub test_accuracy: f64,
    /// Training time (s).
    pub train_seconds: f64,
    /// Training throughput.
    pub images_per_second: f64,
    /// The weight file.
    pub weights: PathBuf,
    /// Training samples used.
    pub train_samples: usize,
    /// Test samples.
    pub test_samples: usize,
    /// The configuration trained with.
    pub config: TrainConfig,
    /// Per-epoch reports.
    pub epochs: Vec<EpochReport>,
}

/// Events of a session, for a progress bar.
#[derive(Debug)]
pub enum SessionEvent<'a> {
    /// The model's output was resized to the dataset's classes.
    Resized {
        /// Model name.
        model: &'a str,
        /// New class count.
        classes: usize,
    },
    /// Training starts: `epochs` epochs of `steps_per_epoch` optimizer steps, `steps` in all.
    Start {
        /// Epochs.
        epochs: usize,
        /// Steps in all.
        steps: usize,
        /// Steps per epoch.
        steps_per_epoch: usize,
    },
    /// One optimizer step done.
    Step(&'a StepInfo),
}

/// Trains `request` on `split` (dataset `id`), saves the weights and `report.json` in the run
/// directory and returns the report.
pub fn train_to_dir(
    request: &TrainRequest,
    id: &DatasetId,
    split: &Split,
    on_event: &mut dyn FnMut(SessionEvent<'_>),
) -> Result<TrainOutput, ModelError> {
    let mut spec = request.spec.clone();
    let outputs = spec.output_shape()?;
    if outputs.dims().len() != 1 || outputs.numel() != split.train.classes {
        spec = spec.with_output_classes(split.train.classes)?;
        on_event(SessionEvent::Resized {
            model: &spec.name,
            classes: split.train.classes,
        });
    }
    let train_set = match request.limit {
        Some(0) => return Err(ModelError::Invalid("--limit must be positive".into())),
        Some(n) => split.train.take(n),
        None => split.train.clone(),
    };
    let cfg = config(request, id);
    let model = Model::init(spec.clone(), request.seed)?;
    let steps_per_epoch = train_set.len().div_ceil(cfg.batch_size.max(1)).max(1);
    on_event(SessionEvent::Start {
        epochs: cfg.epochs,
        steps: steps_per_epoch * cfg.epochs,
        steps_per_epoch,
    });
    let (trained, report) = crate::train(model, &train_set, Some(&split.test), &cfg, &mut |s| {
        on_event(SessionEvent::Step(&s))
    })?;
    let out_dir = request
        .out
        .clone()
        .unwrap_or_else(|| default_out_dir(&spec.name, &id.name()));
    let weights = out_dir.join(WEIGHTS_FILE);
    trained.save(&weights)?;
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
    write_report(&out_dir.join("report.json"), &output)?;
    Ok(output)
}

/// The training configuration of `request` with `id`'s defaults filled in.
fn config(request: &TrainRequest, id: &DatasetId) -> TrainConfig {
    let is_gtsrb = *id == DatasetId::Gtsrb;
    let shift = request
        .augment_shift
        .unwrap_or(if is_gtsrb { 2 } else { 0 });
    let jitter = request.jitter.unwrap_or(if is_gtsrb { 0.2 } else { 0.0 });
    TrainConfig {
        epochs: request.epochs.unwrap_or_else(|| default_epochs(id)),
        batch_size: request.batch_size,
        lr: request.lr,
        seed: request.seed,
        augment: (shift > 0 || jitter > 0.0).then_some(Augment {
            max_shift: shift,
            jitter,
        }),
        ..TrainConfig::default()
    }
}

fn write_report(path: &Path, output: &TrainOutput) -> Result<(), ModelError> {
    let text = serde_json::to_string_pretty(output)
        .map_err(|e| ModelError::Invalid(format!("encoding the training report: {e}")))?;
    std::fs::write(path, text).map_err(|e| ModelError::Weights {
        path: path.to_path_buf(),
        reason: format!("writing the training report: {e}"),
    })
}

impl TrainOutput {
    /// One line per epoch, then the outcome.
    pub fn text(&self) -> String {
        let mut text = String::new();
        for e in &self.epochs {
            text.push_str(&format!(
                "epoch {:>3}  loss {:.4}  test accuracy {:.4}  ({:.1} s)\n",
                e.epoch,
                e.train_loss,
                e.test_accuracy.unwrap_or(f64::NAN),
                e.seconds
            ));
        }
        text.push_str(&format!(
            "{} on {}: test accuracy {:.4} after {:.1} s of training ({:.0} images/s); weights in {}",
            self.model,
            self.dataset,
            self.test_accuracy,
            self.train_seconds,
            self.images_per_second,
            self.weights.display()
        ));
        text
    }
}

/// Accuracy of a weight file on a test split.
#[derive(Clone, Debug, Serialize)]
pub struct Evaluation {
    /// Model name (from the file).
    pub model: String,
    /// Dataset name.
    pub dataset: String,
    /// The weight file.
    pub weights: PathBuf,
    /// Test samples.
    pub test_samples: usize,
    /// Accuracy.
    pub test_accuracy: f64,
    /// Evaluation time (s).
    pub seconds: f64,
}

/// Evaluates the weight file `weights` on `split`'s test set; when `expected` names a model,
/// the file must hold it (case-insensitive).
pub fn evaluate_file(
    weights: &Path,
    expected: Option<&str>,
    id: &DatasetId,
    split: &Split,
) -> Result<Evaluation, ModelError> {
    let model = load_expected(weights, expected)?;
    let started = std::time::Instant::now();
    let test_accuracy = model.evaluate(&split.test)?;
    Ok(Evaluation {
        model: model.spec().name.clone(),
        dataset: id.name(),
        weights: weights.to_path_buf(),
        test_samples: split.test.len(),
        test_accuracy,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// What [`infer_file`] computed: each test sample's logits and predicted class (what
/// `veil infer` prints).
#[derive(Clone, Debug, Serialize)]
pub struct Inference {
    /// Model name (from the file).
    pub model: String,
    /// Dataset name.
    pub dataset: String,
    /// The weight file.
    pub weights: PathBuf,
    /// Samples run (the first of the test split).
    pub samples: usize,
    /// Per sample, the model's outputs.
    pub logits: Vec<Vec<f32>>,
    /// Per sample, the index of its largest logit (`veil_metrics::argmax`: the first on a tie).
    pub predictions: Vec<usize>,
    /// Per sample, the dataset's label.
    pub labels: Vec<usize>,
    /// Fraction of predictions equal to the label.
    pub accuracy: f64,
}

/// Samples per forward pass of [`infer_file`].
const INFER_BATCH: usize = 256;

/// Runs the weight file `weights` on the first `limit` test samples of `split` (all when
/// `None`); when `expected` names a model, the file must hold it (case-insensitive).
pub fn infer_file(
    weights: &Path,
    expected: Option<&str>,
    id: &DatasetId,
    split: &Split,
    limit: Option<usize>,
) -> Result<Inference, ModelError> {
    let model = load_expected(weights, expected)?;
    let test = split.test.take(limit.unwrap_or(split.test.len()));
    model.check_dataset(&test)?;
    let classes = model.shapes().last().map(Shape::numel).unwrap_or(0).max(1);
    let mut logits = Vec::with_capacity(test.len());
    let per = test.sample_len();
    for start in (0..test.len()).step_by(INFER_BATCH) {
        let end = (start + INFER_BATCH).min(test.len());
        let values = model.logits(&test.samples[start * per..end * per])?;
        logits.extend(values.chunks_exact(classes).map(<[f32]>::to_vec));
    }
    let predictions: Vec<usize> = logits.iter().map(|l| veil_metrics::argmax(l)).collect();
    let labels: Vec<usize> = test.labels.iter().map(|&l| l as usize).collect();
    let accuracy = veil_metrics::accuracy(&predictions, &labels)
        .map_err(|e| ModelError::Invalid(e.to_string()))?;
    Ok(Inference {
        model: model.spec().name.clone(),
        dataset: id.name(),
        weights: weights.to_path_buf(),
        samples: test.len(),
        logits,
        predictions,
        labels,
        accuracy,
    })
}

/// Loads `weights`; when `expected` names a model, the file must hold it (case-insensitive).
fn load_expected(weights: &Path, expected: Option<&str>) -> Result<Model, ModelError> {
    let model = Model::load(weights)?;
    if let Some(name) = expected
        && !name.eq_ignore_ascii_case(&model.spec().name)
    {
        return Err(ModelError::Invalid(format!(
            "{} holds model `{}`, not `{name}`",
            weights.display(),
            model.spec().name
        )));
    }
    Ok(model)
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
            default_weights("lenet5", "folder:/data/x"),
            PathBuf::from("runs/lenet5-folder__data_x/model.safetensors")
        );
    }
}
