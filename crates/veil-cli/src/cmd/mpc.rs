//! `veil mpc`: secure two-server inference (`veil-mpc`). `keygen` writes the CA and the four
//! party certificates; `server`, `dealer` and `client` run one party each over TCP with
//! mutual TLS; `bench` starts all four as separate processes on loopback, checks the revealed
//! logits against plaintext inference (the burn engine) and reports latency, traffic, rounds
//! and agreement.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use veil_model::Model;
use veil_mpc::roles::{
    DealerConfig, DealerReport, PARTIES, SensorConfig, ServerConfig, run_dealer, run_sensor,
    run_server,
};
use veil_mpc::share::Party;

/// Arguments of `veil mpc`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to run.
    #[command(subcommand)]
    pub role: Role,
}

/// The roles and tools of `veil mpc`.
#[derive(Debug, clap::Subcommand)]
pub enum Role {
    /// Create a private CA and certificates for e1, e2, dealer and sensor.
    Keygen {
        /// Output directory.
        #[arg(long, default_value = "runs/mpc-keys")]
        out: PathBuf,
    },
    /// Run computing server E1 (`--party 0`) or E2 (`--party 1`).
    Server {
        /// 0 (E1) or 1 (E2).
        #[arg(long)]
        party: u8,
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddr,
        /// E1's address (E2 only).
        #[arg(long)]
        peer: Option<SocketAddr>,
        /// Key directory.
        #[command(flatten)]
        net: NetArgs,
    },
    /// Run the healthcare center: dealer of the model shares and randomness, receiver of the
    /// result.
    Dealer {
        /// The model's weight file.
        #[arg(long)]
        weights: PathBuf,
        /// Samples and batching.
        #[command(flatten)]
        batches: BatchArgs,
        /// INSECURE, tests only: derive every dealer secret from this 64-bit seed (default:
        /// 256 bits from the OS CSPRNG).
        #[arg(long = "insecure-seed")]
        seed: Option<u64>,
        /// Write the report (logits, per-batch counters) as JSON to this file.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Servers and keys.
        #[command(flatten)]
        net: NetArgs,
    },
    /// Run the sensor: share test samples of a dataset with the two servers.
    Client {
        /// Dataset whose test split supplies the samples.
        #[arg(long, default_value = "mnist")]
        dataset: String,
        /// Data directory (defaults to $VEIL_DATA).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Samples and batching.
        #[command(flatten)]
        batches: BatchArgs,
        /// Servers and keys.
        #[command(flatten)]
        net: NetArgs,
    },
    /// All four parties as processes on loopback: latency, traffic, rounds, agreement.
    Bench(BenchArgs),
}

/// Connection options.
#[derive(Debug, Clone, clap::Args)]
pub struct NetArgs {
    /// Key directory written by `veil mpc keygen`.
    #[arg(long, default_value = "runs/mpc-keys")]
    pub keys: PathBuf,
    /// E1's and E2's addresses (dealer and client).
    #[arg(long, value_delimiter = ',')]
    pub servers: Vec<SocketAddr>,
    /// Timeout of every connection, read and write, in seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

/// Sample count and batch size.
#[derive(Debug, Clone, clap::Args)]
pub struct BatchArgs {
    /// Test samples (the first N of the test split).
    #[arg(long, default_value_t = 100)]
    pub images: usize,
    /// Samples per batch.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
}

impl BatchArgs {
    fn sizes(&self) -> anyhow::Result<Vec<usize>> {
        if self.images == 0 || self.batch == 0 {
            bail!("--images and --batch must be at least 1");
        }
        let mut v = vec![self.batch; self.images / self.batch];
        if !self.images.is_multiple_of(self.batch) {
            v.push(self.images % self.batch);
        }
        Ok(v)
    }
}

/// `veil mpc bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Zoo model (secureml_a, chameleon, minionn, lenet_large, postop_a/b, wearable_c/d).
    #[arg(long, default_value = "secureml_a")]
    pub model: String,
    /// Weight file (default `runs/<model>-<dataset>/model.safetensors`, from `veil train`).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Dataset (default: mnist, or postop / activity for the sensor nets).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Data directory (defaults to $VEIL_DATA).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Samples and batching.
    #[command(flatten)]
    pub batches: BatchArgs,
    /// INSECURE, tests and reproducible benchmarks only: the dealer's 64-bit seed (default:
    /// the dealer draws 256 bits from the OS CSPRNG).
    #[arg(long = "insecure-seed")]
    pub seed: Option<u64>,
    /// `tls`: four processes over mutual TLS on loopback; `memory`: the same protocol in this
    /// process over the in-memory link (same engine, material and byte counts; no TLS, no
    /// serialisation), for agreement over whole test sets.
    #[arg(long, value_enum, default_value_t = TransportArg::Tls)]
    pub transport: TransportArg,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

fn timeout(net: &NetArgs) -> Duration {
    Duration::from_secs(net.timeout.max(1))
}

fn two_servers(net: &NetArgs) -> anyhow::Result<[SocketAddr; 2]> {
    match net.servers.as_slice() {
        [a, b] => Ok([*a, *b]),
        other => bail!(
            "--servers needs E1's and E2's addresses, got {}",
            other.len()
        ),
    }
}

/// `--transport` of `veil mpc bench`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TransportArg {
    /// Four processes over mutual TLS on loopback.
    Tls,
    /// One process, the in-memory link.
    Memory,
}

impl TransportArg {
    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            TransportArg::Tls => "tls",
            TransportArg::Memory => "memory",
        }
    }
}

/// Runs `veil mpc`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.role {
        Role::Keygen { out } => {
            veil_tls::write_dir(&out, &veil_tls::generate(&PARTIES)?)?;
            crate::out(&format!(
                "wrote ca.pem and certificates for {} in {}",
                PARTIES.join(", "),
                out.display()
            ))
        }
        Role::Server {
            party,
            listen,
            peer,
            net,
        } => {
            let party = match party {
                0 => Party::Zero,
                1 => Party::One,
                p => bail!("--party must be 0 (E1) or 1 (E2), got {p}"),
            };
            let report = run_server(&ServerConfig {
                party,
                listen,
                peer,
                keys: net.keys.clone(),
                timeout: timeout(&net),
            })?;
            eprintln!(
                "veil mpc server {}: {} samples in {} batches",
                party.index(),
                report.samples,
                report.batches
            );
            Ok(())
        }
        Role::Dealer {
            weights,
            batches,
            seed,
            out,
            net,
        } => {
            let sizes = batches.sizes()?;
            let step = (sizes.len() / 100).max(1);
            let report = run_dealer(
                &DealerConfig {
                    weights,
                    servers: two_servers(&net)?,
                    keys: net.keys.clone(),
                    batches: sizes,
                    insecure_seed: seed,
                    timeout: timeout(&net),
                },
                &mut |done, total| {
                    if done % step == 0 || done == total {
                        eprintln!("batches {done}/{total}");
                    }
                },
            )?;
            let text = serde_json::to_string(&report)?;
            match out {
                Some(path) => std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display())),
                None => crate::out(&text),
            }
        }
        Role::Client {
            dataset,
            data,
            batches,
            net,
        } => {
            let (_, split) = super::load_dataset(&dataset, data.as_deref())?;
            let sizes = batches.sizes()?;
            let n: usize = sizes.iter().sum();
            if n > split.test.len() {
                bail!("--images {n}: the test split has {}", split.test.len());
            }
            let per = split.test.sample_len();
            run_sensor(&SensorConfig {
                servers: two_servers(&net)?,
                keys: net.keys.clone(),
                inputs: split.test.samples[..n * per].to_vec(),
                input_len: per,
                batches: sizes,
                timeout: timeout(&net),
            })?;
            Ok(())
        }
        Role::Bench(b) => bench(&b),
    }
}

/// What `veil mpc bench --json` prints.
#[derive(Serialize)]
struct BenchOutput {
    model: String,
    transport: String,
    dataset: String,
    images: usize,
    batch: usize,
    /// Median over batches of the slower server's online time, divided by the batch size.
    latency_ms_median: f64,
    /// Median online time of one batch (ms).
    batch_latency_ms_median: f64,
    /// Samples per second of online time (batch size / median batch time).
    throughput_images_per_s: f64,
    /// Frame bytes between the servers, both directions, per sample.
    online_bytes: f64,
    /// Material bytes from the dealer to both servers, per sample.
    offline_bytes: f64,
    /// Model shares sent once to both servers.
    model_bytes: u64,
    /// Dealer time to generate one sample's material (ms).
    dealer_ms_per_image: f64,
    /// Server-to-server rounds per batch.
    rounds: u64,
    /// Fraction of samples whose secure argmax equals the plaintext (burn) argmax.
    agreement: f64,
    /// Largest |secure logit - plaintext logit|.
    max_abs_logit_error: f64,
    /// Smallest margin of the documented per-logit error bound minus the observed error
    /// (negative would break the bound).
    min_bound_slack: f64,
    /// Largest documented bound over all logits.
    max_error_bound: f64,
    accuracy_secure: f64,
    accuracy_plain: f64,
    wall_s: f64,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?)
}

/// Kills the children still running when dropped.
struct Children(Vec<(String, Child)>);

impl Drop for Children {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn(name: &str, args: &[String], log: &Path) -> anyhow::Result<(String, Child)> {
    let exe = std::env::current_exe().context("locating the veil binary")?;
    let err = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let child = Command::new(exe)
        .args(["mpc"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    Ok((name.to_string(), child))
}

fn bench(b: &BenchArgs) -> anyhow::Result<()> {
    let dataset = b.dataset.clone().unwrap_or_else(|| {
        if b.model.starts_with("postop") {
            "postop".into()
        } else if b.model.starts_with("wearable") {
            "activity".into()
        } else {
            "mnist".into()
        }
    });
    let id: veil_data::DatasetId = dataset.parse()?;
    let weights = b
        .weights
        .clone()
        .unwrap_or_else(|| super::train::default_weights(&b.model, &id.name()));
    if !weights.exists() {
        bail!(
            "{} not found: train it first (veil train --model {} --dataset {})",
            weights.display(),
            b.model,
            id.name()
        );
    }
    let (_, split) = super::load_dataset(&dataset, b.data.as_deref())?;
    let sizes = b.batches.sizes()?;
    let n: usize = sizes.iter().sum();
    if n > split.test.len() {
        bail!("--images {n}: the test split has {}", split.test.len());
    }
    let start = Instant::now();
    let report = match b.transport {
        TransportArg::Tls => bench_processes(b, &dataset, &weights, &sizes)?,
        TransportArg::Memory => {
            let (spec, tensors) = veil_mpc::model::read_weight_file(&weights)?;
            let (arch, lw) = veil_mpc::model::compile(&spec, &tensors)?;
            let per = split.test.sample_len();
            let bar = indicatif::ProgressBar::new(sizes.len() as u64);
            let r = veil_mpc::local::run_batches_in_memory(
                &arch,
                &lw,
                &split.test.samples[..n * per],
                &sizes,
                b.seed.unwrap_or_else(rand_seed),
                &mut |done, _| bar.set_position(done as u64),
            )?;
            bar.finish_and_clear();
            r
        }
    };
    let wall_s = start.elapsed().as_secs_f64();
    // Plaintext reference: the burn engine on the same samples.
    let model = Model::load(&weights).with_context(|| format!("loading {}", weights.display()))?;
    let per = split.test.sample_len();
    let plain = model
        .forward(model.input(split.test.samples[..n * per].to_vec())?)?
        .into_values()?;
    let (spec, tensors) = veil_mpc::model::read_weight_file(&weights)?;
    let (arch, lw) = veil_mpc::model::compile(&spec, &tensors)?;
    let classes = arch.output_len;
    let argmax = veil_metrics::argmax::<f64>;
    let (mut agree, mut correct_s, mut correct_p) = (0usize, 0usize, 0usize);
    let (mut max_err, mut min_slack, mut max_bound) = (0.0f64, f64::INFINITY, 0.0f64);
    for (i, got) in report.logits.iter().enumerate() {
        let want: Vec<f64> = plain[i * classes..(i + 1) * classes]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let (reference, bound) = veil_mpc::model::eval_with_bound(&arch, &lw, split.test.sample(i));
        let (s, p) = (argmax(got), argmax(&want));
        agree += usize::from(s == p);
        let label = split.test.labels[i] as usize;
        correct_s += usize::from(s == label);
        correct_p += usize::from(p == label);
        for k in 0..classes {
            max_err = max_err.max((got[k] - want[k]).abs());
            min_slack = min_slack.min(bound[k] - (got[k] - reference[k]).abs());
            max_bound = max_bound.max(bound[k]);
        }
    }
    let mut batch_ms: Vec<f64> = report
        .batches
        .iter()
        .filter(|x| x.samples == b.batches.batch)
        .map(|x| x.online_ms[0].max(x.online_ms[1]))
        .collect();
    let batch_med = median(&mut batch_ms);
    let online: u64 = report
        .batches
        .iter()
        .map(|x| x.online_bytes_sent[0] + x.online_bytes_sent[1])
        .sum();
    let offline: u64 = report.batches.iter().map(|x| x.offline_bytes).sum();
    let dealer_ms: f64 = report.batches.iter().map(|x| x.dealer_ms).sum();
    let out = BenchOutput {
        model: report.model.clone(),
        transport: b.transport.name().to_string(),
        dataset: id.name(),
        images: n,
        batch: b.batches.batch,
        latency_ms_median: batch_med / b.batches.batch as f64,
        batch_latency_ms_median: batch_med,
        throughput_images_per_s: b.batches.batch as f64 / (batch_med / 1e3),
        online_bytes: online as f64 / n as f64,
        offline_bytes: offline as f64 / n as f64,
        model_bytes: report.model_bytes,
        dealer_ms_per_image: dealer_ms / n as f64,
        rounds: report.batches.first().map_or(0, |x| x.rounds),
        agreement: agree as f64 / n as f64,
        max_abs_logit_error: max_err,
        min_bound_slack: min_slack,
        max_error_bound: max_bound,
        accuracy_secure: correct_s as f64 / n as f64,
        accuracy_plain: correct_p as f64 / n as f64,
        wall_s,
    };
    if b.json {
        return crate::print_json(&out);
    }
    crate::out(&format!(
        "{} on {} ({} samples, batch {}): online {:.2} ms/sample (batch {:.2} ms, {:.1} samples/s), online {:.1} KB/sample, offline {:.1} KB/sample, {} rounds; agreement {:.4}, max |logit error| {:.2e} (bound up to {:.2e}); accuracy secure {:.4} / plain {:.4}",
        out.model,
        out.dataset,
        out.images,
        out.batch,
        out.latency_ms_median,
        out.batch_latency_ms_median,
        out.throughput_images_per_s,
        out.online_bytes / 1e3,
        out.offline_bytes / 1e3,
        out.rounds,
        out.agreement,
        out.max_abs_logit_error,
        out.max_error_bound,
        out.accuracy_secure,
        out.accuracy_plain
    ))
}

/// A fresh dealer seed from the clock and the process id (the dealer process itself draws OS
/// entropy when no seed is given).
fn rand_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ (u64::from(std::process::id()) << 32)
}

/// Runs E1, E2, the sensor and the dealer as child processes on loopback and returns the
/// dealer's report.
fn bench_processes(
    b: &BenchArgs,
    dataset: &str,
    weights: &Path,
    sizes: &[usize],
) -> anyhow::Result<DealerReport> {
    let dir = std::env::temp_dir().join(format!("veil-mpc-bench-{}", std::process::id()));
    let keys = dir.join("keys");
    veil_tls::write_dir(&keys, &veil_tls::generate(&PARTIES)?)?;
    let (a0, a1) = (free_addr()?, free_addr()?);
    let servers = format!("{a0},{a1}");
    let keys_s = keys.display().to_string();
    let report_path = dir.join("dealer.json");
    let common = |extra: &[&str]| -> Vec<String> { extra.iter().map(|s| s.to_string()).collect() };
    let images = b.batches.images.to_string();
    let batch = b.batches.batch.to_string();
    let data_dir = veil_data::data_dir(b.data.as_deref())
        .ok()
        .map(|p| p.display().to_string());
    let mut children = Children(Vec::new());
    children.0.push(spawn(
        "E1",
        &common(&[
            "server",
            "--party",
            "0",
            "--listen",
            &a0.to_string(),
            "--keys",
            &keys_s,
        ]),
        &dir.join("e1.log"),
    )?);
    children.0.push(spawn(
        "E2",
        &common(&[
            "server",
            "--party",
            "1",
            "--listen",
            &a1.to_string(),
            "--peer",
            &a0.to_string(),
            "--keys",
            &keys_s,
        ]),
        &dir.join("e2.log"),
    )?);
    let mut sensor_args = common(&[
        "client",
        "--dataset",
        dataset,
        "--images",
        &images,
        "--batch",
        &batch,
        "--servers",
        &servers,
        "--keys",
        &keys_s,
    ]);
    if let Some(d) = &data_dir {
        sensor_args.extend(["--data".to_string(), d.clone()]);
    }
    children
        .0
        .push(spawn("sensor", &sensor_args, &dir.join("sensor.log"))?);
    let weights_s = weights.display().to_string();
    let report_s = report_path.display().to_string();
    let mut dealer_args = common(&[
        "dealer",
        "--weights",
        &weights_s,
        "--images",
        &images,
        "--batch",
        &batch,
        "--servers",
        &servers,
        "--keys",
        &keys_s,
        "--out",
        &report_s,
    ]);
    if let Some(s) = b.seed {
        dealer_args.extend(["--insecure-seed".to_string(), s.to_string()]);
    }
    children
        .0
        .push(spawn("dealer", &dealer_args, &dir.join("dealer.log"))?);
    // Wait for every process; the first failure ends the run with its log line. The dealer's
    // log carries its progress ("batches k/n").
    let bar = indicatif::ProgressBar::new(sizes.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "mpc bench [{elapsed_precise}] {bar:30} {pos}/{len} batches (eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let dealer_log = dir.join("dealer.log");
    let mut pending: Vec<usize> = (0..children.0.len()).collect();
    while !pending.is_empty() {
        if let Some(done) = std::fs::read_to_string(&dealer_log).ok().and_then(|t| {
            t.lines()
                .rev()
                .find_map(|l| l.strip_prefix("batches ")?.split('/').next()?.parse().ok())
        }) {
            bar.set_position(done);
        }
        let mut still = Vec::new();
        for i in pending {
            let (name, child) = &mut children.0[i];
            match child.try_wait()? {
                None => still.push(i),
                Some(status) if status.success() => {}
                Some(status) => {
                    let log =
                        std::fs::read_to_string(dir.join(format!("{}.log", name.to_lowercase())))
                            .unwrap_or_default();
                    bail!(
                        "{name} exited with {status}: {}",
                        log.lines().last().unwrap_or("no output")
                    );
                }
            }
        }
        pending = still;
        std::thread::sleep(Duration::from_millis(20));
    }
    bar.finish_and_clear();
    let report: DealerReport = serde_json::from_str(
        &std::fs::read_to_string(&report_path)
            .with_context(|| format!("reading {}", report_path.display()))?,
    )
    .context("dealer report")?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(report)
}
