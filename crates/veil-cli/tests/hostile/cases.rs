//! The hostile cases for the binary's parsers: every reproduction of issue #18, hostile
//! option values, and seeded mutations of a valid seed for every file format veil reads
//! (spec TOML/JSON, safetensors weights, ONNX models, profile JSON, fleet, simulation and
//! game TOML, defence CSV, PNG/PPM/JPEG images, IDX, CIFAR-10 binary, GTSRB layout, UCI CSVs,
//! image folders, TLS keys).

use std::io::Cursor;
use std::path::Path;

use crate::mutate::Mutator;
use crate::run::{Case, Expect};

/// The lenet5 spec and random weights in veil's safetensors layout.
pub fn weights_file(model: &str) -> Vec<u8> {
    let spec = veil_spec::zoo::model(model).expect("zoo");
    let tensors: veil_spec::weights::Tensors = veil_spec::weights::layout(&spec)
        .expect("layout")
        .into_iter()
        .map(|e| {
            let n: usize = e.shape.iter().product();
            let values = (0..n).map(|i| ((i % 17) as f32 - 8.0) * 0.01).collect();
            (e.name, (e.shape, values))
        })
        .collect();
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("w.safetensors");
    veil_spec::weights::write_file(&path, &spec, &tensors).expect("write");
    std::fs::read(path).expect("read")
}

fn encode(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut buf = Cursor::new(Vec::new());
    img.write_to(&mut buf, format).expect("encode");
    buf.into_inner()
}

fn gray(w: u32, h: u32) -> image::DynamicImage {
    image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(w, h, |x, y| {
        image::Luma([((x * 7 + y * 3) % 256) as u8])
    }))
}

fn rgb(w: u32, h: u32) -> image::DynamicImage {
    image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 5 % 256) as u8,
            (y * 9 % 256) as u8,
            ((x + y) % 256) as u8,
        ])
    }))
}

fn ppm(w: usize, h: usize) -> Vec<u8> {
    let mut v = format!("P6\n{w} {h}\n255\n").into_bytes();
    v.extend((0..w * h * 3).map(|i| (i * 13 % 256) as u8));
    v
}

fn idx_images(n: usize, side: usize) -> Vec<u8> {
    let mut v = vec![0, 0, 8, 3];
    for d in [n, side, side] {
        v.extend((d as u32).to_be_bytes());
    }
    v.extend((0..n * side * side).map(|i| (i * 31 % 256) as u8));
    v
}

fn idx_labels(n: usize) -> Vec<u8> {
    let mut v = vec![0, 0, 8, 1];
    v.extend((n as u32).to_be_bytes());
    v.extend((0..n).map(|i| (i % 10) as u8));
    v
}

/// A small MNIST-layout data directory (raw IDX files).
fn mnist_files() -> Vec<(String, Vec<u8>)> {
    vec![
        (
            "data/mnist/train-images-idx3-ubyte".into(),
            idx_images(32, 28),
        ),
        ("data/mnist/train-labels-idx1-ubyte".into(), idx_labels(32)),
        (
            "data/mnist/t10k-images-idx3-ubyte".into(),
            idx_images(16, 28),
        ),
        ("data/mnist/t10k-labels-idx1-ubyte".into(), idx_labels(16)),
    ]
}

fn cifar_files() -> Vec<(String, Vec<u8>)> {
    let records: Vec<u8> = (0..20)
        .flat_map(|r| {
            let mut rec = vec![(r % 10) as u8];
            rec.extend((0..3072).map(|i| ((i + r) * 7 % 256) as u8));
            rec
        })
        .collect();
    vec![("data/cifar10/part.bin".into(), records)]
}

fn gtsrb_files() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let root = "data/gtsrb/GTSRB";
    for class in 0..2 {
        let dir = format!("{root}/Final_Training/Images/{class:05}");
        let mut csv = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n".to_string();
        for i in 0..3 {
            let name = format!("{class:05}_{i:05}.ppm");
            csv.push_str(&format!("{name};12;10;1;1;10;9;{class}\n"));
            files.push((format!("{dir}/{name}"), ppm(12, 10)));
        }
        files.push((format!("{dir}/GT-{class:05}.csv"), csv.into_bytes()));
    }
    let mut csv = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n".to_string();
    for i in 0..2 {
        let name = format!("{i:05}.ppm");
        csv.push_str(&format!("{name};12;10;1;1;10;9;{i}\n"));
        files.push((format!("{root}/Final_Test/Images/{name}"), ppm(12, 10)));
    }
    files.push((
        format!("{root}/Final_Test/GT-final_test.csv"),
        csv.into_bytes(),
    ));
    files
}

fn postop_files() -> Vec<(String, Vec<u8>)> {
    let levels = ["low", "mid", "high"];
    let quality = ["poor", "fair", "good", "excellent"];
    let stable = ["unstable", "mod-stable", "stable"];
    let rows: String = (0..30)
        .map(|i| {
            format!(
                "{},{},{},{},{},{},{},{},{}\n",
                levels[i % 3],
                levels[(i / 3) % 3],
                quality[i % 4],
                levels[(i + 1) % 3],
                stable[i % 3],
                stable[(i + 2) % 3],
                stable[(i / 2) % 3],
                5 + i % 15,
                ["A", "S", "I"][i % 3]
            )
        })
        .collect();
    vec![(
        "data/uci-post-operative/post-operative.data".into(),
        rows.into_bytes(),
    )]
}

fn activity_files() -> Vec<(String, Vec<u8>)> {
    (0..10)
        .map(|f| {
            let rows: String = (0..12)
                .map(|i| {
                    format!(
                        "{},{:.5},{:.5},{:.5},{},{:.1},{:.4},{:.2},{}\n",
                        i as f32 * 0.5,
                        0.2 + f as f32 * 0.01,
                        0.9 - i as f32 * 0.01,
                        -0.08,
                        1 + i % 4,
                        -60.0 - i as f32,
                        2.4 + i as f32 * 0.1,
                        920.25 + i as f32,
                        1 + (i + f) % 4
                    )
                })
                .collect();
            (
                format!("data/uci-activity-older-people/S1_Dataset/d1p{f:02}M"),
                rows.into_bytes(),
            )
        })
        .collect()
}

fn folder_files() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for class in ["cat", "dog"] {
        for i in 0..4 {
            let img = encode(gray(28 + i % 2 * 3, 28), image::ImageFormat::Png);
            files.push((format!("imgs/{class}/{i}.png"), img));
        }
    }
    files
}

fn key_files() -> Vec<(String, Vec<u8>)> {
    let dir = tempfile::tempdir().expect("tmp");
    let names = veil_mpc::roles::PARTIES;
    veil_tls::write_dir(dir.path(), &veil_tls::generate(&names).expect("pki")).expect("keys");
    ["ca.pem", "e1.pem", "e1.key"]
        .iter()
        .map(|f| {
            (
                format!("keys/{f}"),
                std::fs::read(dir.path().join(f)).expect("read key"),
            )
        })
        .collect()
}

const FLEET: &str = "[budgets]\nperiod_s = 1.0\ncompute = 1.0\nbandwidth = 1.0\nmemory = 1.0\n\n\
[[helpers]]\nclass = \"rpi3\"\ncount = 6\n\n[[helpers]]\nname = \"jetson\"\ne = 5000\n\
memory_mb = 4096\nrate_mbps = 100\ncount = 2\n\n[[sources]]\nclass = \"rpi3\"\n\
model = \"lenet5\"\ncount = 1\n";

const EXPERIMENT: &str = "requests = 40\nlambda = 3.0\nseed = 0\ndevices = [6, 10]\n\
taus = [0.6, 0.95]\nstrategies = [\"distprivacy\", \"single\"]\n[[mixes]]\nlabel = \"uniform\"\n\
classes = [\"rpi3\", \"nexus5\", \"stm32h7\"]\nweights = [1, 1, 1]\n[[workloads]]\n\
label = \"lenet\"\nmodels = [\"lenet5\"]\n";

const GAME: &str = "unit_expense = 10.0\nprofit_coefficient = 1000.0\neps_min = 0.01\n\
eps_max = 100.0\naccuracy_a = 0.2\naccuracy_b = 1.0\n[[vehicles]]\nspeed = 7.5\n\
privacy_value = 6.0\n[[vehicles]]\nspeed = 12.0\nprivacy_value = 9.5\n[[vehicles]]\n\
speed = 5.5\nprivacy_value = 5.0\n";

const PROFILE: &str = include_str!("../../../../docs/results/profile-lenet5-mnist.json");
const DEFEND_CSV: &str = include_str!("../../../../docs/results/defend/lenet5-layers-split.csv");

/// One family of mutations: a valid seed (files), the file mutated, the command.
struct Family {
    name: &'static str,
    files: Vec<(String, Vec<u8>)>,
    /// Indices into `files` that mutations target.
    targets: Vec<usize>,
    /// Text formats get token-level mutations.
    text: bool,
    args: Vec<&'static str>,
}

/// A family whose seed is one file.
fn one_file(
    name: &'static str,
    path: &str,
    bytes: Vec<u8>,
    text: bool,
    args: Vec<&'static str>,
) -> Family {
    Family {
        name,
        files: vec![(path.to_string(), bytes)],
        targets: vec![0],
        text,
        args,
    }
}

fn families() -> Vec<Family> {
    let lenet = veil_spec::zoo::lenet5();
    let spec_json = serde_json::to_string_pretty(&lenet).expect("json");
    let spec_toml =
        toml::to_string(&veil_spec::zoo::model("gtsrb_cnn").expect("zoo")).expect("toml");
    let all = |files: &Vec<(String, Vec<u8>)>| (0..files.len()).collect::<Vec<_>>();
    let train = |model: &'static str, dataset: &'static str| {
        vec![
            "train",
            "--model",
            model,
            "--dataset",
            dataset,
            "--epochs",
            "1",
            "--out",
            "out",
        ]
    };
    let mut v = vec![
        one_file(
            "spec-json",
            "spec.json",
            spec_json.into_bytes(),
            true,
            vec!["models", "--spec", "spec.json", "--layers"],
        ),
        one_file(
            "spec-toml",
            "spec.toml",
            spec_toml.into_bytes(),
            true,
            vec!["models", "--spec", "spec.toml", "--layers"],
        ),
        Family {
            name: "safetensors",
            files: vec![("w.safetensors".into(), weights_file("lenet5"))],
            targets: vec![0],
            text: false,
            args: vec![
                "eval",
                "--weights",
                "w.safetensors",
                "--dataset",
                "synthetic",
            ],
        },
        one_file(
            "onnx",
            "m.onnx",
            include_bytes!("../../../veil-onnx/tests/fixtures/torch-seq-opset11.onnx").to_vec(),
            false,
            vec!["import", "m.onnx", "--out", "out"],
        ),
        Family {
            name: "profile-json",
            files: vec![
                ("p.json".into(), PROFILE.as_bytes().to_vec()),
                ("fleet.toml".into(), FLEET.as_bytes().to_vec()),
            ],
            targets: vec![0],
            text: true,
            args: vec![
                "plan",
                "--fleet",
                "fleet.toml",
                "--model",
                "lenet5",
                "--tau",
                "0.9",
                "--profile",
                "p.json",
            ],
        },
        one_file(
            "profile-redraw",
            "p.json",
            PROFILE.as_bytes().to_vec(),
            true,
            vec!["profile", "--redraw", "p.json", "--out", "out"],
        ),
        Family {
            name: "fleet-toml",
            files: vec![("fleet.toml".into(), FLEET.as_bytes().to_vec())],
            targets: vec![0],
            text: true,
            args: vec![
                "plan",
                "--fleet",
                "fleet.toml",
                "--model",
                "lenet5",
                "--tau",
                "0.95",
            ],
        },
        one_file(
            "experiment-toml",
            "exp.toml",
            EXPERIMENT.as_bytes().to_vec(),
            true,
            vec!["simulate", "--config", "exp.toml", "--out", "out"],
        ),
        one_file(
            "game-toml",
            "game.toml",
            GAME.as_bytes().to_vec(),
            true,
            vec!["game", "--config", "game.toml"],
        ),
        one_file(
            "defend-csv",
            "a.csv",
            DEFEND_CSV.as_bytes().to_vec(),
            true,
            vec!["defend", "chart", "--csv", "a.csv", "--png", "out/c.png"],
        ),
    ];
    for (name, ext, bytes) in [
        (
            "png-gray",
            "png",
            encode(gray(28, 28), image::ImageFormat::Png),
        ),
        (
            "png-rgb",
            "png",
            encode(rgb(32, 32), image::ImageFormat::Png),
        ),
        ("jpeg", "jpg", encode(rgb(32, 32), image::ImageFormat::Jpeg)),
        ("ppm", "ppm", ppm(16, 16)),
    ] {
        let (a, b) = (format!("a.{ext}"), format!("b.{ext}"));
        v.push(Family {
            name,
            files: vec![(a.clone(), bytes.clone()), (b.clone(), bytes)],
            targets: vec![1],
            text: false,
            args: vec!["compare", leak(a), leak(b)],
        });
    }
    for (name, files, args) in [
        ("idx", mnist_files(), train("lenet5", "mnist")),
        ("cifar-bin", cifar_files(), train("cifar_cnn", "cifar10")),
        ("gtsrb", gtsrb_files(), train("gtsrb_cnn", "gtsrb")),
        ("uci-postop", postop_files(), train("postop_a", "postop")),
        (
            "uci-activity",
            activity_files(),
            train("wearable_c", "activity"),
        ),
        (
            "image-folder",
            folder_files(),
            train("lenet5", "folder:imgs"),
        ),
    ] {
        let text = name.starts_with("uci");
        v.push(Family {
            name,
            targets: all(&files),
            files,
            text,
            args,
        });
    }
    let keys = key_files();
    v.push(Family {
        name: "tls-keys",
        targets: all(&keys),
        files: keys,
        text: true,
        args: vec![
            "mpc",
            "server",
            "--party",
            "0",
            "--listen",
            "127.0.0.1:0",
            "--keys",
            "keys",
            "--timeout",
            "1",
        ],
    });
    v
}

/// A `'static` copy of a short string (a handful per run).
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// `per_family` mutated cases of every file family, drawn from `seed`.
pub fn mutated(per_family: usize, seed: u64) -> Vec<Case> {
    let mut cases = Vec::new();
    for (f, family) in families().into_iter().enumerate() {
        let mut m = Mutator::new(seed ^ ((f as u64 + 1) << 32));
        let mut valid = Case::new(
            family.name,
            format!("{}: the valid seed", family.name),
            &family.args,
            Expect::Accepted,
        );
        valid.files = family.files.clone();
        if family.name != "tls-keys" {
            // The MPC server with valid keys waits for parties and ends at its timeout.
            cases.push(valid);
        }
        for i in 0..per_family {
            let t = family.targets[m.below(family.targets.len())];
            let (path, seed_bytes) = &family.files[t];
            let is_text = family.text || path.ends_with(".csv");
            let (bytes, what) = if is_text {
                let (s, what) = m.text(&String::from_utf8_lossy(seed_bytes));
                (s.into_bytes(), what)
            } else {
                m.bytes(seed_bytes)
            };
            let mut case = Case::new(
                family.name,
                format!("{} #{i}: {path}: {what}", family.name),
                &family.args,
                Expect::Either,
            );
            for (j, (p, b)) in family.files.iter().enumerate() {
                case = case.file(p, if j == t { bytes.clone() } else { b.clone() });
            }
            cases.push(case);
        }
    }
    cases
}

/// Hostile values for numeric options of every command (counts, rates, thresholds).
pub fn options() -> Vec<Case> {
    let templates: [&[&str]; 18] = [
        &[
            "train",
            "--dataset",
            "synthetic",
            "--epochs",
            "1",
            "--batch-size",
            "{}",
            "--out",
            "out",
        ],
        &[
            "train",
            "--dataset",
            "synthetic",
            "--epochs",
            "1",
            "--out",
            "out",
            "--lr",
            "{}",
        ],
        &[
            "bench",
            "--model",
            "lenet5",
            "--train-steps",
            "{}",
            "--latency-iters",
            "1",
            "--throughput-iters",
            "1",
        ],
        &[
            "bench",
            "--model",
            "lenet5",
            "--train-steps",
            "1",
            "--latency-iters",
            "1",
            "--throughput-iters",
            "{}",
        ],
        &["game", "--fleets", "{}", "--figure", "6"],
        &["game", "--method", "centralized", "--seed", "{}"],
        &["mpc", "bench", "--images", "{}", "--batch", "0"],
        &[
            "mpc",
            "bench",
            "--images",
            "2",
            "--batch",
            "{}",
            "--transport",
            "memory",
        ],
        &[
            "plan",
            "--fleet",
            "fleet.toml",
            "--model",
            "lenet5",
            "--tau",
            "{}",
        ],
        &[
            "simulate",
            "--figure",
            "3a",
            "--requests",
            "{}",
            "--devices",
            "5",
        ],
        &[
            "simulate",
            "--scaling",
            "--model",
            "lenet5",
            "--tau",
            "{}",
            "--devices",
            "5",
            "--requests",
            "5",
        ],
        &[
            "attack",
            "--layer",
            "conv1",
            "--aux",
            "{}",
            "--victims",
            "0",
            "--dataset",
            "synthetic",
        ],
        &[
            "attack",
            "--layer",
            "conv1",
            "--setting",
            "white-box",
            "--tv",
            "{}",
            "--victims",
            "1",
            "--dataset",
            "synthetic",
        ],
        &[
            "defend",
            "noise",
            "--scales",
            "{}",
            "--dataset",
            "synthetic",
            "--victims",
            "0",
        ],
        &[
            "defend",
            "chart",
            "--csv",
            "a.csv",
            "--accuracy",
            "{}",
            "--png",
            "out/c.png",
        ],
        &["net", "bench", "--helpers", "{}", "--kill", "h0"],
        &[
            "net",
            "audit",
            "--tau",
            "{}",
            "--dataset",
            "synthetic",
            "--helpers",
            "1",
        ],
        &[
            "net",
            "audit",
            "--aux",
            "{}",
            "--dataset",
            "synthetic",
            "--helpers",
            "1",
        ],
    ];
    let values = [
        "nan",
        "inf",
        "-1",
        "0",
        "1e308",
        "18446744073709551616",
        "abc",
    ];
    let mut cases = Vec::new();
    for t in templates {
        for v in values {
            let args: Vec<String> = t.iter().map(|a| a.replace("{}", v)).collect();
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            cases.push(
                Case::new("options", args.join(" "), &refs, Expect::Either)
                    .file("fleet.toml", FLEET)
                    .file("a.csv", DEFEND_CSV),
            );
        }
    }
    cases
}

/// Nothing may be written outside the case's directory: a spec named `../../x` must stay
/// inside `runs/`.
fn stays_inside(dir: &Path) -> Result<(), String> {
    let outside = dir.parent().map(|p| p.join("escaped-x"));
    match outside {
        Some(p) if p.exists() => Err(format!(
            "wrote {} outside the working directory",
            p.display()
        )),
        _ => Ok(()),
    }
}

/// Every reproduction listed in issue #18 (files and options), expected to be refused.
pub fn reproductions() -> Vec<Case> {
    use Expect::Refused;
    let csv_header = DEFEND_CSV.lines().next().unwrap_or("");
    let mut nan_param = format!("{csv_header}\n");
    let mut huge_acc = format!("{csv_header}\n");
    for line in DEFEND_CSV.lines().skip(1).take(3) {
        let mut cols: Vec<String> = line.split(',').map(str::to_string).collect();
        let param_col = csv_header
            .split(',')
            .position(|c| c == "param")
            .unwrap_or(1);
        let acc_col = csv_header
            .split(',')
            .position(|c| c == "accuracy")
            .unwrap_or(2);
        let mut nan_cols = cols.clone();
        nan_cols[param_col] = "NaN".into();
        nan_param.push_str(&(nan_cols.join(",") + "\n"));
        cols[acc_col] = "1e308".into();
        huge_acc.push_str(&(cols.join(",") + "\n"));
    }
    huge_acc.push_str(
        &huge_acc
            .lines()
            .nth(1)
            .unwrap_or("")
            .replace("1e308", "-1e308"),
    );
    let big_gray = encode(gray(4000, 4000), image::ImageFormat::Png);
    let big_rgb = encode(rgb(3000, 3000), image::ImageFormat::Png);
    let small = encode(gray(28, 28), image::ImageFormat::Png);
    let spec = |body: &str| format!("name = \"hostile\"\ninput_shape = [1, 28, 28]\n{body}");
    let wide_conv = spec(
        "[[layers]]\nname = \"c\"\nop = \"conv2d\"\nin_channels = 1\nout_channels = 1048576\nkernel = 5\n",
    );
    let huge_linear = spec(
        "[[layers]]\nname = \"f\"\nop = \"flatten\"\n[[layers]]\nname = \"l\"\nop = \"linear\"\nin_features = 1048576\nout_features = 1048576\n",
    );
    let escaping = toml::to_string(&veil_spec::ModelSpec {
        name: "../../escaped-x".into(),
        ..veil_spec::zoo::lenet5()
    })
    .expect("toml");
    let repro = |name: &str, args: &[&str]| Case::new("repro", name, args, Refused);
    let mut cases = vec![
        repro(
            "defend chart: param NaN",
            &["defend", "chart", "--csv", "a.csv", "--png", "out/c.png"],
        )
        .file("a.csv", nan_param),
        repro(
            "defend chart: accuracies +-1e308",
            &["defend", "chart", "--csv", "a.csv", "--png", "out/c.png"],
        )
        .file("a.csv", huge_acc),
        repro(
            "simulate: models = []",
            &["simulate", "--config", "e.toml", "--out", "out"],
        )
        .file(
            "e.toml",
            EXPERIMENT.replace("models = [\"lenet5\"]", "models = []"),
        ),
        repro(
            "simulate: lambda 1e-300",
            &["simulate", "--config", "e.toml", "--out", "out"],
        )
        .file(
            "e.toml",
            EXPERIMENT.replace("lambda = 3.0", "lambda = 1e-300"),
        ),
        repro(
            "simulate: cameras 1e9",
            &["simulate", "--config", "e.toml", "--out", "out"],
        )
        .file("e.toml", format!("cameras = 1000000000\n{EXPERIMENT}")),
        repro(
            "fleet: period_s 1e-300",
            &[
                "plan", "--fleet", "f.toml", "--model", "lenet5", "--tau", "0.95",
            ],
        )
        .file(
            "f.toml",
            FLEET.replace("period_s = 1.0", "period_s = 1e-300"),
        ),
        repro(
            "compare: 16 KB PNG of 4000x4000",
            &["compare", "a.png", "b.png"],
        )
        .file("a.png", small.clone())
        .file("b.png", big_gray),
        repro(
            "compare: RGB PNG of 3000x3000",
            &["compare", "a.png", "b.png"],
        )
        .file("a.png", small.clone())
        .file("b.png", big_rgb.clone()),
        repro(
            "folder dataset: first image 3000x3000",
            &[
                "train",
                "--model",
                "lenet5",
                "--dataset",
                "folder:imgs",
                "--epochs",
                "1",
                "--out",
                "out",
            ],
        )
        .file("imgs/a/0.png", big_rgb)
        .file("imgs/a/1.png", small.clone())
        .file("imgs/b/0.png", small.clone())
        .file("imgs/b/1.png", small),
        repro(
            "spec: out_channels 2^20",
            &[
                "train",
                "--model",
                "s.toml",
                "--dataset",
                "synthetic",
                "--epochs",
                "1",
                "--out",
                "out",
            ],
        )
        .file("s.toml", wide_conv),
        repro(
            "spec: 2^20 x 2^20 linear",
            &[
                "train",
                "--model",
                "s.toml",
                "--dataset",
                "synthetic",
                "--epochs",
                "1",
                "--out",
                "out",
            ],
        )
        .file("s.toml", huge_linear),
        repro(
            "train --batch-size 1e9",
            &[
                "train",
                "--dataset",
                "synthetic",
                "--batch-size",
                "1000000000",
                "--out",
                "out",
            ],
        ),
        repro(
            "mpc bench --images 1e9",
            &["mpc", "bench", "--images", "1000000000"],
        ),
        repro(
            "bench --train-steps 100000 (cifar_cnn)",
            &["bench", "--model", "cifar_cnn", "--train-steps", "100000"],
        ),
        repro(
            "game --fleets 1e9",
            &["game", "--figure", "6", "--fleets", "1000000000"],
        ),
        repro(
            "plan: 10^6 helpers --exact",
            &[
                "plan", "--fleet", "f.toml", "--model", "lenet5", "--tau", "0.95", "--exact",
            ],
        )
        .file("f.toml", FLEET.replace("count = 6", "count = 1000000")),
        repro(
            "fleet memory_mb 2^44",
            &[
                "plan", "--fleet", "f.toml", "--model", "lenet5", "--tau", "0.95",
            ],
        )
        .file(
            "f.toml",
            FLEET.replace("memory_mb = 4096", "memory_mb = 17592186044416"),
        ),
        repro(
            "net bench --helpers 0 --kill h0",
            &["net", "bench", "--helpers", "0", "--kill", "h0"],
        ),
    ];
    let mut link = repro(
        "compare: .ppm linked to /dev/zero",
        &["compare", "a.ppm", "z.ppm"],
    )
    .file("a.ppm", ppm(8, 8));
    link.links.push(("z.ppm".into(), "/dev/zero".into()));
    cases.push(link);
    let mut escape = Case::new(
        "repro",
        "train: spec named ../../escaped-x",
        &[
            "train",
            "--model",
            "s.toml",
            "--dataset",
            "synthetic",
            "--epochs",
            "1",
        ],
        Expect::Either,
    )
    .file("s.toml", escaping);
    escape.after = Some(stays_inside);
    cases.push(escape);
    cases
}
