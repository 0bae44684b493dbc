//! The sweeps of Spears and Shields Figs. 6-9: utilities of the SP and the vehicles for the
//! three leader methods while one parameter varies. Base scenario: [`Scenario::random`] with
//! 10 vehicles (speeds in [5, 15] m/s, privacy values in [5, 10]), `lambda = 1000`, `e = 10`;
//! every point is averaged over several random fleets.
//!
//! | figure | x | values |
//! |---|---|---|
//! | 6 | profit coefficient `lambda` | 1000, 1050, ..., 1250 |
//! | 7 | privacy value `c` (all vehicles) | 5, 6, ..., 10 |
//! | 8 | number of vehicles `N` | 5, 10, ..., 30 |
//! | 9 | speed `v` (all vehicles) | 5, 7, ..., 15 m/s |

use serde::Serialize;

use crate::{GameError, Method, Scenario, solve};

/// One point of a sweep for one method (means over the fleets of [`figure`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepRow {
    /// Figure number (6-9).
    pub figure: u8,
    /// Name of the swept parameter.
    pub x_name: &'static str,
    /// Its value.
    pub x: f64,
    /// Leader method.
    pub method: Method,
    /// Reward paid.
    pub reward: f64,
    /// SP utility.
    pub sp_utility: f64,
    /// Mean vehicle utility.
    pub mean_vehicle_utility: f64,
    /// Search rounds.
    pub iterations: usize,
}

/// One x value of a sweep and the scenario solved there.
pub type SweepPoint = (f64, Scenario);

/// The x values and scenarios of figure `fig` (6-9), seeded.
pub fn scenarios(fig: u8, seed: u64) -> Result<(&'static str, Vec<SweepPoint>), GameError> {
    let base = |n: usize, lambda: f64| Scenario::random(n, lambda, seed);
    Ok(match fig {
        6 => (
            "profit_coefficient",
            (0..=5)
                .map(|k| {
                    let l = 1000.0 + 50.0 * k as f64;
                    (l, base(10, l))
                })
                .collect(),
        ),
        7 => (
            "privacy_value",
            (5..=10)
                .map(|c| {
                    let mut s = base(10, 1000.0);
                    s.vehicles
                        .iter_mut()
                        .for_each(|v| v.privacy_value = c as f64);
                    (c as f64, s)
                })
                .collect(),
        ),
        8 => (
            "vehicles",
            (1..=6)
                .map(|k| ((5 * k) as f64, base(5 * k, 1000.0)))
                .collect(),
        ),
        9 => (
            "speed",
            (0..=5)
                .map(|k| {
                    let v = 5.0 + 2.0 * k as f64;
                    let mut s = base(10, 1000.0);
                    s.vehicles.iter_mut().for_each(|x| x.speed = v);
                    (v, s)
                })
                .collect(),
        ),
        _ => {
            return Err(GameError::Invalid(format!(
                "figure must be 6, 7, 8 or 9, got {fig}"
            )));
        }
    })
}

/// Most random fleets averaged per point of a figure.
pub const MAX_FLEETS: usize = 10_000;

/// All rows of figure `fig` for the three methods, each value the mean over `fleets` random
/// fleets (seeds `seed .. seed + fleets`), so that one unlucky draw does not shape a curve.
pub fn figure(fig: u8, seed: u64, fleets: usize) -> Result<Vec<SweepRow>, GameError> {
    if fleets == 0 || fleets > MAX_FLEETS {
        return Err(GameError::Invalid(format!(
            "between 1 and {MAX_FLEETS} fleets per point, got {fleets}"
        )));
    }
    let per_fleet: Vec<(&'static str, Vec<SweepPoint>)> = (0..fleets as u64)
        .map(|k| scenarios(fig, seed.wrapping_add(k)))
        .collect::<Result<_, _>>()?;
    let (x_name, first) = &per_fleet[0];
    let mut rows = Vec::new();
    for (p, (x, _)) in first.iter().enumerate() {
        for method in [Method::Centralized, Method::Distributed, Method::Linear] {
            let mut acc = [0.0f64; 4];
            for (_, points) in &per_fleet {
                let sol = solve(&points[p].1, method)?;
                acc[0] += sol.reward;
                acc[1] += sol.sp_utility;
                acc[2] +=
                    sol.vehicle_utilities.iter().sum::<f64>() / sol.vehicle_utilities.len() as f64;
                acc[3] += sol.iterations as f64;
            }
            let k = fleets as f64;
            rows.push(SweepRow {
                figure: fig,
                x_name,
                x: *x,
                method,
                reward: acc[0] / k,
                sp_utility: acc[1] / k,
                mean_vehicle_utility: acc[2] / k,
                iterations: (acc[3] / k).round() as usize,
            });
        }
    }
    Ok(rows)
}

/// Rows as CSV with a header line.
pub fn to_csv(rows: &[SweepRow]) -> String {
    let mut out =
        String::from("figure,x_name,x,method,reward,sp_utility,mean_vehicle_utility,iterations\n");
    for r in rows {
        let method = match r.method {
            Method::Centralized => "centralized",
            Method::Distributed => "distributed",
            Method::Linear => "linear",
        };
        out.push_str(&format!(
            "{},{},{},{},{:.6},{:.6},{:.6},{}\n",
            r.figure,
            r.x_name,
            r.x,
            method,
            r.reward,
            r.sp_utility,
            r.mean_vehicle_utility,
            r.iterations
        ));
    }
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn fleet_counts_are_bounded() {
        assert!(figure(6, 0, 0).is_err());
        assert!(
            figure(6, 0, MAX_FLEETS + 1).is_err(),
            "1e9 fleets would allocate first"
        );
    }

    use super::*;

    #[test]
    fn every_figure_has_three_methods_per_point_and_the_paper_ordering() {
        for fig in 6..=9 {
            let rows = figure(fig, 0, 3).expect("sweep");
            assert_eq!(rows.len(), 18, "figure {fig}");
            for point in rows.chunks(3) {
                let (c, d, l) = (&point[0], &point[1], &point[2]);
                assert!(
                    ((c.sp_utility - d.sp_utility) / c.sp_utility).abs() < 1e-3,
                    "fig {fig} x {}",
                    c.x
                );
                assert!(l.sp_utility < c.sp_utility, "fig {fig} x {}", c.x);
            }
        }
        assert!(figure(5, 0, 1).is_err());
        assert!(figure(6, 0, 0).is_err());
        let csv = to_csv(&figure(6, 0, 1).expect("sweep"));
        assert_eq!(csv.lines().count(), 19);
    }

    #[test]
    fn sp_utility_grows_with_lambda() {
        let rows = figure(6, 0, 2).expect("sweep");
        let central: Vec<f64> = rows
            .iter()
            .filter(|r| r.method == Method::Centralized)
            .map(|r| r.sp_utility)
            .collect();
        assert!(central.windows(2).all(|w| w[1] > w[0]), "{central:?}");
    }
}
