//! Distributed comparison functions (DCF): two keys that secret-share the function
//! `f(x) = beta if x < alpha else 0` over `n`-bit inputs, with outputs in `Z_2^64`, so that
//! `eval(0, k0, x) + eval(1, k1, x) = f(x)` for every `x` while each key alone reveals nothing
//! about `alpha` or `beta` (Boyle, Chandran, Gilboa, Gupta, Ishai, Kumaresan, Sun, "Function
//! Secret Sharing for Mixed-Mode and Fixed-Point Secure Computation", Eurocrypt 2021,
//! the DCF construction of section 3).
//!
//! Costs per key: one 128-bit seed, `n` correction words of 16 + 8 bytes and two control bits,
//! and a final 8-byte word; evaluation takes `3n + 1` fixed-key AES blocks ([`crate::prg`]).
//! Invariant kept by generation: off the path of `alpha` both parties hold equal seeds and
//! control bits (their contributions cancel), on it the control bits differ and `v_alpha`
//! tracks the sum of contributions so far, which the correction word of the level where `x`
//! leaves the path turns into `beta` (leaving to the left, so `x < alpha`) or 0.
//!
//! Key items: [`DcfKey`], [`generate`], [`DcfKey::eval`], [`DcfKey::encoded_len`].

use rand::Rng;

use crate::prg::Prg;

/// One level's correction word (`Debug` redacted: key material).
#[derive(Clone, PartialEq, Eq)]
pub struct CorrectionWord {
    /// Seed correction.
    pub seed: u128,
    /// Value correction.
    pub value: u64,
    /// Left control-bit correction.
    pub t_left: bool,
    /// Right control-bit correction.
    pub t_right: bool,
}

/// One party's DCF key (`Debug` prints only its size: key material is never logged).
#[derive(Clone, PartialEq, Eq)]
pub struct DcfKey {
    /// Input bits `n` (1..=64).
    pub bits: u32,
    /// The party's root seed.
    pub seed: u128,
    /// Correction words, one per input bit (most significant first).
    pub words: Vec<CorrectionWord>,
    /// Final correction of the leaf value.
    pub last: u64,
}

impl std::fmt::Debug for CorrectionWord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CorrectionWord(<redacted>)")
    }
}

impl std::fmt::Debug for DcfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DcfKey(<{} bits, redacted>)", self.bits)
    }
}

fn sign(negate: bool, v: u64) -> u64 {
    if negate { v.wrapping_neg() } else { v }
}

/// Generates keys for `x < alpha -> beta` over `bits`-bit inputs (`alpha < 2^bits`).
///
/// # Panics
/// If `bits` is 0 or above 64 (a programming error, never input-dependent).
pub fn generate(
    prg: &Prg,
    bits: u32,
    alpha: u64,
    beta: u64,
    rng: &mut impl Rng,
) -> (DcfKey, DcfKey) {
    assert!((1..=64).contains(&bits), "DCF input bits must be 1..=64");
    let root = [rng.random::<u128>() & !1, rng.random::<u128>() & !1];
    let (mut s0, mut s1) = (root[0], root[1]);
    let (mut t0, mut t1) = (false, true);
    let mut v_alpha = 0u64;
    let mut words = Vec::with_capacity(bits as usize);
    for i in (0..bits).rev() {
        let a = (alpha >> i) & 1 == 1;
        let e0 = prg.expand(s0);
        let e1 = prg.expand(s1);
        // Keep the child on alpha's path, lose the other.
        let (keep0, keep1, lose0, lose1) = if a {
            (
                (e0.seed_right, e0.v_right, e0.t_right),
                (e1.seed_right, e1.v_right, e1.t_right),
                (e0.seed_left, e0.v_left),
                (e1.seed_left, e1.v_left),
            )
        } else {
            (
                (e0.seed_left, e0.v_left, e0.t_left),
                (e1.seed_left, e1.v_left, e1.t_left),
                (e0.seed_right, e0.v_right),
                (e1.seed_right, e1.v_right),
            )
        };
        let seed_cw = lose0.0 ^ lose1.0;
        let mut value_cw = sign(t1, lose1.1.wrapping_sub(lose0.1).wrapping_sub(v_alpha));
        if a {
            // The lost child is the left one: inputs that leave here are below alpha.
            value_cw = value_cw.wrapping_add(sign(t1, beta));
        }
        v_alpha = v_alpha
            .wrapping_sub(keep1.1)
            .wrapping_add(keep0.1)
            .wrapping_add(sign(t1, value_cw));
        let t_left_cw = e0.t_left ^ e1.t_left ^ a ^ true;
        let t_right_cw = e0.t_right ^ e1.t_right ^ a;
        let t_keep_cw = if a { t_right_cw } else { t_left_cw };
        words.push(CorrectionWord {
            seed: seed_cw,
            value: value_cw,
            t_left: t_left_cw,
            t_right: t_right_cw,
        });
        let next0 = (
            keep0.0 ^ if t0 { seed_cw } else { 0 },
            keep0.2 ^ (t0 & t_keep_cw),
        );
        let next1 = (
            keep1.0 ^ if t1 { seed_cw } else { 0 },
            keep1.2 ^ (t1 & t_keep_cw),
        );
        (s0, t0) = next0;
        (s1, t1) = next1;
    }
    let last = sign(
        t1,
        prg.convert(s1)
            .wrapping_sub(prg.convert(s0))
            .wrapping_sub(v_alpha),
    );
    let key = |seed| DcfKey {
        bits,
        seed,
        words: words.clone(),
        last,
    };
    (key(root[0]), key(root[1]))
}

impl DcfKey {
    /// Party `party`'s (0 or 1) share of `f(x)`; only the low `bits` bits of `x` are read.
    pub fn eval(&self, prg: &Prg, party: usize, x: u64) -> u64 {
        let negate = party == 1;
        let mut seed = self.seed;
        let mut t = party == 1;
        let mut v = 0u64;
        for (level, cw) in self.words.iter().enumerate() {
            let i = self.bits - 1 - level as u32;
            let mut e = prg.expand(seed);
            if t {
                e.seed_left ^= cw.seed;
                e.seed_right ^= cw.seed;
                e.t_left ^= cw.t_left;
                e.t_right ^= cw.t_right;
            }
            let correction = if t { cw.value } else { 0 };
            if (x >> i) & 1 == 0 {
                v = v.wrapping_add(sign(negate, e.v_left.wrapping_add(correction)));
                seed = e.seed_left;
                t = e.t_left;
            } else {
                v = v.wrapping_add(sign(negate, e.v_right.wrapping_add(correction)));
                seed = e.seed_right;
                t = e.t_right;
            }
        }
        let leaf = prg
            .convert(seed)
            .wrapping_add(if t { self.last } else { 0 });
        v.wrapping_add(sign(negate, leaf))
    }

    /// Party `party`'s shares of `f(x_j)` under `keys[j]` for all `j` at once, level by level
    /// with one pipelined AES call per level: per key and level only the child on `x`'s path
    /// and the value block are hashed (2 blocks, against 3 for a full expansion). Equal to
    /// calling [`DcfKey::eval`] on each pair. `keys` and `xs` must have the same length and
    /// the keys the same bit count.
    pub fn eval_many(prg: &Prg, party: usize, keys: &[DcfKey], xs: &[u64]) -> Vec<u64> {
        let n = keys.len().min(xs.len());
        let Some(bits) = keys.first().map(|k| k.bits) else {
            return Vec::new();
        };
        let negate = party == 1;
        let mut seeds: Vec<u128> = keys[..n].iter().map(|k| k.seed).collect();
        let mut t = vec![party == 1; n];
        let mut v = vec![0u64; n];
        let mut blocks = vec![0u128; 2 * n];
        for level in 0..bits as usize {
            let i = bits - 1 - level as u32;
            for j in 0..n {
                let side = ((xs[j] >> i) & 1) as u128;
                blocks[2 * j] = seeds[j] ^ side;
                blocks[2 * j + 1] = seeds[j] ^ 2;
            }
            prg.hash_all(&mut blocks);
            for j in 0..n {
                let cw = &keys[j].words[level];
                let right = (xs[j] >> i) & 1 == 1;
                let h = blocks[2 * j];
                let (mut seed, mut tc) = (h & !1, h & 1 == 1);
                let vb = blocks[2 * j + 1];
                let part = if right { (vb >> 64) as u64 } else { vb as u64 };
                if t[j] {
                    seed ^= cw.seed;
                    tc ^= if right { cw.t_right } else { cw.t_left };
                }
                let correction = if t[j] { cw.value } else { 0 };
                v[j] = v[j].wrapping_add(sign(negate, part.wrapping_add(correction)));
                seeds[j] = seed;
                t[j] = tc;
            }
        }
        let mut leaves: Vec<u128> = seeds.iter().map(|s| s ^ 3).collect();
        prg.hash_all(&mut leaves);
        (0..n)
            .map(|j| {
                let leaf = (leaves[j] as u64).wrapping_add(if t[j] { keys[j].last } else { 0 });
                v[j].wrapping_add(sign(negate, leaf))
            })
            .collect()
    }

    /// Bytes of the key on the wire: seed, per level 16 + 8 bytes and one byte of control
    /// bits, the final word, and a one-byte bit count.
    pub fn encoded_len(&self) -> usize {
        1 + 16 + self.words.len() * 25 + 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn exhaustive_small_domain() {
        // Every alpha and every x of a 5-bit domain, random beta: the shares add up to
        // beta * [x < alpha].
        let prg = Prg::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for alpha in 0..32u64 {
            let beta: u64 = rng.random();
            let (k0, k1) = generate(&prg, 5, alpha, beta, &mut rng);
            for x in 0..32u64 {
                let y = k0.eval(&prg, 0, x).wrapping_add(k1.eval(&prg, 1, x));
                assert_eq!(y, if x < alpha { beta } else { 0 }, "alpha {alpha} x {x}");
            }
        }
    }

    #[test]
    fn batched_evaluation_equals_one_by_one() {
        let prg = Prg::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for party in 0..2 {
            let keys: Vec<DcfKey> = (0..40)
                .map(|_| generate(&prg, 39, rng.random::<u64>() >> 25, rng.random(), &mut rng).0)
                .collect();
            let xs: Vec<u64> = (0..40).map(|_| rng.random::<u64>() >> 25).collect();
            let one: Vec<u64> = keys
                .iter()
                .zip(&xs)
                .map(|(k, &x)| k.eval(&prg, party, x))
                .collect();
            assert_eq!(DcfKey::eval_many(&prg, party, &keys, &xs), one);
        }
    }

    #[test]
    fn wide_domain_at_the_boundaries() {
        let prg = Prg::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        for _ in 0..50 {
            let alpha: u64 = rng.random::<u64>() >> 1;
            let (k0, k1) = generate(&prg, 63, alpha, 1, &mut rng);
            for x in [
                0,
                alpha.saturating_sub(1),
                alpha,
                alpha + 1,
                (1 << 63) - 1,
                rng.random::<u64>() >> 1,
            ] {
                let y = k0.eval(&prg, 0, x).wrapping_add(k1.eval(&prg, 1, x));
                assert_eq!(y, u64::from(x < alpha), "alpha {alpha} x {x}");
            }
        }
        let (k0, _) = generate(&prg, 63, 5, 1, &mut rng);
        assert_eq!(k0.encoded_len(), 1 + 16 + 63 * 25 + 8);
    }

    #[test]
    fn one_key_alone_looks_random() {
        // The share one key gives for a fixed x is uniform whatever alpha is: its low bit is
        // balanced over fresh keys for alpha above and below x (binomial(2000, 1/2): 5 sigma
        // = 112).
        let prg = Prg::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for alpha in [10u64, 1000] {
            let ones = (0..2000)
                .filter(|_| generate(&prg, 16, alpha, 1, &mut rng).0.eval(&prg, 0, 500) & 1 == 1)
                .count();
            assert!((ones as i64 - 1000).abs() < 112, "alpha {alpha}: {ones}");
        }
    }
}
