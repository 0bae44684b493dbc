//! Frames of the runtime's one gRPC method: a kind byte, then the kind's fields. Node
//! messages (the hot path) are binary; the one-off assignment is JSON. Decoding checks every
//! length against the bytes left and rejects trailing bytes: a malformed frame is an error
//! naming what was being read, never a panic.
//!
//! Key items: [`Envelope`], [`Envelope::encode`], [`Envelope::decode`].

use serde::{Deserialize, Serialize};
use veil_codec::{Reader, Writer};

use crate::deploy::{Deployment, DeviceWork};
use crate::node::{Message, Payload, TraceRecord};

/// What a node receives from the coordinator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// The plan's epoch: it grows with every re-plan, and nodes refuse deliveries of another.
    pub epoch: u64,
    /// The node's device id.
    pub device: usize,
    /// The deployment (public structure: stages, owners).
    pub deployment: Deployment,
    /// The node's slices.
    pub work: DeviceWork,
    /// `(device id, party name, address)` of every node.
    pub peers: Vec<(usize, String, String)>,
    /// This device's pair keys of the epoch when partial sums travel masked
    /// ([`crate::mask`]); `None` for plain partial sums. Secret (redacted `Debug`).
    #[serde(default)]
    pub mask: Option<crate::mask::PairKeys>,
}

impl Assignment {
    /// The deployment's invariants ([`Deployment::validate`]) and every device it names
    /// (the source, each owner, this node) among the peers.
    pub fn check(&self) -> Result<(), String> {
        self.deployment.validate()?;
        let known = |d: usize| self.peers.iter().any(|(id, _, _)| *id == d);
        let named = self
            .deployment
            .stages
            .iter()
            .flat_map(|s| s.owners.iter().copied());
        match std::iter::once(self.deployment.source)
            .chain(std::iter::once(self.device))
            .chain(named)
            .find(|&d| !known(d))
        {
            Some(d) => Err(format!("device {d} is not among the peers")),
            None => Ok(()),
        }
    }
}

/// Every frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Envelope {
    /// Node to coordinator: its name is in its certificate; `role` is `source` or `helper`,
    /// `class` its device profile, `addr` where it listens.
    Register {
        /// `source` or `helper`.
        role: String,
        /// Device profile (a catalog class or a custom one).
        class: veil_plan::DeviceClass,
        /// Listen address.
        addr: String,
    },
    /// Coordinator to node.
    Assign(Box<Assignment>),
    /// Node to node, under plan `epoch`.
    Deliver {
        /// The sender's plan epoch.
        epoch: u64,
        /// The message.
        msg: Message,
    },
    /// Client to source: run one sample.
    Infer {
        /// Request id (the client's; unique among its running requests).
        request: u64,
        /// Input values.
        input: Vec<f32>,
    },
    /// Source to client: the answer.
    Result {
        /// The logits.
        logits: Vec<f32>,
        /// Attempts it took (1 without a retry).
        attempts: u32,
        /// What every device computed, in the order the records reached the source.
        trace: Vec<TraceRecord>,
    },
    /// Acknowledgement.
    Ack,
    /// Source to client: the request was not run, and why.
    Rejected(String),
    /// Node to coordinator: alive, running plan `epoch`.
    Heartbeat {
        /// The node's plan epoch (0 before its first assignment).
        epoch: u64,
    },
    /// Coordinator to nodes: no placement exists for the live fleet; reject requests.
    Suspend {
        /// The new epoch.
        epoch: u64,
        /// Why.
        reason: String,
    },
    /// Client or coordinator to node: report counters.
    Stats,
    /// Node to client: counters as JSON (see `cluster::NodeStats`).
    StatsReply(String),
}

/// Bytes of one encoded [`TraceRecord`].
const TRACE_RECORD_BYTES: usize = 48;

pub use veil_codec::WireError;

/// What the runtime's frames are called in decoding errors.
const FRAME: &str = "frame";

fn read_trace(r: &mut Reader<'_>) -> Result<Vec<TraceRecord>, WireError> {
    let n = r.count(TRACE_RECORD_BYTES)?;
    (0..n)
        .map(|_| {
            Ok(TraceRecord {
                device: r.index()?,
                stage: r.index()?,
                macs: r.u64()?,
                wait_us: r.u64()?,
                compute_us: r.u64()?,
                sent_bytes: r.u64()?,
                messages: r.u64()?,
            })
        })
        .collect()
}

fn write_trace(w: &mut Writer, trace: &[TraceRecord]) {
    w.count(trace.len());
    for t in trace {
        w.count(t.device);
        w.count(t.stage);
        for v in [t.macs, t.wait_us, t.compute_us, t.sent_bytes, t.messages] {
            w.u64(v);
        }
    }
}

impl Envelope {
    /// Encodes the frame.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            Envelope::Register { role, class, addr } => {
                w.u8(1);
                w.str(role);
                w.str(&class.name);
                w.f64(class.macs_per_s);
                w.u64(class.memory_bytes);
                w.f64(class.rate_bps);
                w.str(addr);
            }
            Envelope::Assign(a) => {
                w.u8(2);
                w.raw(&serde_json::to_vec(a).unwrap_or_default());
            }
            Envelope::Deliver { epoch, msg: m } => {
                w.u8(3);
                w.u64(*epoch);
                w.u64(m.request);
                w.count(m.stage);
                w.u8(match m.payload {
                    Payload::Finished => 0,
                    Payload::Partial => 1,
                    Payload::Masked => 2,
                });
                w.count(m.from);
                w.count(m.channels.len());
                for (q, v) in &m.channels {
                    w.count(*q);
                    w.f32s(v);
                }
                if m.payload == Payload::Masked {
                    w.count(m.ring.len());
                    for (q, v) in &m.ring {
                        w.count(*q);
                        w.words(v);
                    }
                }
                write_trace(&mut w, &m.trace);
            }
            Envelope::Infer { request, input } => {
                w.u8(4);
                w.u64(*request);
                w.f32s(input);
            }
            Envelope::Result {
                logits,
                attempts,
                trace,
            } => {
                w.u8(5);
                w.f32s(logits);
                w.u32(*attempts);
                write_trace(&mut w, trace);
            }
            Envelope::Ack => w.u8(6),
            Envelope::Rejected(why) => {
                w.u8(7);
                w.str(why);
            }
            Envelope::Heartbeat { epoch } => {
                w.u8(8);
                w.u64(*epoch);
            }
            Envelope::Suspend { epoch, reason } => {
                w.u8(9);
                w.u64(*epoch);
                w.str(reason);
            }
            Envelope::Stats => w.u8(10),
            Envelope::StatsReply(json) => {
                w.u8(11);
                w.str(json);
            }
        }
        w.into_bytes()
    }

    /// Decodes a frame.
    pub fn decode(buf: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(buf, FRAME);
        let e = match r.u8()? {
            1 => Envelope::Register {
                role: r.string()?,
                class: veil_plan::DeviceClass {
                    name: r.string()?,
                    macs_per_s: r.f64()?,
                    memory_bytes: r.u64()?,
                    rate_bps: r.f64()?,
                },
                addr: r.string()?,
            },
            2 => {
                let json = r.take(r.remaining())?;
                let a: Assignment = serde_json::from_slice(json)
                    .map_err(|e| r.error(format!("assignment: {e}")))?;
                // A deployment is public structure that nodes index by: checked here, once.
                a.check().map_err(|m| r.error(format!("assignment: {m}")))?;
                return Ok(Envelope::Assign(Box::new(a)));
            }
            3 => {
                let epoch = r.u64()?;
                let request = r.u64()?;
                let stage = r.index()?;
                let payload = match r.u8()? {
                    0 => Payload::Finished,
                    1 => Payload::Partial,
                    2 => Payload::Masked,
                    b => return Err(r.error(format!("payload kind {b}"))),
                };
                let from = r.index()?;
                // A channel is its index and a counted vector: at least 8 bytes.
                let n = r.count(8)?;
                let mut channels = Vec::with_capacity(n);
                for _ in 0..n {
                    let q = r.index()?;
                    channels.push((q, r.f32s()?));
                }
                let mut ring = Vec::new();
                if payload == Payload::Masked {
                    let n = r.count(8)?;
                    ring.reserve(n);
                    for _ in 0..n {
                        let q = r.index()?;
                        ring.push((q, r.words()?));
                    }
                }
                let trace = read_trace(&mut r)?;
                Envelope::Deliver {
                    epoch,
                    msg: Message {
                        request,
                        stage,
                        payload,
                        from,
                        channels,
                        ring,
                        trace,
                    },
                }
            }
            4 => Envelope::Infer {
                request: r.u64()?,
                input: r.f32s()?,
            },
            5 => Envelope::Result {
                logits: r.f32s()?,
                attempts: r.u32()?,
                trace: read_trace(&mut r)?,
            },
            6 => Envelope::Ack,
            7 => Envelope::Rejected(r.string()?),
            8 => Envelope::Heartbeat { epoch: r.u64()? },
            9 => Envelope::Suspend {
                epoch: r.u64()?,
                reason: r.string()?,
            },
            10 => Envelope::Stats,
            11 => Envelope::StatsReply(r.string()?),
            k => return Err(r.error(format!("unknown kind {k}"))),
        };
        r.finish()?;
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_garbage_is_refused() {
        let record = TraceRecord {
            device: 2,
            stage: 1,
            macs: 117_600,
            wait_us: 12,
            compute_us: 340,
            sent_bytes: 4704,
            messages: 3,
        };
        let m = Message {
            request: 9,
            stage: 1,
            payload: Payload::Partial,
            from: 3,
            channels: vec![(0, vec![1.5, -2.0]), (5, vec![])],
            ring: Vec::new(),
            trace: vec![record.clone()],
        };
        for e in [
            Envelope::Deliver { epoch: 4, msg: m },
            Envelope::Infer {
                request: 1,
                input: vec![0.25; 7],
            },
            Envelope::Result {
                logits: vec![1.0, 2.0],
                attempts: 2,
                trace: vec![record.clone(), record],
            },
            Envelope::Rejected("no placement".into()),
            Envelope::Heartbeat { epoch: 7 },
            Envelope::Suspend {
                epoch: 8,
                reason: "5 helpers".into(),
            },
            Envelope::Stats,
            Envelope::StatsReply("{}".into()),
            Envelope::Register {
                role: "helper".into(),
                class: veil_plan::DeviceClass::new("custom", 123.5, 64, 20.0),
                addr: "127.0.0.1:1".into(),
            },
            Envelope::Ack,
        ] {
            let bytes = e.encode();
            assert_eq!(Envelope::decode(&bytes).expect("round trip"), e);
            for cut in 0..bytes.len() {
                assert!(
                    Envelope::decode(&bytes[..cut]).is_err(),
                    "{e:?} cut at {cut}"
                );
            }
            let mut long = bytes.clone();
            long.push(0);
            assert!(Envelope::decode(&long).is_err());
        }
        assert!(
            Envelope::decode(&[
                3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255
            ])
            .is_err()
        );
        assert!(Envelope::decode(&[2, b'{']).is_err());
    }

    #[test]
    fn masked_partial_sums_round_trip_and_stay_apart_from_plain_values() {
        let m = Message {
            request: 3,
            stage: 1,
            payload: Payload::Masked,
            from: 2,
            channels: Vec::new(),
            ring: vec![(4, vec![u64::MAX, 0, 1 << 63]), (9, vec![])],
            trace: Vec::new(),
        };
        let e = Envelope::Deliver { epoch: 5, msg: m };
        let bytes = e.encode();
        assert_eq!(Envelope::decode(&bytes).expect("decodes"), e);
        // A truncated ring section is refused.
        assert!(Envelope::decode(&bytes[..bytes.len() - 9]).is_err());
    }
}
