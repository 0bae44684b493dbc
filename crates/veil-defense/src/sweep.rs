//! Judging shields with the spear: for each setting of a defence, the accuracy the defended
//! model keeps on the test split and the SSIM/PSNR/MSE the black-box attack
//! (`veil-attack`) still reaches on what the defended device sends.
//!
//! The attacker queries the *deployed* device: for model perturbation it collects features
//! from the perturbed device part, for feature shields it sees noisy or dropped-out features
//! for its auxiliary images too, and trains its decoder on exactly that.
//!
//! Key items: [`Judge`], [`Judge::perturbation`], [`Judge::feature_shield`], [`Row`],
//! [`summarise`].

use serde::Serialize;
use veil_attack::{AttackConfig, LayerFeatures, attack_features};
use veil_data::Split;
use veil_model::{Activation, Model};

use crate::DefenseError;
use crate::dp::{Perturbation, perturb_device_part};
use crate::features::FeatureShield;

/// One measured setting and draw.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// Defence name (`dp`, `gaussian`, `laplace`, `dropout`, `split`, `obfnet1`, `obfnet2`).
    pub defence: String,
    /// Its parameter (eps, sigma, scale, p, the split layer's index or the ObfNet count).
    pub param: f64,
    /// The setting in words (`eps=5`, `sigma=0.5`, `p=0.3`, `conv2`, `obfnet2 x10`).
    pub label: String,
    /// Noise draw.
    pub draw: usize,
    /// Test accuracy of the defended model.
    pub accuracy: f64,
    /// Attack SSIM mean over the victims.
    pub ssim_mean: f64,
    /// Attack PSNR mean (dB).
    pub psnr_mean: f64,
    /// Attack MSE mean.
    pub mse_mean: f64,
    /// Reconstructions of the first victims (for an image grid; not serialised).
    #[serde(skip)]
    pub examples: Vec<Vec<f32>>,
}

impl Row {
    /// A row from an attack's scores on the defended device.
    fn scored(
        defence: &str,
        param: f64,
        label: String,
        draw: usize,
        accuracy: f64,
        r: veil_attack::AttackReport,
    ) -> Self {
        Row {
            defence: defence.into(),
            param,
            label,
            draw,
            accuracy,
            ssim_mean: r.ssim_mean,
            psnr_mean: r.psnr_mean,
            mse_mean: r.mse_mean,
            examples: r.examples,
        }
    }
}

/// Mean and spread over the draws of one setting.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SettingSummary {
    /// Defence name.
    pub defence: String,
    /// Its parameter.
    pub param: f64,
    /// The setting in words.
    pub label: String,
    /// Draws.
    pub draws: usize,
    /// Accuracy mean over draws.
    pub accuracy: f64,
    /// Accuracy standard deviation over draws.
    pub accuracy_std: f64,
    /// SSIM mean over draws.
    pub ssim_mean: f64,
    /// SSIM standard deviation over draws.
    pub ssim_std: f64,
    /// PSNR mean over draws.
    pub psnr_mean: f64,
    /// MSE mean over draws.
    pub mse_mean: f64,
}

/// Groups `rows` by (defence, param), in first-seen order.
pub fn summarise(rows: &[Row]) -> Vec<SettingSummary> {
    let mut keys: Vec<(String, f64)> = Vec::new();
    for r in rows {
        if !keys.iter().any(|(d, p)| *d == r.defence && *p == r.param) {
            keys.push((r.defence.clone(), r.param));
        }
    }
    keys.into_iter()
        .map(|(defence, param)| {
            let group: Vec<&Row> = rows
                .iter()
                .filter(|r| r.defence == defence && r.param == param)
                .collect();
            let n = group.len() as f64;
            let mean = |f: &dyn Fn(&Row) -> f64| group.iter().map(|r| f(r)).sum::<f64>() / n;
            let std = |f: &dyn Fn(&Row) -> f64| {
                let m = mean(f);
                (group.iter().map(|r| (f(r) - m).powi(2)).sum::<f64>() / n).sqrt()
            };
            SettingSummary {
                label: group[0].label.clone(),
                defence,
                param,
                draws: group.len(),
                accuracy: mean(&|r| r.accuracy),
                accuracy_std: std(&|r| r.accuracy),
                ssim_mean: mean(&|r| r.ssim_mean),
                ssim_std: std(&|r| r.ssim_mean),
                psnr_mean: mean(&|r| r.psnr_mean),
                mse_mean: mean(&|r| r.mse_mean),
            }
        })
        .collect()
}

/// A trained model, its data and the attack used to judge a defence at one split layer.
pub struct Judge<'a> {
    /// The trained (undefended) model.
    pub model: &'a Model,
    /// Auxiliary images come from `data.train`, victims and accuracy from `data.test`.
    pub data: &'a Split,
    /// Split layer (the device sends its output).
    pub split: String,
    /// Attack settings (`layer` and `maps` are overridden: the split, all maps).
    pub attack: AttackConfig,
}

impl Judge<'_> {
    fn attack(&self) -> AttackConfig {
        AttackConfig {
            layer: self.split.clone(),
            maps: None,
            ..self.attack.clone()
        }
    }

    /// What the attacker collects from `device` (the deployed model) at the split.
    fn collect(&self, device: &Model, cfg: &AttackConfig) -> Result<LayerFeatures, DefenseError> {
        LayerFeatures::extract(
            device,
            &self.data.train,
            &self.data.test,
            &self.split,
            cfg.aux_samples,
            cfg.victims,
        )
        .map_err(|e| DefenseError::Invalid(e.to_string()))
    }

    /// Model perturbation at privacy budget `eps` with clip bound `clip` (default: the device
    /// part's largest absolute parameter, so nothing is scaled), noise draw `draw`.
    pub fn perturbation(
        &self,
        eps: f64,
        clip: Option<f64>,
        draw: usize,
    ) -> Result<Row, DefenseError> {
        let p = Perturbation {
            clip,
            eps,
            seed: draw as u64,
        };
        let (deployed, _) = perturb_device_part(self.model, &self.split, &p)?;
        let accuracy = deployed.evaluate(&self.data.test)?;
        let cfg = self.attack();
        let feats = self.collect(&deployed, &cfg)?;
        let r = attack_features(&feats, &cfg, &mut |_| {})
            .map_err(|e| DefenseError::Invalid(e.to_string()))?;
        Ok(Row::scored(
            "dp",
            eps,
            format!("eps={eps}"),
            draw,
            accuracy,
            r,
        ))
    }

    /// A decoder trained on the *plain* device part (what an attacker holds if it never
    /// re-queries the device after the perturbed model is deployed); use with
    /// [`Judge::perturbation_stale`].
    pub fn stale_decoder(&self) -> Result<veil_model::Model, DefenseError> {
        let cfg = self.attack();
        let feats = self.collect(self.model, &cfg)?;
        veil_attack::train_decoder(&feats, &cfg).map_err(|e| DefenseError::Invalid(e.to_string()))
    }

    /// Model perturbation judged by a *stale* attacker: `decoder` (from
    /// [`Judge::stale_decoder`]) was trained on the plain device part and is applied to what
    /// the perturbed device sends. Weaker than [`Judge::perturbation`], whose attacker
    /// queries the deployed device; Spears and Shields' numbers follow this setting.
    pub fn perturbation_stale(
        &self,
        eps: f64,
        clip: Option<f64>,
        draw: usize,
        decoder: &veil_model::Model,
    ) -> Result<Row, DefenseError> {
        let p = Perturbation {
            clip,
            eps,
            seed: draw as u64,
        };
        let (deployed, _) = perturb_device_part(self.model, &self.split, &p)?;
        let accuracy = deployed.evaluate(&self.data.test)?;
        let cfg = self.attack();
        let feats = LayerFeatures::extract(
            &deployed,
            &self.data.test,
            &self.data.test,
            &self.split,
            1,
            cfg.victims,
        )
        .map_err(|e| DefenseError::Invalid(e.to_string()))?;
        let r = veil_attack::score_with_decoder(
            decoder,
            &feats.layer,
            &feats.shape,
            &feats.victims,
            &feats.victim_feats,
        )
        .map_err(|e| DefenseError::Invalid(e.to_string()))?;
        Ok(Row::scored(
            "dp-stale",
            eps,
            format!("eps={eps}"),
            draw,
            accuracy,
            r,
        ))
    }

    /// No shield: the attack on the plain model at this judge's split, with the plain
    /// accuracy (`accuracy_plain`, computed once by the caller). Comparing judges at
    /// deeper splits gives the "deeper split point" baseline. `draw` seeds the decoder.
    pub fn undefended(&self, accuracy_plain: f64, draw: usize) -> Result<Row, DefenseError> {
        let mut cfg = self.attack();
        cfg.train.seed = cfg.train.seed.wrapping_add(draw as u64);
        let feats = self.collect(self.model, &cfg)?;
        let r = attack_features(&feats, &cfg, &mut |_| {})
            .map_err(|e| DefenseError::Invalid(e.to_string()))?;
        Ok(Row::scored(
            "split",
            self.model.spec().split_index(&self.split)? as f64,
            self.split.clone(),
            draw,
            accuracy_plain,
            r,
        ))
    }

    /// A feature shield applied by the device to everything it sends (noise draw `draw`).
    pub fn feature_shield(&self, shield: FeatureShield, draw: usize) -> Result<Row, DefenseError> {
        let cfg = self.attack();
        let mut feats = self.collect(self.model, &cfg)?;
        let seed = 0x5eed_u64.wrapping_mul(draw as u64 + 1);
        shield.apply(&mut feats.aux_feats, seed)?;
        shield.apply(&mut feats.victim_feats, seed ^ 1)?;
        let r = attack_features(&feats, &cfg, &mut |_| {})
            .map_err(|e| DefenseError::Invalid(e.to_string()))?;
        let accuracy = self.shielded_accuracy(shield, seed ^ 2)?;
        let (defence, param, name) = match shield {
            FeatureShield::Gaussian { sigma } => ("gaussian", sigma, "sigma"),
            FeatureShield::Laplace { scale } => ("laplace", scale, "b"),
            FeatureShield::Dropout { p } => ("dropout", p, "p"),
        };
        Ok(Row::scored(
            defence,
            param,
            format!("{name}={param}"),
            draw,
            accuracy,
            r,
        ))
    }

    /// Test accuracy when the device part's output passes through `shield` before the server
    /// part runs.
    fn shielded_accuracy(&self, shield: FeatureShield, seed: u64) -> Result<f64, DefenseError> {
        let model = self.model;
        let split_end = model.spec().split_index(&self.split)? + 1;
        let layers = model.spec().layers.len();
        let test = &self.data.test;
        let per = test.sample_len();
        let mut correct = 0usize;
        for (b, start) in (0..test.len()).step_by(500).enumerate() {
            let end = (start + 500).min(test.len());
            let x = model.input(test.samples[start * per..end * per].to_vec())?;
            let sent = model.forward_range(x, 0..split_end)?;
            let shape = sent.sample_shape();
            let mut values = sent.into_values()?;
            shield.apply(&mut values, seed.wrapping_add(b as u64))?;
            let received = Activation::from_values(values, &shape, model.device())?;
            let logits = model
                .forward_range(received, split_end..layers)?
                .into_values()?;
            let classes = logits.len() / (end - start);
            for (i, row) in logits.chunks_exact(classes.max(1)).enumerate() {
                let best = veil_metrics::argmax(row);
                correct += usize::from(best == test.labels[start + i] as usize);
            }
        }
        Ok(correct as f64 / test.len().max(1) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(defence: &str, param: f64, draw: usize, acc: f64, ssim: f64) -> Row {
        Row {
            defence: defence.into(),
            param,
            label: format!("{param}"),
            draw,
            accuracy: acc,
            ssim_mean: ssim,
            psnr_mean: 10.0,
            mse_mean: 0.1,
            examples: Vec::new(),
        }
    }

    #[test]
    fn summaries_average_draws_per_setting() {
        let rows = [
            row("dp", 5.0, 0, 0.5, 0.2),
            row("dp", 5.0, 1, 0.7, 0.4),
            row("dp", 10.0, 0, 0.9, 0.6),
        ];
        let s = summarise(&rows);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].draws, s[0].param), (2, 5.0));
        assert!((s[0].accuracy - 0.6).abs() < 1e-12 && (s[0].accuracy_std - 0.1).abs() < 1e-12);
        assert!((s[0].ssim_mean - 0.3).abs() < 1e-12);
        assert_eq!(s[1].ssim_std, 0.0);
    }
}
