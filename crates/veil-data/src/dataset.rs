//! [`Dataset`] and [`Split`]: samples as one contiguous `f32` buffer plus labels.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// A labelled set of samples of one shape.
///
/// Invariants: `samples.len() == labels.len() * shape.iter().product()`, every label is
/// `< classes`. Image datasets hold values in `[0, 1]`; tabular datasets hold standardised or
/// ordinal-encoded features (documented by their loader).
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Human-readable name (`mnist/train`).
    pub name: String,
    /// `[c, h, w]` of one sample.
    pub shape: [usize; 3],
    /// Number of classes.
    pub classes: usize,
    /// Sample values, sample-major then channel, row, column.
    pub samples: Vec<f32>,
    /// One label per sample.
    pub labels: Vec<u32>,
}

/// A train/test pair of the same dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    /// Training part.
    pub train: Dataset,
    /// Test part (never used for training).
    pub test: Dataset,
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Scalars per sample.
    pub fn sample_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The values of sample `i`.
    pub fn sample(&self, i: usize) -> &[f32] {
        let n = self.sample_len();
        &self.samples[i * n..(i + 1) * n]
    }

    /// A new dataset holding the samples at `indices`, in that order.
    pub fn select(&self, indices: &[usize], name: impl Into<String>) -> Dataset {
        let mut samples = Vec::with_capacity(indices.len() * self.sample_len());
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            samples.extend_from_slice(self.sample(i));
            labels.push(self.labels[i]);
        }
        Dataset {
            name: name.into(),
            shape: self.shape,
            classes: self.classes,
            samples,
            labels,
        }
    }

    /// The first `n` samples (or all of them if there are fewer).
    pub fn take(&self, n: usize) -> Dataset {
        let idx: Vec<usize> = (0..n.min(self.len())).collect();
        self.select(&idx, self.name.clone())
    }

    /// Splits into `(first, rest)` after a seeded shuffle, with `fraction` of the samples in
    /// the first part.
    pub fn shuffled_split(&self, fraction: f64, seed: u64) -> (Dataset, Dataset) {
        let mut idx: Vec<usize> = (0..self.len()).collect();
        idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let cut = ((self.len() as f64) * fraction).round() as usize;
        (
            self.select(&idx[..cut], format!("{}/a", self.name)),
            self.select(&idx[cut..], format!("{}/b", self.name)),
        )
    }

    /// Count of samples per class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(l as usize) {
                *c += 1;
            }
        }
        counts
    }
}
