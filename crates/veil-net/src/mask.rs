//! Masked partial sums: a channel-partitioned stage's partial sums travel in the ring
//! `Z_2^64` (fixed point, [`FRACTION_BITS`] fraction bits) under masks that cancel in the
//! sum, so the device that finishes a map learns the complete sum and nothing about any one
//! device's contribution (beyond what the sum and its own contribution imply).
//!
//! Keys: for every plan epoch the coordinator draws a 256-bit key per pair of devices from the
//! OS CSPRNG and hands each device only the keys of its own pairs ([`PairKeys`], inside the
//! assignment, over mutual TLS). Device `i`'s mask of element `t` of channel `q` of stage `s`
//! in request `r` is `sum over the other holders j of sign(i, j) * PRF(k_ij; r, s, q, t)`,
//! with `sign = +1` when `i < j` and `-1` otherwise, so the masks of all holders of the stage
//! sum to zero. The PRF is the ChaCha20 keystream of `k_ij` at stream `r`, position
//! `(s, q, t)`.
//!
//! Threat model: honest-but-curious helpers that do not collude with each other or with the
//! coordinator; the coordinator (which holds every weight anyway) is trusted to deal the keys
//! and forget them. What masking cannot hide: with two holders of a stage, one of which
//! finishes the map, the sum minus its own contribution *is* the other's contribution.
//!
//! Error: encoding rounds each value to the nearest multiple of `2^-16`, so a sum of `n`
//! partial sums differs from the plain sum by at most `n * 2^-17` per element (plus the
//! plain sum's own float rounding). Values beyond `2^40` in magnitude are refused.
//!
//! Key items: [`PairKeys`], [`deal`], [`encode`], [`decode`], [`FRACTION_BITS`].

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

/// Fraction bits of the fixed-point encoding.
pub const FRACTION_BITS: u32 = 16;

/// Bytes of one ring element on the wire (a masked partial-sum value).
pub const RING_BYTES: u64 = 8;

/// Largest magnitude a masked value may have (`2^40`: far below the ring's `2^47` of
/// integer range at 16 fraction bits, so sums of up to 128 holders cannot wrap).
pub const MAX_MAGNITUDE: f32 = (1u64 << 40) as f32;

/// Most stages the PRF's position can address.
pub const MAX_STAGES: usize = 1 << 12;
/// Most channels per stage the PRF's position can address.
pub const MAX_CHANNELS: usize = 1 << 20;
/// Most holders of one stage: 64 values of at most [`MAX_MAGNITUDE`] (`2^56` encoded) sum to
/// at most `2^62`, so the ring sum never wraps into the sign bit.
pub const MAX_HOLDERS: usize = 64;

/// The per-element rounding bound of [`encode`]: half a unit of `2^-FRACTION_BITS`.
pub fn rounding_bound() -> f32 {
    0.5 / (1u64 << FRACTION_BITS) as f32
}

/// `v` in fixed point in the ring; `None` when it is not finite or beyond [`MAX_MAGNITUDE`].
pub fn encode(v: f32) -> Option<u64> {
    if !v.is_finite() || v.abs() > MAX_MAGNITUDE {
        return None;
    }
    let scaled = (f64::from(v) * (1u64 << FRACTION_BITS) as f64).round();
    Some(scaled as i64 as u64)
}

/// The fixed-point ring element `x` as a float.
pub fn decode(x: u64) -> f32 {
    (x as i64 as f64 / (1u64 << FRACTION_BITS) as f64) as f32
}

/// One device's keys for one plan epoch: a 256-bit key shared with each other device.
/// Secret: its `Debug` prints only the device ids.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairKeys {
    /// `other device -> key shared with it`.
    keys: BTreeMap<usize, [u8; 32]>,
}

impl std::fmt::Debug for PairKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairKeys")
            .field("peers", &self.keys.keys().collect::<Vec<_>>())
            .field("keys", &"<redacted>")
            .finish()
    }
}

/// Draws a key for every pair of `devices` from `rng` (the OS CSPRNG outside tests) and
/// returns each device's share of them.
pub fn deal(devices: &[usize], rng: &mut impl rand::CryptoRng) -> BTreeMap<usize, PairKeys> {
    let mut out: BTreeMap<usize, PairKeys> =
        devices.iter().map(|&d| (d, PairKeys::default())).collect();
    for (n, &i) in devices.iter().enumerate() {
        for &j in &devices[n + 1..] {
            if i == j {
                continue;
            }
            let mut key = [0u8; 32];
            rng.fill_bytes(&mut key);
            if let Some(k) = out.get_mut(&i) {
                k.keys.insert(j, key);
            }
            if let Some(k) = out.get_mut(&j) {
                k.keys.insert(i, key);
            }
        }
    }
    out
}

impl PairKeys {
    /// Whether this device has a key with every other device of `holders`.
    pub fn covers(&self, me: usize, holders: &[usize]) -> bool {
        holders
            .iter()
            .all(|h| *h == me || self.keys.contains_key(h))
    }

    /// Adds device `me`'s mask for channel `q` of stage `s` in request `r` to `values`
    /// (wrapping), the holders of the stage being `holders`. Errors name a holder this device
    /// has no key with, or a stage/channel beyond the PRF's positions.
    pub fn add_mask(
        &self,
        me: usize,
        holders: &[usize],
        (r, s, q): (u64, usize, usize),
        values: &mut [u64],
    ) -> Result<(), String> {
        if s >= MAX_STAGES || q >= MAX_CHANNELS {
            return Err(format!("stage {s} channel {q} beyond the mask's positions"));
        }
        for &j in holders.iter().filter(|&&j| j != me) {
            let key = self
                .keys
                .get(&j)
                .ok_or_else(|| format!("no mask key shared with device {j}"))?;
            let mut prf = ChaCha20Rng::from_seed(*key);
            prf.set_stream(r);
            // 2^36 words per channel: two per element, so up to 2^35 elements.
            prf.set_word_pos((((s << 20) | q) as u128) << 36);
            for v in values.iter_mut() {
                let m: u64 = prf.random();
                *v = if me < j {
                    v.wrapping_add(m)
                } else {
                    v.wrapping_sub(m)
                };
            }
        }
        Ok(())
    }
}

/// Masked partial sums grouped by destination: `to -> [(channel, ring elements)]`.
pub type MaskedGroups = BTreeMap<usize, Vec<(usize, Vec<u64>)>>;

/// Partial sums grouped by destination (`to -> [(channel, values)]`), encoded and masked by
/// device `me` for stage `s` of request `r` (the stage's holders being `holders`). Errors: a
/// value that is not finite or beyond [`MAX_MAGNITUDE`], or a missing key.
pub fn mask_groups(
    keys: &PairKeys,
    me: usize,
    holders: &[usize],
    (r, s): (u64, usize),
    groups: BTreeMap<usize, Vec<(usize, Vec<f32>)>>,
) -> Result<MaskedGroups, String> {
    let mut out = BTreeMap::new();
    for (to, channels) in groups {
        let mut ring = Vec::with_capacity(channels.len());
        for (q, values) in channels {
            let mut x = values
                .iter()
                .map(|&v| encode(v))
                .collect::<Option<Vec<u64>>>()
                .ok_or_else(|| {
                    format!("channel {q}: a partial sum beyond the fixed-point range")
                })?;
            keys.add_mask(me, holders, (r, s, q), &mut x)?;
            ring.push((q, x));
        }
        out.insert(to, ring);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(devices: &[usize]) -> BTreeMap<usize, PairKeys> {
        deal(devices, &mut ChaCha20Rng::seed_from_u64(7))
    }

    #[test]
    fn the_masks_of_all_holders_cancel() {
        let holders = [1, 3, 4, 6];
        let k = keys(&holders);
        let mut total = vec![0u64; 50];
        for &h in &holders {
            let mut v = vec![0u64; 50];
            k[&h]
                .add_mask(h, &holders, (9, 2, 5), &mut v)
                .expect("mask");
            assert!(v.iter().any(|&x| x != 0), "a mask is not zero");
            for (t, x) in total.iter_mut().zip(&v) {
                *t = t.wrapping_add(*x);
            }
        }
        assert!(total.iter().all(|&t| t == 0));
    }

    #[test]
    fn masks_differ_across_requests_stages_and_channels() {
        let holders = [0, 1];
        let k = keys(&holders);
        let mask = |pos| {
            let mut v = vec![0u64; 4];
            k[&0].add_mask(0, &holders, pos, &mut v).expect("mask");
            v
        };
        let base = mask((1, 1, 1));
        for other in [(2, 1, 1), (1, 2, 1), (1, 1, 2)] {
            assert_ne!(base, mask(other), "{other:?}");
        }
    }

    #[test]
    fn fixed_point_round_trips_within_the_rounding_bound() {
        for v in [0.0f32, 1.0, -1.0, 2.71, -1234.567, 1e-6, 65535.9] {
            let back = decode(encode(v).expect("finite"));
            assert!(
                (back - v).abs() <= rounding_bound() + v.abs() * 1e-7,
                "{v} -> {back}"
            );
        }
        let sum = [1.5f32, -2.25, 0.125]
            .iter()
            .map(|&v| encode(v).expect("finite"))
            .fold(0u64, u64::wrapping_add);
        assert_eq!(decode(sum), -0.625);
        assert!(encode(f32::NAN).is_none() && encode(2e12).is_none());
    }

    #[test]
    fn a_device_without_a_key_for_a_holder_is_refused_and_keys_never_print() {
        let k = keys(&[0, 1]);
        let mut v = vec![0u64; 2];
        assert!(k[&0].add_mask(0, &[0, 1, 2], (1, 1, 1), &mut v).is_err());
        assert!(k[&0].covers(0, &[0, 1]) && !k[&0].covers(0, &[0, 2]));
        let printed = format!("{:?}", k[&0]);
        assert!(
            printed.contains("redacted") && printed.len() < 80,
            "{printed}"
        );
    }
}
