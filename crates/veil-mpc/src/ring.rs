//! Fixed-point numbers in the ring `Z_2^64` (wrapping `u64` arithmetic, two's complement for
//! negatives) and the local truncation of shares.
//!
//! An activation `x` is encoded as `round(x * 2^FRAC_BITS) mod 2^64` ([`encode`]), a weight
//! with [`WEIGHT_FRAC_BITS`] fractional bits ([`encode_weight`]); their product carries
//! `FRAC_BITS + WEIGHT_FRAC_BITS` fractional bits and is brought back to `FRAC_BITS` by
//! truncating `WEIGHT_FRAC_BITS` bits.
//!
//! **Truncation** ([`truncate_share`]) is the local rule of SecureML (Mohassel and Zhang 2017,
//! Theorem 1): party 0 shifts its share, party 1 shifts the negation of its share and negates
//! back; no message is sent. If the shared value `x` satisfies `|x| < 2^l` (as a signed ring
//! element), the result of truncating `t` bits equals `floor(x / 2^t)` or differs from it by
//! 1 in the last place, except with probability at most `2^(l + 1 - 64)` over the share
//! randomness, when it is wrong by about `2^(64 - t)`. For a weight product whose real
//! magnitude stays below `2^8` (so `l = 8 + FRAC_BITS + WEIGHT_FRAC_BITS = 36`) that is at most
//! `2^-27` per truncated element. Nothing enforces the `2^8`: it holds for the activations the
//! zoo nets produce on their datasets; the worst case the dealer's interval bounds allow
//! (`veil_mpc::model::comparison_widths`, up to `2^16` for minionn's last step) gives `l = 44`
//! and `2^-19`.
//!
//! Key items: [`FRAC_BITS`], [`WEIGHT_FRAC_BITS`], [`encode`], [`encode_weight`], [`decode`],
//! [`truncate_share`], [`ULP`], [`WEIGHT_ULP`].

/// Fractional bits of the fixed-point encoding.
pub const FRAC_BITS: u32 = 12;

/// Fractional bits of an encoded weight. Finer than the activations': rounding the weights is
/// the largest error source at 12 bits (about 80 ulp in the logits of the zoo's conv nets,
/// enough to flip a near tie), and it costs nothing online; the price is a larger value before
/// truncation (see the truncation bound above).
pub const WEIGHT_FRAC_BITS: u32 = 16;

/// The real value of one unit in the last place of an encoded weight: `2^-WEIGHT_FRAC_BITS`.
pub const WEIGHT_ULP: f64 = 1.0 / (1u64 << WEIGHT_FRAC_BITS) as f64;

/// The real value of one unit in the last place: `2^-FRAC_BITS`.
pub const ULP: f64 = 1.0 / (1u64 << FRAC_BITS) as f64;

/// Encodes `x` with `frac` fractional bits (round to nearest, saturating at the encodable
/// range `|x| < 2^(63 - frac)`).
pub fn encode_with(x: f64, frac: u32) -> u64 {
    let scaled = (x * (1u64 << frac) as f64).round();
    let max = i64::MAX as f64;
    let clamped = if scaled.is_nan() {
        0.0
    } else {
        scaled.clamp(-max, max)
    };
    (clamped as i64) as u64
}

/// Encodes `x` with [`FRAC_BITS`] fractional bits.
pub fn encode(x: f64) -> u64 {
    encode_with(x, FRAC_BITS)
}

/// Encodes a weight with [`WEIGHT_FRAC_BITS`] fractional bits.
pub fn encode_weight(x: f64) -> u64 {
    encode_with(x, WEIGHT_FRAC_BITS)
}

/// Decodes a ring element with `frac` fractional bits (two's complement).
pub fn decode_with(v: u64, frac: u32) -> f64 {
    (v as i64) as f64 / (1u64 << frac) as f64
}

/// Decodes a ring element with [`FRAC_BITS`] fractional bits.
pub fn decode(v: u64) -> f64 {
    decode_with(v, FRAC_BITS)
}

/// Party `party`'s share of `floor(x / 2^bits)` from its share of `x` (SecureML's local
/// truncation; see the module documentation for the error bound).
pub fn truncate_share(share: u64, party: usize, bits: u32) -> u64 {
    if party == 0 {
        share >> bits
    } else {
        (share.wrapping_neg() >> bits).wrapping_neg()
    }
}

/// `floor(x / 2^bits)` of a plaintext signed ring element (arithmetic shift).
pub fn truncate_plain(x: u64, bits: u32) -> u64 {
    ((x as i64) >> bits) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encoding_round_trips_within_half_an_ulp() {
        for x in [0.0, 1.0, -1.0, 0.123_456, -3.75, 1000.5, -2.0e5] {
            let back = decode(encode(x));
            assert!((back - x).abs() <= ULP / 2.0 + 1e-12, "{x} -> {back}");
        }
        assert_eq!(encode(-1.0), (1u64 << FRAC_BITS).wrapping_neg());
        assert_eq!(decode(encode(f64::NAN)), 0.0);
    }

    proptest! {
        #[test]
        fn truncated_shares_reconstruct_within_one_ulp(
            x in -(1i64 << 31)..(1i64 << 31),
            share0 in any::<u64>(),
        ) {
            // |x| < 2^31: the failure probability is at most 2^-32 per draw, far below what
            // proptest's 256 cases can hit.
            let x = x as u64;
            let share1 = x.wrapping_sub(share0);
            let t = truncate_share(share0, 0, FRAC_BITS)
                .wrapping_add(truncate_share(share1, 1, FRAC_BITS));
            let want = truncate_plain(x, FRAC_BITS);
            let diff = t.wrapping_sub(want) as i64;
            prop_assert!(diff.abs() <= 1, "x {} got {} want {}", x as i64, t as i64, want as i64);
        }
    }
}
