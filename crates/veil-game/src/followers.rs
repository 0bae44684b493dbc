//! The followers' subgame: best responses, the Nash equilibrium for a given reward `R`.
//!
//! With `A_i = sum_{j != i} eps_j / v_j`, vehicle `i`'s utility is strictly concave in `eps_i`
//! (Theorem 2) and its unconstrained maximiser is `sqrt(R A_i v_i / k_i) - A_i v_i`; the best
//! response clamps that to `[eps_min, eps_max]` (eq. 15). When every vehicle's value of the
//! closed form of Theorem 3 lies inside the bounds, that is the equilibrium; otherwise veil
//! solves for the aggregate `sum_j eps_j / v_j` by bisection ([`aggregate_equilibrium`]).
//! Gauss-Seidel best-response dynamics ([`best_response_dynamics`], the paper's method) are
//! kept as an independent check: they agree with both where they converge, but can crawl or
//! cycle when budgets are clamped.

use serde::Serialize;

use crate::Scenario;

/// A Nash equilibrium of the followers for one reward.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Equilibrium {
    /// Budgets `eps_i`.
    pub eps: Vec<f64>,
    /// Best-response sweeps used (0 when the closed form applied).
    pub iterations: usize,
    /// Whether the interior closed form of Theorem 3 gave the equilibrium.
    pub interior: bool,
    /// Whether the dynamics met the tolerance (always true for the closed form).
    pub converged: bool,
}

/// Sweeps after which best-response dynamics give up.
pub const MAX_SWEEPS: usize = 100_000;
const TOLERANCE: f64 = 1e-12;

/// Vehicle `i`'s best response to the others' weighted budgets `others` (`A_i`) under `r`.
pub fn best_response(s: &Scenario, i: usize, others: f64, r: f64) -> f64 {
    let v = s.vehicles[i].speed;
    let k = s.unit_cost(i);
    let unconstrained = if others <= 0.0 {
        // Alone in the contest: any budget wins the whole reward, so spend the least.
        s.eps_min
    } else if k <= 0.0 {
        s.eps_max
    } else {
        (r * others * v / k).sqrt() - others * v
    };
    unconstrained.clamp(s.eps_min, s.eps_max)
}

/// Theorem 3: `eps_i = R v_i (N-1)/S (1 - v_i k_i (N-1)/S)` with `S = sum_j v_j k_j`, or
/// `None` when some value falls outside `[eps_min, eps_max]` (then the equilibrium has
/// clamped vehicles and the formula does not apply).
pub fn closed_form(s: &Scenario, r: f64) -> Option<Vec<f64>> {
    let n1 = (s.n() - 1) as f64;
    let sum = s.weighted_cost_sum();
    let eps: Vec<f64> = (0..s.n())
        .map(|i| {
            let vk = s.vehicles[i].speed * s.unit_cost(i);
            r * s.vehicles[i].speed * n1 / sum * (1.0 - vk * n1 / sum)
        })
        .collect();
    eps.iter()
        .all(|&e| e >= s.eps_min && e <= s.eps_max)
        .then_some(eps)
}

/// Theorem 4's sufficient condition for uniqueness: `S > 2 v_i k_i (N-1)` for every `i`.
///
/// As published it is unsatisfiable for every `N >= 2` (the largest `v_i k_i` is at least the
/// mean `S / N >= S / (2(N-1))`), so this always returns `false`; veil reports it for
/// transparency. The equilibrium is unique anyway: a contest with these concave payoffs has
/// exactly one (Szidarovszky and Okuguchi 1997), and the tests check it numerically.
pub fn uniqueness_condition(s: &Scenario) -> bool {
    let n1 = (s.n() - 1) as f64;
    let sum = s.weighted_cost_sum();
    (0..s.n()).all(|i| sum > 2.0 * s.vehicles[i].speed * s.unit_cost(i) * n1)
}

/// Gauss-Seidel best-response dynamics from `start`.
pub fn best_response_dynamics(s: &Scenario, r: f64, start: &[f64]) -> Equilibrium {
    let mut eps = start.to_vec();
    let mut total: f64 = eps.iter().zip(&s.vehicles).map(|(e, v)| e / v.speed).sum();
    for sweep in 1..=MAX_SWEEPS {
        let mut moved: f64 = 0.0;
        for (i, e) in eps.iter_mut().enumerate() {
            let v = s.vehicles[i].speed;
            let others = total - *e / v;
            let next = best_response(s, i, others, r);
            moved = moved.max((next - *e).abs() / next.abs().max(1e-300));
            total = others + next / v;
            *e = next;
        }
        if moved <= TOLERANCE {
            return Equilibrium {
                eps,
                iterations: sweep,
                interior: false,
                converged: true,
            };
        }
    }
    Equilibrium {
        eps,
        iterations: MAX_SWEEPS,
        interior: false,
        converged: false,
    }
}

/// The equilibrium through the aggregate `T = sum_j eps_j / v_j` (share functions).
///
/// With `x_i = eps_i / v_i`, vehicle `i`'s first-order condition given the total `T` is
/// `x_i = T - v_i k_i T^2 / R`, clamped to `[eps_min, eps_max] / v_i` (its utility is concave
/// in `x_i`). Its share `x_i(T) / T = clamp(1 - v_i k_i T / R, eps_min/(v_i T),
/// eps_max/(v_i T))` is non-increasing in `T`, and the sum of shares is `>= 1` at
/// `T = sum eps_min / v_i` and `<= 1` at `T = sum eps_max / v_i`, so bisection on
/// `sum_i share_i(T) = 1` finds the equilibrium exactly (to the last bit of `T`). This is
/// robust where Gauss-Seidel best responses cycle or crawl.
pub fn aggregate_equilibrium(s: &Scenario, r: f64) -> Equilibrium {
    let lo_t: f64 = s.vehicles.iter().map(|v| s.eps_min / v.speed).sum();
    let hi_t: f64 = s.vehicles.iter().map(|v| s.eps_max / v.speed).sum();
    let share_sum = |t: f64| -> f64 {
        (0..s.n())
            .map(|i| {
                let v = s.vehicles[i].speed;
                let unclamped = if r > 0.0 {
                    1.0 - v * s.unit_cost(i) * t / r
                } else {
                    f64::NEG_INFINITY
                };
                unclamped.clamp(s.eps_min / (v * t), s.eps_max / (v * t))
            })
            .sum()
    };
    let (mut lo, mut hi) = (lo_t, hi_t);
    let mut iterations = 0;
    while iterations < 200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if share_sum(mid) >= 1.0 {
            lo = mid;
        } else {
            hi = mid;
        }
        iterations += 1;
    }
    let t = 0.5 * (lo + hi);
    let eps = (0..s.n())
        .map(|i| {
            let v = s.vehicles[i].speed;
            let x = if r > 0.0 {
                t - v * s.unit_cost(i) * t * t / r
            } else {
                0.0
            };
            (x * v).clamp(s.eps_min, s.eps_max)
        })
        .collect();
    Equilibrium {
        eps,
        iterations,
        interior: false,
        converged: true,
    }
}

/// The followers' equilibrium for reward `r >= 0`: Theorem 3's closed form when it is
/// interior, else [`aggregate_equilibrium`].
pub fn nash_equilibrium(s: &Scenario, r: f64) -> Equilibrium {
    if let Some(eps) = closed_form(s, r) {
        return Equilibrium {
            eps,
            iterations: 0,
            interior: true,
            converged: true,
        };
    }
    aggregate_equilibrium(s, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No vehicle gains by a unilateral deviation to any of 2001 budgets in its range.
    fn assert_is_nash(s: &Scenario, eps: &[f64], r: f64) {
        for i in 0..s.n() {
            let base = s.vehicle_utility(i, eps, r);
            let mut trial = eps.to_vec();
            for step in 0..=2000 {
                trial[i] = s.eps_min + (s.eps_max - s.eps_min) * step as f64 / 2000.0;
                let u = s.vehicle_utility(i, &trial, r);
                assert!(
                    u <= base + 1e-9 * base.abs().max(1.0),
                    "vehicle {i} gains at eps {}: {u} > {base}",
                    trial[i]
                );
            }
        }
    }

    /// Ten vehicles with speeds 9-11 m/s and privacy values 6-8: every `v_i k_i (N-1)/S` is
    /// below 1, so Theorem 3's closed form is positive.
    fn interior_scenario() -> Scenario {
        let mut s = Scenario::default();
        for (i, v) in s.vehicles.iter_mut().enumerate() {
            v.speed = 9.0 + 0.2 * i as f64;
            v.privacy_value = 8.0 - 0.2 * i as f64;
        }
        s
    }

    #[test]
    fn closed_form_and_dynamics_agree_in_the_interior() {
        let s = interior_scenario();
        for r in [50.0, 200.0, 800.0] {
            let cf = closed_form(&s, r).expect("interior for the default scenario");
            let br = best_response_dynamics(&s, r, &vec![s.eps_min; s.n()]);
            assert!(br.converged);
            let agg = aggregate_equilibrium(&s, r);
            for ((a, b), c) in cf.iter().zip(&br.eps).zip(&agg.eps) {
                assert!((a - b).abs() <= 1e-9 * a.max(1.0), "{a} vs {b} at R = {r}");
                assert!((a - c).abs() <= 1e-9 * a.max(1.0), "{a} vs {c} at R = {r}");
            }
            assert_is_nash(&s, &cf, r);
        }
    }

    #[test]
    fn boundary_equilibria_are_nash_too() {
        let mut s = Scenario::default();
        // A fast, cheap vehicle and a slow, costly one push others to the bounds.
        s.vehicles[0].privacy_value = 0.0;
        s.vehicles[1].privacy_value = 60.0;
        s.eps_max = 5.0;
        for r in [0.5, 5.0, 400.0, 5000.0] {
            let eq = nash_equilibrium(&s, r);
            assert!(eq.converged, "R = {r}");
            assert!(!eq.interior);
            assert!(eq.eps.iter().any(|&e| e == s.eps_min || e == s.eps_max));
            assert_is_nash(&s, &eq.eps, r);
        }
    }

    proptest::proptest! {
        /// Theorem 4's condition can never hold: it needs every `v_i k_i` below
        /// `S / (2(N-1))`, which is at most the mean `S / N` for `N >= 2`, while the largest
        /// `v_i k_i` is at least the mean. veil reports it, and relies instead on the
        /// uniqueness of equilibria of contests with concave payoffs (Szidarovszky and
        /// Okuguchi 1997), checked numerically by the tests above.
        #[test]
        fn uniqueness_condition_of_theorem_4_never_holds(n in 2usize..40, seed in 0u64..1000) {
            let s = Scenario::random(n, 1000.0, seed);
            proptest::prop_assert!(!uniqueness_condition(&s));
        }

        #[test]
        fn aggregate_equilibrium_is_nash_for_random_games(n in 2usize..12, seed in 0u64..500, r in 0.1f64..3000.0) {
            let s = Scenario::random(n, 1000.0, seed);
            let eq = nash_equilibrium(&s, r);
            for i in 0..s.n() {
                let base = s.vehicle_utility(i, &eq.eps, r);
                let mut trial = eq.eps.clone();
                for step in 0..=400 {
                    trial[i] = s.eps_min + (s.eps_max - s.eps_min) * (step as f64 / 400.0).powi(3);
                    proptest::prop_assert!(s.vehicle_utility(i, &trial, r) <= base + 1e-9 * base.abs().max(1.0));
                }
            }
        }

        #[test]
        fn best_response_is_a_utility_maximiser(r in 1.0f64..5000.0, seed in 0u64..200) {
            let s = Scenario::random(6, 1000.0, seed);
            let eps = vec![3.0; 6];
            let others: f64 = eps.iter().zip(&s.vehicles).skip(1).map(|(e, v)| e / v.speed).sum();
            let best = best_response(&s, 0, others, r);
            let mut trial = eps.clone();
            trial[0] = best;
            let u_best = s.vehicle_utility(0, &trial, r);
            for step in 0..=500 {
                trial[0] = s.eps_min + (s.eps_max - s.eps_min) * step as f64 / 500.0;
                proptest::prop_assert!(s.vehicle_utility(0, &trial, r) <= u_best + 1e-9 * u_best.abs().max(1.0));
            }
        }
    }
}
