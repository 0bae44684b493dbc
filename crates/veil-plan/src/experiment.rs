//! Simulation sweeps: an [`Experiment`] (TOML) lists fleet sizes, fleet mixes, tolerated
//! SSIMs, workloads and strategies; [`Experiment::run`] simulates every combination. The
//! presets of [`figure`] regenerate the panels of DistPrivacy's Fig. 3.
//!
//! ```toml
//! requests = 320
//! lambda = 3.0
//! seed = 0
//! devices = [10, 20, 40]
//! taus = [0.4, 0.6, 0.8]
//! strategies = ["distprivacy"]          # also "no-privacy", "single", "random"
//! [[mixes]]                             # helper classes, drawn by weight
//! label = "uniform"
//! classes = ["rpi3", "nexus5", "stm32h7"]
//! weights = [1, 1, 1]
//! [[workloads]]
//! label = "mixed"
//! models = ["lenet5", "cifar_cnn", "vgg16", "vgg19"]
//! [profiles]                            # optional: profile JSON per model
//! lenet5 = "runs/profile/profile.json"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::fleet::{Budgets, Device, DeviceClass, Fleet};
use crate::privacy::{Profile, builtin};
use crate::sim::{SimConfig, SimResult, simulate, with_cameras};
use crate::{ModelPlan, PlanError, Strategy};

/// A fleet mix: helper classes drawn independently with the given weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    /// Name in reports.
    pub label: String,
    /// Catalog class names.
    pub classes: Vec<String>,
    /// Relative weights (all equal when empty).
    #[serde(default)]
    pub weights: Vec<f64>,
}

/// A workload: the models the cameras run (one model per camera, in turn).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Name in reports.
    pub label: String,
    /// Zoo model names.
    pub models: Vec<String>,
}

/// A sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Experiment {
    /// Requests per run.
    pub requests: usize,
    /// Arrivals per second.
    pub lambda: f64,
    /// Seed (fleets, arrivals).
    pub seed: u64,
    /// Cameras per run.
    pub cameras: usize,
    /// Fleet sizes (helpers).
    pub devices: Vec<usize>,
    /// Tolerated SSIMs.
    pub taus: Vec<f64>,
    /// Strategy names.
    pub strategies: Vec<String>,
    /// Fleet mixes.
    pub mixes: Vec<Mix>,
    /// Workloads.
    pub workloads: Vec<Workload>,
    /// Budgets per period.
    pub budgets: Budgets,
    /// Profile files per model (built-in profiles otherwise).
    pub profiles: BTreeMap<String, PathBuf>,
    /// The privacy constraint (`sound` by default; `paper` for DistPrivacy's as published).
    pub privacy_rule: crate::PrivacyRule,
}

impl Default for Experiment {
    fn default() -> Self {
        Experiment {
            requests: 320,
            lambda: 3.0,
            seed: 0,
            cameras: 10,
            devices: vec![10, 20, 40, 60, 80, 100],
            taus: vec![0.4, 0.6, 0.8],
            strategies: vec!["distprivacy".into()],
            mixes: vec![Mix {
                label: "uniform".into(),
                classes: vec!["rpi3".into(), "nexus5".into(), "stm32h7".into()],
                weights: vec![],
            }],
            workloads: vec![Workload {
                label: "mixed".into(),
                models: vec![
                    "lenet5".into(),
                    "cifar_cnn".into(),
                    "vgg16".into(),
                    "vgg19".into(),
                ],
            }],
            budgets: Budgets::default(),
            profiles: BTreeMap::new(),
            privacy_rule: crate::PrivacyRule::Sound,
        }
    }
}

/// One simulated configuration.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// Fleet mix label.
    pub mix: String,
    /// Workload label.
    pub workload: String,
    /// Outcome (devices, tau and strategy included).
    #[serde(flatten)]
    pub result: SimResult,
}

/// The strategy names [`strategy`] accepts (`greedy` is DistPrivacy's other name).
pub const STRATEGY_NAMES: [&str; 5] = ["distprivacy", "greedy", "no-privacy", "single", "random"];

/// The Fig. 3 panels [`figure`] builds.
pub const FIGURE_NAMES: [&str; 6] = ["3a", "3b", "3c", "3d", "3e", "3f"];

/// Parses a strategy name.
pub fn strategy(name: &str) -> Result<Strategy, PlanError> {
    match name {
        "distprivacy" | "greedy" => Ok(Strategy::DISTPRIVACY),
        "no-privacy" => Ok(Strategy::NoPrivacy),
        "single" => Ok(Strategy::Single),
        "random" => Ok(Strategy::Random),
        other => Err(PlanError::config(
            "strategy",
            format!("unknown `{other}` (distprivacy, no-privacy, single, random)"),
        )),
    }
}

/// The profile of `model`: the file named in `files`, else the built-in one.
pub fn profile_for(model: &str, files: &BTreeMap<String, PathBuf>) -> Result<Profile, PlanError> {
    match files.get(model) {
        Some(path) => read_profile(path),
        None => builtin(model).ok_or_else(|| PlanError::Profile {
            model: model.to_string(),
            message: "no built-in profile (lenet5, gtsrb_cnn, cifar_cnn, vgg16, vgg19 have one); give a `veil profile` JSON".into(),
        }),
    }
}

/// Reads a profile JSON file.
pub fn read_profile(path: &Path) -> Result<Profile, PlanError> {
    let text = std::fs::read_to_string(path).map_err(|e| PlanError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    Profile::from_json_str(&text)
        .map_err(|e| PlanError::config(path.display().to_string(), e.to_string()))
}

/// `n` helpers drawn from `mix` with a seeded generator.
pub fn draw_fleet(mix: &Mix, n: usize, budgets: &Budgets, seed: u64) -> Result<Fleet, PlanError> {
    let classes = mix
        .classes
        .iter()
        .map(|c| DeviceClass::by_name(c))
        .collect::<Result<Vec<_>, _>>()?;
    let weights = if mix.weights.is_empty() {
        vec![1.0; classes.len()]
    } else {
        mix.weights.clone()
    };
    let total: f64 = weights.iter().sum();
    if classes.is_empty()
        || weights.len() != classes.len()
        || !total.is_finite()
        || total <= 0.0
        || weights.iter().any(|w| w.is_nan() || *w < 0.0)
    {
        return Err(PlanError::config(
            format!("mix {}", mix.label),
            "needs classes and as many non-negative weights (or none)",
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let helpers = (0..n)
        .map(|i| {
            let mut u = rng.random_range(0.0..total);
            let mut c = 0;
            while c + 1 < classes.len() && u >= weights[c] {
                u -= weights[c];
                c += 1;
            }
            Device {
                name: format!("{}-{i}", classes[c].name),
                class: classes[c].clone(),
            }
        })
        .collect();
    Ok(Fleet {
        helpers,
        sources: Vec::new(),
        budgets: budgets.clone(),
    })
}

/// Smallest and largest arrival rate of an experiment (requests per second): below one a
/// week and a half, a simulation spans absurd times (`lambda = 1e-300` walked ~1e300 empty
/// periods before they were skipped).
pub const LAMBDA_RANGE: (f64, f64) = (1e-6, 1e6);

impl Experiment {
    /// Parses an experiment file.
    pub fn from_toml_str(text: &str) -> Result<Self, PlanError> {
        let e: Experiment = toml::from_str(text)
            .map_err(|e| PlanError::config("experiment", e.message().to_string()))?;
        if e.requests == 0
            || e.requests > 1_000_000
            || !(LAMBDA_RANGE.0..=LAMBDA_RANGE.1).contains(&e.lambda)
            || e.cameras == 0
        {
            return Err(PlanError::config(
                "experiment",
                format!(
                    "requests must be in 1..=1000000, lambda in [{}, {}] per second and cameras >= 1",
                    LAMBDA_RANGE.0, LAMBDA_RANGE.1
                ),
            ));
        }
        if e.devices.iter().any(|&d| d == 0 || d > 100_000)
            || e.taus.iter().any(|t| !(0.0..=1.0).contains(t))
        {
            return Err(PlanError::config(
                "experiment",
                "devices in 1..=100000 and taus in [0, 1]",
            ));
        }
        e.budgets.check()?;
        if e.cameras > 100_000 {
            return Err(PlanError::config(
                "experiment",
                "cameras must be in 1..=100000",
            ));
        }
        if let Some(w) = e.workloads.iter().find(|w| w.models.is_empty()) {
            return Err(PlanError::config(
                "experiment",
                format!("workload `{}` runs no model (models = [])", w.label),
            ));
        }
        for s in &e.strategies {
            strategy(s)?;
        }
        Ok(e)
    }

    /// Runs every combination, calling `on_row` as each finishes.
    pub fn run(&self, on_row: &mut dyn FnMut(&Row)) -> Result<Vec<Row>, PlanError> {
        let mut rows = Vec::new();
        for workload in &self.workloads {
            for &tau in &self.taus {
                let plans = workload
                    .models
                    .iter()
                    .map(|m| {
                        let spec = veil_spec::zoo::model(m)?;
                        let profile = profile_for(m, &self.profiles)?;
                        ModelPlan::with_rule(&spec, &profile, tau, self.privacy_rule)
                    })
                    .collect::<Result<Vec<_>, PlanError>>()?;
                for mix in &self.mixes {
                    for &n in &self.devices {
                        let fleet = draw_fleet(mix, n, &self.budgets, self.seed ^ n as u64)?;
                        let fleet = with_cameras(&fleet, self.cameras, &workload.models);
                        let source_model: Vec<usize> =
                            (0..fleet.sources.len()).map(|c| c % plans.len()).collect();
                        for name in &self.strategies {
                            let cfg = SimConfig {
                                requests: self.requests,
                                lambda: self.lambda,
                                cameras: self.cameras,
                                seed: self.seed,
                                ..SimConfig::default()
                            };
                            let (result, _) =
                                simulate(&fleet, &plans, &source_model, &cfg, strategy(name)?);
                            let row = Row {
                                mix: mix.label.clone(),
                                workload: workload.label.clone(),
                                result,
                            };
                            on_row(&row);
                            rows.push(row);
                        }
                    }
                }
            }
        }
        Ok(rows)
    }
}

/// CSV of rows.
pub fn to_csv(rows: &[Row]) -> String {
    let mut out = String::from(
        "mix,workload,strategy,devices,tau,requests,placed,dropped,rejected_fraction,latency_total_s,latency_mean_s,latency_p95_s,inference_mean_s,shared_mb,placing_seconds\n",
    );
    for r in rows {
        let s = &r.result;
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{:.4},{:.4},{:.6},{:.6},{:.6},{:.4},{:.4}\n",
            r.mix,
            r.workload,
            s.strategy,
            s.devices,
            s.tau,
            s.requests,
            s.placed,
            s.dropped,
            s.rejected_fraction,
            s.latency_total_s,
            s.latency_mean_s,
            s.latency_p95_s,
            s.inference_mean_s,
            s.shared_mb,
            s.placing_seconds
        ));
    }
    out
}

/// What a Fig. 3 panel plots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Metric {
    /// Total latency (panels a, c, e).
    Latency,
    /// Shared data (panels b, d, f).
    SharedData,
}

/// The x axis of a panel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Axis {
    /// Number of helpers.
    Devices,
    /// Fleet mix.
    Mix,
    /// Workload (model).
    Workload,
}

/// A Fig. 3 panel: its experiment, metric and x axis.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Figure {
    /// `3a` ... `3f`.
    pub name: String,
    /// What is simulated.
    pub experiment: Experiment,
    /// What is plotted.
    pub metric: Metric,
    /// Along what.
    pub axis: Axis,
}

/// The preset for panel `name` (`3a` ... `3f`): (a, b) fleets of 10-100 helpers drawn
/// uniformly from RPi3, Nexus 5 and STM32H7 with the mixed workload; (c, d) 50 helpers at
/// 70/30, 50/50 and 30/70 STM32H7/RPi3 with the mixed workload; (e, f) 50 uniform helpers
/// with one model per workload. Every panel at tau 0.4, 0.6 and 0.8, 320 requests,
/// lambda 3/s, 10 cameras.
pub fn figure(name: &str) -> Result<Figure, PlanError> {
    let base = Experiment::default();
    let mix = |label: &str, small: f64| Mix {
        label: label.into(),
        classes: vec!["stm32h7".into(), "rpi3".into()],
        weights: vec![small, 1.0 - small],
    };
    let (experiment, axis) = match name {
        "3a" | "3b" => (base, Axis::Devices),
        "3c" | "3d" => (
            Experiment {
                devices: vec![50],
                mixes: vec![mix("70/30", 0.7), mix("50/50", 0.5), mix("30/70", 0.3)],
                ..base
            },
            Axis::Mix,
        ),
        "3e" | "3f" => (
            Experiment {
                devices: vec![50],
                workloads: ["lenet5", "cifar_cnn", "vgg16", "vgg19"]
                    .iter()
                    .map(|m| Workload {
                        label: m.to_string(),
                        models: vec![m.to_string()],
                    })
                    .collect(),
                ..base
            },
            Axis::Workload,
        ),
        other => {
            return Err(PlanError::config(
                "figure",
                format!("unknown panel `{other}` (3a, 3b, 3c, 3d, 3e, 3f)"),
            ));
        }
    };
    let metric = if matches!(name, "3a" | "3c" | "3e") {
        Metric::Latency
    } else {
        Metric::SharedData
    };
    Ok(Figure {
        name: name.to_string(),
        experiment,
        metric,
        axis,
    })
}

/// Placement speed for one fleet size and request count.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScalingRow {
    /// Model of every request.
    pub model: String,
    /// Helpers.
    pub devices: usize,
    /// Requests placed.
    pub requests: usize,
    /// Requests placed (possibly after retries).
    pub placed: usize,
    /// Share of requests rejected at least once.
    pub rejected_fraction: f64,
    /// Wall-clock seconds of placement, retries included.
    pub seconds: f64,
    /// Requests placed per second.
    pub placements_per_s: f64,
    /// Segments placed per second.
    pub segments_per_s: f64,
}

/// Times the greedy placing `requests` requests of `model` (arriving at `lambda` per second
/// from 10 cameras) on uniform fleets of each size in `devices`, at tau `tau`.
pub fn scaling(
    model: &str,
    tau: f64,
    devices: &[usize],
    requests: &[usize],
    seed: u64,
) -> Result<Vec<ScalingRow>, PlanError> {
    let spec = veil_spec::zoo::model(model)?;
    let plan = ModelPlan::new(&spec, &profile_for(model, &BTreeMap::new())?, tau)?;
    let segments = plan.total_segments();
    let plans = [plan];
    let mix = Experiment::default().mixes.remove(0);
    let mut rows = Vec::new();
    for &n in devices {
        let fleet = draw_fleet(&mix, n, &Budgets::default(), seed ^ n as u64)?;
        let fleet = with_cameras(&fleet, 10, &[model.to_string()]);
        for &r in requests {
            let cfg = SimConfig {
                requests: r,
                seed,
                ..SimConfig::default()
            };
            let (result, placements) =
                simulate(&fleet, &plans, &[0; 10], &cfg, Strategy::DISTPRIVACY);
            rows.push(ScalingRow {
                model: model.to_string(),
                devices: n,
                requests: r,
                placed: placements.len(),
                rejected_fraction: result.rejected_fraction,
                seconds: result.placing_seconds,
                placements_per_s: placements.len() as f64 / result.placing_seconds.max(1e-12),
                segments_per_s: (placements.len() * segments) as f64
                    / result.placing_seconds.max(1e-12),
            });
        }
    }
    Ok(rows)
}
