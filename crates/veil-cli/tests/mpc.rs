//! `veil mpc`: a real four-process run on loopback against plaintext inference, and bad input.

mod common;

use common::{assert_bad_input, json, veil};

#[test]
fn bench_runs_four_processes_and_agrees_with_plaintext() {
    let dir = tempfile::tempdir().expect("tmp");
    let run = dir.path().join("run");
    let t = json(&veil(&[
        "train",
        "--model",
        "secureml_a",
        "--dataset",
        "synthetic",
        "--epochs",
        "1",
        "--out",
        run.to_str().expect("utf-8"),
        "--json",
    ]));
    let weights = t["weights"].as_str().expect("weights").to_string();
    let logs = dir.path().join("logs");
    let v = json(&veil(&[
        "mpc",
        "bench",
        "--model",
        "secureml_a",
        "--weights",
        &weights,
        "--dataset",
        "synthetic",
        "--images",
        "10",
        "--batch",
        "4",
        "--keep-logs",
        logs.to_str().expect("utf-8"),
        "--json",
    ]));
    for party in ["E1", "E2", "sensor", "dealer"] {
        assert!(
            logs.join(format!("{party}.log")).is_file(),
            "{party}.log kept"
        );
    }
    // Each server logs each batch's time per op.
    let e1 = std::fs::read_to_string(logs.join("E1.log")).expect("E1.log");
    let lines: Vec<&str> = e1.lines().filter(|l| l.contains("online")).collect();
    assert_eq!(lines.len(), 3, "{e1}");
    assert!(
        lines[0].contains("batch 0 (4 samples)") && lines[0].contains("fc1 "),
        "{e1}"
    );
    assert!(v["ready_wait_ms_median"].as_f64().is_some_and(|w| w >= 0.0));
    for key in [
        "latency_ms_median",
        "online_bytes",
        "offline_bytes",
        "rounds",
        "agreement",
        "max_abs_logit_error",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["images"], 10);
    // secureml_a: fc1 (no round: the sensor sends the masked input) + relu (1) + fc2 (1) +
    // relu (1) + fc3 (1).
    assert_eq!(v["rounds"], 4);
    // Per sample both servers open 2 x 128 words of 8 bytes and 2 x 128 values packed to each
    // ReLU's comparison width plus one bit (the dealer derives the widths from the weights;
    // narrower than the full 39 bits): the stated floor, plus 9 header bytes per frame (4
    // rounds x 2 servers per batch of 4, 4, 2).
    let online = v["online_bytes"].as_f64().expect("bytes");
    let widths: Vec<u64> = v["comparison_widths"]
        .as_array()
        .expect("widths")
        .iter()
        .map(|w| w.as_u64().expect("width"))
        .collect();
    assert_eq!(widths.len(), 2, "{widths:?}");
    assert!(widths.iter().all(|&w| (8..39).contains(&w)), "{widths:?}");
    let open: f64 = widths
        .iter()
        .map(|w| 2.0 * 128.0 * (w + 1).div_ceil(8) as f64)
        .sum();
    assert_eq!(v["floor"]["comparison_bytes"].as_f64(), Some(open));
    let floor = 2.0 * 8.0 * 256.0 + open;
    assert_eq!(v["floor"]["comparisons"], 256);
    assert_eq!(v["floor"]["linear_openings"], 256);
    assert!(
        (online - (floor + 3.0 * 72.0 / 10.0)).abs() < 1e-9,
        "{online}"
    );
    assert_eq!(v["agreement"].as_f64(), Some(1.0));
    assert!(v["max_abs_logit_error"].as_f64().expect("err") < 0.05);
    assert!(v["min_bound_slack"].as_f64().expect("slack") > 0.0);
    assert_eq!(v["accuracy_secure"], v["accuracy_plain"]);
    // The in-memory session counts the same rounds and online bytes as the TLS one.
    let m = json(&veil(&[
        "mpc",
        "bench",
        "--model",
        "secureml_a",
        "--weights",
        &weights,
        "--dataset",
        "synthetic",
        "--images",
        "10",
        "--batch",
        "4",
        "--transport",
        "memory",
        "--json",
    ]));
    assert_eq!(m["transport"], "memory");
    assert_eq!(
        (&m["rounds"], &m["online_bytes"]),
        (&v["rounds"], &v["online_bytes"])
    );
    assert_eq!(m["agreement"].as_f64(), Some(1.0));
}

#[test]
fn keygen_writes_the_four_parties_and_bad_input_exits_2() {
    let dir = tempfile::tempdir().expect("tmp");
    let keys = dir.path().join("keys");
    let k = keys.to_str().expect("utf-8");
    let out = veil(&["mpc", "keygen", "--out", k]);
    assert!(out.status.success());
    for f in [
        "ca.pem",
        "e1.pem",
        "e1.key",
        "e2.pem",
        "dealer.pem",
        "sensor.key",
    ] {
        assert!(keys.join(f).is_file(), "{f}");
    }
    assert_bad_input(
        &veil(&[
            "mpc",
            "server",
            "--party",
            "3",
            "--listen",
            "127.0.0.1:0",
            "--keys",
            k,
        ]),
        "--party",
    );
    assert_bad_input(
        &veil(&[
            "mpc",
            "dealer",
            "--weights",
            "nope.safetensors",
            "--servers",
            "127.0.0.1:1",
            "--keys",
            k,
        ]),
        "--servers",
    );
    assert_bad_input(
        &veil(&[
            "mpc",
            "dealer",
            "--weights",
            "nope.safetensors",
            "--servers",
            "127.0.0.1:1,127.0.0.1:2",
            "--keys",
            k,
        ]),
        "nope.safetensors",
    );
    assert_bad_input(
        &veil(&[
            "mpc",
            "bench",
            "--model",
            "minionn",
            "--weights",
            "nope.safetensors",
        ]),
        "train it first",
    );
}
