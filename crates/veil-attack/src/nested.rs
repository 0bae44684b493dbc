//! Every number of observed maps from one chain of decoders: the fast attacker of a privacy
//! profile.
//!
//! A profile needs a decoder for each `k` of the `P` maps of a layer; training each from
//! scratch costs `P` full trainings per layer. The nested chain trains **one** decoder on all
//! `P` maps, then walks down a random order of the maps: the decoder for the first `k` maps
//! of the order starts from the decoder for the first `k + 1` and is fine-tuned on the
//! smaller subset. The inputs keep all `P` channels, unseen maps set to zero, so each step
//! removes one input without changing the architecture. Every decoder of the chain is
//! specialised to exactly the subset it scores (the attacker knows which maps it holds), and
//! each starts close to a good solution, so a fraction of an epoch per step suffices.
//! `docs/BENCHMARKS.md` compares the chain with decoders trained from scratch per subset.
//!
//! An attacker holding the first `k` maps of the order also holds the first `j < k`, so it
//! may zero the extra maps and use the decoder of step `j`. It picks, for every `k`, the
//! step `j <= k` whose decoder reconstructs a held-out slice of its own auxiliary images best
//! (mean SSIM; never the victims), which makes the scores monotone in `k` by construction
//! and keeps a fine-tuning step that went astray from understating the leakage.

use veil_metrics::{Image, ssim};
use veil_model::{Model, TrainConfig, fit_regression_with};

use crate::decoder::decoder_spec;
use crate::run::reconstruct;
use crate::{AttackError, LayerFeatures};

/// Appends `sample` (`p` maps of `plane` values) with the maps not in `seen` set to zero.
fn push_masked(out: &mut Vec<f32>, sample: &[f32], plane: usize, seen: &[bool]) {
    for (m, &on) in seen.iter().enumerate() {
        if on {
            out.extend_from_slice(&sample[m * plane..(m + 1) * plane]);
        } else {
            out.extend(std::iter::repeat_n(0.0, plane));
        }
    }
}

/// How a chain is trained.
#[derive(Clone, Debug, PartialEq)]
pub struct ChainConfig {
    /// Training of the root decoder on all maps (epochs, batch, learning rate, seed).
    pub root: TrainConfig,
    /// Fine-tuning of each smaller subset from the previous decoder.
    pub step: TrainConfig,
    /// Auxiliary images a fine-tuning step uses (the first ones of the auxiliary set); the
    /// step down to `k` maps uses `step_samples * max(1, P / (2k))` of them, since few maps
    /// are the hardest to decode and decide the privacy thresholds.
    pub step_samples: usize,
    /// The last auxiliary images, never trained on, that rank the decoders of a chain.
    pub validation: usize,
}

/// One step of a chain.
pub struct ChainStep {
    /// Maps the step's decoder was specialised to (the first `k` of the order).
    pub k: usize,
    /// Its mean SSIM on the held-out auxiliary images.
    pub validation_ssim: f64,
    /// Its reconstructions of the victims, sample-major, clamped to `[0, 1]`.
    pub reconstructions: Vec<f32>,
}

impl ChainConfig {
    /// Auxiliary images available for training once the validation slice is set aside.
    fn train_len(&self, feats: &LayerFeatures) -> Result<usize, AttackError> {
        let n = feats.aux.len();
        if self.validation == 0 || self.validation >= n {
            return Err(AttackError::Invalid(format!(
                "a chain needs 1..{n} held-out validation images out of {n} auxiliary ones, got {}",
                self.validation
            )));
        }
        Ok(n - self.validation)
    }
}

/// Trains `decoder` further (or from its initial weights) with only the maps in `seen`.
fn fit_subset(
    decoder: Model,
    feats: &LayerFeatures,
    seen: &[bool],
    samples: usize,
    cfg: &TrainConfig,
) -> Result<Model, AttackError> {
    let plane = feats.shape.dims()[1..].iter().product::<usize>();
    let per = seen.len() * plane;
    let n = samples.max(1);
    let mut fill = |batch: &[usize], xs: &mut Vec<f32>| {
        for &i in batch {
            push_masked(xs, &feats.aux_feats[i * per..(i + 1) * per], plane, seen);
        }
    };
    let targets = &feats.aux.samples[..n * feats.aux.sample_len()];
    let (decoder, _) = fit_regression_with(decoder, n, targets, cfg, &mut fill, &mut |_| {})?;
    Ok(decoder)
}

/// Reconstructions by `decoder` of the samples whose features are `features`, from the maps
/// in `seen`.
fn reconstruct_subset(
    decoder: &Model,
    features: &[f32],
    plane: usize,
    seen: &[bool],
) -> Result<Vec<f32>, AttackError> {
    let mut inputs = Vec::with_capacity(features.len());
    for sample in features.chunks_exact(seen.len() * plane) {
        push_masked(&mut inputs, sample, plane, seen);
    }
    reconstruct(decoder, &inputs)
}

/// Mean SSIM of `decoder` on the held-out auxiliary images (the last `validation` ones).
fn validation_ssim(
    decoder: &Model,
    feats: &LayerFeatures,
    seen: &[bool],
    validation: usize,
) -> Result<f64, AttackError> {
    let plane = feats.shape.dims()[1..].iter().product::<usize>();
    let start = feats.aux.len() - validation;
    let per_feat = seen.len() * plane;
    let recon = reconstruct_subset(decoder, &feats.aux_feats[start * per_feat..], plane, seen)?;
    let per = feats.aux.sample_len();
    let mut sum = 0.0;
    for i in 0..validation {
        let a = Image::new(feats.aux.sample(start + i), feats.aux.shape)?;
        let b = Image::new(&recon[i * per..(i + 1) * per], feats.aux.shape)?;
        sum += ssim(&a, &b)?;
    }
    Ok(sum / validation as f64)
}

/// The root of the chains of a layer: a decoder trained on all `P` maps of `feats`.
pub fn train_root(feats: &LayerFeatures, cfg: &ChainConfig) -> Result<Model, AttackError> {
    let Some((p, _, _)) = feats.shape.as_chw() else {
        return Err(AttackError::Invalid(format!(
            "layer {} gives flat features {}; a chain needs feature maps",
            feats.layer, feats.shape
        )));
    };
    let decoder = Model::init(
        decoder_spec(feats.device.as_ref(), &feats.shape, feats.aux.shape)?,
        cfg.root.seed,
    )?;
    fit_subset(
        decoder,
        feats,
        &vec![true; p],
        cfg.train_len(feats)?,
        &cfg.root,
    )
}

/// Walks one chain: `order` is a permutation of the `P` maps and `ks` the numbers of maps to
/// score (any order; `P` is always included). For each `k`, from large to small, the decoder
/// specialised to the first `k` maps of `order` is fine-tuned from the previous one. Returns
/// the steps from `P` down. `root` is the decoder of [`train_root`].
pub fn walk_chain(
    root: &Model,
    feats: &LayerFeatures,
    order: &[usize],
    ks: &[usize],
    cfg: &ChainConfig,
) -> Result<Vec<ChainStep>, AttackError> {
    let p = feats.shape.as_chw().map_or(0, |(c, _, _)| c);
    let mut sorted = order.to_vec();
    sorted.sort_unstable();
    if p == 0 || sorted != (0..p).collect::<Vec<_>>() {
        return Err(AttackError::Invalid(format!(
            "a chain order must be a permutation of the {p} maps of {}",
            feats.layer
        )));
    }
    let train_len = cfg.train_len(feats)?;
    let plane = feats.shape.dims()[1..].iter().product::<usize>();
    let mut steps: Vec<usize> = ks.iter().copied().filter(|&k| k >= 1 && k < p).collect();
    steps.sort_unstable_by(|a, b| b.cmp(a));
    steps.dedup();
    let mut seen = vec![true; p];
    let mut decoder = root.clone();
    let mut out = Vec::with_capacity(steps.len() + 1);
    let record = |decoder: &Model, seen: &[bool], k: usize| -> Result<ChainStep, AttackError> {
        Ok(ChainStep {
            k,
            validation_ssim: validation_ssim(decoder, feats, seen, cfg.validation)?,
            reconstructions: reconstruct_subset(decoder, &feats.victim_feats, plane, seen)?,
        })
    };
    out.push(record(&decoder, &seen, p)?);
    for k in steps {
        order[k..].iter().for_each(|&m| seen[m] = false);
        let step = TrainConfig {
            seed: cfg.step.seed.wrapping_add(k as u64),
            ..cfg.step.clone()
        };
        let samples = (cfg.step_samples * (p / (2 * k)).max(1)).min(train_len);
        decoder = fit_subset(decoder, feats, &seen, samples, &step)?;
        out.push(record(&decoder, &seen, k)?);
    }
    Ok(out)
}

/// For each step of `steps` (as returned by [`walk_chain`]), the index of the step the
/// attacker uses: the best validation SSIM among the steps with at most as many maps.
pub fn best_usable(steps: &[ChainStep]) -> Vec<usize> {
    steps
        .iter()
        .map(|step| {
            (0..steps.len())
                .filter(|&j| steps[j].k <= step.k)
                .max_by(|&a, &b| {
                    steps[a]
                        .validation_ssim
                        .total_cmp(&steps[b].validation_ssim)
                })
                .unwrap_or(0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(k: usize, v: f64) -> ChainStep {
        ChainStep {
            k,
            validation_ssim: v,
            reconstructions: Vec::new(),
        }
    }

    #[test]
    fn the_attacker_uses_the_best_decoder_it_may() {
        // A chain P=4 -> 1 whose step for k=3 went astray.
        let steps = [step(4, 0.9), step(3, 0.5), step(2, 0.7), step(1, 0.4)];
        assert_eq!(best_usable(&steps), vec![0, 2, 2, 3]);
    }

    #[test]
    fn masked_samples_zero_the_unseen_maps() {
        let sample = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 3 maps of 2 values
        let mut out = vec![9.0];
        push_masked(&mut out, &sample, 2, &[true, false, true]);
        assert_eq!(out, vec![9.0, 1.0, 2.0, 0.0, 0.0, 5.0, 6.0]);
    }
}
