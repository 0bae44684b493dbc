//! Times the online phase of one zoo model in memory (random He-scaled weights), for
//! profiling: `cargo run --release -p veil-mpc --example profile_online -- minionn 20 [BATCH]
//! [--reuse]`.
//! Also prints the online bytes and rounds, and the dealer's time and bytes per sample.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use veil_mpc::dealer::Dealer;
use veil_mpc::engine::Server;
use veil_mpc::local::sensor_input;
use veil_mpc::model::{Tensors, compile};
use veil_mpc::share::Party;
use veil_mpc::transport::MemoryChannel;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map_or("minionn", String::as_str);
    let reps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let batch: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let spec = veil_spec::zoo::model(name).expect("zoo model");
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut tensors = Tensors::new();
    for e in veil_spec::weights::layout(&spec).expect("layout") {
        let n: usize = e.shape.iter().product();
        let fan: usize = e.shape[1..].iter().product::<usize>().max(1);
        let s = (2.0 / fan as f32).sqrt();
        tensors.insert(
            e.name,
            (e.shape, (0..n).map(|_| rng.random_range(-s..s)).collect()),
        );
    }
    let (arch, w) = compile(&spec, &tensors).expect("compile");
    let mut dealer = Dealer::new_insecure_seeded(&arch, &w, 2);
    let s0 = Server::new(Party::Zero, arch.clone(), dealer.model_shares(0).clone()).expect("s0");
    let s1 = Server::new(Party::One, arch.clone(), dealer.model_shares(1).clone()).expect("s1");
    let (mut total, mut dealing) = (0.0, 0.0);
    let (mut link, mut offline) = (veil_mpc::transport::LinkStats::default(), 0);
    // With `--reuse`, one batch of material serves every repetition (insecure; for profiling
    // the online phase without the dealer in the samples).
    let reuse = args.iter().any(|a| a == "--reuse");
    let mut kept = None;
    for _ in 0..reps {
        let t = Instant::now();
        let [m0, m1] = match (&kept, reuse) {
            (Some(m), true) => Clone::clone(m),
            _ => dealer.material(batch),
        };
        if reuse && kept.is_none() {
            kept = Some([m0.clone(), m1.clone()]);
        }
        dealing += t.elapsed().as_secs_f64();
        offline = m0.encoded_len() + m1.encoded_len();
        let x: Vec<f32> = (0..batch * arch.input_len)
            .map(|_| rng.random_range(0.0..1.0))
            .collect();
        let [x0, x1] = sensor_input(&x, &m0, &m1, &mut rng);
        let (mut c0, mut c1) = MemoryChannel::pair();
        let t = Instant::now();
        std::thread::scope(|s| {
            let h = s.spawn(|| s1.infer_input(&mut c1, x1, m1, batch).expect("s1"));
            s0.infer_input(&mut c0, x0, m0, batch).expect("s0");
            h.join().expect("join");
        });
        link = veil_mpc::transport::Channel::stats(&c0);
        total += t.elapsed().as_secs_f64();
    }
    println!(
        "{name}: {:.2} ms per inference (online, in memory, both servers on this machine); \
         {:.1} KB online per sample (both directions), {} rounds per batch; dealer {:.2} ms \
         and {:.2} MB offline per sample",
        total / reps as f64 * 1e3,
        (link.bytes_sent + link.bytes_received) as f64 / batch as f64 / 1e3,
        link.rounds,
        dealing / (reps * batch) as f64 * 1e3,
        offline as f64 / batch as f64 / 1e6,
    );
}
