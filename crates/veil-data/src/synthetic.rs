//! A small synthetic image dataset generated in code, so unit tests need no files.
//!
//! Class `k` of `classes` draws a bright 6x6 square whose position depends on `k`, on a dim
//! noisy background; a small CNN separates the classes within one epoch.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{Dataset, Split};

/// `n` samples of shape `[channels, side, side]` with `classes` classes, seeded.
///
/// Requires `side >= 8` and `classes >= 1`.
pub fn generate(n: usize, channels: usize, side: usize, classes: usize, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let plane = side * side;
    let mut samples = Vec::with_capacity(n * channels * plane);
    let mut labels = Vec::with_capacity(n);
    let grid = (classes as f64).sqrt().ceil() as usize;
    let cell = (side - 6) / grid.max(1);
    for i in 0..n {
        let label = (i % classes) as u32;
        let (gy, gx) = (label as usize / grid, label as usize % grid);
        let (y0, x0) = (gy * cell, gx * cell);
        for _ in 0..channels {
            for y in 0..side {
                for x in 0..side {
                    let inside = (y0..y0 + 6).contains(&y) && (x0..x0 + 6).contains(&x);
                    let base = if inside { 0.8 } else { 0.1 };
                    samples.push((base + rng.random_range(-0.1..0.1f32)).clamp(0.0, 1.0));
                }
            }
        }
        labels.push(label);
    }
    Dataset {
        name: "synthetic".into(),
        shape: [channels, side, side],
        classes,
        samples,
        labels,
    }
}

/// A train/test split of the synthetic data: 1x28x28, 10 classes, `n_train` + `n_train / 4`.
pub fn mnist_like(n_train: usize, seed: u64) -> Split {
    let train = generate(n_train, 1, 28, 10, seed);
    let test = generate(n_train / 4, 1, 28, 10, seed.wrapping_add(1));
    Split {
        train: Dataset {
            name: "synthetic/train".into(),
            ..train
        },
        test: Dataset {
            name: "synthetic/test".into(),
            ..test
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_data_is_deterministic_and_balanced() {
        let a = generate(40, 1, 28, 10, 7);
        assert_eq!(a, generate(40, 1, 28, 10, 7));
        assert_ne!(a.samples, generate(40, 1, 28, 10, 8).samples);
        assert_eq!(a.class_counts(), vec![4; 10]);
        assert!(a.samples.iter().all(|v| (0.0..=1.0).contains(v)));
    }
}
