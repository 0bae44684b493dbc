//! The white-box attack (He et al., ACSAC 2019, regularized maximum likelihood): an attacker
//! who knows the device part's weights searches, for each victim, for the image whose
//! features match the observed ones under a total-variation prior
//! ([`veil_model::inversion::match_features`]). It needs no auxiliary data; with `k < P`
//! observed maps only those maps enter the match.

use veil_data::Dataset;
use veil_model::Model;
use veil_model::inversion::match_features;

use crate::run::{Scores, features, observed_maps, select_maps};
use crate::{AttackConfig, AttackError, AttackReport, AttackSetting};

/// Attacks `model` at `cfg.layer` knowing its weights: the first `cfg.victims` of `victims`
/// are reconstructed from their features by feature matching (`cfg.white_box`).
pub fn attack(
    model: &Model,
    victims: &Dataset,
    cfg: &AttackConfig,
    on_progress: &mut dyn FnMut(&str),
) -> Result<AttackReport, AttackError> {
    let started = std::time::Instant::now();
    let split_end = model.spec().split_index(&cfg.layer)? + 1;
    let layer = model.spec().layers[split_end - 1].name.clone();
    let shape = model.shapes()[split_end].clone();
    let victims = victims.take(cfg.victims);
    if victims.is_empty() {
        return Err(AttackError::Invalid(
            "a white-box attack needs victims".into(),
        ));
    }
    let (k, draws) = observed_maps(&layer, &shape, cfg)?;
    let (p, plane) = match shape.as_chw() {
        Some((c, h, w)) => (c, h * w),
        None => (1, shape.numel()),
    };
    on_progress("reading the victims' features");
    let targets = features(model, &victims, split_end)?;
    let mut scores = Scores::default();
    for draw in 0..draws {
        let keep = select_maps(p, k, cfg.selection, cfg.train.seed, draw);
        let mut seen = vec![0.0f32; p * plane];
        for &m in &keep {
            seen[m * plane..(m + 1) * plane].fill(1.0);
        }
        let mask: Vec<f32> = seen.iter().copied().cycle().take(targets.len()).collect();
        let mut report = |done: usize, total: usize| {
            on_progress(&format!(
                "matching features (draw {}/{draws}): {done}/{total} victims",
                draw + 1
            ));
        };
        let images = match_features(
            model,
            split_end,
            &targets,
            &mask,
            &cfg.white_box,
            &mut report,
        )?;
        scores.add(&victims, &images)?;
    }
    scores.report(
        AttackSetting::WhiteBox,
        &layer,
        &shape,
        (k, p),
        cfg.selection,
        draws,
        0,
        f64::NAN,
        started.elapsed().as_secs_f64(),
    )
}
