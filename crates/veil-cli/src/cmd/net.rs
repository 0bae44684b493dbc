//! `veil net` / `veil node` / `veil coordinator`: the distributed runtime (`veil-net`).
//! `net keygen` writes the CA and certificates; `node` runs a source or helper; `coordinator`
//! waits for the fleet's nodes, places the model with the planner's greedy, sends each node only
//! its weight slices and re-plans around dead helpers, printing one JSON line per plan;
//! `net bench` and `net load` (in `net_load`) drive a fleet with requests; `net audit` (in
//! `net_audit`) attacks what each helper of a running deployment observed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use veil_net::bench::party_names;
use veil_net::cluster::{
    Coordinator, CoordinatorConfig, NodeConfig, NodeRole, PartialSums, run_node,
};
use veil_net::drive::runtime;
use veil_net::planner::Planner;
use veil_plan::{Budgets, DeviceClass, Fleet};

pub use super::net_load::{BenchArgs, LoadArgs};

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
    /// Coordinator and nodes as processes on loopback, driven by the load generator; results
    /// checked against one process; optionally a helper is killed or stalled mid-run.
    Bench(BenchArgs),
    /// Drive a running fleet with Poisson requests: latency percentiles, rejections by reason,
    /// bytes per link, memory of every node over time.
    Load(LoadArgs),
    /// Run a deployment for real with every helper recording what it observes, attack each
    /// helper's views with the spear and check its SSIM against tau.
    Audit(super::net_audit::AuditArgs),
}

/// `veil node`.
#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// Party name (its certificate's name).
    #[arg(long)]
    pub name: String,
    /// The node's role (the coordinator checks it against the certificate's name).
    #[arg(long, value_enum)]
    pub role: NodeRole,
    /// Listen address (port 0: a free port, registered with the coordinator as bound).
    #[arg(long)]
    pub listen: SocketAddr,
    /// Device class: rpi3, nexus5, stm32h7, or custom (then give --e, --memory-mb and
    /// --rate-mbps).
    #[arg(long, default_value = "rpi3", ignore_case = true, value_parser = DeviceClass::FLAG_NAMES)]
    pub device: String,
    /// Custom device: 10^6 multiplications per second.
    #[arg(long)]
    pub e: Option<f64>,
    /// Custom device: memory in MiB.
    #[arg(long)]
    pub memory_mb: Option<u64>,
    /// Custom device: link rate in Mb/s.
    #[arg(long)]
    pub rate_mbps: Option<f64>,
    /// Coordinator address.
    #[arg(long)]
    pub coordinator: String,
    /// Key directory.
    #[arg(long, default_value = "runs/net-keys")]
    pub keys: PathBuf,
    /// Timeout of connections and calls (seconds).
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// Heartbeat interval (milliseconds).
    #[arg(long, default_value_t = 250)]
    pub heartbeat_ms: u64,
    /// Source: time an attempt may take before it is retried (milliseconds).
    #[arg(long, default_value_t = 3000)]
    pub attempt_timeout_ms: u64,
    /// Source: attempts per request before it is rejected.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: u32,
    /// Source: requests admitted at once; more are rejected (back-pressure).
    #[arg(long, default_value_t = 256, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_inflight: usize,
    /// Make every computation last as long as on the device class (multiplications / e).
    #[arg(long)]
    pub emulate: bool,
    /// Record everything this node receives (and every sum it completes) in this file, for
    /// an audit (`veil net audit` reads it).
    #[arg(long, value_name = "FILE")]
    pub record_views: Option<PathBuf>,
}

/// `veil coordinator`.
#[derive(Debug, clap::Args)]
pub struct CoordinatorArgs {
    /// Fleet file: the number of its helpers is the number to wait for, its budgets are used
    /// for planning (the device classes come from the nodes' registrations).
    #[arg(long)]
    pub fleet: Option<PathBuf>,
    /// Helpers to wait for when no fleet file is given.
    #[arg(long, default_value_t = veil_net::cluster::coordinator::DEFAULT_HELPERS)]
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
    /// Tolerated attack SSIM (default: the lowest at which LeNet-5 can be channel-partitioned
    /// at all; one pool1 map leaks 0.926).
    #[arg(long, default_value_t = veil_net::cluster::coordinator::DEFAULT_TAU)]
    pub tau: f64,
    /// Key directory.
    #[arg(long, default_value = "runs/net-keys")]
    pub keys: PathBuf,
    /// Timeout of connections and calls, and of waiting for the fleet (seconds).
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// Liveness check interval (milliseconds).
    #[arg(long, default_value_t = 250)]
    pub heartbeat_ms: u64,
    /// Silence after which a node is dead and the model is re-planned (milliseconds).
    #[arg(long, default_value_t = 1000)]
    pub dead_after_ms: u64,
    /// Per-hop overhead added to the cost model's latency in the plan lines (milliseconds;
    /// default measured on the reference test bed, see docs/BENCHMARKS.md).
    #[arg(long, default_value_t = veil_net::cluster::coordinator::DEFAULT_HOP_S * 1e3)]
    pub hop_ms: f64,
    /// How partial sums travel between the devices of a channel-partitioned stage: masked
    /// (fixed point under zero-sum masks, fresh pair keys every plan; the finisher of a map
    /// learns only the complete sum) or plain (every contribution visible, for comparison).
    #[arg(long, value_enum, default_value_t = PartialSums::Masked)]
    pub partial_sums: PartialSums,
    /// Privacy profile (`veil profile` JSON) for models without a built-in one.
    #[arg(long, value_name = "JSON")]
    pub profile: Option<std::path::PathBuf>,
    /// The planner's privacy rule (default: `sound` with masked partial sums, `sound-plain`
    /// with plain ones); `paper` reproduces DistPrivacy's constraint, for comparison only.
    #[arg(long, value_enum)]
    pub privacy_rule: Option<veil_plan::PrivacyRule>,
}

/// Logs of `veil node` and `veil coordinator` (tracing, to stderr; info and above).
fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
        .try_init();
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
        NetCommand::Bench(b) => super::net_load::bench(&b),
        NetCommand::Load(l) => super::net_load::load(&l),
        NetCommand::Audit(a) => super::net_audit::audit(&a),
    }
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms.max(1))
}

/// Runs `veil node`.
pub fn node(a: NodeArgs) -> anyhow::Result<()> {
    let class = DeviceClass::from_flags(&a.device, a.e, a.memory_mb, a.rate_mbps)?;
    init_logs();
    let mut cfg = NodeConfig::new(
        &a.name,
        a.role.name(),
        class,
        a.listen,
        &a.coordinator,
        &a.keys,
    );
    cfg.timeout = Duration::from_secs(a.timeout.max(1));
    cfg.heartbeat = millis(a.heartbeat_ms);
    cfg.attempt_timeout = millis(a.attempt_timeout_ms);
    cfg.max_attempts = a.max_attempts;
    cfg.max_inflight = a.max_inflight;
    cfg.emulate_device = a.emulate;
    cfg.record_views = a.record_views;
    runtime()?.block_on(run_node(cfg))?;
    Ok(())
}

/// Runs `veil coordinator`: waits for the fleet, plans, assigns, re-plans when it changes;
/// one JSON line per plan on stdout.
pub fn coordinator(a: CoordinatorArgs) -> anyhow::Result<()> {
    let (expected, budgets) = match &a.fleet {
        Some(p) => {
            let f = Fleet::read(p)?;
            (f.helpers.len(), f.budgets)
        }
        None => (a.helpers, Budgets::default()),
    };
    let spec = super::resolve_spec(&a.model)?;
    let profile = match &a.profile {
        Some(p) => Some(veil_plan::experiment::read_profile(p)?),
        None => None,
    };
    let planner = Planner::from_weight_file(spec, &a.weights, a.tau, budgets, profile)?
        .under_rule(a.privacy_rule.unwrap_or(a.partial_sums.privacy_rule()))?
        .with_partial_sums(a.partial_sums);
    let mut cfg = CoordinatorConfig::new(a.listen, &a.keys, expected);
    cfg.timeout = Duration::from_secs(a.timeout.max(1));
    cfg.heartbeat = millis(a.heartbeat_ms);
    cfg.dead_after = millis(a.dead_after_ms);
    if !(a.hop_ms.is_finite() && a.hop_ms >= 0.0) {
        bail!("--hop-ms must be a non-negative number, got {}", a.hop_ms);
    }
    cfg.hop_s = a.hop_ms * 1e-3;
    cfg.partial_sums = a.partial_sums;
    init_logs();
    // One JSON line per plan epoch: `veil net bench` waits for the first.
    Coordinator::serve_fleet(cfg, expected, &planner, |event| {
        if let Ok(line) = serde_json::to_string(event) {
            let _ = crate::out(&line);
        }
    })?;
    Ok(())
}
