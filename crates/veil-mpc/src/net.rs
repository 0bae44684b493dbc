//! Real connections: TCP with mutual TLS (`veil-tls`), the frame format of
//! [`crate::transport`] for every message, and a timeout on every read and write.
//!
//! A [`Conn`] is one authenticated connection. The engine is synchronous; each `Conn` drives
//! its tokio stream on a current-thread runtime shared by the process ([`Conn::exchange`]
//! writes its frame and reads the peer's concurrently, so two servers opening megabytes at
//! once cannot deadlock on full socket buffers). Byte counts are frame bytes, exactly as the
//! in-memory double counts them.
//!
//! Key items: [`Conn`], [`connect`], [`accept_parties`], [`Kind`].

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};
use veil_tls::Credentials;

use crate::transport::{
    Channel, FRAME_HEADER, KIND_OPEN, LinkStats, MAX_FRAME, decode_open, encode_frame,
    encode_frame_bytes, split_body,
};
use crate::{MpcError, Refusal, Violation};

/// Message kinds on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Server to server: a share of a masked value.
    Open = KIND_OPEN,
    /// Dealer to server: the model spec (public structure, JSON).
    Spec = 2,
    /// Dealer to server: the server's model shares.
    Model = 3,
    /// Dealer to server: one batch's material (step = batch index).
    Material = 4,
    /// Sensor to server: one batch's input shares (step = batch index).
    Input = 5,
    /// Server to dealer: one batch's output shares and counters (step = batch index).
    Output = 6,
    /// Dealer or sensor: no more batches.
    Done = 7,
    /// Server to sensor: this server's shares of the first layer's input mask for one batch
    /// (step = batch index), or none when the sensor is to send shares.
    InputMask = 8,
}

impl Kind {
    /// The name of kind byte `byte` (`unknown kind <b>` for none).
    pub(crate) fn name(byte: u8) -> String {
        match byte {
            1 => "open".into(),
            2 => "spec".into(),
            3 => "model".into(),
            4 => "material".into(),
            5 => "input".into(),
            6 => "output".into(),
            7 => "done".into(),
            8 => "input mask".into(),
            b => format!("unknown kind {b}"),
        }
    }
}

type Stream = TlsStream<TcpStream>;

/// One authenticated connection.
pub struct Conn {
    rt: Arc<Runtime>,
    read: ReadHalf<Stream>,
    write: WriteHalf<Stream>,
    /// The party at the other end (from its certificate).
    pub peer: String,
    timeout: Duration,
    stats: LinkStats,
}

/// A current-thread runtime for one process's connections.
pub fn runtime() -> Result<Arc<Runtime>, MpcError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map(Arc::new)
        .map_err(|e| transport_err("-", "starting the I/O runtime", e))
}

/// An I/O failure with `peer` while doing `action`.
fn transport_err(peer: &str, action: impl Into<String>, source: std::io::Error) -> MpcError {
    MpcError::Transport {
        peer: peer.to_string(),
        action: action.into(),
        source,
    }
}

/// `awaited` did not happen with `peer` within `after`.
fn timeout_err(peer: &str, awaited: impl Into<String>, after: Duration) -> MpcError {
    MpcError::Timeout {
        peer: peer.to_string(),
        awaited: awaited.into(),
        after,
    }
}

/// A TLS set-up failure of `party`.
fn tls_err(party: &str) -> impl FnOnce(veil_tls::TlsError) -> MpcError {
    move |source| MpcError::Tls {
        party: party.to_string(),
        source,
    }
}

async fn read_frame(read: &mut ReadHalf<Stream>, peer: &str) -> Result<Vec<u8>, MpcError> {
    let mut len = [0u8; 4];
    read.read_exact(&mut len)
        .await
        .map_err(|e| transport_err(peer, "reading a frame", e))?;
    let len = usize::try_from(u32::from_le_bytes(len)).unwrap_or(usize::MAX);
    if !(FRAME_HEADER - 4..=MAX_FRAME).contains(&len) {
        return Err(MpcError::Protocol {
            peer: peer.to_string(),
            step: "frame".into(),
            violation: Violation::FrameLength { length: len },
        });
    }
    // The buffer grows with the bytes that actually arrive (in steps of at most 1 MiB), so a
    // header claiming 2 GiB costs nothing until a peer really sends that much.
    let mut body = Vec::with_capacity(len.min(1 << 20));
    let got = (&mut *read)
        .take(len as u64)
        .read_to_end(&mut body)
        .await
        .map_err(|e| transport_err(peer, "reading a frame", e))?;
    if got != len {
        return Err(MpcError::Closed {
            peer: peer.to_string(),
            during: format!("after {got} of {len} frame bytes"),
        });
    }
    Ok(body)
}

impl Conn {
    /// Sends one frame.
    pub fn send(&mut self, kind: Kind, step: u32, payload: &[u8]) -> Result<(), MpcError> {
        let f = encode_frame_bytes(kind as u8, step, payload);
        self.stats.bytes_sent += f.len() as u64;
        let peer = self.peer.clone();
        let write = &mut self.write;
        let fut = async move {
            let sending = || format!("sending {kind:?} {step}");
            write
                .write_all(&f)
                .await
                .map_err(|e| transport_err(&peer, sending(), e))?;
            write
                .flush()
                .await
                .map_err(|e| transport_err(&peer, sending(), e))
        };
        let t = self.timeout;
        self.rt
            .block_on(async { tokio::time::timeout(t, fut).await })
            .map_err(|_| timeout_err(&self.peer, format!("completed send of {kind:?} {step}"), t))?
    }

    /// Receives one frame, which must be of `kind` (or [`Kind::Done`] when `done_ok`) and of
    /// step `step`; returns its kind and payload.
    pub fn recv(
        &mut self,
        kind: Kind,
        step: u32,
        done_ok: bool,
    ) -> Result<(Kind, Vec<u8>), MpcError> {
        let peer = self.peer.clone();
        let read = &mut self.read;
        let fut = async move { read_frame(read, &peer).await };
        let t = self.timeout;
        let body = self
            .rt
            .block_on(async { tokio::time::timeout(t, fut).await })
            .map_err(|_| timeout_err(&self.peer, format!("{kind:?} frame of step {step}"), t))??;
        self.stats.bytes_received += 4 + body.len() as u64;
        let step_name = || format!("{kind:?} {step}");
        let unexpected = |violation| MpcError::Protocol {
            peer: self.peer.clone(),
            step: step_name(),
            violation,
        };
        let (got_kind, got_step, payload) =
            split_body(&body).map_err(|source| MpcError::Malformed {
                peer: self.peer.clone(),
                step: step_name(),
                source,
            })?;
        if done_ok && got_kind == Kind::Done as u8 {
            return Ok((Kind::Done, Vec::new()));
        }
        if got_kind != kind as u8 {
            return Err(unexpected(Violation::UnexpectedKind { kind: got_kind }));
        }
        if got_step != step {
            return Err(unexpected(Violation::WrongStep(got_step)));
        }
        Ok((kind, payload.to_vec()))
    }

    /// Waits until the peer closes the connection (or `timeout`), discarding anything it
    /// sends: a party that only sends calls this last, so that its exit cannot reset the
    /// connection before the peer has read everything.
    pub fn wait_closed(&mut self) {
        let read = &mut self.read;
        let t = self.timeout;
        let _ = self.rt.block_on(async {
            tokio::time::timeout(t, async {
                let mut buf = [0u8; 4096];
                while matches!(read.read(&mut buf).await, Ok(n) if n > 0) {}
            })
            .await
        });
    }

    /// Counters so far.
    pub fn counters(&self) -> LinkStats {
        self.stats
    }
}

impl Channel for Conn {
    fn exchange(&mut self, step: u32, values: &[u64], bits: u32) -> Result<Vec<u64>, MpcError> {
        let frame = encode_frame(KIND_OPEN, step, values, bits);
        self.stats.bytes_sent += frame.len() as u64;
        let peer = self.peer.clone();
        let (read, write) = (&mut self.read, &mut self.write);
        let fut = async move {
            let send = async {
                write
                    .write_all(&frame)
                    .await
                    .map_err(|e| transport_err(&peer, format!("sending open {step}"), e))?;
                write
                    .flush()
                    .await
                    .map_err(|e| transport_err(&peer, format!("sending open {step}"), e))
            };
            let (sent, got) = tokio::join!(send, read_frame(read, &peer));
            sent?;
            got
        };
        let t = self.timeout;
        let body = self
            .rt
            .block_on(async { tokio::time::timeout(t, fut).await })
            .map_err(|_| timeout_err(&self.peer, format!("exchange of open {step}"), t))??;
        self.stats.bytes_received += 4 + body.len() as u64;
        self.stats.rounds += 1;
        decode_open(&body, step, values.len(), bits, &self.peer)
    }

    fn stats(&self) -> LinkStats {
        self.stats
    }
}

/// Connects to party `target` at `addr` as `creds`, retrying refused connections until
/// `timeout` (the other process may still be starting).
pub fn connect(
    rt: &Arc<Runtime>,
    addr: SocketAddr,
    creds: &Credentials,
    target: &str,
    timeout: Duration,
) -> Result<Conn, MpcError> {
    let connector = TlsConnector::from(creds.client_config().map_err(tls_err(&creds.name))?);
    let name = veil_tls::server_name(target).map_err(tls_err(target))?;
    let start = Instant::now();
    let tcp = loop {
        match rt.block_on(TcpStream::connect(addr)) {
            Ok(s) => break s,
            Err(e) if start.elapsed() < timeout => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(transport_err(target, format!("connecting to {addr}"), e)),
        }
    };
    let _ = tcp.set_nodelay(true);
    let tls = rt
        .block_on(async { tokio::time::timeout(timeout, connector.connect(name, tcp)).await })
        .map_err(|_| timeout_err(target, format!("TLS handshake with {addr}"), timeout))?
        .map_err(|e| transport_err(target, format!("TLS handshake with {addr}"), e))?;
    let (read, write) = tokio::io::split(TlsStream::Client(tls));
    Ok(Conn {
        rt: rt.clone(),
        read,
        write,
        peer: target.to_string(),
        timeout,
        stats: LinkStats::default(),
    })
}

/// Binds a listener.
pub fn listen(rt: &Arc<Runtime>, addr: SocketAddr) -> Result<TcpListener, MpcError> {
    rt.block_on(TcpListener::bind(addr))
        .map_err(|e| transport_err("-", format!("listening on {addr}"), e))
}

pub use veil_tls::accept::HANDSHAKE_DEADLINE;
use veil_tls::accept::{ACCEPT_BACKOFF, MAX_PENDING_HANDSHAKES, accept_error_is_per_connection};

/// Accepts one connection of each party in `wanted` (checked by certificate) and returns them
/// in the order of `wanted`. Every TCP connection handshakes in its own task with deadline
/// `handshake`, so an idle, slow or garbage-sending connection delays no valid party. A refused
/// connection (failed or late handshake, no certificate, another party's certificate) and a
/// second connection of a party already linked are handed to `refused` and do not end the
/// wait. At most [`MAX_PENDING_HANDSHAKES`] handshakes run at once (a connection beyond them
/// is closed at once and reported), and an `accept` error never ends the wait (it backs off
/// and retries). Errors: TLS set-up, or no new link within `timeout` (counted from the start
/// and again from each link established).
pub fn accept_parties(
    rt: &Arc<Runtime>,
    listener: &TcpListener,
    creds: &Credentials,
    wanted: &[&str],
    timeout: Duration,
    handshake: Duration,
    refused: &mut dyn FnMut(&MpcError),
) -> Result<Vec<Conn>, MpcError> {
    let acceptor = TlsAcceptor::from(creds.server_config().map_err(tls_err(&creds.name))?);
    let names: Arc<Vec<String>> = Arc::new(wanted.iter().map(|n| n.to_string()).collect());
    let mut links: Vec<Option<Stream>> = wanted.iter().map(|_| None).collect();
    rt.block_on(async {
        let mut pending = tokio::task::JoinSet::new();
        let mut deadline = tokio::time::Instant::now() + timeout;
        while links.iter().any(Option::is_none) {
            tokio::select! {
                incoming = listener.accept() => match incoming {
                    Ok((_, from)) if pending.len() >= MAX_PENDING_HANDSHAKES => {
                        refused(&MpcError::Refused {
                            peer: from.to_string(),
                            reason: Refusal::Busy(MAX_PENDING_HANDSHAKES),
                            source: None,
                        });
                    }
                    Ok((tcp, from)) => {
                        let (acceptor, names) = (acceptor.clone(), names.clone());
                        pending.spawn(handshake_with(acceptor, tcp, from, names, handshake));
                    }
                    Err(e) if accept_error_is_per_connection(&e) => continue,
                    Err(e) => {
                        refused(&transport_err("-", "accepting (retrying)", e));
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
                Some(done) = pending.join_next(), if !pending.is_empty() => match done {
                    Ok(Ok((party, from, tls))) => {
                        if links[party].is_some() {
                            refused(&MpcError::Refused {
                                peer: from.to_string(),
                                reason: Refusal::SecondConnection(names[party].clone()),
                                source: None,
                            });
                        } else {
                            links[party] = Some(TlsStream::Server(tls));
                            deadline = tokio::time::Instant::now() + timeout;
                        }
                    }
                    Ok(Err(e)) => refused(&e),
                    Err(_) => return Err(MpcError::Panicked { party: "handshake task".into() }),
                },
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(timeout_err("-", "connection", timeout));
                }
            }
        }
        Ok(())
    })?;
    Ok(links
        .into_iter()
        .flatten()
        .zip(wanted)
        .map(|(stream, party)| {
            let (read, write) = tokio::io::split(stream);
            Conn {
                rt: rt.clone(),
                read,
                write,
                peer: party.to_string(),
                timeout,
                stats: LinkStats::default(),
            }
        })
        .collect())
}

/// The TLS handshake of one incoming connection from `from`, within `limit`; the index in
/// `names` of the party its verified certificate names.
async fn handshake_with(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    from: SocketAddr,
    names: Arc<Vec<String>>,
    limit: Duration,
) -> Result<
    (
        usize,
        SocketAddr,
        tokio_rustls::server::TlsStream<TcpStream>,
    ),
    MpcError,
> {
    let _ = tcp.set_nodelay(true);
    let refused = |reason: Refusal, source: Option<std::io::Error>| MpcError::Refused {
        peer: from.to_string(),
        reason,
        source,
    };
    let tls = tokio::time::timeout(limit, acceptor.accept(tcp))
        .await
        .map_err(|_| refused(Refusal::HandshakeTimeout(limit), None))?
        .map_err(|e| refused(Refusal::Handshake, Some(e)))?;
    let accepted: Vec<&str> = names.iter().map(String::as_str).collect();
    let party = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| veil_tls::peer_party(c, &accepted))
        .and_then(|p| accepted.iter().position(|n| *n == p))
        .ok_or_else(|| refused(Refusal::Certificate(names.to_vec()), None))?;
    Ok((party, from, tls))
}

/// Loads `name`'s credentials from `dir`.
pub fn credentials(dir: &Path, name: &str) -> Result<Credentials, MpcError> {
    Credentials::load(dir, name).map_err(tls_err(name))
}
