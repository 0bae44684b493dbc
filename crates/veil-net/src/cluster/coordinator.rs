//! The coordinator: registrations and heartbeats, planning, assignment, re-planning.
//!
//! Nodes register (party name from the certificate) and then heartbeat. [`Coordinator::run`]
//! waits for the fleet, places the model on the live helpers, and sends every live node its
//! assignment under a new epoch (helpers first, the source last, so that the source's restarted
//! attempts meet helpers that already run the new plan). A node silent for
//! [`CoordinatorConfig::dead_after`] is dead; a dead node that heartbeats again is live; either
//! change, or a failed assignment, starts a new plan. When no placement exists, every live node
//! is suspended with the reason (the source rejects requests with it) until the fleet changes.
//!
//! Key items: [`Coordinator`], [`CoordinatorConfig`], [`Registered`], [`PlanEvent`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use serde::Serialize;
use tonic::transport::Server;
use tonic::{Request, Response, Status};

use super::{CLIENT, COORDINATOR, call, status};

use crate::NetError;
use crate::grpc::service::veil_server::{Veil, VeilServer};
use crate::grpc::{Frame, caller_name, client};
use crate::incoming::TlsIncoming;
use crate::planner::Planner;
use crate::wire::{Assignment, Envelope};

/// The coordinator's settings.
#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    /// Listen address.
    pub listen: std::net::SocketAddr,
    /// Key directory.
    pub keys: std::path::PathBuf,
    /// Helpers to wait for before the first plan.
    pub helpers: usize,
    /// Timeout of connections and calls, and of waiting for the fleet.
    pub timeout: Duration,
    /// How often liveness is checked.
    pub heartbeat: Duration,
    /// Silence after which a node is dead.
    pub dead_after: Duration,
    /// Fixed cost of one message hop that the paper's cost model leaves out (TLS, HTTP/2,
    /// decoding, scheduling), used for [`PlanEvent::latency_s_calibrated`].
    pub hop_s: f64,
    /// How partial sums travel between the devices of a channel-partitioned stage.
    pub partial_sums: PartialSums,
}

/// How partial sums travel ([`crate::mask`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum PartialSums {
    /// Fixed point in `Z_2^64` under zero-sum masks: a map's finisher learns only the
    /// complete sum. Fresh pair keys every plan epoch.
    #[default]
    Masked,
    /// Plain `f32` partial sums: the finisher sees every device's contribution (the
    /// paper's protocol, kept for comparison).
    Plain,
}

impl PartialSums {
    /// The name on the command line (`--partial-sums`).
    pub fn name(self) -> &'static str {
        match self {
            PartialSums::Masked => "masked",
            PartialSums::Plain => "plain",
        }
    }

    /// The planner's privacy rule for what helpers observe in this mode: with plain partial
    /// sums a map's finisher sees every contribution ([`veil_plan::PrivacyRule::SoundPlain`]).
    pub fn privacy_rule(self) -> veil_plan::PrivacyRule {
        match self {
            PartialSums::Masked => veil_plan::PrivacyRule::Sound,
            PartialSums::Plain => veil_plan::PrivacyRule::SoundPlain,
        }
    }
}

impl CoordinatorConfig {
    /// Settings with the defaults: 30 s timeout, checks every 250 ms, dead after 1 s.
    pub fn new(listen: std::net::SocketAddr, keys: &std::path::Path, helpers: usize) -> Self {
        CoordinatorConfig {
            listen,
            keys: keys.to_path_buf(),
            helpers,
            timeout: Duration::from_secs(30),
            heartbeat: Duration::from_millis(250),
            dead_after: Duration::from_secs(1),
            hop_s: DEFAULT_HOP_S,
            partial_sums: PartialSums::default(),
        }
    }
}

/// Per-hop overhead measured on the reference test bed (docs/BENCHMARKS.md, "Distributed
/// runtime": 2-core VM, one network namespace per node, tc tbf at 72.2 Mb/s, gRPC with mutual
/// TLS, lenet5 on 6 emulated RPi3 helpers: (4.03 ms measured - 1.27 ms modelled) / 4 hops).
pub const DEFAULT_HOP_S: f64 = 0.69e-3;

/// The runtime commands' default tau: the lowest of the profile's taus at which LeNet-5 (the
/// default model) can be channel-partitioned at all. One pool1 map leaks SSIM 0.926 (veil's
/// built-in profile, `veil profile --every-map`), so below that no helper may hold a conv2
/// input; at 0.95 each of six helpers holds one and a seventh runs fc1-fc3.
pub const DEFAULT_TAU: f64 = 0.95;

/// The runtime commands' default number of helpers: the fewest that place LeNet-5 at
/// [`DEFAULT_TAU`].
pub const DEFAULT_HELPERS: usize = 7;

/// A registered node.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Registered {
    /// Party name.
    pub name: String,
    /// Role.
    pub role: String,
    /// Device profile it advertised.
    pub class: veil_plan::DeviceClass,
    /// Address.
    pub addr: String,
}

struct Member {
    reg: Registered,
    last_seen: Instant,
    alive: bool,
}

#[derive(Default)]
struct Members {
    list: Vec<Member>,
    /// Set when a node joined, died or came back since the last plan.
    changed: bool,
}

impl Members {
    fn live(&self, role: &str) -> Vec<Registered> {
        self.list
            .iter()
            .filter(|m| m.alive && m.reg.role == role)
            .map(|m| m.reg.clone())
            .collect()
    }

    fn dead(&self) -> Vec<String> {
        self.list
            .iter()
            .filter(|m| !m.alive)
            .map(|m| m.reg.name.clone())
            .collect()
    }

    fn mark_dead(&mut self, name: &str) {
        for m in self.list.iter_mut().filter(|m| m.reg.name == name) {
            m.alive = false;
            self.changed = true;
        }
    }
}

#[derive(Clone)]
struct CoordinatorService {
    members: Arc<Mutex<Members>>,
    accepted: Arc<Vec<String>>,
}

#[tonic::async_trait]
impl Veil for CoordinatorService {
    async fn call(&self, req: Request<Frame>) -> Result<Response<Frame>, Status> {
        let names: Vec<&str> = self.accepted.iter().map(String::as_str).collect();
        let Some(caller) = caller_name(&req, &names).map(str::to_string) else {
            tracing::warn!(peer = ?req.remote_addr(), "refused a caller whose certificate is not accepted");
            return Err(Status::permission_denied("certificate not accepted"));
        };
        let env = Envelope::decode(&req.into_inner().0).map_err(|e| {
            tracing::warn!(caller = %caller, "refused a malformed frame: {e}");
            status(e)
        })?;
        let mut members = self
            .members
            .lock()
            .map_err(|_| Status::internal("poisoned"))?;
        match env {
            Envelope::Register { role, class, addr } => {
                let Some(claimed) = super::NodeRole::from_name(&role) else {
                    return Err(status(format!("role `{role}`")));
                };
                if super::NodeRole::of_party(&caller) != Some(claimed) {
                    tracing::warn!(caller = %caller, role = %role, "refused a registration whose role the certificate does not grant");
                    return Err(Status::permission_denied(format!(
                        "{caller}'s certificate does not grant the role `{role}`"
                    )));
                }
                let sane = |v: f64| v.is_finite() && v > 0.0;
                if !sane(class.macs_per_s) || !sane(class.rate_bps) || class.memory_bytes == 0 {
                    return Err(status(format!("device profile {class:?}")));
                }
                tracing::info!(name = %caller, role = %role, device = %class.name, addr = %addr, "registered");
                let reg = Registered {
                    name: caller.clone(),
                    role,
                    class,
                    addr,
                };
                members.list.retain(|m| m.reg.name != caller);
                members.list.push(Member {
                    reg,
                    last_seen: Instant::now(),
                    alive: true,
                });
                members.changed = true;
            }
            Envelope::Heartbeat { .. } => {
                let Some(m) = members.list.iter_mut().find(|m| m.reg.name == caller) else {
                    return Err(Status::failed_precondition("heartbeat before registration"));
                };
                m.last_seen = Instant::now();
                if !m.alive {
                    m.alive = true;
                    members.changed = true;
                    tracing::info!(name = %caller, "node is back");
                }
            }
            other => return Err(status(format!("unexpected {other:?}"))),
        }
        Ok(Response::new(Frame(Envelope::Ack.encode())))
    }
}

/// A plan the coordinator put in place (or could not).
#[derive(Clone, Debug, Serialize)]
pub struct PlanEvent {
    /// The plan's epoch.
    pub epoch: u64,
    /// Whether a placement was found and assigned.
    pub planned: bool,
    /// Why not, when not.
    pub reason: Option<String>,
    /// Live helpers (planner devices `0..`).
    pub helpers: Vec<String>,
    /// Nodes considered dead.
    pub dead: Vec<String>,
    /// The source's party name and address.
    pub source: String,
    /// The source's address (where clients send requests).
    pub source_addr: String,
    /// Latency the cost model predicts for one request (seconds; eqs. 5, 7).
    pub latency_s_planned: Option<f64>,
    /// Bytes between devices the cost model predicts.
    pub shared_bytes_planned: Option<f64>,
    /// Message hops on the request's critical path ([`crate::deploy::Deployment::hops`]).
    pub hops: Option<usize>,
    /// The cost model with the measured per-hop overhead of the runtime added
    /// (`latency_s_planned + hops * hop_s`, see [`CoordinatorConfig::hop_s`]).
    pub latency_s_calibrated: Option<f64>,
    /// `owners[s][p]`: device of segment `p` of stage `s`.
    pub owners: Vec<Vec<usize>>,
}

/// The coordinator.
pub struct Coordinator {
    members: Arc<Mutex<Members>>,
    cfg: CoordinatorConfig,
}

impl Coordinator {
    /// `veil coordinator`: on its own runtime, accepts the source `cam0` and `helpers`
    /// helpers (`h0..`), waits for them, plans with `planner` and re-plans as the fleet
    /// changes, handing every plan event to `on_plan`; returns only on failure.
    pub fn serve_fleet(
        cfg: CoordinatorConfig,
        helpers: usize,
        planner: &Planner,
        on_plan: impl FnMut(&PlanEvent),
    ) -> Result<(), NetError> {
        let mut accepted = crate::bench::party_names(helpers);
        accepted.retain(|n| n != CLIENT);
        crate::drive::runtime()?.block_on(async move {
            let coordinator = Coordinator::start(cfg, accepted)?;
            coordinator.run(planner, on_plan).await
        })
    }

    /// Starts serving registrations and heartbeats from the parties named `accepted`.
    pub fn start(cfg: CoordinatorConfig, accepted: Vec<String>) -> Result<Self, NetError> {
        let members = Arc::new(Mutex::new(Members::default()));
        let svc = CoordinatorService {
            members: members.clone(),
            accepted: Arc::new(accepted),
        };
        let incoming = TlsIncoming::bind(cfg.listen, &cfg.keys, COORDINATOR)?.start();
        let server = Server::builder()
            .timeout(cfg.timeout)
            .add_service(VeilServer::new(svc))
            .serve_with_incoming(incoming);
        tokio::spawn(async move {
            // Accepting never stops on its own (see `incoming`): an end here is a bug to see.
            if let Err(e) = server.await {
                tracing::error!("the coordinator's server ended: {e}");
            }
        });
        Ok(Coordinator { members, cfg })
    }

    fn members(&self) -> Result<std::sync::MutexGuard<'_, Members>, NetError> {
        self.members
            .lock()
            .map_err(|_| NetError::Runtime("coordinator state poisoned".into()))
    }

    /// Nodes registered so far (live or not).
    pub fn registered(&self) -> Result<Vec<Registered>, NetError> {
        Ok(self.members()?.list.iter().map(|m| m.reg.clone()).collect())
    }

    /// Waits until a source and [`CoordinatorConfig::helpers`] helpers registered (or the
    /// timeout).
    pub async fn wait_for_fleet(&self) -> Result<Vec<Registered>, NetError> {
        let deadline = Instant::now() + self.cfg.timeout;
        loop {
            let (sources, helpers) = {
                let m = self.members()?;
                (m.live("source").len(), m.live("helper").len())
            };
            if sources >= 1 && helpers >= self.cfg.helpers {
                return self.registered();
            }
            if Instant::now() > deadline {
                return Err(NetError::Deploy(format!(
                    "{helpers} helpers and {sources} sources registered within {:?}",
                    self.cfg.timeout
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the fleet, then plans and re-plans for as long as the process runs; every
    /// plan is reported to `on_plan`. Returns only on an error that planning cannot survive
    /// (the model does not fit the planner at all).
    pub async fn run(
        &self,
        planner: &Planner,
        mut on_plan: impl FnMut(&PlanEvent),
    ) -> Result<(), NetError> {
        self.wait_for_fleet().await?;
        let mut epoch = 0u64;
        loop {
            let (helpers, sources, dead) = {
                let mut m = self.members()?;
                m.changed = false;
                (m.live("helper"), m.live("source"), m.dead())
            };
            if let Some(source) = sources.first() {
                epoch += 1;
                let event = self
                    .plan_once(planner, epoch, &helpers, source, dead)
                    .await?;
                on_plan(&event);
            } else {
                tracing::warn!("no live source: waiting");
            }
            self.watch().await?;
        }
    }

    /// Waits until the fleet changes: a node joins, comes back, or stays silent too long.
    async fn watch(&self) -> Result<(), NetError> {
        loop {
            {
                let mut m = self.members()?;
                let dead_after = self.cfg.dead_after;
                let mut died = Vec::new();
                for x in m.list.iter_mut() {
                    if x.alive && x.last_seen.elapsed() > dead_after {
                        x.alive = false;
                        died.push(x.reg.name.clone());
                    }
                }
                for name in died {
                    tracing::warn!(name = %name, "no heartbeat: node is dead");
                    m.changed = true;
                }
                if m.changed {
                    return Ok(());
                }
            }
            tokio::time::sleep(self.cfg.heartbeat).await;
        }
    }

    /// Places the model on `helpers` and assigns it, or suspends the nodes when nothing fits.
    async fn plan_once(
        &self,
        planner: &Planner,
        epoch: u64,
        helpers: &[Registered],
        source: &Registered,
        dead: Vec<String>,
    ) -> Result<PlanEvent, NetError> {
        let mut event = PlanEvent {
            epoch,
            planned: false,
            reason: None,
            helpers: helpers.iter().map(|h| h.name.clone()).collect(),
            dead,
            source: source.name.clone(),
            source_addr: source.addr.clone(),
            latency_s_planned: None,
            shared_bytes_planned: None,
            hops: None,
            latency_s_calibrated: None,
            owners: Vec::new(),
        };
        let mut nodes: Vec<(usize, Registered)> = helpers.iter().cloned().enumerate().collect();
        match planner.place(helpers)? {
            Some((deployment, report)) => {
                nodes.push((report.source, source.clone()));
                tracing::info!(
                    epoch,
                    helpers = helpers.len(),
                    latency_ms = report.latency_s * 1e3,
                    "planned"
                );
                let peers: Vec<(usize, String, String)> = nodes
                    .iter()
                    .map(|(d, r)| (*d, r.name.clone(), r.addr.clone()))
                    .collect();
                let mut keys = match self.cfg.partial_sums {
                    PartialSums::Masked => {
                        let devices: Vec<usize> = nodes.iter().map(|(d, _)| *d).collect();
                        // Fresh keys from the OS CSPRNG for every epoch.
                        let mut rng = rand::rngs::StdRng::from_os_rng();
                        crate::mask::deal(&devices, &mut rng)
                    }
                    PartialSums::Plain => Default::default(),
                };
                for (d, r) in &nodes {
                    let a = Assignment {
                        epoch,
                        device: *d,
                        deployment: deployment.clone(),
                        work: deployment.work_of(*d, planner.params()),
                        peers: peers.clone(),
                        mask: keys.remove(d),
                    };
                    if let Err(e) = self.send(r, &Envelope::Assign(Box::new(a))).await {
                        tracing::warn!(name = %r.name, error = %e, "assignment failed: re-planning");
                        self.members()?.mark_dead(&r.name);
                        event.reason = Some(format!("assigning {} failed: {e}", r.name));
                        return Ok(event);
                    }
                }
                event.planned = true;
                event.latency_s_planned = Some(report.latency_s);
                event.shared_bytes_planned = Some(report.shared_bytes);
                event.hops = Some(deployment.hops());
                event.latency_s_calibrated =
                    Some(report.latency_s + deployment.hops() as f64 * self.cfg.hop_s);
                event.owners = report.owners;
            }
            None => {
                let mut reason = format!(
                    "no placement of {} satisfies the constraints on {} live helpers",
                    planner.spec().name,
                    helpers.len()
                );
                if let Some(stage) = planner.blocked_stage() {
                    reason.push_str(&format!(
                        ": no helper may hold even one input map of {stage} at this tau, on \
                         any fleet"
                    ));
                }
                tracing::warn!(epoch, reason = %reason, "suspending the fleet");
                nodes.push((helpers.len(), source.clone()));
                for (_, r) in &nodes {
                    let s = Envelope::Suspend {
                        epoch,
                        reason: reason.clone(),
                    };
                    if let Err(e) = self.send(r, &s).await {
                        tracing::warn!(name = %r.name, error = %e, "suspending failed");
                    }
                }
                event.reason = Some(reason);
            }
        }
        Ok(event)
    }

    async fn send(&self, r: &Registered, e: &Envelope) -> Result<(), NetError> {
        let mut c = client(
            &self.cfg.keys,
            COORDINATOR,
            &r.name,
            &r.addr,
            self.cfg.timeout.min(self.cfg.dead_after * 4),
        )
        .await?;
        match call(&mut c, e).await? {
            Envelope::Ack => Ok(()),
            other => Err(NetError::Unexpected {
                peer: r.name.clone(),
                answer: format!("{other:?}"),
            }),
        }
    }
}
