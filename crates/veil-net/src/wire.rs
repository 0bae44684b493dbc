//! Frames of the runtime's one gRPC method: a kind byte, then the kind's fields. Node
//! messages (the hot path) are binary; the one-off assignment is JSON. Decoding checks every
//! length against the bytes left and rejects trailing bytes: a malformed frame is an error
//! naming what was being read, never a panic.
//!
//! Key items: [`Envelope`], [`Envelope::encode`], [`Envelope::decode`].

use serde::{Deserialize, Serialize};

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

/// A decoding failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed frame: {0}")]
pub struct WireError(pub String);

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.buf.len() - self.at < n {
            return Err(WireError(format!(
                "truncated at byte {} (need {n})",
                self.at
            )));
        }
        let s = &self.buf[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn f32s(&mut self) -> Result<Vec<f32>, WireError> {
        let n = self.u32()? as usize;
        let b = self.take(
            n.checked_mul(4)
                .ok_or_else(|| WireError("length overflow".into()))?,
        )?;
        Ok(b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
    fn trace(&mut self) -> Result<Vec<TraceRecord>, WireError> {
        let n = self.u32()? as usize;
        if n > (self.buf.len() - self.at) / TRACE_RECORD_BYTES {
            return Err(WireError(format!("{n} trace records cannot fit")));
        }
        (0..n)
            .map(|_| {
                Ok(TraceRecord {
                    device: self.u32()? as usize,
                    stage: self.u32()? as usize,
                    macs: self.u64()?,
                    wait_us: self.u64()?,
                    compute_us: self.u64()?,
                    sent_bytes: self.u64()?,
                    messages: self.u64()?,
                })
            })
            .collect()
    }
    fn string(&mut self) -> Result<String, WireError> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| WireError("string is not UTF-8".into()))
    }
}

fn put_f32s(out: &mut Vec<u8>, v: &[f32]) {
    out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
}

fn put_trace(out: &mut Vec<u8>, trace: &[TraceRecord]) {
    out.extend_from_slice(&(trace.len() as u32).to_le_bytes());
    for t in trace {
        out.extend_from_slice(&(t.device as u32).to_le_bytes());
        out.extend_from_slice(&(t.stage as u32).to_le_bytes());
        for v in [t.macs, t.wait_us, t.compute_us, t.sent_bytes, t.messages] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

impl Envelope {
    /// Encodes the frame.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Envelope::Register { role, class, addr } => {
                out.push(1);
                put_str(&mut out, role);
                put_str(&mut out, &class.name);
                out.extend_from_slice(&class.macs_per_s.to_le_bytes());
                out.extend_from_slice(&class.memory_bytes.to_le_bytes());
                out.extend_from_slice(&class.rate_bps.to_le_bytes());
                put_str(&mut out, addr);
            }
            Envelope::Assign(a) => {
                out.push(2);
                out.extend(serde_json::to_vec(a).unwrap_or_default());
            }
            Envelope::Deliver { epoch, msg: m } => {
                out.push(3);
                out.extend_from_slice(&epoch.to_le_bytes());
                out.extend_from_slice(&m.request.to_le_bytes());
                out.extend_from_slice(&(m.stage as u32).to_le_bytes());
                out.push(u8::from(m.payload == Payload::Partial));
                out.extend_from_slice(&(m.from as u32).to_le_bytes());
                out.extend_from_slice(&(m.channels.len() as u32).to_le_bytes());
                for (q, v) in &m.channels {
                    out.extend_from_slice(&(*q as u32).to_le_bytes());
                    put_f32s(&mut out, v);
                }
                put_trace(&mut out, &m.trace);
            }
            Envelope::Infer { request, input } => {
                out.push(4);
                out.extend_from_slice(&request.to_le_bytes());
                put_f32s(&mut out, input);
            }
            Envelope::Result {
                logits,
                attempts,
                trace,
            } => {
                out.push(5);
                put_f32s(&mut out, logits);
                out.extend_from_slice(&attempts.to_le_bytes());
                put_trace(&mut out, trace);
            }
            Envelope::Ack => out.push(6),
            Envelope::Rejected(why) => {
                out.push(7);
                put_str(&mut out, why);
            }
            Envelope::Heartbeat { epoch } => {
                out.push(8);
                out.extend_from_slice(&epoch.to_le_bytes());
            }
            Envelope::Suspend { epoch, reason } => {
                out.push(9);
                out.extend_from_slice(&epoch.to_le_bytes());
                put_str(&mut out, reason);
            }
            Envelope::Stats => out.push(10),
            Envelope::StatsReply(json) => {
                out.push(11);
                put_str(&mut out, json);
            }
        }
        out
    }

    /// Decodes a frame.
    pub fn decode(buf: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader { buf, at: 0 };
        let e = match r.u8()? {
            1 => Envelope::Register {
                role: r.string()?,
                class: veil_plan::DeviceClass {
                    name: r.string()?,
                    macs_per_s: f64::from_bits(r.u64()?),
                    memory_bytes: r.u64()?,
                    rate_bps: f64::from_bits(r.u64()?),
                },
                addr: r.string()?,
            },
            2 => {
                let a: Assignment = serde_json::from_slice(&buf[1..])
                    .map_err(|e| WireError(format!("assignment: {e}")))?;
                return Ok(Envelope::Assign(Box::new(a)));
            }
            3 => {
                let epoch = r.u64()?;
                let request = r.u64()?;
                let stage = r.u32()? as usize;
                let payload = match r.u8()? {
                    0 => Payload::Finished,
                    1 => Payload::Partial,
                    b => return Err(WireError(format!("payload kind {b}"))),
                };
                let from = r.u32()? as usize;
                let n = r.u32()? as usize;
                if n > buf.len() / 8 {
                    return Err(WireError(format!("{n} channels cannot fit")));
                }
                let mut channels = Vec::with_capacity(n);
                for _ in 0..n {
                    let q = r.u32()? as usize;
                    channels.push((q, r.f32s()?));
                }
                let trace = r.trace()?;
                Envelope::Deliver {
                    epoch,
                    msg: Message {
                        request,
                        stage,
                        payload,
                        from,
                        channels,
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
                trace: r.trace()?,
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
            k => return Err(WireError(format!("unknown kind {k}"))),
        };
        if r.at != buf.len() {
            return Err(WireError(format!("{} trailing bytes", buf.len() - r.at)));
        }
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
}
