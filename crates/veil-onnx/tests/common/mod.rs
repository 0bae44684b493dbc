//! Helpers shared by veil-onnx's integration tests: the fixture files and the real MNIST test
//! images they are checked on.

use std::path::{Path, PathBuf};

/// The fixture file `name` (in `tests/fixtures`).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The first `n` MNIST test images, as the fixtures' script read them.
pub fn mnist_test_images(n: usize) -> Vec<f32> {
    let (_, split) = veil_data::load_named("mnist", None)
        .expect("MNIST (set VEIL_DATA to the shared data directory, as .ci/run does)");
    split.test.take(n).samples
}
