//! Distributed comparison functions (DCF): two keys that secret-share the function
//! `f(x) = beta if x < alpha else 0` over `n`-bit inputs, with a payload `beta` of `P` words
//! of `Z_2^64`, so that `eval(0, k0, x) + eval(1, k1, x) = f(x)` (word by word) for every `x`
//! while each key alone reveals nothing about `alpha` or `beta` (Boyle, Chandran, Gilboa,
//! Gupta, Ishai, Kumaresan, Sun, "Function Secret Sharing for Mixed-Mode and Fixed-Point
//! Secure Computation", Eurocrypt 2021, the DCF construction of section 3, with the group
//! `Z_2^64^P`).
//!
//! Costs per key: one 128-bit seed, `n` correction words of `16 + 8 P` bytes and two control
//! bits, and a final `8 P`-byte word; evaluation hashes `1 + ceil(P / 2)` fixed-key AES blocks
//! per level ([`crate::prg`]). Invariant kept by generation: off the path of `alpha` both
//! parties hold equal seeds and control bits (their contributions cancel), on it the control
//! bits differ and `v_alpha` tracks the sum of contributions so far, which the correction word
//! of the level where `x` leaves the path turns into `beta` (leaving to the left, so
//! `x < alpha`) or 0.
//!
//! Key items: [`DcfKey`], [`generate`], [`DcfKey::eval`], [`DcfKey::eval_many`],
//! [`DcfKey::encoded_len`].

use rand::Rng;

use crate::prg::{Expansion, LEAF_TWEAK, MAX_WORDS, Prg, value_blocks, value_tweak, words_of};

/// Keys evaluated together by [`DcfKey::eval_many`]: enough AES blocks per call to fill the
/// cipher's pipeline, few enough correction-word streams for the prefetcher.
pub const EVAL_GROUP: usize = 8;

/// One level's correction word (`Debug` redacted: key material).
#[derive(Clone, PartialEq, Eq)]
pub struct CorrectionWord<const P: usize> {
    /// Seed correction.
    pub seed: u128,
    /// Value correction, one word per payload word.
    pub value: [u64; P],
    /// Left control-bit correction.
    pub t_left: bool,
    /// Right control-bit correction.
    pub t_right: bool,
}

/// One party's DCF key with a `P`-word payload (`Debug` prints only its size: key material is
/// never logged).
#[derive(Clone, PartialEq, Eq)]
pub struct DcfKey<const P: usize> {
    /// Input bits `n` (1..=64).
    pub bits: u32,
    /// The party's root seed.
    pub seed: u128,
    /// Correction words, one per input bit (most significant first).
    pub words: Vec<CorrectionWord<P>>,
    /// Final correction of the leaf value.
    pub last: [u64; P],
}

impl<const P: usize> std::fmt::Debug for CorrectionWord<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CorrectionWord(<redacted>)")
    }
}

impl<const P: usize> std::fmt::Debug for DcfKey<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DcfKey(<{} bits, {P} words, redacted>)", self.bits)
    }
}

/// `v` negated word by word when `negate`.
fn sign<const P: usize>(negate: bool, v: [u64; P]) -> [u64; P] {
    if negate { v.map(u64::wrapping_neg) } else { v }
}

fn add<const P: usize>(a: [u64; P], b: [u64; P]) -> [u64; P] {
    std::array::from_fn(|i| a[i].wrapping_add(b[i]))
}

fn sub<const P: usize>(a: [u64; P], b: [u64; P]) -> [u64; P] {
    std::array::from_fn(|i| a[i].wrapping_sub(b[i]))
}

/// Generates keys for `x < alpha -> beta` over `bits`-bit inputs (`alpha < 2^bits`).
///
/// # Panics
/// If `bits` is 0 or above 64, or `P` above [`MAX_WORDS`] (programming errors, never
/// input-dependent).
pub fn generate<const P: usize>(
    prg: &Prg,
    bits: u32,
    alpha: u64,
    beta: [u64; P],
    rng: &mut impl Rng,
) -> (DcfKey<P>, DcfKey<P>) {
    assert!((1..=64).contains(&bits), "DCF input bits must be 1..=64");
    assert!((1..=MAX_WORDS).contains(&P), "DCF payload of 1..=4 words");
    let root = [rng.random::<u128>() & !1, rng.random::<u128>() & !1];
    let (mut s0, mut s1) = (root[0], root[1]);
    let (mut t0, mut t1) = (false, true);
    let mut v_alpha = [0u64; P];
    let mut words = Vec::with_capacity(bits as usize);
    for i in (0..bits).rev() {
        let a = (alpha >> i) & 1 == 1;
        // Both parties' children and both sides' value blocks in one pipelined AES call.
        let (vl, vr) = (value_tweak(false), value_tweak(true));
        let h = prg.hash_blocks([
            s0,
            s0 ^ 1,
            s1,
            s1 ^ 1,
            s0 ^ vl,
            s0 ^ (vl + 1),
            s0 ^ vr,
            s0 ^ (vr + 1),
            s1 ^ vl,
            s1 ^ (vl + 1),
            s1 ^ vr,
            s1 ^ (vr + 1),
        ]);
        let expansion = |l: u128, r: u128| Expansion {
            seed_left: l & !1,
            t_left: l & 1 == 1,
            seed_right: r & !1,
            t_right: r & 1 == 1,
        };
        let (e0, e1) = (expansion(h[0], h[1]), expansion(h[2], h[3]));
        let side = |party: usize, right: bool| -> [u64; P] {
            let at = 4 + 4 * party + 2 * usize::from(right);
            words_of(&h[at..at + 2])
        };
        // Keep the child on alpha's path, lose the other.
        let (keep0, keep1, lose0, lose1) = if a {
            (
                (e0.seed_right, e0.t_right),
                (e1.seed_right, e1.t_right),
                e0.seed_left,
                e1.seed_left,
            )
        } else {
            (
                (e0.seed_left, e0.t_left),
                (e1.seed_left, e1.t_left),
                e0.seed_right,
                e1.seed_right,
            )
        };
        let (v_keep0, v_keep1) = (side(0, a), side(1, a));
        let (v_lose0, v_lose1) = (side(0, !a), side(1, !a));
        let seed_cw = lose0 ^ lose1;
        let mut value_cw = sign(t1, sub(sub(v_lose1, v_lose0), v_alpha));
        if a {
            // The lost child is the left one: inputs that leave here are below alpha.
            value_cw = add(value_cw, sign(t1, beta));
        }
        v_alpha = add(add(sub(v_alpha, v_keep1), v_keep0), sign(t1, value_cw));
        let t_left_cw = e0.t_left ^ e1.t_left ^ a ^ true;
        let t_right_cw = e0.t_right ^ e1.t_right ^ a;
        let t_keep_cw = if a { t_right_cw } else { t_left_cw };
        words.push(CorrectionWord {
            seed: seed_cw,
            value: value_cw,
            t_left: t_left_cw,
            t_right: t_right_cw,
        });
        (s0, t0) = (
            keep0.0 ^ if t0 { seed_cw } else { 0 },
            keep0.1 ^ (t0 & t_keep_cw),
        );
        (s1, t1) = (
            keep1.0 ^ if t1 { seed_cw } else { 0 },
            keep1.1 ^ (t1 & t_keep_cw),
        );
    }
    let last = sign(t1, sub(sub(prg.leaf::<P>(s1), prg.leaf::<P>(s0)), v_alpha));
    let key = |seed| DcfKey {
        bits,
        seed,
        words: words.clone(),
        last,
    };
    (key(root[0]), key(root[1]))
}

impl<const P: usize> DcfKey<P> {
    /// Party `party`'s (0 or 1) share of `f(x)`; only the low `bits` bits of `x` are read.
    pub fn eval(&self, prg: &Prg, party: usize, x: u64) -> [u64; P] {
        let negate = party == 1;
        let mut seed = self.seed;
        let mut t = party == 1;
        let mut v = [0u64; P];
        for (level, cw) in self.words.iter().enumerate() {
            let right = (x >> (self.bits - 1 - level as u32)) & 1 == 1;
            let e = prg.expand(seed);
            let (mut child, mut t_child) = match right {
                false => (e.seed_left, e.t_left),
                true => (e.seed_right, e.t_right),
            };
            let part = prg.values::<P>(seed, right);
            if t {
                child ^= cw.seed;
                t_child ^= if right { cw.t_right } else { cw.t_left };
            }
            let correction = if t { cw.value } else { [0; P] };
            v = add(v, sign(negate, add(part, correction)));
            (seed, t) = (child, t_child);
        }
        let leaf = add(prg.leaf::<P>(seed), if t { self.last } else { [0; P] });
        add(v, sign(negate, leaf))
    }

    /// Party `party`'s shares of `f(x_j)` under `keys[j]` for all `j` at once. Keys are taken
    /// in groups of [`EVAL_GROUP`], each group walked down all its levels together with one
    /// pipelined AES call per level: per key and level only the child on `x`'s path and its
    /// value blocks are hashed (`1 + ceil(P / 2)` blocks, against `2 + 2 ceil(P / 2)` for a
    /// full expansion), and each key's correction words are read front to back (the keys are
    /// separate allocations: walking all keys level by level instead missed the cache on
    /// almost every correction word). Equal to calling [`DcfKey::eval`] on each pair. `keys`
    /// and `xs` must have the same length; keys of one group must have the same bit count;
    /// only the low `bits` bits of each `x` are read.
    pub fn eval_many(prg: &Prg, party: usize, keys: &[DcfKey<P>], xs: &[u64]) -> Vec<[u64; P]> {
        let n = keys.len().min(xs.len());
        let negate = party == 1;
        let vb = value_blocks(P);
        let per = 1 + vb;
        let mut out = Vec::with_capacity(n);
        let mut blocks = [0u128; EVAL_GROUP * (1 + MAX_WORDS / 2)];
        for (group, xs) in keys[..n].chunks(EVAL_GROUP).zip(xs[..n].chunks(EVAL_GROUP)) {
            let g = group.len();
            let bits = group[0].bits;
            let mut seeds = [0u128; EVAL_GROUP];
            let mut t = [party == 1; EVAL_GROUP];
            let mut v = [[0u64; P]; EVAL_GROUP];
            for (s, k) in seeds.iter_mut().zip(group) {
                *s = k.seed;
            }
            for level in 0..bits as usize {
                let i = bits - 1 - level as u32;
                for j in 0..g {
                    let right = (xs[j] >> i) & 1 == 1;
                    let b = &mut blocks[per * j..per * (j + 1)];
                    b[0] = seeds[j] ^ u128::from(right);
                    for (k, slot) in b[1..].iter_mut().enumerate() {
                        *slot = seeds[j] ^ (value_tweak(right) + k as u128);
                    }
                }
                prg.hash_all(&mut blocks[..per * g]);
                for j in 0..g {
                    let cw = &group[j].words[level];
                    let right = (xs[j] >> i) & 1 == 1;
                    let b = &blocks[per * j..per * (j + 1)];
                    let (mut seed, mut tc) = (b[0] & !1, b[0] & 1 == 1);
                    let part: [u64; P] = words_of(&b[1..]);
                    if t[j] {
                        seed ^= cw.seed;
                        tc ^= if right { cw.t_right } else { cw.t_left };
                    }
                    let correction = if t[j] { cw.value } else { [0; P] };
                    v[j] = add(v[j], sign(negate, add(part, correction)));
                    seeds[j] = seed;
                    t[j] = tc;
                }
            }
            for j in 0..g {
                for k in 0..vb {
                    blocks[vb * j + k] = seeds[j] ^ (LEAF_TWEAK + k as u128);
                }
            }
            prg.hash_all(&mut blocks[..vb * g]);
            for j in 0..g {
                let words: [u64; P] = words_of(&blocks[vb * j..vb * (j + 1)]);
                let leaf = add(words, if t[j] { group[j].last } else { [0; P] });
                out.push(add(v[j], sign(negate, leaf)));
            }
        }
        out
    }

    /// Bytes of the key on the wire: a one-byte bit count, the seed, per level `16 + 8 P`
    /// bytes and one byte of control bits, and the final `8 P`-byte word.
    pub fn encoded_len(&self) -> usize {
        1 + 16 + self.words.len() * (17 + 8 * P) + 8 * P
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn exhaustive_small_domain() {
        // Every alpha and every x of a 5-bit domain, random beta of one and of three words:
        // the shares add up to beta * [x < alpha].
        let prg = Prg::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for alpha in 0..32u64 {
            let beta: [u64; 3] = rng.random();
            let (k0, k1) = generate(&prg, 5, alpha, beta, &mut rng);
            let (j0, j1) = generate(&prg, 5, alpha, [beta[0]], &mut rng);
            for x in 0..32u64 {
                let y = add(k0.eval(&prg, 0, x), k1.eval(&prg, 1, x));
                assert_eq!(
                    y,
                    if x < alpha { beta } else { [0; 3] },
                    "alpha {alpha} x {x}"
                );
                let y = add(j0.eval(&prg, 0, x), j1.eval(&prg, 1, x));
                assert_eq!(y[0], if x < alpha { beta[0] } else { 0 });
            }
        }
    }

    /// 43 keys: five full groups of [`EVAL_GROUP`] and a partial one.
    #[test]
    fn batched_evaluation_equals_one_by_one() {
        let prg = Prg::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for party in 0..2 {
            let keys: Vec<DcfKey<3>> = (0..43)
                .map(|_| generate(&prg, 39, rng.random::<u64>() >> 25, rng.random(), &mut rng).0)
                .collect();
            let xs: Vec<u64> = (0..43).map(|_| rng.random::<u64>() >> 25).collect();
            let one: Vec<[u64; 3]> = keys
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
            let (k0, k1) = generate(&prg, 63, alpha, [1, 7], &mut rng);
            for x in [
                0,
                alpha.saturating_sub(1),
                alpha,
                alpha + 1,
                (1 << 63) - 1,
                rng.random::<u64>() >> 1,
            ] {
                let y = add(k0.eval(&prg, 0, x), k1.eval(&prg, 1, x));
                let below = u64::from(x < alpha);
                assert_eq!(y, [below, 7 * below], "alpha {alpha} x {x}");
            }
        }
        let (k0, _) = generate(&prg, 63, 5, [1, 2, 3], &mut rng);
        assert_eq!(k0.encoded_len(), 1 + 16 + 63 * 41 + 24);
    }

    #[test]
    fn one_key_alone_looks_random() {
        // The share one key gives for a fixed x is uniform whatever alpha is: the low bit of
        // every payload word is balanced over fresh keys for alpha above and below x
        // (binomial(2000, 1/2): 5 sigma = 112).
        let prg = Prg::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for alpha in [10u64, 1000] {
            let mut ones = [0i64; 3];
            for _ in 0..2000 {
                let y = generate(&prg, 16, alpha, [1, 1, 5], &mut rng)
                    .0
                    .eval(&prg, 0, 500);
                for (o, w) in ones.iter_mut().zip(y) {
                    *o += (w & 1) as i64;
                }
            }
            for o in ones {
                assert!((o - 1000).abs() < 112, "alpha {alpha}: {o}");
            }
        }
    }
}
