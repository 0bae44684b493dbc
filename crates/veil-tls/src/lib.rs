//! veil-tls: who may talk to whom. `veil mpc keygen` (and later `veil net keygen`) creates a
//! private certificate authority and one certificate per party; every connection is mutual
//! TLS 1.2/1.3 (rustls with the `ring` provider) in which both ends present a certificate
//! signed by that CA, and the accepting end learns which party connected.
//!
//! A party named `e1` holds a certificate for the DNS name `e1.veil` ([`dns_name`]);
//! clients verify the server against the name of the party they meant to reach, servers check
//! a client's certificate with [`peer_party`] against the parties they accept. A certificate
//! from any other CA, or none, fails the handshake.
//!
//! Files in a key directory ([`write_dir`]): `ca.pem`, and for each party `<name>.pem`
//! (certificate) and `<name>.key` (PKCS#8 private key, mode 0600).
//!
//! Key items: [`Pki`], [`generate`], [`write_dir`], [`Credentials`],
//! [`Credentials::server_config`], [`Credentials::client_config`], [`peer_party`].

#![forbid(unsafe_code)]

pub mod accept;

use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Errors of key generation, loading and TLS configuration (named with the file or party).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A party name that cannot be a DNS label.
    #[error("party name `{0}`: use lowercase letters, digits and '-' (1-32 characters)")]
    BadName(String),
    /// Certificate generation failed.
    #[error("generating certificates: {0}")]
    Generate(String),
    /// A key file could not be read or written, or does not parse.
    #[error("{path}: {message}")]
    File {
        /// File path.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// rustls refused a configuration (named with the party).
    #[error("TLS configuration for {party}: {message}")]
    Config {
        /// The party.
        party: String,
        /// What went wrong.
        message: String,
    },
}

/// The DNS name in party `name`'s certificate.
pub fn dns_name(name: &str) -> String {
    format!("{name}.veil")
}

fn check_name(name: &str) -> Result<(), TlsError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(TlsError::BadName(name.to_string()))
    }
}

/// A CA and its party certificates, PEM-encoded.
pub struct Pki {
    /// The CA certificate.
    pub ca_pem: String,
    /// `(name, certificate PEM, private key PEM)` per party.
    pub parties: Vec<(String, String, String)>,
}

/// Creates a fresh CA (ECDSA P-256) and a certificate for each of `names`, usable both as
/// TLS server and client.
pub fn generate(names: &[&str]) -> Result<Pki, TlsError> {
    let gen_err = |e: rcgen::Error| TlsError::Generate(e.to_string());
    for n in names {
        check_name(n)?;
    }
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "veil private CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::CrlSign,
    ];
    let ca_key = KeyPair::generate().map_err(gen_err)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(gen_err)?;
    let issuer = Issuer::new(ca, ca_key);
    let mut parties = Vec::new();
    for name in names {
        let mut p = CertificateParams::new(vec![dns_name(name)]).map_err(gen_err)?;
        p.distinguished_name.push(DnType::CommonName, *name);
        p.use_authority_key_identifier_extension = true;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().map_err(gen_err)?;
        let cert = p.signed_by(&key, &issuer).map_err(gen_err)?;
        parties.push((name.to_string(), cert.pem(), key.serialize_pem()));
    }
    Ok(Pki {
        ca_pem: ca_cert.pem(),
        parties,
    })
}

/// Writes `pki` into `dir` (created if missing): `ca.pem`, `<name>.pem`, `<name>.key`.
pub fn write_dir(dir: &Path, pki: &Pki) -> Result<(), TlsError> {
    let write = |name: String, text: &str, private: bool| {
        let path = dir.join(name);
        let err = |e: std::io::Error| TlsError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        std::fs::write(&path, text).map_err(err)?;
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
        }
        #[cfg(not(unix))]
        let _ = private;
        Ok::<(), TlsError>(())
    };
    std::fs::create_dir_all(dir).map_err(|e| TlsError::File {
        path: dir.display().to_string(),
        message: e.to_string(),
    })?;
    write("ca.pem".into(), &pki.ca_pem, false)?;
    for (name, cert, key) in &pki.parties {
        write(format!("{name}.pem"), cert, false)?;
        write(format!("{name}.key"), key, true)?;
    }
    Ok(())
}

/// One party's certificate, key and the CA it trusts.
pub struct Credentials {
    /// The party's name.
    pub name: String,
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Credentials {
    /// Loads party `name`'s files from `dir`.
    pub fn load(dir: &Path, name: &str) -> Result<Self, TlsError> {
        check_name(name)?;
        let file_err = |path: &Path, message: String| TlsError::File {
            path: path.display().to_string(),
            message,
        };
        let ca_path = dir.join("ca.pem");
        let ca = CertificateDer::from_pem_file(&ca_path)
            .map_err(|e| file_err(&ca_path, format!("CA certificate: {e}")))?;
        let cert_path = dir.join(format!("{name}.pem"));
        let chain = vec![
            CertificateDer::from_pem_file(&cert_path)
                .map_err(|e| file_err(&cert_path, format!("certificate: {e}")))?,
        ];
        let key_path = dir.join(format!("{name}.key"));
        let key = PrivateKeyDer::from_pem_file(&key_path)
            .map_err(|e| file_err(&key_path, format!("private key: {e}")))?;
        Ok(Credentials {
            name: name.to_string(),
            ca,
            chain,
            key,
        })
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, TlsError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).map_err(|e| self.config_err(e))?;
        Ok(Arc::new(roots))
    }

    fn config_err(&self, e: impl std::fmt::Display) -> TlsError {
        TlsError::Config {
            party: self.name.clone(),
            message: e.to_string(),
        }
    }

    /// Accepting side: presents this party's certificate and requires a client certificate
    /// signed by the CA.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots()?, provider())
            .build()
            .map_err(|e| self.config_err(e))?;
        let mut cfg = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| self.config_err(e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| self.config_err(e))?;
        // No session resumption: sessions are long-lived, and unsolicited tickets would sit
        // unread in a client that only sends (its close would then reset the connection).
        cfg.send_tls13_tickets = 0;
        Ok(Arc::new(cfg))
    }

    /// Connecting side: trusts only the CA and presents this party's certificate.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let cfg = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| self.config_err(e))?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| self.config_err(e))?;
        Ok(Arc::new(cfg))
    }
}

/// The server name to verify when connecting to party `name`.
pub fn server_name(name: &str) -> Result<ServerName<'static>, TlsError> {
    check_name(name)?;
    ServerName::try_from(dns_name(name)).map_err(|e| TlsError::BadName(e.to_string()))
}

/// Which of `accepted` the verified client certificate `cert` belongs to (its DNS name is
/// `<party>.veil`). The chain itself was verified against the CA during the handshake.
pub fn peer_party<'a>(cert: &CertificateDer<'_>, accepted: &[&'a str]) -> Option<&'a str> {
    let ee = webpki::EndEntityCert::try_from(cert).ok()?;
    accepted.iter().copied().find(|name| {
        ServerName::try_from(dns_name(name))
            .ok()
            .is_some_and(|sn| ee.verify_is_valid_for_subject_name(&sn).is_ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    fn handshake(
        server: &Credentials,
        client: &Credentials,
        target: &str,
    ) -> Result<Option<String>, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let scfg = server.server_config().map_err(|e| e.to_string())?;
        let t = std::thread::spawn(move || -> Result<Option<String>, String> {
            let (sock, _) = listener.accept().map_err(|e| e.to_string())?;
            let conn = rustls::ServerConnection::new(scfg).map_err(|e| e.to_string())?;
            let mut tls = rustls::StreamOwned::new(conn, sock);
            let mut buf = [0u8; 5];
            tls.read_exact(&mut buf).map_err(|e| e.to_string())?;
            let who = tls
                .conn
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| peer_party(c, &["e1", "e2", "dealer"]))
                .map(str::to_string);
            tls.write_all(b"world").map_err(|e| e.to_string())?;
            Ok(who)
        });
        let ccfg = client.client_config().map_err(|e| e.to_string())?;
        let sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        let conn =
            rustls::ClientConnection::new(ccfg, server_name(target).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, sock);
        let client_side = tls
            .write_all(b"hello")
            .and_then(|_| tls.flush())
            .and_then(|_| {
                let mut buf = [0u8; 5];
                tls.read_exact(&mut buf)
            })
            .map_err(|e| e.to_string());
        let server_side = t.join().map_err(|_| "server thread panicked".to_string())?;
        client_side?;
        server_side
    }

    #[test]
    fn mutual_tls_accepts_the_ca_s_parties_and_names_them() {
        let dir = tempfile::tempdir().expect("tmp");
        write_dir(dir.path(), &generate(&["e1", "e2", "dealer"]).expect("pki")).expect("write");
        let e1 = Credentials::load(dir.path(), "e1").expect("e1");
        let e2 = Credentials::load(dir.path(), "e2").expect("e2");
        assert_eq!(handshake(&e1, &e2, "e1"), Ok(Some("e2".to_string())));
        // Connecting to e1 while expecting e2 fails the server-name check.
        assert!(handshake(&e1, &e2, "e2").is_err());
    }

    #[test]
    fn a_stranger_from_another_ca_is_refused() {
        let ours = tempfile::tempdir().expect("tmp");
        let theirs = tempfile::tempdir().expect("tmp");
        write_dir(ours.path(), &generate(&["e1", "e2"]).expect("pki")).expect("write");
        write_dir(theirs.path(), &generate(&["e2"]).expect("pki")).expect("write");
        let e1 = Credentials::load(ours.path(), "e1").expect("e1");
        let fake_e2 = Credentials::load(theirs.path(), "e2").expect("fake");
        assert!(handshake(&e1, &fake_e2, "e1").is_err());
    }

    #[test]
    fn bad_names_and_missing_files_are_errors() {
        assert!(matches!(generate(&["E1"]), Err(TlsError::BadName(_))));
        assert!(matches!(generate(&["a/b"]), Err(TlsError::BadName(_))));
        let dir = tempfile::tempdir().expect("tmp");
        let e = Credentials::load(dir.path(), "e1").err().expect("missing");
        assert!(e.to_string().contains("ca.pem"), "{e}");
    }
}
