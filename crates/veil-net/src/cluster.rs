//! Nodes and the coordinator over gRPC with mutual TLS (issue #8, first cut: registration,
//! planning, assignment of weight slices, request execution; heartbeats and re-planning come
//! next).
//!
//! - A node ([`run_node`]) listens, registers with the coordinator (its party name comes from
//!   its certificate, its role, device class and address from the frame), receives its
//!   [`Assignment`] (only its slices), then executes messages as they arrive; the source also
//!   answers `Infer` calls with the logits.
//! - The coordinator ([`Coordinator`]) waits for the fleet's nodes, places the model with the
//!   planner's greedy (privacy profile and `tau` given), and sends each node its assignment.
//!
//! Key items: [`NodeConfig`], [`run_node`], [`Coordinator`], [`CoordinatorConfig`], [`infer`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status};

use crate::NetError;
use crate::deploy::Deployment;
use crate::grpc::service::veil_client::VeilClient;
use crate::grpc::service::veil_server::{Veil, VeilServer};
use crate::grpc::{Frame, MAX_FRAME, caller_name, client, server_tls};
use crate::node::{Message, Node};
use crate::wire::{Assignment, Envelope};

/// The coordinator's party name.
pub const COORDINATOR: &str = "coordinator";

/// The party name of clients that may start requests at a source.
pub const CLIENT: &str = "client";

fn status(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(e.to_string())
}

async fn call(c: &mut VeilClient<Channel>, e: &Envelope) -> Result<Envelope, NetError> {
    let r = c
        .call(Frame(e.encode()))
        .await
        .map_err(|s| NetError::Deploy(format!("call failed: {}", s.message())))?;
    Envelope::decode(&r.into_inner().0).map_err(|e| NetError::Deploy(e.to_string()))
}

/// A node's settings.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Party name (as in its certificate).
    pub name: String,
    /// `source` or `helper`.
    pub role: String,
    /// Device class name.
    pub device: String,
    /// Listen address.
    pub listen: std::net::SocketAddr,
    /// Coordinator address.
    pub coordinator: String,
    /// Key directory.
    pub keys: PathBuf,
    /// Timeout of connections and calls.
    pub timeout: Duration,
}

struct NodeState {
    node: Option<Node>,
    peers: HashMap<usize, (String, String)>,
    clients: HashMap<usize, VeilClient<Channel>>,
    waiting: HashMap<u64, oneshot::Sender<Vec<f32>>>,
    accepted: Vec<String>,
}

#[derive(Clone)]
struct NodeService {
    cfg: Arc<NodeConfig>,
    state: Arc<Mutex<NodeState>>,
}

impl NodeService {
    /// The node's state (a poisoned lock, after a panic elsewhere, is an internal error).
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, NodeState>, Status> {
        self.state
            .lock()
            .map_err(|_| Status::internal("node state poisoned"))
    }

    /// Runs `msgs` through the node, sending what leaves it; local messages loop back here.
    async fn dispatch(&self, msgs: Vec<(usize, Message)>) -> Result<(), Status> {
        let mut queue = msgs;
        while let Some((to, msg)) = queue.pop() {
            let me = {
                let st = self.lock()?;
                st.node.as_ref().map(|n| n.device)
            };
            if Some(to) == me {
                let request = msg.request;
                let (out, result) = {
                    let mut st = self.lock()?;
                    let node = st
                        .node
                        .as_mut()
                        .ok_or_else(|| Status::failed_precondition("not assigned"))?;
                    node.handle(msg).map_err(status)?
                };
                if let Some(logits) = result {
                    self.notify(request, logits)?;
                }
                queue.extend(out);
                continue;
            }
            let mut c = self.client_for(to).await?;
            let e = Envelope::Deliver(msg);
            tokio::spawn(async move {
                if let Err(err) = call(&mut c, &e).await {
                    tracing::warn!(device = to, error = %err, "delivery failed");
                }
            });
        }
        Ok(())
    }

    /// Hands request `request`'s logits to the `Infer` call waiting for them.
    fn notify(&self, request: u64, logits: Vec<f32>) -> Result<(), Status> {
        let mut st = self.lock()?;
        if let Some(tx) = st.waiting.remove(&request) {
            let _ = tx.send(logits);
        }
        Ok(())
    }

    async fn client_for(&self, device: usize) -> Result<VeilClient<Channel>, Status> {
        let (name, addr) = {
            let st = self.lock()?;
            if let Some(c) = st.clients.get(&device) {
                return Ok(c.clone());
            }
            st.peers
                .get(&device)
                .cloned()
                .ok_or_else(|| Status::not_found(format!("no peer {device}")))?
        };
        let c = client(
            &self.cfg.keys,
            &self.cfg.name,
            &name,
            &addr,
            self.cfg.timeout,
        )
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
        let mut st = self.lock()?;
        st.clients.insert(device, c.clone());
        Ok(c)
    }
}

#[tonic::async_trait]
impl Veil for NodeService {
    async fn call(&self, req: Request<Frame>) -> Result<Response<Frame>, Status> {
        let accepted: Vec<String> = {
            let st = self.lock()?;
            st.accepted.clone()
        };
        let names: Vec<&str> = accepted.iter().map(String::as_str).collect();
        let Some(caller) = caller_name(&req, &names).map(str::to_string) else {
            tracing::warn!(peer = ?req.remote_addr(), "refused a caller whose certificate is not accepted");
            return Err(Status::permission_denied("certificate not accepted"));
        };
        let env = Envelope::decode(&req.into_inner().0).map_err(status)?;
        match env {
            Envelope::Assign(a) if caller == COORDINATOR => {
                tracing::info!(
                    device = a.device,
                    stages = a.work.stages.len(),
                    parameters = a.work.parameters(),
                    "assigned"
                );
                let mut st = self.lock()?;
                st.peers = a
                    .peers
                    .iter()
                    .map(|(d, n, ad)| (*d, (n.clone(), ad.clone())))
                    .collect();
                st.accepted = std::iter::once(COORDINATOR.to_string())
                    .chain(a.peers.iter().map(|(_, n, _)| n.clone()))
                    .chain(std::iter::once(CLIENT.to_string()))
                    .collect();
                st.node = Some(Node::new(a.deployment.clone(), a.work.clone()));
                Ok(Response::new(Frame(Envelope::Ack.encode())))
            }
            Envelope::Deliver(m) => {
                // Only the device that owns the sender id may deliver as it: a node cannot
                // inject another device's partial sums, and clients cannot deliver at all.
                {
                    let st = self.lock()?;
                    let sender = st.peers.get(&m.from).map(|(n, _)| n.as_str());
                    if sender != Some(caller.as_str()) {
                        return Err(Status::permission_denied(format!(
                            "{caller} may not deliver as device {}",
                            m.from
                        )));
                    }
                }
                let (out, result) = {
                    let mut st = self.lock()?;
                    let node = st
                        .node
                        .as_mut()
                        .ok_or_else(|| Status::failed_precondition("not assigned"))?;
                    let request = m.request;
                    let (out, result) = node.handle(m).map_err(status)?;
                    (out, result.map(|r| (request, r)))
                };
                if let Some((request, logits)) = result {
                    let mut st = self.lock()?;
                    if let Some(tx) = st.waiting.remove(&request) {
                        let _ = tx.send(logits);
                    }
                }
                self.dispatch(out).await?;
                Ok(Response::new(Frame(Envelope::Ack.encode())))
            }
            Envelope::Infer { request, input } => {
                if caller != CLIENT {
                    return Err(Status::permission_denied(format!(
                        "{caller} may not start requests"
                    )));
                }
                let (tx, rx) = oneshot::channel();
                let out = {
                    let mut st = self.lock()?;
                    if st.waiting.contains_key(&request) {
                        return Err(Status::already_exists(format!(
                            "request {request} is running"
                        )));
                    }
                    st.waiting.insert(request, tx);
                    let node = st
                        .node
                        .as_mut()
                        .ok_or_else(|| Status::failed_precondition("not assigned"))?;
                    node.start(request, &input).map_err(status)?
                };
                self.dispatch(out).await?;
                let logits = tokio::time::timeout(self.cfg.timeout, rx)
                    .await
                    .map_err(|_| Status::deadline_exceeded(format!("request {request} timed out")))?
                    .map_err(|_| Status::aborted("request dropped"))?;
                Ok(Response::new(Frame(Envelope::Result(logits).encode())))
            }
            other => Err(Status::invalid_argument(format!(
                "unexpected {other:?} from {caller}"
            ))),
        }
    }
}

/// Runs a node until the process ends: serves, then registers with the coordinator.
pub async fn run_node(cfg: NodeConfig) -> Result<(), NetError> {
    let state = Arc::new(Mutex::new(NodeState {
        node: None,
        peers: HashMap::new(),
        clients: HashMap::new(),
        waiting: HashMap::new(),
        accepted: vec![COORDINATOR.to_string()],
    }));
    let svc = NodeService {
        cfg: Arc::new(cfg.clone()),
        state,
    };
    let tls = server_tls(&cfg.keys, &cfg.name)?;
    let server = Server::builder()
        .tls_config(tls)
        .map_err(|e| NetError::Deploy(format!("TLS: {e}")))?
        .add_service(
            VeilServer::new(svc)
                .max_decoding_message_size(MAX_FRAME)
                .max_encoding_message_size(MAX_FRAME),
        )
        .serve(cfg.listen);
    let serving = tokio::spawn(server);
    // The coordinator may still be starting: retry registration until the timeout.
    let deadline = tokio::time::Instant::now() + cfg.timeout;
    let register = Envelope::Register {
        role: cfg.role.clone(),
        device: cfg.device.clone(),
        addr: cfg.listen.to_string(),
    };
    let reply = loop {
        let attempt = async {
            let mut c = client(
                &cfg.keys,
                &cfg.name,
                COORDINATOR,
                &cfg.coordinator,
                cfg.timeout,
            )
            .await?;
            call(&mut c, &register).await
        };
        match attempt.await {
            Ok(r) => break r,
            Err(e) if tokio::time::Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    if reply != Envelope::Ack {
        return Err(NetError::Deploy(format!("registration answered {reply:?}")));
    }
    serving
        .await
        .map_err(|e| NetError::Deploy(e.to_string()))?
        .map_err(|e| NetError::Deploy(format!("serving: {e}")))
}

/// The coordinator's settings.
#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    /// Listen address.
    pub listen: std::net::SocketAddr,
    /// Key directory.
    pub keys: PathBuf,
    /// Helpers to wait for before planning.
    pub helpers: usize,
    /// Timeout of connections and calls.
    pub timeout: Duration,
}

/// A registered node.
#[derive(Clone, Debug)]
pub struct Registered {
    /// Party name.
    pub name: String,
    /// Role.
    pub role: String,
    /// Device class.
    pub device: String,
    /// Address.
    pub addr: String,
}

#[derive(Clone)]
struct CoordinatorService {
    registered: Arc<Mutex<Vec<Registered>>>,
    accepted: Arc<Vec<String>>,
}

#[tonic::async_trait]
impl Veil for CoordinatorService {
    async fn call(&self, req: Request<Frame>) -> Result<Response<Frame>, Status> {
        let names: Vec<&str> = self.accepted.iter().map(String::as_str).collect();
        let caller = caller_name(&req, &names)
            .ok_or_else(|| Status::permission_denied("certificate not accepted"))?
            .to_string();
        match Envelope::decode(&req.into_inner().0).map_err(status)? {
            Envelope::Register { role, device, addr } => {
                if !matches!(role.as_str(), "source" | "helper") {
                    return Err(status(format!("role `{role}`")));
                }
                let mut r = self
                    .registered
                    .lock()
                    .map_err(|_| Status::internal("poisoned"))?;
                r.retain(|x| x.name != caller);
                r.push(Registered {
                    name: caller,
                    role,
                    device,
                    addr,
                });
                Ok(Response::new(Frame(Envelope::Ack.encode())))
            }
            other => Err(status(format!("unexpected {other:?}"))),
        }
    }
}

/// The coordinator: registrations so far.
pub struct Coordinator {
    /// Nodes that registered.
    pub registered: Arc<Mutex<Vec<Registered>>>,
    cfg: CoordinatorConfig,
}

impl Coordinator {
    /// Starts serving registrations from the parties named `accepted`.
    pub fn start(cfg: CoordinatorConfig, accepted: Vec<String>) -> Result<Self, NetError> {
        let registered = Arc::new(Mutex::new(Vec::new()));
        let svc = CoordinatorService {
            registered: registered.clone(),
            accepted: Arc::new(accepted),
        };
        let tls = server_tls(&cfg.keys, COORDINATOR)?;
        let server = Server::builder()
            .tls_config(tls)
            .map_err(|e| NetError::Deploy(format!("TLS: {e}")))?
            .add_service(VeilServer::new(svc))
            .serve(cfg.listen);
        tokio::spawn(server);
        Ok(Coordinator { registered, cfg })
    }

    /// Waits until a source and `helpers` helpers registered (or the timeout).
    pub async fn wait_for_fleet(&self) -> Result<Vec<Registered>, NetError> {
        let deadline = tokio::time::Instant::now() + self.cfg.timeout;
        loop {
            let r = self
                .registered
                .lock()
                .map_err(|_| NetError::Deploy("poisoned".into()))?
                .clone();
            let sources = r.iter().filter(|x| x.role == "source").count();
            let helpers = r.iter().filter(|x| x.role == "helper").count();
            if sources >= 1 && helpers >= self.cfg.helpers {
                return Ok(r);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(NetError::Deploy(format!(
                    "{helpers} helpers and {sources} sources registered within {:?}",
                    self.cfg.timeout
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends every node its assignment: device ids are the planner's (helpers in
    /// registration order, then the source); `params` are the full parameters per stage.
    pub async fn assign(
        &self,
        deployment: &Deployment,
        nodes: &[(usize, Registered)],
        params: &[(Vec<f32>, Vec<f32>)],
    ) -> Result<(), NetError> {
        let peers: Vec<(usize, String, String)> = nodes
            .iter()
            .map(|(d, r)| (*d, r.name.clone(), r.addr.clone()))
            .collect();
        for (d, r) in nodes {
            let a = Assignment {
                device: *d,
                deployment: deployment.clone(),
                work: deployment.work_of(*d, params),
                peers: peers.clone(),
            };
            let mut c = client(
                &self.cfg.keys,
                COORDINATOR,
                &r.name,
                &r.addr,
                self.cfg.timeout,
            )
            .await?;
            let reply = call(&mut c, &Envelope::Assign(Box::new(a))).await?;
            if reply != Envelope::Ack {
                return Err(NetError::Deploy(format!("{} answered {reply:?}", r.name)));
            }
        }
        Ok(())
    }
}

/// Runs one sample through the source at `addr` as party `name` (a client certificate the
/// source accepts: `client`).
pub async fn infer(
    keys: &std::path::Path,
    name: &str,
    source: &str,
    addr: &str,
    request: u64,
    input: Vec<f32>,
    timeout: Duration,
) -> Result<Vec<f32>, NetError> {
    let mut c = client(keys, name, source, addr, timeout).await?;
    match call(&mut c, &Envelope::Infer { request, input }).await? {
        Envelope::Result(v) => Ok(v),
        other => Err(NetError::Deploy(format!("source answered {other:?}"))),
    }
}
