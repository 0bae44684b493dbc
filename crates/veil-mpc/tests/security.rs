//! What a server sees is uniform and independent of the input.
//!
//! The view of server E1 is everything it receives: its model shares (masked weights `F`,
//! weight-mask and bias shares), the dealer's material (input masks, product shares, ReLU masks,
//! sign-bit shares, Beaver shares, and the DCF keys' seeds (bits 1-64; bit 0 is 0 by
//! construction) and correction words), the sensor's
//! input shares, every opened share E2 sends, and the values E1 opens with them (its own share
//! plus E2's: `X - A`, `x + r`, `d - b`). The test runs secureml_a (He-scaled random
//! weights) 24 times on an all-black and 24 times on an all-white image, each time with a
//! fresh dealer seed and fresh input shares, records E1's view as 64-bit words, and checks:
//!
//! 1. **No plaintext**: no 64-bit word of the view has a signed magnitude below `2^32` (every
//!    activation of the computation is below it; a uniform word falls there with
//!    probability `2^-31`). The ReLU openings are packed to their comparison width plus one
//!    bit (`veil_mpc::model::comparison_widths`); the width is chosen so that the ReLU inputs
//!    fit, so a magnitude test alone cannot tell them from uniform: a stream of them may hold
//!    no more words below `2^(bits - 6)` than a uniform stream (1 in 32, plus 5 standard
//!    deviations), where plaintext ReLU inputs of this test would put almost all of them.
//! 2. **Uniform**: in each stream, every one of its 64 (or narrower) bit positions is set with
//!    frequency 1/2 within 5 standard deviations (`|count - N/2| <= 5 sqrt(N) / 2`).
//! 3. **Independent of the input**: per stream and bit position, the frequencies under the
//!    black and the white image differ by less than 5 standard deviations of the difference
//!    of two binomial proportions.
//!
//! Negative control (done by hand when this test was written, and again when the openings
//! became narrower): a dealer that issues zero ReLU masks makes check 1 fail on the opened
//! values (3,072 of the first ReLU's 3,072 23-bit openings over 24 runs).

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use veil_mpc::MpcError;
use veil_mpc::dealer::{Dealer, Item};
use veil_mpc::engine::Input;
use veil_mpc::engine::Server;
use veil_mpc::local::sensor_input;
use veil_mpc::model::{Tensors, compile};
use veil_mpc::share::Party;
use veil_mpc::transport::{Channel, LinkStats, MemoryChannel};

/// Records every word received on a link, by width: 64-bit openings (linear layers) and
/// narrower ones (ReLU inputs, at their step's comparison width plus one bit).
#[derive(Default)]
struct Recorded {
    received: Vec<u64>,
    opened: Vec<u64>,
}

struct Recording {
    inner: MemoryChannel,
    by_bits: BTreeMap<u32, Recorded>,
}

impl Channel for Recording {
    fn exchange(&mut self, step: u32, values: &[u64], bits: u32) -> Result<Vec<u64>, MpcError> {
        let got = self.inner.exchange(step, values, bits)?;
        let rec = self.by_bits.entry(bits).or_default();
        rec.received.extend_from_slice(&got);
        // What the server learns from the exchange: the opened (masked) values.
        let mask = if bits == 64 {
            u64::MAX
        } else {
            (1 << bits) - 1
        };
        rec.opened.extend(
            values
                .iter()
                .zip(&got)
                .map(|(a, b)| a.wrapping_add(*b) & mask),
        );
        Ok(got)
    }

    fn stats(&self) -> LinkStats {
        self.inner.stats()
    }
}

type View = BTreeMap<String, Vec<u64>>;

fn view_of_e1(pixel: f32, runs: usize) -> View {
    let spec = veil_spec::zoo::model("secureml_a").expect("zoo");
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut tensors = Tensors::new();
    for e in veil_spec::weights::layout(&spec).expect("layout") {
        let n: usize = e.shape.iter().product();
        let s = (2.0 / e.shape[1..].iter().product::<usize>().max(1) as f32).sqrt();
        tensors.insert(
            e.name,
            (e.shape, (0..n).map(|_| rng.random_range(-s..s)).collect()),
        );
    }
    let (arch, weights) = compile(&spec, &tensors).expect("compile");
    let mut view = View::new();
    for run in 0..runs {
        let mut dealer = Dealer::new_insecure_seeded(&arch, &weights, 1000 + run as u64);
        let [m0, m1] = dealer.material(1);
        let model0 = dealer.model_shares(0).clone();
        for l in &model0.layers {
            view.entry(String::from("model: masked weights"))
                .or_default()
                .extend(&l.masked_weight);
            view.entry(String::from("model: weight-mask share"))
                .or_default()
                .extend(&l.weight_mask.0);
            view.entry(String::from("model: bias share"))
                .or_default()
                .extend(&l.bias.0);
        }
        for it in &m0.items {
            match it {
                Item::Linear { a, c } => {
                    view.entry(String::from("material: input mask"))
                        .or_default()
                        .extend(&a.0);
                    view.entry(String::from("material: product"))
                        .or_default()
                        .extend(&c.0);
                }
                Item::Relu(r) => {
                    view.entry(String::from("material: relu mask"))
                        .or_default()
                        .extend(&r.r.0);
                    view.entry(String::from("material: sign share"))
                        .or_default()
                        .extend(&r.rho.0);
                    view.entry(String::from("material: sign-mask product share"))
                        .or_default()
                        .extend(&r.rho_r.0);
                    for k in &r.keys {
                        let keys = view.entry(String::from("material: dcf keys")).or_default();
                        // Seeds keep their low bit 0 by construction (the control bit travels
                        // separately): test bits 1..=64 of each seed.
                        keys.push((k.seed >> 1) as u64);
                        keys.extend(k.last);
                        for cw in &k.words {
                            keys.push((cw.seed >> 1) as u64);
                            keys.extend(cw.value);
                        }
                    }
                }
            }
        }
        let image = vec![pixel; arch.input_len];
        let mut rng = ChaCha8Rng::seed_from_u64(7000 + run as u64);
        let [x0, x1] = sensor_input(&image, &m0, &m1, &mut rng);
        let Input::Masked(e) = &x0 else {
            panic!("secureml_a starts with a linear layer: the sensor sends E = X - A")
        };
        view.entry(String::from("sensor: masked input"))
            .or_default()
            .extend(e);
        let s0 = Server::new(Party::Zero, arch.clone(), model0).expect("s0");
        let s1 = Server::new(Party::One, arch.clone(), dealer.model_shares(1).clone()).expect("s1");
        let (c0, mut c1) = MemoryChannel::pair();
        let mut rec = Recording {
            inner: c0,
            by_bits: BTreeMap::new(),
        };
        std::thread::scope(|s| {
            let h = s.spawn(|| s1.infer_input(&mut c1, x1, m1, 1).expect("e2"));
            s0.infer_input(&mut rec, x0, m0, 1).expect("e1");
            h.join().expect("join");
        });
        for (bits, r) in &rec.by_bits {
            let (shares, opened) = match bits {
                64 => (
                    "peer: opened shares".to_string(),
                    "opened values".to_string(),
                ),
                2..=40 => (
                    format!("peer: opened shares ({bits}-bit)"),
                    format!("opened values ({bits}-bit)"),
                ),
                other => panic!("an opening of {other} bits the test does not know"),
            };
            view.entry(shares).or_default().extend(&r.received);
            view.entry(opened).or_default().extend(&r.opened);
        }
    }
    view
}

fn bit_counts(words: &[u64]) -> [u64; 64] {
    let mut c = [0u64; 64];
    for w in words {
        for (b, slot) in c.iter_mut().enumerate() {
            *slot += (w >> b) & 1;
        }
    }
    c
}

/// Bits of a stream's words: `N` for the packed ReLU openings (streams named `(N-bit)`), 64
/// otherwise.
fn width(stream: &str) -> usize {
    stream
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix("-bit)"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(64)
}

/// `w` as a signed value of `bits` bits, in magnitude.
fn signed_magnitude(w: u64, bits: usize) -> u64 {
    let shift = 64 - bits;
    (((w << shift) as i64) >> shift).unsigned_abs()
}

/// Below this magnitude a word of `bits` bits counts as plaintext: `2^32` for 64-bit words
/// (every activation and every value opened is below it), `2^20` for 40-bit openings (the
/// ReLU inputs, below `2^8` as real numbers by the truncation bound of `veil_mpc::ring`, so
/// below `2^20` in ring units; a uniform 40-bit word falls there with probability `2^-19`).
/// Narrower openings (the dealer's comparison widths, `veil_mpc::model::comparison_widths`)
/// hold values the width was chosen to fit, so no magnitude rules them out alone: for them the
/// test uses `2^(bits - 6)`, below which the width's margin puts this test's ReLU inputs and a
/// uniform word falls with probability `2^-5` (see `most_plaintext_allowed`).
fn plaintext_below(bits: usize) -> u64 {
    match bits {
        64 => 1 << 32,
        40 => 1 << 20,
        narrow => 1 << (narrow - 6),
    }
}

/// How many of `n` words of `bits` bits may fall below [`plaintext_below`]: none for 64- and
/// 40-bit words (a uniform word does with probability at most `2^-19`), and for narrower ones
/// what a uniform stream gives, `n / 32`, plus 5 standard deviations. A plaintext stream puts
/// nearly every word there.
fn most_plaintext_allowed(n: usize, bits: usize) -> usize {
    if bits >= 40 {
        return 0;
    }
    let p = 1.0 / 32.0;
    let n = n as f64;
    (n * p + 5.0 * (n * p * (1.0 - p)).sqrt()) as usize
}

#[test]
fn a_server_s_view_is_uniform_and_independent_of_the_input() {
    let runs = 24;
    let black = view_of_e1(0.0, runs);
    let white = view_of_e1(1.0, runs);
    for (view, name) in [(&black, "black"), (&white, "white")] {
        for (stream, words) in view {
            let bits = width(stream);
            let small = words
                .iter()
                .filter(|&&w| signed_magnitude(w, bits) < plaintext_below(bits))
                .count();
            assert!(
                small <= most_plaintext_allowed(words.len(), bits),
                "{name}/{stream}: {small} of {} words look like plaintext",
                words.len()
            );
            let n = words.len() as f64;
            for (b, &c) in bit_counts(words).iter().enumerate().take(bits) {
                let z = (c as f64 - n / 2.0) / (n.sqrt() / 2.0);
                assert!(
                    z.abs() <= 5.0,
                    "{name}/{stream}: bit {b} set {c} of {n} (z = {z:.1})"
                );
            }
        }
    }
    for (stream, a) in &black {
        let b = &white[stream];
        let (na, nb) = (a.len() as f64, b.len() as f64);
        let sd = (0.25 / na + 0.25 / nb).sqrt();
        let counts = bit_counts(a).into_iter().zip(bit_counts(b));
        for (bit, (ca, cb)) in counts.enumerate().take(width(stream)) {
            let d = ca as f64 / na - cb as f64 / nb;
            assert!(
                d.abs() <= 5.0 * sd,
                "{stream}: bit {bit} differs by {d:.4} ({:.1} sd)",
                d / sd
            );
        }
    }
    // The view is big enough for the tests to mean something: the masked input (784 per run),
    // the linear layers' openings (128 + 128 per run), the ReLUs' (2 x 128 per run), and the
    // keys.
    assert!(black["sensor: masked input"].len() >= runs * 784);
    assert!(black["peer: opened shares"].len() >= runs * 2 * 128);
    let narrow: usize = black
        .iter()
        .filter(|(stream, _)| stream.starts_with("peer: opened shares ("))
        .map(|(_, words)| words.len())
        .sum();
    assert_eq!(narrow, runs * 2 * 128);
    assert!(black["material: dcf keys"].len() > 100_000);
}
