//! Online placement of one request at a time: DistPrivacy's greedy (Algorithm 1) and the
//! baselines, all against a [`Ledger`] of what each device has left in the current period.
//!
//! Greedy rules: stages marked `source_only` run on the request's source; every other segment
//! goes to the helper with the lowest `nrm(j) = alpha * t(j) / max t + beta / (b(j) / max b)`
//! among those that pass cond1 (compute and memory left), cond2 (every device that must send
//! it the segment's input has the bandwidth left) and cond4 (the privacy cap of the stage,
//! and under the sound rule: a helper holding an exclusive stage holds nothing else),
//! where `t(j)` is the segment's slowest incoming transfer plus its compute time on `j` and
//! `b(j)` is `j`'s remaining bandwidth. When no device fits, the request is rejected and
//! everything it took is given back.
//!
//! Baselines ([`Strategy`]): `no-privacy` (each stage whole on the fastest helper that fits,
//! a layer-wise split like Neurosurgeon or DeepThings; no privacy cap), `single` (every
//! helper stage on the single strongest helper that fits, as offloading to one edge server;
//! no privacy cap either), `random` (each segment on a random helper that passes the same
//! conditions as the greedy).

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::placement::{Placement, budgets, counts};
use crate::stages::ModelPlan;

/// How requests are placed.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// DistPrivacy's greedy with weights `alpha` (latency) and `beta` (bandwidth).
    Greedy {
        /// Weight of the normalised latency (0.7 in the paper).
        alpha: f64,
        /// Weight of the inverse normalised bandwidth (0.3 in the paper).
        beta: f64,
    },
    /// Layer-wise split without privacy: each helper stage whole on one device.
    NoPrivacy,
    /// Every helper stage on one strongest helper.
    Single,
    /// Each segment on a random feasible helper.
    Random,
}

impl Strategy {
    /// The paper's greedy: alpha 0.7, beta 0.3.
    pub const DISTPRIVACY: Strategy = Strategy::Greedy {
        alpha: 0.7,
        beta: 0.3,
    };

    /// Whether placements honour the privacy caps (the greedy and random do; the no-privacy
    /// and single-helper baselines run whole stages on one device).
    pub fn respects_privacy(&self) -> bool {
        matches!(self, Strategy::Greedy { .. } | Strategy::Random)
    }

    /// Short name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Greedy { .. } => "distprivacy",
            Strategy::NoPrivacy => "no-privacy",
            Strategy::Single => "single",
            Strategy::Random => "random",
        }
    }
}

/// What each device (global index) has left in the current period.
#[derive(Clone, Debug, PartialEq)]
pub struct Ledger {
    /// Multiplications left.
    pub compute: Vec<f64>,
    /// Weight bytes left.
    pub memory: Vec<f64>,
    /// Bytes left to send.
    pub bandwidth: Vec<f64>,
    full: Vec<(f64, f64, f64)>,
}

impl Ledger {
    /// Full budgets of every device of `fleet`.
    pub fn new(fleet: &crate::Fleet) -> Self {
        let full = budgets(fleet);
        Ledger {
            compute: full.iter().map(|b| b.0).collect(),
            memory: full.iter().map(|b| b.1).collect(),
            bandwidth: full.iter().map(|b| b.2).collect(),
            full,
        }
    }

    /// Renews every budget (a new period).
    pub fn renew(&mut self) {
        for (d, b) in self.full.iter().enumerate() {
            self.compute[d] = b.0;
            self.memory[d] = b.1;
            self.bandwidth[d] = b.2;
        }
    }
}

/// Deductions of one request, undone if it is rejected.
struct Journal<'a> {
    ledger: &'a mut Ledger,
    taken: Vec<(usize, f64, f64, f64)>,
}

impl Journal<'_> {
    fn take(&mut self, d: usize, macs: f64, mem: f64, sent: f64) {
        self.ledger.compute[d] -= macs;
        self.ledger.memory[d] -= mem;
        self.ledger.bandwidth[d] -= sent;
        self.taken.push((d, macs, mem, sent));
    }

    fn undo(self) {
        for (d, macs, mem, sent) in self.taken.into_iter().rev() {
            self.ledger.compute[d] += macs;
            self.ledger.memory[d] += mem;
            self.ledger.bandwidth[d] += sent;
        }
    }
}

/// Whether a helper that holds `prior` of the request (see [`Placer::place`]) may take a
/// segment of `stage`: nothing may join an exclusive stage, and an exclusive stage joins
/// nothing ([`crate::stages::PrivacyRule::Sound`]).
fn joint_view_allowed(prior: Option<bool>, stage: &crate::stages::Stage) -> bool {
    match prior {
        None => true,
        Some(exclusive) => !exclusive && !stage.exclusive,
    }
}

/// Context of one placement call.
pub struct Placer<'a> {
    /// Model plans, indexed by [`Placement::model`].
    pub plans: &'a [ModelPlan],
    /// Global device index -> (link bits/s, multiplications/s).
    pub rates: &'a [(f64, f64)],
    /// Number of helpers (global indices `0..helpers`).
    pub helpers: usize,
    /// Strategy.
    pub strategy: Strategy,
}

impl Placer<'_> {
    /// Places one request of model `model` from source `source` (global index), taking its
    /// resources from `ledger`; `None` (and nothing taken) when it does not fit.
    pub fn place(
        &self,
        model: usize,
        source: usize,
        ledger: &mut Ledger,
        rng: &mut ChaCha8Rng,
    ) -> Option<Placement> {
        let plan = &self.plans[model];
        let mut journal = Journal {
            ledger,
            taken: Vec::new(),
        };
        let mut devices: Vec<Vec<usize>> = Vec::with_capacity(plan.stages.len());
        let mut holders: Vec<(usize, usize)> = Vec::new();
        // Per helper: `None` while it holds nothing of this request, else whether what it
        // holds includes an exclusive stage.
        let mut prior: Vec<Option<bool>> = vec![None; self.helpers];
        for (s, stage) in plan.stages.iter().enumerate() {
            let unit = match s {
                0 => 0.0,
                _ if holders.len() == 1 => stage.input_bytes_whole as f64,
                _ => stage.input_bytes_partial as f64,
            };
            let whole_stage = matches!(self.strategy, Strategy::NoPrivacy | Strategy::Single);
            let mut row = Vec::with_capacity(stage.segments);
            let mut held = vec![0usize; 0];
            let mut chosen_for_stage: Option<usize> = None;
            let mut greedy = match self.strategy {
                Strategy::Greedy { alpha, .. } if !stage.source_only => {
                    Some(self.greedy_stage(&journal, stage, unit, &holders, alpha, &prior))
                }
                _ => None,
            };
            for _ in 0..stage.segments {
                let target = if stage.source_only {
                    fits(&journal, source, stage, unit, &holders, 1).then_some(source)
                } else if let (true, Some(d)) = (whole_stage, chosen_for_stage) {
                    Some(d)
                } else if whole_stage {
                    self.pick_whole(&journal, stage, unit, &holders)
                } else {
                    if held.is_empty() {
                        held = vec![0; self.helpers];
                    }
                    match (&greedy, self.strategy) {
                        (Some(gs), Strategy::Greedy { beta, .. }) => {
                            Self::pick_greedy(gs, &journal, unit, &holders, beta, self.rates)
                        }
                        _ => {
                            self.pick_random(&journal, (stage, &prior), unit, &holders, &held, rng)
                        }
                    }
                };
                let Some(d) = target else {
                    journal.undo();
                    return None;
                };
                if whole_stage && !stage.source_only {
                    chosen_for_stage = Some(d);
                }
                if d < held.len() {
                    held[d] += 1;
                }
                journal.take(
                    d,
                    stage.segment_macs as f64,
                    stage.segment_weight_bytes as f64,
                    0.0,
                );
                for &(i, _) in &holders {
                    if i != d {
                        journal.take(i, 0.0, 0.0, unit);
                    }
                }
                if let Some(gs) = greedy.as_mut()
                    && d < gs.alive.len()
                {
                    // Resources only shrink within a stage: a device that cannot take one more
                    // segment now never can.
                    gs.alive[d] = stage.cap.admits(held[d])
                        && fits_compute(&journal, d, stage, 1)
                        && joint_view_allowed(prior[d], stage);
                }
                row.push(d);
            }
            for &d in row.iter().filter(|&&d| d < self.helpers) {
                prior[d] = Some(prior[d].unwrap_or(false) || stage.exclusive);
            }
            holders = counts(&row);
            devices.push(row);
        }
        Some(Placement {
            model,
            source,
            devices,
        })
    }

    /// Per-stage state of the greedy: `alpha * t(j) / max t` (fixed within a stage, since the
    /// senders are) and which helpers still pass cond1 and cond4.
    fn greedy_stage(
        &self,
        journal: &Journal<'_>,
        stage: &crate::stages::Stage,
        unit: f64,
        holders: &[(usize, usize)],
        alpha: f64,
        prior: &[Option<bool>],
    ) -> GreedyStage {
        let senders = SenderView::new(holders, journal.ledger, self.rates);
        let t: Vec<f64> = (0..self.helpers)
            .map(|j| {
                senders.slowest_rate(j).map_or(0.0, |r| unit * 8.0 / r)
                    + stage.segment_macs as f64 / self.rates[j].1
            })
            .collect();
        let t_max = t.iter().copied().fold(0.0, f64::max).max(f64::MIN_POSITIVE);
        GreedyStage {
            base: t.iter().map(|t| alpha * t / t_max).collect(),
            alive: (0..self.helpers)
                .map(|j| {
                    stage.cap.admits(0)
                        && fits_compute(journal, j, stage, 1)
                        && joint_view_allowed(prior[j], stage)
                })
                .collect(),
        }
    }

    /// The greedy's helper for one segment: the lowest `nrm` among live helpers passing
    /// cond2, normalising bandwidth by the current largest remaining one; ties go to the
    /// lowest index.
    fn pick_greedy(
        gs: &GreedyStage,
        journal: &Journal<'_>,
        unit: f64,
        holders: &[(usize, usize)],
        beta: f64,
        rates: &[(f64, f64)],
    ) -> Option<usize> {
        let bandwidth = &journal.ledger.bandwidth[..gs.alive.len()];
        let b_max = bandwidth
            .iter()
            .copied()
            .fold(0.0, f64::max)
            .max(f64::MIN_POSITIVE);
        let (floor, scale) = (1e-12 * b_max, beta * b_max);
        // cond2 depends on the candidate only when it is the sender with the least left.
        let senders = SenderView::new(holders, journal.ledger, rates);
        let everyone = senders.left[0].1 >= unit;
        let only =
            (!everyone && senders.can_send(senders.left[0].0, unit)).then_some(senders.left[0].0);
        let mut best: Option<(usize, f64)> = None;
        for (j, (&alive, &base)) in gs.alive.iter().zip(&gs.base).enumerate() {
            if !alive || !(everyone || only == Some(j)) {
                continue;
            }
            let v = base + scale / bandwidth[j].max(floor);
            if best.is_none_or(|(_, b)| v < b) {
                best = Some((j, v));
            }
        }
        best.map(|(j, _)| j)
    }

    /// The random baseline's helper for one segment: uniform over the helpers passing the
    /// greedy's conditions (cond1, cond2, cond4), or `None`.
    fn pick_random(
        &self,
        journal: &Journal<'_>,
        (stage, prior): (&crate::stages::Stage, &[Option<bool>]),
        unit: f64,
        holders: &[(usize, usize)],
        held: &[usize],
        rng: &mut ChaCha8Rng,
    ) -> Option<usize> {
        let senders = SenderView::new(holders, journal.ledger, self.rates);
        let feasible: Vec<usize> = (0..self.helpers)
            .filter(|&j| {
                stage.cap.admits(held[j])
                    && fits_compute(journal, j, stage, 1)
                    && senders.can_send(j, unit)
                    && joint_view_allowed(prior[j], stage)
            })
            .collect();
        (!feasible.is_empty()).then(|| feasible[rng.random_range(0..feasible.len())])
    }

    /// The helper for a whole stage (no-privacy: fastest that fits; single: strongest that
    /// fits), or `None`.
    fn pick_whole(
        &self,
        journal: &Journal<'_>,
        stage: &crate::stages::Stage,
        unit: f64,
        holders: &[(usize, usize)],
    ) -> Option<usize> {
        let n = stage.segments;
        let feasible = (0..self.helpers).filter(|&j| fits(journal, j, stage, unit, holders, n));
        match self.strategy {
            Strategy::Single => {
                feasible.max_by(|&a, &b| self.rates[a].1.total_cmp(&self.rates[b].1))
            }
            _ => {
                let senders = SenderView::new(holders, journal.ledger, self.rates);
                let t = |j: usize| {
                    senders
                        .slowest_rate(j)
                        .map_or(0.0, |r| n as f64 * unit * 8.0 / r)
                        + n as f64 * stage.segment_macs as f64 / self.rates[j].1
                };
                feasible.min_by(|&a, &b| t(a).total_cmp(&t(b)))
            }
        }
    }
}

/// The greedy's state within one stage (see [`Placer::greedy_stage`]).
struct GreedyStage {
    base: Vec<f64>,
    alive: Vec<bool>,
}

/// cond1 for `n` segments of `stage` on `d`.
fn fits_compute(journal: &Journal<'_>, d: usize, stage: &crate::stages::Stage, n: usize) -> bool {
    let l = &journal.ledger;
    l.compute[d] >= n as f64 * stage.segment_macs as f64
        && l.memory[d] >= n as f64 * stage.segment_weight_bytes as f64
}

/// cond1 and cond2 for `n` segments of `stage` on `d`.
fn fits(
    journal: &Journal<'_>,
    d: usize,
    stage: &crate::stages::Stage,
    unit: f64,
    holders: &[(usize, usize)],
    n: usize,
) -> bool {
    fits_compute(journal, d, stage, n)
        && holders
            .iter()
            .all(|&(i, _)| i == d || journal.ledger.bandwidth[i] >= n as f64 * unit)
}

/// The devices that send a segment its input: the two slowest links and the two smallest
/// remaining bandwidths, so each candidate is checked in O(1).
struct SenderView {
    rate: [(usize, f64); 2],
    left: [(usize, f64); 2],
}

impl SenderView {
    fn new(holders: &[(usize, usize)], ledger: &Ledger, rates: &[(f64, f64)]) -> Self {
        let two_min = |values: &mut dyn Iterator<Item = (usize, f64)>| {
            let mut best = [(usize::MAX, f64::INFINITY); 2];
            for (i, v) in values {
                if v < best[0].1 {
                    best[1] = best[0];
                    best[0] = (i, v);
                } else if v < best[1].1 {
                    best[1] = (i, v);
                }
            }
            best
        };
        SenderView {
            rate: two_min(&mut holders.iter().map(|&(i, _)| (i, rates[i].0))),
            left: two_min(&mut holders.iter().map(|&(i, _)| (i, ledger.bandwidth[i]))),
        }
    }

    fn other(pair: &[(usize, f64); 2], j: usize) -> Option<f64> {
        let v = if pair[0].0 == j { pair[1] } else { pair[0] };
        (v.0 != usize::MAX).then_some(v.1)
    }

    /// Lowest link rate among senders other than `j`.
    fn slowest_rate(&self, j: usize) -> Option<f64> {
        Self::other(&self.rate, j)
    }

    /// cond2: every sender other than `j` can still send `bytes`.
    fn can_send(&self, j: usize, bytes: f64) -> bool {
        Self::other(&self.left, j).is_none_or(|left| left >= bytes)
    }
}
