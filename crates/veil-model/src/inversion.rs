//! White-box feature matching: the input whose features, through a model's first layers,
//! match given features (He et al., ACSAC 2019, regularized maximum likelihood estimation).
//!
//! For target features `y` of layers `0..split_end`, the search minimises
//! `mean((f(x) - y)^2 over the observed maps) + tv_weight * mean(|x(i+1,j) - x(i,j)| +
//! |x(i,j+1) - x(i,j)|)` over images `x` in `[0, 1]`, by Adam on the pixels (projected back
//! into `[0, 1]` after every step), starting from a uniform grey. Every sample of a batch is
//! its own problem: the loss is a sum over samples, so their gradients never mix. The model's
//! parameters stay fixed (no gradient is kept for them).

use burn::module::Module;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::model::{Activation, forward_layers};
use crate::{Model, ModelError};

/// Settings of the search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatchConfig {
    /// Adam steps per batch.
    pub steps: usize,
    /// Adam step size in pixel units (images span `[0, 1]`).
    pub lr: f64,
    /// Weight of the total-variation prior.
    pub tv_weight: f64,
    /// Images optimised together.
    pub batch: usize,
}

impl Default for MatchConfig {
    fn default() -> Self {
        MatchConfig {
            steps: 400,
            lr: 0.05,
            tv_weight: 0.01,
            batch: 250,
        }
    }
}

impl MatchConfig {
    fn check(&self) -> Result<(), ModelError> {
        let finite = self.lr.is_finite() && self.tv_weight.is_finite();
        if self.steps == 0 || self.batch == 0 || self.batch > crate::MAX_BATCH || !finite {
            return Err(ModelError::Invalid(format!(
                "feature matching needs steps >= 1, 1 <= batch <= {}, finite lr and tv weight; got {self:?}",
                crate::MAX_BATCH
            )));
        }
        let in_range = self.lr > 0.0 && self.lr <= 10.0 && (0.0..=1e3).contains(&self.tv_weight);
        if !in_range {
            return Err(ModelError::Invalid(format!(
                "feature matching needs lr in (0, 10] and tv weight in [0, 1000]; got {self:?}"
            )));
        }
        Ok(())
    }
}

/// Anisotropic total variation of each image of `x` `[b, c, h, w]`, averaged over pixels and
/// summed over the batch.
fn total_variation(x: &Tensor<4>) -> Tensor<1> {
    let [b, c, h, w] = x.dims();
    let down = if h > 1 {
        let d = x.clone().slice([0..b, 0..c, 1..h, 0..w])
            - x.clone().slice([0..b, 0..c, 0..h - 1, 0..w]);
        d.abs().sum()
    } else {
        x.clone().sum().mul_scalar(0.0)
    };
    let right = if w > 1 {
        let d = x.clone().slice([0..b, 0..c, 0..h, 1..w])
            - x.clone().slice([0..b, 0..c, 0..h, 0..w - 1]);
        d.abs().sum()
    } else {
        x.clone().sum().mul_scalar(0.0)
    };
    (down + right).div_scalar((c * h * w) as f64)
}

/// Images (sample-major, the model's input shape) whose features through layers
/// `0..split_end` of `model` match `targets` on the entries where `mask` is 1.
///
/// `targets` and `mask` hold `n` samples of the split layer's output shape; `mask` is 0 or 1.
/// `on_batch(done, total)` reports progress after each batch of images.
pub fn match_features(
    model: &Model,
    split_end: usize,
    targets: &[f32],
    mask: &[f32],
    cfg: &MatchConfig,
    on_batch: &mut dyn FnMut(usize, usize),
) -> Result<Vec<f32>, ModelError> {
    cfg.check()?;
    let spec = model.spec();
    let feature_shape =
        model.shapes().get(split_end).cloned().ok_or_else(|| {
            ModelError::Invalid(format!("{} has no layer {split_end}", spec.name))
        })?;
    let Some((c, h, w)) = spec.input_shape.as_chw() else {
        return Err(ModelError::Invalid(format!(
            "feature matching needs image inputs; {} reads {}",
            spec.name, spec.input_shape
        )));
    };
    let per_feature = feature_shape.numel();
    let n = targets.len() / per_feature.max(1);
    if n == 0 || targets.len() != n * per_feature || mask.len() != targets.len() {
        return Err(ModelError::Shape {
            context: format!("feature targets of {} at layer {split_end}", spec.name),
            expected: vec![n.max(1), per_feature],
            got: vec![targets.len(), mask.len()],
        });
    }
    // On the autodiff device without parameter gradients and without training behaviour:
    // batch normalisation keeps its running statistics and dropout is off, as on the device.
    let net = model.net.clone().train().freeze();
    let mut images = Vec::with_capacity(n * c * h * w);
    for start in (0..n).step_by(cfg.batch) {
        let end = (start + cfg.batch).min(n);
        let b = end - start;
        let rows = start * per_feature..end * per_feature;
        let y = Tensor::<2>::from_data(
            TensorData::new(targets[rows.clone()].to_vec(), [b, per_feature]),
            model.device(),
        );
        let m = Tensor::<2>::from_data(
            TensorData::new(mask[rows].to_vec(), [b, per_feature]),
            model.device(),
        );
        let y = y.autodiff();
        let m = m.autodiff();
        let mut x = Tensor::<4>::full([b, c, h, w], 0.5, model.device());
        let mut first = Tensor::<4>::zeros([b, c, h, w], model.device());
        let mut second = Tensor::<4>::zeros([b, c, h, w], model.device());
        let (beta1, beta2, eps) = (0.9f64, 0.999f64, 1e-8f64);
        for step in 1..=cfg.steps {
            let leaf = x.clone().autodiff().require_grad();
            let features =
                forward_layers(spec, &net, Activation::Maps(leaf.clone()), 0..split_end)?
                    .into_flat();
            let diff = (features - y.clone()) * m.clone();
            let fit = diff.powi_scalar(2).sum().div_scalar(per_feature as f64);
            let loss = fit + total_variation(&leaf).mul_scalar(cfg.tv_weight);
            let grads = loss.backward();
            let g = leaf.grad(&grads).ok_or_else(|| {
                ModelError::Invalid("feature matching lost the input gradient".into())
            })?;
            first = first.mul_scalar(beta1) + g.clone().mul_scalar(1.0 - beta1);
            second = second.mul_scalar(beta2) + g.powi_scalar(2).mul_scalar(1.0 - beta2);
            let m_hat = first.clone().div_scalar(1.0 - beta1.powi(step as i32));
            let v_hat = second.clone().div_scalar(1.0 - beta2.powi(step as i32));
            let update = m_hat.div(v_hat.sqrt().add_scalar(eps)).mul_scalar(cfg.lr);
            x = (x - update).clamp(0.0, 1.0);
        }
        images.extend(
            x.try_into_vec_as::<f32>()
                .map_err(|e| ModelError::Invalid(format!("cannot read images: {e:?}")))?,
        );
        on_batch(end, n);
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;
    use veil_spec::{Shape, zoo};

    #[test]
    fn matching_a_convolution_recovers_the_image_better_than_grey() {
        let model = Model::init(zoo::lenet5(), 3).expect("model");
        // A smooth synthetic image: a bright square on black.
        let mut image = vec![0.0f32; 28 * 28];
        for r in 8..20 {
            for col in 10..18 {
                image[r * 28 + col] = 1.0;
            }
        }
        let x = model.input(image.clone()).expect("input");
        let targets = model
            .forward_range(x, 0..1)
            .expect("conv1")
            .into_values()
            .expect("values");
        let mask = vec![1.0; targets.len()];
        let cfg = MatchConfig {
            steps: 150,
            ..MatchConfig::default()
        };
        let found =
            match_features(&model, 1, &targets, &mask, &cfg, &mut |_, _| {}).expect("match");
        assert_eq!(found.len(), 28 * 28);
        let mse = |a: &[f32]| -> f32 {
            a.iter()
                .zip(&image)
                .map(|(p, q)| (p - q) * (p - q))
                .sum::<f32>()
                / image.len() as f32
        };
        let grey = vec![0.5f32; 28 * 28];
        assert!(
            mse(&found) < 0.1 * mse(&grey),
            "{} vs {}",
            mse(&found),
            mse(&grey)
        );
        assert!(found.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn bad_settings_and_shapes_are_refused() {
        let model = Model::init(zoo::lenet5(), 0).expect("model");
        let per = Shape::chw(6, 28, 28).numel();
        let t = vec![0.0; per];
        let zero_steps = MatchConfig {
            steps: 0,
            ..MatchConfig::default()
        };
        assert!(match_features(&model, 1, &t, &t, &zero_steps, &mut |_, _| {}).is_err());
        let nan = MatchConfig {
            lr: f64::NAN,
            ..MatchConfig::default()
        };
        assert!(match_features(&model, 1, &t, &t, &nan, &mut |_, _| {}).is_err());
        let short = vec![0.0; per - 1];
        assert!(
            match_features(
                &model,
                1,
                &short,
                &short,
                &MatchConfig::default(),
                &mut |_, _| {}
            )
            .is_err()
        );
    }
}
