//! Byte encodings of everything the dealer and the sensor send to the servers, and of what
//! the servers return: model shares, per-batch material, input shares, output shares.
//! Decoding treats its input as hostile: every length is checked against the bytes left
//! before anything is allocated, and a short, long or inconsistent payload is an error
//! naming what was being read.
//!
//! The byte codec itself ([`Writer`], [`Reader`], [`WireError`]) is `veil-codec`'s, shared with
//! the runtime's frames.
//!
//! Key items: [`encode_model`], [`decode_model`], [`MODEL_FORMAT`],
//! [`encode_material`], [`decode_material`].

use crate::dcf::{CorrectionWord, DcfKey};
use crate::dealer::{Item, LinearShares, Material, ModelShares, RELU_PAYLOAD, ReluMaterial};
use crate::share::Shares;

pub use veil_codec::{Reader, WireError, Writer};

/// The format of model shares, their first byte: format 2 holds weights with
/// [`crate::ring::WEIGHT_FRAC_BITS`] fractional bits and biases with `FRAC_BITS +
/// WEIGHT_FRAC_BITS` (session 14; the shares before it had no format byte and 12-bit weights).
/// A server refuses shares of another format, so a dealer and servers built with different
/// weight encodings cannot silently disagree on the scale of the logits.
pub const MODEL_FORMAT: u8 = 2;

/// Encodes one server's model shares.
pub fn encode_model(m: &ModelShares) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(MODEL_FORMAT);
    w.count(m.layers.len());
    for l in &m.layers {
        w.words(&l.masked_weight);
        w.words(&l.weight_mask.0);
        w.words(&l.bias.0);
    }
    w.into_bytes()
}

/// Decodes model shares.
pub fn decode_model(buf: &[u8]) -> Result<ModelShares, WireError> {
    let mut r = Reader::new(buf, "model shares");
    let format = r.u8()?;
    if format != MODEL_FORMAT {
        return Err(r.error(format!(
            "format {format}, but this server reads format {MODEL_FORMAT} (weights with {} \
             fractional bits): the dealer and the servers must run the same veil version",
            crate::ring::WEIGHT_FRAC_BITS
        )));
    }
    // A layer is three counted word vectors: at least 12 bytes.
    let n = r.count(12)?;
    let mut layers = Vec::with_capacity(n);
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

fn encode_key(w: &mut Writer, k: &DcfKey<RELU_PAYLOAD>) {
    w.u8(k.bits as u8);
    w.u128(k.seed);
    for cw in &k.words {
        w.u128(cw.seed);
        for v in cw.value {
            w.u64(v);
        }
        w.u8(u8::from(cw.t_left) | (u8::from(cw.t_right) << 1));
    }
    for v in k.last {
        w.u64(v);
    }
}

fn decode_payload(r: &mut Reader<'_>) -> Result<[u64; RELU_PAYLOAD], WireError> {
    let mut out = [0u64; RELU_PAYLOAD];
    for v in &mut out {
        *v = r.u64()?;
    }
    Ok(out)
}

fn decode_key(r: &mut Reader<'_>) -> Result<DcfKey<RELU_PAYLOAD>, WireError> {
    let bits = u32::from(r.u8()?);
    if !(1..=64).contains(&bits) {
        return Err(r.error(format!("DCF key of {bits} bits")));
    }
    let seed = r.u128()?;
    let mut words = Vec::with_capacity(bits as usize);
    for _ in 0..bits {
        let seed = r.u128()?;
        let value = decode_payload(r)?;
        let t = r.u8()?;
        if t > 3 {
            return Err(r.error(format!("control bits byte {t}")));
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
        last: decode_payload(r)?,
    })
}

/// Encodes one server's material for one batch.
pub fn encode_material(m: &Material) -> Vec<u8> {
    let mut w = Writer::default();
    w.count(m.items.len());
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
                w.words(&r.rho.0);
                w.words(&r.rho_r.0);
                w.count(r.keys.len());
                for k in &r.keys {
                    encode_key(&mut w, k);
                }
            }
        }
    }
    w.into_bytes()
}

/// Decodes material; sizes are checked against the architecture later, by the server.
pub fn decode_material(buf: &[u8]) -> Result<Material, WireError> {
    let mut r = Reader::new(buf, "material");
    // An item is a tag and at least two counted word vectors: at least 9 bytes.
    let n = r.count(9)?;
    let mut items = Vec::with_capacity(n);
    for _ in 0..n {
        match r.u8()? {
            ITEM_LINEAR => items.push(Item::Linear {
                a: Shares(r.words()?),
                c: Shares(r.words()?),
            }),
            ITEM_RELU => {
                let (rr, rho, rho_r) = (r.words()?, r.words()?, r.words()?);
                // A key is at least 1 + 16 + 41 + 24 bytes: counts the rest cannot hold are
                // refused.
                let count = r.count(82)?;
                let mut keys = Vec::with_capacity(count);
                for _ in 0..count {
                    keys.push(decode_key(&mut r)?);
                }
                items.push(Item::Relu(ReluMaterial {
                    r: Shares(rr),
                    rho: Shares(rho),
                    rho_r: Shares(rho_r),
                    keys,
                }));
            }
            t => return Err(r.error(format!("unknown item tag {t}"))),
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
        Dealer::new_insecure_seeded(&arch, &w, 4)
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
        assert!(decode_material(huge.as_bytes()).is_err());
        assert!(decode_model(&[1, 0, 0]).is_err());
    }

    /// Shares of another format (an older dealer, 12-bit weights and no format byte) are
    /// refused with a message naming both formats, not decoded at the wrong scale.
    #[test]
    fn model_shares_of_another_format_are_refused() {
        let d = dealer();
        let bytes = encode_model(d.model_shares(0));
        assert_eq!(bytes[0], MODEL_FORMAT);
        let old = &bytes[1..];
        let err = decode_model(old).expect_err("shares without a format byte");
        let text = err.to_string();
        assert!(
            text.contains("format") && text.contains("same veil version"),
            "{text}"
        );
        let mut other = bytes.clone();
        other[0] = MODEL_FORMAT + 1;
        assert!(decode_model(&other).is_err());
    }
}
