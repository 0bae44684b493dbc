//! A coordinator, a source and six helpers as gRPC servers with mutual TLS on loopback (one
//! process, real sockets): the nodes register and heartbeat, the coordinator places lenet5
//! with the planner's greedy and sends each node only its slices, a client runs requests
//! through the source, the logits equal the burn engine's, and each request's trace accounts
//! for exactly the bytes the cost model predicts. Then the security properties: parties
//! without a certificate of the fleet's CA cannot register, receive weights or inject results.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tonic::{Request, Response, Status};
use veil_model::Model;
use veil_net::cluster::{
    Coordinator, CoordinatorConfig, NodeConfig, Outcome, PartialSums, PlanEvent, infer_on, run_node,
};
use veil_net::grpc::service::veil_server::{Veil, VeilServer};
use veil_net::grpc::{Frame, client, server_tls};
use veil_net::node::{Message, Payload};
use veil_net::planner::Planner;
use veil_net::wire::Envelope;
use veil_plan::Budgets;

fn free() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime")
}

struct Fleet {
    _dir: tempfile::TempDir,
    keys: std::path::PathBuf,
    rogue: std::path::PathBuf,
    model: Model,
    coordinator: SocketAddr,
    plans: Arc<std::sync::Mutex<Vec<PlanEvent>>>,
}

/// Keys for the coordinator, client, cam0 and h0..h6 (h6 never starts), a rogue CA's keys for
/// the same names, and a coordinator planning lenet5 (random weights) for six helpers.
fn fleet(helpers: usize) -> Fleet {
    fleet_with(helpers, PartialSums::default())
}

/// [`fleet`] with partial sums travelling as `partial_sums` says.
fn fleet_with(helpers: usize, partial_sums: PartialSums) -> Fleet {
    let dir = tempfile::tempdir().expect("tmp");
    let keys = dir.path().join("keys");
    let rogue = dir.path().join("rogue");
    let hs: Vec<String> = (0..=helpers).map(|i| format!("h{i}")).collect();
    let mut names: Vec<&str> = vec!["coordinator", "cam0", "client"];
    names.extend(hs.iter().map(String::as_str));
    veil_tls::write_dir(&keys, &veil_tls::generate(&names).expect("pki")).expect("keys");
    veil_tls::write_dir(&rogue, &veil_tls::generate(&names).expect("pki")).expect("keys");
    let spec = veil_spec::zoo::lenet5();
    let model = Model::init(spec.clone(), 11).expect("model");
    let params = model.compute_layer_params().expect("parameters");
    // The runtime, not the privacy rule, is under test: the #16 profile (one *random* map per
    // one-map cell) plans conv2 over six helpers at tau 0.8. veil's built-in profile scores the
    // worst pool1 map (0.926) and needs tau 0.95 and seven helpers for LeNet-5.
    let profile = veil_plan::privacy::Profile::from_json_str(include_str!(
        "../../../docs/results/profile-lenet5-mnist.json"
    ))
    .expect("profile");
    let planner = Planner::with_profile(spec, &profile, 0.8, Budgets::default(), params)
        .expect("planner")
        .with_partial_sums(partial_sums);
    let coordinator = free();
    let plans = Arc::new(std::sync::Mutex::new(Vec::new()));
    let accepted: Vec<String> = names
        .iter()
        .filter(|n| **n != "client")
        .map(|n| n.to_string())
        .collect();
    let mut cfg = CoordinatorConfig::new(coordinator, &keys, helpers);
    cfg.partial_sums = partial_sums;
    let log = plans.clone();
    std::thread::spawn(move || {
        runtime().block_on(async move {
            let coord = Coordinator::start(cfg, accepted).expect("coordinator");
            let r = coord
                .run(&planner, |e| log.lock().expect("log").push(e.clone()))
                .await;
            eprintln!("coordinator ended: {r:?}");
        });
    });
    Fleet {
        _dir: dir,
        keys,
        rogue,
        model,
        coordinator,
        plans,
    }
}

fn start_node(
    rt: &tokio::runtime::Runtime,
    keys: &std::path::Path,
    name: &str,
    role: &str,
    coordinator: SocketAddr,
) {
    let cfg = NodeConfig::new(
        name,
        role,
        veil_plan::DeviceClass::rpi3(),
        free(),
        &coordinator.to_string(),
        keys,
    );
    rt.spawn(async move {
        if let Err(e) = run_node(cfg).await {
            eprintln!("node: {e}");
        }
    });
}

async fn planned(f: &Fleet, epoch: u64) -> PlanEvent {
    for _ in 0..400 {
        if let Some(e) = f
            .plans
            .lock()
            .expect("log")
            .iter()
            .find(|e| e.epoch >= epoch && e.planned)
        {
            return e.clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "no plan of epoch {epoch}: {:?}",
        f.plans.lock().expect("log")
    );
}

/// Plain partial sums: the bytes every request's trace accounts for are exactly the bytes the
/// cost model predicts.
#[test]
fn a_tls_cluster_runs_lenet5_like_one_process_and_traces_it() {
    cluster_run(PartialSums::Plain);
}

/// Masked partial sums (the default): the same answers within the fixed-point bound, and the
/// partial-sum links carry 8-byte ring elements instead of 4-byte floats.
#[test]
fn a_tls_cluster_with_masked_partial_sums_gives_the_same_answers() {
    cluster_run(PartialSums::Masked);
}

fn cluster_run(partial_sums: PartialSums) {
    let masked = partial_sums == PartialSums::Masked;
    let f = fleet_with(6, partial_sums);
    let rt = runtime();
    start_node(&rt, &f.keys, "cam0", "source", f.coordinator);
    for i in 0..6 {
        start_node(&rt, &f.keys, &format!("h{i}"), "helper", f.coordinator);
    }
    rt.block_on(async {
        let plan = planned(&f, 1).await;
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let inputs: Vec<Vec<f32>> = (0..8)
            .map(|_| (0..784).map(|_| rng.random_range(0.0..1.0)).collect())
            .collect();
        let want = f
            .model
            .forward(f.model.input(inputs.concat()).expect("input"))
            .expect("forward")
            .into_values()
            .expect("values");
        let t = Duration::from_secs(20);
        let mut c = client(&f.keys, "client", "cam0", &plan.source_addr, t)
            .await
            .expect("client");
        for (r, x) in inputs.iter().enumerate() {
            let Outcome::Answered {
                logits,
                attempts,
                trace,
            } = infer_on(&mut c, r as u64, x.clone()).await.expect("infer")
            else {
                panic!("request {r} rejected");
            };
            assert_eq!(attempts, 1);
            // Masked: conv2's sums are exact to 2^-17 per holder, grown by fc1..fc3.
            let tolerance = if masked { 1e-3 } else { 1e-4 };
            for (g, w) in logits.iter().zip(&want[r * 10..(r + 1) * 10]) {
                assert!((g - w).abs() < tolerance, "request {r}: {g} vs {w}");
            }
            // Every stage's record reached the source, and the bytes the devices sent are
            // the bytes the cost model counts for this placement.
            let sent: u64 = trace.iter().map(|t| t.sent_bytes).sum();
            // Masked partial sums are counted as the 8-byte ring elements they travel as.
            let planned = plan.shared_bytes_planned.expect("bytes");
            assert_eq!(sent as f64, planned, "{trace:?}");
            assert!(trace.iter().any(|t| t.stage == 4));
            assert!(trace.iter().filter(|t| t.stage == 0).count() >= 1);
        }
        // The links' counters add up to the same bytes. A sender counts a delivery after
        // its call returns, which can be after the answer reached the client: read the
        // counters until they settle (at most 2 s).
        let want = 8.0 * plan.shared_bytes_planned.expect("bytes");
        let (mut stats, mut links) = (Vec::new(), 0u64);
        for _ in 0..40 {
            stats = veil_net::load::fleet_stats(&f.keys, "cam0", &plan.source_addr, t)
                .await
                .expect("stats");
            links = stats
                .iter()
                .flat_map(|s| &s.links)
                .map(|l| l.value_bytes)
                .sum();
            if links as f64 == want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(stats.len(), 7);
        assert_eq!(links as f64, want);
        assert!(stats.iter().all(|s| s.refused == 0 && s.live_requests == 0));
    });
}

/// A server with a rogue CA's certificate: counts the calls it serves.
struct Rogue(Arc<AtomicUsize>);

#[tonic::async_trait]
impl Veil for Rogue {
    async fn call(&self, _req: Request<Frame>) -> Result<Response<Frame>, Status> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(Frame(Envelope::Ack.encode())))
    }
}

#[test]
fn parties_without_the_fleets_certificate_cannot_register_receive_weights_or_inject() {
    let f = fleet(6);
    let rt = runtime();
    let t = Duration::from_secs(5);
    start_node(&rt, &f.keys, "cam0", "source", f.coordinator);
    for i in 0..6 {
        start_node(&rt, &f.keys, &format!("h{i}"), "helper", f.coordinator);
    }
    rt.block_on(async {
        let plan = planned(&f, 1).await;
        let caddr = f.coordinator.to_string();
        // 1. A node with another CA's certificate cannot register.
        let mut cfg = NodeConfig::new(
            "h6",
            "helper",
            veil_plan::DeviceClass::rpi3(),
            free(),
            &caddr,
            &f.rogue,
        );
        cfg.timeout = Duration::from_secs(2);
        assert!(run_node(cfg).await.is_err(), "a rogue node registered");
        // 2. h6 registers legitimately but its address serves a rogue certificate: the
        //    coordinator's assignment (the weights) fails the handshake and never arrives.
        let served = Arc::new(AtomicUsize::new(0));
        let bind = free();
        let tls = server_tls(&f.rogue, "h6").expect("tls");
        let svc = VeilServer::new(Rogue(served.clone()));
        tokio::spawn(
            tonic::transport::Server::builder()
                .tls_config(tls)
                .expect("tls")
                .add_service(svc)
                .serve(bind),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut c = client(&f.keys, "h6", "coordinator", &caddr, t)
            .await
            .expect("client");
        let reg = Envelope::Register {
            role: "helper".into(),
            class: veil_plan::DeviceClass::rpi3(),
            addr: bind.to_string(),
        };
        c.call(Frame(reg.encode())).await.expect("registration");
        // The coordinator re-plans with h6, fails to reach it, marks it dead, re-plans again.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            served.load(Ordering::SeqCst),
            0,
            "the rogue server got a call"
        );
        let last = planned(&f, 2).await;
        assert!(last.dead.contains(&"h6".to_string()) || !last.helpers.contains(&"h6".to_string()));
        let plan = f
            .plans
            .lock()
            .expect("log")
            .iter()
            .rev()
            .find(|e| e.planned)
            .cloned()
            .unwrap_or(plan);
        // 3. Results cannot be injected: a rogue-CA client fails the handshake at the source
        //    and at a helper; a fleet member cannot deliver as another device, a helper cannot
        //    start requests, and a client cannot deliver.
        let src = plan.source_addr.clone();
        for (who, keys) in [("client", &f.rogue), ("h0", &f.rogue)] {
            let refused = match client(keys, who, "cam0", &src, t).await {
                Err(_) => true,
                Ok(mut c) => {
                    let e = Envelope::Infer {
                        request: 1,
                        input: vec![0.0; 784],
                    };
                    c.call(Frame(e.encode())).await.is_err()
                }
            };
            assert!(refused, "rogue {who} reached the source");
        }
        let forged = |from: usize| Envelope::Deliver {
            epoch: plan.epoch,
            msg: Message {
                request: 77,
                stage: 3,
                payload: Payload::Finished,
                from,
                channels: vec![(0, vec![0.0; 84])],
                ring: Vec::new(),
                trace: Vec::new(),
            },
        };
        // Device ids: helpers are 0..n in plan order, the source comes last.
        let source_id = plan.helpers.len();
        let h0 = plan
            .helpers
            .iter()
            .position(|h| h == "h0")
            .expect("h0 in plan");
        let other = (h0 + 1) % plan.helpers.len();
        let mut as_h0 = client(&f.keys, "h0", "cam0", &src, t)
            .await
            .expect("client");
        let e = as_h0
            .call(Frame(forged(other).encode()))
            .await
            .expect_err("forged");
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
        let e = as_h0
            .call(Frame(
                Envelope::Infer {
                    request: 1,
                    input: vec![0.0; 784],
                }
                .encode(),
            ))
            .await
            .expect_err("helper starting requests");
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        let mut as_client = client(&f.keys, "client", "cam0", &src, t)
            .await
            .expect("client");
        let e = as_client
            .call(Frame(forged(source_id).encode()))
            .await
            .expect_err("client delivering");
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        // A delivery of an old plan is refused too.
        let stale = Envelope::Deliver {
            epoch: 0,
            msg: Message {
                request: 78,
                stage: 3,
                payload: Payload::Finished,
                from: h0,
                channels: vec![(0, vec![0.0; 84])],
                ring: Vec::new(),
                trace: Vec::new(),
            },
        };
        let e = as_h0.call(Frame(stale.encode())).await.expect_err("stale");
        assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
        // The honest path still works afterwards.
        let mut c = client(&f.keys, "client", "cam0", &src, t)
            .await
            .expect("client");
        let out = infer_on(&mut c, 5, vec![0.5; 784]).await.expect("infer");
        assert!(matches!(out, Outcome::Answered { .. }), "{out:?}");
    });
}

/// Hostile connections to the coordinator and to the source: idle TCP connections, bytes
/// that are not TLS, and an authenticated caller's malformed frames are refused (each with a
/// logged warning) while the fleet registers, plans and answers requests as usual.
#[test]
fn idle_garbage_and_malformed_connections_do_not_stop_the_fleet() {
    use std::io::Write;
    let f = fleet(6);
    let rt = runtime();
    let hostile = |addr: SocketAddr| {
        let mut held: Vec<std::net::TcpStream> = (0..4)
            .filter_map(|_| std::net::TcpStream::connect(addr).ok())
            .collect();
        if let Ok(mut g) = std::net::TcpStream::connect(addr) {
            let _ = g.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 0, 0, 0, 0]);
            held.push(g);
        }
        held
    };
    std::thread::sleep(Duration::from_millis(200));
    let _at_coordinator = hostile(f.coordinator);
    start_node(&rt, &f.keys, "cam0", "source", f.coordinator);
    for i in 0..6 {
        start_node(&rt, &f.keys, &format!("h{i}"), "helper", f.coordinator);
    }
    rt.block_on(async {
        let plan = planned(&f, 1).await;
        let _at_source = hostile(plan.source_addr.parse().expect("source address"));
        let t = Duration::from_secs(20);
        // An authenticated member's malformed frames are refused, one call at a time.
        let mut member = client(&f.keys, "h0", "coordinator", &f.coordinator.to_string(), t)
            .await
            .expect("member");
        for bytes in [vec![], vec![0xff; 3], vec![9; 1000]] {
            let e = member
                .call(Frame(bytes))
                .await
                .expect_err("malformed frame");
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        }
        let mut c = client(&f.keys, "client", "cam0", &plan.source_addr, t)
            .await
            .expect("client");
        for bytes in [vec![0u8; 7], vec![1; 64]] {
            assert!(c.call(Frame(bytes)).await.is_err());
        }
        let outcome = infer_on(&mut c, 1, vec![0.5; 784]).await.expect("infer");
        assert!(matches!(outcome, Outcome::Answered { .. }), "{outcome:?}");
    });
}

/// Roles are bound to certificates: a helper's certificate cannot register as the source
/// (before, `h0` registered with role `source` was accepted and planned as the source), nor a
/// source's as a helper; the role its certificate grants is accepted.
#[test]
fn a_role_the_certificate_does_not_grant_is_refused() {
    let f = fleet(6);
    let rt = runtime();
    rt.block_on(async {
        let caddr = f.coordinator.to_string();
        let t = Duration::from_secs(5);
        let register = |role: &str| Envelope::Register {
            role: role.into(),
            class: veil_plan::DeviceClass::rpi3(),
            addr: "127.0.0.1:9".into(),
        };
        let mut h6 = None;
        for _ in 0..100 {
            if let Ok(c) = client(&f.keys, "h6", "coordinator", &caddr, t).await {
                h6 = Some(c);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut h6 = h6.expect("h6 connects");
        let e = h6
            .call(Frame(register("source").encode()))
            .await
            .expect_err("a helper registering as the source");
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
        let mut cam = client(&f.keys, "cam0", "coordinator", &caddr, t)
            .await
            .expect("cam0");
        let e = cam
            .call(Frame(register("helper").encode()))
            .await
            .expect_err("the source registering as a helper");
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
        h6.call(Frame(register("helper").encode()))
            .await
            .expect("the role h6's certificate grants");
    });
}
