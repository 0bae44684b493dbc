//! The four parties as processes: [`run_server`] (E1 or E2), [`run_dealer`] (the healthcare
//! center: dealer and result receiver) and [`run_sensor`] (the client that shares its
//! readings). Each connects over mutual TLS with its own certificate ([`crate::net`]).
//!
//! Session: E2 connects to E1 (the server-to-server link); the dealer and the sensor connect
//! to both. The dealer sends the public spec and each server's model shares, then per batch
//! `k` the material of batch `k`; each server sends the sensor its shares of batch `k`'s
//! first-layer input mask `A`, and the sensor sends both `E = X - A` (input shares when the
//! first layer is not linear); the servers
//! evaluate, exchanging only masked values, and return their output shares of batch `k` to
//! the dealer with their counters; the dealer reveals the logits. Any malformed, truncated or
//! unexpected message ends the session with an error naming the peer and the step.
//!
//! Key items: [`ServerConfig`], [`run_server`], [`DealerConfig`], [`run_dealer`],
//! [`DealerReport`], [`BatchReport`], [`SensorConfig`], [`run_sensor`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use veil_spec::ModelSpec;

use crate::dealer::Dealer;
use crate::engine::{Input, Server};
use crate::local::{mask_input, share_input};
use crate::model::{Architecture, architecture, compile, read_weight_file};
use crate::net::{
    Conn, HANDSHAKE_DEADLINE, Kind, accept_parties, connect, credentials, listen, runtime,
};
use crate::ring::decode;
use crate::share::{Party, Shares, reveal};
use crate::transport::Channel;
use crate::wire::{
    Reader, WireError, Writer, decode_material, decode_model, encode_material, encode_model,
};
use crate::{MpcError, Violation};

/// Party names (certificate names).
pub const E1: &str = "e1";
/// Party names (certificate names).
pub const E2: &str = "e2";
/// Party names (certificate names).
pub const DEALER: &str = "dealer";
/// Party names (certificate names).
pub const SENSOR: &str = "sensor";

/// Every party of a session, as `veil mpc keygen` names them.
pub const PARTIES: [&str; 4] = [E1, E2, DEALER, SENSOR];

/// The open step of the empty exchange by which the servers agree that both hold a batch's
/// input and material (the engine numbers its steps from 0 per batch, far below this).
const READY_STEP: u32 = u32::MAX;

/// A decoding failure of `peer`'s message at `step`.
fn malformed(peer: &str, step: &str) -> impl FnOnce(WireError) -> MpcError {
    move |source| MpcError::Malformed {
        peer: peer.to_string(),
        step: step.to_string(),
        source,
    }
}

/// `peer` broke the protocol at `step`.
fn violation(peer: &str, step: &str, violation: Violation) -> MpcError {
    MpcError::Protocol {
        peer: peer.to_string(),
        step: step.to_string(),
        violation,
    }
}

/// A server's settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// E1 (party 0) or E2 (party 1).
    pub party: Party,
    /// Address to listen on (dealer, sensor, and for E1 also E2).
    pub listen: SocketAddr,
    /// E1's address (E2 only).
    pub peer: Option<SocketAddr>,
    /// Key directory of `veil mpc keygen`.
    pub keys: PathBuf,
    /// Timeout of every read, write and connection.
    pub timeout: Duration,
}

/// What a server did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ServerReport {
    /// Batches evaluated.
    pub batches: usize,
    /// Samples evaluated.
    pub samples: usize,
}

/// Runs one server until the dealer says done.
pub fn run_server(cfg: &ServerConfig) -> Result<ServerReport, MpcError> {
    let mut links = ServerLinks::establish(cfg)?;
    let (arch, server) = receive_model(&mut links.dealer, cfg.party)?;
    let mut report = ServerReport::default();
    for k in 0u32.. {
        let Some(batch) = links.serve_batch(&server, &arch, k)? else {
            break;
        };
        report.batches += 1;
        report.samples += batch;
    }
    Ok(report)
}

/// A server's three links of a session.
struct ServerLinks {
    dealer: Conn,
    sensor: Conn,
    /// The other server.
    peer: Conn,
}

impl ServerLinks {
    /// Connects the server of `cfg`: E2 first connects to E1; then it accepts the dealer, the
    /// sensor and (E1) E2, in any order, each connection handshaking on its own within
    /// [`HANDSHAKE_DEADLINE`] (or the timeout, when shorter). A refused connection (no, late
    /// or foreign certificate, a failed handshake) and a second connection of a party are
    /// logged once each with the peer's address and skipped; the first connection of each
    /// party is its link. Errors: credentials, listening, E1 unreachable, or no new link
    /// within the timeout.
    fn establish(cfg: &ServerConfig) -> Result<Self, MpcError> {
        let name = if cfg.party == Party::Zero { E1 } else { E2 };
        let creds = credentials(&cfg.keys, name)?;
        let rt = runtime()?;
        let listener = listen(&rt, cfg.listen)?;
        let wanted: &[&str] = if cfg.party == Party::Zero {
            &[DEALER, SENSOR, E2]
        } else {
            &[DEALER, SENSOR]
        };
        let mut peer = None;
        if cfg.party == Party::One {
            let addr = cfg
                .peer
                .ok_or_else(|| MpcError::Input("E2 needs E1's address (--peer)".into()))?;
            peer = Some(connect(&rt, addr, &creds, E1, cfg.timeout)?);
        }
        let handshake = cfg.timeout.min(HANDSHAKE_DEADLINE);
        // One line per refusal, at the 1st, 2nd, 4th, ... of each address: a flood cannot
        // fill the log.
        let mut counts = veil_tls::accept::RefusalLog::default();
        let mut log = |e: &MpcError| {
            let ip = match e {
                MpcError::Refused { peer, .. } => peer.parse::<SocketAddr>().ok().map(|a| a.ip()),
                _ => None,
            };
            // Errors without a peer (accept failing) are counted together.
            let key = ip.unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
            if let Some(n) = counts.count(key) {
                eprintln!(
                    "veil mpc server {name}: {} (occurrence {n} from this peer)",
                    with_sources(e)
                );
            }
        };
        let mut links = accept_parties(
            &rt,
            &listener,
            &creds,
            wanted,
            cfg.timeout,
            handshake,
            &mut log,
        )?
        .into_iter();
        let (Some(dealer), Some(sensor)) = (links.next(), links.next()) else {
            return Err(MpcError::Input("connections missing".into()));
        };
        let Some(peer) = peer.or_else(|| links.next()) else {
            return Err(MpcError::Input("connections missing".into()));
        };
        Ok(ServerLinks {
            dealer,
            sensor,
            peer,
        })
    }

    /// Batch `k`: the dealer's material (or done), the sensor's input shares (which must
    /// announce the same number of samples), the evaluation with the other server, and the
    /// output shares with the counters back to the dealer. `Ok(None)` when the dealer and
    /// the sensor both said done; `Ok(Some(samples))` after a batch.
    fn serve_batch(
        &mut self,
        server: &Server,
        arch: &Architecture,
        k: u32,
    ) -> Result<Option<usize>, MpcError> {
        let (kind, payload) = self.dealer.recv(Kind::Material, k, true)?;
        if kind == Kind::Done {
            // The sensor must be done too: anything else means the two disagree on batches.
            let (kind, _) = self.sensor.recv(Kind::Input, k, true)?;
            if kind != Kind::Done {
                return Err(violation(SENSOR, "done", Violation::ExtraBatches));
            }
            return Ok(None);
        }
        let mut r = Reader::new(&payload, "material frame");
        let batch = r.u32().map_err(malformed(DEALER, "material"))? as usize;
        let material = decode_material(r.bytes().map_err(malformed(DEALER, "material"))?)
            .map_err(malformed(DEALER, "material"))?;
        // The first layer's input mask goes to the sensor, which answers with `E = X - A`.
        let mask = material.first_input_mask();
        let mut w = Writer::default();
        w.u8(u8::from(mask.is_some()));
        w.words(mask.map_or(&[][..], |a| &a.0));
        self.sensor.send(Kind::InputMask, k, w.as_bytes())?;
        let (_, input) = self.sensor.recv(Kind::Input, k, false)?;
        let mut r = Reader::new(&input, "input frame");
        let in_batch = r.u32().map_err(malformed(SENSOR, "input"))? as usize;
        let form = r.u8().map_err(malformed(SENSOR, "input"))?;
        let words = r.words().map_err(malformed(SENSOR, "input"))?;
        if in_batch != batch || words.len() != batch * arch.input_len {
            return Err(violation(
                SENSOR,
                &format!("input {k}"),
                Violation::InputSize {
                    samples: in_batch,
                    words: words.len(),
                    announced: batch,
                },
            ));
        }
        let input = match (form, mask.is_some()) {
            (0, _) => Input::Shares(Shares(words)),
            (1, true) => Input::Masked(words),
            (f, _) => {
                return Err(violation(
                    SENSOR,
                    &format!("input {k}"),
                    Violation::InputForm(f),
                ));
            }
        };
        // Both servers hold this batch's material and input before the online clock starts:
        // the dealer sends E1's material before E2's, so without this E1's first opening
        // would wait for E2's download (offline work) and count it as online time.
        let waited = Instant::now();
        self.peer.exchange(READY_STEP, &[], 1)?;
        let ready_wait_ns = waited.elapsed().as_nanos() as u64;
        let before = self.peer.stats();
        let start = Instant::now();
        let (out, times) = server.infer_timed(&mut self.peer, input, material, batch)?;
        let online_ns = start.elapsed().as_nanos() as u64;
        // One log line per batch: where the online time went (public counts only).
        let ops: Vec<String> = times
            .iter()
            .map(|t| {
                format!(
                    "{} {:.2} ms/{} r/{} B",
                    t.layer,
                    t.micros as f64 / 1e3,
                    t.rounds,
                    t.bytes_sent
                )
            })
            .collect();
        eprintln!(
            "veil mpc server: batch {k} ({batch} samples) online {:.2} ms after waiting {:.2} ms: {}",
            online_ns as f64 / 1e6,
            ready_wait_ns as f64 / 1e6,
            ops.join(", ")
        );
        let after = self.peer.stats();
        let mut w = Writer::default();
        w.u64(online_ns);
        w.u64(ready_wait_ns);
        w.u64(after.bytes_sent - before.bytes_sent);
        w.u64(after.bytes_received - before.bytes_received);
        w.u64(after.rounds - before.rounds);
        w.words(&out.0);
        self.dealer.send(Kind::Output, k, w.as_bytes())?;
        Ok(Some(batch))
    }
}

/// The dealer's first two frames: the public spec (compiled to the architecture) and this
/// server's model shares, which must fit it.
fn receive_model(dealer: &mut Conn, party: Party) -> Result<(Architecture, Server), MpcError> {
    let (_, spec_json) = dealer.recv(Kind::Spec, 0, false)?;
    let spec_text = std::str::from_utf8(&spec_json)
        .map_err(|e| violation(DEALER, "spec", Violation::SpecNotUtf8(e.valid_up_to())))?;
    let spec = ModelSpec::from_json_str(spec_text).map_err(|source| MpcError::Spec {
        peer: DEALER.into(),
        step: "spec".into(),
        source: Box::new(source),
    })?;
    let arch = architecture(&spec)?;
    let (_, model) = dealer.recv(Kind::Model, 0, false)?;
    let model = decode_model(&model).map_err(malformed(DEALER, "model"))?;
    let server = Server::new(party, arch.clone(), model)?;
    Ok((arch, server))
}

/// `e` and its sources, `: `-separated (one log line).
fn with_sources(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        line.push_str(": ");
        line.push_str(&c.to_string());
        cause = c.source();
    }
    line
}

/// The dealer's settings.
#[derive(Clone, Debug)]
pub struct DealerConfig {
    /// The model's weight file.
    pub weights: PathBuf,
    /// E1's and E2's addresses.
    pub servers: [SocketAddr; 2],
    /// Key directory.
    pub keys: PathBuf,
    /// Batch sizes, in order (their sum is the number of samples the sensor sends).
    pub batches: Vec<usize>,
    /// **Insecure, tests only**: a 64-bit seed for every secret of the dealer. `None` (what a
    /// deployment uses): 256 bits from the OS CSPRNG.
    pub insecure_seed: Option<u64>,
    /// Timeout of every read, write and connection.
    pub timeout: Duration,
}

/// One batch as the dealer saw it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BatchReport {
    /// Samples in the batch.
    pub samples: usize,
    /// Online time of E1 and E2 (ms), from both servers having this batch's input and
    /// material to output ready.
    pub online_ms: [f64; 2],
    /// How long E1 and E2 waited for the other server to hold its input and material before
    /// the online clock started (ms; the dealer's material download, not online work).
    /// Reports written before this field existed read as zeros.
    #[serde(default)]
    pub ready_wait_ms: [f64; 2],
    /// Bytes E1 sent to E2 and E2 sent to E1 (frames).
    pub online_bytes_sent: [u64; 2],
    /// Rounds.
    pub rounds: u64,
    /// Material bytes sent to both servers (frames).
    pub offline_bytes: u64,
    /// Time the dealer spent generating the material (ms).
    pub dealer_ms: f64,
}

/// The dealer's result: revealed logits and per-batch counters.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DealerReport {
    /// Model name.
    pub model: String,
    /// Logits per sample.
    pub logits: Vec<Vec<f64>>,
    /// Per batch.
    pub batches: Vec<BatchReport>,
    /// Bytes of the model shares sent to both servers, once (frames).
    pub model_bytes: u64,
}

/// Runs the dealer and result receiver; `progress(done, total)` is called after each batch.
pub fn run_dealer(
    cfg: &DealerConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<DealerReport, MpcError> {
    let (spec, tensors) = read_weight_file(&cfg.weights)?;
    let (arch, weights) = compile(&spec, &tensors)?;
    let creds = credentials(&cfg.keys, DEALER)?;
    let rt = runtime()?;
    let mut conns = [
        connect(&rt, cfg.servers[0], &creds, E1, cfg.timeout)?,
        connect(&rt, cfg.servers[1], &creds, E2, cfg.timeout)?,
    ];
    // Secrets from the OS CSPRNG (256-bit seed); a fixed seed only when asked for (tests).
    let mut dealer = match cfg.insecure_seed {
        Some(seed) => Dealer::new_insecure_seeded(&arch, &weights, seed),
        None => Dealer::from_os_entropy(&arch, &weights)?,
    };
    let spec_json = spec.to_json();
    for (p, c) in conns.iter_mut().enumerate() {
        c.send(Kind::Spec, 0, spec_json.as_bytes())?;
        c.send(Kind::Model, 0, &encode_model(dealer.model_shares(p)))?;
    }
    let model_bytes = conns.iter().map(|c| c.counters().bytes_sent).sum();
    let mut logits = Vec::new();
    let mut batches = Vec::new();
    for (k, &batch) in cfg.batches.iter().enumerate() {
        let k32 = k as u32;
        let start = Instant::now();
        let materials = dealer.material(batch);
        let dealer_ms = start.elapsed().as_secs_f64() * 1e3;
        let before: u64 = conns.iter().map(|c| c.counters().bytes_sent).sum();
        for (c, m) in conns.iter_mut().zip(&materials) {
            let mut w = Writer::default();
            w.u32(batch as u32);
            w.bytes(&encode_material(m));
            c.send(Kind::Material, k32, w.as_bytes())?;
        }
        let offline_bytes = conns.iter().map(|c| c.counters().bytes_sent).sum::<u64>() - before;
        let mut shares = Vec::new();
        let mut online_ms = [0.0; 2];
        let mut ready_wait_ms = [0.0; 2];
        let mut sent = [0u64; 2];
        let mut rounds = 0;
        for (p, c) in conns.iter_mut().enumerate() {
            let (_, payload) = c.recv(Kind::Output, k32, false)?;
            let peer = c.peer.clone();
            let mut r = Reader::new(&payload, "output frame");
            let mut field = || r.u64().map_err(malformed(&peer, "output"));
            online_ms[p] = field()? as f64 / 1e6;
            ready_wait_ms[p] = field()? as f64 / 1e6;
            sent[p] = field()?;
            let _received = field()?;
            rounds = field()?;
            let words = r.words().map_err(malformed(&peer, "output"))?;
            r.finish().map_err(malformed(&peer, "output"))?;
            if words.len() != batch * arch.output_len {
                return Err(violation(
                    &peer,
                    "output",
                    Violation::OutputSize {
                        words: words.len(),
                        samples: batch,
                    },
                ));
            }
            shares.push(Shares(words));
        }
        let revealed = reveal(&shares[0], &shares[1]);
        for s in revealed.chunks_exact(arch.output_len.max(1)) {
            logits.push(s.iter().map(|&v| decode(v)).collect());
        }
        progress(k + 1, cfg.batches.len());
        batches.push(BatchReport {
            samples: batch,
            online_ms,
            ready_wait_ms,
            online_bytes_sent: sent,
            rounds,
            offline_bytes,
            dealer_ms,
        });
    }
    for c in &mut conns {
        c.send(Kind::Done, cfg.batches.len() as u32, &[])?;
    }
    Ok(DealerReport {
        model: arch.name,
        logits,
        batches,
        model_bytes,
    })
}

/// The sensor's settings.
#[derive(Clone, Debug)]
pub struct SensorConfig {
    /// E1's and E2's addresses.
    pub servers: [SocketAddr; 2],
    /// Key directory.
    pub keys: PathBuf,
    /// Inputs, `input_len` values per sample, in batch order.
    pub inputs: Vec<f32>,
    /// Values per sample.
    pub input_len: usize,
    /// Batch sizes (must match the dealer's).
    pub batches: Vec<usize>,
    /// Timeout of every read, write and connection.
    pub timeout: Duration,
}

/// A server's input-mask frame of batch `k`: its shares of the first layer's input mask
/// (`words` of them), or `None` when it asks for input shares.
fn receive_input_mask(conn: &mut Conn, k: u32, words: usize) -> Result<Option<Shares>, MpcError> {
    let peer = conn.peer.clone();
    let (_, payload) = conn.recv(Kind::InputMask, k, false)?;
    let mut r = Reader::new(&payload, "input mask frame");
    let step = format!("input mask {k}");
    let form = r.u8().map_err(malformed(&peer, &step))?;
    let mask = r.words().map_err(malformed(&peer, &step))?;
    r.finish().map_err(malformed(&peer, &step))?;
    match form {
        0 if mask.is_empty() => Ok(None),
        1 if mask.len() == words => Ok(Some(Shares(mask))),
        0 | 1 => Err(violation(
            &peer,
            &step,
            Violation::InputMask {
                got: mask.len(),
                expected: words,
            },
        )),
        f => Err(violation(&peer, &step, Violation::InputForm(f))),
    }
}

/// Runs the sensor: per batch, receives both servers' shares of the first layer's input mask
/// `A` and sends both `E = X - A` (or, for a model whose first layer is not linear, input
/// shares), then says done.
pub fn run_sensor(cfg: &SensorConfig) -> Result<(), MpcError> {
    let total: usize = cfg.batches.iter().sum();
    if cfg.inputs.len() != total * cfg.input_len {
        return Err(MpcError::Input(format!(
            "{} values for {total} samples of {}",
            cfg.inputs.len(),
            cfg.input_len
        )));
    }
    let creds = credentials(&cfg.keys, SENSOR)?;
    let rt = runtime()?;
    let mut conns = [
        connect(&rt, cfg.servers[0], &creds, E1, cfg.timeout)?,
        connect(&rt, cfg.servers[1], &creds, E2, cfg.timeout)?,
    ];
    let mut rng = ChaCha20Rng::from_os_rng();
    let mut at = 0;
    for (k, &batch) in cfg.batches.iter().enumerate() {
        let x = &cfg.inputs[at * cfg.input_len..(at + batch) * cfg.input_len];
        at += batch;
        let first = receive_input_mask(&mut conns[0], k as u32, x.len())?;
        let second = receive_input_mask(&mut conns[1], k as u32, x.len())?;
        let (form, words) = match (first, second) {
            (Some(a0), Some(a1)) => {
                let e = mask_input(x, &a0, &a1).unwrap_or_default();
                (1u8, [e.clone(), e])
            }
            (None, None) => {
                let (s0, s1) = share_input(x, &mut rng);
                (0u8, [s0.0, s1.0])
            }
            (a, b) => {
                let server = if a.is_some() { E2 } else { E1 };
                let got = a.or(b).map_or(0, |m| m.len());
                return Err(violation(
                    server,
                    &format!("input mask {k}"),
                    Violation::InputMask { got, expected: 0 },
                ));
            }
        };
        for (c, words) in conns.iter_mut().zip(words) {
            let mut w = Writer::default();
            w.u32(batch as u32);
            w.u8(form);
            w.words(&words);
            c.send(Kind::Input, k as u32, w.as_bytes())?;
        }
    }
    for c in &mut conns {
        c.send(Kind::Done, cfg.batches.len() as u32, &[])?;
    }
    for c in &mut conns {
        c.wait_closed();
    }
    Ok(())
}
