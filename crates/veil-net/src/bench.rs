//! The runtime benchmark behind `veil net bench`: a coordinator and a fleet (one source
//! `cam0`, helpers `h0..`) started as `veil` processes on loopback with fresh keys
//! ([`veil_harness::Fleet`]), driven with test images ([`crate::drive`]), optionally with a
//! helper killed or stalled mid-run.
//!
//! Readiness is signalled by the coordinator: it prints each plan epoch as a JSON line on
//! stdout, the first once every helper has registered; the fleet is ready at the first line
//! with `"planned": true` (which names the source's address), and a first line that says no
//! placement exists ends the wait ([`Started::placement`]).
//!
//! Key items: [`FleetBench`], [`FaultKind`], [`run`].

use std::path::PathBuf;
use std::time::Duration;

use veil_harness::{Fleet, Signal, free_loopback_addr};

use crate::NetError;
use crate::drive::{Fault, FleetReport, drive, read_fleet, write_trace};
use crate::load::LoadConfig;

/// Most helpers a benchmark or audit starts (each is a process on this machine, with a TLS
/// connection to the coordinator and to each owner it sends partial sums to). 256 covers the
/// sound rule's gtsrb_cnn plans (77 helpers at tau 0.8, 229 at tau 0.6).
pub const MAX_BENCH_HELPERS: usize = 256;

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
    /// The coordinator's privacy rule, when not its partial-sum mode's.
    pub privacy_rule: Option<veil_plan::PrivacyRule>,
    /// A helper (`h<i>`) to fault, how, and after how many requests.
    pub fault: Option<(String, FaultKind, usize)>,
    /// Write one JSON line per request (outcome, latency, trace) here.
    pub trace: Option<PathBuf>,
    /// Helpers record what they observe in this directory (`h<i>.views`, see
    /// [`crate::views`]).
    pub record_views: Option<PathBuf>,
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
        if !(0.0..=1.0).contains(&self.tau) {
            return Err(NetError::Invalid(format!(
                "--tau must be an SSIM in [0, 1], got {}",
                self.tau
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
        if let Some(rule) = self.privacy_rule {
            members[0].1.extend(s(&["--privacy-rule", rule.name()]));
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
            if let Some(dir) = self.record_views.as_ref().filter(|_| role == "helper") {
                let log = dir.join(format!("{name}.views"));
                args.extend(s(&["--record-views", &log.display().to_string()]));
            }
            members.push((name, args));
        }
        Ok(members)
    }
}

/// A fleet of processes started by [`start`], with its keys and its first plan.
pub struct Started {
    /// The processes (killed when dropped).
    pub fleet: Fleet,
    /// Key directory (with the `client` certificate).
    pub keys: PathBuf,
    /// The coordinator's first plan event (on every helper): `planned`, `reason`,
    /// `source_addr`, `owners`, ...
    pub first_plan: serde_json::Value,
    /// Every plan event read so far.
    pub plans: Vec<serde_json::Value>,
    /// Keys and logs; removed when dropped.
    _dir: tempfile::TempDir,
}

impl Started {
    /// The plan the fleet runs: the first plan when it placed the model, `None` when the
    /// planner found no placement; a plan that failed otherwise (an assignment that did not
    /// reach a node) is followed by the next one (60 s at most).
    pub fn placement(&mut self) -> Result<Option<serde_json::Value>, NetError> {
        let mut plan = self.first_plan.clone();
        loop {
            if plan["planned"] == true {
                return Ok(Some(plan));
            }
            let reason = plan["reason"].as_str().unwrap_or_default();
            if reason.starts_with("no placement") {
                return Ok(None);
            }
            let plans = &mut self.plans;
            plan = self
                .fleet
                .wait_for(
                    "the coordinator's next plan",
                    Duration::from_secs(60),
                    &mut |e| {
                        if e.member == "coordinator" {
                            plans.push(e.value.clone());
                        }
                        e.member == "coordinator" && e.value.get("planned").is_some()
                    },
                )?
                .value;
        }
    }
}

/// Starts the coordinator and the fleet of `bench` as processes in a fresh directory and waits
/// (60 s at most) for the coordinator's first plan, which it makes once every helper has
/// registered: placed or not.
pub fn start(bench: &FleetBench) -> Result<Started, NetError> {
    bench.validate()?;
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
    let first = fleet.wait_for(
        "the coordinator's first plan",
        Duration::from_secs(60),
        &mut |e| {
            if e.member == "coordinator" {
                plans.push(e.value.clone());
            }
            e.member == "coordinator" && e.value.get("planned").is_some()
        },
    )?;
    Ok(Started {
        fleet,
        keys,
        first_plan: first.value,
        plans,
        _dir: tmp,
    })
}

/// Starts the fleet ([`start`]), sends `inputs` (one request each), checks the answers
/// against `want` (single-process logits, `classes` each) and reads every node's counters;
/// `on_done` is called as each request ends. Errors when the first plan places nothing.
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
    let mut started = start(bench)?;
    let plan = started.placement()?.ok_or_else(|| {
        NetError::Deploy(format!(
            "the coordinator placed nothing: {}",
            started.first_plan["reason"]
                .as_str()
                .unwrap_or("no reason given")
        ))
    })?;
    let Started {
        mut fleet,
        keys,
        mut plans,
        ..
    } = started;
    let source_addr = plan["source_addr"]
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
