//! The link between the two servers during the online phase, and the frame format shared by
//! every transport.
//!
//! A frame is `len: u32 LE` (bytes after this field), `kind: u8`, `step: u32 LE`, then the
//! payload. An *open* frame carries a vector of `u64` (LE) that the sender contributes to
//! opening a masked value: both servers send their frame and read the peer's in the same
//! round ([`Channel::exchange`]). The receiver checks kind, step and length against what the
//! protocol expects at that point; anything else aborts with [`MpcError::Protocol`] (or
//! [`MpcError::Malformed`] when the bytes do not decode).
//!
//! [`MemoryChannel`] is the in-process double for tests: it moves the very same frames over
//! `std::sync::mpsc`, so its byte and round counts ([`LinkStats`]) equal the TCP transport's
//! (application bytes; TLS record overhead is not counted by either).
//!
//! Key items: [`Channel`], [`LinkStats`], [`MemoryChannel`], [`encode_frame`],
//! [`decode_open`], [`FRAME_HEADER`].

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::Duration;

use veil_codec::{Reader, WireError, Writer};

use crate::{MpcError, Violation};

/// Bytes of a frame before its payload: length (4), kind (1), step (4).
pub const FRAME_HEADER: usize = 9;

/// Frame kind of an opening share.
pub const KIND_OPEN: u8 = 1;

/// Largest frame accepted (2 GiB, enough for a batch of 64 `lenet_large` samples' material,
/// about 1 GB per server): a peer claiming more is refused before allocating.
pub const MAX_FRAME: usize = 1 << 31;

/// Bytes and rounds one server saw on its link to the other.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frame bytes sent.
    pub bytes_sent: u64,
    /// Frame bytes received.
    pub bytes_received: u64,
    /// Exchanges (communication rounds).
    pub rounds: u64,
}

/// One server's link to the other during the online phase.
pub trait Channel {
    /// Sends `values` (each below `2^bits`, `bits` in 1..=64) as the open frame of `step`,
    /// packed to `ceil(bits / 8)` bytes each, and returns the peer's open frame of the same
    /// step, which must hold exactly `values.len()` words of the same width, each below
    /// `2^bits`.
    fn exchange(&mut self, step: u32, values: &[u64], bits: u32) -> Result<Vec<u64>, MpcError>;

    /// Counters so far.
    fn stats(&self) -> LinkStats;
}

/// Writes a frame header: the `u32` length of what follows it (kind, step and a payload of
/// `payload_len` bytes), the kind byte and the step. The only writer of headers.
fn write_header(w: &mut Writer, kind: u8, step: u32, payload_len: usize) {
    w.count(FRAME_HEADER - 4 + payload_len);
    w.u8(kind);
    w.u32(step);
}

/// Encodes a frame of `kind` and `step` around `payload`.
pub fn encode_frame_bytes(kind: u8, step: u32, payload: &[u8]) -> Vec<u8> {
    let mut w = Writer::with_capacity(FRAME_HEADER + payload.len());
    write_header(&mut w, kind, step, payload.len());
    w.raw(payload);
    w.into_bytes()
}

/// Bytes per value of an open frame of `bits`-bit values (`bits` clamped to 1..=64).
pub fn open_width(bits: u32) -> usize {
    bits.clamp(1, 64).div_ceil(8) as usize
}

/// Encodes an open frame whose payload is `values`, each as its low [`open_width`]`(bits)`
/// bytes (no count: the header's length implies it). Values must be below `2^bits`.
pub fn encode_frame(kind: u8, step: u32, values: &[u64], bits: u32) -> Vec<u8> {
    let width = open_width(bits);
    let mut w = Writer::with_capacity(FRAME_HEADER + values.len() * width);
    write_header(&mut w, kind, step, values.len() * width);
    w.packed_words(values, width);
    w.into_bytes()
}

/// Splits a frame body (a frame without its 4-byte length) into kind, step and payload.
pub fn split_body(body: &[u8]) -> Result<(u8, u32, &[u8]), WireError> {
    let mut r = Reader::new(body, "frame");
    let kind = r.u8()?;
    let step = r.u32()?;
    let payload = r.take(r.remaining())?;
    Ok((kind, step, payload))
}

/// Decodes an open frame (`frame` without its 4-byte length prefix) and checks that it is the
/// expected step with `expected` values of `bits` bits (packed to [`open_width`] bytes), each
/// below `2^bits`. `peer` names the sender in errors.
pub fn decode_open(
    frame: &[u8],
    step: u32,
    expected: usize,
    bits: u32,
    peer: &str,
) -> Result<Vec<u64>, MpcError> {
    let step_name = || format!("open {step}");
    let violation = |violation| MpcError::Protocol {
        peer: peer.to_string(),
        step: step_name(),
        violation,
    };
    let malformed = |source| MpcError::Malformed {
        peer: peer.to_string(),
        step: step_name(),
        source,
    };
    if frame.len() < FRAME_HEADER - 4 {
        return Err(violation(Violation::Truncated(frame.len())));
    }
    let (kind, got_step, payload) = split_body(frame).map_err(malformed)?;
    if kind != KIND_OPEN {
        return Err(violation(Violation::UnexpectedKind { kind }));
    }
    if got_step != step {
        return Err(violation(Violation::WrongStep(got_step)));
    }
    let width = open_width(bits);
    if Some(payload.len()) != expected.checked_mul(width) {
        return Err(violation(Violation::PayloadSize {
            got: payload.len(),
            expected,
            width,
        }));
    }
    let values = Reader::new(payload, "open frame")
        .packed_words(expected, width)
        .map_err(malformed)?;
    if bits < 64 && values.iter().any(|v| v >> bits != 0) {
        return Err(violation(Violation::OpenedTooWide(bits)));
    }
    Ok(values)
}

/// In-process link (tests): frames over channels, counted like the TCP transport.
pub struct MemoryChannel {
    to_peer: Sender<Vec<u8>>,
    from_peer: Receiver<Vec<u8>>,
    peer: String,
    timeout: Duration,
    stats: LinkStats,
}

impl MemoryChannel {
    /// A connected pair (party 0's end, party 1's end).
    pub fn pair() -> (MemoryChannel, MemoryChannel) {
        let (a_tx, a_rx) = channel();
        let (b_tx, b_rx) = channel();
        let end = |to_peer, from_peer, peer: &str| MemoryChannel {
            to_peer,
            from_peer,
            peer: peer.to_string(),
            timeout: Duration::from_secs(60),
            stats: LinkStats::default(),
        };
        (end(a_tx, b_rx, "E2"), end(b_tx, a_rx, "E1"))
    }

    /// Sends raw bytes as if they were a frame (tests of malformed input).
    pub fn send_raw(&mut self, frame: Vec<u8>) -> Result<(), MpcError> {
        self.to_peer.send(frame).map_err(|_| MpcError::Closed {
            peer: self.peer.clone(),
            during: "before sending".into(),
        })
    }
}

impl Channel for MemoryChannel {
    fn exchange(&mut self, step: u32, values: &[u64], bits: u32) -> Result<Vec<u64>, MpcError> {
        let frame = encode_frame(KIND_OPEN, step, values, bits);
        self.stats.bytes_sent += frame.len() as u64;
        self.send_raw(frame)?;
        let got = self
            .from_peer
            .recv_timeout(self.timeout)
            .map_err(|e| match e {
                RecvTimeoutError::Timeout => MpcError::Timeout {
                    peer: self.peer.clone(),
                    awaited: format!("open frame of step {step}"),
                    after: self.timeout,
                },
                RecvTimeoutError::Disconnected => MpcError::Closed {
                    peer: self.peer.clone(),
                    during: format!("while waiting for open {step}"),
                },
            })?;
        self.stats.bytes_received += got.len() as u64;
        self.stats.rounds += 1;
        if got.len() < 4 {
            return Err(MpcError::Protocol {
                peer: self.peer.clone(),
                step: format!("open {step}"),
                violation: Violation::Truncated(got.len()),
            });
        }
        let len = usize::try_from(u32::from_le_bytes([got[0], got[1], got[2], got[3]]))
            .unwrap_or(usize::MAX);
        if len != got.len() - 4 {
            return Err(MpcError::Protocol {
                peer: self.peer.clone(),
                step: format!("open {step}"),
                violation: Violation::LengthMismatch {
                    field: len,
                    body: got.len() - 4,
                },
            });
        }
        decode_open(&got[4..], step, values.len(), bits, &self.peer)
    }

    fn stats(&self) -> LinkStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bad_frames_are_refused() {
        let f = encode_frame(KIND_OPEN, 7, &[1, u64::MAX], 64);
        assert_eq!(f.len(), FRAME_HEADER + 16);
        assert_eq!(
            decode_open(&f[4..], 7, 2, 64, "E2").expect("ok"),
            vec![1, u64::MAX]
        );
        for (frame, step, n, what) in [
            (&f[4..6], 7, 2, "truncated"),
            (&f[4..], 8, 2, "step 7"),
            (&f[4..], 7, 3, "expected 24"),
        ] {
            let e = decode_open(frame, step, n, 64, "E2")
                .expect_err(what)
                .to_string();
            assert!(e.contains(what) && e.contains("E2"), "{e}");
        }
        let mut g = f.clone();
        g[4] = 9;
        assert!(decode_open(&g[4..], 7, 2, 64, "E2").is_err());
        // Packed 40-bit values: 5 bytes each, and a value at or above 2^40 is refused.
        let p = encode_frame(KIND_OPEN, 3, &[(1 << 40) - 1, 5], 40);
        assert_eq!(p.len(), FRAME_HEADER + 10);
        assert_eq!(
            decode_open(&p[4..], 3, 2, 40, "E2").expect("packed"),
            vec![(1 << 40) - 1, 5]
        );
        let wide = encode_frame(KIND_OPEN, 3, &[1 << 39, 5], 39);
        let e = decode_open(&wide[4..], 3, 2, 39, "E2")
            .expect_err("wide")
            .to_string();
        assert!(e.contains("wider than 39 bits"), "{e}");
    }

    #[test]
    fn memory_pair_exchanges_and_counts() {
        let (mut a, mut b) = MemoryChannel::pair();
        let t = std::thread::spawn(move || {
            let got = b.exchange(0, &[5, 6, 7], 64).expect("b");
            (got, b.stats())
        });
        let got = a.exchange(0, &[1, 2, 3], 64).expect("a");
        let (got_b, stats_b) = t.join().expect("join");
        assert_eq!((got, got_b), (vec![5, 6, 7], vec![1, 2, 3]));
        let want = LinkStats {
            bytes_sent: (FRAME_HEADER + 24) as u64,
            bytes_received: (FRAME_HEADER + 24) as u64,
            rounds: 1,
        };
        assert_eq!((a.stats(), stats_b), (want, want));
    }
}
