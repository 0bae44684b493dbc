//! The runtime benchmark behind `veil net bench`: a coordinator and a fleet (one source
//! `cam0`, helpers `h0..`) started as `veil` processes on loopback with fresh keys
//! ([`veil_harness::Fleet`]), driven with test images ([`crate::drive`]), optionally with a
//! helper killed or stalled mid-run.
//!
//! Readiness is signalled by the coordinator: it prints each plan epoch as a JSON line on
//! stdout, and the fleet is ready at the first line with `"planned": true` (which names the
//! source's address).
//!
//! Key items: [`FleetBench`], [`FaultKind`], [`run`].

use std::path::PathBuf;
use std::time::Duration;

use veil_harness::{Fleet, Signal, free_loopback_addr};

use crate::NetError;
use crate::drive::{Fault, FleetReport, drive, read_fleet, write_trace};
use crate::load::LoadConfig;

/// Most helpers a benchmark starts (each is a process on this machine).
pub const MAX_BENCH_HELPERS: usize = 64;

/// The parties of a fleet with `helpers` helpers: coordinator, client, the source and the
/// helpers (the certificates `veil net keygen` writes).
pub fn party_names(helpers: usize) -> Vec<String> {
    let mut v = vec!["coordinator".to_string(), "client".into(), "cam0".into()];
    v.extend((0..helpers).map(|i| format!("h{i}")));
    v
}

/// A fault injected into one helper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// SIGKILL.
    Kill,
    /// SIGSTOP (released with SIGCONT at the end).
    Stall,
}

/// What to start and what to send.
#[derive(Clone, Debug)]
pub struct FleetBench {
    /// The `veil` binary.
    pub program: PathBuf,
    /// Zoo model name.
    pub model: String,
    /// Its weight file.
    pub weights: PathBuf,
    /// Helpers, `1..=MAX_BENCH_HELPERS`.
    pub helpers: usize,
    /// Tolerated attack SSIM of the plan.
    pub tau: f64,
    /// Mean requests per second (Poisson); 0 sends one at a time.
    pub rate: f64,
    /// Source: attempt timeout (ms).
    pub attempt_timeout_ms: u64,
    /// Nodes emulate their device's compute speed.
    pub emulate: bool,
    /// How partial sums travel.
    pub partial_sums: crate::cluster::PartialSums,
    /// The coordinator's privacy profile file, when not the built-in one.
    pub profile: Option<PathBuf>,
    /// A helper (`h<i>`) to fault, how, and after how many requests.
    pub fault: Option<(String, FaultKind, usize)>,
    /// Write one JSON line per request (outcome, latency, trace) here.
    pub trace: Option<PathBuf>,
}

impl FleetBench {
    /// Checks the helper count and the fault's target (cheap: call it before loading data).
    pub fn validate(&self) -> Result<(), NetError> {
        if !(1..=MAX_BENCH_HELPERS).contains(&self.helpers) {
            return Err(NetError::Invalid(format!(
                "--helpers must be in 1..={MAX_BENCH_HELPERS} (one process each), got {}",
                self.helpers
            )));
        }
        if let Some((target, _, _)) = &self.fault
            && !(0..self.helpers).any(|i| format!("h{i}") == *target)
        {
            return Err(NetError::Invalid(format!(
                "--kill/--stall names a helper h0..h{}",
                self.helpers.saturating_sub(1)
            )));
        }
        Ok(())
    }

    /// Command lines of the coordinator, the source and the helpers.
    fn members(
        &self,
        keys: &str,
        coordinator: &str,
    ) -> Result<Vec<(String, Vec<String>)>, NetError> {
        let s = |v: &[&str]| -> Vec<String> { v.iter().map(|x| x.to_string()).collect() };
        let mut members = vec![(
            "coordinator".to_string(),
            s(&[
                "coordinator",
                "--listen",
                coordinator,
                "--model",
                &self.model,
                "--weights",
                &self.weights.display().to_string(),
                "--tau",
                &self.tau.to_string(),
                "--helpers",
                &self.helpers.to_string(),
                "--keys",
                keys,
                "--partial-sums",
                self.partial_sums.name(),
            ]),
        )];
        if let Some(p) = &self.profile {
            members[0]
                .1
                .extend(s(&["--profile", &p.display().to_string()]));
        }
        let mut nodes: Vec<(String, &str)> = vec![("cam0".into(), "source")];
        nodes.extend((0..self.helpers).map(|i| (format!("h{i}"), "helper")));
        for (name, role) in nodes {
            // Port 0: each node binds a free port itself and registers the real one.
            let listen = "127.0.0.1:0";
            let mut args = s(&["node", "--name", &name, "--role", role, "--listen", listen]);
            args.extend(s(&["--coordinator", coordinator, "--keys", keys]));
            args.extend(s(&[
                "--attempt-timeout-ms",
                &self.attempt_timeout_ms.to_string(),
            ]));
            if self.emulate {
                args.push("--emulate".into());
            }
            members.push((name, args));
        }
        Ok(members)
    }
}

/// Starts the fleet, waits for its first plan (60 s at most), sends `inputs` (one request
/// each), checks the answers against `want` (single-process logits, `classes` each) and reads
/// every node's counters; `on_done` is called as each request ends.
pub fn run(
    bench: &FleetBench,
    inputs: &[Vec<f32>],
    want: &[f32],
    on_done: impl Fn() + Send + Sync + 'static,
) -> Result<FleetReport, NetError> {
    bench.validate()?;
    if let Some((target, _, after)) = &bench.fault
        && *after >= inputs.len()
    {
        return Err(NetError::Invalid(format!(
            "--fault-after {after}: the run sends only {} requests, so {target} would never fail",
            inputs.len()
        )));
    }
    // Keys and logs in a fresh directory, removed on every way out (error paths included).
    let tmp = tempfile::Builder::new()
        .prefix("veil-net-bench-")
        .tempdir()
        .map_err(|source| NetError::File {
            path: std::env::temp_dir().display().to_string(),
            source,
        })?;
    let dir = tmp.path();
    let keys = dir.join("keys");
    let names = party_names(bench.helpers);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    veil_tls::write_dir(&keys, &veil_tls::generate(&refs)?)?;
    let coordinator = free_loopback_addr()?.to_string();
    let mut fleet = Fleet::new(&bench.program, dir)?;
    for (name, args) in bench.members(&keys.display().to_string(), &coordinator)? {
        fleet.spawn(&name, &args)?;
    }
    let mut plans = Vec::new();
    let ready = fleet.wait_for(
        "the coordinator's first plan",
        Duration::from_secs(60),
        &mut |e| {
            if e.member == "coordinator" {
                plans.push(e.value.clone());
            }
            e.member == "coordinator" && e.value["planned"] == true
        },
    )?;
    let source_addr = ready.value["source_addr"]
        .as_str()
        .ok_or_else(|| NetError::Deploy("the coordinator's plan names no source".into()))?
        .to_string();
    let fault = bench.fault.as_ref().and_then(|(target, kind, after)| {
        let pid = fleet.pid(target)?;
        let signal = match kind {
            FaultKind::Kill => Signal::Kill,
            FaultKind::Stall => Signal::Stop,
        };
        Some(Fault {
            after: *after,
            inject: Box::new(move || {
                let _ = veil_harness::signal_pid(pid, signal);
            }),
        })
    });
    let cfg = LoadConfig {
        keys: keys.clone(),
        source: "cam0".into(),
        source_addr,
        rate: bench.rate,
        requests: inputs.len(),
        timeout: Duration::from_secs(60),
        seed: 1,
    };
    let driven = drive(&cfg, inputs, None, fault, on_done)?;
    if let Some(path) = &bench.trace {
        write_trace(path, &driven.records)?;
    }
    let nodes = read_fleet(&LoadConfig {
        timeout: Duration::from_secs(10),
        ..cfg
    })?;
    let classes = want.len() / inputs.len().max(1);
    let mut report = FleetReport::new(&driven, bench.rate, Some((want, classes)), nodes);
    fleet.drain(&mut |e| {
        if e.member == "coordinator" {
            plans.push(e.value.clone());
        }
    });
    report.plans = plans;
    report.fault = bench.fault.as_ref().map(|(t, kind, after)| {
        let verb = match kind {
            FaultKind::Kill => "killed",
            FaultKind::Stall => "stalled",
        };
        format!("{verb} {t} after {after} requests")
    });
    if let Some((t, FaultKind::Stall, _)) = &bench.fault {
        // Let the stalled process go before it is killed, so it does not linger stopped.
        fleet.signal(t, Signal::Continue)?;
    }
    drop(fleet);
    Ok(report)
}
