//! `veil mpc`: secure two-server inference (`veil-mpc`). `keygen` writes the CA and the four
//! party certificates; `server`, `dealer` and `client` run one party each over TCP with
//! mutual TLS; `bench` starts all four as separate processes on loopback, checks the revealed
//! logits against plaintext inference (the burn engine) and reports latency, traffic, rounds
//! and agreement.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use veil_model::Model;
use veil_mpc::bench::{BenchRun, ProcessBench, Transport, default_dataset};
use veil_mpc::roles::{
    DealerConfig, PARTIES, SensorConfig, ServerConfig, run_dealer, run_sensor, run_server,
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
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=1))]
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
        /// Report progress as JSON `progress` events on stdout (for a parent process such as
        /// `veil mpc bench`) instead of lines on stderr.
        #[arg(long, requires = "out")]
        events: bool,
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
        Ok(veil_mpc::bench::batch_sizes(self.images, self.batch)?)
    }
}

/// `veil mpc bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Zoo model (secureml_a, chameleon, minionn, lenet_large, postop_a/b, wearable_c/d), spec
    /// file or ONNX file.
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
    /// Where the parties run.
    #[arg(long, value_enum, default_value_t = Transport::Tls)]
    pub transport: Transport,
    /// Keep the four processes' logs (`E1.log`, `E2.log`, `sensor.log`, `dealer.log`) in
    /// this directory (TLS transport; by default they are deleted with the run's keys).
    #[arg(long, value_name = "DIR")]
    pub keep_logs: Option<PathBuf>,
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
            let party = Party::from_index(usize::from(party));
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
            events,
            net,
        } => {
            let report = run_dealer(
                &DealerConfig {
                    weights,
                    servers: two_servers(&net)?,
                    keys: net.keys.clone(),
                    batches: batches.sizes()?,
                    insecure_seed: seed,
                    timeout: timeout(&net),
                },
                &mut |done, total| veil_harness::report_progress(events, "batches", done, total),
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

/// `veil mpc bench`.
fn bench(b: &BenchArgs) -> anyhow::Result<()> {
    let dataset = (b.dataset.as_deref()).unwrap_or(default_dataset(&b.model));
    let (id, split) = super::load_dataset(dataset, b.data.as_deref())?;
    let weights = match &b.weights {
        Some(w) => w.clone(),
        None => super::default_weights(&b.model, &id)?,
    };
    if !weights.is_file() {
        let train = format!("veil train --model {} --dataset {}", b.model, id.name());
        bail!("{} not found: train it first ({train})", weights.display());
    }
    let model = Model::load(&weights).with_context(|| format!("loading {}", weights.display()))?;
    let sizes = b.batches.sizes()?;
    let n: usize = sizes.iter().sum();
    if n > split.test.len() {
        bail!("--images {n}: the test split has {}", split.test.len());
    }
    let inputs = &split.test.samples[..n * split.test.sample_len()];
    let processes = match b.transport {
        Transport::Memory => None,
        Transport::Tls => Some(ProcessBench {
            program: std::env::current_exe().context("locating the veil binary")?,
            weights: weights.clone(),
            dataset: dataset.to_string(),
            data: veil_data::data_dir(b.data.as_deref()).ok(),
            images: n,
            batch: b.batches.batch,
            insecure_seed: b.seed,
            keep_logs: b.keep_logs.clone(),
        }),
    };
    let run = BenchRun {
        weights: &weights,
        dataset: &id.name(),
        inputs,
        labels: &split.test.labels[..n],
        plain_logits: &model.logits(inputs)?,
        sizes: &sizes,
        batch: b.batches.batch,
        insecure_seed: b.seed,
        processes,
    };
    let bar = crate::progress_bar(sizes.len(), "mpc bench", "batches");
    let summary = veil_mpc::bench::run(&run, &mut |done, _| bar.set_position(done))?;
    bar.finish_and_clear();
    crate::report(&summary, |x| x.summary())
}
