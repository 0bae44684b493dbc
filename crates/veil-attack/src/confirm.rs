//! The confirm pass of a privacy profile: the fast attacker of a profile may understate
//! leakage, and an understated cell can set a threshold too high. So every cell a threshold
//! rests on ([`veil_spec::profile::deciding_cells`]: each layer's `Nf(tau)` cell and the
//! all-maps cells from `SP(tau)` on) is re-attacked from scratch at full strength (a decoder
//! trained for exactly that subset with the default attack budget, the same map subsets as
//! the fast pass), and keeps the stronger of the two attacks. Raising a cell can move a
//! threshold onto another cell, so the pass repeats until every deciding cell is confirmed.

use std::collections::BTreeSet;

use veil_data::Dataset;
use veil_model::Model;
use veil_spec::profile::{ProfileCell, deciding_cells, derive_thresholds, monotone_envelope};

use crate::run::attack_features;
use crate::{AttackConfig, AttackError, LayerFeatures};

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
}

impl ConfirmPass<'_> {
    /// Confirms every deciding cell of `cells` (over `layers` and `taus`). Returns how many
    /// cells were re-attacked; `on_cell` hears each as it is confirmed.
    pub fn run(
        &self,
        layers: &[String],
        taus: &[f64],
        cells: &mut [ProfileCell],
        on_cell: &mut dyn FnMut(&ProfileCell),
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
                let cfg = AttackConfig {
                    layer: layer.clone(),
                    maps: Some(k),
                    ..full.clone()
                };
                let r = attack_features(feats, &cfg, &mut |_| {})?;
                let Some(cell) = cells.iter_mut().find(|c| c.layer == layer && c.k == k) else {
                    continue;
                };
                if r.ssim_mean > cell.ssim_mean {
                    cell.ssim_mean = r.ssim_mean;
                    cell.ssim_std = r.ssim_std;
                    cell.psnr_mean = r.psnr_mean;
                    cell.mse_mean = r.mse_mean;
                }
                cell.confirmed = true;
                confirmed += 1;
                on_cell(cell);
            }
        }
    }
}
