//! [`Shape`]: the shape of one activation, without the batch dimension.

use serde::{Deserialize, Serialize};
use std::fmt;

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

    /// Whether every dimension is positive and the rank is 1 or 3.
    pub fn is_valid(&self) -> bool {
        matches!(self.0.len(), 1 | 3) && self.0.iter().all(|&d| d > 0)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|d| d.to_string()).collect();
        write!(f, "{}", parts.join("x"))
    }
}
