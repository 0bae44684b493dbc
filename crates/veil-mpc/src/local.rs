//! All parties in one process: the sensor shares its inputs, the dealer its model and
//! material, the two servers run on two threads over a [`MemoryChannel`], and the result
//! receiver reveals the logits. For tests and for checking a model before a deployment; the
//! real deployment runs the same [`Server::infer`] in separate processes over TLS.
//!
//! Key items: [`share_input`], [`run_in_memory`], [`LocalRun`].

use rand::Rng;

use crate::MpcError;
use crate::dealer::Dealer;
use crate::engine::Server;
use crate::model::{Architecture, LayerWeights};
use crate::ring::{decode, encode};
use crate::share::{Party, Shares, reveal, share};
use crate::transport::{Channel, LinkStats, MemoryChannel};

/// The sensor's step: encodes `input` and splits it into the two servers' shares.
pub fn share_input(input: &[f32], rng: &mut impl Rng) -> (Shares, Shares) {
    let enc: Vec<u64> = input.iter().map(|&v| encode(f64::from(v))).collect();
    share(&enc, rng)
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
    let mut dealer = Dealer::new(arch, weights, seed);
    let [m0, m1] = dealer.material(batch);
    let offline_bytes = m0.encoded_len() + m1.encoded_len();
    let (x0, x1) = share_input(inputs, rng);
    let s0 = Server::new(Party::Zero, arch.clone(), dealer.model_shares(0).clone())?;
    let s1 = Server::new(Party::One, arch.clone(), dealer.model_shares(1).clone())?;
    let (mut c0, mut c1) = MemoryChannel::pair();
    let (r0, r1) = std::thread::scope(|scope| {
        let h = scope.spawn(move || {
            let y = s1.infer(&mut c1, x1, m1, batch);
            (y, c1.stats())
        });
        let y0 = s0.infer(&mut c0, x0, m0, batch);
        let stats0 = c0.stats();
        let r1 = h.join().unwrap_or_else(|_| {
            (
                Err(MpcError::Transport {
                    peer: "E2".into(),
                    message: "server thread panicked".into(),
                }),
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
