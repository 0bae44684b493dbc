//! A whole session over loopback TCP with mutual TLS: two servers, the dealer and the sensor
//! on four threads, each with its own certificate, compared with the f64 reference; and a
//! sensor whose certificate comes from another CA is refused.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use veil_mpc::model::{compile, eval_with_bound, read_weight_file};
use veil_mpc::roles::{
    DealerConfig, PARTIES, SensorConfig, ServerConfig, run_dealer, run_sensor, run_server,
};
use veil_mpc::share::Party;

fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// Writes a veil weight file for zoo model `name` with He-scaled random weights.
fn weight_file(dir: &Path, name: &str) -> std::path::PathBuf {
    let spec = veil_spec::zoo::model(name).expect("zoo");
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let entries = veil_spec::weights::layout(&spec).expect("layout");
    let tensors: veil_spec::weights::Tensors = entries
        .into_iter()
        .map(|e| {
            let n: usize = e.shape.iter().product();
            let fan_in: usize = e.shape[1..].iter().product::<usize>().max(1);
            let scale = (2.0 / fan_in as f32).sqrt();
            let values = (0..n)
                .map(|_| rng.random_range(-1.0f32..1.0) * scale)
                .collect();
            (e.name, (e.shape, values))
        })
        .collect();
    let path = dir.join(format!("{name}.safetensors"));
    veil_spec::weights::write_file(&path, &spec, &tensors).expect("write");
    path
}

#[test]
fn a_tls_session_over_loopback_matches_plaintext() {
    let dir = tempfile::tempdir().expect("tmp");
    let keys = dir.path().join("keys");
    veil_tls::write_dir(&keys, &veil_tls::generate(&PARTIES).expect("pki")).expect("keys");
    let weights = weight_file(dir.path(), "minionn");
    let (a0, a1) = (free_addr(), free_addr());
    let timeout = Duration::from_secs(30);
    let batches = vec![1, 3];
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let inputs: Vec<f32> = (0..4 * 784).map(|_| rng.random_range(0.0..1.0)).collect();
    let server = |party, listen, peer| ServerConfig {
        party,
        listen,
        peer,
        keys: keys.clone(),
        timeout,
    };
    let (c0, c1) = (
        server(Party::Zero, a0, None),
        server(Party::One, a1, Some(a0)),
    );
    let dealer = DealerConfig {
        weights: weights.clone(),
        servers: [a0, a1],
        keys: keys.clone(),
        batches: batches.clone(),
        insecure_seed: Some(1),
        timeout,
    };
    let sensor = SensorConfig {
        servers: [a0, a1],
        keys: keys.clone(),
        inputs: inputs.clone(),
        input_len: 784,
        batches,
        timeout,
    };
    let report = std::thread::scope(|s| {
        let h0 = s.spawn(|| run_server(&c0));
        let h1 = s.spawn(|| run_server(&c1));
        let hs = s.spawn(|| run_sensor(&sensor));
        let report = run_dealer(&dealer, &mut |_, _| {});
        let r0 = h0.join().expect("e1 thread");
        let r1 = h1.join().expect("e2 thread");
        hs.join().expect("sensor thread").expect("sensor");
        assert_eq!(r0.expect("e1").samples, 4);
        assert_eq!(r1.expect("e2").samples, 4);
        report.expect("dealer")
    });
    let (spec, tensors) = read_weight_file(&weights).expect("read");
    let (arch, w) = compile(&spec, &tensors).expect("compile");
    assert_eq!(report.logits.len(), 4);
    for (i, got) in report.logits.iter().enumerate() {
        let (want, bound) = eval_with_bound(&arch, &w, &inputs[i * 784..(i + 1) * 784]);
        for ((g, w), b) in got.iter().zip(&want).zip(&bound) {
            assert!((g - w).abs() <= *b, "sample {i}: {g} vs {w} (bound {b})");
            assert!((g - w).abs() < 0.05, "sample {i}: {g} vs {w}");
        }
    }
    // Both batches took the same rounds; E1 and E2 sent the same bytes (symmetric opens).
    assert_eq!(report.batches[0].rounds, report.batches[1].rounds);
    assert_eq!(
        report.batches[1].online_bytes_sent[0],
        report.batches[1].online_bytes_sent[1]
    );
    assert!(report.batches[1].offline_bytes > 3 * report.batches[0].offline_bytes / 2);
}

#[test]
fn a_sensor_from_another_ca_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let keys = dir.path().join("keys");
    let rogue = dir.path().join("rogue");
    veil_tls::write_dir(&keys, &veil_tls::generate(&PARTIES).expect("pki")).expect("keys");
    veil_tls::write_dir(&rogue, &veil_tls::generate(&PARTIES).expect("pki")).expect("keys");
    let a0 = free_addr();
    let cfg = ServerConfig {
        party: Party::Zero,
        listen: a0,
        peer: None,
        keys,
        timeout: Duration::from_secs(3),
    };
    let sensor = SensorConfig {
        servers: [a0, a0],
        keys: rogue,
        inputs: vec![0.0; 784],
        input_len: 784,
        batches: vec![1],
        timeout: Duration::from_secs(3),
    };
    std::thread::scope(|s| {
        let h = s.spawn(|| run_server(&cfg));
        let e = run_sensor(&sensor).expect_err("rogue sensor");
        assert!(
            e.to_string().contains("TLS") || e.to_string().contains("transport"),
            "{e}"
        );
        // The server keeps waiting for real parties and gives up at its timeout, having
        // accepted nothing.
        let r = h.join().expect("server thread");
        assert!(r.is_err());
    });
}

/// A TCP connection that never starts TLS is refused at the handshake deadline and the server
/// goes on waiting for its parties (before, it exited: a denial of service without any
/// certificate). It ends only at its own accept timeout.
#[test]
fn an_idle_connection_does_not_end_the_server() {
    let dir = tempfile::tempdir().expect("tmp");
    let keys = dir.path().join("keys");
    veil_tls::write_dir(&keys, &veil_tls::generate(&PARTIES).expect("pki")).expect("keys");
    let a0 = free_addr();
    let cfg = ServerConfig {
        party: Party::Zero,
        listen: a0,
        peer: None,
        keys,
        timeout: Duration::from_secs(1),
    };
    std::thread::scope(|s| {
        let h = s.spawn(|| run_server(&cfg));
        let idle = (0..50)
            .find_map(|_| {
                std::thread::sleep(Duration::from_millis(20));
                std::net::TcpStream::connect(a0).ok()
            })
            .expect("connect");
        let r = h.join().expect("server thread");
        drop(idle);
        let err = r.expect_err("no parties came").to_string();
        assert!(err.contains("no connection within"), "{err}");
    });
}

/// Hostile connections do not hold up valid parties: idle TCP connections, one that sends
/// bytes that are not TLS, and a second connection of a party already linked are each
/// refused (and reported) while the valid parties are accepted concurrently, long before the
/// idle ones reach their handshake deadline.
#[test]
fn idle_garbage_and_duplicate_connections_do_not_hold_up_valid_parties() {
    use std::io::Write;
    use veil_mpc::net::{accept_parties, connect, credentials, listen, runtime};
    use veil_mpc::roles::{DEALER, E1, SENSOR};
    let dir = tempfile::tempdir().expect("tmp");
    let keys = dir.path().join("keys");
    veil_tls::write_dir(&keys, &veil_tls::generate(&PARTIES).expect("pki")).expect("keys");
    let rt = runtime().expect("runtime");
    let listener = listen(&rt, "127.0.0.1:0".parse().expect("addr")).expect("listen");
    let addr = listener.local_addr().expect("addr");
    let handshake = Duration::from_secs(20);
    let mut idle: Vec<std::net::TcpStream> = (0..5)
        .map(|_| std::net::TcpStream::connect(addr).expect("idle"))
        .collect();
    let mut garbage = std::net::TcpStream::connect(addr).expect("garbage");
    garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").expect("write");
    let started = std::time::Instant::now();
    let (links, refusals) = std::thread::scope(|s| {
        let clients = s.spawn(|| {
            let crt = runtime().expect("client runtime");
            let t = Duration::from_secs(10);
            let sensor = credentials(&keys, SENSOR).expect("sensor keys");
            let dealer = credentials(&keys, DEALER).expect("dealer keys");
            let first = connect(&crt, addr, &sensor, E1, t).expect("sensor");
            let second = connect(&crt, addr, &sensor, E1, t).expect("second sensor");
            // Time for the server to finish the second sensor's handshake before the dealer
            // completes the set (after that, nothing more is accepted).
            std::thread::sleep(Duration::from_millis(300));
            let d = connect(&crt, addr, &dealer, E1, t).expect("dealer");
            (first, second, d)
        });
        let server = credentials(&keys, E1).expect("e1 keys");
        let mut refusals = Vec::new();
        let links = accept_parties(
            &rt,
            &listener,
            &server,
            &[SENSOR, DEALER],
            Duration::from_secs(30),
            handshake,
            &mut |e| refusals.push(e.to_string()),
        );
        let _clients = clients.join().expect("clients");
        (links, refusals)
    });
    let links = links.expect("both parties linked");
    assert_eq!(
        links.iter().map(|c| c.peer.as_str()).collect::<Vec<_>>(),
        [SENSOR, DEALER]
    );
    // Sequential handshakes would have waited out the idle connections' deadline first.
    assert!(started.elapsed() < handshake / 2, "{:?}", started.elapsed());
    assert!(
        refusals
            .iter()
            .any(|r| r.contains("second connection of sensor")),
        "{refusals:?}"
    );
    assert!(
        refusals.iter().any(|r| r.contains("handshake")),
        "the garbage connection: {refusals:?}"
    );
    idle.clear();
}

/// Two fake servers (real TLS with E1's and E2's certificates) that send the sensor `masks`
/// as their input-mask frames of batch 0; returns the sensor's outcome.
fn sensor_against(masks: [Vec<u8>; 2]) -> Result<(), veil_mpc::MpcError> {
    use veil_mpc::net::{Kind, accept_parties, credentials, listen, runtime};
    let dir = tempfile::tempdir().expect("tmp");
    let keys = dir.path().join("keys");
    veil_tls::write_dir(&keys, &veil_tls::generate(&PARTIES).expect("pki")).expect("keys");
    let addrs = [free_addr(), free_addr()];
    let timeout = Duration::from_secs(5);
    let sensor = SensorConfig {
        servers: addrs,
        keys: keys.clone(),
        inputs: vec![0.5; 784],
        input_len: 784,
        batches: vec![1],
        timeout,
    };
    std::thread::scope(|s| {
        for (i, mask) in masks.into_iter().enumerate() {
            let keys = keys.clone();
            s.spawn(move || {
                let rt = runtime().expect("rt");
                let creds = credentials(&keys, ["e1", "e2"][i]).expect("creds");
                let listener = listen(&rt, addrs[i]).expect("listen");
                let mut conns = accept_parties(
                    &rt,
                    &listener,
                    &creds,
                    &["sensor"],
                    timeout,
                    timeout,
                    &mut |_| {},
                )
                .expect("sensor connects");
                let _ = conns[0].send(Kind::InputMask, 0, &mask);
                conns[0].wait_closed();
            });
        }
        run_sensor(&sensor)
    })
}

fn mask_frame(form: u8, words: &[u64]) -> Vec<u8> {
    let mut w = veil_codec::Writer::default();
    w.u8(form);
    w.words(words);
    w.into_bytes()
}

#[test]
fn a_sensor_refuses_hostile_input_mask_frames() {
    let good = mask_frame(1, &[7; 784]);
    for (masks, what) in [
        (
            [mask_frame(1, &[7; 783]), good.clone()],
            "input mask of 783 words",
        ),
        ([good.clone(), mask_frame(3, &[])], "input form 3"),
        ([mask_frame(0, &[]), good.clone()], "input mask"),
        ([vec![1, 255, 255, 255, 255], good.clone()], "input mask 0"),
        (
            [mask_frame(0, &[1]), mask_frame(0, &[])],
            "input mask of 1 words",
        ),
    ] {
        let e = sensor_against(masks).expect_err(what).to_string();
        assert!(e.contains(what), "{what}: {e}");
    }
}
