//! Regression training: fit a model to map inputs to target tensors under mean squared error
//! (Adam, seeded shuffles, the same cosine learning-rate decay as [`crate::train()`]). The
//! inversion attack trains its decoder with this.

use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::{MseLoss, Reduction};
use burn::optim::{AdamConfig, GradientsParams};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::model::{Activation, forward_layers};
use crate::{Model, ModelError, StepInfo, TrainConfig};

/// Result of a regression fit.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RegressionReport {
    /// Mean training loss of each epoch.
    pub epoch_losses: Vec<f64>,
    /// Training seconds.
    pub seconds: f64,
}

/// Fits `model` so that `model(inputs[i]) ~ targets[i]` for `n` pairs stored contiguously.
///
/// `inputs` holds `n` samples of the model's input shape, `targets` `n` samples of its output
/// shape. Augmentation in `cfg` is ignored.
pub fn fit_regression(
    model: Model,
    inputs: &[f32],
    targets: &[f32],
    cfg: &TrainConfig,
    on_step: &mut dyn FnMut(StepInfo),
) -> Result<(Model, RegressionReport), ModelError> {
    let in_per = model.spec().input_shape.numel();
    let n = inputs.len() / in_per.max(1);
    if n == 0 || inputs.len() != n * in_per {
        return Err(ModelError::Shape {
            context: format!("regression inputs for {}", model.spec().name),
            expected: vec![n, in_per],
            got: vec![inputs.len()],
        });
    }
    let mut fill = |batch: &[usize], xs: &mut Vec<f32>| {
        for &i in batch {
            xs.extend_from_slice(&inputs[i * in_per..(i + 1) * in_per]);
        }
    };
    fit_regression_with(model, n, targets, cfg, &mut fill, on_step)
}

/// Like [`fit_regression`], but the inputs of each batch are made by `fill_batch`, which must
/// append one input sample (the model's input shape) per index in the batch, in order.
///
/// Lets a caller build inputs on the fly (for example a fresh random mask per sample and
/// step) without materialising every variant. `targets` holds `n` samples of the output shape.
pub fn fit_regression_with(
    model: Model,
    n: usize,
    targets: &[f32],
    cfg: &TrainConfig,
    fill_batch: &mut dyn FnMut(&[usize], &mut Vec<f32>),
    on_step: &mut dyn FnMut(StepInfo),
) -> Result<(Model, RegressionReport), ModelError> {
    let spec = model.spec().clone();
    let in_per = spec.input_shape.numel();
    let out_shape = spec.output_shape()?;
    let out_per = out_shape.numel();
    if n == 0 || targets.len() != n * out_per {
        return Err(ModelError::Shape {
            context: format!("regression targets for {}", spec.name),
            expected: vec![n, out_per],
            got: vec![targets.len()],
        });
    }
    cfg.check([1, usize::MAX, usize::MAX])?;
    let device = model.device().clone().autodiff();
    device.seed(cfg.seed);
    let layers = spec.layers.len();
    let mut net = model.net.train();
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut order: Vec<usize> = (0..n).collect();
    let total_steps = n.div_ceil(cfg.batch_size) * cfg.epochs;
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    let mut epoch_losses = Vec::with_capacity(cfg.epochs);
    let started = Instant::now();
    let mut step = 0;
    for epoch in 1..=cfg.epochs {
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        let mut batches = 0;
        for chunk in order.chunks(cfg.batch_size) {
            xs.clear();
            ys.clear();
            fill_batch(chunk, &mut xs);
            if xs.len() != chunk.len() * in_per {
                return Err(ModelError::Shape {
                    context: format!("a batch of inputs for {}", spec.name),
                    expected: vec![chunk.len(), in_per],
                    got: vec![xs.len()],
                });
            }
            for &i in chunk {
                ys.extend_from_slice(&targets[i * out_per..(i + 1) * out_per]);
            }
            let x = Activation::from_values(xs.clone(), &spec.input_shape, &device)?;
            let y = Activation::from_values(ys.clone(), &out_shape, &device)?.into_flat();
            let pred = forward_layers(&spec, &net, x, 0..layers)?.into_flat();
            let loss = MseLoss::new().forward(pred, y, Reduction::Mean);
            let value = loss.clone().into_scalar::<f32>();
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(cfg.lr_at(step, total_steps), net, grads);
            step += 1;
            batches += 1;
            loss_sum += value as f64;
            on_step(StepInfo {
                epoch,
                step,
                total_steps,
                loss: value,
            });
        }
        epoch_losses.push(loss_sum / batches.max(1) as f64);
    }
    Ok((
        Model::from_parts(spec, net.valid())?,
        RegressionReport {
            epoch_losses,
            seconds: started.elapsed().as_secs_f64(),
        },
    ))
}
