//! `veil net bench` and `veil net load`: drive a fleet with requests.
//!
//! `bench` starts a coordinator and N+1 nodes as processes on loopback, sends test images
//! (one at a time, or Poisson arrivals with `--rate`), compares every answer with
//! single-process inference, and can kill (`--kill`) or stall (`--stall`, SIGSTOP) a helper
//! after `--fault-after` requests. `load` drives a fleet that is already running (the test
//! bed's network namespaces): latency percentiles, rejections by reason, bytes per link, and
//! every node's memory sampled over the run. Both write per-request traces as JSON lines.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use veil_model::Model;
use veil_net::bench::{FaultKind, FleetBench};
use veil_net::drive::{LoadFiles, load_fleet, request_count};
use veil_net::load::LoadConfig;

/// `veil net bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Model (zoo name).
    #[arg(long, default_value = "lenet5")]
    pub model: String,
    /// Weight file (default `runs/<model>-<dataset>/model.safetensors`, from `veil train`).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Dataset whose test images are sent.
    #[arg(long, default_value = "mnist")]
    pub dataset: String,
    /// Data directory (defaults to $VEIL_DATA).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Helpers.
    #[arg(long, default_value_t = veil_net::cluster::coordinator::DEFAULT_HELPERS)]
    pub helpers: usize,
    /// Requests (test images in turn).
    #[arg(long, default_value_t = 1000)]
    pub images: usize,
    /// Mean requests per second (Poisson arrivals); 0 sends one at a time.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Tolerated attack SSIM (default: the lowest at which LeNet-5 can be channel-partitioned
    /// at all; one pool1 map leaks 0.926).
    #[arg(long, default_value_t = veil_net::cluster::coordinator::DEFAULT_TAU)]
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
    /// Privacy profile for the coordinator (`veil profile` JSON; models without a built-in one).
    #[arg(long, value_name = "JSON")]
    pub profile: Option<std::path::PathBuf>,
    /// The coordinator's privacy rule (default: its partial-sum mode's; `paper` for
    /// comparison only).
    #[arg(long, value_enum)]
    pub privacy_rule: Option<veil_plan::PrivacyRule>,
    /// How partial sums travel (the coordinator's `--partial-sums`).
    #[arg(long, value_enum, default_value_t = veil_net::cluster::PartialSums::Masked)]
    pub partial_sums: veil_net::cluster::PartialSums,
    /// Write one JSON line per request (outcome, latency, trace) here.
    #[arg(long)]
    pub trace: Option<PathBuf>,
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
}

/// Runs `veil net load`.
pub fn load(a: &LoadArgs) -> anyhow::Result<()> {
    let (_, split) = super::load_dataset(&a.dataset, a.data.as_deref())?;
    let requests = request_count(a.requests, a.rate, a.duration_s)?;
    let n = split.test.len().min(requests.max(1)).min(1000);
    let inputs: Vec<Vec<f32>> = (0..n).map(|i| split.test.sample(i).to_vec()).collect();
    let want = match &a.weights {
        Some(w) => Some(Model::load(w)?.logits(&inputs.concat())?),
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
    let files = LoadFiles {
        trace: a.trace.clone(),
        samples: a.samples.clone(),
    };
    let bar = crate::progress_bar(requests, "load", "requests");
    let b = bar.clone();
    let report = load_fleet(&cfg, &inputs, want.as_deref(), every, &files, move || {
        b.inc(1)
    })?;
    bar.finish_and_clear();
    crate::report(&report, |x| x.text("load"))
}

/// Runs `veil net bench`.
pub fn bench(b: &BenchArgs) -> anyhow::Result<()> {
    let dataset: veil_data::DatasetId = b.dataset.parse()?;
    let weights = match &b.weights {
        Some(w) => w.clone(),
        None => super::default_weights(&b.model, &dataset)?,
    };
    let fault = match (&b.kill, &b.stall) {
        (Some(t), _) => Some((t.clone(), FaultKind::Kill, b.fault_after)),
        (None, Some(t)) => Some((t.clone(), FaultKind::Stall, b.fault_after)),
        (None, None) => None,
    };
    let bench = FleetBench {
        program: std::env::current_exe().context("locating the veil binary")?,
        model: b.model.clone(),
        weights: weights.clone(),
        helpers: b.helpers,
        tau: b.tau,
        rate: b.rate,
        attempt_timeout_ms: b.attempt_timeout_ms,
        emulate: b.emulate,
        partial_sums: b.partial_sums,
        profile: b.profile.clone(),
        privacy_rule: b.privacy_rule,
        fault,
        trace: b.trace.clone(),
        record_views: None,
    };
    bench.validate()?;
    let model = Model::load(&weights)
        .with_context(|| format!("loading {} (train it first)", weights.display()))?;
    let (_, split) = super::load_dataset(&b.dataset, b.data.as_deref())?;
    let n = b.images.min(split.test.len()).max(1);
    let inputs: Vec<Vec<f32>> = (0..n).map(|i| split.test.sample(i).to_vec()).collect();
    let want = model.logits(&inputs.concat())?;
    let bar = crate::progress_bar(n, "net bench", "requests");
    let done = bar.clone();
    let report = veil_net::bench::run(&bench, &inputs, &want, move || done.inc(1))?;
    bar.finish_and_clear();
    let title = format!(
        "{} on {} helpers over gRPC + mutual TLS",
        b.model, b.helpers
    );
    crate::report(&report, |x| x.text(&title))
}
