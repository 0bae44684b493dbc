//! All parties in one process: the sensor masks (or shares) its inputs, the dealer its model and
//! material, the two servers run on two threads over a [`MemoryChannel`], and the result
//! receiver reveals the logits. For tests and for checking a model before a deployment; the
//! real deployment runs the same [`Server::infer`] in separate processes over TLS.
//!
//! Key items: [`share_input`], [`run_in_memory`], [`LocalRun`].

use rand::Rng;

use crate::MpcError;
use crate::dealer::Dealer;
use crate::dealer::Material;
use crate::engine::{Input, Server};
use crate::model::{Architecture, INPUT_BOUND, LayerWeights};
use crate::ring::{decode, encode};
use crate::share::{Party, Shares, reveal, share};
use crate::transport::{Channel, LinkStats, MemoryChannel};

/// The sensor's encoding of one input value: clamped to `[-INPUT_BOUND, INPUT_BOUND]` (what
/// the dealer's comparison widths assume, [`crate::model::comparison_widths`]; NaN becomes 0),
/// then fixed point.
pub fn encode_input(value: f32) -> u64 {
    encode(f64::from(value).clamp(-INPUT_BOUND, INPUT_BOUND))
}

/// The sensor's step: encodes `input` ([`encode_input`]) and splits it into the two servers'
/// shares.
pub fn share_input(input: &[f32], rng: &mut impl Rng) -> (Shares, Shares) {
    let enc: Vec<u64> = input.iter().map(|&v| encode_input(v)).collect();
    share(&enc, rng)
}

/// The sensor's step when the servers sent it their shares `a0`, `a1` of the first layer's
/// input mask `A`: `E = encode_input(input) - A`, sent to both servers in place of shares.
/// `None` when the lengths differ.
pub fn mask_input(input: &[f32], a0: &Shares, a1: &Shares) -> Option<Vec<u64>> {
    if a0.len() != input.len() || a1.len() != input.len() {
        return None;
    }
    Some(
        input
            .iter()
            .zip(reveal(a0, a1))
            .map(|(&v, a)| encode_input(v).wrapping_sub(a))
            .collect(),
    )
}

/// What the sensor sends each server for `input` under this batch's material: the masked
/// input `E = X - A` (the same to both) when the first layer is linear, shares otherwise.
pub fn sensor_input(input: &[f32], m0: &Material, m1: &Material, rng: &mut impl Rng) -> [Input; 2] {
    let masked = m0
        .first_input_mask()
        .zip(m1.first_input_mask())
        .and_then(|(a0, a1)| mask_input(input, a0, a1));
    match masked {
        Some(e) => [Input::Masked(e.clone()), Input::Masked(e)],
        None => {
            let (x0, x1) = share_input(input, rng);
            [Input::Shares(x0), Input::Shares(x1)]
        }
    }
}

/// Outcome of [`run_in_memory`].
#[derive(Clone, Debug)]
pub struct LocalRun {
    /// Revealed logits, `batch * output_len`.
    pub logits: Vec<f64>,
    /// Link counters of server 0 and server 1.
    pub links: [LinkStats; 2],
    /// Offline bytes the dealer sent (both servers, material only).
    pub offline_bytes: usize,
}

/// Runs `batch` inputs (`batch * input_len` values) through the secure protocol in memory.
pub fn run_in_memory(
    arch: &Architecture,
    weights: &[LayerWeights],
    inputs: &[f32],
    batch: usize,
    seed: u64,
    rng: &mut impl Rng,
) -> Result<LocalRun, MpcError> {
    let mut dealer = Dealer::new_insecure_seeded(arch, weights, seed);
    let [m0, m1] = dealer.material(batch);
    let offline_bytes = m0.encoded_len() + m1.encoded_len();
    let [x0, x1] = sensor_input(inputs, &m0, &m1, rng);
    let s0 = Server::new(Party::Zero, arch.clone(), dealer.model_shares(0).clone())?;
    let s1 = Server::new(Party::One, arch.clone(), dealer.model_shares(1).clone())?;
    let (mut c0, mut c1) = MemoryChannel::pair();
    let (r0, r1) = std::thread::scope(|scope| {
        let h = scope.spawn(move || {
            let y = s1.infer_input(&mut c1, x1, m1, batch);
            (y, c1.stats())
        });
        let y0 = s0.infer_input(&mut c0, x0, m0, batch);
        let stats0 = c0.stats();
        let r1 = h.join().unwrap_or_else(|_| {
            (
                Err(MpcError::Panicked { party: "E2".into() }),
                LinkStats::default(),
            )
        });
        ((y0, stats0), r1)
    });
    let (y0, y1) = (r0.0?, r1.0?);
    Ok(LocalRun {
        logits: reveal(&y0, &y1).into_iter().map(decode).collect(),
        links: [r0.1, r1.1],
        offline_bytes,
    })
}

/// The whole session of [`crate::roles`] in one process over the in-memory link: per batch the
/// dealer's material, the sensor's shares, both servers on two threads (timed from having
/// input and material to output, as the processes time themselves) and the reveal. Byte and
/// round counts equal the TCP session's (frame bytes); `offline_bytes` counts the encoded
/// material without frame headers. For checking agreement over a whole test set quickly.
pub fn run_batches_in_memory(
    arch: &Architecture,
    weights: &[LayerWeights],
    inputs: &[f32],
    batches: &[usize],
    insecure_seed: Option<u64>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<crate::roles::DealerReport, MpcError> {
    let total: usize = batches.iter().sum();
    if inputs.len() != total * arch.input_len {
        return Err(MpcError::Input(format!(
            "{} values for {total} samples of {}",
            inputs.len(),
            arch.input_len
        )));
    }
    // Secrets from the OS CSPRNG unless a test asks for a reproducible (insecure) run.
    let (mut dealer, mut rng) = match insecure_seed {
        Some(seed) => (
            Dealer::new_insecure_seeded(arch, weights, seed),
            <rand_chacha::ChaCha20Rng as rand::SeedableRng>::seed_from_u64(seed ^ 0x5e45),
        ),
        None => (
            Dealer::from_os_entropy(arch, weights)?,
            <rand_chacha::ChaCha20Rng as rand::SeedableRng>::try_from_rng(&mut rand::rngs::OsRng)
                .map_err(MpcError::Entropy)?,
        ),
    };
    let model_bytes =
        (dealer.model_shares(0).encoded_len() + dealer.model_shares(1).encoded_len()) as u64;
    let s0 = Server::new(Party::Zero, arch.clone(), dealer.model_shares(0).clone())?;
    let s1 = Server::new(Party::One, arch.clone(), dealer.model_shares(1).clone())?;
    let mut logits = Vec::with_capacity(total);
    let mut reports = Vec::with_capacity(batches.len());
    let mut at = 0;
    for (k, &batch) in batches.iter().enumerate() {
        let t = std::time::Instant::now();
        let [m0, m1] = dealer.material(batch);
        let dealer_ms = t.elapsed().as_secs_f64() * 1e3;
        let offline_bytes = (m0.encoded_len() + m1.encoded_len()) as u64;
        let x = &inputs[at * arch.input_len..(at + batch) * arch.input_len];
        at += batch;
        let [x0, x1] = sensor_input(x, &m0, &m1, &mut rng);
        let (mut c0, mut c1) = MemoryChannel::pair();
        let timed = |s: &Server, c: &mut MemoryChannel, x: Input, m| {
            let t = std::time::Instant::now();
            let y = s.infer_input(c, x, m, batch);
            (y, t.elapsed().as_secs_f64() * 1e3, c.stats())
        };
        let (r0, r1) = std::thread::scope(|scope| {
            let h = scope.spawn(|| timed(&s1, &mut c1, x1, m1));
            let r0 = timed(&s0, &mut c0, x0, m0);
            (r0, h.join())
        });
        let r1 = r1.map_err(|_| MpcError::Panicked { party: "E2".into() })?;
        let (y0, y1) = (r0.0?, r1.0?);
        for s in reveal(&y0, &y1).chunks_exact(arch.output_len.max(1)) {
            logits.push(s.iter().map(|&v| decode(v)).collect());
        }
        reports.push(crate::roles::BatchReport {
            samples: batch,
            online_ms: [r0.1, r1.1],
            // In memory both servers start together with their material in hand.
            ready_wait_ms: [0.0; 2],
            online_bytes_sent: [r0.2.bytes_sent, r1.2.bytes_sent],
            rounds: r0.2.rounds,
            offline_bytes,
            dealer_ms,
        });
        progress(k + 1, batches.len());
    }
    Ok(crate::roles::DealerReport {
        model: arch.name.clone(),
        logits,
        batches: reports,
        model_bytes,
    })
}
