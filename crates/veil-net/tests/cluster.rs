//! A coordinator, a source and six helpers as gRPC servers with mutual TLS on loopback: the
//! nodes register, the coordinator places lenet5 with the planner's greedy and sends each node
//! only its slices, a client runs requests through the source, and the logits equal the burn
//! engine's.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use veil_model::Model;
use veil_net::cluster::{Coordinator, CoordinatorConfig, NodeConfig, infer, run_node};
use veil_net::deploy::Deployment;
use veil_plan::{Budgets, Device, DeviceClass, Fleet, ModelPlan, Strategy};

fn free() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
}

#[test]
fn a_tls_cluster_runs_lenet5_like_one_process() {
    let dir = tempfile::tempdir().expect("tmp");
    let keys = dir.path().join("keys");
    let helpers: Vec<String> = (0..6).map(|i| format!("h{i}")).collect();
    let mut names: Vec<&str> = vec!["coordinator", "cam0", "client"];
    names.extend(helpers.iter().map(String::as_str));
    veil_tls::write_dir(&keys, &veil_tls::generate(&names).expect("pki")).expect("keys");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    let timeout = Duration::from_secs(20);
    rt.block_on(async {
        let caddr = free();
        let coord = Coordinator::start(
            CoordinatorConfig {
                listen: caddr,
                keys: keys.clone(),
                helpers: 6,
                timeout,
            },
            names
                .iter()
                .filter(|n| **n != "client")
                .map(|n| n.to_string())
                .collect(),
        )
        .expect("coordinator");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut node_names = vec![("cam0".to_string(), "source")];
        node_names.extend(helpers.iter().map(|h| (h.clone(), "helper")));
        for (name, role) in node_names {
            let cfg = NodeConfig {
                name,
                role: role.into(),
                device: "rpi3".into(),
                listen: free(),
                coordinator: caddr.to_string(),
                keys: keys.clone(),
                timeout,
            };
            tokio::spawn(async move {
                if let Err(e) = run_node(cfg).await {
                    eprintln!("node: {e}");
                }
            });
        }
        let registered = coord.wait_for_fleet().await.expect("fleet");
        let hs: Vec<_> = registered
            .iter()
            .filter(|r| r.role == "helper")
            .cloned()
            .collect();
        let src = registered
            .iter()
            .find(|r| r.role == "source")
            .cloned()
            .expect("source");
        let fleet = Fleet {
            helpers: hs
                .iter()
                .map(|r| Device {
                    name: r.name.clone(),
                    class: DeviceClass::by_name(&r.device).expect("class"),
                })
                .collect(),
            sources: Vec::new(),
            budgets: Budgets::default(),
        };
        let spec = veil_spec::zoo::lenet5();
        let profile = veil_plan::privacy::builtin("lenet5").expect("profile");
        let plan = ModelPlan::new(&spec, &profile, 0.8).expect("plan");
        let report = veil_plan::single::plan_one(&fleet, plan, Strategy::DISTPRIVACY, None)
            .expect("plan")
            .expect("placement");
        let dep = Deployment::new(&spec, &report.owners, report.source).expect("deploy");
        let mut nodes: Vec<(usize, veil_net::cluster::Registered)> =
            hs.iter().cloned().enumerate().collect();
        nodes.push((report.source, src.clone()));
        let model = Model::init(spec.clone(), 11).expect("model");
        let tensors = model.named_tensors().expect("tensors");
        let find = |n: String| {
            tensors
                .iter()
                .find(|t| t.name == n)
                .expect("tensor")
                .values
                .clone()
        };
        let params: Vec<(Vec<f32>, Vec<f32>)> = ["conv1", "conv2", "fc1", "fc2", "fc3"]
            .iter()
            .map(|l| (find(format!("{l}.weight")), find(format!("{l}.bias"))))
            .collect();
        coord.assign(&dep, &nodes, &params).await.expect("assign");
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let inputs: Vec<Vec<f32>> = (0..8)
            .map(|_| (0..784).map(|_| rng.random_range(0.0..1.0)).collect())
            .collect();
        let want = model
            .forward(model.input(inputs.concat()).expect("input"))
            .expect("forward")
            .into_values()
            .expect("values");
        for (r, x) in inputs.iter().enumerate() {
            let got = infer(
                &keys,
                "client",
                "cam0",
                &src.addr,
                r as u64,
                x.clone(),
                timeout,
            )
            .await
            .expect("infer");
            for (g, w) in got.iter().zip(&want[r * 10..(r + 1) * 10]) {
                assert!((g - w).abs() < 1e-4, "request {r}: {g} vs {w}");
            }
        }
    });
}
