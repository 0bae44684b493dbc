//! The accuracy-privacy curve `A(eps) = a ln(b eps + 1)` (Spears and Shields §3, used by the
//! game as its accuracy model), fitted by least squares to measured `(eps, accuracy)` points.
//!
//! For a fixed `b` the best `a` is closed-form (`a = sum y g / sum g^2`, `g = ln(b eps + 1)`);
//! `b` is searched on a log grid over `[1e-6, 1e6]` and refined by golden-section search on
//! `ln b`. Key items: [`fit_log_curve`], [`CurveFit`].

use serde::Serialize;

use crate::DefenseError;

/// A fitted curve and its quality.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CurveFit {
    /// Scale `a`.
    pub a: f64,
    /// Rate `b`.
    pub b: f64,
    /// Coefficient of determination of the fit (1 is perfect).
    pub r2: f64,
    /// Residual sum of squares.
    pub rss: f64,
}

fn best_a(points: &[(f64, f64)], b: f64) -> (f64, f64) {
    let (mut yg, mut gg) = (0.0, 0.0);
    for &(eps, y) in points {
        let g = (b * eps + 1.0).ln();
        yg += y * g;
        gg += g * g;
    }
    let a = if gg > 0.0 { yg / gg } else { 0.0 };
    let rss = points
        .iter()
        .map(|&(eps, y)| (y - a * (b * eps + 1.0).ln()).powi(2))
        .sum();
    (a, rss)
}

/// Fits `A(eps) = a ln(b eps + 1)` to `points` (`eps > 0`, finite accuracies); needs at least
/// two points with distinct `eps`.
pub fn fit_log_curve(points: &[(f64, f64)]) -> Result<CurveFit, DefenseError> {
    if points.len() < 2
        || points
            .iter()
            .any(|&(e, y)| !(e.is_finite() && e > 0.0 && y.is_finite()))
        || points.iter().all(|p| p.0 == points[0].0)
    {
        return Err(DefenseError::Invalid(format!(
            "fitting A = a ln(b eps + 1) needs two or more points with distinct eps > 0, got {points:?}"
        )));
    }
    let rss_at = |log_b: f64| best_a(points, log_b.exp()).1;
    let grid: Vec<f64> = (0..=240)
        .map(|i| (-6.0 + i as f64 * 0.05) * std::f64::consts::LN_10)
        .collect();
    let i = (0..grid.len())
        .min_by(|&x, &y| rss_at(grid[x]).total_cmp(&rss_at(grid[y])))
        .unwrap_or(0);
    let (mut lo, mut hi) = (grid[i.saturating_sub(1)], grid[(i + 1).min(grid.len() - 1)]);
    let phi = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..100 {
        let (m1, m2) = (hi - phi * (hi - lo), lo + phi * (hi - lo));
        if rss_at(m1) <= rss_at(m2) {
            hi = m2;
        } else {
            lo = m1;
        }
    }
    let b = ((lo + hi) / 2.0).exp();
    let (a, rss) = best_a(points, b);
    let mean = points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
    let tss: f64 = points.iter().map(|p| (p.1 - mean).powi(2)).sum();
    Ok(CurveFit {
        a,
        b,
        r2: if tss > 0.0 { 1.0 - rss / tss } else { 1.0 },
        rss,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_points_give_back_their_curve() {
        let points: Vec<(f64, f64)> = [0.1, 0.5, 1.0, 5.0, 10.0, 50.0, 500.0]
            .iter()
            .map(|&e| (e, 0.2 * (1.0 * e + 1.0f64).ln()))
            .collect();
        let f = fit_log_curve(&points).expect("fit");
        assert!(
            (f.a - 0.2).abs() < 1e-6 && (f.b - 1.0).abs() < 1e-4,
            "{f:?}"
        );
        assert!(f.r2 > 1.0 - 1e-9);
    }

    #[test]
    fn noisy_points_fit_well_and_bad_input_is_refused() {
        let points = [(1.0, 0.15), (5.0, 0.33), (10.0, 0.47), (500.0, 1.25)];
        let f = fit_log_curve(&points).expect("fit");
        assert!(f.r2 > 0.9 && f.a > 0.0 && f.b > 0.0, "{f:?}");
        assert!(fit_log_curve(&[(1.0, 0.5)]).is_err());
        assert!(fit_log_curve(&[(1.0, 0.5), (1.0, 0.6)]).is_err());
        assert!(fit_log_curve(&[(0.0, 0.5), (1.0, 0.6)]).is_err());
        assert!(fit_log_curve(&[(1.0, f64::NAN), (2.0, 0.6)]).is_err());
    }
}
