//! Incoming mutual-TLS connections for the runtime's gRPC servers (the coordinator and every
//! node), accepted by veil rather than by tonic so that a hostile connection costs no one
//! else anything and leaves a trace:
//! - every TCP connection handshakes in its own task within [`HANDSHAKE_DEADLINE`], so idle,
//!   slow or garbage-sending connections hold up no valid peer;
//! - a refused handshake (no certificate, one from another CA, not TLS at all, too slow) is
//!   logged with the peer's address: the first refusal of each address, then at 2, 4, 8, ...
//!   refusals, so a flood cannot fill the log ([`RefusalLog`]);
//! - the handshaken streams keep their peer certificates for tonic
//!   (`Request::peer_certs`), from which the services learn the caller's party.
//!
//! Key items: [`TlsIncoming`], [`HANDSHAKE_DEADLINE`], [`RefusalLog`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

use crate::NetError;

/// The longest an incoming connection may take to finish its TLS handshake.
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

/// Handshaken connections waiting for the server to take them.
const QUEUE: usize = 64;

/// Distinct peer addresses [`RefusalLog`] keeps counts for; beyond them every refusal is
/// counted under one overflow entry.
const TRACKED_PEERS: usize = 4096;

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
    /// task per connection handshakes it. The stream ends when the listener fails; the tasks
    /// end when the stream is dropped.
    pub fn start(self) -> Incoming {
        let (tx, rx) = mpsc::channel(QUEUE);
        let log = Arc::new(Mutex::new(RefusalLog::default()));
        tokio::spawn(async move {
            while !tx.is_closed() {
                match self.listener.accept().await {
                    Ok((tcp, from)) => {
                        let (acceptor, tx, log) = (self.acceptor.clone(), tx.clone(), log.clone());
                        let party = self.party.clone();
                        tokio::spawn(async move {
                            match handshake(acceptor, tcp).await {
                                Ok(tls) => {
                                    let _ = tx.send(Ok(tls)).await;
                                }
                                Err(reason) => {
                                    if let Ok(mut log) = log.lock() {
                                        log.refused(&party, from, &reason);
                                    }
                                }
                            }
                        });
                    }
                    Err(e) if transient(&e) => continue,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        break;
                    }
                }
            }
        });
        ReceiverStream::new(rx)
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

/// Accept errors that concern one connection, not the listener.
fn transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | BrokenPipe | Interrupted | WouldBlock | TimedOut
    )
}

/// Counts refusals per peer address and says which ones to log: the first of each address,
/// then the 2nd, 4th, 8th, ... (with the count so far). At most [`TRACKED_PEERS`] addresses
/// are tracked; the rest share one count (logged the same way), so memory stays bounded.
#[derive(Debug, Default)]
pub struct RefusalLog {
    counts: HashMap<IpAddr, u64>,
    overflow: u64,
}

impl RefusalLog {
    /// Counts one refusal from `from`; `Some(count)` when this one should be logged.
    pub fn count(&mut self, from: IpAddr) -> Option<u64> {
        let n = if let Some(n) = self.counts.get_mut(&from) {
            *n += 1;
            *n
        } else if self.counts.len() < TRACKED_PEERS {
            self.counts.insert(from, 1);
            1
        } else {
            self.overflow += 1;
            self.overflow
        };
        n.is_power_of_two().then_some(n)
    }

    /// Counts a refusal by `party`'s server of a connection from `from` and logs it (a
    /// warning naming the peer and the reason) when [`RefusalLog::count`] says so.
    pub fn refused(&mut self, party: &str, from: SocketAddr, reason: &str) {
        if let Some(n) = self.count(from.ip()) {
            tracing::warn!(server = %party, peer = %from, refusals = n, "refused a connection: {reason}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_logged_at_powers_of_two_per_peer() {
        let mut log = RefusalLog::default();
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let logged: Vec<u64> = (0..20).filter_map(|_| log.count(a)).collect();
        assert_eq!(logged, [1, 2, 4, 8, 16]);
        assert_eq!(log.count(b), Some(1));
    }

    #[test]
    fn the_log_tracks_a_bounded_number_of_peers() {
        let mut log = RefusalLog::default();
        for i in 0..(TRACKED_PEERS as u32 + 100) {
            log.count(IpAddr::from(i.to_be_bytes()));
        }
        assert_eq!(log.counts.len(), TRACKED_PEERS);
        assert_eq!(log.overflow, 100);
    }
}
