//! The healthcare center as trusted dealer: it secret-shares the model once and issues the
//! correlated randomness of every online step, before the inputs exist (offline phase).
//!
//! **Model** ([`ModelShares`], once per model): for each linear layer with encoded weight `W`
//! the dealer draws a uniform mask `B`, gives both servers `F = W - B` (a fixed weight mask
//! opened once, as SYSTEM.md allows: `F` alone is uniform) and each server a share of `B` and
//! of the bias (encoded with `FRAC_BITS + WEIGHT_FRAC_BITS` fractional bits, the scale of a
//! product).
//!
//! **Per inference** ([`Material`], in op order):
//! - linear layer `L`: a uniform input mask `A` and shares of `C = L(B, A)`; the servers open
//!   `E = X - A` and compute `L(W, X) = L(F, X) + L(B, E) + C` share-wise (a matrix Beaver
//!   triple whose `B` side is fixed).
//! - ReLU of `x` (also each level of a max pool, as `max(a, b) = b + relu(a - b)`), at the
//!   step's comparison width `n` (at most [`COMPARE_BITS`]; derived from the weights by
//!   [`crate::model::comparison_widths`] so that every `|x| <= 2^(n - 1)`): a uniform
//!   `n + 1`-bit mask `R` with its top bit `rho`, shares of `R`, `rho` and `rho * R`, and DCF
//!   keys for `[y < R mod 2^n]` with the three-word payload `(2 rho - 1, (2 rho - 1) R, rho)`.
//!   The servers open `x + R mod 2^(n + 1)` (`ceil((n + 1) / 8)` bytes each) and obtain shares
//!   of `relu(x)` without a second round (see [`crate::engine::relu`] for the algebra).
//!
//! Key items: [`Dealer`], [`ModelShares`], [`LinearShares`], [`Material`], [`Item`],
//! [`ReluMaterial`].

use std::num::Wrapping;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::MpcError;
use crate::dcf::{self, DcfKey};
use crate::model::{Architecture, LayerWeights, Linear, Op, comparison_widths};
use crate::prg::Prg;
use crate::ring::{FRAC_BITS, WEIGHT_FRAC_BITS, encode_weight, encode_with};
use crate::share::{Shares, share};

/// The widest sign comparison, in input bits (a step's own width, from
/// [`crate::model::comparison_widths`], is usually far narrower). The sign of `x` is read as
/// bit `n` of `x mod 2^(n + 1)`, which is exact whenever `|x| < 2^n` in ring units; at this
/// width `|x| < 2^(39 - FRAC_BITS) = 2^27` as a real number: far above any activation the
/// truncation bound of [`crate::ring`] already requires (`2^8`).
pub const COMPARE_BITS: u32 = 39;

/// Bits of the widest opened ReLU input `x + R mod 2^OPEN_BITS`: the comparison's bits and the
/// sign.
pub const OPEN_BITS: u32 = COMPARE_BITS + 1;

/// Words of a ReLU key's payload: `(2 rho - 1, (2 rho - 1) R, rho)`.
pub const RELU_PAYLOAD: usize = 3;

/// One server's shares of one linear layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinearShares {
    /// `F = W - B`, the same for both servers.
    pub masked_weight: Vec<u64>,
    /// This server's share of the weight mask `B`.
    pub weight_mask: Shares,
    /// This server's share of the bias (scale `2^(FRAC_BITS + WEIGHT_FRAC_BITS)`), one per output
    /// channel or feature.
    pub bias: Shares,
}

/// One server's shares of the whole model (one per linear layer, in op order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelShares {
    /// Per linear layer.
    pub layers: Vec<LinearShares>,
}

/// One server's material for a batch of ReLUs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReluMaterial {
    /// Shares of the input masks `R` (uniform below `2^(n + 1)` for the comparison width `n`).
    pub r: Shares,
    /// Shares of `rho`, the top bit (bit `n`) of `R`.
    pub rho: Shares,
    /// Shares of `rho * R`.
    pub rho_r: Shares,
    /// DCF keys, one per element.
    pub keys: Vec<DcfKey<RELU_PAYLOAD>>,
}

/// One item of per-inference material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A linear layer: shares of the input mask `A` and of `L(B, A)`.
    Linear {
        /// Input mask shares (batch x input).
        a: Shares,
        /// Product shares (batch x output).
        c: Shares,
    },
    /// A batch of ReLUs (a ReLU op, or one level of a max pool).
    Relu(ReluMaterial),
}

/// One server's material for one batch, in the order the online phase consumes it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Material {
    /// Items in op order.
    pub items: Vec<Item>,
}

impl Material {
    /// This server's shares of the first linear layer's input mask `A` when the first item is
    /// a linear layer: what a server sends the sensor so that the sensor can send `E = X - A`
    /// in place of input shares (see [`crate::engine::Server::infer_input`]).
    pub fn first_input_mask(&self) -> Option<&Shares> {
        match self.items.first() {
            Some(Item::Linear { a, .. }) => Some(a),
            _ => None,
        }
    }

    /// Bytes of this material on the wire (8 per ring element plus the DCF keys).
    pub fn encoded_len(&self) -> usize {
        self.items
            .iter()
            .map(|it| match it {
                Item::Linear { a, c } => 8 * (a.len() + c.len()),
                Item::Relu(m) => {
                    8 * (m.r.len() + m.rho.len() + m.rho_r.len())
                        + m.keys.iter().map(DcfKey::encoded_len).sum::<usize>()
                }
            })
            .sum()
    }
}

impl ModelShares {
    /// Bytes on the wire (8 per ring element).
    pub fn encoded_len(&self) -> usize {
        self.layers
            .iter()
            .map(|l| 8 * (l.masked_weight.len() + l.weight_mask.len() + l.bias.len()))
            .sum()
    }
}

/// ReLU counts per level of a max pool over windows of `window` elements: each level pairs
/// the candidates left, an odd one is carried.
pub fn pool_levels(window: usize) -> Vec<usize> {
    let mut levels = Vec::new();
    let mut n = window;
    while n > 1 {
        levels.push(n / 2);
        n = n.div_ceil(2);
    }
    levels
}

/// The dealer: the model in the clear, the weight masks, and a seeded generator.
pub struct Dealer {
    arch: Architecture,
    /// Per linear layer: its op, the encoded weight mask `B`.
    masks: Vec<(Linear, Vec<u64>)>,
    shares: [ModelShares; 2],
    /// Comparison width of each ReLU material item, in issue order
    /// ([`crate::model::comparison_widths`]).
    widths: Vec<u32>,
    prg: Prg,
    rng: ChaCha20Rng,
}

impl Dealer {
    /// Encodes and shares the model with every mask, share and key drawn from a ChaCha20
    /// generator seeded with 256 bits from the operating system's CSPRNG: what a deployment
    /// uses.
    pub fn from_os_entropy(
        arch: &Architecture,
        weights: &[LayerWeights],
    ) -> Result<Self, MpcError> {
        let rng = ChaCha20Rng::try_from_rng(&mut rand::rngs::OsRng).map_err(MpcError::Entropy)?;
        Ok(Self::with_rng(arch, weights, rng))
    }

    /// **Insecure, for tests and reproducible benchmarks only**: the same dealer with every
    /// secret derived from a 64-bit `seed`, which anyone can search.
    pub fn new_insecure_seeded(arch: &Architecture, weights: &[LayerWeights], seed: u64) -> Self {
        Self::with_rng(arch, weights, ChaCha20Rng::seed_from_u64(seed))
    }

    fn with_rng(arch: &Architecture, weights: &[LayerWeights], mut rng: ChaCha20Rng) -> Self {
        let mut masks = Vec::new();
        let mut shares = [
            ModelShares { layers: Vec::new() },
            ModelShares { layers: Vec::new() },
        ];
        let linears = arch.ops.iter().filter_map(|op| match op {
            Op::Linear { linear, .. } => Some(linear.clone()),
            _ => None,
        });
        for (linear, lw) in linears.zip(weights) {
            let w: Vec<u64> = lw
                .weight
                .iter()
                .map(|&v| encode_weight(f64::from(v)))
                .collect();
            let b: Vec<u64> = w.iter().map(|_| rng.random()).collect();
            let f: Vec<u64> = w.iter().zip(&b).map(|(w, b)| w.wrapping_sub(*b)).collect();
            let (b0, b1) = share(&b, &mut rng);
            let bias: Vec<u64> = lw
                .bias
                .iter()
                .map(|&v| encode_with(f64::from(v), FRAC_BITS + WEIGHT_FRAC_BITS))
                .collect();
            let (bias0, bias1) = share(&bias, &mut rng);
            shares[0].layers.push(LinearShares {
                masked_weight: f.clone(),
                weight_mask: b0,
                bias: bias0,
            });
            shares[1].layers.push(LinearShares {
                masked_weight: f,
                weight_mask: b1,
                bias: bias1,
            });
            masks.push((linear, b));
        }
        Dealer {
            arch: arch.clone(),
            masks,
            shares,
            widths: comparison_widths(arch, weights),
            prg: Prg::default(),
            rng,
        }
    }

    /// The same dealer issuing comparisons of `widths` bits (one per ReLU material item, in
    /// issue order; missing ones are [`COMPARE_BITS`], each is clamped to `1..=COMPARE_BITS`)
    /// in place of the widths derived from the weights: for tests of values beyond
    /// [`crate::model::INPUT_BOUND`]'s reach.
    pub fn with_comparison_widths(mut self, widths: Vec<u32>) -> Self {
        self.widths = widths
            .into_iter()
            .map(|w| w.clamp(1, COMPARE_BITS))
            .collect();
        self
    }

    /// The comparison width of each ReLU material item, in issue order.
    pub fn comparison_widths(&self) -> &[u32] {
        &self.widths
    }

    /// The model shares of server `party` (0 or 1).
    pub fn model_shares(&self, party: usize) -> &ModelShares {
        &self.shares[party.min(1)]
    }

    /// Fresh material for one batch of `batch` inputs, for both servers.
    pub fn material(&mut self, batch: usize) -> [Material; 2] {
        let mut out = [Material::default(), Material::default()];
        let mut linear = 0;
        let mut step = 0;
        for op in self.arch.ops.clone() {
            match op {
                Op::Linear { linear: lin, .. } => {
                    let (_, b) = &self.masks[linear];
                    linear += 1;
                    let a: Vec<u64> = (0..batch * lin.input_len())
                        .map(|_| self.rng.random())
                        .collect();
                    let wb: Vec<Wrapping<u64>> = b.iter().map(|&v| Wrapping(v)).collect();
                    let xs: Vec<Wrapping<u64>> = a.iter().map(|&v| Wrapping(v)).collect();
                    let c: Vec<u64> = lin
                        .apply_many(&wb, &xs, batch)
                        .into_iter()
                        .map(|v| v.0)
                        .collect();
                    let (a0, a1) = share(&a, &mut self.rng);
                    let (c0, c1) = share(&c, &mut self.rng);
                    out[0].items.push(Item::Linear { a: a0, c: c0 });
                    out[1].items.push(Item::Linear { a: a1, c: c1 });
                }
                Op::Relu { len, .. } => {
                    self.push_relu(&mut out, batch * len, step);
                    step += 1;
                }
                Op::MaxPool {
                    input,
                    kernel,
                    output,
                    ..
                } => {
                    let windows = batch * input[0] * output[0] * output[1];
                    for pairs in pool_levels(kernel[0] * kernel[1]) {
                        self.push_relu(&mut out, windows * pairs, step);
                        step += 1;
                    }
                }
                Op::AvgPool { .. } => {}
            }
        }
        out
    }

    /// Appends both servers' material for `n` ReLUs of comparison step `step` (at that step's
    /// width). Generated in chunks of [`RELU_CHUNK`] elements on every core: each chunk draws
    /// from its own ChaCha20 stream, seeded from the dealer's generator in chunk order, so the
    /// material does not depend on the number of threads (and a seeded dealer stays
    /// reproducible).
    fn push_relu(&mut self, out: &mut [Material; 2], n: usize, step: usize) {
        let bits = self.widths.get(step).copied().unwrap_or(COMPARE_BITS);
        let seeds: Vec<[u8; 32]> = (0..n.div_ceil(RELU_CHUNK))
            .map(|_| self.rng.random())
            .collect();
        let lens = |c: usize| RELU_CHUNK.min(n - c * RELU_CHUNK);
        let threads = std::thread::available_parallelism()
            .map_or(1, |t| t.get())
            .clamp(1, seeds.len().max(1));
        let per_thread = seeds.len().div_ceil(threads).max(1);
        let prg = &self.prg;
        let groups: Vec<Vec<[ReluMaterial; 2]>> = std::thread::scope(|scope| {
            let handles: Vec<_> = seeds
                .chunks(per_thread)
                .enumerate()
                .map(|(g, group)| {
                    scope.spawn(move || {
                        group
                            .iter()
                            .enumerate()
                            .map(|(i, seed)| relu_chunk(prg, *seed, lens(g * per_thread + i), bits))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        let mut halves: [ReluMaterial; 2] = std::array::from_fn(|_| ReluMaterial::with_capacity(n));
        for [h0, h1] in groups.into_iter().flatten() {
            halves[0].append(h0);
            halves[1].append(h1);
        }
        let [h0, h1] = halves;
        out[0].items.push(Item::Relu(h0));
        out[1].items.push(Item::Relu(h1));
    }
}

/// Elements per independently seeded chunk of ReLU material.
pub const RELU_CHUNK: usize = 2048;

impl ReluMaterial {
    fn with_capacity(n: usize) -> Self {
        ReluMaterial {
            r: Shares(Vec::with_capacity(n)),
            rho: Shares(Vec::with_capacity(n)),
            rho_r: Shares(Vec::with_capacity(n)),
            keys: Vec::with_capacity(n),
        }
    }

    fn append(&mut self, mut other: ReluMaterial) {
        self.r.0.append(&mut other.r.0);
        self.rho.0.append(&mut other.rho.0);
        self.rho_r.0.append(&mut other.rho_r.0);
        self.keys.append(&mut other.keys);
    }
}

/// Both servers' material for `n` ReLUs of `bits`-bit comparisons from the ChaCha20 stream of
/// `seed`: per element a uniform `bits + 1`-bit mask `R` with top bit `rho`, DCF keys for
/// `[y < R mod 2^bits]` with payload `(2 rho - 1, (2 rho - 1) R, rho)`, and shares of `R`,
/// `rho` and `rho R`.
fn relu_chunk(prg: &Prg, seed: [u8; 32], n: usize, bits: u32) -> [ReluMaterial; 2] {
    let mut rng = ChaCha20Rng::from_seed(seed);
    let mut halves: [ReluMaterial; 2] = std::array::from_fn(|_| ReluMaterial::with_capacity(n));
    let low = (1u64 << bits) - 1;
    for _ in 0..n {
        let r = rng.random::<u64>() >> (63 - bits);
        let rho = r >> bits;
        let signed = (rho << 1).wrapping_sub(1); // 2 rho - 1: 1 or -1
        let beta = [signed, signed.wrapping_mul(r), rho];
        let (k0, k1) = dcf::generate(prg, bits, r & low, beta, &mut rng);
        for (v, pick) in [(r, 0usize), (rho, 1), (rho * r, 2)] {
            let s0: u64 = rng.random();
            let s1 = v.wrapping_sub(s0);
            for (half, s) in halves.iter_mut().zip([s0, s1]) {
                match pick {
                    0 => half.r.0.push(s),
                    1 => half.rho.0.push(s),
                    _ => half.rho_r.0.push(s),
                }
            }
        }
        halves[0].keys.push(k0);
        halves[1].keys.push(k1);
    }
    halves
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Op;

    fn relu_arch(len: usize) -> Architecture {
        Architecture {
            name: "relu".into(),
            input_len: len,
            output_len: len,
            ops: vec![Op::Relu {
                layer: "r".into(),
                len,
            }],
        }
    }

    #[test]
    fn chunked_material_is_reproducible_and_well_formed() {
        // Three chunks, the last one short: the same seed gives the same material (whatever
        // the thread count), another seed different material.
        let n = 2 * RELU_CHUNK + 5;
        let arch = relu_arch(n);
        let bits = Dealer::new_insecure_seeded(&arch, &[], 9).comparison_widths()[0];
        // The ReLU's input is the clamped input itself: 16 x 2^12 + 64 < 2^17, plus a bit.
        assert_eq!(bits, 18);
        let a = Dealer::new_insecure_seeded(&arch, &[], 9).material(1);
        let b = Dealer::new_insecure_seeded(&arch, &[], 9).material(1);
        let c = Dealer::new_insecure_seeded(&arch, &[], 10).material(1);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let [Item::Relu(m0), Item::Relu(m1)] = [&a[0].items[0], &a[1].items[0]] else {
            panic!("relu material")
        };
        for m in [m0, m1] {
            assert_eq!(
                (m.r.len(), m.rho.len(), m.rho_r.len(), m.keys.len()),
                (n, n, n, n)
            );
        }
        // The shares open to a `bits + 1`-bit mask, its top bit and their product; the keys
        // compare `bits` bits.
        for i in [0, RELU_CHUNK, n - 1] {
            let r = m0.r.0[i].wrapping_add(m1.r.0[i]);
            let rho = m0.rho.0[i].wrapping_add(m1.rho.0[i]);
            let rho_r = m0.rho_r.0[i].wrapping_add(m1.rho_r.0[i]);
            assert!(r < 1 << (bits + 1));
            assert_eq!((rho, rho_r), (r >> bits, (r >> bits) * r));
            assert_eq!((m0.keys[i].bits, m1.keys[i].bits), (bits, bits));
        }
    }
}
