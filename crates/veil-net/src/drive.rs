//! Driving a running fleet and reporting on it (`veil net load`, and the requests of
//! `veil net bench`): [`drive`] sends the requests of [`crate::load::run_load`] on its own
//! runtime while it samples every node's counters and injects a fault after so many requests;
//! [`FleetReport`] puts the outcome together: latency percentiles, rejections by reason,
//! answers checked against single-process inference ([`check`]), bytes per link, memory per
//! node, and the files of per-request traces and counter samples.
//!
//! Key items: [`drive`], [`Driven`], [`FleetReport`], [`check`].

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::NetError;
use crate::cluster::NodeStats;
use crate::load::{LoadConfig, LoadSummary, RequestRecord, fleet_stats, run_load};

/// A fault injected once `after` requests were sent (e.g. killing a helper).
pub struct Fault {
    /// Requests sent before the fault.
    pub after: usize,
    /// The fault.
    pub inject: Box<dyn FnOnce() + Send>,
}

/// What [`drive`] returns.
pub struct Driven {
    /// One record per request, in request order.
    pub records: Vec<RequestRecord>,
    /// Wall time of the run (s).
    pub wall_s: f64,
    /// Every node's counters with the seconds into the run when they were read.
    pub samples: Vec<(f64, NodeStats)>,
}

/// A multi-threaded runtime of two workers for the load driver.
pub fn runtime() -> Result<tokio::runtime::Runtime, NetError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(NetError::RuntimeStart)
}

/// Sends `cfg.requests` requests of `inputs` (in turn), reads every node's counters every
/// `sample_every` (if given), injects `fault`; `on_done` is called as each request ends.
pub fn drive(
    cfg: &LoadConfig,
    inputs: &[Vec<f32>],
    sample_every: Option<Duration>,
    fault: Option<Fault>,
    on_done: impl Fn() + Send + Sync + 'static,
) -> Result<Driven, NetError> {
    let rt = runtime()?;
    let samples: Arc<Mutex<Vec<(f64, NodeStats)>>> = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let records = rt.block_on(async {
        let sent = Arc::new(AtomicUsize::new(0));
        if let Some(fault) = fault {
            let sent = sent.clone();
            tokio::spawn(async move {
                while sent.load(Ordering::SeqCst) < fault.after {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                (fault.inject)();
            });
        }
        let sampler = sample_every.map(|every| {
            let (samples, cfg) = (samples.clone(), cfg.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    let t = start.elapsed().as_secs_f64();
                    if let Ok(all) =
                        fleet_stats(&cfg.keys, &cfg.source, &cfg.source_addr, cfg.timeout).await
                        && let Ok(mut s) = samples.lock()
                    {
                        s.extend(all.into_iter().map(|n| (t, n)));
                    }
                }
            })
        });
        let records = run_load(cfg, inputs, sent, on_done).await;
        if let Some(s) = sampler {
            s.abort();
        }
        records
    })?;
    let wall_s = start.elapsed().as_secs_f64();
    let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
    Ok(Driven {
        records,
        wall_s,
        samples,
    })
}

/// Requests `requests` at `rate` per second, or `rate x duration_s` when a duration is given
/// (which needs a positive rate and duration).
pub fn request_count(
    requests: usize,
    rate: f64,
    duration_s: Option<f64>,
) -> Result<usize, NetError> {
    match duration_s {
        Some(d) if rate > 0.0 && d.is_finite() && d > 0.0 => Ok((d * rate).round() as usize),
        Some(_) => Err(NetError::Invalid(
            "--duration-s needs a positive duration and --rate > 0".into(),
        )),
        None => Ok(requests),
    }
}

/// Files a load run writes.
#[derive(Clone, Debug, Default)]
pub struct LoadFiles {
    /// One JSON line per request.
    pub trace: Option<std::path::PathBuf>,
    /// The counter samples as CSV.
    pub samples: Option<std::path::PathBuf>,
}

/// `veil net load`: drives the running fleet behind `cfg` with `inputs` (checked against
/// `want`, the single-process logits, when given), samples the counters every
/// `sample_every`, reads them once more at the end, writes `files` and reports.
pub fn load_fleet(
    cfg: &LoadConfig,
    inputs: &[Vec<f32>],
    want: Option<&[f32]>,
    sample_every: Option<Duration>,
    files: &LoadFiles,
    on_done: impl Fn() + Send + Sync + 'static,
) -> Result<FleetReport, NetError> {
    let mut driven = drive(cfg, inputs, sample_every, None, on_done)?;
    let nodes = read_fleet(cfg)?;
    let wall_s = driven.wall_s;
    driven
        .samples
        .extend(nodes.iter().map(|s| (wall_s, s.clone())));
    if let Some(p) = &files.trace {
        write_trace(p, &driven.records)?;
    }
    if let Some(p) = &files.samples {
        write_samples(p, &driven.samples)?;
    }
    let reference = want.map(|w| (w, w.len() / inputs.len().max(1)));
    Ok(FleetReport::new(&driven, cfg.rate, reference, nodes))
}

/// The counters of every node of the fleet behind `cfg.source` (one read, after a run).
pub fn read_fleet(cfg: &LoadConfig) -> Result<Vec<NodeStats>, NetError> {
    runtime()?.block_on(fleet_stats(
        &cfg.keys,
        &cfg.source,
        &cfg.source_addr,
        cfg.timeout,
    ))
}

/// Answers compared with single-process inference.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// Requests answered.
    pub answered: usize,
    /// Answers whose argmax is the single-process argmax.
    pub same_argmax: usize,
    /// Largest |logit difference|.
    pub max_abs_logit_diff: f64,
}

/// Compares the answered records with `want` (logits of the inputs, `classes` each).
pub fn check(records: &[RequestRecord], want: &[f32], classes: usize) -> Check {
    let mut c = Check {
        answered: 0,
        same_argmax: 0,
        max_abs_logit_diff: 0.0,
    };
    for r in records.iter().filter(|r| r.outcome == "answered") {
        let Some(w) = want.get(r.input * classes..(r.input + 1) * classes) else {
            continue;
        };
        c.answered += 1;
        c.same_argmax += usize::from(
            veil_metrics::argmax(&r.logits) == veil_metrics::argmax(w) && r.logits.len() == classes,
        );
        for (g, x) in r.logits.iter().zip(w) {
            c.max_abs_logit_diff = c.max_abs_logit_diff.max(f64::from((g - x).abs()));
        }
    }
    c
}

/// One sender-to-receiver link.
#[derive(Clone, Debug, Serialize)]
pub struct LinkRow {
    /// Sender.
    pub from: String,
    /// Receiver.
    pub to: String,
    /// Messages sent.
    pub messages: u64,
    /// Bytes of values (partial sums, maps).
    pub value_bytes: u64,
    /// Bytes of whole frames.
    pub frame_bytes: u64,
    /// Sends that failed.
    pub failed: u64,
}

/// One node's memory over the run.
#[derive(Clone, Debug, Serialize)]
pub struct MemoryRow {
    /// The node.
    pub name: String,
    /// Counter reads.
    pub samples: usize,
    /// Resident memory at the first read (KiB).
    pub first_kib: u64,
    /// At the last read.
    pub last_kib: u64,
    /// Largest.
    pub max_kib: u64,
    /// Most requests open at once.
    pub max_live_requests: usize,
}

/// A run's report.
#[derive(Clone, Debug, Serialize)]
pub struct FleetReport {
    /// Outcomes and latency.
    pub summary: LoadSummary,
    /// Answers against single-process inference, when a reference was given.
    pub check: Option<Check>,
    /// Every node's counters at the end.
    pub nodes: Vec<NodeStats>,
    /// Bytes per link.
    pub links: Vec<LinkRow>,
    /// Memory per node over the run.
    pub memory: Vec<MemoryRow>,
    /// The coordinator's plan announcements (bench only).
    pub plans: Vec<serde_json::Value>,
    /// The fault injected, in words.
    pub fault: Option<String>,
}

impl FleetReport {
    /// The report of a driven run: `offered_rate` as configured, `want` the single-process
    /// logits of the inputs (`classes` each) when known, `nodes` read after the run.
    pub fn new(
        driven: &Driven,
        offered_rate: f64,
        reference: Option<(&[f32], usize)>,
        nodes: Vec<NodeStats>,
    ) -> Self {
        FleetReport {
            summary: LoadSummary::of(&driven.records, offered_rate, driven.wall_s),
            check: reference.map(|(want, classes)| check(&driven.records, want, classes)),
            links: links(&nodes),
            memory: memory(&driven.samples),
            nodes,
            plans: Vec::new(),
            fault: None,
        }
    }

    /// The report in words, under `title`.
    pub fn text(&self, title: &str) -> String {
        let s = &self.summary;
        let mut text = format!(
            "{title}: {} requests, {} answered, {} rejected, {} failed ({} after a retry); latency ms p50 {:.2} p95 {:.2} p99 {:.2} max {:.2}; {:.1} answered/s",
            s.requests,
            s.answered,
            s.rejected,
            s.failed,
            s.retried,
            s.latency_ms.p50,
            s.latency_ms.p95,
            s.latency_ms.p99,
            s.latency_ms.max,
            s.answered_rate
        );
        for (why, n) in &s.reasons {
            text.push_str(&format!("\n  {n} x {why}"));
        }
        if let Some(c) = &self.check {
            text.push_str(&format!(
                "\n  {}/{} answers have the single-process argmax, max |logit diff| {:.2e}",
                c.same_argmax, c.answered, c.max_abs_logit_diff
            ));
        }
        let total: u64 = self.links.iter().map(|l| l.value_bytes).sum();
        text.push_str(&format!(
            "\n  {} links, {} value bytes ({:.0} per answered request)",
            self.links.len(),
            total,
            total as f64 / s.answered.max(1) as f64
        ));
        for m in &self.memory {
            text.push_str(&format!(
                "\n  {}: RSS {} -> {} KiB (max {}), at most {} open requests",
                m.name, m.first_kib, m.last_kib, m.max_kib, m.max_live_requests
            ));
        }
        text
    }
}

fn links(nodes: &[NodeStats]) -> Vec<LinkRow> {
    nodes
        .iter()
        .flat_map(|n| {
            n.links.iter().map(|l| LinkRow {
                from: n.name.clone(),
                to: l.to.clone(),
                messages: l.messages,
                value_bytes: l.value_bytes,
                frame_bytes: l.frame_bytes,
                failed: l.failed,
            })
        })
        .collect()
}

fn memory(samples: &[(f64, NodeStats)]) -> Vec<MemoryRow> {
    let mut by: BTreeMap<&str, Vec<&NodeStats>> = BTreeMap::new();
    for (_, s) in samples {
        by.entry(&s.name).or_default().push(s);
    }
    by.into_iter()
        .map(|(name, v)| {
            let rss: Vec<u64> = v.iter().filter_map(|s| s.rss_kib).collect();
            MemoryRow {
                name: name.to_string(),
                samples: v.len(),
                first_kib: rss.first().copied().unwrap_or(0),
                last_kib: rss.last().copied().unwrap_or(0),
                max_kib: rss.iter().copied().max().unwrap_or(0),
                max_live_requests: v.iter().map(|s| s.live_requests).max().unwrap_or(0),
            }
        })
        .collect()
}

impl NetError {
    /// An I/O failure on `path`.
    pub fn file(path: &Path, source: std::io::Error) -> Self {
        NetError::File {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Creates `path` for buffered writing.
fn create(path: &Path) -> Result<std::io::BufWriter<std::fs::File>, NetError> {
    std::fs::File::create(path)
        .map(std::io::BufWriter::new)
        .map_err(|source| NetError::file(path, source))
}

/// Writes one JSON line per request (outcome, latency, trace) to `path`.
pub fn write_trace(path: &Path, records: &[RequestRecord]) -> Result<(), NetError> {
    let mut f = create(path)?;
    for r in records {
        let line = serde_json::to_string(r).map_err(NetError::Encode)?;
        writeln!(f, "{line}").map_err(|e| NetError::file(path, e))?;
    }
    f.flush().map_err(|e| NetError::file(path, e))
}

/// Writes the counter samples to `path` as CSV.
pub fn write_samples(path: &Path, samples: &[(f64, NodeStats)]) -> Result<(), NetError> {
    let mut text = String::from("t_s,node,rss_kib,live_requests,pending,answered,rejected\n");
    for (t, s) in samples {
        text.push_str(&format!(
            "{t:.1},{},{},{},{},{},{}\n",
            s.name,
            s.rss_kib.unwrap_or(0),
            s.live_requests,
            s.pending,
            s.answered,
            s.rejected
        ));
    }
    std::fs::write(path, text).map_err(|e| NetError::file(path, e))
}
