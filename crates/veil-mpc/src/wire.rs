//! Byte encodings of everything the dealer and the sensor send to the servers, and of what
//! the servers return: model shares, per-batch material, input shares, output shares.
//! Decoding treats its input as hostile: every length is checked against the bytes left
//! before anything is allocated, and a short, long or inconsistent payload is an error
//! naming what was being read.
//!
//! Key items: [`Writer`], [`Reader`], [`encode_model`], [`decode_model`],
//! [`encode_material`], [`decode_material`].

use crate::dcf::{CorrectionWord, DcfKey};
use crate::dealer::{Item, LinearShares, Material, ModelShares, ReluMaterial};
use crate::share::Shares;

/// Appends little-endian fields to a byte vector.
#[derive(Default)]
pub struct Writer {
    /// The bytes so far.
    pub buf: Vec<u8>,
}

impl Writer {
    /// A `u8`.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// A `u32`.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A `u64`.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A `u128`.
    pub fn u128(&mut self, v: u128) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A length-prefixed word vector.
    pub fn words(&mut self, v: &[u64]) {
        self.u32(v.len() as u32);
        self.buf.reserve(v.len() * 8);
        for w in v {
            self.u64(*w);
        }
    }

    /// Length-prefixed bytes.
    pub fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.buf.extend_from_slice(v);
    }
}

/// Reads fields written by [`Writer`], failing on truncation.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

/// A decoding failure: what was being read and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what}: {message}")]
pub struct WireError {
    /// What was being decoded.
    pub what: &'static str,
    /// Why it failed.
    pub message: String,
}

impl<'a> Reader<'a> {
    /// Reads `buf`, naming it `what` in errors.
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    fn err(&self, message: String) -> WireError {
        WireError {
            what: self.what,
            message,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.buf.len() - self.pos < n {
            return Err(self.err(format!(
                "truncated at byte {} (needed {n} more, {} left)",
                self.pos,
                self.buf.len() - self.pos
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// A `u8`.
    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    /// A `u32`.
    pub fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A `u64`.
    pub fn u64(&mut self) -> Result<u64, WireError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A `u128`.
    pub fn u128(&mut self) -> Result<u128, WireError> {
        let b = self.take(16)?;
        let mut a = [0u8; 16];
        a.copy_from_slice(b);
        Ok(u128::from_le_bytes(a))
    }

    /// A length-prefixed word vector (the length is checked against the bytes left first).
    pub fn words(&mut self) -> Result<Vec<u64>, WireError> {
        let n = self.u32()? as usize;
        let bytes = self.take(
            n.checked_mul(8)
                .ok_or_else(|| self.err("length overflow".into()))?,
        )?;
        Ok(bytes
            .chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                u64::from_le_bytes(a)
            })
            .collect())
    }

    /// Length-prefixed bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<(), WireError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(self.err(format!("{} trailing bytes", self.buf.len() - self.pos)))
        }
    }
}

/// Encodes one server's model shares.
pub fn encode_model(m: &ModelShares) -> Vec<u8> {
    let mut w = Writer::default();
    w.u32(m.layers.len() as u32);
    for l in &m.layers {
        w.words(&l.masked_weight);
        w.words(&l.weight_mask.0);
        w.words(&l.bias.0);
    }
    w.buf
}

/// Decodes model shares.
pub fn decode_model(buf: &[u8]) -> Result<ModelShares, WireError> {
    let mut r = Reader::new(buf, "model shares");
    let n = r.u32()? as usize;
    let mut layers = Vec::new();
    for _ in 0..n {
        layers.push(LinearShares {
            masked_weight: r.words()?,
            weight_mask: Shares(r.words()?),
            bias: Shares(r.words()?),
        });
    }
    r.finish()?;
    Ok(ModelShares { layers })
}

const ITEM_LINEAR: u8 = 1;
const ITEM_RELU: u8 = 2;

fn encode_key(w: &mut Writer, k: &DcfKey) {
    w.u8(k.bits as u8);
    w.u128(k.seed);
    for cw in &k.words {
        w.u128(cw.seed);
        w.u64(cw.value);
        w.u8(u8::from(cw.t_left) | (u8::from(cw.t_right) << 1));
    }
    w.u64(k.last);
}

fn decode_key(r: &mut Reader<'_>) -> Result<DcfKey, WireError> {
    let bits = u32::from(r.u8()?);
    if !(1..=64).contains(&bits) {
        return Err(r.err(format!("DCF key of {bits} bits")));
    }
    let seed = r.u128()?;
    let mut words = Vec::with_capacity(bits as usize);
    for _ in 0..bits {
        let seed = r.u128()?;
        let value = r.u64()?;
        let t = r.u8()?;
        if t > 3 {
            return Err(r.err(format!("control bits byte {t}")));
        }
        words.push(CorrectionWord {
            seed,
            value,
            t_left: t & 1 == 1,
            t_right: t & 2 == 2,
        });
    }
    Ok(DcfKey {
        bits,
        seed,
        words,
        last: r.u64()?,
    })
}

/// Encodes one server's material for one batch.
pub fn encode_material(m: &Material) -> Vec<u8> {
    let mut w = Writer::default();
    w.u32(m.items.len() as u32);
    for it in &m.items {
        match it {
            Item::Linear { a, c } => {
                w.u8(ITEM_LINEAR);
                w.words(&a.0);
                w.words(&c.0);
            }
            Item::Relu(r) => {
                w.u8(ITEM_RELU);
                w.words(&r.r.0);
                w.words(&r.msb.0);
                w.words(&r.b.0);
                w.words(&r.c.0);
                w.u32(r.keys.len() as u32);
                for k in &r.keys {
                    encode_key(&mut w, k);
                }
            }
        }
    }
    w.buf
}

/// Decodes material; sizes are checked against the architecture later, by the server.
pub fn decode_material(buf: &[u8]) -> Result<Material, WireError> {
    let mut r = Reader::new(buf, "material");
    let n = r.u32()? as usize;
    let mut items = Vec::new();
    for _ in 0..n {
        match r.u8()? {
            ITEM_LINEAR => items.push(Item::Linear {
                a: Shares(r.words()?),
                c: Shares(r.words()?),
            }),
            ITEM_RELU => {
                let (rr, msb, b, c) = (r.words()?, r.words()?, r.words()?, r.words()?);
                let count = r.u32()? as usize;
                // A key is at least 1 + 16 + 25 + 8 bytes: refuse counts the rest cannot hold.
                if count > buf.len() / 50 {
                    return Err(r.err(format!("{count} DCF keys cannot fit")));
                }
                let mut keys = Vec::with_capacity(count);
                for _ in 0..count {
                    keys.push(decode_key(&mut r)?);
                }
                items.push(Item::Relu(ReluMaterial {
                    r: Shares(rr),
                    msb: Shares(msb),
                    b: Shares(b),
                    c: Shares(c),
                    keys,
                }));
            }
            t => return Err(r.err(format!("unknown item tag {t}"))),
        }
    }
    r.finish()?;
    Ok(Material { items })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dealer::Dealer;
    use crate::model::{Tensors, compile};

    fn dealer() -> Dealer {
        let spec = veil_spec::zoo::model("minionn").expect("zoo");
        let mut t = Tensors::new();
        for e in veil_spec::weights::layout(&spec).expect("layout") {
            let n = e.shape.iter().product();
            t.insert(e.name, (e.shape, vec![0.01; n]));
        }
        let (arch, w) = compile(&spec, &t).expect("compile");
        Dealer::new(&arch, &w, 4)
    }

    #[test]
    fn model_and_material_round_trip() {
        let mut d = dealer();
        let m = d.model_shares(1).clone();
        assert_eq!(decode_model(&encode_model(&m)).expect("model"), m);
        let [mat, _] = d.material(1);
        let bytes = encode_material(&mat);
        assert_eq!(decode_material(&bytes).expect("material"), mat);
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error() {
        let mut d = dealer();
        let [mat, _] = d.material(1);
        let bytes = encode_material(&mat);
        // Every prefix fails cleanly (a sample of cut points, including tiny ones).
        for cut in (0..bytes.len())
            .step_by(bytes.len() / 97 + 1)
            .chain([0, 1, 5, bytes.len() - 1])
        {
            assert!(decode_material(&bytes[..cut]).is_err(), "prefix {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(
            decode_material(&extra)
                .expect_err("trailing")
                .to_string()
                .contains("trailing")
        );
        let mut bad_tag = bytes.clone();
        bad_tag[4] = 9;
        assert!(decode_material(&bad_tag).is_err());
        // A huge claimed length does not allocate.
        let mut huge = Writer::default();
        huge.u32(1);
        huge.u8(ITEM_LINEAR);
        huge.u32(u32::MAX);
        assert!(decode_material(&huge.buf).is_err());
        assert!(decode_model(&[1, 0, 0]).is_err());
    }
}
