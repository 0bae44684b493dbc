//! Running one attack: feature extraction (cached once), map selection, decoder training,
//! reconstruction and scoring.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use veil_data::Dataset;
use veil_metrics::{Image, ImageScores, Summary};
use veil_model::inversion::MatchConfig;
use veil_model::{Model, ModelError, TrainConfig, fit_regression};
use veil_spec::{ModelSpec, Shape};

use crate::decoder::decoder_spec;

/// Errors of the attack pipeline.
#[derive(Debug, thiserror::Error)]
pub enum AttackError {
    /// The model engine failed (shapes, layers, weights).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The decoder spec could not be built.
    #[error(transparent)]
    Spec(#[from] veil_spec::SpecError),
    /// Scoring failed.
    #[error(transparent)]
    Metric(#[from] veil_metrics::MetricError),
    /// A request that cannot be served (e.g. more maps than the layer has).
    #[error("{0}")]
    Invalid(String),
    /// Writing an output file failed.
    #[error("cannot write {path}: {message}")]
    Write {
        /// File path.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A chart could not be drawn.
    #[error(transparent)]
    Plot(#[from] veil_plot::PlotError),
    /// An image or dataset could not be read.
    #[error(transparent)]
    Data(#[from] veil_data::DataError),
    /// A file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Which feature maps the attacker observes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum MapSelection {
    /// `k` maps drawn at random (seeded) for each draw.
    Random,
    /// Maps `0..k` (a contiguous block, as a helper holding consecutive segments).
    Contiguous,
}

/// What the attacker knows of the device part (He et al., ACSAC 2019).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum AttackSetting {
    /// Queries the device part on its own images and trains an inverse network.
    #[default]
    BlackBox,
    /// Knows the device part's weights; searches for the image whose features match
    /// (regularized maximum likelihood, no auxiliary data).
    WhiteBox,
    /// Can neither query nor read the device part: trains a shadow device part in front of
    /// the (known) rest of the model on its own labelled images, then an inverse network on
    /// the shadow, and applies it to the real features.
    QueryFree,
}

/// The decoder's architecture ([`crate::decoder`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum DecoderKind {
    /// The device part's path walked back to the image (falls back to `shape` for features
    /// no device part produced).
    #[default]
    Mirror,
    /// Derived from the feature shape alone (veil's decoder before the mirror): kept for
    /// comparisons.
    Shape,
}

/// Auxiliary images an attack queries by default (from the training split).
pub const DEFAULT_AUX: usize = 20_000;

/// Settings of one attack.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct AttackConfig {
    /// Split layer: the device sends this layer's output.
    pub layer: String,
    /// Observed maps `k` (all when `None`).
    pub maps: Option<usize>,
    /// How the `k` maps are chosen.
    pub selection: MapSelection,
    /// Independent draws of random map subsets averaged (1 for contiguous or all maps).
    pub draws: usize,
    /// Auxiliary images the attacker queries (from the training split).
    pub aux_samples: usize,
    /// Victim images reconstructed and scored (from the test split).
    pub victims: usize,
    /// Decoder training settings (epochs, batch, lr, seed).
    pub train: TrainConfig,
    /// What the attacker knows of the device part.
    #[serde(default)]
    pub setting: AttackSetting,
    /// The decoder architecture (black-box and query-free attacks; profiles always mirror).
    #[serde(default)]
    pub decoder: DecoderKind,
    /// The white-box search (steps, step size, total-variation weight).
    #[serde(default)]
    pub white_box: MatchConfig,
    /// Query-free: epochs of shadow training.
    #[serde(default = "default_shadow_epochs")]
    pub shadow_epochs: usize,
}

fn default_shadow_epochs() -> usize {
    15
}

impl AttackConfig {
    /// The default attack with `aux` auxiliary images, `victims` victims and `epochs` decoder
    /// epochs.
    pub fn with_budget(aux: usize, victims: usize, epochs: usize) -> Self {
        let default = AttackConfig::default();
        AttackConfig {
            aux_samples: aux,
            victims,
            train: TrainConfig {
                epochs,
                ..default.train.clone()
            },
            ..default
        }
    }
}

impl Default for AttackConfig {
    fn default() -> Self {
        AttackConfig {
            layer: "conv1".into(),
            maps: None,
            selection: MapSelection::Random,
            draws: 1,
            aux_samples: DEFAULT_AUX,
            victims: 1_000,
            train: TrainConfig {
                epochs: 10,
                batch_size: 64,
                lr: 1e-3,
                ..TrainConfig::default()
            },
            setting: AttackSetting::BlackBox,
            decoder: DecoderKind::Mirror,
            white_box: MatchConfig::default(),
            shadow_epochs: default_shadow_epochs(),
        }
    }
}

/// Scores of one attack (over all draws).
#[derive(Clone, Debug, Serialize)]
pub struct AttackReport {
    /// Split layer.
    pub layer: String,
    /// What the attacker knew.
    pub setting: AttackSetting,
    /// Shape of that layer's output `[P, h, w]` or `[n]`.
    pub feature_shape: Vec<usize>,
    /// Maps observed (`k`).
    pub maps: usize,
    /// Maps the layer has (`P`).
    pub total_maps: usize,
    /// Map selection rule.
    pub selection: MapSelection,
    /// Draws averaged.
    pub draws: usize,
    /// Victims scored per draw.
    pub victims: usize,
    /// Auxiliary images used for training.
    pub aux_samples: usize,
    /// SSIM mean over all victims and draws.
    pub ssim_mean: f64,
    /// SSIM population standard deviation.
    pub ssim_std: f64,
    /// PSNR mean (dB).
    pub psnr_mean: f64,
    /// PSNR standard deviation.
    pub psnr_std: f64,
    /// MSE mean.
    pub mse_mean: f64,
    /// MSE standard deviation.
    pub mse_std: f64,
    /// Final decoder training loss (last draw).
    pub train_loss: f64,
    /// Seconds spent (features, training, scoring).
    pub seconds: f64,
    /// Reconstructions of the first victims of the last draw (for the image grid).
    #[serde(skip)]
    pub examples: Vec<Vec<f32>>,
}

/// The order in which draw `draw` takes maps: a seeded permutation of `0..p` (the identity
/// for contiguous blocks). The `k` maps of a draw are the first `k` of its order, so the
/// subsets of one draw are nested as `k` grows.
pub fn map_order(p: usize, selection: MapSelection, seed: u64, draw: usize) -> Vec<usize> {
    let mut all: Vec<usize> = (0..p).collect();
    if selection == MapSelection::Random {
        let mut rng = ChaCha8Rng::seed_from_u64(
            seed ^ (0x9e37_79b9_7f4a_7c15u64.wrapping_mul(draw as u64 + 1)),
        );
        all.shuffle(&mut rng);
    }
    all
}

/// Maps observed in draw `draw`: `k` of `p` (the first `k` of [`map_order`]), sorted.
pub fn select_maps(
    p: usize,
    k: usize,
    selection: MapSelection,
    seed: u64,
    draw: usize,
) -> Vec<usize> {
    let mut chosen = map_order(p, selection, seed, draw);
    chosen.truncate(k.min(p));
    chosen.sort_unstable();
    chosen
}

/// Runs `images` through the device part (layers up to `split_end`), in batches.
pub(crate) fn features(
    model: &Model,
    images: &Dataset,
    split_end: usize,
) -> Result<Vec<f32>, ModelError> {
    let per = images.sample_len();
    let mut out = Vec::new();
    for start in (0..images.len()).step_by(500) {
        let end = (start + 500).min(images.len());
        let x = model.input(images.samples[start * per..end * per].to_vec())?;
        out.extend(model.forward_range(x, 0..split_end)?.into_values()?);
    }
    Ok(out)
}

/// Keeps maps `keep` of every `[p, plane]` sample (flat features keep everything).
pub(crate) fn gather(feats: &[f32], p: usize, plane: usize, keep: &[usize]) -> Vec<f32> {
    let per = p * plane;
    let mut out = Vec::with_capacity(feats.len() / per.max(1) * keep.len() * plane);
    for sample in feats.chunks_exact(per) {
        for &m in keep {
            out.extend_from_slice(&sample[m * plane..(m + 1) * plane]);
        }
    }
    out
}

/// What the attacker collected at one split layer: the taken auxiliary and victim images and
/// the device part's outputs for them. Extracted once and reused for every number of maps.
pub struct LayerFeatures {
    /// Split layer name as in the spec.
    pub layer: String,
    /// Output shape of the split layer.
    pub shape: Shape,
    /// Auxiliary images actually used.
    pub aux: Dataset,
    /// Victim images actually used.
    pub victims: Dataset,
    /// Device-part outputs for `aux`, sample-major.
    pub aux_feats: Vec<f32>,
    /// Device-part outputs for `victims`, sample-major.
    pub victim_feats: Vec<f32>,
    /// The device part whose output the features are (image in, split layer out), from which
    /// the decoder mirrors its path back to the image; `None` for features no device part
    /// produced as they are (an assembled helper view, an obfuscator's output).
    pub device: Option<ModelSpec>,
}

impl LayerFeatures {
    /// The device part the decoder of `cfg` mirrors: none for the shape decoder.
    fn mirror_of(&self, cfg: &AttackConfig) -> Option<&ModelSpec> {
        self.device
            .as_ref()
            .filter(|_| cfg.decoder == DecoderKind::Mirror)
    }

    /// Queries the device part of `model` up to `layer` on the first `aux_samples` auxiliary
    /// and first `victim_count` victim images.
    pub fn extract(
        model: &Model,
        aux: &Dataset,
        victims: &Dataset,
        layer: &str,
        aux_samples: usize,
        victim_count: usize,
    ) -> Result<Self, AttackError> {
        let split_end = model.spec().split_index(layer)? + 1;
        if victims.shape != aux.shape || aux.is_empty() || victims.is_empty() {
            return Err(AttackError::Invalid(
                "auxiliary and victim images must be non-empty and of one shape".into(),
            ));
        }
        let aux = aux.take(aux_samples);
        let victims = victims.take(victim_count);
        let spec = model.spec();
        let device = ModelSpec::new(
            format!("{} up to {layer}", spec.name),
            spec.input_shape.clone(),
            spec.layers[..split_end].to_vec(),
        )?;
        Ok(LayerFeatures {
            device: Some(device),
            layer: model.spec().layers[split_end - 1].name.clone(),
            shape: model.shapes()[split_end].clone(),
            aux_feats: features(model, &aux, split_end)?,
            victim_feats: features(model, &victims, split_end)?,
            aux,
            victims,
        })
    }
}

/// Attacks `model` at `cfg.layer` in `cfg.setting`: auxiliary images from `aux` (disjoint
/// from `victims`; the white-box attacker uses none).
pub fn attack(
    model: &Model,
    aux: &Dataset,
    victims: &Dataset,
    cfg: &AttackConfig,
    on_progress: &mut dyn FnMut(&str),
) -> Result<AttackReport, AttackError> {
    let started = std::time::Instant::now();
    let feats = match cfg.setting {
        AttackSetting::WhiteBox => {
            return crate::white_box::attack(model, victims, cfg, on_progress);
        }
        AttackSetting::QueryFree => {
            crate::query_free::features_for(model, aux, victims, cfg, on_progress)?
        }
        AttackSetting::BlackBox => {
            on_progress("querying the device part");
            LayerFeatures::extract(
                model,
                aux,
                victims,
                &cfg.layer,
                cfg.aux_samples,
                cfg.victims,
            )?
        }
    };
    let mut report = attack_features(&feats, cfg, on_progress)?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Trains decoders on already extracted features and scores the victims (`cfg.layer`,
/// `cfg.aux_samples` and `cfg.victims` are taken from `feats`, not re-read).
pub fn attack_features(
    feats: &LayerFeatures,
    cfg: &AttackConfig,
    on_progress: &mut dyn FnMut(&str),
) -> Result<AttackReport, AttackError> {
    let started = std::time::Instant::now();
    let feature_shape = feats.shape.clone();
    let (aux, victims) = (&feats.aux, &feats.victims);
    let (aux_feats, victim_feats) = (&feats.aux_feats, &feats.victim_feats);
    let image = aux.shape;
    let (p, plane) = match feature_shape.as_chw() {
        Some((c, h, w)) => (c, h * w),
        None => (1, feature_shape.numel()),
    };
    let (k, draws) = observed_maps(&feats.layer, &feature_shape, cfg)?;
    let mut scores = Scores::default();
    let mut train_loss = f64::NAN;
    for draw in 0..draws {
        let keep = select_maps(p, k, cfg.selection, cfg.train.seed, draw);
        let observed_shape = match feature_shape.as_chw() {
            Some((_, h, w)) => Shape::chw(k, h, w),
            None => feature_shape.clone(),
        };
        let x_aux = gather(aux_feats, p, plane, &keep);
        let x_victim = gather(victim_feats, p, plane, &keep);
        let spec = decoder_spec(feats.mirror_of(cfg), &observed_shape, image)?;
        let decoder = Model::init(spec, cfg.train.seed.wrapping_add(draw as u64))?;
        on_progress(&format!("training the decoder (draw {}/{draws})", draw + 1));
        let (decoder, report) =
            fit_regression(decoder, &x_aux, &aux.samples, &cfg.train, &mut |_| {})?;
        train_loss = report.epoch_losses.last().copied().unwrap_or(f64::NAN);
        on_progress("reconstructing the victims");
        let recon = reconstruct(&decoder, &x_victim)?;
        scores.add(victims, &recon)?;
    }
    scores.report(
        cfg.setting,
        &feats.layer,
        &feature_shape,
        (k, p),
        cfg.selection,
        draws,
        aux.len(),
        train_loss,
        started.elapsed().as_secs_f64(),
    )
}

/// The maps observed `k` and the draws averaged for an attack on features of `shape`.
pub(crate) fn observed_maps(
    layer: &str,
    shape: &Shape,
    cfg: &AttackConfig,
) -> Result<(usize, usize), AttackError> {
    let p = shape.as_chw().map_or(1, |(c, _, _)| c);
    let k = cfg.maps.unwrap_or(p);
    if k == 0 || k > p || (k < p && shape.as_chw().is_none()) {
        return Err(AttackError::Invalid(format!(
            "layer {layer} has {p} feature maps ({shape}); cannot observe {k}"
        )));
    }
    let draws = if k == p || cfg.selection == MapSelection::Contiguous {
        1
    } else {
        cfg.draws.max(1)
    };
    Ok((k, draws))
}

/// A decoder trained on all maps of `feats` with `cfg.train`: the inversion an attacker holds
/// after querying the device as it was then. Score later features with
/// [`score_with_decoder`] (a *stale* attacker, who does not retrain when the device changes).
pub fn train_decoder(feats: &LayerFeatures, cfg: &AttackConfig) -> Result<Model, AttackError> {
    let spec = decoder_spec(feats.mirror_of(cfg), &feats.shape, feats.aux.shape)?;
    let decoder = Model::init(spec, cfg.train.seed)?;
    let (decoder, _) = fit_regression(
        decoder,
        &feats.aux_feats,
        &feats.aux.samples,
        &cfg.train,
        &mut |_| {},
    )?;
    Ok(decoder)
}

/// Scores `decoder` (from [`train_decoder`]) on `victim_feats`, the features of `victims`
/// as the device now sends them (all maps of `layer`, shape `shape`).
pub fn score_with_decoder(
    decoder: &Model,
    layer: &str,
    shape: &Shape,
    victims: &Dataset,
    victim_feats: &[f32],
) -> Result<AttackReport, AttackError> {
    let started = std::time::Instant::now();
    let p = shape.as_chw().map_or(1, |(c, _, _)| c);
    let recon = reconstruct(decoder, victim_feats)?;
    let mut scores = Scores::default();
    scores.add(victims, &recon)?;
    scores.report(
        AttackSetting::BlackBox,
        layer,
        shape,
        (p, p),
        MapSelection::Contiguous,
        1,
        0,
        f64::NAN,
        started.elapsed().as_secs_f64(),
    )
}

/// Runs `decoder` over sample-major inputs in batches of 500 and clamps the output to the
/// image range `[0, 1]`.
pub(crate) fn reconstruct(decoder: &Model, inputs: &[f32]) -> Result<Vec<f32>, AttackError> {
    let per_in = decoder.spec().input_shape.numel().max(1);
    let n = inputs.len() / per_in;
    let mut recon = Vec::new();
    for start in (0..n).step_by(500) {
        let end = (start + 500).min(n);
        let x = decoder.input(inputs[start * per_in..end * per_in].to_vec())?;
        recon.extend(decoder.forward(x)?.into_values()?);
    }
    recon.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
    Ok(recon)
}

/// Per-victim scores gathered over draws, and the latest reconstructions for the grid.
#[derive(Default)]
pub(crate) struct Scores {
    ssim: Vec<f64>,
    psnr: Vec<f64>,
    mse: Vec<f64>,
    examples: Vec<Vec<f32>>,
}

impl Scores {
    /// Scores reconstructions `recon` (sample-major) against `victims`.
    pub(crate) fn add(&mut self, victims: &Dataset, recon: &[f32]) -> Result<(), AttackError> {
        let per = victims.sample_len();
        if recon.len() != victims.len() * per {
            return Err(AttackError::Invalid(format!(
                "{} reconstructed values for {} victims of {per}",
                recon.len(),
                victims.len()
            )));
        }
        for i in 0..victims.len() {
            let a = Image::new(victims.sample(i), victims.shape)?;
            let b = Image::new(&recon[i * per..(i + 1) * per], victims.shape)?;
            let s = ImageScores::compute(&a, &b)?;
            self.ssim.push(s.ssim);
            // PSNR is infinite for an exact copy; cap it so means stay finite.
            self.psnr.push(s.psnr.min(100.0));
            self.mse.push(s.mse);
        }
        self.examples = recon
            .chunks_exact(per)
            .take(16)
            .map(<[f32]>::to_vec)
            .collect();
        Ok(())
    }

    /// Summarises into a report; `maps` is `(k, P)`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn report(
        self,
        setting: AttackSetting,
        layer: &str,
        feature_shape: &Shape,
        maps: (usize, usize),
        selection: MapSelection,
        draws: usize,
        aux_samples: usize,
        train_loss: f64,
        seconds: f64,
    ) -> Result<AttackReport, AttackError> {
        let (s, ps, m) = (
            Summary::of(&self.ssim)?,
            Summary::of(&self.psnr)?,
            Summary::of(&self.mse)?,
        );
        if !(s.mean.is_finite() && ps.mean.is_finite() && m.mean.is_finite()) {
            // A score of NaN must never read as a result (a NaN SSIM sorts as "no leak").
            return Err(AttackError::Invalid(format!(
                "the attack at {layer} diverged: its reconstructions are not finite numbers (SSIM {}); lower the learning rate or the prior's weight",
                s.mean
            )));
        }
        Ok(AttackReport {
            setting,
            layer: layer.to_string(),
            feature_shape: feature_shape.dims().to_vec(),
            maps: maps.0,
            total_maps: maps.1,
            selection,
            draws,
            victims: self.ssim.len() / draws.max(1),
            aux_samples,
            ssim_mean: s.mean,
            ssim_std: s.std,
            psnr_mean: ps.mean,
            psnr_std: ps.std,
            mse_mean: m.mean,
            mse_std: m.std,
            train_loss,
            seconds,
            examples: self.examples,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_selection_is_seeded_sorted_and_sized() {
        let a = select_maps(16, 5, MapSelection::Random, 3, 0);
        assert_eq!(a, select_maps(16, 5, MapSelection::Random, 3, 0));
        assert_ne!(a, select_maps(16, 5, MapSelection::Random, 3, 1));
        assert_eq!(a.len(), 5);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            select_maps(16, 3, MapSelection::Contiguous, 0, 0),
            vec![0, 1, 2]
        );
    }

    #[test]
    fn gather_keeps_the_chosen_planes() {
        let feats: Vec<f32> = (0..2 * 3 * 2).map(|v| v as f32).collect(); // 2 samples, 3 maps of 2
        assert_eq!(
            gather(&feats, 3, 2, &[0, 2]),
            vec![0.0, 1.0, 4.0, 5.0, 6.0, 7.0, 10.0, 11.0]
        );
    }
}
