//! The secure-inference benchmark behind `veil mpc bench`: run the protocol on test samples,
//! either as four processes over mutual TLS on loopback ([`run_processes`]: E1, E2, the
//! sensor and the dealer, each a `veil mpc` process started by [`veil_harness::Fleet`]) or in
//! this process over the in-memory link ([`crate::local`]), then score the revealed logits
//! against plaintext inference ([`score`]): agreement, accuracy, the documented per-logit
//! error bound, latency, traffic and rounds.
//!
//! The dealer process reports its progress as `progress` events on stdout
//! ([`veil_harness::emit`], `veil mpc dealer --events`) and its result as a JSON file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;
use veil_harness::{Fleet, HarnessError, free_loopback_addr};

use crate::MpcError;
use crate::model::{Architecture, LayerWeights, comparison_widths, eval_with_bound};
use crate::roles::{DealerReport, PARTIES};

/// Errors of the benchmark harness.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The protocol or the model failed.
    #[error(transparent)]
    Mpc(#[from] MpcError),
    /// A party's process failed or could not be started.
    #[error(transparent)]
    Harness(#[from] HarnessError),
    /// The key directory could not be written.
    #[error(transparent)]
    Keys(#[from] veil_tls::TlsError),
    /// The dealer's report could not be read.
    #[error("reading the dealer's report {path}")]
    Report {
        /// The report file.
        path: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The parties' logs could not be copied where `--keep-logs` asked.
    #[error("copying the parties' logs to {dir}: {source}")]
    KeepLogs {
        /// The directory asked for.
        dir: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The temporary directory of keys and logs could not be created.
    #[error("creating the benchmark's temporary directory")]
    TempDir(#[source] std::io::Error),
    /// Bad benchmark parameters.
    #[error("{0}")]
    Invalid(String),
}

/// Most samples one benchmark or sensor run takes.
pub const MAX_IMAGES: usize = 1 << 20;

/// Batch sizes for `images` samples in batches of `batch` (the last one may be smaller).
pub fn batch_sizes(images: usize, batch: usize) -> Result<Vec<usize>, BenchError> {
    if images == 0 || batch == 0 || images > MAX_IMAGES {
        return Err(BenchError::Invalid(format!(
            "--images must be in 1..={MAX_IMAGES} and --batch at least 1"
        )));
    }
    let mut sizes = vec![batch; images / batch];
    if !images.is_multiple_of(batch) {
        sizes.push(images % batch);
    }
    Ok(sizes)
}

/// Where the parties of a benchmark run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Transport {
    /// Four processes over mutual TLS on loopback ([`run_processes`]).
    Tls,
    /// One process, the in-memory link: the same engine, material and byte counts, no TLS and
    /// no serialisation ([`crate::local`]), for agreement over whole test sets.
    Memory,
}

/// What the four processes need.
#[derive(Clone, Debug)]
pub struct ProcessBench {
    /// The `veil` binary.
    pub program: PathBuf,
    /// The model's weight file.
    pub weights: PathBuf,
    /// Dataset whose test split the sensor shares.
    pub dataset: String,
    /// Data directory, when the dataset needs one.
    pub data: Option<PathBuf>,
    /// Samples.
    pub images: usize,
    /// Samples per batch.
    pub batch: usize,
    /// INSECURE: the dealer's fixed seed (tests and reproducible benchmarks).
    pub insecure_seed: Option<u64>,
    /// Where to copy the four parties' logs (`E1.log`, `E2.log`, `sensor.log`,
    /// `dealer.log`) when the run ends, successful or not; `None`: they go with the
    /// temporary directory.
    pub keep_logs: Option<PathBuf>,
}

/// Copies the `*.log` files of `from` into `to` (created); the first failure is returned.
fn copy_logs(from: &Path, to: &Path) -> Result<(), BenchError> {
    let io = |e: std::io::Error| BenchError::KeepLogs {
        dir: to.display().to_string(),
        source: e,
    };
    std::fs::create_dir_all(to).map_err(io)?;
    for entry in std::fs::read_dir(from).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if let (Some(name), Some("log")) =
            (path.file_name(), path.extension().and_then(|e| e.to_str()))
        {
            std::fs::copy(&path, to.join(name)).map_err(io)?;
        }
    }
    Ok(())
}

/// Runs E1, E2, the sensor and the dealer as processes on loopback with fresh keys and
/// returns the dealer's report; `progress(done, total)` follows the dealer's batches.
pub fn run_processes(
    bench: &ProcessBench,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<DealerReport, BenchError> {
    // Keys and logs in a fresh directory, removed on every way out (error paths included).
    let tmp = tempfile::Builder::new()
        .prefix("veil-mpc-bench-")
        .tempdir()
        .map_err(BenchError::TempDir)?;
    let dir = tmp.path();
    let keys = dir.join("keys");
    veil_tls::write_dir(&keys, &veil_tls::generate(&PARTIES)?)?;
    let (a0, a1) = (free_loopback_addr()?, free_loopback_addr()?);
    let report_path = dir.join("dealer.json");
    let mut fleet = Fleet::new(&bench.program, dir)?;
    for (name, args) in party_args(bench, &keys, [a0, a1], &report_path) {
        fleet.spawn(name, &args)?;
    }
    let waited = fleet.wait_all(&mut |e| {
        if e.name() == Some("progress") {
            let field = |k: &str| e.value.get(k).and_then(serde_json::Value::as_u64);
            if let (Some(done), Some(total)) = (field("done"), field("total")) {
                progress(done, total);
            }
        }
    });
    // The run's own failure comes first; logs that cannot be copied are the lesser error.
    let copied = bench.keep_logs.as_ref().map(|to| copy_logs(dir, to));
    waited?;
    copied.transpose()?;
    let report_err = |source: Box<dyn std::error::Error + Send + Sync>| BenchError::Report {
        path: report_path.display().to_string(),
        source,
    };
    let text = std::fs::read_to_string(&report_path).map_err(|e| report_err(Box::new(e)))?;
    let report: DealerReport = serde_json::from_str(&text).map_err(|e| report_err(Box::new(e)))?;
    drop(fleet);
    Ok(report)
}

/// The command lines of E1, E2, the sensor and the dealer.
fn party_args(
    bench: &ProcessBench,
    keys: &Path,
    [a0, a1]: [SocketAddr; 2],
    report: &Path,
) -> Vec<(&'static str, Vec<String>)> {
    let strings = |v: &[&str]| -> Vec<String> { v.iter().map(|s| s.to_string()).collect() };
    let keys = keys.display().to_string();
    let servers = format!("{a0},{a1}");
    let (images, batch) = (bench.images.to_string(), bench.batch.to_string());
    let (a0s, a1s) = (a0.to_string(), a1.to_string());
    let e1 = strings(&[
        "mpc", "server", "--party", "0", "--listen", &a0s, "--keys", &keys,
    ]);
    let e2 = strings(&[
        "mpc", "server", "--party", "1", "--listen", &a1s, "--peer", &a0s, "--keys", &keys,
    ]);
    // What the sensor and the dealer share: the samples, the batching, the servers, the keys.
    let shared = strings(&[
        "--images",
        &images,
        "--batch",
        &batch,
        "--servers",
        &servers,
        "--keys",
        &keys,
    ]);
    let mut sensor = strings(&["mpc", "client", "--dataset", &bench.dataset]);
    sensor.extend(shared.iter().cloned());
    if let Some(d) = &bench.data {
        sensor.extend(["--data".to_string(), d.display().to_string()]);
    }
    let weights = bench.weights.display().to_string();
    let mut dealer = strings(&["mpc", "dealer", "--weights", &weights]);
    dealer.extend(shared);
    dealer.extend(strings(&[
        "--out",
        &report.display().to_string(),
        "--events",
    ]));
    if let Some(s) = bench.insecure_seed {
        dealer.extend(["--insecure-seed".to_string(), s.to_string()]);
    }
    vec![
        ("E1", e1),
        ("E2", e2),
        ("sensor", sensor),
        ("dealer", dealer),
    ]
}

/// The dataset a zoo model's benchmark uses by default: the sensor nets' own data
/// (`postop*`: postop, `wearable*`: activity), MNIST otherwise.
pub fn default_dataset(model: &str) -> &'static str {
    match () {
        _ if model.starts_with("postop") => "postop",
        _ if model.starts_with("wearable") => "activity",
        _ => "mnist",
    }
}

/// One benchmark: the samples, the reference and where the parties run.
pub struct BenchRun<'a> {
    /// The model's weight file.
    pub weights: &'a Path,
    /// Dataset name (reports).
    pub dataset: &'a str,
    /// The samples, in order.
    pub inputs: &'a [f32],
    /// Their labels.
    pub labels: &'a [u32],
    /// Plaintext logits of every sample (the reference).
    pub plain_logits: &'a [f32],
    /// Batch sizes (see [`batch_sizes`]).
    pub sizes: &'a [usize],
    /// The requested batch size (medians are over full batches of it).
    pub batch: usize,
    /// INSECURE: a fixed dealer seed (default: OS entropy).
    pub insecure_seed: Option<u64>,
    /// Four processes over TLS (`Some`), or every party in this process (`None`).
    pub processes: Option<ProcessBench>,
}

/// Runs `run` and scores it; `progress(done, total)` follows the batches.
pub fn run(
    run: &BenchRun<'_>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<BenchSummary, BenchError> {
    let (spec, tensors) = crate::model::read_weight_file(run.weights)?;
    let (arch, lw) = crate::model::compile(&spec, &tensors)?;
    let start = std::time::Instant::now();
    let (report, transport) = match &run.processes {
        Some(p) => (run_processes(p, progress)?, "tls"),
        None => {
            let report = crate::local::run_batches_in_memory(
                &arch,
                &lw,
                run.inputs,
                run.sizes,
                run.insecure_seed,
                &mut |done, total| progress(done as u64, total as u64),
            )?;
            (report, "memory")
        }
    };
    let wall_s = start.elapsed().as_secs_f64();
    let reference = Reference {
        arch: &arch,
        weights: &lw,
        inputs: run.inputs,
        labels: run.labels,
        plain_logits: run.plain_logits,
    };
    score(
        &report,
        &reference,
        (transport, run.dataset, run.batch, wall_s),
    )
}

/// What `veil mpc bench` reports.
#[derive(Clone, Debug, Serialize)]
pub struct BenchSummary {
    /// Model name.
    pub model: String,
    /// `tls` or `memory`.
    pub transport: String,
    /// Dataset name.
    pub dataset: String,
    /// Samples.
    pub images: usize,
    /// Samples per batch.
    pub batch: usize,
    /// Median over batches of the slower server's online time, divided by the batch size.
    pub latency_ms_median: f64,
    /// Median online time of one batch (ms).
    pub batch_latency_ms_median: f64,
    /// Median over batches of the longer wait of one server for the other to hold its
    /// input and material before the online clock started (ms per batch; excluded from the
    /// latencies: the material's download is offline work).
    pub ready_wait_ms_median: f64,
    /// Samples per second of online time (batch size / median batch time).
    pub throughput_images_per_s: f64,
    /// Frame bytes between the servers, both directions, per sample.
    pub online_bytes: f64,
    /// The protocol family's floor for this model (bytes per sample, both directions, and
    /// its terms): see [`crate::model::OnlineFloor`].
    pub floor: crate::model::OnlineFloor,
    /// `online_bytes` over the floor's bytes.
    pub floor_ratio: f64,
    /// The comparison width (bits) of each comparison step, as the dealer derived them from
    /// the weights ([`crate::model::comparison_widths`]).
    pub comparison_widths: Vec<u32>,
    /// Material bytes from the dealer to both servers, per sample.
    pub offline_bytes: f64,
    /// Model shares sent once to both servers.
    pub model_bytes: u64,
    /// Dealer time to generate one sample's material (ms).
    pub dealer_ms_per_image: f64,
    /// Server-to-server rounds per batch.
    pub rounds: u64,
    /// Fraction of samples whose secure argmax equals the plaintext argmax.
    pub agreement: f64,
    /// Largest |secure logit - plaintext logit|.
    pub max_abs_logit_error: f64,
    /// Smallest margin of the documented per-logit error bound minus the observed error
    /// (negative would break the bound).
    pub min_bound_slack: f64,
    /// Largest documented bound over all logits.
    pub max_error_bound: f64,
    /// Accuracy of the secure argmax.
    pub accuracy_secure: f64,
    /// Accuracy of the plaintext argmax.
    pub accuracy_plain: f64,
    /// Wall time of the protocol run (s).
    pub wall_s: f64,
}

/// The samples a run was given and the plaintext reference to score it against.
pub struct Reference<'a> {
    /// The compiled model.
    pub arch: &'a Architecture,
    /// Its weights.
    pub weights: &'a [LayerWeights],
    /// The samples, `arch.input_len` values each.
    pub inputs: &'a [f32],
    /// Their labels.
    pub labels: &'a [u32],
    /// Plaintext logits of each sample (from the plaintext engine), `arch.output_len` each.
    pub plain_logits: &'a [f32],
}

/// Scores `report` against `reference`; `batch` is the nominal batch size (medians are over
/// full batches), `transport` and `dataset` name the run, `wall_s` is its wall time.
pub fn score(
    report: &DealerReport,
    reference: &Reference<'_>,
    (transport, dataset, batch, wall_s): (&str, &str, usize, f64),
) -> Result<BenchSummary, BenchError> {
    let (classes, per) = (reference.arch.output_len, reference.arch.input_len);
    let n = report.logits.len();
    if n == 0
        || reference.plain_logits.len() < n * classes
        || reference.inputs.len() < n * per
        || reference.labels.len() < n
    {
        return Err(BenchError::Invalid(format!(
            "{n} secure results do not match the reference's samples"
        )));
    }
    let argmax = veil_metrics::argmax::<f64>;
    let (mut agree, mut correct_s, mut correct_p) = (0usize, 0usize, 0usize);
    let (mut max_err, mut min_slack, mut max_bound) = (0.0f64, f64::INFINITY, 0.0f64);
    for (i, got) in report.logits.iter().enumerate() {
        let want: Vec<f64> = reference.plain_logits[i * classes..(i + 1) * classes]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let sample = &reference.inputs[i * per..(i + 1) * per];
        let (exact, bound) = eval_with_bound(reference.arch, reference.weights, sample);
        let (s, p) = (argmax(got), argmax(&want));
        let label = reference.labels[i] as usize;
        agree += usize::from(s == p);
        correct_s += usize::from(s == label);
        correct_p += usize::from(p == label);
        if got.len() != classes {
            return Err(BenchError::Invalid(format!(
                "sample {i}: {} secure logits, the model has {classes} outputs",
                got.len()
            )));
        }
        for k in 0..classes {
            max_err = max_err.max((got[k] - want[k]).abs());
            min_slack = min_slack.min(bound[k] - (got[k] - exact[k]).abs());
            max_bound = max_bound.max(bound[k]);
        }
    }
    // Over the full batches, the median of the slower server's figure.
    let slower_median = |of: fn(&crate::roles::BatchReport) -> [f64; 2]| {
        let mut v: Vec<f64> = report
            .batches
            .iter()
            .filter(|x| x.samples == batch)
            .map(|x| of(x)[0].max(of(x)[1]))
            .collect();
        median(&mut v)
    };
    let batch_med = slower_median(|x| x.online_ms);
    let ready_wait_med = slower_median(|x| x.ready_wait_ms);
    let online: u64 = report
        .batches
        .iter()
        .map(|x| x.online_bytes_sent[0] + x.online_bytes_sent[1])
        .sum();
    let offline: u64 = report.batches.iter().map(|x| x.offline_bytes).sum();
    let dealer_ms: f64 = report.batches.iter().map(|x| x.dealer_ms).sum();
    let nf = n as f64;
    let widths = comparison_widths(reference.arch, reference.weights);
    let floor = reference.arch.online_floor(&widths);
    Ok(BenchSummary {
        model: report.model.clone(),
        transport: transport.to_string(),
        dataset: dataset.to_string(),
        images: n,
        batch,
        latency_ms_median: batch_med / batch as f64,
        batch_latency_ms_median: batch_med,
        ready_wait_ms_median: ready_wait_med,
        throughput_images_per_s: batch as f64 / (batch_med / 1e3),
        online_bytes: online as f64 / nf,
        floor,
        floor_ratio: online as f64 / nf / floor.bytes() as f64,
        comparison_widths: widths,
        offline_bytes: offline as f64 / nf,
        model_bytes: report.model_bytes,
        dealer_ms_per_image: dealer_ms / nf,
        rounds: report.batches.first().map_or(0, |x| x.rounds),
        agreement: agree as f64 / nf,
        max_abs_logit_error: max_err,
        min_bound_slack: min_slack,
        max_error_bound: max_bound,
        accuracy_secure: correct_s as f64 / nf,
        accuracy_plain: correct_p as f64 / nf,
        wall_s,
    })
}

/// The median of `v` (sorted in place); NaN when empty.
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

impl BenchSummary {
    /// The outcome in one line.
    pub fn summary(&self) -> String {
        format!(
            "{} on {} ({} samples, batch {}): online {:.2} ms/sample (batch {:.2} ms after {:.2} ms waiting for the slower server's material, {:.1} samples/s), online {:.1} KB/sample ({:.2}x the floor of {:.1} KB: {} comparisons at widths {}, {} linear openings), offline {:.1} KB/sample, {} rounds; agreement {:.4}, max |logit error| {:.2e} (bound up to {:.2e}); accuracy secure {:.4} / plain {:.4}",
            self.model,
            self.dataset,
            self.images,
            self.batch,
            self.latency_ms_median,
            self.batch_latency_ms_median,
            self.ready_wait_ms_median,
            self.throughput_images_per_s,
            self.online_bytes / 1e3,
            self.floor_ratio,
            self.floor.bytes() as f64 / 1e3,
            self.floor.comparisons,
            self.comparison_widths
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join("/"),
            self.floor.linear_openings,
            self.offline_bytes / 1e3,
            self.rounds,
            self.agreement,
            self.max_abs_logit_error,
            self.max_error_bound,
            self.accuracy_secure,
            self.accuracy_plain
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cover_every_image_and_medians_are_medians() {
        assert_eq!(batch_sizes(10, 4).expect("sizes"), vec![4, 4, 2]);
        assert_eq!(batch_sizes(8, 4).expect("sizes"), vec![4, 4]);
        assert!(batch_sizes(0, 4).is_err() && batch_sizes(4, 0).is_err());
        // A billion images would allocate a billion batch entries: refused first.
        assert!(batch_sizes(1_000_000_000, 1).is_err());
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }
}
