//! Parity with a reference ONNX runtime, in CI and without Python: every fixture, imported by
//! veil and run by veil's engine, gives the outputs that tract-onnx (a dev-dependency) computes
//! from the same file, within a relative 1e-4 (`|veil - tract| / (1 + |tract|)`), on the first
//! 16 real MNIST test images. A graph that ends in a softmax, which import drops (veil works on
//! logits), is compared after a softmax of veil's logits.

mod common;

use std::path::{Path, PathBuf};

use common::{fixture, mnist_test_images};

use tract_onnx::prelude::*;

/// Test images per fixture.
const IMAGES: usize = 16;

/// tract's outputs for each image, one at a time (batch 1).
fn tract_outputs(path: &Path, images: &[f32]) -> Vec<Vec<f32>> {
    let model = tract_onnx::onnx()
        .model_for_path(path)
        .expect("tract reads the fixture")
        .with_input_fact(0, f32::fact([1, 1, 28, 28]).into())
        .expect("input fact")
        .into_optimized()
        .expect("tract optimizes it")
        .into_runnable()
        .expect("tract plans it");
    images
        .chunks_exact(28 * 28)
        .map(|img| {
            let input: Tensor = tract_ndarray::Array4::from_shape_vec((1, 1, 28, 28), img.to_vec())
                .expect("shape")
                .into();
            let out = model.run(tvec!(input.into())).expect("tract runs");
            out[0]
                .to_array_view::<f32>()
                .expect("f32 output")
                .iter()
                .copied()
                .collect()
        })
        .collect()
}

/// veil's outputs: import, write veil's weight file, load it into the engine, run.
fn veil_outputs(path: &Path, images: &[f32]) -> (Vec<Vec<f32>>, bool) {
    let imported = veil_onnx::import_file(path).expect("import");
    let dir = tempfile::tempdir().expect("tempdir");
    let weights = dir.path().join("model.safetensors");
    veil_spec::weights::write_file(&weights, &imported.spec, &imported.tensors).expect("write");
    let model = veil_model::Model::load(&weights).expect("the engine loads the imported weights");
    let logits = model.logits(images).expect("logits");
    let classes = logits.len() / (images.len() / (28 * 28));
    let softmax = imported.dropped.iter().any(|d| d.ends_with("(Softmax)"));
    assert!(
        !imported.dropped.iter().any(|d| d.ends_with("(LogSoftmax)")),
        "a fixture ending in LogSoftmax needs a log-softmax here"
    );
    let rows = logits
        .chunks_exact(classes)
        .map(|row| {
            if softmax {
                softmax_of(row)
            } else {
                row.to_vec()
            }
        })
        .collect();
    (rows, softmax)
}

fn softmax_of(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f64> = row.iter().map(|&v| f64::from(v - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.iter().map(|&e| (e / sum) as f32).collect()
}

#[test]
fn every_fixture_agrees_with_tract_on_real_images() {
    let images = mnist_test_images(IMAGES);
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(fixture(""))
        .expect("fixtures")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 3, "{fixtures:?}");
    for path in fixtures {
        let name = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let want = tract_outputs(&path, &images);
        let (got, softmax) = veil_outputs(&path, &images);
        assert_eq!(got.len(), want.len(), "{name}");
        let mut worst = 0.0f64;
        for (s, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.len(), w.len(), "{name}: sample {s}");
            for (c, (&g, &w)) in g.iter().zip(w).enumerate() {
                let err = f64::from((g - w).abs()) / (1.0 + f64::from(w.abs()));
                worst = worst.max(err);
                assert!(
                    err <= 1e-4,
                    "{name}: sample {s} output {c}: veil {g} against tract {w}"
                );
            }
        }
        eprintln!(
            "{name}: worst relative difference to tract {worst:.2e} over {IMAGES} images{}",
            if softmax { " (after softmax)" } else { "" }
        );
    }
}
