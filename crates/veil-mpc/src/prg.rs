//! The length-doubling PRG of the comparison keys: fixed-key AES-128 in the
//! Matyas-Meyer-Oseas mode, `H_i(s) = AES_K(s ^ i) ^ (s ^ i)`, with a public key `K` (a
//! correlation-robust hash under the usual ideal-cipher assumption, as in Boyle et al.'s FSS
//! implementations and LLAMA). The `aes` crate uses AES-NI when the CPU has it.
//!
//! Key items: [`Prg`], [`Expansion`].

use aes::Aes128;
use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockEncrypt, KeyInit};

/// The public AES key of the PRG (any fixed value works; this one is `"veil fss prg key"`).
const KEY: [u8; 16] = *b"veil fss prg key";

/// One node's expansion into its two children: seeds (low bit cleared) and control bits.
/// The children's value words come from [`Prg::values`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expansion {
    /// Left child seed.
    pub seed_left: u128,
    /// Left child control bit.
    pub t_left: bool,
    /// Right child seed.
    pub seed_right: u128,
    /// Right child control bit.
    pub t_right: bool,
}

/// Most value words one hash call gives per node side ([`Prg::values`], [`Prg::leaf`]).
pub const MAX_WORDS: usize = 4;

/// Tweak of the first value block of side `right` (two blocks per side: 4, 5 and 8, 9).
pub fn value_tweak(right: bool) -> u128 {
    if right { 8 } else { 4 }
}

/// Tweak of the first block of a leaf's words (12, 13).
pub const LEAF_TWEAK: u128 = 12;

/// Value blocks per side for `words` words (two words per block).
pub const fn value_blocks(words: usize) -> usize {
    words.div_ceil(2)
}

/// The `P` words of `blocks` (two per block, low half first).
pub fn words_of<const P: usize>(blocks: &[u128]) -> [u64; P] {
    std::array::from_fn(|i| {
        let b = blocks[i / 2];
        if i % 2 == 0 {
            b as u64
        } else {
            (b >> 64) as u64
        }
    })
}

/// Fixed-key AES expansion.
#[derive(Clone)]
pub struct Prg {
    aes: Aes128,
}

impl Default for Prg {
    fn default() -> Self {
        Prg {
            aes: Aes128::new(GenericArray::from_slice(&KEY)),
        }
    }
}

impl Prg {
    /// `H_i(seed)` for `i` in `tweaks`, as 128-bit words.
    fn hash<const N: usize>(&self, seed: u128, tweaks: [u128; N]) -> [u128; N] {
        self.hash_blocks(tweaks.map(|i| seed ^ i))
    }

    /// `H(x) = AES_K(x) ^ x` for each of `inputs` (one pipelined AES call).
    pub fn hash_blocks<const N: usize>(&self, inputs: [u128; N]) -> [u128; N] {
        let mut blocks = inputs.map(|x| GenericArray::from(x.to_le_bytes()));
        self.aes.encrypt_blocks(&mut blocks);
        let mut out = [0u128; N];
        for (k, b) in blocks.iter().enumerate() {
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(b.as_slice());
            out[k] = u128::from_le_bytes(bytes) ^ inputs[k];
        }
        out
    }

    /// `H(x) = AES_K(x) ^ x` for every `x` of `inputs`, in place (pipelined AES calls of up to
    /// 32 blocks through a stack buffer: no allocation).
    pub fn hash_all(&self, inputs: &mut [u128]) {
        let mut buf = [aes::Block::default(); 32];
        for chunk in inputs.chunks_mut(32) {
            let blocks = &mut buf[..chunk.len()];
            for (b, x) in blocks.iter_mut().zip(chunk.iter()) {
                *b = GenericArray::from(x.to_le_bytes());
            }
            self.aes.encrypt_blocks(blocks);
            for (x, b) in chunk.iter_mut().zip(blocks.iter()) {
                let mut bytes = [0u8; 16];
                bytes.copy_from_slice(b.as_slice());
                *x ^= u128::from_le_bytes(bytes);
            }
        }
    }

    /// Expands `seed` into both children's seeds and control bits (tweaks 0 and 1).
    pub fn expand(&self, seed: u128) -> Expansion {
        let [l, r] = self.hash(seed, [0, 1]);
        Expansion {
            seed_left: l & !1,
            t_left: l & 1 == 1,
            seed_right: r & !1,
            t_right: r & 1 == 1,
        }
    }

    /// The `P` value words (`P <= MAX_WORDS`) of `seed`'s child on side `right`.
    pub fn values<const P: usize>(&self, seed: u128, right: bool) -> [u64; P] {
        let t = value_tweak(right);
        words_of(&self.hash(seed, [t, t + 1]))
    }

    /// The `P` group words (`P <= MAX_WORDS`) of a leaf seed.
    pub fn leaf<const P: usize>(&self, seed: u128) -> [u64; P] {
        words_of(&self.hash(seed, [LEAF_TWEAK, LEAF_TWEAK + 1]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batched_hash_agrees_with_expansion() {
        let prg = Prg::default();
        let seed = 0x1234_5678_9abc_def0_u128 << 40;
        let mut xs = [seed, seed ^ 1, seed ^ 4, seed ^ 5, seed ^ 8, seed ^ 12];
        prg.hash_all(&mut xs);
        let e = prg.expand(seed);
        assert_eq!((xs[0] & !1, xs[0] & 1 == 1), (e.seed_left, e.t_left));
        assert_eq!((xs[1] & !1, xs[1] & 1 == 1), (e.seed_right, e.t_right));
        assert_eq!(
            prg.values::<3>(seed, false),
            [xs[2] as u64, (xs[2] >> 64) as u64, xs[3] as u64]
        );
        assert_eq!(prg.values::<1>(seed, true), [xs[4] as u64]);
        assert_eq!(prg.leaf::<1>(seed), [xs[5] as u64]);
        assert_ne!(prg.values::<2>(seed, false), prg.values::<2>(seed, true));
    }

    #[test]
    fn expansion_is_deterministic_and_children_differ() {
        let prg = Prg::default();
        let a = prg.expand(42);
        assert_eq!(a, prg.expand(42));
        assert_ne!(a.seed_left, a.seed_right);
        assert_ne!(prg.expand(43), a);
        assert_eq!(a.seed_left & 1, 0);
        // Over many seeds the control bits are balanced (binomial(4000, 1/2): 5 sigma = 158).
        let ones = (0..4000u128)
            .filter(|&s| prg.expand(s * 0x9e37_79b9).t_left)
            .count();
        assert!((ones as i64 - 2000).abs() < 158, "{ones}");
    }
}
