//! Privacy profiles: the contract between the attack that measures leakage (`veil profile`,
//! veil-attack) and the planner that enforces it (veil-plan), SYSTEM.md section 3. One
//! schema and one threshold rule, so the planner can never enforce other thresholds than the
//! ones a profile reports.
//!
//! - [`Profile`]: the versioned JSON table SSIM(layer, k) ([`ProfileCell`]s under the key
//!   `entries`) with listed [`Thresholds`] and an optional `source` note. Writers may add
//!   fields of their own beside these (veil-attack adds its attack settings); readers ignore
//!   them.
//! - [`derive_thresholds`]: for a tolerated SSIM `tau`, `Nf_l(tau)` is the largest `k` whose
//!   measured SSIM at layer `l` is `<= tau` (0 if none), and `SP(tau)` the first profiled
//!   layer from which every later profiled layer, with all its maps, measures `<= tau`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::SpecError;

/// Version of the profile JSON layout.
pub const PROFILE_VERSION: u32 = 1;

/// One measured cell: the attack's scores at `layer` when it sees `k` of `total_maps` maps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProfileCell {
    /// Split layer.
    pub layer: String,
    /// Maps observed.
    pub k: usize,
    /// Maps of the layer.
    pub total_maps: usize,
    /// SSIM mean over victims (and draws).
    pub ssim_mean: f64,
    /// SSIM standard deviation (0 where a profile does not give it).
    #[serde(default)]
    pub ssim_std: f64,
    /// PSNR mean, dB (0 where a profile does not give it).
    #[serde(default)]
    pub psnr_mean: f64,
    /// MSE mean (0 where a profile does not give it).
    #[serde(default)]
    pub mse_mean: f64,
    /// Re-attacked from scratch at full strength by a confirm pass (the cell then holds the
    /// stronger of the fast and the full attack); false where no confirm pass ran.
    #[serde(default)]
    pub confirmed: bool,
}

/// Thresholds for one tolerated SSIM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Tolerated SSIM.
    pub tau: f64,
    /// `Nf_l(tau)` per layer name.
    pub nf: BTreeMap<String, usize>,
    /// `SP(tau)`: the first layer from which every layer is safe with all maps, if any.
    pub sp: Option<String>,
}

/// A privacy profile (layout [`PROFILE_VERSION`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Layout version.
    pub version: u32,
    /// Model name.
    pub model: String,
    /// Dataset name.
    pub dataset: String,
    /// Profiled layers in model order.
    pub layers: Vec<String>,
    /// Measured cells (empty for thresholds-only profiles).
    #[serde(default)]
    pub entries: Vec<ProfileCell>,
    /// Listed thresholds.
    #[serde(default)]
    pub thresholds: Vec<Thresholds>,
    /// Where the numbers come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The checkpoint of an unfinished sweep (`veil profile` writes one as it goes): its
    /// cells and thresholds may still move, so [`Profile::from_json_str`] refuses it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

impl Profile {
    /// Parses a finished profile's JSON text for planning, refusing other layout versions,
    /// non-finite or out-of-range SSIMs, and the checkpoint of an unfinished sweep.
    pub fn from_json_str(text: &str) -> Result<Self, SpecError> {
        let p = Self::from_json_str_unfinished(text)?;
        if p.partial {
            return Err(p.error(
                "the checkpoint of an unfinished sweep (finish it with `veil profile --resume`)"
                    .into(),
            ));
        }
        Ok(p)
    }

    /// [`Profile::from_json_str`] that also reads a checkpoint (to resume or redraw it).
    pub fn from_json_str_unfinished(text: &str) -> Result<Self, SpecError> {
        let p: Profile = serde_json::from_str(text).map_err(|e| SpecError::Parse {
            format: "privacy profile JSON",
            message: e.to_string(),
        })?;
        if p.version != PROFILE_VERSION {
            return Err(p.error(format!(
                "version {} (this veil reads version {PROFILE_VERSION})",
                p.version
            )));
        }
        if let Some(c) = p
            .entries
            .iter()
            .find(|c| !(c.ssim_mean.is_finite() && (-1.0..=1.0).contains(&c.ssim_mean)))
        {
            return Err(p.error(format!(
                "cell {} k={} has SSIM {} (must be a finite number in [-1, 1])",
                c.layer, c.k, c.ssim_mean
            )));
        }
        Ok(p)
    }

    fn error(&self, message: String) -> SpecError {
        SpecError::Profile {
            model: self.model.clone(),
            message,
        }
    }

    /// Thresholds for `tau`: the listed ones when present (within 1e-9), else derived from the
    /// cells by [`derive_thresholds`]; an error when the profile has neither.
    pub fn thresholds_at(&self, tau: f64) -> Result<Thresholds, SpecError> {
        if let Some(t) = self.thresholds.iter().find(|t| (t.tau - tau).abs() < 1e-9) {
            return Ok(t.clone());
        }
        if self.entries.is_empty() {
            let listed: Vec<f64> = self.thresholds.iter().map(|t| t.tau).collect();
            return Err(self.error(format!(
                "no cells and no thresholds for tau {tau} (listed: {listed:?})"
            )));
        }
        Ok(derive_thresholds(&self.layers, &self.entries, tau))
    }
}

/// `Nf` and `SP` for `tau` from measured `cells` over `layers` (model order); see the module
/// docs for the definitions.
pub fn derive_thresholds(layers: &[String], cells: &[ProfileCell], tau: f64) -> Thresholds {
    let nf = layers
        .iter()
        .map(|l| {
            let best = cells
                .iter()
                .filter(|c| &c.layer == l && c.ssim_mean <= tau)
                .map(|c| c.k)
                .max()
                .unwrap_or(0);
            (l.clone(), best)
        })
        .collect();
    let all_maps_safe = |l: &String| {
        let mut full = cells
            .iter()
            .filter(|c| &c.layer == l && c.k == c.total_maps)
            .peekable();
        full.peek().is_some() && full.all(|c| c.ssim_mean <= tau)
    };
    let sp = (0..layers.len())
        .find(|&i| layers[i..].iter().all(all_maps_safe))
        .map(|i| layers[i].clone());
    Thresholds { tau, nf, sp }
}

/// Makes every layer's SSIM non-decreasing in `k`: a cell with fewer maps than another of its
/// layer that scores higher lends it its scores. Sound because a profile's subsets are nested
/// (the `k` maps of a draw are the first `k` of one order), so an attacker holding more maps
/// may drop the extra ones and use the decoder for fewer.
pub fn monotone_envelope(cells: &mut [ProfileCell]) {
    let mut order: Vec<usize> = (0..cells.len()).collect();
    order.sort_by(|&a, &b| {
        cells[a]
            .layer
            .cmp(&cells[b].layer)
            .then(cells[a].k.cmp(&cells[b].k))
    });
    let mut best: Option<usize> = None;
    for i in order {
        match best {
            Some(b) if cells[b].layer == cells[i].layer => {
                if cells[b].ssim_mean > cells[i].ssim_mean {
                    let (ssim, std, psnr, mse) = (
                        cells[b].ssim_mean,
                        cells[b].ssim_std,
                        cells[b].psnr_mean,
                        cells[b].mse_mean,
                    );
                    let c = &mut cells[i];
                    (c.ssim_mean, c.ssim_std, c.psnr_mean, c.mse_mean) = (ssim, std, psnr, mse);
                } else {
                    best = Some(i);
                }
            }
            _ => best = Some(i),
        }
    }
}

/// The cells `(layer, k)` of `cells` the thresholds `t` rest on: for each layer with
/// `Nf > 0`, the cell at `k = Nf` (the most maps claimed safe), and for the layers from `SP`
/// on, their all-maps cells. Raising one of them above `tau` changes a threshold; raising any
/// other cell does not. Sorted and distinct.
pub fn deciding_cells(
    layers: &[String],
    cells: &[ProfileCell],
    t: &Thresholds,
) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> =
        t.nf.iter()
            .filter(|&(_, &k)| k > 0)
            .map(|(l, &k)| (l.clone(), k))
            .collect();
    if let Some(sp) = &t.sp {
        let from = layers.iter().position(|l| l == sp).unwrap_or(layers.len());
        for c in cells {
            if layers[from..].contains(&c.layer) && c.k == c.total_maps {
                out.push((c.layer.clone(), c.k));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(layer: &str, k: usize, p: usize, ssim: f64) -> ProfileCell {
        ProfileCell {
            layer: layer.into(),
            k,
            total_maps: p,
            ssim_mean: ssim,
            ssim_std: 0.0,
            psnr_mean: 0.0,
            mse_mean: 0.0,
            confirmed: false,
        }
    }

    #[test]
    fn nf_and_sp_follow_the_definitions() {
        let layers: Vec<String> = ["conv1", "relu1", "pool1"].map(String::from).to_vec();
        let ssims = [[0.5, 0.7, 0.95], [0.3, 0.45, 0.55], [0.2, 0.3, 0.38]];
        let cells: Vec<ProfileCell> = layers
            .iter()
            .zip(ssims)
            .flat_map(|(l, row)| (1..=3).map(move |k| cell(l, k, 3, row[k - 1])))
            .collect();
        let t = |tau| derive_thresholds(&layers, &cells, tau);
        assert_eq!(t(0.4).nf["conv1"], 0);
        assert_eq!(t(0.4).nf["relu1"], 1);
        assert_eq!(t(0.4).nf["pool1"], 3);
        assert_eq!(t(0.4).sp.as_deref(), Some("pool1"));
        assert_eq!(t(0.6).nf["conv1"], 1);
        assert_eq!(t(0.6).sp.as_deref(), Some("relu1"));
        assert_eq!(t(0.99).sp.as_deref(), Some("conv1"));
        assert_eq!(t(0.1).sp, None);
        // A layer never measured with all its maps is never safe.
        assert_eq!(derive_thresholds(&layers, &cells[..8], 0.99).sp, None);
    }

    #[test]
    fn listed_thresholds_win_and_bad_profiles_are_refused() {
        let text = r#"{"version": 1, "model": "m", "dataset": "d", "layers": ["a"],
            "entries": [{"layer": "a", "k": 1, "total_maps": 1, "ssim_mean": 0.5}],
            "thresholds": [{"tau": 0.3, "nf": {"a": 7}, "sp": null}]}"#;
        let p = Profile::from_json_str(text).expect("valid");
        assert_eq!(p.thresholds_at(0.3).expect("listed").nf["a"], 7);
        assert_eq!(p.thresholds_at(0.6).expect("derived").nf["a"], 1);
        assert!(Profile::from_json_str(&text.replace("\"version\": 1", "\"version\": 2")).is_err());
        assert!(Profile::from_json_str(&text.replace("0.5}", "1e999}")).is_err());
        assert!(Profile::from_json_str(&text.replace("0.5}", "7.0}")).is_err());
        assert!(Profile::from_json_str("{").is_err());
        // A checkpoint of an unfinished sweep: readable to resume, refused for planning.
        let partial = text.replace("\"version\": 1,", "\"version\": 1, \"partial\": true,");
        assert!(
            Profile::from_json_str_unfinished(&partial)
                .expect("readable")
                .partial
        );
        let refused = Profile::from_json_str(&partial).expect_err("unfinished");
        assert!(refused.to_string().contains("--resume"), "{refused}");
        assert!(!Profile::from_json_str(text).expect("finished").partial);
        let empty = text.replace(
            r#"[{"layer": "a", "k": 1, "total_maps": 1, "ssim_mean": 0.5}]"#,
            "[]",
        );
        assert!(
            Profile::from_json_str(&empty)
                .expect("thresholds only")
                .thresholds_at(0.6)
                .is_err()
        );
    }

    #[test]
    fn the_deciding_cells_are_each_nf_and_the_full_cells_from_sp() {
        let layers: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let cells = vec![
            cell("a", 1, 2, 0.3),
            cell("a", 2, 2, 0.9),
            cell("b", 1, 2, 0.2),
            cell("b", 2, 2, 0.35),
        ];
        let t = derive_thresholds(&layers, &cells, 0.4);
        assert_eq!(t.sp.as_deref(), Some("b"));
        assert_eq!(
            deciding_cells(&layers, &cells, &t),
            vec![("a".to_string(), 1), ("b".to_string(), 2)]
        );
        let strict = derive_thresholds(&layers, &cells, 0.1);
        assert!(deciding_cells(&layers, &cells, &strict).is_empty());
    }

    #[test]
    fn the_envelope_lifts_cells_below_a_smaller_subset() {
        let mut cells = vec![
            cell("b", 2, 3, 0.5),
            cell("a", 3, 3, 0.7),
            cell("a", 1, 3, 0.8),
            cell("a", 2, 3, 0.6),
            cell("b", 1, 3, 0.4),
        ];
        monotone_envelope(&mut cells);
        let ssim: Vec<f64> = cells.iter().map(|c| c.ssim_mean).collect();
        assert_eq!(ssim, vec![0.5, 0.8, 0.8, 0.8, 0.4]);
    }
}
