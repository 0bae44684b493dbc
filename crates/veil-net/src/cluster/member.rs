//! A node of the runtime as a gRPC server: registration and heartbeats, assignments under a
//! plan epoch, deliveries between nodes, and (at the source) requests from clients.
//!
//! Requests at the source: a client's request is admitted while fewer than
//! [`NodeConfig::max_inflight`] are pending (otherwise it is rejected at once: the runtime's
//! back-pressure, so the work inside the fleet stays bounded), and runs as an *attempt* with an
//! id of the source's own. An attempt that brings no answer within
//! [`NodeConfig::attempt_timeout`] is restarted under a fresh id; a new assignment restarts
//! every pending request under the new plan; after [`NodeConfig::max_attempts`] attempts, or
//! when the coordinator suspends the fleet, the request is rejected with the reason. The
//! answer of an attempt that is no longer current is dropped, so each request ends exactly once.
//! Deliveries carry the epoch of their plan: a node refuses those of another epoch, so an
//! old attempt's partial sums never mix with a new plan's.
//!
//! Key items: [`NodeConfig`], [`run_node`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status};

use super::{CLIENT, COORDINATOR, LinkStats, NodeStats, Outcome, call, rss_kib, status};
use crate::NetError;
use crate::grpc::service::veil_client::VeilClient;
use crate::grpc::service::veil_server::{Veil, VeilServer};
use crate::grpc::{Frame, MAX_FRAME, caller_name, client};
use crate::incoming::{Incoming, TlsIncoming};
use crate::node::{Completed, Message, Node, Outbox};
use crate::views::ViewLog;
use crate::wire::{Assignment, Envelope};

/// A node's settings.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Party name (as in its certificate).
    pub name: String,
    /// `source` or `helper`.
    pub role: String,
    /// Device profile (advertised at registration; the speed `--emulate` uses).
    pub class: veil_plan::DeviceClass,
    /// Listen address.
    pub listen: std::net::SocketAddr,
    /// Coordinator address.
    pub coordinator: String,
    /// Key directory.
    pub keys: std::path::PathBuf,
    /// Timeout of connections and calls.
    pub timeout: Duration,
    /// Interval of heartbeats to the coordinator.
    pub heartbeat: Duration,
    /// Source: time an attempt may take before it is restarted.
    pub attempt_timeout: Duration,
    /// Source: attempts per request before it is rejected.
    pub max_attempts: u32,
    /// Source: requests admitted at once; more are rejected (back-pressure).
    pub max_inflight: usize,
    /// Make every computation take as long as on the device class (`macs / e`).
    pub emulate_device: bool,
    /// Record everything this node observes in this log ([`crate::views`]; for an audit).
    pub record_views: Option<std::path::PathBuf>,
}

impl NodeConfig {
    /// Settings with the defaults: heartbeat 250 ms, attempts of 3 s, 3 attempts, 256
    /// requests in flight, no emulation.
    pub fn new(
        name: &str,
        role: &str,
        class: veil_plan::DeviceClass,
        listen: std::net::SocketAddr,
        coordinator: &str,
        keys: &std::path::Path,
    ) -> Self {
        NodeConfig {
            name: name.into(),
            role: role.into(),
            class,
            listen,
            coordinator: coordinator.into(),
            keys: keys.to_path_buf(),
            timeout: Duration::from_secs(30),
            heartbeat: Duration::from_millis(250),
            attempt_timeout: Duration::from_secs(3),
            max_attempts: 3,
            max_inflight: 256,
            emulate_device: false,
            record_views: None,
        }
    }
}

/// A request admitted at the source.
struct Pending {
    tx: oneshot::Sender<Outcome>,
    input: Vec<f32>,
    attempts: u32,
    /// Id of the current attempt.
    current: u64,
    /// When the current attempt started.
    started: Instant,
}

struct NodeState {
    node: Option<Node>,
    epoch: u64,
    suspended: Option<String>,
    /// Device id -> (party name, address), of the current plan.
    peers: HashMap<usize, (String, String)>,
    /// Connections by party name.
    clients: HashMap<String, VeilClient<Channel>>,
    accepted: Vec<String>,
    pending: HashMap<u64, Pending>,
    /// Attempt id -> client request id.
    attempt_of: HashMap<u64, u64>,
    next_attempt: u64,
    links: BTreeMap<String, LinkStats>,
    answered: u64,
    rejected: u64,
    retries: u64,
    refused: u64,
    /// Where observations go, when recording.
    views: Option<ViewLog>,
}

impl NodeState {
    /// A node without a plan (epoch 0) that accepts calls from the coordinator only.
    fn new() -> Self {
        NodeState {
            node: None,
            epoch: 0,
            suspended: None,
            peers: HashMap::new(),
            clients: HashMap::new(),
            accepted: vec![COORDINATOR.to_string()],
            pending: HashMap::new(),
            attempt_of: HashMap::new(),
            next_attempt: 0,
            links: BTreeMap::new(),
            answered: 0,
            rejected: 0,
            retries: 0,
            refused: 0,
            views: None,
        }
    }

    /// Appends what the node observed since the last call to the view log, when recording.
    fn log_views(&mut self) -> Result<(), Status> {
        if let (Some(node), Some(log)) = (self.node.as_mut(), self.views.as_mut()) {
            log.append(&node.take_views()).map_err(status)?;
        }
        Ok(())
    }

    /// Starts a new attempt of pending request `request`; what the node sends.
    fn launch(&mut self, request: u64) -> Result<Outbox, String> {
        self.next_attempt += 1;
        let id = self.next_attempt;
        let node = self.node.as_mut().ok_or("no plan assigned")?;
        let p = self.pending.get_mut(&request).ok_or("not pending")?;
        node.forget(p.current);
        self.attempt_of.remove(&p.current);
        p.attempts += 1;
        p.current = id;
        p.started = Instant::now();
        self.attempt_of.insert(id, request);
        node.start(id, &p.input).map_err(|e| e.to_string())
    }

    /// Ends pending request `request` with `outcome` (once: it leaves `pending`).
    fn conclude(&mut self, request: u64, outcome: Outcome) {
        if let Some(p) = self.pending.remove(&request) {
            self.attempt_of.remove(&p.current);
            if let Some(node) = self.node.as_mut() {
                node.forget(p.current);
            }
            match &outcome {
                Outcome::Answered { .. } => self.answered += 1,
                Outcome::Rejected(why) => {
                    self.rejected += 1;
                    tracing::warn!(request, reason = %why, "rejected");
                }
            }
            let _ = p.tx.send(outcome);
        }
    }

    /// Attempt `attempt` completed: answers its request if it is still the current attempt.
    fn complete(&mut self, attempt: u64, done: Completed) {
        let Some(request) = self.attempt_of.remove(&attempt) else {
            return;
        };
        let attempts = match self.pending.get(&request) {
            Some(p) if p.current == attempt => p.attempts,
            _ => return,
        };
        self.conclude(
            request,
            Outcome::Answered {
                logits: done.logits,
                attempts,
                trace: done.trace,
            },
        );
    }

    /// Restarts every pending request (after a new assignment), or rejects those out of
    /// attempts.
    fn restart_all(&mut self, max_attempts: u32) -> Outbox {
        let mut out = Outbox::new();
        let requests: Vec<u64> = self.pending.keys().copied().collect();
        for r in requests {
            let attempts = self.pending.get(&r).map_or(0, |p| p.attempts);
            if attempts >= max_attempts {
                self.conclude(
                    r,
                    Outcome::Rejected(format!(
                        "re-planned after {attempts} attempts (limit {max_attempts})"
                    )),
                );
                continue;
            }
            self.retries += 1;
            match self.launch(r) {
                Ok(o) => out.extend(o),
                Err(e) => self.conclude(r, Outcome::Rejected(e)),
            }
        }
        out
    }

    /// Admits client request `request` (answered through `tx`) and launches its first
    /// attempt: `Ok(Ok(outbox))`. `Ok(Err(reason))` refuses it without keeping any state:
    /// the fleet is suspended, no plan is assigned, `max_inflight` requests are pending, or
    /// the launch failed. `Err`: a request with that id is already running.
    fn admit(
        &mut self,
        request: u64,
        tx: oneshot::Sender<Outcome>,
        input: Vec<f32>,
        max_inflight: usize,
    ) -> Result<Result<Outbox, String>, Status> {
        if let Some(why) = &self.suspended {
            return Ok(Err(why.clone()));
        }
        if self.node.is_none() {
            return Ok(Err("no plan assigned yet".to_string()));
        }
        if self.pending.contains_key(&request) {
            return Err(Status::already_exists(format!(
                "request {request} is running"
            )));
        }
        if self.pending.len() >= max_inflight {
            return Ok(Err(format!(
                "overloaded: {} requests in flight (limit {})",
                self.pending.len(),
                max_inflight
            )));
        }
        self.pending.insert(
            request,
            Pending {
                tx,
                input,
                attempts: 0,
                current: 0,
                started: Instant::now(),
            },
        );
        match self.launch(request) {
            Ok(out) => Ok(Ok(out)),
            Err(e) => {
                self.pending.remove(&request);
                Ok(Err(e))
            }
        }
    }

    /// Request `request`'s wait ran out: when its current attempt is older than `timeout`,
    /// launches a fresh attempt, or rejects the request once it has had `max` attempts (or
    /// the launch fails). Nothing when the request is gone or its attempt was restarted
    /// meanwhile. Returns what the node sends.
    fn on_attempt_timeout(&mut self, request: u64, max: u32, timeout: Duration) -> Outbox {
        let Some(p) = self.pending.get(&request) else {
            return Outbox::new();
        };
        if p.started.elapsed() < timeout {
            return Outbox::new();
        }
        if p.attempts >= max {
            let why = format!(
                "no answer after {} attempts of {} ms",
                p.attempts,
                timeout.as_millis()
            );
            self.conclude(request, Outcome::Rejected(why));
            return Outbox::new();
        }
        self.retries += 1;
        tracing::warn!(
            request,
            attempt = p.attempts + 1,
            "attempt timed out; retrying"
        );
        match self.launch(request) {
            Ok(out) => out,
            Err(e) => {
                self.conclude(request, Outcome::Rejected(e));
                Outbox::new()
            }
        }
    }

    fn counters(&self, cfg: &NodeConfig) -> NodeStats {
        NodeStats {
            name: cfg.name.clone(),
            role: cfg.role.clone(),
            device: cfg.class.name.clone(),
            epoch: self.epoch,
            suspended: self.suspended.clone(),
            live_requests: self.node.as_ref().map_or(0, Node::live_requests),
            pending: self.pending.len(),
            answered: self.answered,
            rejected: self.rejected,
            retries: self.retries,
            refused: self.refused,
            links: self.links.values().cloned().collect(),
            rss_kib: rss_kib(),
            peers: self.peers.values().cloned().collect(),
        }
    }
}

#[derive(Clone)]
struct NodeService {
    cfg: Arc<NodeConfig>,
    state: Arc<Mutex<NodeState>>,
    /// Held while computing, so emulated device time is spent one computation at a time.
    cpu: Arc<tokio::sync::Mutex<()>>,
}

impl NodeService {
    /// The node's state (a poisoned lock, after a panic elsewhere, is an internal error).
    fn lock(&self) -> Result<MutexGuard<'_, NodeState>, Status> {
        self.state
            .lock()
            .map_err(|_| Status::internal("node state poisoned"))
    }

    /// Runs `f` on the node as one computation: with device emulation, waits off the
    /// emulated time before the outputs leave. Returns `f`'s result and the epoch.
    async fn compute<T>(
        &self,
        f: impl FnOnce(&mut NodeState) -> Result<T, Status>,
    ) -> Result<(T, u64), Status> {
        let _cpu = self.cpu.lock().await;
        let (v, epoch, delay) = {
            let mut st = self.lock()?;
            let v = f(&mut st)?;
            let delay = st.node.as_mut().map_or(Duration::ZERO, Node::take_delay);
            (v, st.epoch, delay)
        };
        if !delay.is_zero() {
            // tokio's timer has millisecond resolution; emulated computations last tens of
            // microseconds, so a blocking thread sleeps them off (~0.1 ms precision).
            tokio::task::spawn_blocking(move || std::thread::sleep(delay))
                .await
                .map_err(|e| Status::internal(format!("emulated compute: {e}")))?;
        }
        Ok((v, epoch))
    }

    /// Sends `msgs` produced under plan `epoch`; messages to this node loop back here.
    async fn dispatch(&self, msgs: Outbox, epoch: u64) -> Result<(), Status> {
        let mut queue = msgs;
        while let Some((to, msg)) = queue.pop() {
            let (me, peer) = {
                let st = self.lock()?;
                if st.epoch != epoch {
                    return Ok(()); // re-planned meanwhile: the attempt restarts
                }
                (
                    st.node.as_ref().map(|n| n.device),
                    st.peers.get(&to).cloned(),
                )
            };
            if Some(to) == me {
                let attempt = msg.request;
                let (out, _) = self
                    .compute(|st| {
                        let node = st
                            .node
                            .as_mut()
                            .ok_or_else(|| Status::failed_precondition("not assigned"))?;
                        let (out, done) = node.handle(msg).map_err(status)?;
                        st.log_views()?;
                        if let Some(done) = done {
                            st.complete(attempt, done);
                        }
                        Ok(out)
                    })
                    .await?;
                queue.extend(out);
                continue;
            }
            let Some((name, addr)) = peer else {
                return Err(Status::not_found(format!("no peer {to}")));
            };
            let mut c = self.client_for(&name, &addr).await?;
            let value_bytes = msg.value_bytes() as u64;
            let frame = Envelope::Deliver { epoch, msg }.encode();
            let svc = self.clone();
            tokio::spawn(async move {
                let len = frame.len() as u64;
                let ok = match c.call(Frame(frame)).await {
                    Ok(_) => true,
                    Err(err) => {
                        tracing::warn!(to = %name, error = %err.message(), "delivery failed");
                        false
                    }
                };
                if let Ok(mut st) = svc.state.lock() {
                    let l = st.links.entry(name.clone()).or_default();
                    l.to = name;
                    l.messages += 1;
                    l.value_bytes += value_bytes;
                    l.frame_bytes += len;
                    l.failed += u64::from(!ok);
                }
            });
        }
        Ok(())
    }

    async fn client_for(&self, name: &str, addr: &str) -> Result<VeilClient<Channel>, Status> {
        if let Some(c) = self.lock()?.clients.get(name) {
            return Ok(c.clone());
        }
        let c = client(&self.cfg.keys, &self.cfg.name, name, addr, self.cfg.timeout)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        self.lock()?.clients.insert(name.to_string(), c.clone());
        Ok(c)
    }

    fn assign(&self, a: Assignment) -> Result<Outbox, Status> {
        tracing::info!(
            epoch = a.epoch,
            device = a.device,
            stages = a.work.stages.len(),
            parameters = a.work.parameters(),
            "assigned"
        );
        let mut node = Node::new(a.deployment, a.work);
        if let Some(keys) = a.mask {
            // Checked before any state changes: a refused assignment leaves the node as it was.
            node.mask_partial_sums(keys).map_err(status)?;
        }
        let mut st = self.lock()?;
        if a.epoch <= st.epoch {
            return Err(Status::failed_precondition(format!(
                "epoch {} is not newer than {}",
                a.epoch, st.epoch
            )));
        }
        st.peers = a
            .peers
            .iter()
            .map(|(d, n, ad)| (*d, (n.clone(), ad.clone())))
            .collect();
        st.accepted = std::iter::once(COORDINATOR.to_string())
            .chain(a.peers.iter().map(|(_, n, _)| n.clone()))
            .chain(std::iter::once(CLIENT.to_string()))
            .collect();
        if self.cfg.emulate_device {
            node.emulate_speed(self.cfg.class.macs_per_s);
        }
        if self.cfg.record_views.is_some() {
            node.record_views();
        }
        st.node = Some(node);
        st.epoch = a.epoch;
        st.suspended = None;
        Ok(st.restart_all(self.cfg.max_attempts))
    }

    fn suspend(&self, epoch: u64, reason: String) -> Result<(), Status> {
        tracing::warn!(epoch, reason = %reason, "suspended by the coordinator");
        let mut st = self.lock()?;
        st.epoch = st.epoch.max(epoch);
        st.node = None;
        st.suspended = Some(reason.clone());
        let requests: Vec<u64> = st.pending.keys().copied().collect();
        for r in requests {
            st.conclude(r, Outcome::Rejected(reason.clone()));
        }
        Ok(())
    }

    async fn deliver(&self, caller: &str, epoch: u64, m: Message) -> Result<(), Status> {
        {
            let mut st = self.lock()?;
            // Only the device that owns the sender id may deliver as it: a node cannot inject
            // another device's partial sums, and clients cannot deliver at all.
            let sender = st.peers.get(&m.from).map(|(n, _)| n.as_str());
            if sender != Some(caller) {
                st.refused += 1;
                return Err(Status::permission_denied(format!(
                    "{caller} may not deliver as device {}",
                    m.from
                )));
            }
            if epoch != st.epoch {
                st.refused += 1;
                return Err(Status::failed_precondition(format!(
                    "delivery of plan {epoch}, running plan {}",
                    st.epoch
                )));
            }
        }
        let attempt = m.request;
        let (out, epoch) = self
            .compute(|st| {
                let node = st
                    .node
                    .as_mut()
                    .ok_or_else(|| Status::failed_precondition("not assigned"))?;
                let (out, done) = match node.handle(m) {
                    Ok(v) => v,
                    Err(e) => {
                        st.refused += 1;
                        return Err(status(e));
                    }
                };
                st.log_views()?;
                if let Some(done) = done {
                    st.complete(attempt, done);
                }
                Ok(out)
            })
            .await?;
        self.dispatch(out, epoch).await
    }

    /// Serves a client's request `request` at the source: admits it ([`NodeState::admit`]),
    /// then waits for its outcome, restarting each attempt that outlives
    /// [`NodeConfig::attempt_timeout`] ([`NodeState::on_attempt_timeout`]). A refusal to admit
    /// and a rejection are answers (`Envelope::Rejected`); an `Err` is a failure of the call.
    async fn infer(&self, request: u64, input: Vec<f32>) -> Result<Envelope, Status> {
        let (tx, mut rx) = oneshot::channel();
        let max_inflight = self.cfg.max_inflight;
        let admitted = self.compute(|st| st.admit(request, tx, input, max_inflight));
        let (out, epoch) = match admitted.await? {
            (Ok(out), epoch) => (out, epoch),
            (Err(why), _) => {
                self.lock()?.rejected += 1;
                return Ok(Envelope::Rejected(why));
            }
        };
        self.dispatch(out, epoch).await?;
        loop {
            let deadline = {
                let st = self.lock()?;
                st.pending
                    .get(&request)
                    .map(|p| p.started + self.cfg.attempt_timeout)
            };
            let deadline = deadline.unwrap_or_else(|| Instant::now() + self.cfg.timeout);
            match tokio::time::timeout_at(deadline, &mut rx).await {
                Ok(Ok(Outcome::Answered {
                    logits,
                    attempts,
                    trace,
                })) => {
                    return Ok(Envelope::Result {
                        logits,
                        attempts,
                        trace,
                    });
                }
                Ok(Ok(Outcome::Rejected(why))) => return Ok(Envelope::Rejected(why)),
                Ok(Err(_)) => return Err(Status::aborted("request dropped")),
                Err(_) => {}
            }
            // The attempt timed out (unless a re-plan restarted it meanwhile).
            let max = self.cfg.max_attempts;
            let timeout = self.cfg.attempt_timeout;
            let (out, epoch) = self
                .compute(|st| Ok(st.on_attempt_timeout(request, max, timeout)))
                .await?;
            self.dispatch(out, epoch).await?;
        }
    }
}

#[tonic::async_trait]
impl Veil for NodeService {
    async fn call(&self, req: Request<Frame>) -> Result<Response<Frame>, Status> {
        let accepted: Vec<String> = self.lock()?.accepted.clone();
        let names: Vec<&str> = accepted.iter().map(String::as_str).collect();
        let Some(caller) = caller_name(&req, &names).map(str::to_string) else {
            tracing::warn!(peer = ?req.remote_addr(), "refused a caller whose certificate is not accepted");
            return Err(Status::permission_denied("certificate not accepted"));
        };
        let env = Envelope::decode(&req.into_inner().0).map_err(|e| {
            tracing::warn!(node = %self.cfg.name, caller = %caller, "refused a malformed frame: {e}");
            status(e)
        })?;
        let reply = match env {
            Envelope::Assign(a) if caller == COORDINATOR => {
                let out = self.assign(*a)?;
                let epoch = self.lock()?.epoch;
                self.dispatch(out, epoch).await?;
                Envelope::Ack
            }
            Envelope::Suspend { epoch, reason } if caller == COORDINATOR => {
                self.suspend(epoch, reason)?;
                Envelope::Ack
            }
            Envelope::Deliver { epoch, msg } => {
                self.deliver(&caller, epoch, msg).await?;
                Envelope::Ack
            }
            Envelope::Infer { request, input } => {
                if caller != CLIENT {
                    return Err(Status::permission_denied(format!(
                        "{caller} may not start requests"
                    )));
                }
                self.infer(request, input).await?
            }
            Envelope::Stats if caller == CLIENT || caller == COORDINATOR => {
                let stats = self.lock()?.counters(&self.cfg);
                Envelope::StatsReply(serde_json::to_string(&stats).map_err(status)?)
            }
            other => {
                return Err(Status::invalid_argument(format!(
                    "unexpected {other:?} from {caller}"
                )));
            }
        };
        Ok(Response::new(Frame(reply.encode())))
    }
}

/// Runs a node until the process ends: serves, registers with the coordinator (retrying
/// until the timeout while it starts), then heartbeats and expires stale request state.
pub async fn run_node(mut cfg: NodeConfig) -> Result<(), NetError> {
    // Bound before registering, so the coordinator never plans around a node that cannot
    // listen; port 0 picks a free port and the coordinator learns the real one.
    let incoming = TlsIncoming::bind(cfg.listen, &cfg.keys, &cfg.name)?;
    cfg.listen = incoming.local_addr()?;
    let mut st = NodeState::new();
    if let Some(path) = &cfg.record_views {
        st.views = Some(ViewLog::create(path)?);
    }
    let state = Arc::new(Mutex::new(st));
    let serving = serve(&cfg, state.clone(), incoming.start());
    let coordinator = register(&cfg).await?;
    tracing::info!(name = %cfg.name, role = %cfg.role, device = %cfg.class.name, "registered");
    tokio::spawn(heartbeats(cfg, state, coordinator));
    serving
        .await
        .map_err(|e| NetError::Runtime(format!("the server task ended: {e}")))?
        .map_err(|source| NetError::Transport {
            context: "serving".into(),
            source,
        })
}

/// Starts the node's gRPC server on `incoming` (mutual TLS with `cfg`'s keys, bound to
/// `cfg.listen`) as a task; the handle ends with the server.
fn serve(
    cfg: &NodeConfig,
    state: Arc<Mutex<NodeState>>,
    incoming: Incoming,
) -> tokio::task::JoinHandle<Result<(), tonic::transport::Error>> {
    let svc = NodeService {
        cfg: Arc::new(cfg.clone()),
        state,
        cpu: Arc::new(tokio::sync::Mutex::new(())),
    };
    let server = Server::builder()
        .timeout(cfg.timeout)
        .add_service(
            VeilServer::new(svc)
                .max_decoding_message_size(MAX_FRAME)
                .max_encoding_message_size(MAX_FRAME),
        )
        .serve_with_incoming(incoming);
    tokio::spawn(server)
}

/// Registers with the coordinator and returns the connection, retrying every 100 ms (the
/// coordinator may still be starting) until `cfg.timeout` has passed; then the last error.
async fn register(cfg: &NodeConfig) -> Result<VeilClient<Channel>, NetError> {
    let deadline = tokio::time::Instant::now() + cfg.timeout;
    let register = Envelope::Register {
        role: cfg.role.clone(),
        class: cfg.class.clone(),
        addr: cfg.listen.to_string(),
    };
    loop {
        let attempt = async {
            let mut c = client(
                &cfg.keys,
                &cfg.name,
                COORDINATOR,
                &cfg.coordinator,
                cfg.timeout,
            )
            .await?;
            let reply = call(&mut c, &register).await?;
            if reply != Envelope::Ack {
                return Err(NetError::Unexpected {
                    peer: COORDINATOR.into(),
                    answer: format!("{reply:?} to a registration"),
                });
            }
            Ok(c)
        };
        match attempt.await {
            Ok(c) => return Ok(c),
            Err(e) if tokio::time::Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Every `cfg.heartbeat`: drops request state older than every attempt the source may still
/// wait for, then tells the coordinator the node's epoch (logging when it becomes
/// unreachable and reachable again). Ends only if the state lock is poisoned.
async fn heartbeats(
    cfg: NodeConfig,
    state: Arc<Mutex<NodeState>>,
    mut coordinator: VeilClient<Channel>,
) {
    // State older than every attempt the source may still be waiting for is dead.
    let max_age = cfg.attempt_timeout * (cfg.max_attempts + 1);
    let mut tick = tokio::time::interval(cfg.heartbeat);
    let mut down = false;
    loop {
        tick.tick().await;
        let epoch = {
            let Ok(mut st) = state.lock() else { return };
            if let Some(node) = st.node.as_mut() {
                let n = node.expire(max_age);
                if n > 0 {
                    tracing::info!(expired = n, "dropped stale request state");
                }
            }
            st.epoch
        };
        let beat = tokio::time::timeout(
            cfg.heartbeat * 4,
            call(&mut coordinator, &Envelope::Heartbeat { epoch }),
        )
        .await;
        match beat {
            Ok(Ok(_)) if down => {
                tracing::info!("coordinator reachable again");
                down = false;
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) if !down => {
                tracing::warn!(error = %e, "heartbeat failed");
                down = true;
            }
            Err(_) if !down => {
                tracing::warn!("heartbeat timed out");
                down = true;
            }
            _ => {}
        }
    }
}
