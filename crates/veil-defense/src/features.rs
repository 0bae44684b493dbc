//! Baseline shields on the transmitted features (SYSTEM.md section 6): additive Gaussian or
//! Laplace noise and dropout, applied by the device to what it sends. Each acts in place on a
//! batch of feature values and is seeded, so an experiment can be replayed.
//!
//! Key item: [`FeatureShield`], applied with [`FeatureShield::apply`].

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::DefenseError;

/// A transformation of transmitted features.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum FeatureShield {
    /// Adds N(0, sigma^2) to every value.
    Gaussian {
        /// Standard deviation.
        sigma: f64,
    },
    /// Adds Laplace(0, scale) to every value.
    Laplace {
        /// Scale `b` (standard deviation `b sqrt 2`).
        scale: f64,
    },
    /// Zeroes every value with probability `p` and scales the rest by `1 / (1 - p)`, so the
    /// server-side layers see the same expectation (inverted dropout).
    Dropout {
        /// Drop probability in `[0, 1)`.
        p: f64,
    },
}

impl FeatureShield {
    /// Checks the parameter's domain.
    pub fn check(&self) -> Result<(), DefenseError> {
        let ok = match *self {
            FeatureShield::Gaussian { sigma } => sigma.is_finite() && sigma >= 0.0,
            FeatureShield::Laplace { scale } => scale.is_finite() && scale >= 0.0,
            FeatureShield::Dropout { p } => (0.0..1.0).contains(&p),
        };
        if ok {
            Ok(())
        } else {
            Err(DefenseError::Invalid(format!(
                "{self:?}: noise scales must be finite and >= 0, dropout p in [0, 1)"
            )))
        }
    }

    /// Applies the shield to `values` with a generator seeded by `seed`.
    pub fn apply(&self, values: &mut [f32], seed: u64) -> Result<(), DefenseError> {
        self.check()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        match *self {
            FeatureShield::Gaussian { sigma } => {
                for v in values.iter_mut() {
                    *v += (sigma * standard_normal(&mut rng)) as f32;
                }
            }
            FeatureShield::Laplace { scale } => {
                for v in values.iter_mut() {
                    *v += crate::laplace(&mut rng, scale) as f32;
                }
            }
            FeatureShield::Dropout { p } => {
                let keep = (1.0 / (1.0 - p)) as f32;
                for v in values.iter_mut() {
                    *v = if rng.random::<f64>() < p {
                        0.0
                    } else {
                        *v * keep
                    };
                }
            }
        }
        Ok(())
    }
}

/// One N(0, 1) draw (Box-Muller).
fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(v: &[f32]) -> (f64, f64) {
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        (mean, var)
    }

    #[test]
    fn noise_has_the_stated_spread_and_is_seeded() {
        // 100,000 zeros plus noise: the variance should be sigma^2 (Gaussian) or 2 b^2
        // (Laplace) within 3 % (standard error of a variance estimate ~ sqrt(2/n) for the
        // Gaussian, sqrt(5/n) for the Laplace: 0.45 % and 0.7 %).
        let mut g = vec![0.0f32; 100_000];
        FeatureShield::Gaussian { sigma: 0.5 }
            .apply(&mut g, 1)
            .expect("g");
        let (m, v) = moments(&g);
        assert!(m.abs() < 0.01 && (v / 0.25 - 1.0).abs() < 0.03, "{m} {v}");
        let mut l = vec![0.0f32; 100_000];
        FeatureShield::Laplace { scale: 0.5 }
            .apply(&mut l, 1)
            .expect("l");
        let (m, v) = moments(&l);
        assert!(m.abs() < 0.01 && (v / 0.5 - 1.0).abs() < 0.03, "{m} {v}");
        let mut again = vec![0.0f32; 100_000];
        FeatureShield::Laplace { scale: 0.5 }
            .apply(&mut again, 1)
            .expect("l");
        assert_eq!(l, again);
    }

    #[test]
    fn dropout_zeroes_a_share_p_and_keeps_the_expectation() {
        let mut v = vec![1.0f32; 100_000];
        FeatureShield::Dropout { p: 0.3 }
            .apply(&mut v, 3)
            .expect("d");
        let zeros = v.iter().filter(|&&x| x == 0.0).count() as f64 / 1e5;
        assert!((zeros - 0.3).abs() < 0.01, "{zeros}");
        let (mean, _) = moments(&v);
        assert!((mean - 1.0).abs() < 0.02, "{mean}");
        assert!(FeatureShield::Dropout { p: 1.0 }.apply(&mut v, 0).is_err());
        assert!(
            FeatureShield::Gaussian { sigma: -1.0 }
                .apply(&mut v, 0)
                .is_err()
        );
    }
}
