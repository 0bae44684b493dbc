//! [`Shape`]: the shape of one activation, without the batch dimension.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Largest number of scalars in one sample's activation (2^31).
pub const MAX_NUMEL: usize = 1 << 31;

/// Shape of one sample's activation: `[channels, height, width]` for feature maps or
/// `[features]` for flat vectors. The batch dimension is never included.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Shape(pub Vec<usize>);

impl Shape {
    /// A `[c, h, w]` feature-map shape.
    pub fn chw(c: usize, h: usize, w: usize) -> Self {
        Shape(vec![c, h, w])
    }

    /// A flat `[n]` shape.
    pub fn flat(n: usize) -> Self {
        Shape(vec![n])
    }

    /// Number of scalars in one sample.
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// `(c, h, w)` when the shape is a feature map.
    pub fn as_chw(&self) -> Option<(usize, usize, usize)> {
        match self.0.as_slice() {
            &[c, h, w] => Some((c, h, w)),
            _ => None,
        }
    }

    /// Whether the rank is 1 or 3, every dimension is in `1..=MAX_DIM` and the element count
    /// is at most [`MAX_NUMEL`].
    pub fn is_valid(&self) -> bool {
        matches!(self.0.len(), 1 | 3)
            && self.0.iter().all(|&d| d > 0 && d <= crate::layer::MAX_DIM)
            && self
                .0
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .is_some_and(|n| n <= MAX_NUMEL)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|d| d.to_string()).collect();
        write!(f, "{}", parts.join("x"))
    }
}
