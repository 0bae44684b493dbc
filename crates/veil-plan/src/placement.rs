//! Placements and what they cost: latency (DistPrivacy eqs. 5 and 7), shared data (eq. 6 with
//! the reduce-scatter rule of [`crate::stages`]) and resource use per device; and the check of
//! every constraint of the ILP (8b-8h) against per-period budgets.
//!
//! Devices are numbered globally: helpers `0..H` in fleet order, then sources `H..H+S`.
//! Key types: [`Placement`] (one request), [`Usage`] (what a set of placements takes from
//! each device), [`Violation`].

use serde::Serialize;

use crate::fleet::Fleet;
use crate::stages::ModelPlan;

/// Where every segment of one request runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Placement {
    /// Index of the model plan the request runs.
    pub model: usize,
    /// Global device index of the request's source camera.
    pub source: usize,
    /// `devices[s][p]`: global device index computing segment `p` of stage `s`.
    pub devices: Vec<Vec<usize>>,
}

/// Resource use of placements, per global device index.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Usage {
    /// Multiplications.
    pub macs: Vec<f64>,
    /// Weight bytes held.
    pub memory: Vec<f64>,
    /// Bytes sent.
    pub sent: Vec<f64>,
}

impl Usage {
    /// Zero use for `devices` devices.
    pub fn new(devices: usize) -> Self {
        Usage {
            macs: vec![0.0; devices],
            memory: vec![0.0; devices],
            sent: vec![0.0; devices],
        }
    }
}

/// Latency and traffic of one placed request.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cost {
    /// Seconds from image to decision (eq. 5 summed over stages).
    pub latency_s: f64,
    /// Bytes sent between distinct devices.
    pub shared_bytes: f64,
}

/// Global device index -> (link rate bits/s, multiplications/s).
pub fn rates(fleet: &Fleet) -> Vec<(f64, f64)> {
    fleet
        .helpers
        .iter()
        .chain(fleet.sources.iter().map(|s| &s.device))
        .map(|d| (d.class.rate_bps, d.class.macs_per_s))
        .collect()
}

/// Distinct devices of `row` with their segment counts, sorted by device.
pub(crate) fn counts(row: &[usize]) -> Vec<(usize, usize)> {
    let mut sorted = row.to_vec();
    sorted.sort_unstable();
    let mut out: Vec<(usize, usize)> = Vec::new();
    for d in sorted {
        match out.last_mut() {
            Some((last, n)) if *last == d => *n += 1,
            _ => out.push((d, 1)),
        }
    }
    out
}

/// Bytes each sender sends each receiver per segment of stage `s`: the finished input when
/// one device ran all of stage `s - 1`, partial sums otherwise.
fn unit_bytes(plan: &ModelPlan, holders: &[(usize, usize)], s: usize) -> f64 {
    let stage = &plan.stages[s];
    if holders.len() == 1 {
        stage.input_bytes_whole as f64
    } else {
        stage.input_bytes_partial as f64
    }
}

/// The lowest link rate among `holders` other than `j` (`None` if `j` is the only holder).
fn slowest_other(holders: &[(usize, usize)], j: usize, rates: &[(f64, f64)]) -> Option<f64> {
    holders
        .iter()
        .filter(|&&(i, _)| i != j)
        .map(|&(i, _)| rates[i].0)
        .reduce(f64::min)
}

/// Latency and shared data of `placement` (eqs. 5-7): per stage, the largest over receiving
/// devices of (its slowest incoming transfer + its compute time), summed over stages; `rates`
/// from [`rates`]. Transfers to one receiver run in parallel from distinct senders.
pub fn request_cost(plan: &ModelPlan, placement: &Placement, rates: &[(f64, f64)]) -> Cost {
    let mut shared = 0.0;
    let latency = stage_costs(plan, placement, rates, &mut shared)
        .iter()
        .sum();
    Cost {
        latency_s: latency,
        shared_bytes: shared,
    }
}

/// The latency of each stage of `placement` (their sum is [`request_cost`]'s latency).
pub fn stage_latencies(plan: &ModelPlan, placement: &Placement, rates: &[(f64, f64)]) -> Vec<f64> {
    stage_costs(plan, placement, rates, &mut 0.0)
}

fn stage_costs(
    plan: &ModelPlan,
    placement: &Placement,
    rates: &[(f64, f64)],
    shared: &mut f64,
) -> Vec<f64> {
    let mut out = Vec::with_capacity(plan.stages.len());
    let mut holders: Vec<(usize, usize)> = Vec::new();
    for (s, stage) in plan.stages.iter().enumerate() {
        let receivers = counts(&placement.devices[s]);
        let unit = if s == 0 {
            0.0
        } else {
            unit_bytes(plan, &holders, s)
        };
        let mut worst: f64 = 0.0;
        for &(j, n) in &receivers {
            let bytes = unit * n as f64;
            let others = holders.iter().filter(|&&(i, _)| i != j).count();
            *shared += bytes * others as f64;
            let receive = slowest_other(&holders, j, rates).map_or(0.0, |r| bytes * 8.0 / r);
            worst = worst.max(receive + n as f64 * stage.segment_macs as f64 / rates[j].1);
        }
        out.push(worst);
        holders = receivers;
    }
    out
}

/// Adds what `placement` takes from each device to `usage`.
pub fn add_usage(plan: &ModelPlan, placement: &Placement, usage: &mut Usage) {
    let mut holders: Vec<(usize, usize)> = Vec::new();
    for (s, stage) in plan.stages.iter().enumerate() {
        let receivers = counts(&placement.devices[s]);
        for &(j, n) in &receivers {
            usage.macs[j] += n as f64 * stage.segment_macs as f64;
            usage.memory[j] += n as f64 * stage.segment_weight_bytes as f64;
        }
        if s > 0 {
            let unit = unit_bytes(plan, &holders, s);
            let total = stage.segments as f64;
            for &(i, _) in &holders {
                let own = receivers
                    .iter()
                    .find(|&&(j, _)| j == i)
                    .map_or(0, |&(_, n)| n);
                usage.sent[i] += unit * (total - own as f64);
            }
        }
        holders = receivers;
    }
}

/// A broken constraint.
#[derive(Clone, Debug, PartialEq, Serialize, thiserror::Error)]
pub enum Violation {
    /// The placement does not have one device per segment (8e).
    #[error("request {request}: stage {stage} has {got} assignments for {want} segments")]
    Shape {
        /// Request index.
        request: usize,
        /// Stage name.
        stage: String,
        /// Segments of the stage.
        want: usize,
        /// Assignments found.
        got: usize,
    },
    /// A source-only stage left the source, or a source computed another stage or another
    /// request's segment (8h), or a device index is out of range.
    #[error("request {request}: stage {stage} segment {segment} on device {device}: {rule}")]
    Device {
        /// Request index.
        request: usize,
        /// Stage name.
        stage: String,
        /// Segment index.
        segment: usize,
        /// Global device index.
        device: usize,
        /// Which rule.
        rule: &'static str,
    },
    /// A helper holds more segments of a stage than `Nf` allows (8f).
    #[error("request {request}: helper {device} holds {held} segments of {stage}, cap {cap}")]
    Privacy {
        /// Request index.
        request: usize,
        /// Stage name.
        stage: String,
        /// Global device index.
        device: usize,
        /// Segments held.
        held: usize,
        /// `Nf`.
        cap: usize,
    },
    /// A helper holds segments of an exclusive stage and of another stage of the same
    /// request: a joint view the profile never measured ([`crate::stages::PrivacyRule::Sound`]).
    #[error("request {request}: helper {device} holds {stage} with other stages ({others})")]
    JointView {
        /// Request index.
        request: usize,
        /// The exclusive stage.
        stage: String,
        /// Global device index.
        device: usize,
        /// The other stages it holds.
        others: String,
    },
    /// A device exceeds its compute, memory or bandwidth budget (8b-8d).
    #[error("device {device}: {resource} {used:.0} exceeds the budget {budget:.0}")]
    Budget {
        /// Global device index.
        device: usize,
        /// `compute`, `memory` or `bandwidth`.
        resource: &'static str,
        /// Amount used.
        used: f64,
        /// Budget.
        budget: f64,
    },
}

/// Per-period budgets per global device index: (multiplications, memory bytes, bytes sent).
pub fn budgets(fleet: &Fleet) -> Vec<(f64, f64, f64)> {
    let b = &fleet.budgets;
    fleet
        .helpers
        .iter()
        .chain(fleet.sources.iter().map(|s| &s.device))
        .map(|d| {
            (
                b.compute * d.class.macs_per_s * b.period_s,
                b.memory * d.class.memory_bytes as f64,
                b.bandwidth * d.class.rate_bps * b.period_s / 8.0,
            )
        })
        .collect()
}

/// A helper of request `r` that holds an exclusive stage holds no other stage.
fn check_joint_views(r: usize, plan: &ModelPlan, pl: &Placement) -> Result<(), Violation> {
    let mut stages_of = std::collections::BTreeMap::<usize, Vec<usize>>::new();
    for (s, row) in pl.devices.iter().enumerate() {
        if plan.stages[s].source_only {
            continue;
        }
        for &d in row {
            let held = stages_of.entry(d).or_default();
            if held.last() != Some(&s) {
                held.push(s);
            }
        }
    }
    for (device, held) in stages_of {
        if let Some(&s) = held.iter().find(|&&s| plan.stages[s].exclusive)
            && held.len() > 1
        {
            let others: Vec<&str> = held
                .iter()
                .filter(|&&t| t != s)
                .map(|&t| plan.stages[t].name.as_str())
                .collect();
            return Err(Violation::JointView {
                request: r,
                stage: plan.stages[s].name.clone(),
                device,
                others: others.join(", "),
            });
        }
    }
    Ok(())
}

/// Checks every constraint for `placements` placed in one period: shape (8e), source rules
/// (8h), privacy caps (8f) and, under the sound rule, joint views (both skipped when
/// `privacy` is false, for the no-privacy baseline) and the budgets (8b-8d). Single linear
/// segments (8g) hold by construction.
pub fn check(
    fleet: &Fleet,
    plans: &[ModelPlan],
    placements: &[Placement],
    privacy: bool,
) -> Result<(), Violation> {
    let helpers = fleet.helpers.len();
    let devices = helpers + fleet.sources.len();
    let mut usage = Usage::new(devices);
    for (r, pl) in placements.iter().enumerate() {
        let plan = &plans[pl.model];
        if pl.devices.len() != plan.stages.len() {
            return Err(Violation::Shape {
                request: r,
                stage: "(all)".into(),
                want: plan.stages.len(),
                got: pl.devices.len(),
            });
        }
        for (s, stage) in plan.stages.iter().enumerate() {
            let row = &pl.devices[s];
            if row.len() != stage.segments {
                return Err(Violation::Shape {
                    request: r,
                    stage: stage.name.clone(),
                    want: stage.segments,
                    got: row.len(),
                });
            }
            let mut held = std::collections::BTreeMap::<usize, usize>::new();
            for (p, &d) in row.iter().enumerate() {
                let rule = if d >= devices {
                    Some("no such device")
                } else if stage.source_only && d != pl.source {
                    Some("must run on the request's source")
                } else if !stage.source_only && d >= helpers {
                    Some("a source computes only its own first and last layers")
                } else {
                    None
                };
                if let Some(rule) = rule {
                    return Err(Violation::Device {
                        request: r,
                        stage: stage.name.clone(),
                        segment: p,
                        device: d,
                        rule,
                    });
                }
                *held.entry(d).or_default() += 1;
            }
            if let crate::privacy::StageCap::AtMost(cap) = stage.cap
                && privacy
                && !stage.source_only
                && let Some((&device, &n)) = held.iter().find(|&(_, &n)| n > cap)
            {
                return Err(Violation::Privacy {
                    request: r,
                    stage: stage.name.clone(),
                    device,
                    held: n,
                    cap,
                });
            }
        }
        if privacy {
            check_joint_views(r, plan, pl)?;
        }
        add_usage(plan, pl, &mut usage);
    }
    for (d, &(c, m, b)) in budgets(fleet).iter().enumerate() {
        for (resource, used, budget) in [
            ("compute", usage.macs[d], c),
            ("memory", usage.memory[d], m),
            ("bandwidth", usage.sent[d], b),
        ] {
            if used > budget * (1.0 + 1e-9) {
                return Err(Violation::Budget {
                    device: d,
                    resource,
                    used,
                    budget,
                });
            }
        }
    }
    Ok(())
}
