//! Fleet simulation (DistPrivacy §III, SYSTEM.md section 5): Poisson arrivals placed online
//! one at a time against per-period budgets, rejected requests retried at the start of each
//! later period, and the latency, traffic and rejection figures of Fig. 3. A request that a
//! deterministic strategy rejects on untouched budgets can never be placed and is dropped at
//! once.
//!
//! Key items: [`SimConfig`], [`simulate`], [`SimResult`].

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::fleet::{Device, DeviceClass, Fleet, Source};
use crate::greedy::{Ledger, Placer, Strategy};
use crate::placement::{Placement, rates, request_cost};
use crate::stages::ModelPlan;

/// Settings of one simulation run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimConfig {
    /// Requests generated.
    pub requests: usize,
    /// Arrival rate per second (Poisson process).
    pub lambda: f64,
    /// Cameras created when the fleet lists none (RPi3, models assigned in turn).
    pub cameras: usize,
    /// A request still unplaced after this many periods of waiting is dropped.
    pub max_wait_periods: usize,
    /// Seed of arrivals, cameras chosen and random placements.
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            requests: 320,
            lambda: 3.0,
            cameras: 10,
            max_wait_periods: 600,
            seed: 0,
        }
    }
}

/// Outcome of a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimResult {
    /// Placement strategy.
    pub strategy: &'static str,
    /// Helpers in the fleet.
    pub devices: usize,
    /// Tolerated SSIM.
    pub tau: f64,
    /// Requests generated.
    pub requests: usize,
    /// Requests placed (possibly after retries).
    pub placed: usize,
    /// Requests never placed: waited `max_wait_periods`, or (greedy and the whole-stage
    /// baselines, which are deterministic) rejected on a period's untouched budgets, so that
    /// no later period can take them either.
    pub dropped: usize,
    /// Share of requests rejected at least once.
    pub rejected_fraction: f64,
    /// Sum over placed requests of waiting time plus inference latency (eqs. 5, 7), seconds.
    pub latency_total_s: f64,
    /// Mean of the same per placed request.
    pub latency_mean_s: f64,
    /// 95th percentile of the same.
    pub latency_p95_s: f64,
    /// Mean inference latency alone (no waiting), seconds.
    pub inference_mean_s: f64,
    /// Bytes exchanged between distinct devices, in MB (10^6 bytes).
    pub shared_mb: f64,
    /// Wall-clock seconds spent placing.
    pub placing_seconds: f64,
}

/// One generated request.
#[derive(Clone, Copy, Debug)]
struct Request {
    id: usize,
    arrival: f64,
    source: usize,
}

/// Adds `n` RPi3 cameras running `models` in turn to a fleet without sources.
pub fn with_cameras(fleet: &Fleet, n: usize, models: &[String]) -> Fleet {
    let mut out = fleet.clone();
    if out.sources.is_empty() {
        out.sources = (0..n.max(1))
            .map(|i| Source {
                device: Device {
                    name: format!("cam-{i}"),
                    class: DeviceClass::rpi3(),
                },
                model: models[i % models.len().max(1)].clone(),
            })
            .collect();
    }
    out
}

/// Runs the simulation: `plans[source_model[c]]` is the plan camera `c` (source index) uses.
/// Returns the result and every placement made, in placement order.
pub fn simulate(
    fleet: &Fleet,
    plans: &[ModelPlan],
    source_model: &[usize],
    cfg: &SimConfig,
    strategy: Strategy,
) -> (SimResult, Vec<Placement>) {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let helpers = fleet.helpers.len();
    let cameras = fleet.sources.len().min(source_model.len());
    let arrivals = arrivals(&mut rng, cfg, cameras);
    let rates = rates(fleet);
    let mut run = Run {
        placer: Placer {
            plans,
            rates: &rates,
            helpers,
            strategy,
        },
        source_model,
        // A deterministic strategy that fails on untouched budgets fails in every period.
        deterministic: strategy != Strategy::Random,
        max_wait_periods: cfg.max_wait_periods,
        period: fleet.budgets.period_s,
        ledger: Ledger::new(fleet),
        rng,
        tally: Tally {
            placements: Vec::new(),
            latencies: Vec::new(),
            inference: Vec::new(),
            shared: 0.0,
            rejected: vec![false; arrivals.len()],
        },
    };
    let started = std::time::Instant::now();
    if cameras > 0 {
        run.all_periods(&arrivals);
    }
    let placing_seconds = started.elapsed().as_secs_f64();
    let tally = run.tally;
    let result = summarize(&tally, plans, cfg, strategy, helpers, placing_seconds);
    (result, tally.placements)
}

/// `cfg.requests` Poisson arrivals (rate `cfg.lambda`) from cameras drawn uniformly among
/// `cameras` (camera 0 when there are none), in arrival order with ids `0..`.
fn arrivals(rng: &mut ChaCha8Rng, cfg: &SimConfig, cameras: usize) -> Vec<Request> {
    let mut t = 0.0;
    (0..cfg.requests)
        .map(|id| {
            let u: f64 = rng.random_range(f64::EPSILON..1.0);
            t += -u.ln() / cfg.lambda.max(1e-9);
            Request {
                id,
                arrival: t,
                source: rng.random_range(0..cameras.max(1)),
            }
        })
        .collect()
}

/// What the placed and rejected requests add up to.
struct Tally {
    /// Every placement made, in placement order.
    placements: Vec<Placement>,
    /// Per placed request: waiting time plus inference latency, seconds.
    latencies: Vec<f64>,
    /// Per placed request: inference latency alone, seconds.
    inference: Vec<f64>,
    /// Bytes exchanged between distinct devices.
    shared: f64,
    /// Per request id: rejected at least once.
    rejected: Vec<bool>,
}

/// The placing loop's state: one ledger renewed every period and one random stream (the
/// one that drew the arrivals, continued).
struct Run<'a> {
    placer: Placer<'a>,
    /// Plan index per camera (source index).
    source_model: &'a [usize],
    /// Whether the strategy is deterministic: then a request rejected on untouched budgets
    /// is dropped at once.
    deterministic: bool,
    max_wait_periods: usize,
    /// Seconds per budget period.
    period: f64,
    ledger: Ledger,
    rng: ChaCha8Rng,
    tally: Tally,
}

impl Run<'_> {
    /// Runs period after period until every arrival is placed or dropped. Needs at least one
    /// camera (every arrival's source indexes `source_model`).
    fn all_periods(&mut self, arrivals: &[Request]) {
        let period = self.period;
        let mut waiting: Vec<Request> = Vec::new();
        let mut next = 0;
        // Period index, as f64: with a tiny arrival rate the arrival times, and so the index,
        // can exceed any integer.
        let mut k = 0.0f64;
        while next < arrivals.len() || !waiting.is_empty() {
            let idle = waiting.is_empty();
            if idle {
                // Nothing waits: skip the empty periods up to the next arrival, so the loop
                // runs O(requests) times whatever the rate and the period length.
                k = k.max((arrivals[next].arrival / period).floor());
            }
            self.ledger.renew();
            let start = k * period;
            let retry = std::mem::take(&mut waiting);
            let fresh_end = arrivals[next..]
                .iter()
                .position(|r| r.arrival >= start + period)
                .map_or(arrivals.len(), |p| next + p);
            // At huge times `start + period` can round to `start`: an idle period takes at
            // least the next arrival, so every iteration makes progress.
            let fresh_end = if idle {
                fresh_end.max(next + 1)
            } else {
                fresh_end
            };
            waiting = self.one_period(start, retry, &arrivals[next..fresh_end]);
            next = fresh_end;
            k += 1.0;
        }
    }

    /// One period starting at `start` on renewed budgets: the `retry` requests first (they
    /// count as served at `start`), then the `fresh` arrivals at their arrival times. Returns
    /// the requests that wait for the next period; the hopeless and the too-old are dropped.
    fn one_period(&mut self, start: f64, retry: Vec<Request>, fresh: &[Request]) -> Vec<Request> {
        let mut untouched = true;
        let mut still = Vec::new();
        for (req, when) in retry
            .into_iter()
            .map(|r| (r, start))
            .chain(fresh.iter().map(|r| (*r, r.arrival)))
        {
            let model = self.source_model[req.source];
            let source = self.placer.helpers + req.source;
            match self
                .placer
                .place(model, source, &mut self.ledger, &mut self.rng)
            {
                Some(p) => {
                    untouched = false;
                    let cost = request_cost(&self.placer.plans[model], &p, self.placer.rates);
                    let tally = &mut self.tally;
                    tally.latencies.push(when - req.arrival + cost.latency_s);
                    tally.inference.push(cost.latency_s);
                    tally.shared += cost.shared_bytes;
                    tally.placements.push(p);
                }
                None => {
                    self.tally.rejected[req.id] = true;
                    let hopeless = self.deterministic && untouched;
                    let too_long = start - req.arrival > self.max_wait_periods as f64 * self.period;
                    if !hopeless && !too_long {
                        still.push(req);
                    }
                }
            }
        }
        still
    }
}

/// The figures of a finished run.
fn summarize(
    tally: &Tally,
    plans: &[ModelPlan],
    cfg: &SimConfig,
    strategy: Strategy,
    helpers: usize,
    placing_seconds: f64,
) -> SimResult {
    let rejected = tally.rejected.iter().filter(|&&r| r).count();
    let placed = tally.latencies.len();
    // `fold` from +0.0: an empty float sum is -0.0.
    let total: f64 = tally.latencies.iter().fold(0.0, |a, b| a + b);
    let mut sorted = tally.latencies.clone();
    sorted.sort_by(f64::total_cmp);
    let p95 = if sorted.is_empty() {
        0.0
    } else {
        sorted[((sorted.len() as f64 * 0.95).ceil() as usize).clamp(1, sorted.len()) - 1]
    };
    SimResult {
        strategy: strategy.name(),
        devices: helpers,
        tau: plans.first().map_or(f64::NAN, |p| p.tau),
        requests: cfg.requests,
        placed,
        dropped: cfg.requests - placed,
        rejected_fraction: rejected as f64 / cfg.requests.max(1) as f64,
        latency_total_s: total,
        latency_mean_s: total / placed.max(1) as f64,
        latency_p95_s: p95,
        inference_mean_s: tally.inference.iter().fold(0.0, |a, b| a + b) / placed.max(1) as f64,
        shared_mb: tally.shared / 1e6,
        placing_seconds,
    }
}
