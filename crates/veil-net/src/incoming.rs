//! Incoming mutual-TLS connections for the runtime's gRPC servers (the coordinator and every
//! node), accepted by veil rather than by tonic so that a hostile connection costs no one
//! else anything and leaves a trace. The policy is `veil_tls::accept`'s:
//! - every TCP connection handshakes in its own task within [`HANDSHAKE_DEADLINE`], so idle,
//!   slow or garbage-sending connections hold up no valid peer;
//! - at most [`MAX_PENDING_HANDSHAKES`] handshakes run at once: a connection beyond them is
//!   closed at once, so a flood costs bounded memory;
//! - accepting never stops: an `accept` error that is not about one connection (no file
//!   descriptor left) backs off and retries, where it used to end the server;
//! - a refused handshake (no certificate, one from another CA, not TLS at all, too slow, too
//!   many at once) is logged with the peer's address: the first refusal of each address, then
//!   at 2, 4, 8, ... refusals;
//! - the handshaken streams keep their peer certificates for tonic
//!   (`Request::peer_certs`), from which the services learn the caller's party.
//!
//! Key items: [`TlsIncoming`], [`Incoming`].

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use veil_tls::accept::{ACCEPT_BACKOFF, RefusalLog, accept_error_is_per_connection};
pub use veil_tls::accept::{HANDSHAKE_DEADLINE, MAX_PENDING_HANDSHAKES};

use crate::NetError;

/// Handshaken connections waiting for the server to take them.
const QUEUE: usize = 64;

/// The stream of handshaken connections tonic's `serve_with_incoming` takes.
pub type Incoming = ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>>;

/// A bound listener of party `name`'s server.
pub struct TlsIncoming {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    party: String,
}

impl TlsIncoming {
    /// Binds `addr` (port 0 picks a free port) with party `name`'s credentials from `keys`:
    /// its certificate, and client certificates from the CA required. Must run inside a
    /// tokio runtime. Errors: keys, TLS set-up, binding.
    pub fn bind(addr: SocketAddr, keys: &Path, name: &str) -> Result<Self, NetError> {
        let creds = veil_tls::Credentials::load(keys, name)?;
        let mut config = (*creds.server_config()?).clone();
        // gRPC is HTTP/2; tonic's clients insist on negotiating it.
        config.alpn_protocols = vec![b"h2".to_vec()];
        let listen_err = |source| NetError::Listen {
            addr: addr.to_string(),
            source,
        };
        let std_listener = std::net::TcpListener::bind(addr).map_err(listen_err)?;
        std_listener.set_nonblocking(true).map_err(listen_err)?;
        let listener = TcpListener::from_std(std_listener).map_err(listen_err)?;
        Ok(TlsIncoming {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            party: name.to_string(),
        })
    }

    /// The bound address (the real port when bound to port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        self.listener
            .local_addr()
            .map_err(|source| NetError::Listen {
                addr: "the bound listener".into(),
                source,
            })
    }

    /// Starts accepting on the current runtime: one task accepts TCP connections and one
    /// task per connection handshakes it (at most [`MAX_PENDING_HANDSHAKES`] at once). The
    /// tasks end when the stream is dropped; accepting never stops before.
    pub fn start(self) -> Incoming {
        let (tx, rx) = mpsc::channel(QUEUE);
        let log = Arc::new(Mutex::new(RefusalLog::default()));
        let slots = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
        tokio::spawn(async move {
            while !tx.is_closed() {
                let (tcp, from) = match self.listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) if accept_error_is_per_connection(&e) => continue,
                    Err(e) => {
                        tracing::warn!(server = %self.party, "accepting failed, retrying: {e}");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    // Closed at once: the handshakes already running are enough.
                    refused(&log, &self.party, from, "too many handshakes in progress");
                    continue;
                };
                let (acceptor, tx, log) = (self.acceptor.clone(), tx.clone(), log.clone());
                let party = self.party.clone();
                tokio::spawn(async move {
                    let outcome = handshake(acceptor, tcp).await;
                    drop(slot);
                    match outcome {
                        Ok(tls) => {
                            let _ = tx.send(Ok(tls)).await;
                        }
                        Err(reason) => refused(&log, &party, from, &reason),
                    }
                });
            }
        });
        ReceiverStream::new(rx)
    }
}

/// Counts a refusal by `party`'s server of a connection from `from` and logs it (a warning
/// naming the peer and the reason) when [`RefusalLog::count`] says so.
fn refused(log: &Mutex<RefusalLog>, party: &str, from: SocketAddr, reason: &str) {
    let report = log.lock().ok().and_then(|mut l| l.count(from.ip()));
    if let Some(n) = report {
        tracing::warn!(server = %party, peer = %from, refusals = n, "refused a connection: {reason}");
    }
}

/// One connection's handshake within [`HANDSHAKE_DEADLINE`]; why it was refused otherwise.
async fn handshake(acceptor: TlsAcceptor, tcp: TcpStream) -> Result<TlsStream<TcpStream>, String> {
    let _ = tcp.set_nodelay(true);
    match tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Ok(tls),
        Ok(Err(e)) => Err(format!("TLS handshake refused: {e}")),
        Err(_) => Err(format!(
            "TLS handshake not finished within {HANDSHAKE_DEADLINE:?}"
        )),
    }
}
