//! Privacy profiles (SYSTEM.md section 3): the table SSIM(layer, k) and, for each tolerated
//! SSIM `tau`, `Nf_l(tau)` (the largest `k` whose SSIM is `<= tau` at layer `l`, 0 if none)
//! and `SP(tau)` (the first profiled layer from which every later profiled layer, with all its
//! maps, gives SSIM `<= tau`). Written as versioned JSON for the planner, CSV, and a Markdown
//! table shaped like DistPrivacy Table I. The schema and the threshold rule are
//! `veil_spec::profile`'s, shared with the planner that reads these files.

use serde::{Deserialize, Serialize};
use veil_data::Dataset;
use veil_model::{Model, TrainConfig};

use crate::nested::{ChainConfig, best_usable, train_root, walk_chain};
use crate::run::{LayerFeatures, Scores, attack_features};
use crate::{AttackConfig, AttackError, AttackReport, map_order};

/// How the cells of a profile are attacked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum ProfileMethod {
    /// Nested chains ([`crate::nested`]): one decoder trained on all maps per layer, then
    /// one short fine-tuning per smaller subset (fast).
    #[default]
    Chain,
    /// A fresh decoder per cell and draw, specialised to its subset (one training per cell).
    PerCell,
}

/// Progress of a profile sweep.
#[derive(Clone, Copy, Debug)]
pub enum ProfileEvent<'a> {
    /// The device part is being queried at this layer.
    Querying(&'a str),
    /// A decoder is being trained for this layer (chain method): the root, or chain `n`.
    Training(&'a str, Option<usize>),
    /// A cell has been measured.
    Cell(&'a ProfileCell),
    /// The confirm pass begins (the fast cells are all measured).
    Confirming,
    /// A deciding cell has been re-attacked at full strength (the confirm pass).
    Confirmed(&'a ProfileCell),
    /// The profile so far (after each layer of the fast pass and each confirmed cell): a
    /// checkpoint a later run can resume from ([`ProfileRequest::resume`]).
    Checkpoint(&'a PrivacyProfile),
}

pub use veil_spec::profile::{PROFILE_VERSION, Profile, ProfileCell, Thresholds};

/// A complete privacy profile: the shared table (`veil_spec::profile::Profile`, what the
/// planner reads) and how it was measured. Serialized flat, so the JSON is the table's
/// fields followed by these.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrivacyProfile {
    /// The table: cells and thresholds.
    #[serde(flatten)]
    pub table: Profile,
    /// Attack settings used (auxiliary images, victims, epochs, draws, seed).
    pub attack: AttackConfig,
    /// How the cells were attacked (absent in files written before it existed: per cell).
    #[serde(default = "per_cell")]
    pub method: ProfileMethod,
    /// Chain method: images each fine-tuning step used (0 for the per-cell method).
    #[serde(default)]
    pub step_samples: usize,
    /// The full-strength attack of the confirm pass (`None` when it did not run).
    #[serde(default)]
    pub confirm: Option<AttackConfig>,
    /// Cells re-attacked at full strength by the confirm pass (by this run or the run it
    /// resumed).
    #[serde(default)]
    pub confirmed_cells: usize,
    /// Seconds of the confirm pass (included in `seconds`).
    #[serde(default)]
    pub confirm_seconds: f64,
    /// Whether the confirm pass took the worst single map for one-map cells.
    #[serde(default)]
    pub every_map: bool,
    /// Wall-clock seconds of the sweep.
    pub seconds: f64,
}

fn per_cell() -> ProfileMethod {
    ProfileMethod::PerCell
}

/// Layers profiled by default: every split point ([`veil_spec::ModelSpec::cut_points`])
/// before the first flatten, linear or global average pool layer.
pub fn default_layers(model: &Model) -> Vec<String> {
    let spec = model.spec();
    let cuts = spec.cut_points().unwrap_or_default();
    spec.layers
        .iter()
        .enumerate()
        .take_while(|(_, l)| {
            !matches!(l.kind.op_name(), "flatten" | "linear" | "global_avg_pool2d")
        })
        .filter(|(i, _)| cuts.contains(i))
        .map(|(_, l)| l.name.clone())
        .collect()
}

/// `Nf` and `SP` for each of `taus` from measured `cells` over `layers` (model order), by the
/// one rule of `veil_spec::profile::derive_thresholds`.
pub fn thresholds(layers: &[String], cells: &[ProfileCell], taus: &[f64]) -> Vec<Thresholds> {
    taus.iter()
        .map(|&tau| veil_spec::profile::derive_thresholds(layers, cells, tau))
        .collect()
}

/// What to sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileRequest {
    /// Split layers, in model order.
    pub layers: Vec<String>,
    /// Numbers of maps to try (every `k` in `1..=P` when empty; `P` is always included).
    pub ks: Vec<usize>,
    /// Tolerated SSIM values.
    pub taus: Vec<f64>,
    /// Attack settings; `layer` and `maps` are set per cell.
    pub attack: AttackConfig,
    /// How cells are attacked.
    pub method: ProfileMethod,
    /// Chain method: auxiliary images each fine-tuning step uses (one epoch at the learning
    /// rate of `attack.train`; more for small `k`, see [`ChainConfig`]).
    pub step_samples: usize,
    /// The full-strength attack of the confirm pass ([`crate::confirm`]); `None` skips it.
    pub confirm: Option<AttackConfig>,
    /// Confirm pass: a deciding one-map cell is re-attacked on every map, keeping the worst.
    pub every_map: bool,
    /// Cells of an earlier, interrupted run of the same request (a checkpoint): a layer
    /// with cells here is not attacked again by the fast pass, and its confirmed cells stay
    /// confirmed. Empty for a fresh run.
    pub resume: Vec<ProfileCell>,
    /// Seconds the earlier run had spent in all and in its confirm pass (added to `seconds`
    /// and `confirm_seconds`).
    pub resume_seconds: (f64, f64),
}

/// Runs the sweep of `req` on `model`; `dataset` names the data in the profile.
pub fn profile(
    model: &Model,
    dataset: &str,
    aux: &Dataset,
    victims: &Dataset,
    req: &ProfileRequest,
    on_event: &mut dyn FnMut(ProfileEvent<'_>),
) -> Result<PrivacyProfile, AttackError> {
    let (layers, taus, base) = (&req.layers, &req.taus, &req.attack);
    let started = std::time::Instant::now();
    let mut entries = Vec::new();
    for layer in layers {
        let resumed: Vec<&ProfileCell> = req.resume.iter().filter(|c| &c.layer == layer).collect();
        if !resumed.is_empty() {
            resumed.into_iter().for_each(|c| entries.push(c.clone()));
            continue;
        }
        let index = model.spec().layer_index(layer)?;
        let shape = &model.shapes()[index + 1];
        let p = shape.as_chw().map_or(1, |(c, _, _)| c);
        // The device part is queried once per layer; every k reuses the features.
        on_event(ProfileEvent::Querying(layer));
        let feats =
            LayerFeatures::extract(model, aux, victims, layer, base.aux_samples, base.victims)?;
        let ks = cells_of(p, &req.ks);
        let reports: Vec<AttackReport> = match req.method {
            ProfileMethod::Chain if shape.as_chw().is_some() => {
                chain_reports(&feats, req, &ks, on_event)?
            }
            _ => ks
                .iter()
                .map(|&k| {
                    let cfg = AttackConfig {
                        layer: layer.clone(),
                        maps: Some(k),
                        ..base.clone()
                    };
                    attack_features(&feats, &cfg, &mut |_| {})
                })
                .collect::<Result<_, _>>()?,
        };
        for r in reports {
            let entry = ProfileCell {
                layer: layer.clone(),
                k: r.maps,
                total_maps: p,
                ssim_mean: r.ssim_mean,
                ssim_std: r.ssim_std,
                psnr_mean: r.psnr_mean,
                mse_mean: r.mse_mean,
                confirmed: false,
            };
            on_event(ProfileEvent::Cell(&entry));
            entries.push(entry);
        }
        let so_far = assemble(model, dataset, req, entries.clone(), 0.0, started, true);
        on_event(ProfileEvent::Checkpoint(&so_far));
    }
    // An attacker with more maps of a nested subset may drop the extra ones.
    veil_spec::profile::monotone_envelope(&mut entries);
    let confirm_started = std::time::Instant::now();
    if let Some(full) = &req.confirm {
        on_event(ProfileEvent::Confirming);
        let pass = crate::confirm::ConfirmPass {
            model,
            aux,
            victims,
            full,
            every_map: req.every_map,
        };
        pass.run(layers, taus, &mut entries, &mut |c, all| {
            on_event(ProfileEvent::Confirmed(c));
            let seconds = confirm_started.elapsed().as_secs_f64();
            let so_far = assemble(model, dataset, req, all.to_vec(), seconds, started, true);
            on_event(ProfileEvent::Checkpoint(&so_far));
        })?;
    }
    let confirm_seconds = confirm_started.elapsed().as_secs_f64();
    Ok(assemble(
        model,
        dataset,
        req,
        entries,
        confirm_seconds,
        started,
        false,
    ))
}

/// The profile of `entries` measured for `req` since `started`, its confirm pass having run
/// `confirm_seconds` (both plus the run it resumes); `partial` for a checkpoint.
fn assemble(
    model: &Model,
    dataset: &str,
    req: &ProfileRequest,
    entries: Vec<ProfileCell>,
    confirm_seconds: f64,
    started: std::time::Instant,
    partial: bool,
) -> PrivacyProfile {
    let confirmed_cells = entries.iter().filter(|c| c.confirmed).count();
    PrivacyProfile {
        table: Profile {
            version: PROFILE_VERSION,
            model: model.spec().name.clone(),
            dataset: dataset.to_string(),
            layers: req.layers.clone(),
            thresholds: thresholds(&req.layers, &entries, &req.taus),
            source: None,
            partial,
            entries,
        },
        attack: req.attack.clone(),
        method: req.method,
        step_samples: match req.method {
            ProfileMethod::Chain => req.step_samples,
            ProfileMethod::PerCell => 0,
        },
        confirm: req.confirm.clone(),
        confirmed_cells,
        confirm_seconds: req.resume_seconds.1 + confirm_seconds,
        every_map: req.every_map && req.confirm.is_some(),
        seconds: req.resume_seconds.0 + started.elapsed().as_secs_f64(),
    }
}

/// The cells `ks` of one layer by the chain method: one root decoder, then `draws` chains
/// (one for contiguous blocks); `k = P` is scored once, by the root.
fn chain_reports(
    feats: &LayerFeatures,
    req: &ProfileRequest,
    ks: &[usize],
    on_event: &mut dyn FnMut(ProfileEvent<'_>),
) -> Result<Vec<AttackReport>, AttackError> {
    let base = &req.attack;
    let started = std::time::Instant::now();
    let p = feats.shape.as_chw().map_or(1, |(c, _, _)| c);
    let cfg = ChainConfig {
        root: base.train.clone(),
        step: TrainConfig {
            epochs: 1,
            ..base.train.clone()
        },
        step_samples: req.step_samples,
        validation: (feats.aux.len() / 10).clamp(1, 500),
    };
    on_event(ProfileEvent::Training(&feats.layer, None));
    let root = train_root(feats, &cfg)?;
    let draws = if base.selection == crate::MapSelection::Contiguous || p == 1 {
        1
    } else {
        base.draws.max(1)
    };
    let mut scores: Vec<Scores> = (0..=p).map(|_| Scores::default()).collect();
    for draw in 0..draws {
        on_event(ProfileEvent::Training(&feats.layer, Some(draw + 1)));
        let order = map_order(p, base.selection, base.train.seed, draw);
        let steps = walk_chain(&root, feats, &order, ks, &cfg)?;
        for (step, used) in steps.iter().zip(best_usable(&steps)) {
            if step.k < p || draw == 0 {
                scores[step.k].add(&feats.victims, &steps[used].reconstructions)?;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    ks.iter()
        .map(|&k| {
            std::mem::take(&mut scores[k]).report(
                crate::AttackSetting::BlackBox,
                &feats.layer,
                &feats.shape,
                (k, p),
                base.selection,
                if k == p { 1 } else { draws },
                feats.aux.len(),
                f64::NAN,
                seconds,
            )
        })
        .collect()
}

/// The numbers of maps measured at a layer of `p` maps: every `k` in `1..=p` when `ks` is
/// empty, otherwise the valid ones of `ks` and always `p`, sorted and distinct.
pub fn cells_of(p: usize, ks: &[usize]) -> Vec<usize> {
    let mut wanted: Vec<usize> = if ks.is_empty() {
        (1..=p).collect()
    } else {
        ks.iter()
            .copied()
            .filter(|&k| k >= 1 && k <= p)
            .chain([p])
            .collect()
    };
    wanted.sort_unstable();
    wanted.dedup();
    wanted
}

impl PrivacyProfile {
    /// The cells as CSV.
    pub fn to_csv(&self) -> String {
        let mut out =
            String::from("layer,k,total_maps,ssim_mean,ssim_std,psnr_mean,mse_mean,confirmed\n");
        for e in &self.table.entries {
            out.push_str(&format!(
                "{},{},{},{:.6},{:.6},{:.4},{:.6},{}\n",
                e.layer,
                e.k,
                e.total_maps,
                e.ssim_mean,
                e.ssim_std,
                e.psnr_mean,
                e.mse_mean,
                e.confirmed
            ));
        }
        out
    }

    /// SSIM table (rows: layers, columns: k) and the thresholds, in Markdown.
    pub fn to_markdown(&self) -> String {
        let mut ks: Vec<usize> = self.table.entries.iter().map(|e| e.k).collect();
        ks.sort_unstable();
        ks.dedup();
        let mut out = format!(
            "SSIM of the black-box attack on {} / {} (rows: split layer, columns: maps seen)\n\n| layer |",
            self.table.model, self.table.dataset
        );
        for k in &ks {
            out.push_str(&format!(" k={k} |"));
        }
        out.push_str("\n|---|");
        out.push_str(&"---|".repeat(ks.len()));
        out.push('\n');
        for l in &self.table.layers {
            out.push_str(&format!("| {l} |"));
            for k in &ks {
                match self
                    .table
                    .entries
                    .iter()
                    .find(|e| &e.layer == l && e.k == *k)
                {
                    Some(e) if e.confirmed => out.push_str(&format!(" {:.3}* |", e.ssim_mean)),
                    Some(e) => out.push_str(&format!(" {:.3} |", e.ssim_mean)),
                    None => out.push_str(" |"),
                }
            }
            out.push('\n');
        }
        out.push_str("\n| tau | SP(tau) |");
        for l in &self.table.layers {
            out.push_str(&format!(" Nf {l} |"));
        }
        out.push_str("\n|---|---|");
        out.push_str(&"---|".repeat(self.table.layers.len()));
        out.push('\n');
        for t in &self.table.thresholds {
            out.push_str(&format!(
                "| {} | {} |",
                t.tau,
                t.sp.as_deref().unwrap_or("none")
            ));
            for l in &self.table.layers {
                out.push_str(&format!(" {} |", t.nf.get(l).copied().unwrap_or(0)));
            }
            out.push('\n');
        }
        match &self.confirm {
            Some(full) => {
                out.push_str(&format!(
                    "\n`*`: a cell a threshold rests on, re-attacked from scratch at full strength ({} auxiliary images, {} epochs) by the confirm pass; it holds the stronger of the two attacks ({} cells, {:.0} s).\n",
                    full.aux_samples, full.train.epochs, self.confirmed_cells, self.confirm_seconds
                ));
                out.push_str(match self.every_map {
                    true => "A confirmed one-map cell is its layer's worst single map (every map attacked).\n",
                    false => "A cell scores random map subsets, not the worst subset a helper may get.\n",
                });
            }
            None => out.push_str(
                "\nNo confirm pass: the cells are the fast attack's and may understate the leakage.\n",
            ),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_cover_every_k_or_the_valid_requested_ones_and_p() {
        assert_eq!(cells_of(4, &[]), vec![1, 2, 3, 4]);
        assert_eq!(cells_of(6, &[2, 9, 0, 2, 1]), vec![1, 2, 6]);
        assert_eq!(cells_of(1, &[3]), vec![1]);
    }

    /// The file `veil profile` writes is read by the planner's parser as the same table, and
    /// reads back whole.
    #[test]
    fn the_written_json_is_the_shared_schema() {
        let cell = |k, ssim| ProfileCell {
            layer: "conv1".into(),
            k,
            total_maps: 2,
            ssim_mean: ssim,
            ssim_std: 0.01,
            psnr_mean: 20.0,
            mse_mean: 0.01,
            confirmed: k == 1,
        };
        let cells = vec![cell(1, 0.5), cell(2, 0.9)];
        let layers = vec!["conv1".to_string()];
        let prof = PrivacyProfile {
            table: Profile {
                version: PROFILE_VERSION,
                model: "lenet5".into(),
                dataset: "mnist".into(),
                thresholds: thresholds(&layers, &cells, &[0.6]),
                layers,
                entries: cells,
                source: None,
                partial: false,
            },
            attack: AttackConfig::default(),
            method: ProfileMethod::Chain,
            step_samples: 100,
            confirm: Some(AttackConfig::default()),
            confirmed_cells: 1,
            confirm_seconds: 0.5,
            every_map: false,
            seconds: 1.5,
        };
        let json = serde_json::to_string(&prof).expect("json");
        let table = Profile::from_json_str(&json).expect("planner reads it");
        assert_eq!(table, prof.table);
        assert_eq!(table.thresholds_at(0.6).expect("t").nf["conv1"], 1);
        let back: PrivacyProfile = serde_json::from_str(&json).expect("reads back");
        assert_eq!(back, prof);
    }
}
