//! Supervised training: Adam on cross-entropy, seeded shuffles, cosine learning-rate decay,
//! optional augmentation, a per-step callback for progress bars and per-epoch test accuracy.

use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Int, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use veil_data::Dataset;

use crate::model::{Activation, forward_layers};
use crate::network::drop_frozen;
use crate::{Model, ModelError};

/// Random augmentation applied to training batches (never to test data).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct Augment {
    /// Maximum translation in pixels along each axis (zero fill).
    pub max_shift: usize,
    /// Maximum relative change of brightness and contrast (0.2 = +-20 %).
    pub jitter: f32,
}

/// Largest training batch: a batch is materialised at once, and a few bytes of command line
/// must not ask for gigabytes.
pub const MAX_BATCH: usize = 65_536;

/// Training hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// Peak learning rate of Adam; decays with a half cosine to `lr * final_lr_fraction`.
    pub lr: f64,
    /// Fraction of `lr` reached at the last step.
    pub final_lr_fraction: f64,
    /// Seed for weight init, shuffling, dropout and augmentation.
    pub seed: u64,
    /// Augmentation, if any.
    pub augment: Option<Augment>,
    /// Layers whose parameters stay fixed (their gradients are dropped before each step),
    /// e.g. a frozen classifier behind an ObfNet.
    #[serde(default)]
    pub frozen: Vec<String>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: 64,
            lr: 1e-3,
            final_lr_fraction: 0.05,
            seed: 0,
            augment: None,
            frozen: Vec::new(),
        }
    }
}

impl TrainConfig {
    /// Learning rate of step `step` (from 0) of `total_steps`: a half cosine from `lr` down to
    /// `lr * final_lr_fraction` at the last step.
    pub fn lr_at(&self, step: usize, total_steps: usize) -> f64 {
        let progress = step as f64 / (total_steps.max(2) - 1) as f64;
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos());
        self.lr * (self.final_lr_fraction + (1.0 - self.final_lr_fraction) * cosine)
    }

    /// Rejects settings that cannot train: zero epochs or batch (or one over [`MAX_BATCH`]), a learning rate that is not
    /// finite and positive, jitter outside `[0, 1]`, a shift not smaller than the image.
    pub fn check(&self, shape: [usize; 3]) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::Invalid(m));
        if self.epochs == 0 || self.batch_size == 0 {
            return bad("epochs and batch size must be positive".into());
        }
        if self.batch_size > MAX_BATCH {
            return bad(format!(
                "batch size {} is more than {MAX_BATCH}",
                self.batch_size
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!(
                "learning rate must be finite and positive, got {}",
                self.lr
            ));
        }
        if !(0.0..=1.0).contains(&self.final_lr_fraction) {
            return bad(format!(
                "final_lr_fraction must be in [0, 1], got {}",
                self.final_lr_fraction
            ));
        }
        if let Some(a) = self.augment {
            if !(a.jitter.is_finite() && (0.0..=1.0).contains(&a.jitter)) {
                return bad(format!("jitter must be in [0, 1], got {}", a.jitter));
            }
            if a.max_shift >= shape[1].min(shape[2]) {
                return bad(format!(
                    "augmentation shift {} must be smaller than the image side {}",
                    a.max_shift,
                    shape[1].min(shape[2])
                ));
            }
        }
        Ok(())
    }
}

/// One training step, reported to the progress callback.
#[derive(Clone, Copy, Debug)]
pub struct StepInfo {
    /// Epoch, from 1.
    pub epoch: usize,
    /// Step within all epochs, from 1.
    pub step: usize,
    /// Total steps of the run.
    pub total_steps: usize,
    /// Loss of this batch.
    pub loss: f32,
}

/// Result of one epoch.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EpochReport {
    /// Epoch, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// Test accuracy after the epoch, when a test set was given.
    pub test_accuracy: Option<f64>,
    /// Wall-clock seconds of the epoch's training steps (evaluation excluded).
    pub seconds: f64,
}

/// Result of a training run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrainReport {
    /// Per-epoch results.
    pub epochs: Vec<EpochReport>,
    /// Total training seconds (evaluation excluded).
    pub train_seconds: f64,
    /// Training images per second.
    pub images_per_second: f64,
}

/// The datasets fit the model and are not empty, the settings are valid for them, and every
/// frozen layer exists.
fn check_training(
    model: &Model,
    train: &Dataset,
    test: Option<&Dataset>,
    cfg: &TrainConfig,
) -> Result<(), ModelError> {
    model.check_dataset(train)?;
    if let Some(t) = test {
        model.check_dataset(t)?;
        if t.is_empty() {
            return Err(ModelError::Invalid(format!("test set {} is empty", t.name)));
        }
    }
    cfg.check(train.shape)?;
    for name in &cfg.frozen {
        model.spec().layer_index(name)?;
    }
    if train.is_empty() {
        return Err(ModelError::Invalid(format!(
            "training set {} is empty",
            train.name
        )));
    }
    Ok(())
}

/// Trains `model` on `train`; evaluates on `test` after every epoch when given.
pub fn train(
    model: Model,
    train: &Dataset,
    test: Option<&Dataset>,
    cfg: &TrainConfig,
    on_step: &mut dyn FnMut(StepInfo),
) -> Result<(Model, TrainReport), ModelError> {
    check_training(&model, train, test, cfg)?;
    let device = model.device().clone().autodiff();
    device.seed(cfg.seed);
    let spec = model.spec().clone();
    let input_shape = spec.input_shape.clone();
    let layers = spec.layers.len();
    let mut net = crate::network::freeze_layers(&spec, model.net.train(), &cfg.frozen);
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let per = train.sample_len();
    let steps_per_epoch = train.len().div_ceil(cfg.batch_size);
    let total_steps = steps_per_epoch * cfg.epochs;
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut batch_values = Vec::with_capacity(cfg.batch_size.min(train.len()) * per);
    let mut reports = Vec::with_capacity(cfg.epochs);
    let mut train_seconds = 0.0;
    let mut step = 0;
    for epoch in 1..=cfg.epochs {
        order.shuffle(&mut rng);
        let started = Instant::now();
        let mut loss_sum = 0.0;
        for chunk in order.chunks(cfg.batch_size) {
            batch_values.clear();
            let mut labels = Vec::with_capacity(chunk.len());
            for &i in chunk {
                let sample = train.sample(i);
                match cfg.augment {
                    Some(aug) => {
                        augment_into(sample, train.shape, aug, &mut rng, &mut batch_values)
                    }
                    None => batch_values.extend_from_slice(sample),
                }
                labels.push(train.labels[i] as i64);
            }
            let x = Activation::from_values(batch_values.clone(), &input_shape, &device)?;
            let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [chunk.len()]), &device);
            let logits = forward_layers(&spec, &net, x, 0..layers)?.into_flat();
            let loss = loss_fn.forward(logits, y);
            let loss_value = loss.clone().into_scalar::<f32>();
            if !loss_value.is_finite() {
                return Err(ModelError::Diverged {
                    epoch,
                    step: step + 1,
                    loss: loss_value,
                });
            }
            let mut grads = GradientsParams::from_grads(loss.backward(), &net);
            drop_frozen(&spec, &net, &cfg.frozen, &mut grads);
            net = optim.step(cfg.lr_at(step, total_steps), net, grads);
            step += 1;
            loss_sum += loss_value as f64;
            on_step(StepInfo {
                epoch,
                step,
                total_steps,
                loss: loss_value,
            });
        }
        let seconds = started.elapsed().as_secs_f64();
        train_seconds += seconds;
        let test_accuracy = match test {
            Some(t) => Some(Model::from_parts(spec.clone(), net.valid())?.evaluate(t)?),
            None => None,
        };
        reports.push(EpochReport {
            epoch,
            train_loss: loss_sum / steps_per_epoch as f64,
            test_accuracy,
            seconds,
        });
    }
    let trained = Model::from_parts(spec, net.valid())?;
    let images = (train.len() * cfg.epochs) as f64;
    Ok((
        trained,
        TrainReport {
            epochs: reports,
            train_seconds,
            images_per_second: images / train_seconds.max(1e-9),
        },
    ))
}

/// Appends an augmented copy of `src` (`[c, h, w]`) to `out`: a random shift with zero fill,
/// then random brightness and contrast, clamped to `[0, 1]`.
fn augment_into(
    src: &[f32],
    shape: [usize; 3],
    aug: Augment,
    rng: &mut ChaCha8Rng,
    out: &mut Vec<f32>,
) {
    let [c, h, w] = shape;
    let s = aug.max_shift as i64;
    let (dy, dx) = if s > 0 {
        (rng.random_range(-s..=s), rng.random_range(-s..=s))
    } else {
        (0, 0)
    };
    let (gain, bias) = if aug.jitter > 0.0 {
        (
            1.0 + rng.random_range(-aug.jitter..=aug.jitter),
            rng.random_range(-aug.jitter..=aug.jitter) * 0.5,
        )
    } else {
        (1.0, 0.0)
    };
    for ch in 0..c {
        let plane = &src[ch * h * w..(ch + 1) * h * w];
        for y in 0..h as i64 {
            for x in 0..w as i64 {
                let (sy, sx) = (y - dy, x - dx);
                let v = if (0..h as i64).contains(&sy) && (0..w as i64).contains(&sx) {
                    plane[(sy as usize) * w + sx as usize]
                } else {
                    0.0
                };
                out.push(if aug.jitter > 0.0 {
                    (v * gain + bias).clamp(0.0, 1.0)
                } else {
                    v
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_batches_are_refused_before_anything_is_allocated() {
        let cfg = |batch_size| TrainConfig {
            batch_size,
            ..TrainConfig::default()
        };
        assert!(cfg(64).check([1, 28, 28]).is_ok());
        assert!(cfg(MAX_BATCH + 1).check([1, 28, 28]).is_err());
        assert!(cfg(1_000_000_000).check([1, 28, 28]).is_err());
    }
}
