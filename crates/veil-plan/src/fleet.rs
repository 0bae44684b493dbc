//! Devices and fleets: the catalog of SYSTEM.md section 5 ([`DeviceClass`]), helpers and
//! source cameras ([`Fleet`]), and the per-period resource budgets ([`Budgets`]).
//!
//! A fleet file (TOML) lists helper and source groups; a group names a catalog class
//! (`rpi3`, `nexus5`, `stm32h7`) or gives its own figures:
//!
//! ```toml
//! [budgets]
//! period_s = 1.0      # budgets are per period of this length
//! compute = 1.0       # share of e * period a device may spend per period
//! bandwidth = 1.0     # share of rho * period it may send per period
//! memory = 1.0        # share of its memory the weights of one period may occupy
//!
//! [[helpers]]
//! class = "rpi3"
//! count = 10
//!
//! [[helpers]]
//! name = "jetson"
//! e = 5000            # 10^6 multiplications per second
//! memory_mb = 4096
//! rate_mbps = 100
//! count = 2
//!
//! [[sources]]
//! class = "rpi3"
//! model = "lenet5"
//! count = 2
//! ```

use serde::{Deserialize, Serialize};

use crate::PlanError;

/// A kind of device: compute rate, memory and link rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceClass {
    /// Class name.
    pub name: String,
    /// Multiplications per second (`e` of the paper times 10^6).
    pub macs_per_s: f64,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Link rate in bits per second (`rho`).
    pub rate_bps: f64,
}

impl DeviceClass {
    /// Raspberry Pi 3: e = 560, 1 GB, 802.11n 72.2 Mb/s.
    pub fn rpi3() -> Self {
        Self::new("rpi3", 560.0, 1024, 72.2)
    }

    /// LG Nexus 5: e = 800, 2 GB, 802.11n 72.2 Mb/s.
    pub fn nexus5() -> Self {
        Self::new("nexus5", 800.0, 2048, 72.2)
    }

    /// STM32H7: e = 40, 1 MB, 802.11ah 7.2 Mb/s.
    pub fn stm32h7() -> Self {
        Self::new("stm32h7", 40.0, 1, 7.2)
    }

    /// A class from the paper's units: `e` in 10^6 multiplications/s, memory in MiB, rate in
    /// Mb/s.
    pub fn new(name: &str, e: f64, memory_mb: u64, rate_mbps: f64) -> Self {
        DeviceClass {
            name: name.to_string(),
            macs_per_s: e * 1e6,
            // Saturating: a file's absurd memory_mb is refused by the fleet reader; a caller's
            // never wraps to a small number.
            memory_bytes: memory_mb.saturating_mul(1024 * 1024),
            rate_bps: rate_mbps * 1e6,
        }
    }

    /// The names [`DeviceClass::from_flags`] accepts.
    pub const FLAG_NAMES: [&str; 4] = ["rpi3", "nexus5", "stm32h7", "custom"];

    /// The class a command line names: a catalog `name`, or `custom` with all three of `e`
    /// (10^6 multiplications/s), `memory_mb` and `rate_mbps`, each positive and finite (and
    /// only with `custom`).
    pub fn from_flags(
        name: &str,
        e: Option<f64>,
        memory_mb: Option<u64>,
        rate_mbps: Option<f64>,
    ) -> Result<Self, PlanError> {
        let bad = |m: &str| Err(PlanError::config("device class", m.to_string()));
        if name != "custom" {
            if e.is_some() || memory_mb.is_some() || rate_mbps.is_some() {
                return bad("--e, --memory-mb and --rate-mbps go with --device custom");
            }
            return Self::by_name(name);
        }
        let (Some(e), Some(memory_mb), Some(rate)) = (e, memory_mb, rate_mbps) else {
            return bad("--device custom needs --e, --memory-mb and --rate-mbps");
        };
        let sane = |v: f64| v.is_finite() && v > 0.0;
        if !sane(e) || !sane(rate) || memory_mb == 0 {
            return bad("--e, --memory-mb and --rate-mbps must be positive");
        }
        Ok(DeviceClass::new("custom", e, memory_mb, rate))
    }

    /// The catalog class called `name`.
    pub fn by_name(name: &str) -> Result<Self, PlanError> {
        match name.to_ascii_lowercase().as_str() {
            "rpi3" => Ok(Self::rpi3()),
            "nexus5" => Ok(Self::nexus5()),
            "stm32h7" => Ok(Self::stm32h7()),
            other => Err(PlanError::config(
                "device class",
                format!(
                    "unknown class `{other}` (rpi3, nexus5, stm32h7, or give e, memory_mb and rate_mbps)"
                ),
            )),
        }
    }
}

/// Resource budgets per period (the paper leaves them unspecified; SYSTEM.md section 5).
///
/// A device may spend `compute * e * period_s` multiplications, send
/// `bandwidth * rho * period_s / 8` bytes and hold `memory * memory_bytes` of segment weights
/// for the requests placed in one period. Budgets are renewed each period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Budgets {
    /// Period length in seconds.
    pub period_s: f64,
    /// Usable share of the compute rate.
    pub compute: f64,
    /// Usable share of the link rate.
    pub bandwidth: f64,
    /// Usable share of the memory.
    pub memory: f64,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            period_s: 1.0,
            compute: 1.0,
            bandwidth: 1.0,
            memory: 1.0,
        }
    }
}

/// Shortest and longest budget period (seconds): a millisecond to about eleven days. Outside
/// them a simulation walks absurd numbers of periods (`period_s = 1e-300` did).
pub const PERIOD_RANGE_S: (f64, f64) = (1e-3, 1e6);

impl Budgets {
    pub(crate) fn check(&self) -> Result<(), PlanError> {
        let ok = |v: f64| v.is_finite() && v > 0.0;
        let period_ok = (PERIOD_RANGE_S.0..=PERIOD_RANGE_S.1).contains(&self.period_s);
        if period_ok && ok(self.compute) && ok(self.bandwidth) && ok(self.memory) {
            Ok(())
        } else {
            Err(PlanError::config(
                "budgets",
                format!(
                    "period_s must be in [{}, {}] s and compute, bandwidth and memory positive numbers, got {self:?}",
                    PERIOD_RANGE_S.0, PERIOD_RANGE_S.1
                ),
            ))
        }
    }
}

/// One device of a fleet.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Device {
    /// Name, unique in the fleet (`rpi3-3`, `cam-0`, ...).
    pub name: String,
    /// Its class.
    pub class: DeviceClass,
}

/// A camera: a source device that runs one model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Source {
    /// The device.
    pub device: Device,
    /// Zoo name (or spec path) of the model its requests run.
    pub model: String,
}

/// Helpers, sources and budgets.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Fleet {
    /// Untrusted helpers that compute intermediate segments.
    pub helpers: Vec<Device>,
    /// Cameras: they run the first and last layers of their own requests only.
    pub sources: Vec<Source>,
    /// Per-period budgets.
    pub budgets: Budgets,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupFile {
    class: Option<String>,
    name: Option<String>,
    e: Option<f64>,
    memory_mb: Option<u64>,
    rate_mbps: Option<f64>,
    #[serde(default = "one")]
    count: usize,
    model: Option<String>,
}

fn one() -> usize {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetFile {
    #[serde(default)]
    budgets: Budgets,
    #[serde(default)]
    helpers: Vec<GroupFile>,
    #[serde(default)]
    sources: Vec<GroupFile>,
}

/// Largest number of devices a fleet file may describe (a guard against typos and hostile
/// files).
pub const MAX_DEVICES: usize = 1_000_000;

/// Largest `memory_mb` a fleet file may give a device (1 PiB; more is a typo, and
/// `memory_mb * 2^20` bytes must not wrap).
pub const MAX_MEMORY_MB: u64 = 1 << 30;

impl GroupFile {
    fn class(&self, what: &str) -> Result<DeviceClass, PlanError> {
        match (&self.class, self.e, self.memory_mb, self.rate_mbps) {
            (Some(c), None, None, None) => DeviceClass::by_name(c),
            (None, Some(e), Some(m), Some(r)) => {
                if !(e.is_finite() && e > 0.0 && r.is_finite() && r > 0.0 && m > 0) {
                    return Err(PlanError::config(
                        what,
                        "e, memory_mb and rate_mbps must be positive",
                    ));
                }
                if m > MAX_MEMORY_MB {
                    return Err(PlanError::config(
                        what,
                        format!("memory_mb {m} is more than {MAX_MEMORY_MB} (1 PiB)"),
                    ));
                }
                let name = self.name.clone().unwrap_or_else(|| "custom".into());
                Ok(DeviceClass::new(&name, e, m, r))
            }
            _ => Err(PlanError::config(
                what,
                "give either `class` or all of `e`, `memory_mb` and `rate_mbps`",
            )),
        }
    }
}

impl Fleet {
    /// Reads and parses the fleet file at `path`.
    pub fn read(path: &std::path::Path) -> Result<Self, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|e| PlanError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::from_toml_str(&text)
            .map_err(|e| PlanError::config(path.display().to_string(), e.to_string()))
    }

    /// Parses a fleet file.
    pub fn from_toml_str(text: &str) -> Result<Self, PlanError> {
        let file: FleetFile = toml::from_str(text)
            .map_err(|e| PlanError::config("fleet", e.message().to_string()))?;
        file.budgets.check()?;
        let total: usize = file
            .helpers
            .iter()
            .chain(&file.sources)
            .map(|g| g.count)
            .fold(0usize, usize::saturating_add);
        if total > MAX_DEVICES {
            return Err(PlanError::config(
                "fleet",
                format!("{total} devices, more than {MAX_DEVICES}"),
            ));
        }
        let mut helpers = Vec::new();
        for (g, group) in file.helpers.iter().enumerate() {
            if group.model.is_some() {
                return Err(PlanError::config(
                    format!("helpers[{g}]"),
                    "helpers run no model of their own; `model` belongs to sources",
                ));
            }
            let class = group.class(&format!("helpers[{g}]"))?;
            for _ in 0..group.count {
                helpers.push(Device {
                    name: format!("{}-{}", class.name, helpers.len()),
                    class: class.clone(),
                });
            }
        }
        let mut sources = Vec::new();
        for (g, group) in file.sources.iter().enumerate() {
            let what = format!("sources[{g}]");
            let Some(model) = group.model.clone() else {
                return Err(PlanError::config(
                    what,
                    "a source needs the `model` its requests run",
                ));
            };
            let class = group.class(&what)?;
            for _ in 0..group.count {
                sources.push(Source {
                    device: Device {
                        name: format!("cam-{}", sources.len()),
                        class: class.clone(),
                    },
                    model: model.clone(),
                });
            }
        }
        if helpers.is_empty() {
            return Err(PlanError::config("fleet", "no helpers"));
        }
        Ok(Fleet {
            helpers,
            sources,
            budgets: file.budgets,
        })
    }

    /// `n` helpers of `classes` in turn (`n` and the classes' order decide the mix).
    pub fn mixed(n: usize, classes: &[DeviceClass], budgets: Budgets) -> Self {
        let helpers = (0..n)
            .map(|i| {
                let class = classes[i % classes.len().max(1)].clone();
                Device {
                    name: format!("{}-{i}", class.name),
                    class,
                }
            })
            .collect();
        Fleet {
            helpers,
            sources: Vec::new(),
            budgets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_files_parse_with_catalog_and_custom_classes() {
        let fleet = Fleet::from_toml_str(
            r#"
            [budgets]
            period_s = 2.0
            [[helpers]]
            class = "rpi3"
            count = 2
            [[helpers]]
            name = "jetson"
            e = 5000
            memory_mb = 4096
            rate_mbps = 100
            [[sources]]
            class = "rpi3"
            model = "lenet5"
            "#,
        )
        .expect("fleet");
        assert_eq!(fleet.helpers.len(), 3);
        assert_eq!(fleet.helpers[2].class.macs_per_s, 5e9);
        assert_eq!(fleet.helpers[0].class.rate_bps, 72.2e6);
        assert_eq!(fleet.sources[0].model, "lenet5");
        assert_eq!(fleet.budgets.period_s, 2.0);
    }

    #[test]
    fn bad_fleet_files_are_rejected_with_a_reason() {
        for text in [
            "[[helpers]]\nclass = \"pdp11\"",
            "[[helpers]]\nclass = \"rpi3\"\ne = 4",
            "[[helpers]]\ne = -1\nmemory_mb = 1\nrate_mbps = 1",
            "[[helpers]]\ne = 1\nmemory_mb = 17592186044416\nrate_mbps = 1",
            "[[sources]]\nclass = \"rpi3\"",
            "[[helpers]]\nclass = \"rpi3\"\ncount = 2000000",
            "[budgets]\nperiod_s = 0\n[[helpers]]\nclass = \"rpi3\"",
            "helpers = 3",
            "",
        ] {
            assert!(Fleet::from_toml_str(text).is_err(), "{text}");
        }
    }
}
