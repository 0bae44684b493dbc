//! gRPC with mutual TLS (tonic, rustls with the ring provider): one unary method,
//! `veil.Veil/Call`, carrying veil's own frames ([`Frame`], a byte string decoded by
//! [`crate::wire`]). Certificates come from a `veil-tls` key directory: a server requires a
//! client certificate from the CA and learns the caller's party name from it
//! ([`caller_name`]); a client verifies the server's `<name>.veil`.
//!
//! Key items: [`Frame`], [`FrameCodec`], [`server_tls`], [`client`], [`caller_name`].

use std::path::Path;
use std::time::Duration;

use bytes::{Buf, BufMut};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig,
};

use crate::NetError;

/// The generated client and server of `veil.Veil`.
#[allow(missing_docs, clippy::all, clippy::pedantic, unused_qualifications)]
pub mod service {
    include!(concat!(env!("OUT_DIR"), "/veil.Veil.rs"));
}

/// Largest frame accepted (64 MiB).
pub const MAX_FRAME: usize = 64 << 20;

/// One message: bytes in veil's encoding.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame(pub Vec<u8>);

/// Passes frames through as gRPC message bodies.
#[derive(Clone, Copy, Debug, Default)]
pub struct FrameCodec;

/// Encoder half of [`FrameCodec`].
#[derive(Clone, Copy, Debug, Default)]
pub struct FrameEncoder;

/// Decoder half of [`FrameCodec`].
#[derive(Clone, Copy, Debug, Default)]
pub struct FrameDecoder;

impl Encoder for FrameEncoder {
    type Item = Frame;
    type Error = Status;

    fn encode(&mut self, item: Frame, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item.0);
        Ok(())
    }
}

impl Decoder for FrameDecoder {
    type Item = Frame;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Frame>, Status> {
        let n = src.remaining();
        if n > MAX_FRAME {
            return Err(Status::resource_exhausted(format!("frame of {n} bytes")));
        }
        let mut v = vec![0u8; n];
        src.copy_to_slice(&mut v);
        Ok(Some(Frame(v)))
    }
}

impl Codec for FrameCodec {
    type Encode = Frame;
    type Decode = Frame;
    type Encoder = FrameEncoder;
    type Decoder = FrameDecoder;

    fn encoder(&mut self) -> FrameEncoder {
        FrameEncoder
    }

    fn decoder(&mut self) -> FrameDecoder {
        FrameDecoder
    }
}

fn read(dir: &Path, file: &str) -> Result<Vec<u8>, NetError> {
    let path = dir.join(file);
    std::fs::read(&path).map_err(|source| NetError::Keys {
        path: path.display().to_string(),
        source,
    })
}

/// TLS for a server run by party `name`: its certificate, and client certificates from the CA
/// required.
pub fn server_tls(keys: &Path, name: &str) -> Result<ServerTlsConfig, NetError> {
    Ok(ServerTlsConfig::new()
        .identity(Identity::from_pem(
            read(keys, &format!("{name}.pem"))?,
            read(keys, &format!("{name}.key"))?,
        ))
        .client_ca_root(Certificate::from_pem(read(keys, "ca.pem")?)))
}

/// A client of party `name` for the server of party `target` at `addr` (`host:port`), with
/// `timeout` on connecting and on every call.
pub async fn client(
    keys: &Path,
    name: &str,
    target: &str,
    addr: &str,
    timeout: Duration,
) -> Result<service::veil_client::VeilClient<Channel>, NetError> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(keys, "ca.pem")?))
        .identity(Identity::from_pem(
            read(keys, &format!("{name}.pem"))?,
            read(keys, &format!("{name}.key"))?,
        ))
        .domain_name(veil_tls::dns_name(target));
    let endpoint = Endpoint::from_shared(format!("https://{addr}"))
        .map_err(|source| NetError::Transport {
            context: format!("address {addr}"),
            source,
        })?
        .tls_config(tls)
        .map_err(|source| NetError::Transport {
            context: format!("TLS for {target}"),
            source,
        })?
        .connect_timeout(timeout)
        .timeout(timeout);
    let channel = endpoint
        .connect()
        .await
        .map_err(|source| NetError::Transport {
            context: format!("connecting to {target} at {addr}"),
            source,
        })?;
    Ok(service::veil_client::VeilClient::new(channel)
        .max_decoding_message_size(MAX_FRAME)
        .max_encoding_message_size(MAX_FRAME))
}

/// The party name in the caller's verified certificate, if it is one of `accepted`.
pub fn caller_name<'a, T>(req: &tonic::Request<T>, accepted: &[&'a str]) -> Option<&'a str> {
    let certs = req.peer_certs()?;
    let first = certs.first()?;
    veil_tls::peer_party(first, accepted)
}
