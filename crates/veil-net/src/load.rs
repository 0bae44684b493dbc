//! A load generator for a running fleet: requests with Poisson arrivals (or one at a time),
//! each ending answered, rejected with a reason, or failed in transport; latency percentiles;
//! the fleet's counters (bytes per link, memory) read from every node.
//!
//! Key items: [`LoadConfig`], [`run_load`], [`RequestRecord`], [`LoadSummary`],
//! [`fleet_stats`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::NetError;
use crate::cluster::{CLIENT, NodeStats, Outcome, infer_on, node_stats};
use crate::grpc::client;
use crate::node::TraceRecord;

/// What to send, and where.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// Key directory (with the `client` certificate).
    pub keys: PathBuf,
    /// The source's party name.
    pub source: String,
    /// The source's address.
    pub source_addr: String,
    /// Mean requests per second (Poisson arrivals); 0 sends one request at a time.
    pub rate: f64,
    /// Requests to send.
    pub requests: usize,
    /// Timeout of the connection and of each call.
    pub timeout: Duration,
    /// Seed of the arrival times.
    pub seed: u64,
}

/// How one request went.
#[derive(Clone, Debug, Serialize)]
pub struct RequestRecord {
    /// Request id (`0..requests`).
    pub request: u64,
    /// Index of the input sent (`request % inputs`).
    pub input: usize,
    /// Seconds after the start when it was sent.
    pub sent_s: f64,
    /// Milliseconds until its answer or rejection.
    pub latency_ms: f64,
    /// `answered`, `rejected` (by the fleet, with a reason) or `failed` (transport).
    pub outcome: &'static str,
    /// The rejection or failure.
    pub reason: Option<String>,
    /// Attempts it took.
    pub attempts: u32,
    /// The logits.
    #[serde(skip)]
    pub logits: Vec<f32>,
    /// What every device computed.
    pub trace: Vec<TraceRecord>,
}

/// Sends `cfg.requests` requests (inputs taken in turn from `inputs`) to the source; `sent`
/// counts requests sent so far (for a harness that injects faults mid-run), `on_done` is called
/// as each ends. Records come back in request order.
pub async fn run_load(
    cfg: &LoadConfig,
    inputs: &[Vec<f32>],
    sent: Arc<AtomicUsize>,
    on_done: impl Fn() + Send + Sync + 'static,
) -> Result<Vec<RequestRecord>, NetError> {
    if inputs.is_empty() {
        return Err(NetError::Invalid("no inputs to send".into()));
    }
    let source = client(
        &cfg.keys,
        CLIENT,
        &cfg.source,
        &cfg.source_addr,
        cfg.timeout,
    )
    .await?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    let start = Instant::now();
    let on_done = Arc::new(on_done);
    let mut next = Duration::ZERO;
    let mut tasks = Vec::with_capacity(cfg.requests);
    for r in 0..cfg.requests {
        if cfg.rate > 0.0 {
            let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
            next += Duration::from_secs_f64(-u.ln() / cfg.rate);
            tokio::time::sleep_until((start + next).into()).await;
        }
        let input = r % inputs.len();
        let x = inputs[input].clone();
        let mut c = source.clone();
        let done = on_done.clone();
        let task = tokio::spawn(async move {
            let sent_at = Instant::now();
            let outcome = infer_on(&mut c, r as u64, x).await;
            let latency_ms = sent_at.elapsed().as_secs_f64() * 1e3;
            let mut rec = RequestRecord {
                request: r as u64,
                input,
                sent_s: (sent_at - start).as_secs_f64(),
                latency_ms,
                outcome: "answered",
                reason: None,
                attempts: 0,
                logits: Vec::new(),
                trace: Vec::new(),
            };
            match outcome {
                Ok(Outcome::Answered {
                    logits,
                    attempts,
                    trace,
                }) => {
                    rec.logits = logits;
                    rec.attempts = attempts;
                    rec.trace = trace;
                }
                Ok(Outcome::Rejected(why)) => {
                    rec.outcome = "rejected";
                    rec.reason = Some(why);
                }
                Err(e) => {
                    rec.outcome = "failed";
                    rec.reason = Some(e.to_string());
                }
            }
            done();
            rec
        });
        sent.fetch_add(1, Ordering::SeqCst);
        if cfg.rate > 0.0 {
            tasks.push(task);
        } else {
            let rec = task
                .await
                .map_err(|e| NetError::Runtime(format!("request task: {e}")))?;
            tasks.push(tokio::spawn(async move { rec }));
        }
    }
    let mut records = Vec::with_capacity(tasks.len());
    for t in tasks {
        records.push(
            t.await
                .map_err(|e| NetError::Runtime(format!("request task: {e}")))?,
        );
    }
    Ok(records)
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Percentiles {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// Of `values` (nearest rank); all zero when empty.
    pub fn of(values: &[f64]) -> Self {
        if values.is_empty() {
            return Percentiles::default();
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let at = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
        Percentiles {
            mean: v.iter().sum::<f64>() / v.len() as f64,
            p50: at(0.5),
            p90: at(0.9),
            p95: at(0.95),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// A run in numbers.
#[derive(Clone, Debug, Serialize)]
pub struct LoadSummary {
    /// Requests sent.
    pub requests: usize,
    /// Answered.
    pub answered: usize,
    /// Rejected by the fleet.
    pub rejected: usize,
    /// Failed in transport.
    pub failed: usize,
    /// Rejections and failures by reason.
    pub reasons: BTreeMap<String, usize>,
    /// Answered after more than one attempt.
    pub retried: usize,
    /// Offered rate (requests per second; 0 for one at a time).
    pub offered_rate: f64,
    /// Answered requests per second of wall time.
    pub answered_rate: f64,
    /// Latency of answered requests.
    pub latency_ms: Percentiles,
    /// Seconds from the first request to the last answer.
    pub wall_s: f64,
}

impl LoadSummary {
    /// Summarizes `records` of a run at `offered_rate` that took `wall_s`.
    pub fn of(records: &[RequestRecord], offered_rate: f64, wall_s: f64) -> Self {
        let answered: Vec<f64> = records
            .iter()
            .filter(|r| r.outcome == "answered")
            .map(|r| r.latency_ms)
            .collect();
        let mut reasons = BTreeMap::new();
        for r in records.iter().filter(|r| r.outcome != "answered") {
            *reasons
                .entry(r.reason.clone().unwrap_or_default())
                .or_insert(0) += 1;
        }
        LoadSummary {
            requests: records.len(),
            answered: answered.len(),
            rejected: records.iter().filter(|r| r.outcome == "rejected").count(),
            failed: records.iter().filter(|r| r.outcome == "failed").count(),
            reasons,
            retried: records.iter().filter(|r| r.attempts > 1).count(),
            offered_rate,
            answered_rate: answered.len() as f64 / wall_s.max(1e-9),
            latency_ms: Percentiles::of(&answered),
            wall_s,
        }
    }
}

/// The counters of the source and of every peer of its current plan (nodes that cannot be
/// reached are left out).
pub async fn fleet_stats(
    keys: &std::path::Path,
    source: &str,
    source_addr: &str,
    timeout: Duration,
) -> Result<Vec<NodeStats>, NetError> {
    let mut c = client(keys, CLIENT, source, source_addr, timeout).await?;
    let src = node_stats(&mut c).await?;
    let mut all = vec![src.clone()];
    for (name, addr) in &src.peers {
        if *name == src.name {
            continue;
        }
        let stats = async {
            let mut c = client(keys, CLIENT, name, addr, timeout).await?;
            node_stats(&mut c).await
        };
        match stats.await {
            Ok(s) => all.push(s),
            Err(e) => tracing::warn!(node = %name, error = %e, "no counters"),
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = Percentiles::of(&v);
        assert_eq!((p.p50, p.p90, p.p99, p.max), (51.0, 90.0, 99.0, 100.0));
        assert!((p.mean - 50.5).abs() < 1e-12);
        assert_eq!(Percentiles::of(&[]).max, 0.0);
    }
}
