//! The hostile-input suite (issue #18): the `veil` binary and its servers under malformed
//! files, options and network frames, as an attacker would send them.
//!
//! Every case runs `veil` as its own process in a fresh directory, under an address-space cap
//! of 2 GiB, and fails on a panic, a signal (SIGABRT included), a hang (20 s), an exit code
//! other than 0 and 2, an exit 2 without a one-line `veil:` message, a peak resident memory
//! above 512 MiB (its own `VmHWM`), or (for reproductions of known bugs) accepting what it must refuse. The
//! runtime's servers get a barrage of malformed and forged calls from authenticated members
//! and must still answer a valid request afterwards.
//!
//! Short mode (CI, `cargo test`): 600+ cases. The longer campaign:
//! `VEIL_HOSTILE_SCALE=10 cargo test --release -p veil-cli --test hostile -- --nocapture`
//! (`VEIL_HOSTILE_SEED` picks other mutations; `VEIL_HOSTILE_REPORT=FILE` writes every
//! outcome as JSON lines).

mod cases;
mod fleet;
mod mutate;
mod net;
// The runner sets rlimits before exec and reaps its children with waitpid: the only way to
// cap a child process's address space and judge how it ended; every block states its safety.
#[allow(unsafe_code)]
mod run;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use run::{Limits, Outcome};

const LIMITS: Limits = Limits {
    time: Duration::from_secs(20),
    memory: 512 << 20,
    address_space: 2 << 30,
};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn hostile_inputs_never_panic_hang_abort_or_overallocate() {
    let veil = std::path::Path::new(env!("CARGO_BIN_EXE_veil"));
    let scale = env_number("VEIL_HOSTILE_SCALE", 1) as usize;
    let seed = env_number("VEIL_HOSTILE_SEED", 18);
    let root = tempfile::tempdir().expect("tmp");
    let keys = root.path().join("mpc-keys");
    net::mpc_keys(&keys);
    let mut cases = cases::reproductions();
    cases.extend(cases::options());
    cases.extend(cases::mutated(24 * scale, seed));
    cases.extend(net::mpc_frames(40 * scale, seed, &keys));
    cases.extend(net::mpc_connections(&keys));
    let started = Instant::now();
    let mut outcomes = run::run_all(veil, &root.path().join("cases"), &cases, LIMITS, 2);
    outcomes.extend(net::runtime_frames(veil, 60 * scale, seed, LIMITS.memory));
    let wall = started.elapsed();
    report(&outcomes, wall);
    let failures: Vec<&Outcome> = outcomes.iter().filter(|o| o.failure.is_some()).collect();
    for f in &failures {
        eprintln!(
            "FAILED [{}] {}: {}",
            f.family,
            f.name,
            f.failure.as_deref().unwrap_or("")
        );
    }
    assert!(
        outcomes.len() >= 500 * scale,
        "only {} cases",
        outcomes.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} hostile cases failed",
        failures.len(),
        outcomes.len()
    );
}

/// Prints a table per family (cases, exit 0, exit 2, failures, slowest, peak memory) and
/// writes every outcome as JSON lines when `VEIL_HOSTILE_REPORT` names a file.
fn report(outcomes: &[Outcome], wall: Duration) {
    let mut families: BTreeMap<&str, (usize, usize, usize, usize, Duration, u64)> = BTreeMap::new();
    for o in outcomes {
        let e = families.entry(o.family).or_default();
        e.0 += 1;
        e.1 += usize::from(o.exit == Some(0));
        e.2 += usize::from(o.exit == Some(2));
        e.3 += usize::from(o.failure.is_some());
        e.4 = e.4.max(o.wall);
        e.5 = e.5.max(o.max_rss);
    }
    println!("| family | cases | exit 0 | exit 2 | failed | slowest (s) | peak RSS (MiB) |");
    println!("|---|---|---|---|---|---|---|");
    for (family, (n, ok, refused, failed, slowest, rss)) in &families {
        println!(
            "| {family} | {n} | {ok} | {refused} | {failed} | {:.2} | {} |",
            slowest.as_secs_f64(),
            rss >> 20
        );
    }
    println!("{} cases in {:.0} s", outcomes.len(), wall.as_secs_f64());
    if let Ok(path) = std::env::var("VEIL_HOSTILE_REPORT")
        && let Ok(mut f) = std::fs::File::create(path)
    {
        for o in outcomes {
            let line = serde_json::json!({
                "family": o.family,
                "name": o.name,
                "failure": o.failure,
                "exit": o.exit,
                "wall_s": o.wall.as_secs_f64(),
                "max_rss_bytes": o.max_rss,
            });
            let _ = writeln!(f, "{line}");
        }
    }
}
