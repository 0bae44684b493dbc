//! End-to-end tests of the `veil` binary: JSON outputs and exit code 2 on bad input.

mod common;

use std::path::Path;

use common::{assert_bad_input, json, veil, veil_in};

#[test]
fn models_json_lists_the_zoo_with_costs() {
    let v = json(&veil(&["models", "--json"]));
    let arr = v.as_array().expect("array");
    assert_eq!(arr.len(), veil_spec::zoo::names().len());
    let lenet = arr.iter().find(|m| m["name"] == "lenet5").expect("lenet5");
    assert_eq!(lenet["input_shape"], serde_json::json!([1, 28, 28]));
    assert_eq!(lenet["params"], 61_706);
    assert_eq!(lenet["macs"], 416_520);
}

fn save_gray(path: &Path, f: impl Fn(u32, u32) -> u8) {
    image::GrayImage::from_fn(32, 24, |x, y| image::Luma([f(x, y)]))
        .save(path)
        .expect("png");
}

#[test]
fn compare_scores_images_and_rejects_bad_ones() {
    let dir = tempfile::tempdir().expect("tmp");
    let a = dir.path().join("a.png");
    let b = dir.path().join("b.png");
    save_gray(&a, |x, y| ((x * 7 + y * 3) % 256) as u8);
    save_gray(&b, |x, y| ((x * 7 + y * 3) % 256) as u8 / 2);
    let same = json(&veil(&[
        "compare",
        a.to_str().expect("p"),
        a.to_str().expect("p"),
        "--json",
    ]));
    assert_eq!(same["ssim"], 1.0);
    assert!(same["psnr"].is_null());
    assert_eq!(same["mse"], 0.0);
    let diff = json(&veil(&[
        "compare",
        a.to_str().expect("p"),
        b.to_str().expect("p"),
        "--json",
    ]));
    let ssim = diff["ssim"].as_f64().expect("ssim");
    assert!(ssim < 1.0 && ssim > -1.0);
    assert!(diff["psnr"].as_f64().expect("psnr") > 0.0);

    let bad = dir.path().join("bad.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\nbroken").expect("write");
    assert_bad_input(
        &veil(&["compare", a.to_str().expect("p"), bad.to_str().expect("p")]),
        "bad.png",
    );
    assert_bad_input(
        &veil(&["compare", "missing.png", a.to_str().expect("p")]),
        "missing.png",
    );
    let small = dir.path().join("small.png");
    image::GrayImage::new(16, 16).save(&small).expect("png");
    assert_bad_input(
        &veil(&[
            "compare",
            a.to_str().expect("p"),
            small.to_str().expect("p"),
        ]),
        "shape",
    );
}

#[test]
fn train_then_eval_on_synthetic_data() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("run");
    let v = common::train_synthetic(&out);
    let acc = v["test_accuracy"].as_f64().expect("acc");
    assert!((0.0..=1.0).contains(&acc) && acc > 0.5, "{acc}");
    assert!(v["train_seconds"].as_f64().expect("secs") > 0.0);
    let weights = v["weights"].as_str().expect("weights").to_string();
    assert!(Path::new(&weights).is_file());
    let e = json(&veil(&[
        "eval",
        "--model",
        "lenet5",
        "--weights",
        &weights,
        "--dataset",
        "synthetic",
        "--json",
    ]));
    assert_eq!(e["test_accuracy"], v["test_accuracy"]);
    // Wrong model name for the file, and a dataset of the wrong shape.
    assert_bad_input(
        &veil(&[
            "eval",
            "--model",
            "minionn",
            "--weights",
            &weights,
            "--dataset",
            "synthetic",
        ]),
        "lenet5",
    );
    let gtsrb_shaped = veil(&[
        "eval",
        "--weights",
        &weights,
        "--dataset",
        "folder:/nonexistent",
    ]);
    assert_bad_input(&gtsrb_shaped, "nonexistent");
}

#[test]
fn bad_input_exits_with_code_2() {
    let dir = tempfile::tempdir().expect("tmp");
    assert_bad_input(
        &veil(&["train", "--model", "resnet", "--dataset", "synthetic"]),
        "resnet",
    );
    assert_bad_input(&veil(&["train", "--dataset", "imagenet"]), "imagenet");
    assert_bad_input(
        &veil(&["train", "--dataset", "synthetic", "--jitter", "inf"]),
        "jitter",
    );
    assert_bad_input(
        &veil(&["train", "--dataset", "synthetic", "--lr=-1"]),
        "learning rate",
    );
    assert_bad_input(
        &veil(&["train", "--model", "obfnet1", "--dataset", "synthetic"]),
        "classifier",
    );
    assert_bad_input(&veil(&["train", "--no-such-flag"]), "--no-such-flag");
    assert_bad_input(&veil(&["frobnicate"]), "frobnicate");
    let help = veil(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("compare"));
    // A corrupt MNIST directory.
    let mnist = dir.path().join("mnist");
    std::fs::create_dir(&mnist).expect("mkdir");
    for f in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        std::fs::write(mnist.join(f), [0u8, 0, 8, 3, 0, 0, 0, 9]).expect("write");
    }
    let out = veil(&[
        "train",
        "--dataset",
        "mnist",
        "--data",
        dir.path().to_str().expect("p"),
    ]);
    assert_bad_input(&out, "train-images-idx3-ubyte");
    // A weight file that is not one.
    let fake = dir.path().join("fake.safetensors");
    std::fs::write(&fake, b"{}").expect("write");
    assert_bad_input(
        &veil(&[
            "eval",
            "--weights",
            fake.to_str().expect("p"),
            "--dataset",
            "synthetic",
        ]),
        "fake.safetensors",
    );
    // A spec file with a shape error.
    let spec = dir.path().join("bad.toml");
    std::fs::write(&spec, "name = \"x\"\ninput_shape = [1, 28, 28]\n[[layers]]\nname = \"fc\"\nop = \"linear\"\nout_features = 3\n").expect("write");
    assert_bad_input(
        &veil(&[
            "train",
            "--model",
            spec.to_str().expect("p"),
            "--dataset",
            "synthetic",
        ]),
        "flatten",
    );
}

#[test]
fn attack_reports_scores_and_writes_a_grid() {
    let dir = tempfile::tempdir().expect("tmp");
    let weights = train_synthetic(dir.path());
    let out = dir.path().join("attack");
    let v = json(&veil(&[
        "attack",
        "--weights",
        &weights,
        "--dataset",
        "synthetic",
        "--layer",
        "pool1",
        "--maps",
        "3",
        "--aux",
        "300",
        "--victims",
        "100",
        "--epochs",
        "1",
        "--out",
        out.to_str().expect("p"),
        "--json",
    ]));
    for key in [
        "layer",
        "maps",
        "ssim_mean",
        "ssim_std",
        "psnr_mean",
        "mse_mean",
        "victims",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["layer"], "pool1");
    assert_eq!(v["maps"], 3);
    assert_eq!(v["victims"], 100);
    let grid = v["grid"].as_str().expect("grid");
    assert_eq!(&std::fs::read(grid).expect("png")[1..4], b"PNG");
    assert_bad_input(
        &veil(&[
            "attack",
            "--weights",
            &weights,
            "--dataset",
            "synthetic",
            "--layer",
            "conv1",
            "--maps",
            "99",
        ]),
        "conv1",
    );
}

#[test]
fn profile_writes_json_csv_markdown_and_heat_map() {
    let dir = tempfile::tempdir().expect("tmp");
    let weights = train_synthetic(dir.path());
    let out = dir.path().join("p").join("profile.json");
    // The sweep's settings; `aux` varies to test a resume with other settings.
    let profile = |aux: &str, more: &[&str]| {
        let mut args = vec![
            "profile",
            "--weights",
            &weights,
            "--dataset",
            "synthetic",
            "--layers",
            "conv1,pool1",
            "--ks",
            "1,3",
            "--aux",
            aux,
            "--victims",
            "50",
            "--epochs",
            "1",
            "--taus",
            "0.4,0.9",
            "--json",
        ];
        args.extend(more);
        veil(&args)
    };
    let v = json(&profile("200", &["--out", out.to_str().expect("p")]));
    assert_eq!(v["version"], 1);
    assert_eq!(v["layers"], serde_json::json!(["conv1", "pool1"]));
    // k = 1, 3 and P = 6 for each of the two layers.
    assert_eq!(v["entries"].as_array().expect("entries").len(), 6);
    let th = v["thresholds"].as_array().expect("thresholds");
    assert_eq!(th.len(), 2);
    assert!(th[0]["nf"]["conv1"].as_u64().is_some());
    for ext in ["csv", "md", "png"] {
        assert!(out.with_extension(ext).is_file(), "{ext}");
    }
    assert!(
        !out.with_extension("checkpoint.json").exists(),
        "checkpoint left behind"
    );
    // Resumed from the finished profile: the same cells, nothing attacked again; resuming
    // with other attack settings is refused.
    let again = dir.path().join("p").join("again.json");
    let resume = |aux: &str| {
        let from = ["--resume", out.to_str().expect("p")];
        profile(
            aux,
            &[from[0], from[1], "--out", again.to_str().expect("p")],
        )
    };
    let resumed = resume("200");
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(!stderr.contains("ssim"), "{stderr}");
    assert_eq!(json(&resumed)["entries"], v["entries"]);
    assert_bad_input(&resume("300"), "same settings");
    let vgg = dir.path().join("other.json");
    let mut other = v.clone();
    other["model"] = "vgg16".into();
    std::fs::write(&vgg, other.to_string()).expect("write");
    assert_bad_input(
        &profile("200", &["--resume", vgg.to_str().expect("p")]),
        "vgg16",
    );
    assert_bad_input(
        &veil(&[
            "profile",
            "--weights",
            &weights,
            "--dataset",
            "synthetic",
            "--taus",
            "2",
        ]),
        "taus",
    );
    assert_bad_input(
        &veil(&[
            "profile",
            "--weights",
            &weights,
            "--dataset",
            "synthetic",
            "--layers",
            "nope",
        ]),
        "nope",
    );
}

#[test]
fn defend_dp_and_noise_report_accuracy_attack_and_fit() {
    let dir = tempfile::tempdir().expect("tmp");
    let weights = train_synthetic(dir.path());
    let out = dir.path().join("defend");
    let common = [
        "--weights",
        weights.as_str(),
        "--dataset",
        "synthetic",
        "--layer",
        "pool1",
        "--aux",
        "200",
        "--victims",
        "50",
        "--epochs",
        "1",
        "--draws",
        "1",
        "--out",
        out.to_str().expect("p"),
        "--json",
    ];
    let mut dp = vec!["defend", "dp", "--eps", "0.01,1,1000000"];
    dp.extend_from_slice(&common);
    let v = json(&veil(&dp));
    assert!(v["accuracy_plain"].as_f64().is_some());
    let settings = v["settings"].as_array().expect("settings");
    assert_eq!(settings.len(), 3);
    for s in settings {
        for key in ["accuracy", "ssim_mean", "psnr_mean", "mse_mean"] {
            assert!(s[key].as_f64().is_some(), "missing {key}");
        }
    }
    assert!(v["fit"]["a"].as_f64().is_some() && v["fit"]["r2"].as_f64().is_some());
    assert!(std::path::Path::new(v["csv"].as_str().expect("csv")).is_file());
    assert_eq!(
        &std::fs::read(v["png"].as_str().expect("png")).expect("png")[1..4],
        b"PNG"
    );
    let mut noise = vec!["defend", "noise", "--kind", "laplace", "--scales", "0,5"];
    noise.extend_from_slice(&common);
    let v = json(&veil(&noise));
    assert_eq!(v["settings"].as_array().expect("settings").len(), 2);
    assert!(v["fit"].is_null());
    let obf = json(&veil(&[
        "defend",
        "obfnet",
        "--weights",
        weights.as_str(),
        "--dataset",
        "synthetic",
        "--variant",
        "1",
        "--count",
        "2",
        "--obf-epochs",
        "1",
        "--aux",
        "200",
        "--victims",
        "50",
        "--epochs",
        "1",
        "--out",
        out.to_str().expect("p"),
        "--json",
    ]));
    for key in [
        "accuracy_plain",
        "accuracy_defended",
        "ssim_mean",
        "psnr_mean",
    ] {
        assert!(obf[key].as_f64().is_some(), "missing {key}");
    }
    assert_eq!(obf["accuracy_each"].as_array().expect("each").len(), 2);
    assert_bad_input(
        &veil(&[
            "defend",
            "obfnet",
            "--weights",
            weights.as_str(),
            "--dataset",
            "synthetic",
            "--variant",
            "3",
        ]),
        "variant",
    );
    let mut bad = vec!["defend", "dp", "--eps", "0"];
    bad.extend_from_slice(&common);
    assert_bad_input(&veil(&bad), "eps");
    let mut bad = vec!["defend", "dropout", "--rates", "1.5"];
    bad.extend_from_slice(&common);
    assert_bad_input(&veil(&bad), "dropout");
}

/// Trains lenet5 on synthetic data for one epoch under `dir`; returns the weight file.
fn train_synthetic(dir: &Path) -> String {
    let t = common::train_synthetic(&dir.join("model"));
    t["weights"].as_str().expect("weights").to_string()
}

#[test]
fn defend_chart_compares_shields_at_equal_accuracy() {
    let dir = tempfile::tempdir().expect("tmp");
    let header = "defence,param,label,draw,accuracy,ssim_mean,psnr_mean,mse_mean\n";
    let noise = dir.path().join("noise.csv");
    std::fs::write(
        &noise,
        format!(
            "{header}gaussian,0.1,sigma=0.1,0,0.99,0.8,20,0.01\ngaussian,0.1,sigma=0.1,1,0.99,0.7,20,0.01\ngaussian,1,sigma=1,0,0.9,0.5,15,0.03\n"
        ),
    )
    .expect("write");
    let obf = dir.path().join("obf.csv");
    std::fs::write(
        &obf,
        format!("{header}obfnet2,10,obfnet2 x10,0,0.98,0.6,14,0.04\n"),
    )
    .expect("write");
    let png = dir.path().join("cmp.png");
    let csvs = format!("{},{}", noise.display(), obf.display());
    let png_arg = png.to_str().expect("utf-8");
    let v = json(&veil(&[
        "defend",
        "chart",
        "--csv",
        &csvs,
        "--accuracy",
        "0.99,0.98,0.95",
        "--png",
        png_arg,
        "--json",
    ]));
    let curves = v["curves"].as_array().expect("curves");
    assert_eq!(curves.len(), 2);
    // Gaussian: two draws at sigma 0.1 average to SSIM 0.75 at accuracy 0.99; at 0.95 the line
    // from (0.99, 0.75) to (0.9, 0.5) gives 0.5 + 0.25 * 5/9.
    let g = curves[0]["ssim_at_accuracy"].as_array().expect("levels");
    assert!((g[0].as_f64().expect("0.99") - 0.75).abs() < 1e-9);
    assert!((g[2].as_f64().expect("0.95") - (0.5 + 0.25 * 5.0 / 9.0)).abs() < 1e-9);
    let o = curves[1]["ssim_at_accuracy"].as_array().expect("levels");
    assert!(o[0].is_null(), "ObfNet does not keep 0.99");
    assert_eq!(o[1].as_f64(), Some(0.6));
    assert!(png.exists() && png.with_extension("csv").exists());
    assert!(png.with_extension("svg").exists(), "no SVG beside the PNG");
    let one = dir.path().join("noise-settings.png");
    let v = json(&veil(&[
        "defend",
        "chart",
        "--settings",
        "--csv",
        noise.to_str().expect("utf-8"),
        "--png",
        one.to_str().expect("utf-8"),
        "--json",
    ]));
    assert_eq!(v.as_array().expect("settings").len(), 2);
    assert!(one.exists() && one.with_extension("svg").exists());
    assert_bad_input(
        &veil(&[
            "defend",
            "chart",
            "--settings",
            "--csv",
            &csvs,
            "--png",
            png_arg,
        ]),
        "one run",
    );
    std::fs::write(&obf, "variant,count\n2,10\n").expect("write");
    assert_bad_input(
        &veil(&["defend", "chart", "--csv", &csvs, "--png", png_arg]),
        "header",
    );
}

#[test]
fn a_profile_is_redrawn_from_its_json_without_attacking() {
    let dir = tempfile::tempdir().expect("tmp");
    let committed =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/results/profile-lenet5-mnist.json");
    let out = dir.path().join("p/profile.json");
    let v = json(&veil(&[
        "profile",
        "--redraw",
        committed.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
        "--json",
    ]));
    assert_eq!(v["model"], "lenet5");
    for ext in ["json", "csv", "md", "png", "svg"] {
        assert!(out.with_extension(ext).is_file(), "missing .{ext}");
    }
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"version\": 99}").expect("write");
    assert_bad_input(
        &veil(&[
            "profile",
            "--redraw",
            bad.to_str().expect("utf-8"),
            "--out",
            out.to_str().expect("utf-8"),
        ]),
        "profile",
    );
}

#[test]
fn import_writes_a_model_the_engine_evaluates_and_check_lists_nodes() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../veil-onnx/tests/fixtures");
    let onnx = fixtures.join("torch-seq-opset17.onnx");
    let onnx = onnx.to_str().expect("path");
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("imported");
    let v = json(&veil(&[
        "import",
        onnx,
        "--out",
        out.to_str().expect("p"),
        "--json",
    ]));
    assert_eq!(v["opset"], 17);
    assert_eq!(v["input_shape"], serde_json::json!([1, 28, 28]));
    assert_eq!(v["layers"].as_array().expect("layers").len(), 10);
    assert_eq!(v["parameters"], 3002);
    let weights = v["weights"].as_str().expect("weights");
    let e = json(&veil(&[
        "eval",
        "--weights",
        weights,
        "--dataset",
        "synthetic",
        "--json",
    ]));
    assert!(e["test_accuracy"].as_f64().is_some());

    let c = json(&veil(&["import", onnx, "--check", "--json"]));
    assert_eq!(c["importable"], true);
    assert_eq!(c["nodes"].as_array().expect("nodes").len(), 11);

    // A truncated file and a missing one: one line, exit code 2, for import and --check.
    let cut = dir.path().join("cut.onnx");
    let bytes = std::fs::read(fixtures.join("torch-seq-opset17.onnx")).expect("fixture");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let cut = cut.to_str().expect("p");
    assert_bad_input(
        &veil(&["import", cut, "--out", out.to_str().expect("p")]),
        "not an ONNX model",
    );
    assert_bad_input(&veil(&["import", cut, "--check"]), "not an ONNX model");
    assert_bad_input(&veil(&["import", "missing.onnx"]), "missing.onnx");
}

/// `--model FILE.onnx` wherever a model is named: `veil infer` on the real MNIST test images
/// gives PyTorch's logits (the fixture's, from tools/onnx_fixtures.py) within a relative 1e-4
/// (`|veil - torch| / (1 + |torch|)`, as the README states),
/// `veil eval` needs no weight file, `veil attack` inverts the imported model, and a file that
/// does not import is one line with exit code 2.
#[test]
fn an_onnx_file_is_a_model_for_infer_eval_and_attack() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../veil-onnx/tests/fixtures");
    let onnx = fixtures.join("lenet5-veil-opset13.onnx");
    let onnx = onnx.to_str().expect("path");
    let want: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixtures.join("lenet5-veil-opset13.logits.json")).expect("fixture"),
    )
    .expect("json");
    let want = want["logits"].as_array().expect("logits");
    let dir = tempfile::tempdir().expect("tmp");
    let at = dir.path();
    let v = json(&veil_in(
        at,
        &[
            "infer",
            "--model",
            onnx,
            "--dataset",
            "mnist",
            "--limit",
            "16",
            "--json",
        ],
    ));
    assert_eq!(v["samples"], 16);
    let got = v["logits"].as_array().expect("logits");
    assert_eq!(got.len(), want.len());
    let values = |row: &serde_json::Value| -> Vec<f64> {
        let row = row.as_array().expect("row");
        row.iter().map(|x| x.as_f64().expect("number")).collect()
    };
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let (g, w) = (values(g), values(w));
        let rel = g
            .iter()
            .zip(&w)
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs() / (1.0 + b.abs())));
        assert!(rel <= 1e-4, "sample {i}: relative error {rel}");
        let best = (0..w.len()).fold(0, |b, k| if w[k] > w[b] { k } else { b });
        assert_eq!(v["predictions"][i], best, "sample {i}");
    }
    let imported = std::fs::read_dir(at.join("runs"))
        .expect("runs")
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("lenet5-veil-opset13-onnx-")
        })
        .count();
    assert_eq!(
        imported, 1,
        "one import directory, named after the stem and the path"
    );
    let m = json(&veil(&["models", "--spec", onnx, "--json"]));
    assert_eq!(m[0]["name"], "lenet5-veil-opset13");
    assert_eq!(m[0]["params"], 61706);

    let e = json(&veil_in(
        at,
        &["eval", "--model", onnx, "--dataset", "synthetic", "--json"],
    ));
    assert_eq!(e["model"], "lenet5-veil-opset13");
    let a = json(&veil_in(
        at,
        &[
            "attack",
            "--model",
            onnx,
            "--dataset",
            "synthetic",
            "--layer",
            "pool1",
            "--aux",
            "300",
            "--victims",
            "100",
            "--epochs",
            "1",
            "--json",
        ],
    ));
    assert!(a["ssim_mean"].as_f64().is_some());

    let cut = at.join("cut.onnx");
    let bytes = std::fs::read(fixtures.join("lenet5-veil-opset13.onnx")).expect("fixture");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).expect("write");
    let cut = cut.to_str().expect("p");
    assert_bad_input(
        &veil_in(at, &["infer", "--model", cut, "--dataset", "synthetic"]),
        "cut.onnx",
    );
    assert_bad_input(
        &veil_in(at, &["eval", "--model", "lenet5", "--dataset", "synthetic"]),
        "veil train",
    );
    // A spec file stands for the model its spec names, not for its path (review finding):
    // the imported directory's spec.json with its weight file.
    let dir = std::fs::read_dir(at.join("runs"))
        .expect("runs")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("lenet5-veil-opset13-onnx-"))
        .expect("import directory");
    let (spec, weights) = (dir.join("spec.json"), dir.join("model.safetensors"));
    let e = json(&veil_in(
        at,
        &[
            "eval",
            "--model",
            spec.to_str().expect("p"),
            "--weights",
            weights.to_str().expect("p"),
            "--dataset",
            "synthetic",
            "--json",
        ],
    ));
    assert_eq!(e["model"], "lenet5-veil-opset13");
}

/// A graph model (the imported PyTorch ResNet fixture, residual adds and batch
/// normalisation) through the CLI: its split points listed, an attack at one, and an attack
/// inside a residual block refused in one line.
#[test]
fn a_graph_model_is_attacked_at_its_split_points_only() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../veil-onnx/tests/fixtures");
    let onnx = fixtures.join("torch-resnet-opset13.onnx");
    let onnx = onnx.to_str().expect("path");
    let dir = tempfile::tempdir().expect("tmp");
    let at = dir.path();
    let m = json(&veil(&["models", "--spec", onnx, "--json"]));
    let splits: Vec<&str> = m[0]["split_points"]
        .as_array()
        .expect("split points")
        .iter()
        .map(|v| v.as_str().expect("name"))
        .collect();
    assert!(
        splits.contains(&"add1") && !splits.contains(&"relu2"),
        "{splits:?}"
    );
    let attack = |layer: &str| {
        veil_in(
            at,
            &[
                "attack",
                "--model",
                onnx,
                "--dataset",
                "synthetic",
                "--layer",
                layer,
                "--aux",
                "300",
                "--victims",
                "100",
                "--epochs",
                "1",
                "--json",
            ],
        )
    };
    let a = json(&attack("relu3"));
    assert!(a["ssim_mean"].as_f64().is_some_and(f64::is_finite));
    assert_bad_input(&attack("relu2"), "not a split point");
}
