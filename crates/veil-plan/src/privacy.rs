//! Privacy limits for the planner: `Nf_l(tau)` and `SP(tau)` (SYSTEM.md section 3) read from a
//! privacy profile, and what they mean for each compute stage of a model.
//!
//! The profile schema and the `Nf` / `SP` rule are `veil_spec::profile`'s, the same code that
//! `veil profile` writes with: [`Profile::thresholds_at`] uses listed thresholds, or derives
//! them from the measured cells. [`builtin`] returns the profiles shipped with veil.
//!
//! Mapping to stages: a helper that holds segments of conv stage `s` sees its input maps,
//! i.e. the output of every layer from the previous compute layer up to the layer before
//! stage `s` (when the previous stage ran on helpers, the owner of a map forms the raw conv
//! output from partial sums and applies ReLU and pooling itself); when the previous stage ran
//! whole on the source, only the final input maps are sent. The cap of a stage is the
//! smallest `Nf` over the profiled layers it exposes; a stage whose exposed layers all lie at
//! or after `SP(tau)` is unconstrained.

use serde::Serialize;
use veil_spec::ModelSpec;

use crate::PlanError;

pub use veil_spec::profile::{Profile, ProfileCell, Thresholds};

const LENET5: &str = include_str!("../profiles/lenet5.json");
const GTSRB_CNN: &str = include_str!("../profiles/gtsrb_cnn.json");
const CIFAR_CNN: &str = include_str!("../profiles/cifar_cnn.json");
const VGG16: &str = include_str!("../profiles/vgg16.json");
const VGG19: &str = include_str!("../profiles/vgg19.json");

/// The profile shipped with veil for zoo model `model`, if any: veil's own measurements for
/// `lenet5` (MNIST) and `gtsrb_cnn` (GTSRB, every threshold cell confirmed at full strength;
/// docs/BENCHMARKS.md), the DistPrivacy paper's statements for `cifar_cnn`, `vgg16` and
/// `vgg19` (see each profile's `source`).
pub fn builtin(model: &str) -> Option<Profile> {
    let text = match model {
        "lenet5" => LENET5,
        "gtsrb_cnn" => GTSRB_CNN,
        "cifar_cnn" => CIFAR_CNN,
        "vgg16" => VGG16,
        "vgg19" => VGG19,
        _ => return None,
    };
    Profile::from_json_str(text).ok()
}

/// What the privacy constraint allows at one stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum StageCap {
    /// At or after `SP`: any helper may hold any number of segments.
    Free,
    /// Before `SP`: no helper may hold more than this many segments (0: none may).
    AtMost(usize),
}

impl StageCap {
    /// Whether a helper holding `held` segments of the stage may take one more.
    pub fn admits(self, held: usize) -> bool {
        match self {
            StageCap::Free => true,
            StageCap::AtMost(n) => held < n,
        }
    }
}

/// Resolves thresholds against a spec: for a stage whose input maps are produced by spec
/// layers `exposed` (indices), the cap.
pub(crate) fn stage_cap(
    spec: &ModelSpec,
    thresholds: &Thresholds,
    exposed: std::ops::Range<usize>,
) -> Result<StageCap, PlanError> {
    let sp_index = match &thresholds.sp {
        Some(name) => Some(spec.layer_index(name)?),
        None => None,
    };
    if let Some(sp) = sp_index
        && exposed.start >= sp
    {
        return Ok(StageCap::Free);
    }
    let caps: Vec<usize> = exposed
        .clone()
        .filter_map(|i| thresholds.nf.get(&spec.layers[i].name).copied())
        .collect();
    match caps.iter().min() {
        Some(&n) => Ok(StageCap::AtMost(n)),
        None => Err(PlanError::Profile {
            model: spec.name.clone(),
            message: format!(
                "no Nf for any of the layers {} before SP(tau {})",
                exposed
                    .map(|i| spec.layers[i].name.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
                thresholds.tau
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_parse_and_cover_the_papers_taus() {
        for model in ["lenet5", "gtsrb_cnn", "cifar_cnn", "vgg16", "vgg19"] {
            let p = builtin(model).unwrap_or_else(|| panic!("{model} profile"));
            assert_eq!(p.model, model);
            for tau in [0.4, 0.6, 0.8] {
                p.thresholds_at(tau)
                    .unwrap_or_else(|e| panic!("{model} {tau}: {e}"));
            }
        }
        assert!(builtin("secureml_a").is_none());
    }

    #[test]
    fn thresholds_are_derived_from_cells() {
        let cell = |layer: &str, k, ssim| ProfileCell {
            layer: layer.into(),
            k,
            total_maps: 2,
            ssim_mean: ssim,
            ssim_std: 0.0,
            psnr_mean: 0.0,
            mse_mean: 0.0,
            confirmed: false,
        };
        let p = Profile {
            version: 1,
            model: "m".into(),
            dataset: "d".into(),
            layers: vec!["a".into(), "b".into()],
            entries: vec![
                cell("a", 1, 0.5),
                cell("a", 2, 0.9),
                cell("b", 1, 0.2),
                cell("b", 2, 0.3),
            ],
            thresholds: vec![],
            source: None,
            partial: false,
        };
        let t = p.thresholds_at(0.6).expect("t");
        assert_eq!((t.nf["a"], t.nf["b"]), (1, 2));
        assert_eq!(t.sp.as_deref(), Some("b"));
        let t = p.thresholds_at(0.95).expect("t");
        assert_eq!(t.sp.as_deref(), Some("a"));
        assert_eq!(p.thresholds_at(0.1).expect("t").sp, None);
        assert!(Profile::from_json_str("{\"version\": 2}").is_err());
    }
}
