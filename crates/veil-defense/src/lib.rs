//! veil-defense: the shields (SYSTEM.md section 6), judged by the spear (`veil-attack`).
//!
//! - [`dp`]: model perturbation of Spears and Shields (Algorithm 2): clip the device-side
//!   parameters to `G` and add Laplace(0, 2G/eps) noise once per deployment.
//! - [`obfnet`]: ObfNets trained in front of a frozen classifier, one picked at random per
//!   sample, judged by accuracy and an attack that knows every ObfNet.
//! - [`obfnet_campaign`]: ObfNets trained, judged and written as a run's files:
//!   `veil defend obfnet`.
//! - [`features`]: baselines on the transmitted features: Gaussian or Laplace noise, dropout.
//! - [`sweep`]: a defence judged by accuracy kept and by the attack of `veil-attack` on the
//!   deployed device ([`sweep::Judge`]).
//! - [`compare`]: the shared CSV schema of all runs and the attack SSIM each defence leaves
//!   at equal accuracy.
//! - [`campaign`]: one shield swept over its settings and draws, written as a run's files
//!   (CSV, chart, grids, accuracy-fit file): `veil defend dp|noise|dropout|split`.
//! - [`chart`]: the CSVs of several campaigns on one privacy-utility chart, with the table of
//!   the SSIM each defence leaves at equal accuracy: `veil defend chart`.
//! - [`fit`]: least-squares fit of the accuracy curve `A(eps) = a ln(b eps + 1)` that the
//!   incentive game (`veil-game`) takes as its `a`, `b`.

#![forbid(unsafe_code)]

pub mod campaign;
pub mod chart;
pub mod compare;
pub mod dp;
pub mod features;
pub mod fit;
pub mod obfnet;
pub mod obfnet_campaign;
pub mod sweep;

/// Errors of the shields.
#[derive(Debug, thiserror::Error)]
pub enum DefenseError {
    /// The model engine failed (layer, shape, weights).
    #[error(transparent)]
    Model(#[from] veil_model::ModelError),
    /// The spec failed (unknown layer).
    #[error(transparent)]
    Spec(#[from] veil_spec::SpecError),
    /// A parameter out of its domain (named with its value).
    #[error("{0}")]
    Invalid(String),
    /// A file or directory could not be read or written.
    #[error("{path}")]
    Io {
        /// The file or directory.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The attack failed (features, decoder, image grid).
    #[error(transparent)]
    Attack(#[from] veil_attack::AttackError),
    /// A chart could not be drawn.
    #[error(transparent)]
    Plot(#[from] veil_plot::PlotError),
    /// The accuracy-fit file could not be written.
    #[error(transparent)]
    Game(#[from] veil_game::GameError),
    /// A JSON report could not be encoded.
    #[error("encoding a report")]
    Json(#[source] serde_json::Error),
    /// A file could not be parsed.
    #[error("{path}: {message}")]
    File {
        /// File path.
        path: String,
        /// What went wrong.
        message: String,
    },
}

impl DefenseError {
    /// An I/O failure on `path`.
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        DefenseError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// One Laplace(0, `scale`) draw by inverting the CDF of a uniform draw in `(-1/2, 1/2)`.
pub(crate) fn laplace(rng: &mut impl rand::Rng, scale: f64) -> f64 {
    let u: f64 = rng.random_range(-0.5..0.5);
    -scale * u.signum() * (1.0 - 2.0 * u.abs()).max(f64::MIN_POSITIVE).ln()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    #[test]
    fn laplace_draws_have_mean_zero_and_mean_absolute_value_scale() {
        // Laplace(0, b): E[x] = 0, E|x| = b, Var = 2 b^2. 200,000 draws: the standard error of
        // the mean is b sqrt(2 / n) = 0.0032 b; of E|x| it is b / sqrt(n) = 0.0022 b.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let b = 2.5;
        let n = 200_000;
        let draws: Vec<f64> = (0..n).map(|_| super::laplace(&mut rng, b)).collect();
        let mean = draws.iter().sum::<f64>() / n as f64;
        let abs = draws.iter().map(|x| x.abs()).sum::<f64>() / n as f64;
        assert!(mean.abs() < 5.0 * 0.0032 * b, "mean {mean}");
        assert!((abs - b).abs() < 5.0 * 0.0022 * b, "E|x| {abs}");
        assert!(draws.iter().all(|x| x.is_finite()));
    }
}
