//! `veil net` / `veil node` / `veil coordinator`: the distributed runtime (`veil-net`, issue
//! #8, first cut). `net keygen` writes the CA and certificates; `node` runs a source or helper;
//! `coordinator` waits for the fleet's nodes, places the model with the planner's greedy and
//! sends each node only its weight slices; `net bench` starts a coordinator and N+1 nodes as
//! processes on loopback, runs test images through the source and compares every result with
//! single-process inference.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use veil_model::Model;
use veil_net::cluster::{Coordinator, CoordinatorConfig, NodeConfig, Registered, infer, run_node};
use veil_net::deploy::Deployment;
use veil_plan::{Budgets, Device, DeviceClass, Fleet, ModelPlan, Strategy};

/// `veil net`.
#[derive(Debug, clap::Args)]
pub struct NetArgs {
    /// What to run.
    #[command(subcommand)]
    pub what: NetCommand,
}

/// `veil net` sub-commands.
#[derive(Debug, clap::Subcommand)]
pub enum NetCommand {
    /// Create a private CA and certificates for the coordinator, a client, `cam0` and helpers
    /// `h0..h{N-1}`.
    Keygen {
        /// Helpers.
        #[arg(long, default_value_t = 8)]
        helpers: usize,
        /// Output directory.
        #[arg(long, default_value = "runs/net-keys")]
        out: PathBuf,
    },
    /// Coordinator and nodes as processes on loopback; results checked against one process.
    Bench(BenchArgs),
}

/// `veil node`.
#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// Party name (its certificate's name).
    #[arg(long)]
    pub name: String,
    /// `source` or `helper`.
    #[arg(long)]
    pub role: String,
    /// Listen address.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Device class: rpi3, nexus5 or stm32h7.
    #[arg(long, default_value = "rpi3")]
    pub device: String,
    /// Coordinator address.
    #[arg(long)]
    pub coordinator: String,
    /// Key directory.
    #[arg(long, default_value = "runs/net-keys")]
    pub keys: PathBuf,
    /// Timeout of connections and calls (seconds).
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

/// `veil coordinator`.
#[derive(Debug, clap::Args)]
pub struct CoordinatorArgs {
    /// Fleet file: its helpers are the nodes to wait for; its budgets are used for planning.
    #[arg(long)]
    pub fleet: Option<PathBuf>,
    /// Helpers to wait for when no fleet file is given.
    #[arg(long, default_value_t = 6)]
    pub helpers: usize,
    /// Listen address.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Model (zoo name).
    #[arg(long, default_value = "lenet5")]
    pub model: String,
    /// Weight file.
    #[arg(long)]
    pub weights: PathBuf,
    /// Tolerated attack SSIM.
    #[arg(long, default_value_t = 0.8)]
    pub tau: f64,
    /// Key directory.
    #[arg(long, default_value = "runs/net-keys")]
    pub keys: PathBuf,
    /// Timeout of connections and calls (seconds).
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

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
    /// Test images.
    #[arg(long, default_value_t = 1000)]
    pub images: usize,
    /// Tolerated attack SSIM.
    #[arg(long, default_value_t = 0.8)]
    pub tau: f64,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Logs of `veil node` and `veil coordinator` (tracing, to stderr; `RUST_LOG`-style filtering
/// is not enabled: info and above).
fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
        .try_init();
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the I/O runtime")
}

/// Runs `veil net`.
pub fn run(args: NetArgs) -> anyhow::Result<()> {
    match args.what {
        NetCommand::Keygen { helpers, out } => {
            let names = party_names(helpers);
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            veil_tls::write_dir(&out, &veil_tls::generate(&refs)?)?;
            crate::out(&format!(
                "wrote ca.pem and certificates for {} in {}",
                names.join(", "),
                out.display()
            ))
        }
        NetCommand::Bench(b) => bench(&b),
    }
}

fn party_names(helpers: usize) -> Vec<String> {
    let mut v = vec!["coordinator".to_string(), "client".into(), "cam0".into()];
    v.extend((0..helpers).map(|i| format!("h{i}")));
    v
}

/// Runs `veil node`.
pub fn node(a: NodeArgs) -> anyhow::Result<()> {
    if !matches!(a.role.as_str(), "source" | "helper") {
        bail!("--role must be source or helper, got `{}`", a.role);
    }
    DeviceClass::by_name(&a.device)?;
    init_logs();
    let cfg = NodeConfig {
        name: a.name,
        role: a.role,
        device: a.device,
        listen: a.listen,
        coordinator: a.coordinator,
        keys: a.keys,
        timeout: Duration::from_secs(a.timeout.max(1)),
    };
    runtime()?.block_on(run_node(cfg))?;
    Ok(())
}

/// Runs `veil coordinator`: waits for the fleet, plans, assigns, then serves until killed.
pub fn coordinator(a: CoordinatorArgs) -> anyhow::Result<()> {
    let (expected, budgets) = match &a.fleet {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            let f = Fleet::from_toml_str(&text)?;
            (f.helpers.len(), f.budgets)
        }
        None => (a.helpers, Budgets::default()),
    };
    let spec = super::resolve_spec(&a.model)?;
    let model =
        Model::load(&a.weights).with_context(|| format!("loading {}", a.weights.display()))?;
    if model.spec().name != spec.name {
        bail!(
            "{} holds {}, not {}",
            a.weights.display(),
            model.spec().name,
            spec.name
        );
    }
    let params = stage_params(&model)?;
    let profile = veil_plan::privacy::builtin(&spec.name)
        .with_context(|| format!("no built-in privacy profile for {}", spec.name))?;
    let plan = ModelPlan::new(&spec, &profile, a.tau)?;
    let timeout = Duration::from_secs(a.timeout.max(1));
    init_logs();
    let mut accepted = party_names(expected);
    accepted.retain(|n| n != "client");
    runtime()?.block_on(async move {
        let coord = Coordinator::start(
            CoordinatorConfig {
                listen: a.listen,
                keys: a.keys.clone(),
                helpers: expected,
                timeout,
            },
            accepted,
        )?;
        let registered = coord.wait_for_fleet().await?;
        let helpers: Vec<Registered> = registered
            .iter()
            .filter(|r| r.role == "helper")
            .cloned()
            .collect();
        let source = registered
            .iter()
            .find(|r| r.role == "source")
            .cloned()
            .context("no source registered")?;
        let fleet = Fleet {
            helpers: helpers
                .iter()
                .map(|r| {
                    Ok(Device {
                        name: r.name.clone(),
                        class: DeviceClass::by_name(&r.device)?,
                    })
                })
                .collect::<Result<_, veil_plan::PlanError>>()?,
            sources: Vec::new(),
            budgets,
        };
        let report = veil_plan::single::plan_one(&fleet, plan, Strategy::DISTPRIVACY, None)?
            .context("the planner found no placement for this fleet and tau (request rejected)")?;
        let dep = Deployment::new(&spec, &report.owners, report.source)?;
        let mut nodes: Vec<(usize, Registered)> = helpers.into_iter().enumerate().collect();
        nodes.push((report.source, source.clone()));
        coord.assign(&dep, &nodes, &params).await?;
        crate::out(&serde_json::to_string(&serde_json::json!({
            "ready": true,
            "source": source.name,
            "source_addr": source.addr,
            "latency_s_planned": report.latency_s,
            "shared_bytes_planned": report.shared_bytes,
            "owners": report.owners,
        }))?)?;
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    })
}

/// Weight and bias of each conv or linear layer, in order.
fn stage_params(model: &Model) -> anyhow::Result<Vec<(Vec<f32>, Vec<f32>)>> {
    let tensors = model.named_tensors()?;
    let find = |n: &str| {
        tensors
            .iter()
            .find(|t| t.name == n)
            .map(|t| t.values.clone())
            .with_context(|| format!("missing tensor {n}"))
    };
    model
        .spec()
        .layers
        .iter()
        .filter(|l| {
            matches!(
                l.kind,
                veil_spec::LayerKind::Conv2d { .. } | veil_spec::LayerKind::Linear { .. }
            )
        })
        .map(|l| {
            Ok((
                find(&format!("{}.weight", l.name))?,
                find(&format!("{}.bias", l.name))?,
            ))
        })
        .collect()
}

struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

#[derive(Serialize)]
struct BenchOut {
    model: String,
    helpers: usize,
    images: usize,
    same_argmax: usize,
    max_abs_logit_diff: f64,
    latency_ms_p50: f64,
    latency_ms_p95: f64,
    latency_ms_max: f64,
    wall_s: f64,
}

fn bench(b: &BenchArgs) -> anyhow::Result<()> {
    let weights = b
        .weights
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("runs/{}-mnist/model.safetensors", b.model)));
    let model = Model::load(&weights)
        .with_context(|| format!("loading {} (train it first)", weights.display()))?;
    let (_, split) = super::load_dataset(&b.dataset, b.data.as_deref())?;
    let n = b.images.min(split.test.len());
    let dir = std::env::temp_dir().join(format!("veil-net-bench-{}", std::process::id()));
    let keys = dir.join("keys");
    let names = party_names(b.helpers);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    veil_tls::write_dir(&keys, &veil_tls::generate(&refs)?)?;
    let exe = std::env::current_exe()?;
    let caddr = free_addr()?;
    let keys_s = keys.display().to_string();
    let log = |name: &str| -> anyhow::Result<std::fs::File> {
        Ok(std::fs::File::create(dir.join(format!("{name}.log")))?)
    };
    let mut children = Children(Vec::new());
    let coord_out = dir.join("coordinator.out");
    children.0.push(
        Command::new(&exe)
            .args([
                "coordinator",
                "--listen",
                &caddr.to_string(),
                "--model",
                &b.model,
            ])
            .args([
                "--weights",
                &weights.display().to_string(),
                "--tau",
                &b.tau.to_string(),
            ])
            .args(["--helpers", &b.helpers.to_string(), "--keys", &keys_s])
            .stdout(std::fs::File::create(&coord_out)?)
            .stderr(log("coordinator")?)
            .spawn()
            .context("starting the coordinator")?,
    );
    let mut nodes: Vec<(String, &str)> = vec![("cam0".into(), "source")];
    nodes.extend((0..b.helpers).map(|i| (format!("h{i}"), "helper")));
    for (name, role) in &nodes {
        children.0.push(
            Command::new(&exe)
                .args([
                    "node",
                    "--name",
                    name,
                    "--role",
                    role,
                    "--listen",
                    &free_addr()?.to_string(),
                ])
                .args(["--coordinator", &caddr.to_string(), "--keys", &keys_s])
                .stdout(Stdio::null())
                .stderr(log(name)?)
                .spawn()
                .with_context(|| format!("starting node {name}"))?,
        );
    }
    // Wait for the coordinator's ready line.
    let start = Instant::now();
    let ready: serde_json::Value = loop {
        if let Some(v) = std::fs::read_to_string(&coord_out)
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| serde_json::from_str(l).ok()))
        {
            break v;
        }
        if let Some(status) = children.0[0].try_wait()? {
            let err = std::fs::read_to_string(dir.join("coordinator.log")).unwrap_or_default();
            bail!(
                "coordinator exited with {status}: {}",
                err.lines().last().unwrap_or("")
            );
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("the coordinator was not ready within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let source_addr = ready["source_addr"]
        .as_str()
        .context("source address")?
        .to_string();
    let per = split.test.sample_len();
    let want = model
        .forward(model.input(split.test.samples[..n * per].to_vec())?)?
        .into_values()?;
    let classes = want.len() / n.max(1);
    let mut lat = Vec::with_capacity(n);
    let mut same = 0usize;
    let mut max_diff = 0.0f64;
    let bar = indicatif::ProgressBar::new(n as u64);
    let rt = runtime()?;
    for i in 0..n {
        let t = Instant::now();
        let got = rt.block_on(infer(
            &keys,
            "client",
            "cam0",
            &source_addr,
            i as u64,
            split.test.sample(i).to_vec(),
            Duration::from_secs(30),
        ))?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        let w = &want[i * classes..(i + 1) * classes];
        let am = |v: &[f32]| {
            v.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(k, _)| k)
        };
        same += usize::from(am(&got) == am(w));
        for (g, x) in got.iter().zip(w) {
            max_diff = max_diff.max(f64::from((g - x).abs()));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let wall_s = start.elapsed().as_secs_f64();
    drop(children);
    let _ = std::fs::remove_dir_all(&dir);
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    let out = BenchOut {
        model: b.model.clone(),
        helpers: b.helpers,
        images: n,
        same_argmax: same,
        max_abs_logit_diff: max_diff,
        latency_ms_p50: pct(0.5),
        latency_ms_p95: pct(0.95),
        latency_ms_max: pct(1.0),
        wall_s,
    };
    if b.json {
        return crate::print_json(&out);
    }
    crate::out(&format!(
        "{} on {} helpers over gRPC + mutual TLS: {}/{} same argmax as one process, max |logit diff| {:.2e}; latency p50 {:.2} ms, p95 {:.2} ms",
        out.model,
        out.helpers,
        out.same_argmax,
        out.images,
        out.max_abs_logit_diff,
        out.latency_ms_p50,
        out.latency_ms_p95
    ))
}
