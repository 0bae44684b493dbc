//! One helper's audit: every reading of its recorded views ([`crate::views::readings`])
//! attacked with the spear, the strongest kept; and the confirm pass ([`Confirm`]), which
//! attacks a helper again at full strength when the first pass found it near tau.
//!
//! An audit's first pass may run at a reduced budget (few epochs) to screen many helpers; a
//! weaker attack can only understate a helper's leakage, so every helper the screen puts
//! within `margin` of tau (or above it) is attacked again with the stronger training, and the
//! stronger of the two attacks is its leakage. A helper the screen puts further below tau is
//! not re-attacked: the report says which helpers were confirmed and by how much their SSIM
//! moved, so a reader can judge the margin.

use veil_attack::{AttackConfig, AttackReport, LayerFeatures, attack_features};
use veil_data::Dataset;
use veil_net::views::DeviceViews;

use crate::AuditError;
use crate::report::{HelperAudit, ReadingScore};
use crate::views::{ViewFeatures, readings};

/// The confirm pass of an audit.
#[derive(Clone, Debug)]
pub struct Confirm {
    /// The full-strength decoder training (its layer and maps are unused).
    pub attack: AttackConfig,
    /// Helpers whose first-pass SSIM is at least `tau - margin` are attacked again.
    pub margin: f64,
}

impl Confirm {
    /// Whether a helper the first pass scored `ssim` (at `tau`) is attacked again.
    pub fn wants(&self, tau: f64, ssim: Option<f64>) -> bool {
        ssim.is_some_and(|s| s >= tau - self.margin)
    }
}

/// A helper's audit with its strongest attack (whose reconstructions make its grid).
pub(crate) struct Attacked {
    /// The audit (its `grid` unset).
    pub audit: HelperAudit,
    /// The strongest attack (`None`: the helper observed nothing).
    pub best: Option<AttackReport>,
}

impl Attacked {
    /// Adds the confirm pass `strong`: its readings join this one's, the stronger attack
    /// scores the helper, and the first pass's SSIM is kept as `screen_ssim`.
    pub fn merge(&mut self, strong: Attacked, tau: f64) {
        self.audit.screen_ssim = self.audit.ssim_mean;
        self.audit.confirmed = true;
        self.audit.readings.extend(strong.audit.readings);
        let stronger = match (&self.best, &strong.best) {
            (Some(a), Some(b)) => b.ssim_mean > a.ssim_mean,
            (None, Some(_)) => true,
            _ => false,
        };
        if stronger {
            self.best = strong.best;
            if let Some(b) = &self.best {
                score(&mut self.audit, b, tau);
            }
        }
    }
}

/// Attacks every reading of `views` (helper `name`, device `device`) with `attack`'s
/// training; `confirm` marks the readings as the confirm pass's.
pub(crate) fn attack_helper(
    attack: &AttackConfig,
    (tau, confirm): (f64, bool),
    audit: HelperAudit,
    views: &DeviceViews,
    (aux, victims): (&Dataset, &Dataset),
) -> Result<Attacked, AuditError> {
    let mut out = Attacked { audit, best: None };
    for reading in readings(views) {
        let (reading, r) = attack_reading(attack, &out.audit.name, reading, aux, victims)?;
        out.audit.readings.push(ReadingScore {
            reading,
            shape: r.feature_shape.clone(),
            ssim_mean: r.ssim_mean,
            seconds: r.seconds,
            confirm,
        });
        if out.best.as_ref().is_none_or(|b| r.ssim_mean > b.ssim_mean) {
            out.best = Some(r);
        }
    }
    if let Some(b) = &out.best {
        score(&mut out.audit, b, tau);
    }
    Ok(out)
}

/// Scores `h` by attack `b`: SSIM mean, spread, standard error, PSNR, MSE and whether the
/// mean is within `tau` plus two standard errors.
fn score(h: &mut HelperAudit, b: &AttackReport, tau: f64) {
    let stderr = b.ssim_std / (b.victims.max(1) as f64).sqrt();
    h.ssim_mean = Some(b.ssim_mean);
    h.ssim_std = Some(b.ssim_std);
    h.ssim_stderr = Some(stderr);
    h.psnr_mean = Some(b.psnr_mean);
    h.mse_mean = Some(b.mse_mean);
    h.within_tau = b.ssim_mean <= tau + 2.0 * stderr;
}

/// Trains the spear on the auxiliary rows of `reading` and scores the victims.
fn attack_reading(
    attack: &AttackConfig,
    name: &str,
    reading: ViewFeatures,
    aux: &Dataset,
    victims: &Dataset,
) -> Result<(crate::views::Reading, AttackReport), AuditError> {
    let split = aux.len() * reading.shape.numel();
    // The rows move into the features: a view of many maps is large, so it is not copied.
    let mut aux_feats = reading.rows;
    let victim_feats = aux_feats.split_off(split);
    let feats = LayerFeatures {
        layer: format!("{name} view"),
        shape: reading.shape,
        aux: aux.clone(),
        victims: victims.clone(),
        aux_feats,
        victim_feats,
        device: None,
    };
    let cfg = AttackConfig {
        maps: None,
        aux_samples: aux.len(),
        victims: victims.len(),
        ..attack.clone()
    };
    let report =
        attack_features(&feats, &cfg, &mut |_| {}).map_err(|source| AuditError::Attack {
            helper: name.to_string(),
            source,
        })?;
    Ok((reading.reading, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_confirm_pass_takes_helpers_near_or_above_tau() {
        let c = Confirm {
            attack: AttackConfig::with_budget(10, 10, 1),
            margin: 0.1,
        };
        assert!(c.wants(0.8, Some(0.75)));
        assert!(c.wants(0.8, Some(0.95)));
        assert!(c.wants(0.8, Some(0.71)));
        assert!(!c.wants(0.8, Some(0.69)));
        assert!(!c.wants(0.8, None));
    }

    fn report(ssim: f64) -> AttackReport {
        AttackReport {
            layer: "h0 view".into(),
            setting: veil_attack::AttackSetting::BlackBox,
            feature_shape: vec![4, 8, 8],
            maps: 4,
            total_maps: 4,
            selection: veil_attack::MapSelection::Random,
            draws: 1,
            victims: 100,
            aux_samples: 1000,
            ssim_mean: ssim,
            ssim_std: 0.1,
            psnr_mean: 20.0 * ssim,
            psnr_std: 1.0,
            mse_mean: 0.01,
            mse_std: 0.001,
            train_loss: 0.0,
            seconds: 1.0,
            examples: Vec::new(),
        }
    }

    fn attacked(ssim: f64, confirm: bool) -> Attacked {
        let mut audit = HelperAudit::new("h0", 0, Vec::new());
        let r = report(ssim);
        audit.readings.push(ReadingScore {
            reading: crate::views::Reading::Maps,
            shape: r.feature_shape.clone(),
            ssim_mean: ssim,
            seconds: 1.0,
            confirm,
        });
        score(&mut audit, &r, 0.8);
        Attacked {
            audit,
            best: Some(r),
        }
    }

    #[test]
    fn the_stronger_of_the_two_passes_scores_the_helper() {
        // Stronger confirm: its scores, the screen's kept as screen_ssim, beyond tau.
        let mut h = attacked(0.75, false);
        h.merge(attacked(0.86, true), 0.8);
        assert_eq!(h.audit.ssim_mean, Some(0.86));
        assert_eq!(h.audit.screen_ssim, Some(0.75));
        assert!(h.audit.confirmed && !h.audit.within_tau);
        assert_eq!(h.audit.readings.len(), 2);
        assert_eq!(h.best.as_ref().map(|b| b.ssim_mean), Some(0.86));
        // Weaker confirm: the screen's attack still counts.
        let mut h = attacked(0.75, false);
        h.merge(attacked(0.7, true), 0.8);
        assert_eq!(h.audit.ssim_mean, Some(0.75));
        assert!(h.audit.confirmed && h.audit.within_tau);
        assert_eq!(h.best.as_ref().map(|b| b.ssim_mean), Some(0.75));
    }
}
