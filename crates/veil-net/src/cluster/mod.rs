//! Nodes and the coordinator over gRPC with mutual TLS.
//!
//! - A node ([`run_node`], [`member`]) listens, registers with the coordinator (its party
//!   name comes from its certificate, its role, device class and address from the frame),
//!   heartbeats, receives its [`crate::wire::Assignment`] (only its slices, under a plan
//!   epoch), then executes messages as they arrive. The source also answers `Infer` calls:
//!   it admits a bounded number of requests, retries an attempt that times out, restarts every
//!   running request when a re-plan arrives, and ends each request exactly once, answered or
//!   [`Outcome::Rejected`] with a reason.
//! - The coordinator ([`Coordinator`], [`coordinator`]) waits for the fleet, places the model
//!   with the planner's greedy ([`crate::planner::Planner`]), sends each node its assignment,
//!   and re-plans around helpers whose heartbeats stop (or that come back); when no placement
//!   exists it suspends the nodes, and the source rejects requests with the reason.
//! - Clients ([`infer`], [`node_stats`]) run requests and read counters.
//!
//! Key items: [`NodeConfig`], [`run_node`], [`Coordinator`], [`CoordinatorConfig`],
//! [`Outcome`], [`NodeStats`], [`infer`].

pub mod coordinator;
pub mod member;

use serde::{Deserialize, Serialize};
use tonic::Status;
use tonic::transport::Channel;

use crate::NetError;
use crate::grpc::Frame;
use crate::grpc::client;
use crate::grpc::service::veil_client::VeilClient;
use crate::node::TraceRecord;
use crate::wire::Envelope;

pub use coordinator::{Coordinator, CoordinatorConfig, PartialSums, PlanEvent, Registered};
pub use member::{NodeConfig, run_node};

/// The coordinator's party name.
pub const COORDINATOR: &str = "coordinator";

/// The party name of clients that may start requests at a source and read counters.
pub const CLIENT: &str = "client";

/// What a node is in the fleet; `name()` is the role on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum NodeRole {
    /// The camera: runs the first and last stage and answers clients.
    Source,
    /// A helper: runs the segments the plan gives it.
    Helper,
}

impl NodeRole {
    /// The role's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            NodeRole::Source => "source",
            NodeRole::Helper => "helper",
        }
    }

    /// The role a party's certificate entitles it to: `cam<N>` (the sources `veil net keygen`
    /// issues) may only be a source, `h<N>` only a helper; any other name neither. A role is
    /// bound to the certificate, never taken from what a node claims when it registers.
    pub fn of_party(name: &str) -> Option<Self> {
        let numbered = |prefix: &str| {
            name.strip_prefix(prefix)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        };
        if numbered("cam") {
            Some(NodeRole::Source)
        } else if numbered("h") {
            Some(NodeRole::Helper)
        } else {
            None
        }
    }

    /// The role named `name` on the wire, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        [NodeRole::Source, NodeRole::Helper]
            .into_iter()
            .find(|r| r.name() == name)
    }
}

fn status(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(e.to_string())
}

/// One call: sends `e`, decodes the answer.
async fn call(c: &mut VeilClient<Channel>, e: &Envelope) -> Result<Envelope, NetError> {
    let r = c
        .call(Frame(e.encode()))
        .await
        .map_err(|status| NetError::Call(Box::new(status)))?;
    Ok(Envelope::decode(&r.into_inner().0)?)
}

/// How a request ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Outcome {
    /// Answered.
    Answered {
        /// The logits.
        logits: Vec<f32>,
        /// Attempts it took.
        attempts: u32,
        /// What every device computed.
        trace: Vec<TraceRecord>,
    },
    /// Not run, and why.
    Rejected(String),
}

/// Traffic a node sent to one peer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkStats {
    /// The peer's party name.
    pub to: String,
    /// Deliveries sent.
    pub messages: u64,
    /// Feature-map values sent (4 bytes each): what the cost model counts.
    pub value_bytes: u64,
    /// Encoded frames (values, headers and trace records; before gRPC and TLS framing).
    pub frame_bytes: u64,
    /// Deliveries that failed (peer down, refused).
    pub failed: u64,
}

/// A node's counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStats {
    /// Party name.
    pub name: String,
    /// `source` or `helper`.
    pub role: String,
    /// Device class.
    pub device: String,
    /// Plan epoch (0 before the first assignment).
    pub epoch: u64,
    /// Why requests are being rejected, while the coordinator has suspended the fleet.
    pub suspended: Option<String>,
    /// Requests with execution state here.
    pub live_requests: usize,
    /// Requests admitted and not yet ended (source).
    pub pending: usize,
    /// Requests answered (source).
    pub answered: u64,
    /// Requests rejected (source).
    pub rejected: u64,
    /// Attempts restarted after a timeout or a re-plan (source).
    pub retries: u64,
    /// Deliveries refused here (stale epoch, bad message).
    pub refused: u64,
    /// Per peer.
    pub links: Vec<LinkStats>,
    /// Resident memory in KiB (Linux `VmRSS`), if known.
    pub rss_kib: Option<u64>,
    /// `(party name, address)` of the peers of the current plan.
    pub peers: Vec<(String, String)>,
}

/// This process's resident memory in KiB (Linux), if readable.
pub fn rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Runs one sample through a source over a connected client.
pub async fn infer_on(
    c: &mut VeilClient<Channel>,
    request: u64,
    input: Vec<f32>,
) -> Result<Outcome, NetError> {
    match call(c, &Envelope::Infer { request, input }).await? {
        Envelope::Result {
            logits,
            attempts,
            trace,
        } => Ok(Outcome::Answered {
            logits,
            attempts,
            trace,
        }),
        Envelope::Rejected(why) => Ok(Outcome::Rejected(why)),
        other => Err(NetError::Unexpected {
            peer: "the source".into(),
            answer: format!("{other:?}"),
        }),
    }
}

/// Runs one sample through the source at `addr` as party `name`; the logits, or an error
/// carrying the rejection reason.
pub async fn infer(
    keys: &std::path::Path,
    name: &str,
    source: &str,
    addr: &str,
    request: u64,
    input: Vec<f32>,
    timeout: std::time::Duration,
) -> Result<Vec<f32>, NetError> {
    let mut c = client(keys, name, source, addr, timeout).await?;
    match infer_on(&mut c, request, input).await? {
        Outcome::Answered { logits, .. } => Ok(logits),
        Outcome::Rejected(why) => Err(NetError::Rejected(why)),
    }
}

/// Reads node `target`'s counters over a connected client.
pub async fn node_stats(c: &mut VeilClient<Channel>) -> Result<NodeStats, NetError> {
    match call(c, &Envelope::Stats).await? {
        Envelope::StatsReply(json) => serde_json::from_str(&json).map_err(NetError::Counters),
        other => Err(NetError::Unexpected {
            peer: "the node".into(),
            answer: format!("{other:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::NodeRole;

    #[test]
    fn roles_follow_the_certificate_names() {
        assert_eq!(NodeRole::of_party("cam0"), Some(NodeRole::Source));
        assert_eq!(NodeRole::of_party("cam12"), Some(NodeRole::Source));
        assert_eq!(NodeRole::of_party("h0"), Some(NodeRole::Helper));
        for name in ["h", "cam", "h0x", "coordinator", "client", "hx1", "camera0"] {
            assert_eq!(NodeRole::of_party(name), None, "{name}");
        }
    }
}
