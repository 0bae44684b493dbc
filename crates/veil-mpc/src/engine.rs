//! The online phase of one server: evaluates the architecture on its input shares with its
//! model shares and the dealer's material, exchanging only masked values with the other
//! server. See [`crate::dealer`] for what each step consumes and why the opened values are
//! uniform.
//!
//! Rounds per batch (independent of the batch size): one per linear layer (8 bytes per input
//! element and server), one per ReLU op and one per level of a max pool (`2 x 2` windows: two
//! levels; per comparison and server `ceil((n + 1) / 8)` bytes for the step's comparison width
//! `n`, at most 5). Average pooling and truncation are local.
//!
//! Key items: [`Server`], [`Server::infer`], [`relu`].

use std::num::Wrapping;

use crate::dcf::DcfKey;
use crate::dealer::{COMPARE_BITS, Item, LinearShares, Material, ModelShares, ReluMaterial};
use crate::model::{Architecture, Linear, Op};
use crate::prg::Prg;
use crate::ring::{FRAC_BITS, WEIGHT_FRAC_BITS, encode, truncate_share};
use crate::share::{Party, Shares};
use crate::transport::Channel;
use crate::{MpcError, Violation};

/// One op of one batch as a server ran it: for diagnosing where online time goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpTime {
    /// The op's layer.
    pub layer: String,
    /// Wall time (microseconds).
    pub micros: u64,
    /// Rounds with the other server.
    pub rounds: u64,
    /// Frame bytes sent to the other server.
    pub bytes_sent: u64,
}

/// One computing server.
pub struct Server {
    /// Which server.
    pub party: Party,
    /// The public architecture.
    pub arch: Architecture,
    /// This server's model shares (private: `ring` is derived from them once).
    model: ModelShares,
    /// `F` and this server's `B` of each linear layer as ring elements, converted once here
    /// rather than on every inference.
    ring: Vec<RingWeights>,
    prg: Prg,
}

/// One linear layer's weights in the kernels' ring type.
struct RingWeights {
    masked: Vec<Wrapping<u64>>,
    mask: Vec<Wrapping<u64>>,
}

/// Consumes material items in order, with a clear error when the dealer sent too few or the
/// wrong kind.
struct Items {
    items: std::vec::IntoIter<Item>,
}

impl Items {
    fn next(&mut self, what: &str) -> Result<Item, MpcError> {
        self.items.next().ok_or_else(|| MpcError::Protocol {
            peer: "dealer".into(),
            step: what.into(),
            violation: Violation::MaterialRanOut,
        })
    }

    /// The next item, which must be ReLU material for `n` elements whose keys all compare the
    /// same number of bits, at most [`COMPARE_BITS`] (the dealer's width for this step).
    fn relu(&mut self, what: &str, n: usize) -> Result<ReluMaterial, MpcError> {
        match self.next(what)? {
            Item::Relu(m)
                if m.r.len() == n
                    && m.rho.len() == n
                    && m.rho_r.len() == n
                    && m.keys.len() == n
                    && m.keys.iter().all(|k| {
                        k.bits == m.keys[0].bits
                            && (1..=COMPARE_BITS).contains(&k.bits)
                            && k.words.len() == k.bits as usize
                    }) =>
            {
                Ok(m)
            }
            _ => Err(MpcError::Protocol {
                peer: "dealer".into(),
                step: what.into(),
                violation: Violation::ExpectedRelu(n),
            }),
        }
    }
}

/// How a batch's input reaches a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// This server's additive shares of the encoded input.
    Shares(Shares),
    /// `E = X - A` from the sensor (see [`Server::infer_input`]).
    Masked(Vec<u64>),
}

/// The input of a linear layer: this server's shares of `X`, or `E = X - A` already opened.
enum LinearInput<'a> {
    Shares(&'a [u64]),
    Opened(&'a [u64]),
}

/// One inference's moving parts: the link to the other server, the next open step, the
/// material not consumed yet and the batch size.
struct Online<'a, C> {
    ch: &'a mut C,
    step: u32,
    items: Items,
    batch: usize,
}

impl Server {
    /// A server with its model shares; the number of shared layers must match the
    /// architecture's linear layers and their sizes.
    pub fn new(party: Party, arch: Architecture, model: ModelShares) -> Result<Self, MpcError> {
        let linears: Vec<&Linear> = arch
            .ops
            .iter()
            .filter_map(|op| match op {
                Op::Linear { linear, .. } => Some(linear),
                _ => None,
            })
            .collect();
        let ok = linears.len() == model.layers.len()
            && linears.iter().zip(&model.layers).all(|(l, s)| {
                s.masked_weight.len() == l.weight_len()
                    && s.weight_mask.len() == l.weight_len()
                    && !s.bias.is_empty()
                    && l.output_len() % s.bias.len() == 0
            });
        if !ok {
            return Err(MpcError::Protocol {
                peer: "dealer".into(),
                step: "model shares".into(),
                violation: Violation::SharesDoNotFit(arch.name.clone()),
            });
        }
        let ring = model
            .layers
            .iter()
            .map(|s| RingWeights {
                masked: s.masked_weight.iter().map(|&v| Wrapping(v)).collect(),
                mask: s.weight_mask.0.iter().map(|&v| Wrapping(v)).collect(),
            })
            .collect();
        Ok(Server {
            party,
            arch,
            model,
            ring,
            prg: Prg::default(),
        })
    }

    /// This server's model shares.
    pub fn model(&self) -> &ModelShares {
        &self.model
    }

    /// Evaluates `batch` inputs from their shares (`batch * input_len` words) and returns this
    /// server's shares of the logits (`batch * output_len`, scale `2^FRAC_BITS`).
    pub fn infer(
        &self,
        ch: &mut impl Channel,
        input: Shares,
        material: Material,
        batch: usize,
    ) -> Result<Shares, MpcError> {
        self.infer_input(ch, Input::Shares(input), material, batch)
    }

    /// Like [`Server::infer`], from either kind of [`Input`]. A masked input (`E = X - A`,
    /// `batch * input_len` words, public to both servers, where `A` is the first linear
    /// layer's input mask that the sensor reconstructed from both servers' shares of it,
    /// [`Material::first_input_mask`]) spares the first layer its opening; it is refused when
    /// the first op is not linear.
    pub fn infer_input(
        &self,
        ch: &mut impl Channel,
        input: Input,
        material: Material,
        batch: usize,
    ) -> Result<Shares, MpcError> {
        self.infer_timed(ch, input, material, batch)
            .map(|(shares, _)| shares)
    }

    /// [`Server::infer_input`] with the time, rounds and bytes of each op (public: what a
    /// server's log may show).
    pub fn infer_timed(
        &self,
        ch: &mut impl Channel,
        input: Input,
        material: Material,
        batch: usize,
    ) -> Result<(Shares, Vec<OpTime>), MpcError> {
        if matches!(input, Input::Masked(_))
            && !matches!(self.arch.ops.first(), Some(Op::Linear { .. }))
        {
            return Err(MpcError::Input(format!(
                "{}: a masked input needs a linear first layer",
                self.arch.name
            )));
        }
        let (words, mut premasked) = match input {
            Input::Shares(s) => (s.0, false),
            Input::Masked(e) => (e, true),
        };
        if words.len() != batch * self.arch.input_len {
            return Err(MpcError::Input(format!(
                "{} input words for a batch of {batch} x {}",
                words.len(),
                self.arch.input_len
            )));
        }
        let mut run = Online {
            ch,
            step: 0,
            items: Items {
                items: material.items.into_iter(),
            },
            batch,
        };
        let mut x = words;
        let mut layers = self.model.layers.iter().zip(&self.ring);
        let mut times = Vec::with_capacity(self.arch.ops.len());
        for op in &self.arch.ops {
            let (started, before) = (std::time::Instant::now(), run.ch.stats());
            x = match op {
                Op::Linear { layer, linear } => {
                    let shares = layers.next().ok_or_else(|| MpcError::Protocol {
                        peer: "dealer".into(),
                        step: layer.clone(),
                        violation: Violation::NoModelShares,
                    })?;
                    let Item::Linear { a, c } = run.items.next(layer)? else {
                        return Err(MpcError::Protocol {
                            peer: "dealer".into(),
                            step: layer.clone(),
                            violation: Violation::ExpectedLinear,
                        });
                    };
                    let input = match std::mem::take(&mut premasked) {
                        true => LinearInput::Opened(&x),
                        false => LinearInput::Shares(&x),
                    };
                    let step = &mut run.step;
                    self.linear(
                        run.ch, step, linear, shares, input, &a.0, &c.0, batch, layer,
                    )?
                }
                Op::Relu { layer, len } => {
                    let m = run.items.relu(layer, batch * len)?;
                    relu(run.ch, &mut run.step, self.party, &self.prg, &x, m)?
                }
                Op::MaxPool {
                    layer,
                    input,
                    kernel,
                    stride,
                    ..
                } => {
                    let windows = Op::windows(*input, *kernel, *stride);
                    let per = input.iter().product::<usize>();
                    self.max_pool(&mut run, layer, &windows, per, &x)?
                }
                Op::AvgPool {
                    input,
                    kernel,
                    stride,
                    ..
                } => {
                    let windows = Op::windows(*input, *kernel, *stride);
                    let per = input.iter().product::<usize>();
                    self.avg_pool(&windows, per, kernel[0] * kernel[1], &x, batch)
                }
            };
            let after = run.ch.stats();
            times.push(OpTime {
                layer: op.layer().to_string(),
                micros: started.elapsed().as_micros() as u64,
                rounds: after.rounds - before.rounds,
                bytes_sent: after.bytes_sent - before.bytes_sent,
            });
        }
        if run.items.items.next().is_some() {
            return Err(MpcError::Protocol {
                peer: "dealer".into(),
                step: "end".into(),
                violation: Violation::MaterialLeftOver,
            });
        }
        Ok((Shares(x), times))
    }

    /// Shares of a max pool of `x` (`run.batch` samples of `per` words; `windows` are the
    /// input indices of each output element): a tournament in which each level compares
    /// the pairs of every window with one secure ReLU of their differences (`max(a, b) = b +
    /// relu(a - b)`; an odd candidate passes to the next level). Two rounds per level.
    fn max_pool<C: Channel>(
        &self,
        run: &mut Online<'_, C>,
        layer: &str,
        windows: &[Vec<usize>],
        per: usize,
        x: &[u64],
    ) -> Result<Vec<u64>, MpcError> {
        // Candidates of every window of every sample, `left` per window, flat (every window
        // has the same size, so each level shrinks them all alike).
        let mut left = windows.first().map_or(0, Vec::len);
        let mut cands: Vec<u64> = Vec::with_capacity(run.batch * windows.len() * left);
        for s in 0..run.batch {
            let img = &x[s * per..(s + 1) * per];
            for win in windows {
                cands.extend(win.iter().map(|&i| img[i]));
            }
        }
        let count = run.batch * windows.len();
        while left > 1 {
            let pairs = left / 2;
            let c = &cands;
            let diffs: Vec<u64> = (0..count)
                .flat_map(|w| {
                    (0..pairs)
                        .map(move |p| c[w * left + 2 * p].wrapping_sub(c[w * left + 2 * p + 1]))
                })
                .collect();
            let m = run.items.relu(layer, diffs.len())?;
            let r = relu(run.ch, &mut run.step, self.party, &self.prg, &diffs, m)?;
            let next_left = pairs + left % 2;
            let mut next = Vec::with_capacity(count * next_left);
            for w in 0..count {
                let win = &cands[w * left..(w + 1) * left];
                next.extend((0..pairs).map(|p| win[2 * p + 1].wrapping_add(r[w * pairs + p])));
                if left % 2 == 1 {
                    next.push(win[left - 1]);
                }
            }
            cands = next;
            left = next_left;
        }
        Ok(cands)
    }

    /// Shares of an average pool of `x` (`batch` samples of `per` words, windows of `area`
    /// elements): local window sums times the public `1 / area`, truncated. No rounds.
    fn avg_pool(
        &self,
        windows: &[Vec<usize>],
        per: usize,
        area: usize,
        x: &[u64],
        batch: usize,
    ) -> Vec<u64> {
        let scale = encode(1.0 / area as f64);
        let p = self.party.index();
        let mut out = Vec::with_capacity(batch * windows.len());
        for s in 0..batch {
            let img = &x[s * per..(s + 1) * per];
            for win in windows {
                let sum = win.iter().fold(0u64, |acc, &i| acc.wrapping_add(img[i]));
                out.push(truncate_share(sum.wrapping_mul(scale), p, FRAC_BITS));
            }
        }
        out
    }

    /// `L(W, X) + bias`, truncated: opens `E = X - A` (unless the sensor already sent it),
    /// then `[p = 0] L(F, E) + L(F, A_p) + L(B_p, E) + C_p`.
    #[allow(clippy::too_many_arguments)]
    fn linear(
        &self,
        ch: &mut impl Channel,
        step: &mut u32,
        linear: &Linear,
        shares: (&LinearShares, &RingWeights),
        input: LinearInput<'_>,
        a: &[u64],
        c: &[u64],
        batch: usize,
        layer: &str,
    ) -> Result<Vec<u64>, MpcError> {
        let (n_in, n_out) = (linear.input_len(), linear.output_len());
        if a.len() != batch * n_in || c.len() != batch * n_out {
            return Err(MpcError::Protocol {
                peer: "dealer".into(),
                step: layer.into(),
                violation: Violation::LinearSize,
            });
        }
        let e = match input {
            LinearInput::Shares(x) => {
                let e_mine: Vec<u64> = x.iter().zip(a).map(|(x, a)| x.wrapping_sub(*a)).collect();
                open_sum(ch, step, &e_mine)?
            }
            LinearInput::Opened(e) => e.to_vec(),
        };
        let p = self.party.index();
        let (shares, weights) = shares;
        let per_bias = n_out / shares.bias.len();
        // All samples at once: `L(F, A_p + [p = 0] E) + L(B_p, E)` (a dense layer's weights
        // then stream from memory once per block of samples, not once per sample).
        let es: Vec<Wrapping<u64>> = e.iter().map(|&v| Wrapping(v)).collect();
        let left: Vec<Wrapping<u64>> = a
            .iter()
            .zip(&es)
            .map(|(&a, &e)| Wrapping(a) + if p == 0 { e } else { Wrapping(0) })
            .collect();
        let y1 = linear.apply_many(&weights.masked, &left, batch);
        let y2 = linear.apply_many(&weights.mask, &es, batch);
        let out = y1
            .iter()
            .zip(&y2)
            .zip(c)
            .enumerate()
            .map(|(i, ((u, v), &c))| {
                let y = (*u + *v)
                    .0
                    .wrapping_add(c)
                    .wrapping_add(shares.bias.0[(i % n_out) / per_bias]);
                truncate_share(y, p, WEIGHT_FRAC_BITS)
            })
            .collect();
        Ok(out)
    }
}

/// Opens a masked vector: sends this server's share, adds the peer's.
fn open_sum(ch: &mut impl Channel, step: &mut u32, mine: &[u64]) -> Result<Vec<u64>, MpcError> {
    let theirs = ch.exchange(*step, mine, 64)?;
    *step += 1;
    Ok(mine
        .iter()
        .zip(&theirs)
        .map(|(a, b)| a.wrapping_add(*b))
        .collect())
}

/// Opens a masked vector modulo `2^bits`: both servers send their shares reduced to `bits`
/// bits (`ceil(bits / 8)` bytes each on the wire), and the sum is reduced the same way (in
/// place of `mine`).
fn open_low_bits(
    ch: &mut impl Channel,
    step: &mut u32,
    mut mine: Vec<u64>,
    bits: u32,
) -> Result<Vec<u64>, MpcError> {
    let mask = (1u64 << bits) - 1;
    mine.iter_mut().for_each(|v| *v &= mask);
    let theirs = ch.exchange(*step, &mine, bits)?;
    *step += 1;
    for (a, b) in mine.iter_mut().zip(&theirs) {
        *a = a.wrapping_add(*b) & mask;
    }
    Ok(mine)
}

/// Shares of `relu(x)` from shares of `x` in one round of `ceil(L / 8)` bytes per element and
/// party, where `L - 1` is the comparison width of `m`'s keys (at most [`COMPARE_BITS`]:
/// 5 bytes) and every `|x| < 2^(L - 1)` must hold (the dealer picks the width from a bound on
/// `x`, [`crate::model::comparison_widths`]).
///
/// Write `L` for the opened width, `R` for the dealer's mask (uniform below `2^L`, top bit
/// `rho`) and `X = x + R mod 2^L` for the opened value (uniform, so it reveals nothing), with
/// top bit `h`. The DCF keys give shares of `u = [X mod 2^(L-1) < R mod 2^(L-1)]` times the
/// payload: `U1 = (2 rho - 1) u`, `U2 = (2 rho - 1) u R`, `U3 = rho u`. Then:
/// - `x mod 2^L = X - R + 2^L c` with the wrap `c = [X < R]`; the sign of `x` is bit `L - 1`
///   of that, `msb = h xor rho xor u`, and `d = [x >= 0] = 1 - msb`.
/// - Since `relu(x) = d (x mod 2^L)` when `|x| < 2^(L-1)`: `relu(x) = d X - d R + 2^L d c`.
/// - For `h = 0`: `d = 1 - rho + U1`, `d R = R - rho R + U2`, `d c = U3`.
/// - For `h = 1`: `d = rho - U1`, `d R = rho R - U2`, `d c = 0`.
///
/// With `X` public and shares of `R`, `rho`, `rho R` from the dealer, every term is local.
pub fn relu(
    ch: &mut impl Channel,
    step: &mut u32,
    party: Party,
    prg: &Prg,
    x: &[u64],
    m: ReluMaterial,
) -> Result<Vec<u64>, MpcError> {
    let p = party.index();
    let one = party.constant_weight();
    let masked: Vec<u64> = x
        .iter()
        .zip(&m.r.0)
        .map(|(x, r)| x.wrapping_add(*r))
        .collect();
    let compare_bits = m.keys.first().map_or(COMPARE_BITS, |k| k.bits);
    let open_bits = compare_bits + 1;
    let opened = open_low_bits(ch, step, masked, open_bits)?;
    // The keys read only the low `compare_bits` bits of each opened value.
    // The keys' outputs are combined chunk by chunk while they are still in cache (a whole
    // batch-64 layer's outputs are tens of megabytes).
    let mut out = Vec::with_capacity(opened.len());
    for (start, (keys, xs)) in (0..).step_by(RELU_EVAL_CHUNK).zip(
        m.keys
            .chunks(RELU_EVAL_CHUNK)
            .zip(opened.chunks(RELU_EVAL_CHUNK)),
    ) {
        let payload = DcfKey::eval_many(prg, p, keys, xs);
        out.extend(
            xs.iter()
                .zip(&payload)
                .enumerate()
                .map(|(k, (&xh, &[u1, u2, u3]))| {
                    let i = start + k;
                    let (r, rho, rho_r) = (m.r.0[i], m.rho.0[i], m.rho_r.0[i]);
                    if xh >> compare_bits == 0 {
                        // d X - d R + 2^L d c = (1 - rho + U1) X - (R - rho R + U2) + 2^L U3
                        one.wrapping_mul(xh)
                            .wrapping_sub(rho.wrapping_mul(xh))
                            .wrapping_add(u1.wrapping_mul(xh))
                            .wrapping_sub(r)
                            .wrapping_add(rho_r)
                            .wrapping_sub(u2)
                            .wrapping_add(u3 << open_bits)
                    } else {
                        // (rho - U1) X - (rho R - U2)
                        rho.wrapping_mul(xh)
                            .wrapping_sub(u1.wrapping_mul(xh))
                            .wrapping_sub(rho_r)
                            .wrapping_add(u2)
                    }
                }),
        );
    }
    Ok(out)
}

/// ReLUs whose key outputs [`relu`] computes and combines at a time.
const RELU_EVAL_CHUNK: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Architecture, Op};
    use crate::share::{reveal, share};
    use crate::transport::MemoryChannel;
    use rand::SeedableRng;

    /// A bare architecture of one ReLU op over `len` elements.
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

    /// Shares `values`, runs one secure ReLU on `dealer`'s material between two threads and
    /// returns the revealed outputs and the bytes server 0 sent.
    fn run_relu(dealer: &mut crate::dealer::Dealer, values: &[f64], seed: u64) -> (Vec<f64>, u64) {
        let [m0, m1] = dealer.material(1);
        let xs: Vec<u64> = values.iter().map(|&v| crate::ring::encode(v)).collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let (x0, x1) = share(&xs, &mut rng);
        let (mut c0, mut c1) = MemoryChannel::pair();
        let prg = Prg::default();
        let take = |m: &Material| match m.items[0].clone() {
            Item::Relu(r) => r,
            Item::Linear { .. } => panic!("relu material"),
        };
        let (y0, y1) = std::thread::scope(|s| {
            let h = s.spawn(|| relu(&mut c1, &mut 0, Party::One, &prg, &x1.0, take(&m1)));
            let y0 = relu(&mut c0, &mut 0, Party::Zero, &prg, &x0.0, take(&m0));
            (y0.expect("y0"), h.join().expect("join").expect("y1"))
        });
        let y = reveal(&Shares(y0), &Shares(y1))
            .into_iter()
            .map(crate::ring::decode)
            .collect();
        (y, Channel::stats(&c0).bytes_sent)
    }

    /// At the full width: includes values of magnitude 10^6, far beyond any activation yet
    /// inside the exact range of the 39-bit comparison (`2^27`).
    #[test]
    fn relu_of_known_values() {
        let mut dealer = crate::dealer::Dealer::new_insecure_seeded(&relu_arch(8), &[], 1)
            .with_comparison_widths(vec![COMPARE_BITS]);
        let values = [0.5, -0.5, 3.0, -7.25, 0.0, 100.0, 1.0e6, -1.0e6];
        let (y, _) = run_relu(&mut dealer, &values, 2);
        assert_eq!(y, vec![0.5, 0.0, 3.0, 0.0, 0.0, 100.0, 1.0e6, 0.0]);
    }

    /// At the width the dealer derives for a ReLU of the clamped input (18 bits: 2 bytes and 3
    /// bits opened): values up to the clamp bound and one unit either side of zero come out
    /// exact, and the opened frame is 3 bytes per value.
    #[test]
    fn relu_at_the_derived_narrow_width() {
        let mut dealer = crate::dealer::Dealer::new_insecure_seeded(&relu_arch(6), &[], 3);
        assert_eq!(dealer.comparison_widths(), &[18]);
        let values = [16.0, -16.0, crate::ring::ULP, -crate::ring::ULP, 0.0, 7.5];
        let (y, sent) = run_relu(&mut dealer, &values, 4);
        assert_eq!(y, vec![16.0, 0.0, crate::ring::ULP, 0.0, 0.0, 7.5]);
        assert_eq!(sent as usize, crate::transport::FRAME_HEADER + 6 * 3);
    }

    /// ReLU material from a broken or hostile dealer is refused before anything is opened:
    /// keys of two widths in one item, a key wider than [`COMPARE_BITS`], a key whose level
    /// count disagrees with its width.
    #[test]
    fn relu_material_of_mixed_or_excessive_widths_is_refused() {
        let mut dealer = crate::dealer::Dealer::new_insecure_seeded(&relu_arch(4), &[], 5);
        let [m0, _] = dealer.material(1);
        let Item::Relu(good) = m0.items[0].clone() else {
            panic!("relu material")
        };
        let items = |m: ReluMaterial| Items {
            items: vec![Item::Relu(m)].into_iter(),
        };
        assert!(items(good.clone()).relu("r", 4).is_ok());
        let mut mixed = good.clone();
        mixed.keys[1].bits -= 1;
        mixed.keys[1].words.pop();
        let mut wide = good.clone();
        for k in &mut wide.keys {
            k.bits = COMPARE_BITS + 1;
            k.words.resize(k.bits as usize, k.words[0].clone());
        }
        let mut short = good;
        short.keys[2].words.pop();
        for (bad, what) in [(mixed, "mixed"), (wide, "wide"), (short, "short")] {
            let e = items(bad).relu("r", 4).expect_err(what).to_string();
            assert!(e.contains("dealer"), "{what}: {e}");
        }
    }
}
