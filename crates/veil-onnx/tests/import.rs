//! Imported PyTorch exports give PyTorch's logits on real MNIST test images (golden values
//! written by `tools/onnx_fixtures.py` with torch 2.1.2, in `tests/fixtures/*.logits.json`),
//! through veil's own weight file and engine; veil's LeNet-5 comes back as the zoo's spec.

mod common;

use common::{fixture, mnist_test_images};

/// Imports `name`, writes it as a veil weight file, loads it into the engine and compares its
/// logits with PyTorch's.
fn check_against_torch(name: &str) -> veil_onnx::Imported {
    let imported = veil_onnx::import_file(&fixture(&format!("{name}.onnx"))).expect("import");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("model.safetensors");
    veil_spec::weights::write_file(&path, &imported.spec, &imported.tensors).expect("write");
    let model = veil_model::Model::load(&path).expect("the engine loads the imported weights");
    let golden: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixture(&format!("{name}.logits.json"))).expect("golden"),
    )
    .expect("json");
    let want: Vec<Vec<f64>> = serde_json::from_value(golden["logits"].clone()).expect("logits");
    let got = model
        .logits(&mnist_test_images(want.len()))
        .expect("logits");
    let classes = want[0].len();
    let mut worst = 0.0f64;
    for (s, row) in want.iter().enumerate() {
        for (c, &w) in row.iter().enumerate() {
            let g = f64::from(got[s * classes + c]);
            let err = (g - w).abs() / (1.0 + w.abs());
            worst = worst.max(err);
            assert!(
                err <= 1e-4,
                "{name}: sample {s} class {c}: veil {g} against PyTorch {w}"
            );
        }
    }
    eprintln!(
        "{name}: worst relative difference {worst:.2e} over {} samples",
        want.len()
    );
    imported
}

#[test]
fn veil_lenet5_round_trips_through_pytorch_onnx() {
    let imported = check_against_torch("lenet5-veil-opset13");
    let zoo = veil_spec::zoo::lenet5();
    assert_eq!(imported.spec.input_shape, zoo.input_shape);
    assert_eq!(
        imported.spec.layers, zoo.layers,
        "the same layers, names included"
    );
    assert_eq!(imported.opset, 13);
}

#[test]
fn pytorch_sequential_at_opset_11_and_17() {
    for name in ["torch-seq-opset11", "torch-seq-opset17"] {
        let imported = check_against_torch(name);
        let ops: Vec<&str> = imported
            .spec
            .layers
            .iter()
            .map(|l| l.kind.op_name())
            .collect();
        assert_eq!(
            ops,
            [
                "conv2d",
                "relu",
                "maxpool2d",
                "conv2d",
                "relu",
                "avgpool2d",
                "flatten",
                "linear",
                "relu",
                "linear"
            ]
        );
        assert_eq!(
            imported.dropped.len(),
            1,
            "the final softmax: {:?}",
            imported.dropped
        );
        assert!(imported.dropped[0].ends_with("(Softmax)"));
    }
}

#[test]
fn coverage_lists_every_node() {
    let bytes = std::fs::read(fixture("torch-seq-opset17.onnx")).expect("fixture");
    let nodes = veil_onnx::coverage(&bytes).expect("coverage");
    assert_eq!(nodes.len(), 11);
    assert!(nodes.iter().all(|n| n.problem.is_none()), "{nodes:?}");
}

/// A PyTorch ResNet with BatchNormalization nodes, residual adds, a projection shortcut, a
/// padded max pool and global average pooling imports as a graph spec with PyTorch's logits.
#[test]
fn pytorch_resnet_imports_as_a_graph() {
    let imported = check_against_torch("torch-resnet-opset13");
    let spec = &imported.spec;
    assert!(!spec.is_chain());
    let count = |op: &str| {
        spec.layers
            .iter()
            .filter(|l| l.kind.op_name() == op)
            .count()
    };
    assert_eq!(count("batch_norm2d"), 6);
    assert_eq!(count("add"), 2);
    assert_eq!(count("global_avg_pool2d"), 1);
    let adds: Vec<&veil_spec::Layer> = spec
        .layers
        .iter()
        .filter(|l| l.kind.op_name() == "add")
        .collect();
    assert!(adds.iter().all(|l| l.inputs.len() == 2), "{adds:?}");
    // The block outputs are split points, the layers inside a block are not.
    let cuts = spec.cut_points().expect("cuts");
    let add = spec.layer_index(&adds[0].name).expect("add");
    assert!(cuts.contains(&(add + 1)) && !cuts.contains(&(add - 1)));
    assert!(spec.layers.iter().any(|l| matches!(
        l.kind,
        veil_spec::LayerKind::MaxPool2d {
            padding: [1, 1],
            ..
        }
    )));
}

/// Depthwise convolutions (folded batch normalisation), ReLU6, a sigmoid branch joined by a
/// concatenation, and a padded average pool that counts its padding.
#[test]
fn pytorch_mobilenet_imports_with_depthwise_convolutions() {
    let imported = check_against_torch("torch-mobile-opset17");
    let spec = &imported.spec;
    let groups: Vec<usize> = spec
        .layers
        .iter()
        .filter_map(|l| match l.kind {
            veil_spec::LayerKind::Conv2d { groups, .. } if groups > 1 => Some(groups),
            _ => None,
        })
        .collect();
    assert_eq!(groups, [8, 24]);
    let ops: Vec<&str> = spec.layers.iter().map(|l| l.kind.op_name()).collect();
    for op in [
        "clip",
        "sigmoid",
        "concat",
        "avgpool2d",
        "global_avg_pool2d",
    ] {
        assert!(ops.contains(&op), "{op} in {ops:?}");
    }
    assert!(spec.layers.iter().any(|l| matches!(
        l.kind,
        veil_spec::LayerKind::AvgPool2d {
            count_include_pad: true,
            ..
        }
    )));
}
