//! One attack as `veil attack` runs it: query the device part (or build what a
//! channel-partitioned helper sees), train the decoder, score the victims, and write the
//! run's files in a directory: the image grid (`.png`), the scores as one CSV row (`.csv`)
//! and the report as JSON (`.json`), named `<model>-<layer>-k<maps>` or, for a helper,
//! `<model>-<conv>-helper-k<held>-q<owned>-g<senders>`.
//!
//! Key items: [`AttackRun`], [`run`], [`AttackOutcome`], [`helper_view`].

use std::path::{Path, PathBuf};

use serde::Serialize;
use veil_data::Split;
use veil_model::Model;

use crate::{
    AttackConfig, AttackError, AttackReport, AttackSetting, HelperView, MapSelection,
    attack_features, helper_features,
};

/// What to attack.
#[derive(Clone, Debug)]
pub struct AttackRun {
    /// The attack (layer, maps, draws, data sizes, decoder training).
    pub config: AttackConfig,
    /// Attack a helper of the channel-partitioned scheme instead of a split.
    pub helper: Option<HelperView>,
    /// Output directory.
    pub out: PathBuf,
}

/// The report with where it came from and the files written.
#[derive(Clone, Debug, Serialize)]
pub struct AttackOutcome {
    /// Scores and settings.
    #[serde(flatten)]
    pub report: AttackReport,
    /// Model name.
    pub model: String,
    /// Dataset name.
    pub dataset: String,
    /// Originals above reconstructions.
    pub grid: PathBuf,
    /// The helper attacked, if any.
    pub helper: Option<HelperView>,
}

/// The helper a `--helper-of CONV --maps K [--owned Q] [--senders G]` names: holds `held`
/// input maps of `conv`, owns `owned` output maps (default: as many as it holds, at most the
/// layer's outputs), hears from `senders` devices (default: the other maps spread over
/// helpers holding `held` each).
pub fn helper_view(
    model: &Model,
    conv: &str,
    held: Option<usize>,
    owned: Option<usize>,
    senders: Option<usize>,
) -> Result<HelperView, AttackError> {
    let index = model.spec().layer_index(conv)?;
    let p = model.shapes()[index].as_chw().map_or(0, |(c, _, _)| c);
    let out_c = model.shapes()[index + 1].as_chw().map_or(0, |(c, _, _)| c);
    let Some(held) = held else {
        return Err(AttackError::Invalid(format!(
            "--helper-of needs --maps: the input maps of {conv} the helper holds"
        )));
    };
    if held == 0 || held > p {
        return Err(AttackError::Invalid(format!(
            "--maps {held}: {conv} has {p} input maps"
        )));
    }
    Ok(HelperView {
        conv: conv.to_string(),
        held,
        owned: owned.unwrap_or(held.min(out_c)),
        senders: senders.unwrap_or((p - held).div_ceil(held)),
    })
}

/// Runs `run` against `model` on `data` (auxiliary images from the training split, victims
/// from the test split) and writes its files; `progress` hears each phase.
pub fn run(
    model: &Model,
    dataset: &str,
    data: &Split,
    run: &AttackRun,
    progress: &mut dyn FnMut(&str),
) -> Result<AttackOutcome, AttackError> {
    let cfg = &run.config;
    let started = std::time::Instant::now();
    let mut report = match &run.helper {
        None => {
            let layer = cfg.layer.clone();
            crate::attack(model, &data.train, &data.test, cfg, &mut |m| {
                progress(&format!("attack {layer}: {m}"))
            })?
        }
        Some(_) if cfg.setting != AttackSetting::BlackBox => {
            return Err(AttackError::Invalid(
                "a helper's view is attacked black-box only (its partial sums are not a device part's output)".into(),
            ));
        }
        Some(view) => {
            progress(&format!("attack {}: building the helper's view", view.conv));
            let feats = helper_features(
                model,
                &data.train,
                &data.test,
                view,
                cfg.aux_samples,
                cfg.victims,
            )?;
            // A helper's observation is attacked whole: `maps` named what it holds.
            let cfg = AttackConfig {
                maps: None,
                ..cfg.clone()
            };
            let layer = feats.layer.clone();
            attack_features(&feats, &cfg, &mut |m| {
                progress(&format!("attack {layer}: {m}"))
            })?
        }
    };
    report.seconds = started.elapsed().as_secs_f64();
    let name = &model.spec().name;
    let stem = match &run.helper {
        None => format!("{name}-{}-k{}", report.layer, report.maps),
        Some(v) => format!(
            "{name}-{}-helper-k{}-q{}-g{}",
            v.conv, v.held, v.owned, v.senders
        ),
    };
    write_dir(&run.out)?;
    let grid = run.out.join(format!("{stem}.png"));
    crate::grid::save_victim_grid(&grid, &data.test, &report.examples)?;
    write(&run.out.join(format!("{stem}.csv")), &csv(&report))?;
    let outcome = AttackOutcome {
        report,
        model: name.clone(),
        dataset: dataset.to_string(),
        grid,
        helper: run.helper.clone(),
    };
    let json = serde_json::to_string_pretty(&outcome)
        .map_err(|e| AttackError::Invalid(format!("encoding the report: {e}")))?;
    write(&run.out.join(format!("{stem}.json")), &json)?;
    Ok(outcome)
}

fn write_dir(dir: &Path) -> Result<(), AttackError> {
    std::fs::create_dir_all(dir).map_err(|e| AttackError::Write {
        path: dir.display().to_string(),
        message: e.to_string(),
    })
}

fn write(path: &Path, text: &str) -> Result<(), AttackError> {
    std::fs::write(path, text).map_err(|e| AttackError::Write {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// One report as a CSV header and row.
fn csv(r: &AttackReport) -> String {
    format!(
        "setting,layer,maps,total_maps,selection,draws,victims,aux_samples,ssim_mean,ssim_std,psnr_mean,psnr_std,mse_mean,mse_std,seconds\n\
         {},\"{}\",{},{},{},{},{},{},{:.6},{:.6},{:.4},{:.4},{:.6},{:.6},{:.1}\n",
        match r.setting {
            AttackSetting::BlackBox => "black-box",
            AttackSetting::WhiteBox => "white-box",
            AttackSetting::QueryFree => "query-free",
        },
        r.layer,
        r.maps,
        r.total_maps,
        match r.selection {
            MapSelection::Random => "random",
            MapSelection::Contiguous => "contiguous",
        },
        r.draws,
        r.victims,
        r.aux_samples,
        r.ssim_mean,
        r.ssim_std,
        r.psnr_mean,
        r.psnr_std,
        r.mse_mean,
        r.mse_std,
        r.seconds
    )
}

impl AttackOutcome {
    /// The outcome in one line.
    pub fn summary(&self) -> String {
        let r = &self.report;
        let setting = match r.setting {
            AttackSetting::BlackBox => "",
            AttackSetting::WhiteBox => " (white-box)",
            AttackSetting::QueryFree => " (query-free)",
        };
        format!(
            "{} / {} at {} with {} of {} maps{setting}: SSIM {:.4} +- {:.4}, PSNR {:.2} dB, MSE {:.5} over {} victims ({:.0} s); grid {}",
            self.model,
            self.dataset,
            r.layer,
            r.maps,
            r.total_maps,
            r.ssim_mean,
            r.ssim_std,
            r.psnr_mean,
            r.mse_mean,
            r.victims,
            r.seconds,
            self.grid.display()
        )
    }
}
