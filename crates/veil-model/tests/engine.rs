//! Integration tests of the plaintext engine: split execution, partial sums, weight files,
//! training on synthetic data and rejection of malformed inputs.

use burn::tensor::{Tensor, TensorData};
use proptest::prelude::*;
use veil_model::partial::{add_bias, conv_partial_sums};
use veil_model::{Activation, Model, TrainConfig};
use veil_spec::zoo;

fn values(n: usize, seed: u64) -> Vec<f32> {
    // Deterministic values in [0, 1) from a 64-bit LCG.
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn prefix_then_suffix_equals_the_whole_model() {
    let model = Model::init(zoo::lenet5(), 1).expect("init");
    let x = values(3 * 784, 2);
    let full = model
        .forward(model.input(x.clone()).expect("in"))
        .expect("fwd")
        .into_values()
        .expect("values");
    for split in ["conv1", "relu2", "pool2", "fc1"] {
        let mid = model
            .forward_prefix(model.input(x.clone()).expect("in"), split)
            .expect("prefix");
        let out = model
            .forward_suffix(mid, split)
            .expect("suffix")
            .into_values()
            .expect("values");
        assert!(max_abs_diff(&full, &out) == 0.0, "split at {split}");
    }
}

/// Sums of the partial sums over a partition of the input channels, plus bias, equal the
/// layer's output. Tolerance 1e-4: f32 re-association of at most 64 * 9 products of values
/// below ~10.
fn check_partition(model_name: &str, layer: &str, cuts: &[usize], seed: u64) {
    let model = Model::init(zoo::model(model_name).expect("zoo"), seed).expect("init");
    let index = model.spec().layer_index(layer).expect("layer");
    let input = model
        .input(values(2 * model.spec().input_shape.numel(), seed + 7))
        .expect("in");
    let before = model.forward_range(input, 0..index).expect("prefix");
    let Activation::Maps(maps) = before.clone() else {
        panic!("conv input must be maps")
    };
    let full = model
        .forward_range(before, index..index + 1)
        .expect("layer")
        .into_values()
        .expect("values");
    let in_c = maps.dims()[1];
    let mut bounds = vec![0];
    bounds.extend(cuts.iter().copied().filter(|&c| c > 0 && c < in_c));
    bounds.push(in_c);
    bounds.dedup();
    let mut sum: Option<Tensor<4>> = None;
    for w in bounds.windows(2) {
        let part = maps.clone().narrow(1, w[0], w[1] - w[0]);
        let ps = conv_partial_sums(&model, layer, part, w[0]..w[1]).expect("partial");
        sum = Some(match sum {
            Some(s) => s + ps,
            None => ps,
        });
    }
    let total = add_bias(&model, layer, sum.expect("parts")).expect("bias");
    let got = Activation::Maps(total).into_values().expect("values");
    assert!(
        max_abs_diff(&full, &got) < 1e-4,
        "{model_name}/{layer} cuts {cuts:?}"
    );
}

#[test]
fn partial_sums_add_up_to_the_full_layer() {
    check_partition("lenet5", "conv2", &[1, 2, 3, 4, 5], 3);
    check_partition("lenet5", "conv1", &[], 4);
    check_partition("cifar_cnn", "conv12", &[10, 40], 5);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn partial_sums_add_up_for_any_partition(cuts in proptest::collection::vec(1usize..64, 0..6), seed in 0u64..1000) {
        let mut cuts = cuts;
        cuts.sort_unstable();
        check_partition("gtsrb_cnn", "conv2", &cuts, seed);
    }
}

#[test]
fn partial_sums_reject_bad_requests() {
    let model = Model::init(zoo::lenet5(), 0).expect("init");
    let dev = model.device().clone();
    let x = Tensor::<4>::from_data(
        TensorData::new(vec![0.0f32; 2 * 14 * 14], [1, 2, 14, 14]),
        &dev,
    );
    assert!(conv_partial_sums(&model, "fc1", x.clone(), 0..2).is_err());
    assert!(conv_partial_sums(&model, "conv2", x.clone(), 0..3).is_err());
    assert!(conv_partial_sums(&model, "conv2", x.clone(), 5..7).is_err());
    assert!(conv_partial_sums(&model, "conv2", x, 4..6).is_ok());
}

#[test]
fn weights_round_trip_through_safetensors() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("m.safetensors");
    for name in ["lenet5", "obfnet2", "wearable_c"] {
        let model = Model::init(zoo::model(name).expect("zoo"), 9).expect("init");
        model.save(&path).expect("save");
        let back = Model::load(&path).expect("load");
        assert_eq!(back.spec(), model.spec());
        assert_eq!(
            back.named_tensors().expect("tensors"),
            model.named_tensors().expect("tensors")
        );
        let x = values(2 * model.spec().input_shape.numel(), 1);
        let a = model
            .forward(model.input(x.clone()).expect("in"))
            .expect("fwd")
            .into_values()
            .expect("values");
        let b = back
            .forward(back.input(x).expect("in"))
            .expect("fwd")
            .into_values()
            .expect("values");
        assert_eq!(a, b, "{name}");
    }
    // Linear weights are stored [out, in] (PyTorch order).
    let model = Model::load(&path).expect("load");
    let fc1 = model
        .named_tensors()
        .expect("tensors")
        .into_iter()
        .find(|t| t.name == "fc1.weight")
        .expect("fc1");
    assert_eq!(fc1.shape, vec![32, 7 * 16]);
}

#[test]
fn malformed_weight_files_are_errors() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("m.safetensors");
    std::fs::write(&path, b"garbage").expect("write");
    assert!(Model::load(&path).is_err());
    let model = Model::init(zoo::lenet5(), 0).expect("init");
    model.save(&path).expect("save");
    let bytes = std::fs::read(&path).expect("read");
    std::fs::write(&path, &bytes[..bytes.len() - 100]).expect("truncate");
    let err = Model::load(&path).expect_err("truncated").to_string();
    assert!(err.contains("m.safetensors"), "{err}");
    assert!(Model::load(&dir.path().join("missing")).is_err());
}

#[test]
fn wrong_input_shapes_are_errors_not_panics() {
    let model = Model::init(zoo::lenet5(), 0).expect("init");
    assert!(model.input(vec![0.0; 100]).is_err());
    let x = model.input(vec![0.0; 784]).expect("in");
    assert!(model.forward_range(x, 3..5).is_err());
    let x = model.input(vec![0.0; 784]).expect("in");
    assert!(model.forward_range(x, 0..99).is_err());
}

#[test]
fn training_learns_the_synthetic_task_and_is_deterministic() {
    let split = veil_data::synthetic::mnist_like(1280, 3);
    let cfg = TrainConfig {
        epochs: 3,
        batch_size: 32,
        seed: 5,
        ..TrainConfig::default()
    };
    // Two things could break bitwise reproducibility here: the device RNG is shared by every
    // test thread (Model::init now seeds and draws under one lock; before, this test failed
    // about 1 run in 5 when other tests initialised models at the same time), and rayon's
    // adaptive splitting may reorder float sums. A private single-thread pool rules out the
    // second, so the assertion below tests the seeding alone.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let run = || {
        pool.install(|| {
            let model = Model::init(zoo::lenet5(), cfg.seed).expect("init");
            veil_model::train(model, &split.train, Some(&split.test), &cfg, &mut |_| {})
                .expect("train")
        })
    };
    let (model, report) = run();
    let acc = report
        .epochs
        .last()
        .and_then(|e| e.test_accuracy)
        .expect("acc");
    assert!(acc > 0.9, "synthetic accuracy {acc}");
    assert_eq!(model.evaluate(&split.test).expect("eval"), acc);
    let (again, _) = run();
    assert_eq!(
        again.named_tensors().expect("tensors"),
        model.named_tensors().expect("tensors"),
        "same seed, same weights"
    );
    let rejected = |c: TrainConfig| {
        let m = Model::init(zoo::lenet5(), 0).expect("init");
        veil_model::train(m, &split.train, None, &c, &mut |_| {}).is_err()
    };
    assert!(rejected(TrainConfig {
        lr: f64::NAN,
        ..cfg.clone()
    }));
    assert!(rejected(TrainConfig {
        lr: -1.0,
        ..cfg.clone()
    }));
    assert!(rejected(TrainConfig {
        epochs: 0,
        ..cfg.clone()
    }));
    let aug = |max_shift, jitter| Some(veil_model::Augment { max_shift, jitter });
    assert!(rejected(TrainConfig {
        augment: aug(0, f32::INFINITY),
        ..cfg.clone()
    }));
    assert!(rejected(TrainConfig {
        augment: aug(28, 0.0),
        ..cfg.clone()
    }));
}

#[test]
fn dataset_shape_mismatch_is_reported() {
    let model = Model::init(zoo::model("gtsrb_cnn").expect("zoo"), 0).expect("init");
    let split = veil_data::synthetic::mnist_like(40, 0);
    let err = model.evaluate(&split.test).expect_err("shape").to_string();
    assert!(err.contains("gtsrb_cnn"), "{err}");
}

/// What an owner of output maps receives, per sender group, adds up (with the bias) to those
/// output maps of the full layer. Tolerance as in `check_partition`.
#[test]
fn host_partial_sums_per_group_add_up_to_the_owned_maps() {
    let model = Model::init(zoo::lenet5(), 9).expect("init");
    let index = model.spec().layer_index("conv2").expect("layer");
    let input = model
        .input(values(3 * model.spec().input_shape.numel(), 21))
        .expect("in");
    let before = model.forward_range(input, 0..index).expect("prefix");
    let full = model
        .forward_range(before.clone(), index..index + 1)
        .expect("layer")
        .into_values()
        .expect("values");
    let inputs = before.into_values().expect("inputs");
    let groups = [0..2, 2..5, 5..6];
    let owned = 3..7;
    let got =
        veil_model::partial::partial_sums_values(&model, "conv2", &inputs, &groups, owned.clone())
            .expect("partial sums");
    let (plane, out_c) = (10 * 10, 16);
    assert_eq!(got.len(), 3 * groups.len() * owned.len() * plane);
    let bias = model
        .named_tensors()
        .expect("tensors")
        .into_iter()
        .find(|t| t.name == "conv2.bias")
        .expect("bias")
        .values;
    for b in 0..3 {
        for (j, q) in owned.clone().enumerate() {
            for i in 0..plane {
                let sum: f32 = (0..groups.len())
                    .map(|g| {
                        got[b * groups.len() * owned.len() * plane
                            + (g * owned.len() + j) * plane
                            + i]
                    })
                    .sum();
                let want = full[b * out_c * plane + q * plane + i];
                assert!(
                    (sum + bias[q] - want).abs() < 1e-4,
                    "sample {b} map {q} pixel {i}"
                );
            }
        }
    }
    assert!(
        veil_model::partial::partial_sums_values(
            &model,
            "conv2",
            &inputs,
            std::slice::from_ref(&(0..7)),
            0..1
        )
        .is_err()
    );
    assert!(
        veil_model::partial::partial_sums_values(
            &model,
            "conv2",
            &inputs,
            std::slice::from_ref(&(0..6)),
            0..17
        )
        .is_err()
    );
    assert!(
        veil_model::partial::partial_sums_values(
            &model,
            "conv2",
            &inputs[1..],
            std::slice::from_ref(&(0..6)),
            0..1
        )
        .is_err()
    );
}

/// `with_tensors` rebuilds the same model from its own tensors and refuses wrong ones.
#[test]
fn with_tensors_round_trips_and_checks_shapes() {
    let model = Model::init(zoo::lenet5(), 11).expect("init");
    let tensors = model.named_tensors().expect("tensors");
    let copy = model.with_tensors(tensors.clone()).expect("copy");
    let x = values(2 * 784, 3);
    let a = model
        .forward(model.input(x.clone()).expect("in"))
        .expect("a")
        .into_values()
        .expect("a");
    let b = copy
        .forward(copy.input(x).expect("in"))
        .expect("b")
        .into_values()
        .expect("b");
    assert_eq!(a, b);
    let mut missing = tensors.clone();
    missing.pop();
    assert!(model.with_tensors(missing).is_err());
    let mut wrong = tensors;
    wrong[0].shape = vec![1, 2, 3];
    assert!(model.with_tensors(wrong).is_err());
}

/// Frozen layers keep their parameters through training; the others move.
#[test]
fn frozen_layers_do_not_change() {
    let split = veil_data::synthetic::mnist_like(256, 4);
    let model = Model::init(zoo::lenet5(), 1).expect("init");
    let before = model.named_tensors().expect("tensors");
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: 32,
        frozen: vec!["conv1".into(), "fc3".into()],
        ..TrainConfig::default()
    };
    let (trained, _) =
        veil_model::train(model.clone(), &split.train, None, &cfg, &mut |_| {}).expect("train");
    for (a, b) in before.iter().zip(trained.named_tensors().expect("tensors")) {
        let frozen = a.name.starts_with("conv1.") || a.name.starts_with("fc3.");
        assert_eq!(a.values == b.values, frozen, "{}", a.name);
    }
    let bad = TrainConfig {
        frozen: vec!["nope".into()],
        ..cfg
    };
    assert!(veil_model::train(model, &split.train, None, &bad, &mut |_| {}).is_err());
}

#[test]
fn a_benchmark_whose_inputs_would_pass_a_gigabyte_is_refused() {
    // 100,000 steps of 64 CIFAR images: 78 GB of generated inputs before the first step.
    let cfg = veil_model::bench::BenchConfig {
        train_steps: 100_000,
        ..veil_model::bench::BenchConfig::default()
    };
    let err = veil_model::bench::bench(&zoo::cifar_cnn(10), &cfg, 1, None).expect_err("too large");
    assert!(err.to_string().contains("MiB"), "{err}");
}
