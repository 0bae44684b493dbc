//! Hostile peers: malformed MPC frames from an authenticated dealer against a real
//! `veil mpc server` process (one process per case, judged like every other case), and
//! malformed runtime frames and gRPC calls from authenticated members against a real fleet
//! (`veil coordinator`, a source and two helpers as processes) that must keep serving: after
//! the barrage a valid request is answered, every process is alive and within the memory
//! bound.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use veil_mpc::net::{connect, credentials, runtime};
use veil_mpc::roles::{
    DEALER, DealerConfig, E1, E2, PARTIES, SENSOR, SensorConfig, ServerConfig, run_dealer,
    run_sensor, run_server,
};
use veil_mpc::share::Party;
use veil_mpc::transport::encode_frame_bytes;

use crate::mutate::Mutator;
use crate::run::{Case, Expect, Outcome};

/// What the hostile dealer sends after the TLS handshake.
#[derive(Clone)]
enum DealerSends {
    /// These bytes as they are (headers included or not).
    Raw(Vec<u8>),
    /// A spec frame with this payload.
    Spec(Vec<u8>),
    /// A valid spec frame, then a model frame with this payload.
    Model(Vec<u8>, Vec<u8>),
}

/// A TLS client stream for `name` to the server `target` at `addr` (retrying while the
/// server starts).
fn tls_client(
    keys: &Path,
    name: &str,
    target: &str,
    addr: SocketAddr,
) -> Option<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let creds = veil_tls::Credentials::load(keys, name).ok()?;
    let config = creds.client_config().ok()?;
    let server = veil_tls::server_name(target).ok()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let tcp = loop {
        match TcpStream::connect(addr) {
            Ok(t) => break t,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => return None,
        }
    };
    tcp.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let conn = rustls::ClientConnection::new(config, server).ok()?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    s.flush().ok()?;
    Some(s)
}

/// The hostile session: E2 and the sensor connect properly, the dealer sends `what`, then
/// everyone closes. `Err` when a connection could not be made (the bytes never arrived).
fn hostile_dealer(keys: &Path, addr: SocketAddr, what: &DealerSends) -> Result<(), String> {
    let rt = runtime().map_err(|e| e.to_string())?;
    let t = Duration::from_secs(10);
    let link = |name| {
        credentials(keys, name)
            .and_then(|c| connect(&rt, addr, &c, E1, t))
            .map_err(|e| format!("{name}: {e}"))
    };
    let peer = link(E2)?;
    let sensor = link(SENSOR)?;
    let mut dealer = tls_client(keys, DEALER, E1, addr)
        .ok_or_else(|| "the dealer could not connect".to_string())?;
    {
        let bytes = match what {
            DealerSends::Raw(b) => b.clone(),
            DealerSends::Spec(p) => encode_frame_bytes(2, 0, p),
            DealerSends::Model(spec, model) => {
                let mut b = encode_frame_bytes(2, 0, spec);
                b.extend(encode_frame_bytes(3, 0, model));
                b
            }
        };
        let _ = dealer.write_all(&bytes);
        let _ = dealer.flush();
        // Wait for the server to hang up (it must, the session is broken).
        let mut sink = [0u8; 256];
        while matches!(dealer.read(&mut sink), Ok(n) if n > 0) {}
    }
    drop((peer, sensor));
    Ok(())
}

/// The minionn spec JSON and a real model-share encoding for it.
fn minionn_session() -> (String, Vec<u8>) {
    let spec = veil_spec::zoo::model("minionn").expect("zoo");
    let tensors: veil_spec::weights::Tensors = veil_spec::weights::layout(&spec)
        .expect("layout")
        .into_iter()
        .map(|e| {
            let n: usize = e.shape.iter().product();
            (
                e.name,
                (e.shape, (0..n).map(|i| (i % 7) as f32 * 0.01).collect()),
            )
        })
        .collect();
    let (arch, w) = veil_mpc::model::compile(&spec, &tensors).expect("compile");
    let dealer = veil_mpc::dealer::Dealer::new_insecure_seeded(&arch, &w, 1);
    (
        spec.to_json(),
        veil_mpc::wire::encode_model(dealer.model_shares(0)),
    )
}

/// `veil mpc server` as E1 on the case's port with the case's keys and `timeout` seconds.
fn e1_server_args(timeout: &'static str) -> [&'static str; 10] {
    [
        "mpc",
        "server",
        "--party",
        "0",
        "--listen",
        "127.0.0.1:{port}",
        "--keys",
        "keys",
        "--timeout",
        timeout,
    ]
}

/// The key directory `keys` as a case's files under `keys/`.
fn key_case_files(keys: &Path) -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(keys)
        .expect("keys")
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (
                format!("keys/{name}"),
                std::fs::read(e.path()).expect("key"),
            )
        })
        .collect()
}

/// `n` cases of malformed frames from an authenticated dealer to a `veil mpc server`.
pub fn mpc_frames(n: usize, seed: u64, keys: &Path) -> Vec<Case> {
    let (spec, model) = minionn_session();
    let mut m = Mutator::new(seed ^ 0x6d70_6300);
    let key_files = key_case_files(keys);
    let mut fixed: Vec<(String, DealerSends)> = vec![
        (
            "frame header claiming 2 GiB".into(),
            DealerSends::Raw(0x8000_0000u32.to_le_bytes().to_vec()),
        ),
        (
            "frame header of 0 bytes".into(),
            DealerSends::Raw(vec![0; 4]),
        ),
        (
            "unknown kind".into(),
            DealerSends::Raw(encode_frame_bytes(99, 0, b"x")),
        ),
        (
            "model before spec".into(),
            DealerSends::Raw(encode_frame_bytes(3, 0, &model)),
        ),
        (
            "spec of wrong step".into(),
            DealerSends::Raw(encode_frame_bytes(2, 7, spec.as_bytes())),
        ),
        (
            "spec not UTF-8".into(),
            DealerSends::Spec(vec![0xff, 0xfe, 0x00]),
        ),
        (
            "empty model".into(),
            DealerSends::Model(spec.clone().into_bytes(), Vec::new()),
        ),
    ];
    while fixed.len() < n {
        let i = fixed.len();
        let (name, sends) = match m.below(3) {
            0 => {
                let (b, what) = m.bytes(&encode_frame_bytes(2, 0, spec.as_bytes()));
                (format!("spec frame: {what}"), DealerSends::Raw(b))
            }
            1 => {
                let (s, what) = m.text(&spec);
                (
                    format!("spec JSON: {what}"),
                    DealerSends::Spec(s.into_bytes()),
                )
            }
            _ => {
                let (b, what) = m.bytes(&model);
                (
                    format!("model shares: {what}"),
                    DealerSends::Model(spec.clone().into_bytes(), b),
                )
            }
        };
        fixed.push((format!("#{i} {name}"), sends));
    }
    fixed
        .into_iter()
        .take(n)
        .map(|(name, sends)| {
            let mut c = Case::new(
                "mpc-frames",
                format!("dealer sends {name}"),
                &e1_server_args("3"),
                Expect::Refused,
            );
            c.files = key_files.clone();
            c.refusal_names = Some("dealer");
            let sends = Arc::new(sends);
            c.client = Some(Arc::new(move |dir: &Path, addr: SocketAddr| {
                hostile_dealer(&dir.join("keys"), addr, &sends)
            }));
            c
        })
        .collect()
}

/// Hostile connections to E1 before and during a valid session: `idle` TCP connections that
/// never start TLS, one that sends HTTP instead, and a second sensor connection; then E2 (in
/// this process), the dealer and the sensor run a real two-sample session of minionn with the
/// `veil mpc server` process, which must finish it (exit 0).
fn hostile_connections_then_session(
    dir: &Path,
    addr: SocketAddr,
    idle: usize,
    garbage: bool,
    twice: bool,
) -> Result<(), String> {
    let keys = dir.join("keys");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut held: Vec<TcpStream> = Vec::new();
    while held.len() < idle + usize::from(garbage) && Instant::now() < deadline {
        match TcpStream::connect(addr) {
            Ok(t) => held.push(t),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    if garbage && let Some(g) = held.last_mut() {
        let _ = g.write_all(b"GET / HTTP/1.1\r\nHost: e1\r\n\r\n");
    }
    let e2 = veil_harness::free_loopback_addr().map_err(|e| e.to_string())?;
    let t = Duration::from_secs(20);
    let server = ServerConfig {
        party: Party::One,
        listen: e2,
        peer: Some(addr),
        keys: keys.clone(),
        timeout: t,
    };
    let dealer = DealerConfig {
        weights: dir.join("minionn.safetensors"),
        servers: [addr, e2],
        keys: keys.clone(),
        batches: vec![2],
        insecure_seed: Some(1),
        timeout: t,
    };
    let sensor = SensorConfig {
        servers: [addr, e2],
        keys: keys.clone(),
        inputs: vec![0.5; 2 * 784],
        input_len: 784,
        batches: vec![2],
        timeout: t,
    };
    std::thread::scope(|s| {
        s.spawn(|| run_server(&server));
        s.spawn(|| run_sensor(&sensor));
        if twice {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(150));
                tls_client(&keys, SENSOR, E1, addr)
            });
        }
        run_dealer(&dealer, &mut |_, _| {})
            .map(|_| ())
            .map_err(|e| format!("the dealer: {e}"))
    })?;
    drop(held);
    Ok(())
}

/// The session cases: idle, non-TLS and duplicate connections around a valid session.
pub fn mpc_connections(keys: &Path) -> Vec<Case> {
    let mut files = key_case_files(keys);
    files.push((
        "minionn.safetensors".into(),
        crate::cases::weights_file("minionn"),
    ));
    // The last case runs the server with 64 open files and sends 60 idle connections first:
    // accepting hits "too many open files" until their handshakes time out, and must back off
    // and go on (it used to end the server), so the session still completes.
    [
        (3, false, false, None),
        (0, true, false, None),
        (0, false, true, None),
        (4, true, true, None),
        (60, false, false, Some(64)),
    ]
    .into_iter()
    .map(|(idle, garbage, twice, fd_limit)| {
        let mut c = Case::new(
            "mpc-connections",
            format!(
                "{idle} idle, non-TLS {garbage}, second sensor {twice}, open files {fd_limit:?}, then a valid session"
            ),
            &e1_server_args("20"),
            Expect::Accepted,
        );
        c.files = files.clone();
        c.fd_limit = fd_limit;
        c.client = Some(Arc::new(move |dir: &Path, addr: SocketAddr| {
            hostile_connections_then_session(dir, addr, idle, garbage, twice)
        }));
        c
    })
    .collect()
}

/// Keys for every MPC party in `dir`.
pub fn mpc_keys(dir: &Path) {
    veil_tls::write_dir(dir, &veil_tls::generate(&PARTIES).expect("pki")).expect("keys");
}

/// Peak resident memory of process `pid` so far (bytes), from `/proc`.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `n` malformed runtime frames and gRPC calls against a fleet of real processes; one outcome
/// per call, then one for the fleet's health (a valid request answered, every process alive
/// and within `memory`).
pub fn runtime_frames(veil: &Path, n: usize, seed: u64, memory: u64) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let fail = |name: &str, why: String| Outcome {
        family: "runtime-frames",
        name: name.to_string(),
        failure: Some(why),
        exit: None,
        wall: Duration::ZERO,
        max_rss: 0,
    };
    let dir = tempfile::tempdir().expect("tmp");
    match crate::fleet::start(veil, dir.path()) {
        Err(e) => outcomes.push(fail("fleet start", e)),
        Ok(fleet) => {
            outcomes.extend(crate::fleet::barrage(&fleet, n, seed));
            outcomes.push(crate::fleet::health(&fleet, memory, &peak_rss));
        }
    }
    outcomes
}
