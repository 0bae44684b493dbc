//! Graph specs on the plaintext engine: residual adds, concatenation, batch normalisation and
//! depthwise convolutions run, split at cut points, train and round-trip through weight files.

use veil_model::{Model, NamedTensor, TrainConfig};
use veil_spec::{Layer, LayerKind, ModelSpec, Shape, zoo};

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

fn logits(model: &Model, x: &[f32]) -> Vec<f32> {
    model.logits(x).expect("logits")
}

fn conv(out: usize, k: usize, groups: usize) -> LayerKind {
    LayerKind::Conv2d {
        out_channels: out,
        kernel: [k, k],
        stride: [1, 1],
        padding: [k / 2, k / 2],
        groups,
    }
}

/// A residual network small enough to train in a test: a stem, one block whose second
/// convolution is added to the stem's output, a concatenation of the block with the stem, a
/// padded max pool and a classifier (no global average pool: the synthetic classes differ
/// only in where their square is).
fn tiny_residual() -> ModelSpec {
    let layers = vec![
        Layer::new("stem", conv(8, 3, 1)),
        Layer::new("stem_bn", LayerKind::BatchNorm2d { eps: 1e-5 }),
        Layer::new("stem_relu", LayerKind::Relu),
        Layer::new("a", conv(8, 3, 1)),
        Layer::new("a_bn", LayerKind::BatchNorm2d { eps: 1e-5 }),
        Layer::new("a_relu", LayerKind::Relu),
        Layer::new("b", conv(8, 3, 1)),
        Layer::reading("add", &["b", "stem_relu"], LayerKind::Add),
        Layer::new("add_relu", LayerKind::Relu),
        Layer::reading("cat", &["add_relu", "stem_relu"], LayerKind::Concat),
        Layer::new(
            "pool",
            LayerKind::MaxPool2d {
                kernel: [3, 3],
                stride: Some([2, 2]),
                padding: [1, 1],
            },
        ),
        Layer::new("flatten", LayerKind::Flatten),
        Layer::new("fc", LayerKind::Linear { out_features: 10 }),
    ];
    ModelSpec::new("tiny_residual", Shape::chw(1, 28, 28), layers).expect("valid")
}

#[test]
fn a_graph_split_at_any_cut_point_gives_the_whole_model() {
    for spec in [zoo::resnet8(43), zoo::mobilenet_tiny(43), tiny_residual()] {
        let model = Model::init(spec.clone(), 3).expect("init");
        let x = values(2 * spec.input_shape.numel(), 4);
        let whole = logits(&model, &x);
        assert!(whole.iter().all(|v| v.is_finite()));
        for cut in spec.cut_points().expect("cuts") {
            let name = &spec.layers[cut].name;
            let mid = model
                .forward_prefix(model.input(x.clone()).expect("in"), name)
                .expect("prefix");
            let out = model
                .forward_suffix(mid, name)
                .expect("suffix")
                .into_values()
                .expect("values");
            assert_eq!(out, whole, "{} split at {name}", spec.name);
        }
    }
}

#[test]
fn a_run_cannot_start_inside_a_residual_block() {
    let spec = zoo::resnet8(43);
    let model = Model::init(spec.clone(), 0).expect("init");
    let inside = spec.layer_index("b1_relu").expect("layer");
    let mid = model
        .forward_prefix(model.input(values(3 * 32 * 32, 1)).expect("in"), "b1_relu")
        .expect("prefix");
    let err = model
        .forward_range(mid, inside + 1..spec.layers.len())
        .expect_err("starts inside the block")
        .to_string();
    assert!(
        err.contains("b1_add") && err.contains("cut points"),
        "{err}"
    );
}

/// Batch normalisation at inference is `(x - mean) / sqrt(var + eps) * weight + bias` with the
/// stored statistics, and they survive a weight file.
#[test]
fn batch_norm_uses_its_running_statistics_and_round_trips() {
    let spec = tiny_residual();
    let model = Model::init(spec.clone(), 1).expect("init");
    let c = 8;
    let stats: Vec<NamedTensor> = model
        .named_tensors()
        .expect("tensors")
        .into_iter()
        .map(|mut t| {
            let v = |f: fn(usize) -> f32| (0..c).map(f).collect::<Vec<f32>>();
            match t.name.as_str() {
                "stem_bn.weight" => t.values = v(|i| 0.5 + i as f32 * 0.25),
                "stem_bn.bias" => t.values = v(|i| i as f32 * 0.1 - 0.3),
                "stem_bn.running_mean" => t.values = v(|i| i as f32 * 0.05),
                "stem_bn.running_var" => t.values = v(|i| 0.2 + i as f32),
                _ => {}
            }
            t
        })
        .collect();
    let model = model.with_tensors(stats).expect("with stats");
    let x = values(2 * 28 * 28, 7);
    let conv = model
        .forward_prefix(model.input(x.clone()).expect("in"), "stem")
        .expect("conv")
        .into_values()
        .expect("values");
    let bn = model
        .forward_prefix(model.input(x.clone()).expect("in"), "stem_bn")
        .expect("bn")
        .into_values()
        .expect("values");
    let plane = 28 * 28;
    for (i, (&got, &input)) in bn.iter().zip(&conv).enumerate() {
        let ch = (i / plane) % c;
        let (w, b, m, v) = (
            0.5 + ch as f32 * 0.25,
            ch as f32 * 0.1 - 0.3,
            ch as f32 * 0.05,
            0.2 + ch as f32,
        );
        let want = (input - m) / (v + 1e-5).sqrt() * w + b;
        assert!(
            (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
            "{i}: {got} vs {want}"
        );
    }
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("graph.safetensors");
    model.save(&path).expect("save");
    let back = Model::load(&path).expect("load");
    assert_eq!(back.spec(), model.spec());
    assert_eq!(logits(&back, &x), logits(&model, &x));
}

/// A depthwise convolution equals a full convolution whose weight is zero across channels.
#[test]
fn a_depthwise_convolution_is_a_block_diagonal_one() {
    let c = 4;
    let one = |groups| {
        ModelSpec::new(
            "dw",
            Shape::chw(c, 6, 6),
            vec![
                Layer::new("conv", conv(c, 3, groups)),
                Layer::new("flatten", LayerKind::Flatten),
            ],
        )
        .expect("valid")
    };
    let depthwise = Model::init(one(c), 2).expect("init");
    let tensors = depthwise.named_tensors().expect("tensors");
    let dw = &tensors[0];
    assert_eq!(dw.shape, vec![c, 1, 3, 3]);
    let mut full = vec![0.0f32; c * c * 9];
    for o in 0..c {
        full[(o * c + o) * 9..(o * c + o + 1) * 9].copy_from_slice(&dw.values[o * 9..(o + 1) * 9]);
    }
    let dense = Model::init(one(1), 0)
        .expect("init")
        .with_tensors(vec![
            NamedTensor {
                name: "conv.weight".into(),
                shape: vec![c, c, 3, 3],
                values: full,
            },
            tensors[1].clone(),
        ])
        .expect("weights");
    let x = values(3 * c * 36, 5);
    let (a, b) = (logits(&depthwise, &x), logits(&dense, &x));
    let worst = a
        .iter()
        .zip(&b)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f32::max);
    assert!(worst <= 1e-5, "{worst}");
}

#[test]
fn a_graph_model_trains_and_its_running_statistics_move() {
    let split = veil_data::synthetic::mnist_like(1024, 11);
    let cfg = TrainConfig {
        epochs: 3,
        batch_size: 32,
        seed: 2,
        ..TrainConfig::default()
    };
    let model = Model::init(tiny_residual(), cfg.seed).expect("init");
    let before = model.named_tensors().expect("tensors");
    let (trained, report) =
        veil_model::train(model, &split.train, Some(&split.test), &cfg, &mut |_| {})
            .expect("train");
    let acc = report
        .epochs
        .last()
        .and_then(|e| e.test_accuracy)
        .expect("accuracy");
    assert!(acc > 0.8, "synthetic accuracy {acc}");
    let after = trained.named_tensors().expect("tensors");
    let var = |ts: &[NamedTensor]| {
        ts.iter()
            .find(|t| t.name == "a_bn.running_var")
            .expect("stats")
            .values
            .clone()
    };
    assert_ne!(
        var(&before),
        var(&after),
        "training updates the running variance"
    );
    assert_eq!(trained.evaluate(&split.test).expect("eval"), acc);
}

/// Folding batch normalisation into the convolutions (`veil_spec::fold`) keeps the function:
/// resnet8 with random running statistics gives the same logits before and after, within
/// f32 rounding.
#[test]
fn folded_batch_norm_gives_the_same_logits() {
    // resnet8 (residual adds, projection shortcuts) and mobilenet_tiny (depthwise groups).
    for (spec, folds) in [(zoo::resnet8(43), 9), (zoo::mobilenet_tiny(43), 9)] {
        check_fold(spec, folds);
    }
}

fn check_fold(spec: ModelSpec, folds: usize) {
    let model = Model::init(spec.clone(), 6).expect("init");
    let mut k = 0u64;
    let stats: Vec<NamedTensor> = model
        .named_tensors()
        .expect("tensors")
        .into_iter()
        .map(|mut t| {
            if t.name.contains("_bn.") {
                k += 1;
                let r = values(t.values.len(), k);
                t.values = match t.name.rsplit('.').next() {
                    Some("running_var") => r.iter().map(|v| 0.2 + v).collect(),
                    Some("weight") => r.iter().map(|v| 0.5 + v).collect(),
                    _ => r.iter().map(|v| v - 0.5).collect(),
                };
            }
            t
        })
        .collect();
    let model = model.with_tensors(stats).expect("statistics");
    let (folded_spec, folded, count) =
        veil_spec::fold::fold_batch_norm(&spec, &model.host_tensors().expect("host"))
            .expect("fold");
    assert_eq!(count, folds, "{}", spec.name);
    let tensors = folded
        .into_iter()
        .map(|(name, (shape, values))| NamedTensor {
            name,
            shape,
            values,
        })
        .collect();
    let folded_model = Model::init(folded_spec, 0)
        .expect("init")
        .with_tensors(tensors)
        .expect("folded weights");
    let x = values(4 * 3 * 32 * 32, 8);
    let (a, b) = (logits(&model, &x), logits(&folded_model, &x));
    let worst = a
        .iter()
        .zip(&b)
        .map(|(p, q)| (p - q).abs() / (1.0 + p.abs()))
        .fold(0.0, f32::max);
    assert!(worst <= 1e-4, "{}: {worst}", spec.name);
}

/// A frozen batch normalisation keeps its running statistics through training (it runs on
/// them, not on batch statistics), while an unfrozen one's move.
#[test]
fn frozen_batch_norm_keeps_its_running_statistics() {
    let split = veil_data::synthetic::mnist_like(256, 4);
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: 32,
        seed: 1,
        frozen: vec!["stem".into(), "stem_bn".into()],
        ..TrainConfig::default()
    };
    let model = Model::init(tiny_residual(), 3).expect("init");
    let before = model.named_tensors().expect("tensors");
    let (trained, _) =
        veil_model::train(model, &split.train, None, &cfg, &mut |_| {}).expect("train");
    let after = trained.named_tensors().expect("tensors");
    let get = |ts: &[NamedTensor], name: &str| {
        ts.iter()
            .find(|t| t.name == name)
            .expect("tensor")
            .values
            .clone()
    };
    for name in [
        "stem_bn.running_mean",
        "stem_bn.running_var",
        "stem_bn.weight",
        "stem.weight",
    ] {
        assert_eq!(get(&before, name), get(&after, name), "{name} frozen");
    }
    assert_ne!(
        get(&before, "a_bn.running_var"),
        get(&after, "a_bn.running_var")
    );
}

/// Feature matching (the white-box attack's engine) through a batch normalisation whose
/// running statistics are far from any batch's: the matched images' features, run in
/// inference mode, reach the targets (within 1 % of their spread).
#[test]
fn feature_matching_runs_batch_norm_on_its_running_statistics() {
    let model = Model::init(tiny_residual(), 5).expect("init");
    let stats: Vec<NamedTensor> = model
        .named_tensors()
        .expect("tensors")
        .into_iter()
        .map(|mut t| {
            match t.name.as_str() {
                "stem_bn.running_mean" => t.values.iter_mut().for_each(|v| *v = -3.0),
                "stem_bn.running_var" => t.values.iter_mut().for_each(|v| *v = 1.0),
                _ => {}
            }
            t
        })
        .collect();
    let model = model.with_tensors(stats).expect("statistics");
    let x = values(4 * 28 * 28, 9);
    let features = |images: &[f32]| {
        model
            .forward_prefix(model.input(images.to_vec()).expect("in"), "stem_bn")
            .expect("prefix")
            .into_values()
            .expect("values")
    };
    let target = features(&x);
    let split_end = model.spec().layer_index("stem_bn").expect("layer") + 1;
    let cfg = veil_model::inversion::MatchConfig {
        steps: 300,
        lr: 0.05,
        tv_weight: 0.0,
        batch: 4,
    };
    let mask = vec![1.0; target.len()];
    let found = veil_model::inversion::match_features(
        &model,
        split_end,
        &target,
        &mask,
        &cfg,
        &mut |_, _| {},
    )
    .expect("match");
    let got = features(&found);
    let mse = |a: &[f32], b: &[f32]| {
        a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum::<f32>() / a.len() as f32
    };
    let spread = mse(&target, &vec![0.0; target.len()]);
    let miss = mse(&got, &target);
    assert!(
        miss < 0.01 * spread,
        "feature error {miss} against a spread of {spread}"
    );
}
