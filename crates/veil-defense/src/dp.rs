//! Model perturbation (Spears and Shields, Algorithm 2; SYSTEM.md section 6): before
//! deployment, the device-side parameters (every layer up to the split) are clipped to `G`,
//! `theta <- theta / max(1, ||theta||_inf / G)`, then Laplace(0, 2G/eps) noise is added to each
//! of them once. The server-side layers are unchanged.
//!
//! What this gives, stated plainly: it is the Laplace mechanism applied to the *parameter
//! vector*, whose L-infinity norm is at most `G` after clipping. It does not bound what the
//! transmitted features reveal about an input image: the same noisy parameters are used for
//! every image, so an attacker who queries the deployed device part trains its decoder on
//! exactly those parameters. The protection of inputs is whatever accuracy loss and
//! reconstruction damage the measurements show, not a formal DP guarantee for images.
//!
//! Key items: [`Perturbation`], [`perturb_device_part`], [`PerturbReport`].

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use veil_model::Model;

use crate::DefenseError;

/// Settings of one perturbation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Perturbation {
    /// Clipping bound `G` on the largest absolute parameter; `None` takes the device part's
    /// own largest absolute parameter, so nothing is scaled.
    pub clip: Option<f64>,
    /// Privacy budget `eps` (> 0); the noise scale is `2 G / eps`.
    pub eps: f64,
    /// Seed of the noise draw.
    pub seed: u64,
}

/// What a perturbation did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PerturbReport {
    /// Layers whose parameters were perturbed (up to and including the split layer).
    pub layers: Vec<String>,
    /// Parameters perturbed.
    pub parameters: usize,
    /// Largest absolute parameter before clipping.
    pub max_abs_before: f64,
    /// Factor the parameters were scaled by (1 when already within `G`).
    pub clip_scale: f64,
    /// Laplace scale `2 G / eps`.
    pub noise_scale: f64,
}

/// Perturbs the device part of `model` (layers `0..=split`): returns the deployed model and
/// what was done.
pub fn perturb_device_part(
    model: &Model,
    split: &str,
    p: &Perturbation,
) -> Result<(Model, PerturbReport), DefenseError> {
    let clip_ok = p.clip.is_none_or(|g| g.is_finite() && g > 0.0);
    if !(clip_ok && p.eps.is_finite() && p.eps > 0.0) {
        return Err(DefenseError::Invalid(format!(
            "clip G and eps must be positive and finite, got G = {:?}, eps = {}",
            p.clip, p.eps
        )));
    }
    let split_index = model.spec().split_index(split)?;
    let device: Vec<String> = model.spec().layers[..=split_index]
        .iter()
        .map(|l| l.name.clone())
        .collect();
    let mut tensors = model.named_tensors()?;
    let on_device = |name: &str| {
        name.rsplit_once('.')
            .is_some_and(|(layer, _)| device.iter().any(|l| l == layer))
    };
    let max_abs = tensors
        .iter()
        .filter(|t| on_device(&t.name))
        .flat_map(|t| t.values.iter())
        .fold(0.0f64, |m, &v| m.max(v.abs() as f64));
    let clip = p.clip.unwrap_or(max_abs).max(f64::MIN_POSITIVE);
    let clip_scale = 1.0 / (max_abs / clip).max(1.0);
    let noise_scale = 2.0 * clip / p.eps;
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let mut parameters = 0;
    for t in tensors.iter_mut().filter(|t| on_device(&t.name)) {
        for v in t.values.iter_mut() {
            *v = (*v as f64 * clip_scale + crate::laplace(&mut rng, noise_scale)) as f32;
        }
        parameters += t.values.len();
    }
    let deployed = model.with_tensors(tensors)?;
    Ok((
        deployed,
        PerturbReport {
            layers: device
                .into_iter()
                .filter(|l| model.spec().param_layers().any(|(_, pl)| &pl.name == l))
                .collect(),
            parameters,
            max_abs_before: max_abs,
            clip_scale,
            noise_scale,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensors(m: &Model) -> Vec<veil_model::NamedTensor> {
        m.named_tensors().expect("tensors")
    }

    #[test]
    fn clipping_bounds_the_device_part_and_leaves_the_server_part() {
        let model = Model::init(veil_spec::zoo::lenet5(), 3).expect("init");
        // eps huge: noise ~ 0, so only the clipping shows.
        let p = Perturbation {
            clip: Some(0.01),
            eps: 1e12,
            seed: 0,
        };
        let (deployed, report) = perturb_device_part(&model, "pool1", &p).expect("perturb");
        assert_eq!(report.layers, vec!["conv1".to_string()]);
        assert_eq!(report.parameters, 6 * 25 + 6);
        assert!(report.clip_scale < 1.0);
        for (before, after) in tensors(&model).iter().zip(tensors(&deployed)) {
            if before.name.starts_with("conv1.") {
                assert!(
                    after.values.iter().all(|v| v.abs() <= 0.01 + 1e-6),
                    "{}",
                    before.name
                );
                for (a, b) in before.values.iter().zip(&after.values) {
                    assert!(((*a as f64) * report.clip_scale - *b as f64).abs() < 1e-6);
                }
            } else {
                assert_eq!(
                    before.values, after.values,
                    "{} must not change",
                    before.name
                );
            }
        }
    }

    #[test]
    fn noise_has_scale_two_g_over_eps_and_is_seeded() {
        let model = Model::init(veil_spec::zoo::lenet5(), 3).expect("init");
        let p = Perturbation {
            clip: Some(10.0),
            eps: 20.0,
            seed: 5,
        };
        let (a, report) = perturb_device_part(&model, "relu2", &p).expect("a");
        let (b, _) = perturb_device_part(&model, "relu2", &p).expect("b");
        assert_eq!(tensors(&a), tensors(&b));
        assert_eq!(report.noise_scale, 1.0);
        assert_eq!(report.clip_scale, 1.0);
        // conv1 + conv2 parameters: 156 + 2,416. Mean |noise| = 2G/eps = 1 within 10 %.
        let mut diffs = Vec::new();
        for (before, after) in tensors(&model).iter().zip(tensors(&a)) {
            if before.name.starts_with("conv") {
                diffs.extend(
                    before
                        .values
                        .iter()
                        .zip(&after.values)
                        .map(|(x, y)| (y - x).abs() as f64),
                );
            }
        }
        assert_eq!(diffs.len(), 2_572);
        let mean = diffs.iter().sum::<f64>() / diffs.len() as f64;
        assert!((mean - 1.0).abs() < 0.1, "{mean}");
        assert!(perturb_device_part(&model, "relu2", &Perturbation { eps: 0.0, ..p }).is_err());
        assert!(perturb_device_part(&model, "nope", &p).is_err());
    }
}
