//! ObfNet's campaign: train `count` ObfNets of one variant in front of a frozen classifier,
//! judge them ([`crate::obfnet::judge`]) and write the run's files: the report as JSON, one
//! row in the shared CSV schema (so `veil defend chart` can put ObfNet beside the other
//! shields) and a reconstruction grid. This is `veil defend obfnet`.
//!
//! Key items: [`ObfNetCampaign`], [`run`], [`ObfNetRun`].

use std::path::PathBuf;

use veil_attack::AttackConfig;
use veil_data::Split;
use veil_model::{Model, TrainConfig};

use crate::DefenseError;
use crate::campaign::create_dir;
use crate::compare::write_rows_csv;
use crate::obfnet::{ObfNetReport, judge, train_obfnets};
use crate::sweep::Row;

/// What to train and how hard to attack it.
#[derive(Clone, Debug)]
pub struct ObfNetCampaign {
    /// ObfNet variant: 1 (784-784) or 2 (784-1000-784), the zoo's `obfnet1` / `obfnet2`.
    pub variant: u8,
    /// ObfNets trained (seeds differ), at least 1.
    pub count: usize,
    /// Training epochs per ObfNet, at least 1.
    pub epochs: usize,
    /// The attack on obfuscated data.
    pub attack: AttackConfig,
    /// Output directory.
    pub out: PathBuf,
}

impl ObfNetCampaign {
    /// Checks the variant and the counts: cheap, so callers check before loading anything.
    pub fn check(&self) -> Result<(), DefenseError> {
        if !(self.variant == 1 || self.variant == 2) {
            return Err(DefenseError::Invalid(format!(
                "ObfNet variant must be 1 or 2, got {}",
                self.variant
            )));
        }
        if self.count == 0 || self.epochs == 0 {
            return Err(DefenseError::Invalid(
                "train at least one ObfNet for at least one epoch (--count, --obf-epochs)".into(),
            ));
        }
        Ok(())
    }
}

/// What the campaign measured and wrote ([`ObfNetRun::to_json`] is its JSON form).
#[derive(Clone, Debug)]
pub struct ObfNetRun {
    /// Classifier name.
    pub model: String,
    /// Dataset name.
    pub dataset: String,
    /// ObfNet variant.
    pub variant: u8,
    /// ObfNets trained.
    pub count: usize,
    /// Accuracy and attack.
    pub report: ObfNetReport,
    /// Originals above reconstructions.
    pub grid: PathBuf,
    /// The report as JSON.
    pub json: PathBuf,
    /// The row in the shared CSV schema.
    pub csv: PathBuf,
}

/// Progress of an ObfNet campaign.
#[derive(Clone, Copy, Debug)]
pub enum Progress {
    /// ObfNets trained so far.
    Trained(usize),
    /// Training done; the attack runs.
    Attacking,
}

/// Runs `campaign` in front of `classifier` on `data` and writes its files.
pub fn run(
    classifier: &Model,
    dataset: &str,
    data: &Split,
    campaign: &ObfNetCampaign,
    progress: &mut dyn FnMut(Progress),
) -> Result<ObfNetRun, DefenseError> {
    campaign.check()?;
    let variant = campaign.variant;
    let spec = veil_spec::zoo::model(&format!("obfnet{variant}"))?;
    let cfg = TrainConfig {
        epochs: campaign.epochs,
        ..TrainConfig::default()
    };
    let obf = train_obfnets(
        &spec,
        classifier,
        &data.train,
        campaign.count,
        &cfg,
        &mut |n| progress(Progress::Trained(n)),
    )?;
    progress(Progress::Attacking);
    let report = judge(&obf, classifier, data, &campaign.attack, 0)?;
    create_dir(&campaign.out)?;
    let stem = format!(
        "{}-obfnet{variant}x{}",
        classifier.spec().name,
        campaign.count
    );
    let grid = campaign.out.join(format!("{stem}.png"));
    veil_attack::grid::save_victim_grid(&grid, &data.test, &report.attack.examples)?;
    let csv = campaign.out.join(format!("{stem}.csv"));
    write_rows_csv(
        &csv,
        &[Row {
            defence: format!("obfnet{variant}"),
            param: campaign.count as f64,
            label: format!("obfnet{variant} x{}", campaign.count),
            draw: 0,
            accuracy: report.accuracy_defended,
            ssim_mean: report.attack.ssim_mean,
            psnr_mean: report.attack.psnr_mean,
            mse_mean: report.attack.mse_mean,
            examples: Vec::new(),
        }],
    )?;
    let run = ObfNetRun {
        model: classifier.spec().name.clone(),
        dataset: dataset.to_string(),
        variant,
        count: campaign.count,
        report,
        grid,
        json: campaign.out.join(format!("{stem}.json")),
        csv,
    };
    let text = serde_json::to_string_pretty(&run.to_json()).map_err(DefenseError::Json)?;
    std::fs::write(&run.json, text).map_err(|e| DefenseError::io(&run.json, e))?;
    Ok(run)
}

impl ObfNetRun {
    /// The report as one flat JSON object (what `veil defend obfnet --json` prints and the
    /// `.json` file holds).
    pub fn to_json(&self) -> serde_json::Value {
        let r = &self.report;
        serde_json::json!({
            "model": self.model,
            "dataset": self.dataset,
            "variant": self.variant,
            "count": self.count,
            "accuracy_plain": r.accuracy_plain,
            "accuracy_defended": r.accuracy_defended,
            "accuracy_each": r.accuracy_each,
            "ssim_mean": r.attack.ssim_mean,
            "ssim_std": r.attack.ssim_std,
            "psnr_mean": r.attack.psnr_mean,
            "mse_mean": r.attack.mse_mean,
            "ssim_raw_features": 1.0,
            "ssim_obfuscated_as_is": r.ssim_obfuscated_as_is,
            "ssim_conv_decoder": r.ssim_by_decoder[0],
            "ssim_dense_decoder": r.ssim_by_decoder[1],
            "attack_layer": r.attack.layer,
            "victims": r.attack.victims,
            "grid": self.grid,
        })
    }

    /// The outcome in one paragraph.
    pub fn summary(&self) -> String {
        let r = &self.report;
        format!(
            "{} / {} with {} ObfNet{}: accuracy {:.4} -> {:.4} (each {:?}); attack on obfuscated data SSIM {:.4} +- {:.4}, PSNR {:.2} dB (conv decoder {:.4}, dense {:.4}; raw input sent without ObfNet: SSIM 1; obfuscated image as is: {:.4}); grid {}",
            self.model,
            self.dataset,
            self.count,
            self.variant,
            r.accuracy_plain,
            r.accuracy_defended,
            r.accuracy_each,
            r.attack.ssim_mean,
            r.attack.ssim_std,
            r.attack.psnr_mean,
            r.ssim_by_decoder[0],
            r.ssim_by_decoder[1],
            r.ssim_obfuscated_as_is,
            self.grid.display()
        )
    }
}
