//! `veil net bench` and `veil net load`: drive a fleet with requests.
//!
//! `bench` starts a coordinator and N+1 nodes as processes on loopback, sends test images
//! (one at a time, or Poisson arrivals with `--rate`), compares every answer with
//! single-process inference, and can kill (`--kill`) or stall (`--stall`, SIGSTOP) a helper
//! after `--fault-after` requests. `load` drives a fleet that is already running (the test
//! bed's network namespaces): latency percentiles, rejections by reason, bytes per link, and
//! every node's memory sampled over the run. Both write per-request traces as JSON lines.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use veil_model::Model;
use veil_net::cluster::NodeStats;
use veil_net::load::{LoadConfig, LoadSummary, RequestRecord, fleet_stats, run_load};

use super::net::{party_names, runtime};

/// `veil net bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Model (zoo name).
    #[arg(long, default_value = "lenet5")]
    pub model: String,
    /// Weight file (default `runs/<model>-mnist/model.safetensors`).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Dataset whose test images are sent.
    #[arg(long, default_value = "mnist")]
    pub dataset: String,
    /// Data directory (defaults to $VEIL_DATA).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Helpers.
    #[arg(long, default_value_t = 6)]
    pub helpers: usize,
    /// Requests (test images in turn).
    #[arg(long, default_value_t = 1000)]
    pub images: usize,
    /// Mean requests per second (Poisson arrivals); 0 sends one at a time.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Tolerated attack SSIM.
    #[arg(long, default_value_t = 0.8)]
    pub tau: f64,
    /// Kill this helper (SIGKILL) after `--fault-after` requests.
    #[arg(long)]
    pub kill: Option<String>,
    /// Stall this helper (SIGSTOP) after `--fault-after` requests.
    #[arg(long, conflicts_with = "kill")]
    pub stall: Option<String>,
    /// Requests sent before the fault.
    #[arg(long, default_value_t = 50)]
    pub fault_after: usize,
    /// Source: attempt timeout (milliseconds).
    #[arg(long, default_value_t = 3000)]
    pub attempt_timeout_ms: u64,
    /// Nodes emulate their device's compute speed.
    #[arg(long)]
    pub emulate: bool,
    /// Write one JSON line per request (outcome, latency, trace) here.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `veil net load`.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// The source's address.
    #[arg(long)]
    pub source_addr: String,
    /// The source's party name.
    #[arg(long, default_value = "cam0")]
    pub source: String,
    /// Key directory (with the `client` certificate).
    #[arg(long, default_value = "runs/net-keys")]
    pub keys: PathBuf,
    /// Dataset whose test images are sent.
    #[arg(long, default_value = "mnist")]
    pub dataset: String,
    /// Data directory (defaults to $VEIL_DATA).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Weight file: when given, answers are compared with single-process inference.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Mean requests per second (Poisson arrivals); 0 sends one at a time.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Requests to send.
    #[arg(long, default_value_t = 200)]
    pub requests: usize,
    /// Run this long instead (seconds; requests = rate x duration).
    #[arg(long)]
    pub duration_s: Option<f64>,
    /// Read every node's counters (memory, open requests) this often (seconds; 0: only at
    /// the end).
    #[arg(long, default_value_t = 0.0)]
    pub sample_s: f64,
    /// Write the samples here as CSV.
    #[arg(long)]
    pub samples: Option<PathBuf>,
    /// Write one JSON line per request (outcome, latency, trace) here.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Seed of the arrival times.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Answers compared with single-process inference.
#[derive(Debug, Serialize)]
struct Check {
    answered: usize,
    same_argmax: usize,
    max_abs_logit_diff: f64,
}

/// One sender-to-receiver link.
#[derive(Debug, Serialize)]
struct LinkRow {
    from: String,
    to: String,
    messages: u64,
    value_bytes: u64,
    frame_bytes: u64,
    failed: u64,
}

/// One node's memory over the run.
#[derive(Debug, Serialize)]
struct MemoryRow {
    name: String,
    samples: usize,
    first_kib: u64,
    last_kib: u64,
    max_kib: u64,
    max_live_requests: usize,
}

#[derive(Debug, Serialize)]
struct Report {
    summary: LoadSummary,
    check: Option<Check>,
    nodes: Vec<NodeStats>,
    links: Vec<LinkRow>,
    memory: Vec<MemoryRow>,
    plans: Vec<serde_json::Value>,
    fault: Option<String>,
}

/// Counters of the nodes, with the seconds into the run when they were read.
type Sampled = Vec<(f64, NodeStats)>;

type Samples = Arc<Mutex<Sampled>>;

/// A fault to inject after so many requests were sent.
type Fault = (usize, Box<dyn FnOnce() + Send>);

/// Sends the requests (with a progress bar), samples the fleet's counters, injects the fault;
/// returns the records, the wall time and the samples.
fn drive(
    cfg: &LoadConfig,
    inputs: &[Vec<f32>],
    sample_every: Option<Duration>,
    fault: Option<Fault>,
) -> anyhow::Result<(Vec<RequestRecord>, f64, Sampled)> {
    let rt = runtime()?;
    let bar = indicatif::ProgressBar::new(cfg.requests as u64);
    let samples: Samples = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let records = rt.block_on(async {
        let sent = Arc::new(AtomicUsize::new(0));
        if let Some((after, f)) = fault {
            let sent = sent.clone();
            tokio::spawn(async move {
                while sent.load(Ordering::SeqCst) < after {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                f();
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
        let b = bar.clone();
        let records = run_load(cfg, inputs, sent, move || b.inc(1)).await;
        if let Some(s) = sampler {
            s.abort();
        }
        records
    })?;
    bar.finish_and_clear();
    let wall_s = start.elapsed().as_secs_f64();
    let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
    Ok((records, wall_s, samples))
}

/// Compares the answered records with `want` (logits of the inputs, `classes` each).
fn check(records: &[RequestRecord], want: &[f32], classes: usize) -> Check {
    let mut c = Check {
        answered: 0,
        same_argmax: 0,
        max_abs_logit_diff: 0.0,
    };
    for r in records.iter().filter(|r| r.outcome == "answered") {
        let w = &want[r.input * classes..(r.input + 1) * classes];
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

fn write_trace(path: &Path, records: &[RequestRecord]) -> anyhow::Result<()> {
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    for r in records {
        writeln!(f, "{}", serde_json::to_string(r)?)?;
    }
    Ok(())
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

fn write_samples(path: &Path, samples: &[(f64, NodeStats)]) -> anyhow::Result<()> {
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    writeln!(
        f,
        "t_s,node,rss_kib,live_requests,pending,answered,rejected"
    )?;
    for (t, s) in samples {
        writeln!(
            f,
            "{t:.1},{},{},{},{},{},{}",
            s.name,
            s.rss_kib.unwrap_or(0),
            s.live_requests,
            s.pending,
            s.answered,
            s.rejected
        )?;
    }
    Ok(())
}

fn print(report: &Report, json: bool, title: &str) -> anyhow::Result<()> {
    if json {
        return crate::print_json(report);
    }
    let s = &report.summary;
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
    if let Some(c) = &report.check {
        text.push_str(&format!(
            "\n  {}/{} answers have the single-process argmax, max |logit diff| {:.2e}",
            c.same_argmax, c.answered, c.max_abs_logit_diff
        ));
    }
    let total: u64 = report.links.iter().map(|l| l.value_bytes).sum();
    text.push_str(&format!(
        "\n  {} links, {} value bytes ({:.0} per answered request)",
        report.links.len(),
        total,
        total as f64 / s.answered.max(1) as f64
    ));
    for m in &report.memory {
        text.push_str(&format!(
            "\n  {}: RSS {} -> {} KiB (max {}), at most {} open requests",
            m.name, m.first_kib, m.last_kib, m.max_kib, m.max_live_requests
        ));
    }
    crate::out(&text)
}

/// Runs `veil net load`.
pub fn load(a: &LoadArgs) -> anyhow::Result<()> {
    let (_, split) = super::load_dataset(&a.dataset, a.data.as_deref())?;
    let requests = match a.duration_s {
        Some(d) if a.rate > 0.0 => (d * a.rate).round() as usize,
        Some(_) => bail!("--duration-s needs --rate > 0"),
        None => a.requests,
    };
    let n = split.test.len().min(requests.max(1)).min(1000);
    let inputs: Vec<Vec<f32>> = (0..n).map(|i| split.test.sample(i).to_vec()).collect();
    let want = match &a.weights {
        Some(w) => {
            let model = Model::load(w).with_context(|| format!("loading {}", w.display()))?;
            Some(
                model
                    .forward(model.input(inputs.concat())?)?
                    .into_values()?,
            )
        }
        None => None,
    };
    let cfg = LoadConfig {
        keys: a.keys.clone(),
        source: a.source.clone(),
        source_addr: a.source_addr.clone(),
        rate: a.rate,
        requests,
        timeout: Duration::from_secs(30),
        seed: a.seed,
    };
    let every = (a.sample_s > 0.0).then(|| Duration::from_secs_f64(a.sample_s));
    let (records, wall_s, mut samples) = drive(&cfg, &inputs, every, None)?;
    let nodes = runtime()?.block_on(fleet_stats(
        &cfg.keys,
        &cfg.source,
        &cfg.source_addr,
        cfg.timeout,
    ))?;
    samples.extend(nodes.iter().map(|s| (wall_s, s.clone())));
    if let Some(p) = &a.trace {
        write_trace(p, &records)?;
    }
    if let Some(p) = &a.samples {
        write_samples(p, &samples)?;
    }
    let report = Report {
        summary: LoadSummary::of(&records, a.rate, wall_s),
        check: want.map(|w| check(&records, &w, w.len() / n)),
        links: links(&nodes),
        memory: memory(&samples),
        nodes,
        plans: Vec::new(),
        fault: None,
    };
    print(&report, a.json, "load")
}

struct Children(Vec<(String, Child)>);

impl Drop for Children {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Sends `signal` to process `pid` with `kill(1)`.
fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status();
}

/// Most helpers `veil net bench` starts (each is a process on this machine).
const MAX_BENCH_HELPERS: usize = 64;

/// Runs `veil net bench`.
pub fn bench(b: &BenchArgs) -> anyhow::Result<()> {
    if !(1..=MAX_BENCH_HELPERS).contains(&b.helpers) {
        bail!(
            "--helpers must be in 1..={MAX_BENCH_HELPERS} (one process each), got {}",
            b.helpers
        );
    }
    let weights = b
        .weights
        .clone()
        .unwrap_or_else(|| super::train::default_weights(&b.model, "mnist"));
    let model = Model::load(&weights)
        .with_context(|| format!("loading {} (train it first)", weights.display()))?;
    let (_, split) = super::load_dataset(&b.dataset, b.data.as_deref())?;
    let n = b.images.min(split.test.len()).max(1);
    let fault_target = b.kill.as_ref().or(b.stall.as_ref());
    if let Some(t) = fault_target
        && !(0..b.helpers).any(|i| format!("h{i}") == *t)
    {
        bail!(
            "--kill/--stall names a helper h0..h{}",
            b.helpers.saturating_sub(1)
        );
    }
    let dir = std::env::temp_dir().join(format!("veil-net-bench-{}", std::process::id()));
    let keys = dir.join("keys");
    let names = party_names(b.helpers);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    veil_tls::write_dir(&keys, &veil_tls::generate(&refs)?)?;
    let exe = std::env::current_exe()?;
    let caddr = free_addr()?.to_string();
    let keys_s = keys.display().to_string();
    let log = |name: &str| -> anyhow::Result<std::fs::File> {
        Ok(std::fs::File::create(dir.join(format!("{name}.log")))?)
    };
    let mut children = Children(Vec::new());
    let coord_out = dir.join("coordinator.out");
    let coordinator = Command::new(&exe)
        .args(["coordinator", "--listen", &caddr, "--model", &b.model])
        .args(["--weights", &weights.display().to_string()])
        .args(["--tau", &b.tau.to_string()])
        .args(["--helpers", &b.helpers.to_string(), "--keys", &keys_s])
        .stdout(std::fs::File::create(&coord_out)?)
        .stderr(log("coordinator")?)
        .spawn()
        .context("starting the coordinator")?;
    children.0.push(("coordinator".into(), coordinator));
    let mut nodes: Vec<(String, &str)> = vec![("cam0".into(), "source")];
    nodes.extend((0..b.helpers).map(|i| (format!("h{i}"), "helper")));
    for (name, role) in &nodes {
        let mut cmd = Command::new(&exe);
        cmd.args(["node", "--name", name, "--role", role])
            .args(["--listen", &free_addr()?.to_string()])
            .args(["--coordinator", &caddr, "--keys", &keys_s])
            .args(["--attempt-timeout-ms", &b.attempt_timeout_ms.to_string()]);
        if b.emulate {
            cmd.arg("--emulate");
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log(name)?)
            .spawn()
            .with_context(|| format!("starting node {name}"))?;
        children.0.push((name.clone(), child));
    }
    let plans = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&coord_out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    let start = Instant::now();
    let ready = loop {
        if let Some(p) = plans().into_iter().find(|p| p["planned"] == true) {
            break p;
        }
        if let Some(status) = children.0[0].1.try_wait()? {
            let err = std::fs::read_to_string(dir.join("coordinator.log")).unwrap_or_default();
            bail!(
                "coordinator exited with {status}: {}",
                err.lines().last().unwrap_or("")
            );
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("the coordinator planned nothing within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let source_addr = ready["source_addr"]
        .as_str()
        .context("source address")?
        .to_string();
    let per = split.test.sample_len();
    let inputs: Vec<Vec<f32>> = (0..n).map(|i| split.test.sample(i).to_vec()).collect();
    let want = model
        .forward(model.input(split.test.samples[..n * per].to_vec())?)?
        .into_values()?;
    let fault = fault_target.map(|t| {
        let pid = children
            .0
            .iter()
            .find(|(name, _)| name == t)
            .map_or(0, |(_, c)| c.id());
        let sig = if b.kill.is_some() { "KILL" } else { "STOP" };
        let f: Box<dyn FnOnce() + Send> = Box::new(move || signal(pid, sig));
        (b.fault_after, f)
    });
    let cfg = LoadConfig {
        keys: keys.clone(),
        source: "cam0".into(),
        source_addr: source_addr.clone(),
        rate: b.rate,
        requests: n,
        timeout: Duration::from_secs(60),
        seed: 1,
    };
    let (records, wall_s, _) = drive(&cfg, &inputs, None, fault)?;
    let nodes = runtime()?.block_on(fleet_stats(
        &keys,
        "cam0",
        &source_addr,
        Duration::from_secs(10),
    ))?;
    if let Some(p) = &b.trace {
        write_trace(p, &records)?;
    }
    let report = Report {
        summary: LoadSummary::of(&records, b.rate, wall_s),
        check: Some(check(&records, &want, want.len() / n)),
        links: links(&nodes),
        memory: Vec::new(),
        nodes,
        plans: plans(),
        fault: fault_target.map(|t| {
            format!(
                "{} {t} after {} requests",
                if b.kill.is_some() {
                    "killed"
                } else {
                    "stalled"
                },
                b.fault_after
            )
        }),
    };
    if let Some(t) = &b.stall {
        // Let the stalled process go before it is killed, so it does not linger stopped.
        if let Some((_, c)) = children.0.iter().find(|(name, _)| name == t) {
            signal(c.id(), "CONT");
        }
    }
    drop(children);
    let _ = std::fs::remove_dir_all(&dir);
    print(
        &report,
        b.json,
        &format!(
            "{} on {} helpers over gRPC + mutual TLS",
            b.model, b.helpers
        ),
    )
}
