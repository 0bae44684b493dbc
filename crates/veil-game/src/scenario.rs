//! [`Scenario`]: vehicles and the constants of the game, with validation.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Invalid game parameters.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GameError {
    /// A parameter is out of its range.
    #[error("invalid scenario: {0}")]
    Invalid(String),
    /// The scenario file could not be read or parsed.
    #[error("game config {path}: {message}")]
    Config {
        /// File path.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// One vehicle (follower).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vehicle {
    /// Driving speed `v_i` in m/s (> 0).
    pub speed: f64,
    /// Privacy value `c_i`: the estimated value of the collected data (>= 0).
    pub privacy_value: f64,
}

/// The accuracy-fit file: the curve `A = a ln(b eps + 1)` that `veil defend dp` measured,
/// which `veil game --accuracy-fit` reads. This type is the file's one contract: written by
/// [`AccuracyFit::to_toml`], read by [`AccuracyFit::from_toml`] (`r2` and `source` are
/// provenance; the game uses `accuracy_a` and `accuracy_b`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccuracyFit {
    /// Scale `a` of the curve.
    pub accuracy_a: f64,
    /// Rate `b` of the curve.
    pub accuracy_b: f64,
    /// Coefficient of determination of the fit, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r2: Option<f64>,
    /// Where the measurements came from (model, dataset, split, budgets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl AccuracyFit {
    /// The file's text: `comment` (each line prefixed with `# `) above the TOML keys.
    pub fn to_toml(&self, comment: &str) -> Result<String, GameError> {
        let body = toml::to_string(self).map_err(|e| GameError::Invalid(e.to_string()))?;
        let mut text: String = comment.lines().map(|l| format!("# {l}\n")).collect();
        text.push_str(&body);
        Ok(text)
    }

    /// Parses a fit file (`path` names it in errors); the values are checked by
    /// [`Scenario::validate`] once applied.
    pub fn from_toml(text: &str, path: &str) -> Result<Self, GameError> {
        toml::from_str(text).map_err(|e| GameError::Config {
            path: path.to_string(),
            message: e.to_string().replace('\n', " "),
        })
    }
}

/// All parameters of one game.
///
/// Defaults (documented in `docs/GAME.md`): the simulation setup of Spears and Shields §6:
/// 10 vehicles with speeds in [5, 15] m/s and privacy values in [5, 10] (seed 0), unit expense
/// `e = 10`, profit coefficient `lambda = 1000`, `eps` in `[0.01, 100]`, accuracy fit `a = 0.2`,
/// `b = 1` (the paper's illustration; `veil game --accuracy-fit` takes the fit that
/// `veil defend dp` measured instead).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The followers (at least two).
    pub vehicles: Vec<Vehicle>,
    /// Unit expense `e` of sensing (>= 0).
    pub unit_expense: f64,
    /// Profit coefficient `lambda` (> 0).
    pub profit_coefficient: f64,
    /// Smallest privacy budget (> 0).
    pub eps_min: f64,
    /// Largest privacy budget (> eps_min).
    pub eps_max: f64,
    /// Accuracy fit `A = a log(b eps + 1)`: `a` (> 0).
    pub accuracy_a: f64,
    /// Accuracy fit: `b` (> 0).
    pub accuracy_b: f64,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario::random(10, 1000.0, 0)
    }
}

impl Scenario {
    /// `n` vehicles with speeds uniform in [5, 15] m/s and privacy values uniform in [5, 10]
    /// (seeded), `e = 10`, the given `lambda`, default eps bounds and accuracy fit.
    pub fn random(n: usize, lambda: f64, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let vehicles = (0..n)
            .map(|_| Vehicle {
                speed: rng.random_range(5.0..=15.0),
                privacy_value: rng.random_range(5.0..=10.0),
            })
            .collect();
        Scenario {
            vehicles,
            unit_expense: 10.0,
            profit_coefficient: lambda,
            eps_min: 0.01,
            eps_max: 100.0,
            accuracy_a: 0.2,
            accuracy_b: 1.0,
        }
    }

    /// Parses a TOML scenario and validates it.
    pub fn from_toml_str(text: &str, path: &str) -> Result<Self, GameError> {
        let s: Scenario = toml::from_str(text).map_err(|e| GameError::Config {
            path: path.to_string(),
            message: e.to_string().replace('\n', " "),
        })?;
        s.validate()?;
        Ok(s)
    }

    /// Replaces the accuracy fit with the one in a fit file written by `veil defend dp`
    /// ([`AccuracyFit`]), then validates.
    pub fn with_accuracy_fit_toml(mut self, text: &str, path: &str) -> Result<Self, GameError> {
        let fit = AccuracyFit::from_toml(text, path)?;
        self.accuracy_a = fit.accuracy_a;
        self.accuracy_b = fit.accuracy_b;
        self.validate()?;
        Ok(self)
    }

    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), GameError> {
        let bad = |m: String| Err(GameError::Invalid(m));
        if self.vehicles.len() < 2 {
            return bad(format!(
                "the game needs at least two vehicles, got {}",
                self.vehicles.len()
            ));
        }
        for (i, v) in self.vehicles.iter().enumerate() {
            if !(v.speed.is_finite() && v.speed > 0.0) {
                return bad(format!(
                    "vehicle {i}: speed must be positive, got {}",
                    v.speed
                ));
            }
            if !(v.privacy_value.is_finite() && v.privacy_value >= 0.0) {
                return bad(format!(
                    "vehicle {i}: privacy_value must be non-negative, got {}",
                    v.privacy_value
                ));
            }
        }
        let positive = [
            ("profit_coefficient", self.profit_coefficient),
            ("eps_min", self.eps_min),
            ("accuracy_a", self.accuracy_a),
            ("accuracy_b", self.accuracy_b),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return bad(format!("{name} must be positive, got {v}"));
            }
        }
        if !(self.unit_expense.is_finite() && self.unit_expense >= 0.0) {
            return bad(format!(
                "unit_expense must be non-negative, got {}",
                self.unit_expense
            ));
        }
        if !(self.eps_max.is_finite() && self.eps_max > self.eps_min) {
            return bad(format!(
                "eps_max ({}) must be finite and greater than eps_min ({})",
                self.eps_max, self.eps_min
            ));
        }
        Ok(())
    }

    /// Number of vehicles.
    pub fn n(&self) -> usize {
        self.vehicles.len()
    }

    /// `k_i = c_i + e / v_i`: vehicle `i`'s loss per unit of privacy budget.
    pub fn unit_cost(&self, i: usize) -> f64 {
        let v = &self.vehicles[i];
        v.privacy_value + self.unit_expense / v.speed
    }

    /// `S = sum_i v_i k_i`.
    pub fn weighted_cost_sum(&self) -> f64 {
        (0..self.n())
            .map(|i| self.vehicles[i].speed * self.unit_cost(i))
            .sum()
    }

    /// Vehicle `i`'s utility for budgets `eps` under reward `r`.
    pub fn vehicle_utility(&self, i: usize, eps: &[f64], r: f64) -> f64 {
        let total: f64 = eps
            .iter()
            .zip(&self.vehicles)
            .map(|(e, v)| e / v.speed)
            .sum();
        let share = if total > 0.0 {
            eps[i] / self.vehicles[i].speed / total
        } else {
            0.0
        };
        r * share - eps[i] * self.unit_cost(i)
    }

    /// The SP's revenue `lambda a sum_i (1/v_i) log(b eps_i + 1)` (before paying `R`).
    pub fn sp_revenue(&self, eps: &[f64]) -> f64 {
        self.profit_coefficient
            * self.accuracy_a
            * eps
                .iter()
                .zip(&self.vehicles)
                .map(|(e, v)| (self.accuracy_b * e + 1.0).ln() / v.speed)
                .sum::<f64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fit_file_reads_back_what_it_wrote() {
        let fit = AccuracyFit {
            accuracy_a: 0.1805,
            accuracy_b: 0.5521,
            r2: Some(0.837),
            source: Some("gtsrb_cnn gtsrb conv4 eps [1.0, 5.0]".into()),
        };
        let text = fit
            .to_toml("fitted by veil defend dp\nsecond line")
            .expect("toml");
        assert!(
            text.starts_with("# fitted by veil defend dp\n# second line\n"),
            "{text}"
        );
        assert_eq!(AccuracyFit::from_toml(&text, "f.toml").expect("parse"), fit);
        let s = Scenario::default()
            .with_accuracy_fit_toml(&text, "f.toml")
            .expect("apply");
        assert_eq!((s.accuracy_a, s.accuracy_b), (0.1805, 0.5521));
    }

    #[test]
    fn a_fit_file_replaces_the_accuracy_curve() {
        let text = "# from veil defend dp\naccuracy_a = 0.19\naccuracy_b = 0.31\nr2 = 0.83\nsource = \"gtsrb_cnn conv4\"\n";
        let s = Scenario::default()
            .with_accuracy_fit_toml(text, "fit.toml")
            .expect("fit");
        assert_eq!((s.accuracy_a, s.accuracy_b), (0.19, 0.31));
        let e = Scenario::default()
            .with_accuracy_fit_toml("accuracy_a = 0.2\n", "fit.toml")
            .expect_err("missing b");
        assert!(e.to_string().contains("fit.toml"), "{e}");
        let e = Scenario::default()
            .with_accuracy_fit_toml("accuracy_a = -1.0\naccuracy_b = 1.0\n", "fit.toml")
            .expect_err("negative a");
        assert!(e.to_string().contains("accuracy_a"), "{e}");
    }

    #[test]
    fn validation_rejects_bad_scenarios() {
        let ok = Scenario::default();
        assert!(ok.validate().is_ok());
        let mut s = ok.clone();
        s.vehicles[1].speed = -3.0;
        assert!(
            s.validate()
                .expect_err("speed")
                .to_string()
                .contains("speed")
        );
        let mut s = ok.clone();
        s.eps_min = 5.0;
        s.eps_max = 1.0;
        assert!(
            s.validate()
                .expect_err("bounds")
                .to_string()
                .contains("eps_max")
        );
        let mut s = ok.clone();
        s.vehicles.truncate(1);
        assert!(
            s.validate()
                .expect_err("n")
                .to_string()
                .contains("two vehicles")
        );
        let mut s = ok;
        s.accuracy_b = f64::NAN;
        assert!(s.validate().is_err());
    }

    #[test]
    fn toml_round_trip_and_errors() {
        let s = Scenario::default();
        let text = toml::to_string(&s).expect("toml");
        assert_eq!(Scenario::from_toml_str(&text, "x").expect("parse"), s);
        assert!(matches!(
            Scenario::from_toml_str("vehicles = 3", "x"),
            Err(GameError::Config { .. })
        ));
    }
}
