//! Helpers shared by the CLI integration tests: run the binary, parse its JSON, check the
//! exit-code-2 contract.

#![allow(dead_code)]

use std::process::{Command, Output};

/// Runs `veil` with `args`.
pub fn veil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(args)
        .output()
        .expect("run veil")
}

/// Runs `veil` with `args` in the directory `dir` (for commands that write `runs/...`).
pub fn veil_in(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run veil")
}

/// Asserts success and parses stdout as JSON.
pub fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

/// Asserts exit code 2 with a one-line message on stderr that mentions `mention`.
pub fn assert_bad_input(out: &Output, mention: &str) {
    assert_eq!(
        out.status.code(),
        Some(2),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one-line error, got: {err}"
    );
    assert!(err.contains(mention), "{err} should mention {mention}");
}

/// Trains lenet5 on the synthetic dataset for one epoch into `out` (a run directory) and
/// returns `veil train`'s JSON report (its `weights` names the weight file).
pub fn train_synthetic(out: &std::path::Path) -> serde_json::Value {
    json(&veil(&[
        "train",
        "--model",
        "lenet5",
        "--dataset",
        "synthetic",
        "--epochs",
        "1",
        "--out",
        out.to_str().expect("utf-8 path"),
        "--json",
    ]))
}
