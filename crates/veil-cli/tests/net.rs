//! `veil net bench`: a coordinator and eight nodes (cam0, seven helpers) as processes over gRPC with mutual TLS,
//! every result equal to single-process inference; killing a helper mid-run loses no request
//! (re-planned around it, or rejected with the reason when too few helpers remain); bad input
//! exits with code 2.

mod common;

use common::{assert_bad_input, json, train_synthetic, veil};

#[test]
fn a_process_cluster_matches_one_process() {
    let dir = tempfile::tempdir().expect("tmp");
    let run = dir.path().join("run");
    let t = train_synthetic(&run);
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
        "7",
        "--images",
        "12",
        "--json",
    ]));
    assert_eq!(v["check"]["same_argmax"], 12, "{v}");
    assert!(v["check"]["max_abs_logit_diff"].as_f64().expect("diff") < 1e-4);
    assert_eq!(v["summary"]["answered"], 12);
    // Fault: 200 requests at 40/s over 8 helpers, h2 killed (SIGKILL) after 50. The
    // coordinator misses its heartbeats, re-plans on the 7 left, the source restarts what was
    // running: every request answered, each with the single-process result.
    let fault = |helpers: &str| {
        json(&veil(&[
            "net",
            "bench",
            "--model",
            "lenet5",
            "--weights",
            &weights,
            "--dataset",
            "synthetic",
            "--helpers",
            helpers,
            "--images",
            "200",
            "--rate",
            "40",
            "--kill",
            "h2",
            "--fault-after",
            "50",
            "--json",
        ]))
    };
    let v = fault("8");
    let s = &v["summary"];
    assert_eq!(s["requests"], 200, "{v}");
    assert_eq!(s["answered"], 200, "{v}");
    assert_eq!(v["check"]["same_argmax"], 200, "{v}");
    let plans = v["plans"].as_array().expect("plans");
    assert!(
        plans
            .iter()
            .any(|p| p["planned"] == true && p["dead"].to_string().contains("h2")),
        "{plans:?}"
    );
    let source = &v["nodes"][0];
    assert_eq!(source["answered"], 200, "{source}");
    assert_eq!(source["pending"], 0);
    // With 7 helpers the 6 left cannot satisfy the privacy constraint at the default tau 0.95
    // (six hold one conv2 input each and nothing else; fc1-fc3 need a seventh): what was not
    // answered is rejected with that reason, nothing is lost.
    let v = fault("7");
    let s = &v["summary"];
    assert_eq!(s["failed"], 0, "{v}");
    assert_eq!(
        s["answered"].as_u64().expect("n") + s["rejected"].as_u64().expect("n"),
        200
    );
    assert!(s["rejected"].as_u64().expect("n") > 0, "{v}");
    assert!(
        s["reasons"].to_string().contains("no placement"),
        "{}",
        s["reasons"]
    );
    assert_eq!(
        v["check"]["same_argmax"], s["answered"],
        "answered ones are right"
    );
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
            "node",
            "--name",
            "h0",
            "--role",
            "helper",
            "--device",
            "custom",
            "--e",
            "100",
            "--listen",
            "127.0.0.1:1",
            "--coordinator",
            "127.0.0.1:2",
        ]),
        "--device custom needs",
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

/// `--helpers 0` (and a fault on a helper that cannot exist) is one line, not a wrapped range.
#[test]
fn net_bench_refuses_an_empty_fleet() {
    let out = veil(&["net", "bench", "--helpers", "0", "--kill", "h0"]);
    assert_bad_input(&out, "--helpers must be in 1..=256");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("18446744073709551615"), "{err}");
}

/// `veil net audit`: a real deployment (coordinator, source and helpers as processes over
/// mutual TLS) whose helpers record what they observe; every answer matches one process, every
/// helper that observed something is attacked on exactly that and scored against tau, with a
/// grid; a tau the planner cannot meet on the fleet is an answer (`placed: false`), not a
/// failure.
#[test]
fn net_audit_attacks_what_each_helper_observed() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = |p: &str| dir.path().join(p).to_str().expect("utf-8").to_string();
    let t = train_synthetic(&dir.path().join("run"));
    let weights = t["weights"].as_str().expect("weights").to_string();
    let audit = |helpers: &str, tau: &str, out: &str, more: &[&str]| {
        let mut args = vec![
            "net",
            "audit",
            "--weights",
            &weights,
            "--dataset",
            "synthetic",
            "--helpers",
            helpers,
            "--tau",
            tau,
            "--aux",
            "300",
            "--victims",
            "40",
            "--epochs",
            "1",
            "--out",
        ];
        let out = path(out);
        args.extend([out.as_str(), "--json"]);
        args.extend(more);
        json(&veil(&args))
    };
    // A confirm pass with margin 1: every helper at or above tau - 1 is attacked again.
    let v = audit(
        "7",
        "0.95",
        "a",
        &["--confirm-epochs", "2", "--confirm-margin", "1"],
    );
    assert_eq!(v["confirm_epochs"], 2, "{v}");
    assert_eq!(v["placed"], true, "{v}");
    assert_eq!(v["argmax_agree"], 340, "{v}");
    let helpers = v["helpers"].as_array().expect("helpers");
    assert_eq!(helpers.len(), 7);
    let attacked: Vec<&serde_json::Value> = helpers
        .iter()
        .filter(|h| h["saw"].as_array().is_some_and(|s| !s.is_empty()))
        .collect();
    assert!(!attacked.is_empty(), "{v}");
    for h in &attacked {
        let ssim = h["ssim_mean"].as_f64().expect("ssim");
        assert!((-1.0..=1.0).contains(&ssim), "{h}");
        let grid = h["grid"].as_str().expect("grid");
        assert!(std::path::Path::new(grid).exists(), "{grid}");
        let readings = h["readings"].as_array().expect("readings");
        let confirms = readings.iter().filter(|r| r["confirm"] == true).count();
        if h["confirmed"] == true {
            let screen = h["screen_ssim"].as_f64().expect("screen ssim");
            assert!(screen >= 0.95 - 1.0 && ssim >= screen, "{h}");
            assert_eq!(2 * confirms, readings.len(), "{h}");
        } else {
            assert!(ssim < 0.95 - 1.0 && confirms == 0, "{h}");
        }
    }
    assert!(
        attacked.iter().any(|h| h["confirmed"] == true),
        "the confirm pass ran on no helper: {v}"
    );
    let max = attacked
        .iter()
        .filter_map(|h| h["ssim_mean"].as_f64())
        .fold(f64::MIN, f64::max);
    assert_eq!(v["max_ssim"].as_f64(), Some(max));
    assert!(dir.path().join("a/audit.json").exists());
    let none = audit("2", "0.4", "b", &[]);
    assert_eq!(none["placed"], false, "{none}");
    assert_eq!(none["helpers"].as_array().map(Vec::len), Some(0));
    assert!(
        none["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no placement"))
    );
}
