//! The confirm pass of a privacy profile: the fast attacker of a profile may understate
//! leakage, and an understated cell can set a threshold too high. So every cell a threshold
//! rests on ([`veil_spec::profile::deciding_cells`]: each layer's `Nf(tau)` cell and the
//! all-maps cells from `SP(tau)` on) is re-attacked from scratch at full strength (a decoder
//! trained for exactly that subset with the default attack budget, the same map subsets as
//! the fast pass), and keeps the stronger of the two attacks. Raising a cell can move a
//! threshold onto another cell, so the pass repeats until every deciding cell is confirmed.
//!
//! A cell scores random map subsets, but a planner hands *some* subset to every helper, so the
//! worst subset is what a threshold must bound. With [`ConfirmPass::every_map`] a deciding
//! cell with one map is re-attacked on every map of its layer, and keeps the worst (for two
//! or more maps the subsets are too many; those stay random).

use std::collections::BTreeSet;

use veil_data::Dataset;
use veil_model::Model;
use veil_spec::profile::{ProfileCell, deciding_cells, derive_thresholds, monotone_envelope};

use crate::run::{attack_features, gather};
use crate::{AttackConfig, AttackError, AttackReport, LayerFeatures};

/// A confirm pass: the attacked model, its data and the full-strength attack.
pub struct ConfirmPass<'a> {
    /// The profiled model.
    pub model: &'a Model,
    /// Auxiliary images (training split).
    pub aux: &'a Dataset,
    /// Victims (test split).
    pub victims: &'a Dataset,
    /// The full-strength attack (its `layer` and `maps` are set per cell).
    pub full: &'a AttackConfig,
    /// Re-attack a deciding one-map cell on every map of its layer and keep the worst.
    pub every_map: bool,
}

impl ConfirmPass<'_> {
    /// Confirms every deciding cell of `cells` (over `layers` and `taus`). Returns how many
    /// cells were re-attacked; `on_cell` hears each as it is confirmed, with every cell as
    /// it stands then.
    pub fn run(
        &self,
        layers: &[String],
        taus: &[f64],
        cells: &mut [ProfileCell],
        on_cell: &mut dyn FnMut(&ProfileCell, &[ProfileCell]),
    ) -> Result<usize, AttackError> {
        let (model, aux, victims, full) = (self.model, self.aux, self.victims, self.full);
        let mut confirmed = 0;
        loop {
            monotone_envelope(cells);
            let todo: BTreeSet<(String, usize)> = taus
                .iter()
                .flat_map(|&tau| {
                    deciding_cells(layers, cells, &derive_thresholds(layers, cells, tau))
                })
                .filter(|(l, k)| {
                    cells
                        .iter()
                        .any(|c| &c.layer == l && c.k == *k && !c.confirmed)
                })
                .collect();
            if todo.is_empty() {
                return Ok(confirmed);
            }
            let mut current: Option<LayerFeatures> = None;
            for (layer, k) in todo {
                if current.as_ref().is_none_or(|f| f.layer != layer) {
                    drop(current.take()); // free the previous layer's features first
                    current = Some(LayerFeatures::extract(
                        model,
                        aux,
                        victims,
                        &layer,
                        full.aux_samples,
                        full.victims,
                    )?);
                }
                let Some(feats) = current.as_ref() else {
                    continue;
                };
                let r = self.attack_cell(feats, &layer, k)?;
                // Every cell of (layer, k) takes the result (a layer listed twice has two), so
                // none stays unconfirmed and the pass ends.
                let mut last = None;
                for (at, cell) in cells.iter_mut().enumerate() {
                    if cell.layer != layer || cell.k != k {
                        continue;
                    }
                    if r.ssim_mean > cell.ssim_mean {
                        cell.ssim_mean = r.ssim_mean;
                        cell.ssim_std = r.ssim_std;
                        cell.psnr_mean = r.psnr_mean;
                        cell.mse_mean = r.mse_mean;
                    }
                    cell.confirmed = true;
                    last = Some(at);
                }
                let Some(at) = last else {
                    continue;
                };
                confirmed += 1;
                let cell = cells[at].clone();
                monotone_envelope(cells);
                on_cell(&cell, cells);
            }
        }
    }
}

impl ConfirmPass<'_> {
    /// The full-strength attack of cell `(layer, k)` on `feats`: on the cell's random subsets,
    /// or with [`ConfirmPass::every_map`] and `k = 1` on every single map, the worst.
    fn attack_cell(
        &self,
        feats: &LayerFeatures,
        layer: &str,
        k: usize,
    ) -> Result<AttackReport, AttackError> {
        let cfg = AttackConfig {
            layer: layer.to_string(),
            maps: Some(k),
            ..self.full.clone()
        };
        let maps = feats.shape.as_chw().map_or(1, |(c, _, _)| c);
        if !(self.every_map && k == 1 && maps > 1) {
            return attack_features(feats, &cfg, &mut |_| {});
        }
        let mut worst: Option<AttackReport> = None;
        for m in 0..maps {
            let one = single_map(feats, m);
            let cfg = AttackConfig {
                maps: None,
                ..cfg.clone()
            };
            let r = attack_features(&one, &cfg, &mut |_| {})?;
            if worst.as_ref().is_none_or(|w| r.ssim_mean > w.ssim_mean) {
                worst = Some(r);
            }
        }
        worst.ok_or_else(|| AttackError::Invalid(format!("{layer} has no maps")))
    }
}

/// The features of map `m` of `feats` alone (shape `[1, h, w]`; the same device part, so
/// the decoder still mirrors it).
fn single_map(feats: &LayerFeatures, m: usize) -> LayerFeatures {
    let (p, h, w) = feats.shape.as_chw().unwrap_or((1, 1, feats.shape.numel()));
    LayerFeatures {
        layer: feats.layer.clone(),
        shape: veil_spec::Shape::chw(1, h, w),
        aux: feats.aux.clone(),
        victims: feats.victims.clone(),
        aux_feats: gather(&feats.aux_feats, p, h * w, &[m]),
        victim_feats: gather(&feats.victim_feats, p, h * w, &[m]),
        device: feats.device.clone(),
    }
}
