//! `veil net bench`: a coordinator and seven nodes as processes over gRPC with mutual TLS,
//! every result equal to single-process inference; bad input exits with code 2.

mod common;

use common::{assert_bad_input, json, veil};

#[test]
fn a_process_cluster_matches_one_process() {
    let dir = tempfile::tempdir().expect("tmp");
    let run = dir.path().join("run");
    let t = json(&veil(&[
        "train",
        "--model",
        "lenet5",
        "--dataset",
        "synthetic",
        "--epochs",
        "1",
        "--out",
        run.to_str().expect("utf-8"),
        "--json",
    ]));
    let weights = t["weights"].as_str().expect("weights").to_string();
    let v = json(&veil(&[
        "net",
        "bench",
        "--model",
        "lenet5",
        "--weights",
        &weights,
        "--dataset",
        "synthetic",
        "--helpers",
        "6",
        "--images",
        "12",
        "--json",
    ]));
    assert_eq!(v["images"], 12);
    assert_eq!(v["same_argmax"], 12);
    assert!(v["max_abs_logit_diff"].as_f64().expect("diff") < 1e-4);
    assert_bad_input(
        &veil(&[
            "node",
            "--name",
            "h0",
            "--role",
            "boss",
            "--listen",
            "127.0.0.1:1",
            "--coordinator",
            "127.0.0.1:2",
        ]),
        "--role",
    );
    assert_bad_input(
        &veil(&[
            "coordinator",
            "--listen",
            "127.0.0.1:1",
            "--weights",
            "nope.safetensors",
        ]),
        "nope.safetensors",
    );
}
