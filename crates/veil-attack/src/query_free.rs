//! The query-free attack (He et al., ACSAC 2019): an attacker who holds the rest of the
//! model (the cloud part, after the split) but can neither query nor read the device part.
//! It trains a **shadow** device part of the same architecture in front of the frozen real
//! cloud part on its own labelled images, so the shadow learns features the cloud part can
//! use, close to the real ones; then it trains an inverse network on the shadow's features
//! and applies it to the features the real device sends.

use veil_data::Dataset;
use veil_model::{Model, TrainConfig, train};

use crate::run::features;
use crate::{AttackConfig, AttackError, LayerFeatures};

/// Seed offset of the shadow's initial weights (never the real model's own initialisation).
const SHADOW_SEED: u64 = 0x5EED_5AAD;

/// The shadow of `model` for a split after `cfg.layer`: fresh device-part weights, the real
/// cloud-part weights (frozen), trained `cfg.shadow_epochs` epochs on the first
/// `cfg.aux_samples` of `aux` with their labels.
pub fn train_shadow(
    model: &Model,
    aux: &Dataset,
    cfg: &AttackConfig,
    on_progress: &mut dyn FnMut(&str),
) -> Result<Model, AttackError> {
    let spec = model.spec();
    let split_end = spec.split_index(&cfg.layer)? + 1;
    let cloud: Vec<String> = spec.layers[split_end..]
        .iter()
        .map(|l| l.name.clone())
        .collect();
    let fresh = Model::init(spec.clone(), cfg.train.seed ^ SHADOW_SEED)?;
    let real = model.named_tensors()?;
    let mixed = fresh
        .named_tensors()?
        .into_iter()
        .map(|t| {
            let layer = t.name.rsplit_once('.').map_or(t.name.as_str(), |(l, _)| l);
            if cloud.iter().any(|c| c == layer) {
                real.iter().find(|r| r.name == t.name).cloned().unwrap_or(t)
            } else {
                t
            }
        })
        .collect();
    let shadow = fresh.with_tensors(mixed)?;
    let train_cfg = TrainConfig {
        epochs: cfg.shadow_epochs.max(1),
        frozen: cloud,
        seed: cfg.train.seed ^ SHADOW_SEED,
        ..TrainConfig::default()
    };
    let images = aux.take(cfg.aux_samples);
    let total = cfg.shadow_epochs.max(1);
    let (shadow, _) = train(shadow, &images, None, &train_cfg, &mut |s| {
        if s.step == 1 || s.step % 200 == 0 {
            on_progress(&format!(
                "training the shadow device part: epoch {}/{total}, loss {:.3}",
                s.epoch, s.loss
            ));
        }
    })?;
    Ok(shadow)
}

/// What the query-free attacker trains on and attacks: the shadow's features of its own
/// auxiliary images, and the real device part's features of the victims.
pub fn features_for(
    model: &Model,
    aux: &Dataset,
    victims: &Dataset,
    cfg: &AttackConfig,
    on_progress: &mut dyn FnMut(&str),
) -> Result<LayerFeatures, AttackError> {
    let shadow = train_shadow(model, aux, cfg, on_progress)?;
    on_progress("querying the shadow");
    let mut feats = LayerFeatures::extract(
        &shadow,
        aux,
        victims,
        &cfg.layer,
        cfg.aux_samples,
        cfg.victims,
    )?;
    let split_end = model.spec().layer_index(&cfg.layer)? + 1;
    feats.victim_feats = features(model, &feats.victims, split_end)?;
    Ok(feats)
}
