//! The leader: how the SP chooses its reward `R`, three ways.
//!
//! - [`Method::Centralized`]: full information. `U_S(R)` (followers at equilibrium) is
//!   maximised exactly over `[0, R_hi]`, where `R_hi` is the SP's revenue with every vehicle at
//!   `eps_max` (beyond it `U_S < 0 <= U_S(0)`): a 2,001-point grid brackets the maximum, then
//!   golden-section search narrows it to `1e-12 R_hi`. Theorem 5 makes `U_S` concave in the
//!   interior regime; the grid also guards the piecewise regime with clamped vehicles.
//! - [`Method::Distributed`] (Algorithm 3): the SP knows `lambda, a, b` and the speeds but not
//!   the privacy values. Each round it offers `R_t` and `R_t (1 + 1e-6)`, reads the budgets the
//!   vehicles reply, computes its utility for both and updates
//!   `R_{t+1} = R_t (1 + clamp(eta g_t, -0.5, 1))` with the secant slope `g_t = dU_S/dR`,
//!   starting from `R_0 = lambda a` and `eta = 1`, halving `eta` whenever the slope changes
//!   sign, until `|R_{t+1} - R_t| < 1e-9 R_t` (at most 10,000 rounds); a last round offers
//!   `R = 0` and keeps it if the SP earns more (vehicles still answer `eps_min`). The paper's update
//!   rule (its eq. 28) did not survive extraction; this is veil's gradient-assisted search.
//! - [`Method::Linear`] (baseline): the SP posts one price `p` per unit of privacy budget and
//!   pays `p eps_i` to each vehicle. With a linear reward a vehicle's utility
//!   `(p - k_i) eps_i` is linear, so it answers `eps_max` when `p >= k_i`, else `eps_min`. The
//!   SP finds its best posted price with an ascending price clock: between two vehicles'
//!   switching prices the supply is constant and a higher price only costs more, so the clock
//!   stops at `p = 0` or at a switching price `k_j`; the SP keeps the best. The reported
//!   `reward` is the total payment `p sum_i eps_i`.

use serde::Serialize;

use crate::followers::{Equilibrium, nash_equilibrium, uniqueness_condition};
use crate::{GameError, Scenario};

/// How the SP sets its reward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Exact 1-D maximisation with full information.
    #[cfg_attr(feature = "clap", value(alias = "centralised"))]
    Centralized,
    /// Algorithm 3: gradient-assisted search from the vehicles' replies.
    Distributed,
    /// Posted linear price per unit of privacy budget.
    Linear,
}

impl std::str::FromStr for Method {
    type Err = GameError;
    fn from_str(s: &str) -> Result<Self, GameError> {
        match s.to_ascii_lowercase().as_str() {
            "centralized" | "centralised" => Ok(Method::Centralized),
            "distributed" => Ok(Method::Distributed),
            "linear" => Ok(Method::Linear),
            _ => Err(GameError::Invalid(format!(
                "unknown method `{s}` (centralized, distributed, linear)"
            ))),
        }
    }
}

/// The outcome of one game.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Solution {
    /// How `R` was chosen.
    pub method: Method,
    /// Total reward the SP pays.
    pub reward: f64,
    /// The SP's utility `U_S`.
    pub sp_utility: f64,
    /// Each vehicle's privacy budget.
    pub epsilons: Vec<f64>,
    /// Each vehicle's utility.
    pub vehicle_utilities: Vec<f64>,
    /// Rounds of the SP's search (grid points + golden steps, Algorithm 3 rounds, or prices
    /// tried on the clock).
    pub iterations: usize,
    /// Whether the followers' equilibrium is interior (Theorem 3's closed form).
    pub interior: bool,
    /// Theorem 4's uniqueness condition (see `followers::uniqueness_condition`).
    pub uniqueness_condition: bool,
    /// The posted unit price (linear baseline only).
    pub price: Option<f64>,
}

/// `U_S(R)` with the followers at equilibrium.
pub fn sp_utility(s: &Scenario, r: f64) -> (f64, Equilibrium) {
    let eq = nash_equilibrium(s, r);
    (s.sp_revenue(&eq.eps) - r, eq)
}

fn finish(s: &Scenario, method: Method, r: f64, iterations: usize) -> Solution {
    let (u, eq) = sp_utility(s, r);
    Solution {
        method,
        reward: r,
        sp_utility: u,
        vehicle_utilities: (0..s.n())
            .map(|i| s.vehicle_utility(i, &eq.eps, r))
            .collect(),
        epsilons: eq.eps,
        iterations,
        interior: eq.interior,
        uniqueness_condition: uniqueness_condition(s),
        price: None,
    }
}

/// Exact maximisation of `U_S` over `R`.
pub fn centralized(s: &Scenario) -> Solution {
    let r_hi = s.sp_revenue(&vec![s.eps_max; s.n()]);
    const GRID: usize = 2000;
    let f = |r: f64| sp_utility(s, r).0;
    let (mut best, mut best_u) = (0.0, f(0.0));
    for k in 1..=GRID {
        let r = r_hi * k as f64 / GRID as f64;
        let u = f(r);
        if u > best_u {
            (best, best_u) = (r, u);
        }
    }
    let step = r_hi / GRID as f64;
    let (mut lo, mut hi) = ((best - step).max(0.0), (best + step).min(r_hi));
    let phi = (5f64.sqrt() - 1.0) / 2.0;
    let mut iterations = GRID + 1;
    while hi - lo > 1e-12 * r_hi.max(1.0) && iterations < GRID + 400 {
        let (a, b) = (hi - phi * (hi - lo), lo + phi * (hi - lo));
        if f(a) >= f(b) {
            hi = b;
        } else {
            lo = a;
        }
        iterations += 1;
    }
    let r = if f(0.5 * (lo + hi)) >= best_u {
        0.5 * (lo + hi)
    } else {
        best
    };
    finish(s, Method::Centralized, r, iterations)
}

/// Most rounds Algorithm 3 runs.
pub const MAX_ROUNDS: usize = 10_000;

/// Algorithm 3: the SP searches `R` from the vehicles' replies only.
pub fn distributed(s: &Scenario) -> Solution {
    // The SP computes its utility from the replied budgets; it never reads c_i.
    let observe = |r: f64| {
        let eps = nash_equilibrium(s, r).eps; // the vehicles' replies
        s.sp_revenue(&eps) - r
    };
    let mut r = s.profit_coefficient * s.accuracy_a; // an uninformed first offer
    let mut eta = 1.0;
    let mut last_slope = 0.0f64;
    let mut rounds = 0;
    while rounds < MAX_ROUNDS {
        rounds += 1;
        let h = r * 1e-6;
        let slope = (observe(r + h) - observe(r)) / h;
        if slope * last_slope < 0.0 {
            eta *= 0.5; // overshot the optimum: shorten the step
        }
        last_slope = slope;
        let next = r * (1.0 + (eta * slope).clamp(-0.5, 1.0));
        let done = (next - r).abs() < 1e-9 * r;
        r = next;
        if done {
            break;
        }
    }
    // One more offer: nothing. When vehicles must take part at eps_min anyway, paying
    // nothing can beat every positive reward (U_S is not concave once budgets are clamped).
    let r = if observe(0.0) > observe(r) { 0.0 } else { r };
    finish(s, Method::Distributed, r, rounds + 1)
}

/// The linear-price baseline.
pub fn linear(s: &Scenario) -> Solution {
    let supply = |p: f64| -> Vec<f64> {
        (0..s.n())
            .map(|i| {
                if p >= s.unit_cost(i) {
                    s.eps_max
                } else {
                    s.eps_min
                }
            })
            .collect()
    };
    let payoff = |p: f64| {
        let eps = supply(p);
        s.sp_revenue(&eps) - p * eps.iter().sum::<f64>()
    };
    let mut prices: Vec<f64> = (0..s.n()).map(|i| s.unit_cost(i)).collect();
    prices.push(0.0);
    prices.sort_by(f64::total_cmp);
    let mut best = (0.0, payoff(0.0));
    for &p in &prices {
        let u = payoff(p);
        if u > best.1 {
            best = (p, u);
        }
    }
    let (p, u) = best;
    let eps = supply(p);
    Solution {
        method: Method::Linear,
        reward: p * eps.iter().sum::<f64>(),
        sp_utility: u,
        vehicle_utilities: (0..s.n()).map(|i| (p - s.unit_cost(i)) * eps[i]).collect(),
        epsilons: eps,
        iterations: prices.len(),
        interior: false,
        uniqueness_condition: uniqueness_condition(s),
        price: Some(p),
    }
}

/// Solves `s` with `method` after validating it.
pub fn solve(s: &Scenario, method: Method) -> Result<Solution, GameError> {
    s.validate()?;
    Ok(match method {
        Method::Centralized => centralized(s),
        Method::Distributed => distributed(s),
        Method::Linear => linear(s),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centralized_reward_beats_every_grid_point() {
        for seed in 0..5 {
            let s = Scenario::random(10, 1100.0, seed);
            let sol = centralized(&s);
            let r_hi = s.sp_revenue(&vec![s.eps_max; s.n()]);
            for k in 0..=5000 {
                let r = r_hi * k as f64 / 5000.0;
                let (u, _) = sp_utility(&s, r);
                assert!(
                    u <= sol.sp_utility + 1e-9 * sol.sp_utility.abs(),
                    "R = {r}: {u} > {}",
                    sol.sp_utility
                );
            }
            assert!(sol.reward > 0.0 && sol.sp_utility > 0.0);
        }
    }

    #[test]
    fn distributed_matches_centralized_and_linear_is_worse() {
        for (n, seed) in [(5, 1), (10, 2), (30, 3)] {
            let s = Scenario::random(n, 1000.0, seed);
            let c = centralized(&s);
            let d = distributed(&s);
            let l = linear(&s);
            let gap = (c.sp_utility - d.sp_utility) / c.sp_utility;
            assert!(
                gap.abs() < 1e-3,
                "n {n}: distributed {} vs centralized {}",
                d.sp_utility,
                c.sp_utility
            );
            assert!(d.iterations < MAX_ROUNDS, "n {n}: no convergence");
            assert!(
                l.sp_utility < c.sp_utility,
                "n {n}: linear {} vs {}",
                l.sp_utility,
                c.sp_utility
            );
        }
    }

    #[test]
    fn followers_are_at_equilibrium_at_the_chosen_reward() {
        let s = Scenario::default();
        let sol = centralized(&s);
        for i in 0..s.n() {
            let mut trial = sol.epsilons.clone();
            for step in 0..=1000 {
                trial[i] = s.eps_min + (s.eps_max - s.eps_min) * step as f64 / 1000.0;
                assert!(
                    s.vehicle_utility(i, &trial, sol.reward) <= sol.vehicle_utilities[i] + 1e-9
                );
            }
        }
    }

    #[test]
    fn methods_parse() {
        assert_eq!("Distributed".parse::<Method>(), Ok(Method::Distributed));
        assert!("auction".parse::<Method>().is_err());
    }
}
