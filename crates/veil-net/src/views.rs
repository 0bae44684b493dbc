//! What a device observed, recorded for an audit of a running deployment (`veil net audit`).
//!
//! A node told to record ([`crate::node::Node::record_views`]) keeps one [`Observation`] per
//! received channel: finished maps ([`Seen::Finished`], the inputs it holds, flat vectors
//! included), plain partial sums ([`Seen::Partial`], one per sender), masked partial sums
//! ([`Seen::Masked`]: only how many ring elements arrived; each contribution is uniform on its
//! own, as the security test `one_masked_partial_sum_looks_uniform_whatever_the_input` in
//! `tests/execute.rs` checks, so its content is not kept) and the complete sums it forms
//! for the maps it finishes ([`Seen::Sum`]: the pre-activation output, bias added, before
//! ReLU and pooling). A member process appends them to a log file ([`ViewLog`]); the audit
//! reads the log back ([`read_log`]) and lines each request's observations up into one vector
//! ([`assemble`]).
//!
//! Log format, on `veil-codec`: a sequence of batches, each a `u32` byte length followed by a
//! counted sequence of observations (request `u64`, stage, channel, sender as counts, kind
//! `u8`, values `f32`s, the number of ring elements as a count). The reader treats the file as hostile like every
//! decoder of veil's (sizes checked before allocating, trailing bytes refused).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use veil_codec::{Reader, WireError, Writer};

use crate::NetError;

/// What kind of value a device observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Seen {
    /// A finished output channel of a stage (an input map it holds, or a flat vector).
    Finished,
    /// One sender's plain partial sum for a channel this device finishes.
    Partial,
    /// One sender's masked partial sum (ring elements; uniform on its own, so only their
    /// number is recorded).
    Masked,
    /// The complete sum of a channel this device finishes, bias added, before the
    /// channel-wise layers: the layer's pre-activation output.
    Sum,
}

impl Seen {
    fn code(self) -> u8 {
        match self {
            Seen::Finished => 0,
            Seen::Partial => 1,
            Seen::Masked => 2,
            Seen::Sum => 3,
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            0 => Seen::Finished,
            1 => Seen::Partial,
            2 => Seen::Masked,
            3 => Seen::Sum,
            _ => return None,
        })
    }
}

/// One channel a device observed for one request.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// The node's request (attempt) id.
    pub request: u64,
    /// Stage whose output channel it is.
    pub stage: usize,
    /// Output channel of that stage.
    pub channel: usize,
    /// Sending device (this device for a [`Seen::Sum`]).
    pub from: usize,
    /// What it is.
    pub seen: Seen,
    /// Real values (empty for [`Seen::Masked`]).
    pub values: Vec<f32>,
    /// How many ring elements arrived ([`Seen::Masked`] only; 0 otherwise).
    pub ring_len: usize,
}

impl Observation {
    /// How many values (or ring elements) were observed.
    pub fn len(&self) -> usize {
        self.values.len().max(self.ring_len)
    }

    /// Nothing observed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Most bytes of a view log [`read_log`] reads.
pub const MAX_LOG_BYTES: u64 = 8 << 30;

/// Most ring elements one masked observation may claim (a whole frame of 8-byte elements).
pub const MAX_RING_LEN: usize = crate::grpc::MAX_FRAME / 8;

/// One batch of observations as a log record (length-prefixed).
pub fn encode_batch(batch: &[Observation]) -> Vec<u8> {
    let mut w = Writer::new();
    w.count(batch.len());
    for o in batch {
        w.u64(o.request);
        w.count(o.stage);
        w.count(o.channel);
        w.count(o.from);
        w.u8(o.seen.code());
        w.f32s(&o.values);
        w.count(o.ring_len);
    }
    let body = w.into_bytes();
    let mut out = Writer::with_capacity(body.len() + 4);
    out.count(body.len());
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&body);
    bytes
}

/// Decodes a whole log (a sequence of [`encode_batch`] records).
pub fn decode_log(buf: &[u8]) -> Result<Vec<Observation>, WireError> {
    let mut r = Reader::new(buf, "view log");
    let mut all = Vec::new();
    while r.remaining() > 0 {
        let len = r.count(1)?;
        let mut b = Reader::new(r.take(len)?, "view log batch");
        // request 8, three counts 12, kind 1, an empty sequence 4, a count 4.
        let n = b.count(29)?;
        for _ in 0..n {
            let request = b.u64()?;
            let (stage, channel, from) = (b.index()?, b.index()?, b.index()?);
            let code = b.u8()?;
            let seen = Seen::from_code(code)
                .ok_or_else(|| b.error(format!("unknown observation kind {code}")))?;
            let values = b.f32s()?;
            let ring_len = b.index()?;
            if ring_len > MAX_RING_LEN || (ring_len > 0 && seen != Seen::Masked) {
                return Err(b.error(format!(
                    "{ring_len} ring elements in a {seen:?} observation"
                )));
            }
            all.push(Observation {
                request,
                stage,
                channel,
                from,
                seen,
                values,
                ring_len,
            });
        }
        b.finish()?;
    }
    Ok(all)
}

/// A view log being written: each batch is appended with one write, so a reader after the
/// process ends sees whole batches.
pub struct ViewLog {
    file: std::fs::File,
    path: PathBuf,
}

impl ViewLog {
    /// Creates (truncates) the log at `path`.
    pub fn create(path: &Path) -> Result<Self, NetError> {
        let file = std::fs::File::create(path).map_err(|e| NetError::file(path, e))?;
        Ok(ViewLog {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Appends `batch` (nothing when empty).
    pub fn append(&mut self, batch: &[Observation]) -> Result<(), NetError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(&encode_batch(batch))
            .map_err(|e| NetError::file(&self.path, e))
    }
}

/// Reads the log at `path` (at most [`MAX_LOG_BYTES`]).
pub fn read_log(path: &Path) -> Result<Vec<Observation>, NetError> {
    let len = std::fs::metadata(path)
        .map_err(|e| NetError::file(path, e))?
        .len();
    if len > MAX_LOG_BYTES {
        return Err(NetError::Invalid(format!(
            "{}: a view log of {len} bytes (at most {MAX_LOG_BYTES})",
            path.display()
        )));
    }
    let buf = std::fs::read(path).map_err(|e| NetError::file(path, e))?;
    decode_log(&buf).map_err(|e| NetError::Invalid(format!("{}: {e}", path.display())))
}

/// One part of a device's view of a request: which channel, how it arrived, how long.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ViewPart {
    /// What it is.
    pub seen: Seen,
    /// Stage whose output channel it is.
    pub stage: usize,
    /// Channel.
    pub channel: usize,
    /// Sender.
    pub from: usize,
    /// Values (or ring elements).
    pub len: usize,
}

/// A device's observations lined up per request: the same parts, in the same order, for
/// every request.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceViews {
    /// The parts of one request's view, sorted (kind, stage, channel, sender).
    pub parts: Vec<ViewPart>,
    /// Request ids, ascending.
    pub requests: Vec<u64>,
    /// Per request, the real values of every part but the masked ones, in `parts` order.
    pub values: Vec<Vec<f32>>,
}

/// Lines `observations` up per request. Errors when two requests saw different parts (a
/// re-plan mid-run), a part twice, or a non-finite value.
pub fn assemble(observations: Vec<Observation>) -> Result<DeviceViews, NetError> {
    type Part = (Seen, usize, usize, usize);
    let mut by_request: BTreeMap<u64, BTreeMap<Part, Observation>> = BTreeMap::new();
    for o in observations {
        if o.values.iter().any(|v| !v.is_finite()) {
            return Err(NetError::Invalid(format!(
                "request {}: a non-finite value observed",
                o.request
            )));
        }
        let key = (o.seen, o.stage, o.channel, o.from);
        let request = o.request;
        if by_request
            .entry(request)
            .or_default()
            .insert(key, o)
            .is_some()
        {
            return Err(NetError::Invalid(format!(
                "request {request}: {key:?} observed twice"
            )));
        }
    }
    let Some(first) = by_request.values().next() else {
        return Ok(DeviceViews {
            parts: Vec::new(),
            requests: Vec::new(),
            values: Vec::new(),
        });
    };
    let parts: Vec<ViewPart> = first
        .iter()
        .map(|(&(seen, stage, channel, from), o)| ViewPart {
            seen,
            stage,
            channel,
            from,
            len: o.len(),
        })
        .collect();
    let mut views = DeviceViews {
        parts,
        requests: Vec::with_capacity(by_request.len()),
        values: Vec::with_capacity(by_request.len()),
    };
    for (request, seen) in by_request {
        let same = seen.len() == views.parts.len()
            && seen
                .iter()
                .zip(&views.parts)
                .all(|(((k, st, c, f), o), p)| {
                    (*k, *st, *c, *f) == (p.seen, p.stage, p.channel, p.from) && o.len() == p.len
                });
        if !same {
            return Err(NetError::Invalid(format!(
                "request {request} was seen in other parts than the first (re-planned mid-run?)"
            )));
        }
        let v: Vec<f32> = seen
            .into_values()
            .filter(|o| o.seen != Seen::Masked)
            .flat_map(|o| o.values)
            .collect();
        views.requests.push(request);
        views.values.push(v);
    }
    Ok(views)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(request: u64, seen: Seen, channel: usize, values: Vec<f32>) -> Observation {
        let ring_len = if seen == Seen::Masked {
            values.len()
        } else {
            0
        };
        Observation {
            request,
            stage: 1,
            channel,
            from: 2,
            seen,
            values: if seen == Seen::Masked {
                Vec::new()
            } else {
                values
            },
            ring_len,
        }
    }

    #[test]
    fn logs_round_trip_and_line_up_per_request() {
        let batch = vec![
            obs(2, Seen::Sum, 0, vec![1.0, 2.0]),
            obs(2, Seen::Masked, 0, vec![0.0; 2]),
            obs(1, Seen::Finished, 3, vec![5.0]),
            obs(1, Seen::Sum, 0, vec![3.0, 4.0]),
            obs(1, Seen::Masked, 0, vec![0.0; 2]),
            obs(2, Seen::Finished, 3, vec![6.0]),
        ];
        let mut log = encode_batch(&batch[..3]);
        log.extend(encode_batch(&batch[3..]));
        let back = decode_log(&log).expect("decodes");
        assert_eq!(back, batch);
        let v = assemble(back).expect("lines up");
        assert_eq!(v.requests, vec![1, 2]);
        assert_eq!(v.parts.len(), 3);
        assert_eq!(v.parts[0].seen, Seen::Finished);
        assert_eq!(v.values, vec![vec![5.0, 3.0, 4.0], vec![6.0, 1.0, 2.0]]);
    }

    #[test]
    fn differing_requests_and_bad_logs_are_refused() {
        let a = vec![
            obs(1, Seen::Sum, 0, vec![1.0]),
            obs(2, Seen::Sum, 1, vec![1.0]),
        ];
        assert!(assemble(a).is_err());
        let twice = vec![
            obs(1, Seen::Sum, 0, vec![1.0]),
            obs(1, Seen::Sum, 0, vec![1.0]),
        ];
        assert!(assemble(twice).is_err());
        assert!(assemble(vec![obs(1, Seen::Sum, 0, vec![f32::NAN])]).is_err());
        let log = encode_batch(&[obs(1, Seen::Sum, 0, vec![1.0])]);
        for cut in 0..log.len() {
            assert!(decode_log(&log[..cut]).is_err() || cut == 0);
        }
        let mut bad = log.clone();
        bad[4 + 4 + 8 + 12] = 9; // the kind byte
        assert!(decode_log(&bad).is_err());
        // Ring elements claimed by a real-valued observation, or more than a frame holds.
        let mut claim = obs(1, Seen::Sum, 0, vec![1.0]);
        claim.ring_len = 3;
        assert!(decode_log(&encode_batch(&[claim])).is_err());
        let mut huge = obs(1, Seen::Masked, 0, Vec::new());
        huge.ring_len = MAX_RING_LEN + 1;
        assert!(decode_log(&encode_batch(&[huge])).is_err());
    }

    proptest::proptest! {
        /// Any bytes decode to observations or to an error, never a panic; a valid log with
        /// any byte changed likewise.
        #[test]
        fn hostile_logs_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256),
                                    at in 0usize..64, byte in proptest::num::u8::ANY) {
            let _ = decode_log(&bytes);
            let mut log = encode_batch(&[obs(1, Seen::Partial, 2, vec![1.0, -2.0]), obs(1, Seen::Masked, 0, vec![0.0; 3])]);
            let i = at % log.len();
            log[i] = byte;
            let _ = decode_log(&log);
        }
    }
}
