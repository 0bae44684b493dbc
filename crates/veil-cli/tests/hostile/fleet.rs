//! A real fleet for the hostile runtime frames: `veil coordinator`, the source `cam0` and
//! helpers `h0`, `h1` as processes (lenet5, weights written by the test), and the barrage of
//! malformed and forged calls that authenticated members send it.

use std::path::Path;
use std::time::{Duration, Instant};

use veil_harness::Fleet;
use veil_net::grpc::{Frame, client};
use veil_net::node::{Message, Payload};
use veil_net::wire::Envelope;

use crate::mutate::Mutator;
use crate::run::Outcome;

/// A started fleet with its key directory and the source's address.
pub struct Running {
    dir: std::path::PathBuf,
    fleet: std::cell::RefCell<Fleet>,
    keys: std::path::PathBuf,
    coordinator: String,
    source: String,
    rt: tokio::runtime::Runtime,
}

/// Starts the fleet in `dir` and waits for its first plan.
pub fn start(veil: &Path, dir: &Path) -> Result<Running, String> {
    let keys = dir.join("keys");
    let names = veil_net::bench::party_names(2);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    veil_tls::write_dir(
        &keys,
        &veil_tls::generate(&refs).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let weights = dir.join("lenet5.safetensors");
    std::fs::write(&weights, crate::cases::weights_file("lenet5")).map_err(|e| e.to_string())?;
    let coordinator = veil_harness::free_loopback_addr()
        .map_err(|e| e.to_string())?
        .to_string();
    let mut fleet = Fleet::new(veil, dir).map_err(|e| e.to_string())?;
    let k = keys.display().to_string();
    let w = weights.display().to_string();
    let s = |v: &[&str]| -> Vec<String> { v.iter().map(|x| x.to_string()).collect() };
    fleet
        .spawn(
            "coordinator",
            &s(&[
                "coordinator",
                "--listen",
                &coordinator,
                "--weights",
                &w,
                "--helpers",
                "2",
                "--tau",
                "1.0",
                "--keys",
                &k,
            ]),
        )
        .map_err(|e| e.to_string())?;
    for (name, role) in [("cam0", "source"), ("h0", "helper"), ("h1", "helper")] {
        fleet
            .spawn(
                name,
                &s(&[
                    "node",
                    "--name",
                    name,
                    "--role",
                    role,
                    "--listen",
                    "127.0.0.1:0",
                    "--coordinator",
                    &coordinator,
                    "--keys",
                    &k,
                ]),
            )
            .map_err(|e| e.to_string())?;
    }
    let plan = fleet
        .wait_for("the first plan", Duration::from_secs(60), &mut |e| {
            e.member == "coordinator" && e.value["planned"] == true
        })
        .map_err(|e| e.to_string())?;
    let source = plan.value["source_addr"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let rt = veil_net::drive::runtime().map_err(|e| e.to_string())?;
    Ok(Running {
        dir: dir.to_path_buf(),
        fleet: std::cell::RefCell::new(fleet),
        keys,
        coordinator,
        source,
        rt,
    })
}

/// Valid envelopes of every kind a member may send, to mutate.
fn seeds() -> Vec<Envelope> {
    let msg = |payload, stage, channels: Vec<(usize, Vec<f32>)>| Message {
        request: 5,
        stage,
        payload,
        from: 1,
        channels,
        ring: Vec::new(),
        trace: Vec::new(),
    };
    vec![
        Envelope::Register {
            role: "helper".into(),
            class: veil_plan::DeviceClass::rpi3(),
            addr: "127.0.0.1:9".into(),
        },
        Envelope::Heartbeat { epoch: 1 },
        Envelope::Deliver {
            epoch: 1,
            msg: msg(
                Payload::Partial,
                1,
                vec![(0, vec![0.5; 64]), (3, vec![1.0; 64])],
            ),
        },
        Envelope::Deliver {
            epoch: 1,
            msg: msg(Payload::Finished, 0, vec![(2, vec![0.25; 144])]),
        },
        Envelope::Deliver {
            epoch: 1,
            msg: Message {
                ring: vec![(1, vec![u64::MAX; 64]), (4, vec![7; 64])],
                ..msg(Payload::Masked, 1, Vec::new())
            },
        },
        Envelope::Infer {
            request: 9,
            input: vec![0.5; 784],
        },
        Envelope::Stats,
    ]
}

/// `n` hostile calls: mutated encodings of [`seeds`] from `h1` (a member gone bad) to the
/// coordinator, the source and `h0`'s peer the source, and from `client` to the source. Each
/// call is one outcome: it must come back (accepted or refused) within 10 s.
pub fn barrage(f: &Running, n: usize, seed: u64) -> Vec<Outcome> {
    let mut m = Mutator::new(seed ^ 0x6772_7063);
    let seeds: Vec<Vec<u8>> = seeds().iter().map(Envelope::encode).collect();
    let t = Duration::from_secs(10);
    let targets = [
        ("h1", "coordinator", f.coordinator.clone()),
        ("h1", "cam0", f.source.clone()),
        ("client", "cam0", f.source.clone()),
    ];
    let mut outcomes = Vec::new();
    // Connections that never start TLS, and one that is not TLS at all, held through the
    // barrage: the servers must keep serving around them.
    let mut held = Vec::new();
    for addr in [&f.coordinator, &f.source] {
        for _ in 0..3 {
            held.extend(std::net::TcpStream::connect(addr.as_str()).ok());
        }
        if let Ok(mut g) = std::net::TcpStream::connect(addr.as_str()) {
            use std::io::Write;
            let _ = g.write_all(b"GET / HTTP/1.1\r\n\r\n");
            held.push(g);
        }
    }
    f.rt.block_on(async {
        let mut clients = Vec::new();
        for (who, target, addr) in &targets {
            clients.push(client(&f.keys, who, target, addr, t).await.ok());
        }
        for i in 0..n {
            let which = m.below(targets.len());
            let s = &seeds[m.below(seeds.len())];
            let (bytes, what) = m.bytes(s);
            let name = format!("#{i} {} -> {}: {what}", targets[which].0, targets[which].1);
            let started = Instant::now();
            let failure = match clients[which].as_mut() {
                None => Some("could not connect".to_string()),
                Some(c) => match tokio::time::timeout(t, c.call(Frame(bytes))).await {
                    Err(_) => Some(format!("no answer within {t:?}")),
                    Ok(_) => None,
                },
            };
            outcomes.push(Outcome {
                family: "runtime-frames",
                name,
                failure,
                exit: None,
                wall: started.elapsed(),
                max_rss: 0,
            });
        }
    });
    drop(held);
    outcomes
}

/// After the barrage: a valid request is answered (retrying for 30 s while the fleet
/// re-plans), no process has exited, and each one's peak memory is within `memory`.
pub fn health(f: &Running, memory: u64, peak_rss: &dyn Fn(u32) -> Option<u64>) -> Outcome {
    let started = Instant::now();
    let answered = f.rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = String::new();
        while Instant::now() < deadline {
            let source = f.source.clone();
            match client(&f.keys, "client", "cam0", &source, Duration::from_secs(10)).await {
                Ok(mut c) => match veil_net::cluster::infer_on(&mut c, 77, vec![0.5; 784]).await {
                    Ok(veil_net::cluster::Outcome::Answered { .. }) => return Ok(()),
                    Ok(other) => last = format!("{other:?}"),
                    Err(e) => last = e.to_string(),
                },
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(last)
    });
    let mut failure = answered
        .err()
        .map(|e| format!("no valid request answered: {e}"));
    let mut fleet = f.fleet.borrow_mut();
    if let Err(e) = fleet.poll() {
        failure = Some(format!("a process exited: {e}"));
    }
    let mut max_rss = 0;
    for name in ["coordinator", "cam0", "h0", "h1"] {
        match fleet.pid(name).and_then(peak_rss) {
            Some(rss) => max_rss = max_rss.max(rss),
            None => failure = Some(format!("{name} is gone")),
        }
    }
    if max_rss > memory {
        failure = Some(format!("peak memory {} MiB above the bound", max_rss >> 20));
    }
    // The coordinator logged the non-TLS connection and the malformed frames with the peer.
    let log = std::fs::read_to_string(f.dir.join("coordinator.log")).unwrap_or_default();
    for wanted in ["refused a connection", "refused a malformed frame"] {
        if !log.contains(wanted) {
            failure = Some(format!("the coordinator's log lacks `{wanted}`"));
        }
    }
    Outcome {
        family: "runtime-frames",
        name: "the fleet after the barrage: answers, alive, within memory".into(),
        failure,
        exit: None,
        wall: started.elapsed(),
        max_rss,
    }
}
