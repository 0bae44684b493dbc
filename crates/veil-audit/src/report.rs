//! The report of `veil net audit` ([`NetAuditReport`]): per helper what it saw and how well
//! the spear reconstructed the victims from it, and the report as a text table.

use std::path::PathBuf;

use serde::Serialize;
use veil_net::views::Seen;

use crate::views::Reading;

/// One kind of thing a helper observed at one stage.
#[derive(Clone, Debug, Serialize)]
pub struct SawRow {
    /// What: finished maps or vectors, plain or masked partial sums, complete sums.
    pub seen: Seen,
    /// The layer whose output it is (for finished maps, the last channel-wise layer applied).
    pub layer: String,
    /// Channels.
    pub channels: usize,
    /// Distinct senders.
    pub senders: usize,
    /// Values (ring elements for masked sums) per request.
    pub values: usize,
    /// Values of one channel (a square number for maps, the length for a vector).
    pub per_channel: usize,
}

/// One attack on one reading of a helper's views.
#[derive(Clone, Debug, Serialize)]
pub struct ReadingScore {
    /// The reading.
    pub reading: Reading,
    /// Its shape.
    pub shape: Vec<usize>,
    /// SSIM mean over the victims.
    pub ssim_mean: f64,
    /// Seconds of the attack.
    pub seconds: f64,
    /// The confirm pass's attack (full strength), not the first pass's.
    pub confirm: bool,
}

/// One helper's audit.
#[derive(Clone, Debug, Serialize)]
pub struct HelperAudit {
    /// Party name.
    pub name: String,
    /// Device id in the plan.
    pub device: usize,
    /// What it observed per request.
    pub saw: Vec<SawRow>,
    /// SSIM mean of the strongest attack (`None`: it observed nothing).
    pub ssim_mean: Option<f64>,
    /// SSIM standard deviation over the victims.
    pub ssim_std: Option<f64>,
    /// Standard error of the SSIM mean.
    pub ssim_stderr: Option<f64>,
    /// PSNR mean (dB).
    pub psnr_mean: Option<f64>,
    /// MSE mean.
    pub mse_mean: Option<f64>,
    /// Every reading attacked.
    pub readings: Vec<ReadingScore>,
    /// `ssim_mean <= tau + 2 ssim_stderr` (true when it observed nothing).
    pub within_tau: bool,
    /// Whether the confirm pass attacked it again at full strength.
    pub confirmed: bool,
    /// The first pass's SSIM mean, when confirmed (`ssim_mean` is the stronger of the two).
    pub screen_ssim: Option<f64>,
    /// Originals above the strongest attack's reconstructions.
    pub grid: Option<PathBuf>,
}

impl HelperAudit {
    /// A helper not attacked yet: what it saw, no scores, within tau.
    pub fn new(name: &str, device: usize, saw: Vec<SawRow>) -> Self {
        HelperAudit {
            name: name.to_string(),
            device,
            saw,
            ssim_mean: None,
            ssim_std: None,
            ssim_stderr: None,
            psnr_mean: None,
            mse_mean: None,
            readings: Vec::new(),
            within_tau: true,
            confirmed: false,
            screen_ssim: None,
            grid: None,
        }
    }
}

/// The audit's report.
#[derive(Clone, Debug, Serialize)]
pub struct NetAuditReport {
    /// Model.
    pub model: String,
    /// Dataset.
    pub dataset: String,
    /// Tolerated SSIM.
    pub tau: f64,
    /// `masked` or `plain`.
    pub partial_sums: String,
    /// The planner's privacy rule (`sound`, `sound-plain` or `paper`).
    pub privacy_rule: String,
    /// Helpers started.
    pub helpers_started: usize,
    /// Whether the planner placed the model.
    pub placed: bool,
    /// Why not, when it did not.
    pub reason: Option<String>,
    /// The plan: owners of every segment of every stage.
    pub owners: serde_json::Value,
    /// The largest helper SSIM mean.
    pub max_ssim: Option<f64>,
    /// Every helper within tau.
    pub within_tau: bool,
    /// Per helper.
    pub helpers: Vec<HelperAudit>,
    /// Auxiliary images sent.
    pub aux: usize,
    /// Victims sent and scored.
    pub victims: usize,
    /// Answers whose argmax equals single-process inference.
    pub argmax_agree: usize,
    /// Largest absolute logit difference from single-process inference.
    pub max_logit_diff: f64,
    /// Decoder epochs (the first pass).
    pub epochs: usize,
    /// Decoder epochs of the confirm pass (none: one pass).
    pub confirm_epochs: Option<usize>,
    /// Helpers within this margin of tau (or above) were confirmed.
    pub confirm_margin: Option<f64>,
    /// Seed of the decoders.
    pub seed: u64,
    /// Seconds running the deployment.
    pub fleet_s: f64,
    /// Seconds attacking.
    pub attack_s: f64,
}

impl NetAuditReport {
    /// The report as a table: one row per helper (what it saw, its SSIM, within tau).
    pub fn text(&self) -> String {
        let mut s = format!(
            "{} on {} helpers, tau {}, {} partial sums, {} rule: ",
            self.model, self.helpers_started, self.tau, self.partial_sums, self.privacy_rule
        );
        if !self.placed {
            s += &format!(
                "not placed ({})\n",
                self.reason.as_deref().unwrap_or("no reason given")
            );
            return s;
        }
        s += &format!(
            "{} of {} answers agree with one process (max logit diff {:.1e}); spear trained on \
             {} auxiliary views, {} victims, {} epochs\n",
            self.argmax_agree,
            self.aux + self.victims,
            self.max_logit_diff,
            self.aux,
            self.victims,
            self.epochs
        );
        if let (Some(e), Some(m)) = (self.confirm_epochs, self.confirm_margin) {
            s += &format!(
                "helpers marked * were attacked again with {e} epochs (first pass within {m} \
                 of tau); the stronger attack counts\n"
            );
        }
        s += "helper  SSIM            PSNR   within  saw\n";
        for h in &self.helpers {
            let saw: Vec<String> = h
                .saw
                .iter()
                .map(|r| {
                    let side = (r.per_channel as f64).sqrt().round() as usize;
                    let kind = match r.seen {
                        Seen::Finished if side * side != r.per_channel => "vector",
                        Seen::Finished => "maps",
                        Seen::Partial => "partial sums",
                        Seen::Masked => "masked sums",
                        Seen::Sum => "sums",
                    };
                    format!("{} {kind} x{} ({} from)", r.layer, r.channels, r.senders)
                })
                .collect();
            let score = match (h.ssim_mean, h.ssim_stderr, h.psnr_mean) {
                (Some(m), Some(e), Some(p)) => format!("{m:.3} +- {e:.3}  {p:5.1}"),
                _ => "-                   -".into(),
            };
            let name = format!("{}{}", h.name, if h.confirmed { "*" } else { "" });
            s += &format!(
                "{:<7} {score}  {:<6}  {}\n",
                name,
                if h.within_tau { "yes" } else { "NO" },
                if saw.is_empty() {
                    "nothing".into()
                } else {
                    saw.join(", ")
                }
            );
        }
        s += &format!(
            "max SSIM {}; every helper within tau: {}\n",
            self.max_ssim.map_or("-".into(), |m| format!("{m:.3}")),
            if self.within_tau { "yes" } else { "NO" }
        );
        s
    }
}
