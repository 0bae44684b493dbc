//! The gRPC layer over mutual TLS on loopback: a call reaches the server, which learns the
//! caller's party from its certificate; a client with a certificate from another CA is
//! refused before any call is served.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tonic::{Request, Response, Status};
use veil_net::grpc::service::veil_server::{Veil, VeilServer};
use veil_net::grpc::{Frame, caller_name, client, server_tls};

struct Echo {
    served: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl Veil for Echo {
    async fn call(&self, req: Request<Frame>) -> Result<Response<Frame>, Status> {
        let who = caller_name(&req, &["h1", "coordinator"])
            .ok_or_else(|| Status::permission_denied("unknown party"))?;
        self.served.fetch_add(1, Ordering::SeqCst);
        let mut out = who.as_bytes().to_vec();
        out.extend(req.into_inner().0);
        Ok(Response::new(Frame(out)))
    }
}

#[test]
fn mutual_tls_calls_and_refusals() {
    let dir = tempfile::tempdir().expect("tmp");
    let keys = dir.path().join("keys");
    let rogue = dir.path().join("rogue");
    veil_tls::write_dir(
        &keys,
        &veil_tls::generate(&["coordinator", "h1", "h2"]).expect("pki"),
    )
    .expect("keys");
    veil_tls::write_dir(&rogue, &veil_tls::generate(&["h1"]).expect("pki")).expect("keys");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let served = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        let sock = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let bind = sock.local_addr().expect("addr");
        drop(sock);
        let addr = bind.to_string();
        let svc = VeilServer::new(Echo {
            served: served.clone(),
        });
        let tls = server_tls(&keys, "coordinator").expect("tls");
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .tls_config(tls)
                .expect("tls config")
                .add_service(svc)
                .serve(bind)
                .await
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t = Duration::from_secs(5);
        let mut c = client(&keys, "h1", "coordinator", &addr, t)
            .await
            .expect("client");
        let r = c
            .call(Frame(b"!".to_vec()))
            .await
            .expect("call")
            .into_inner();
        assert_eq!(r.0, b"h1!");
        // h2 has a valid certificate but is not accepted by this server.
        let mut c2 = client(&keys, "h2", "coordinator", &addr, t)
            .await
            .expect("client");
        let e = c2.call(Frame(vec![])).await.expect_err("h2 refused");
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        // A certificate from another CA fails the handshake.
        let bad = match client(&rogue, "h1", "coordinator", &addr, t).await {
            Err(_) => true,
            Ok(mut c) => c.call(Frame(vec![])).await.is_err(),
        };
        assert!(bad, "a rogue certificate must be refused");
    });
    assert_eq!(served.load(Ordering::SeqCst), 1);
}
