//! veil-metrics: how close a reconstruction is to the original, and how accurate a classifier is.
//!
//! Images are planar `f32` buffers in `[c, h, w]` order with values in `[0, 1]` (data range 1).
//! Key items: [`Image`] (a borrowed view with its shape), [`mse`], [`psnr`], [`ssim`],
//! [`ImageScores`] (all three at once), [`Summary`] (mean and population std over many images)
//! [`accuracy`] and [`argmax`].
//!
//! Definitions (SYSTEM.md section 3):
//! - `MSE = mean((a - b)^2)` over all scalars.
//! - `PSNR = 10 log10(1 / MSE)` dB for data range 1; `+inf` when the images are identical.
//! - SSIM as in Wang, Bovik, Sheikh and Simoncelli, "Image quality assessment: from error
//!   visibility to structural similarity", IEEE TIP 2004, with the constants of their reference
//!   implementation: an 11x11 Gaussian window with sigma 1.5 normalised to sum 1, `K1 = 0.01`,
//!   `K2 = 0.03`, data range `L = 1` (so `C1 = (K1 L)^2`, `C2 = (K2 L)^2`), local statistics as
//!   Gaussian-weighted *population* moments (`sigma_xy = E_w[xy] - mu_x mu_y`), the SSIM map
//!   taken only where the window fits entirely inside the image ("valid" filtering, as MATLAB's
//!   `filter2(w, img, 'valid')`), averaged over the map, then averaged over channels.

#![forbid(unsafe_code)]

mod ssim;

pub use ssim::{SSIM_K1, SSIM_K2, SSIM_SIGMA, SSIM_WINDOW, ssim};

use serde::Serialize;

/// The index of the largest score (the predicted class); the first on ties, 0 for an empty
/// slice. NaN is ordered above every number (`total_cmp`), so a NaN logit is never hidden.
pub fn argmax<T: Copy + Into<f64>>(scores: &[T]) -> usize {
    scores
        .iter()
        .enumerate()
        .max_by(|a, b| {
            let (x, y): (f64, f64) = ((*a.1).into(), (*b.1).into());
            x.total_cmp(&y).then(b.0.cmp(&a.0))
        })
        .map_or(0, |(i, _)| i)
}

/// Errors from metric computation.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetricError {
    /// The two inputs differ in shape.
    #[error("shape mismatch: {left:?} vs {right:?}")]
    ShapeMismatch {
        /// `[c, h, w]` of the first image.
        left: [usize; 3],
        /// `[c, h, w]` of the second image.
        right: [usize; 3],
    },
    /// The buffer length does not match the declared shape.
    #[error("buffer of {len} values does not hold a {shape:?} image")]
    BadBuffer {
        /// Buffer length.
        len: usize,
        /// Declared `[c, h, w]`.
        shape: [usize; 3],
    },
    /// SSIM needs the 11x11 window to fit.
    #[error("SSIM needs images of at least {min}x{min} pixels, got {h}x{w}")]
    TooSmall {
        /// Minimum side.
        min: usize,
        /// Height.
        h: usize,
        /// Width.
        w: usize,
    },
    /// Nothing to average.
    #[error("no samples")]
    Empty,
}

/// A borrowed planar image `[c, h, w]` with values nominally in `[0, 1]`.
#[derive(Clone, Copy, Debug)]
pub struct Image<'a> {
    data: &'a [f32],
    shape: [usize; 3],
}

impl<'a> Image<'a> {
    /// Wraps `data` as a `[c, h, w]` image; the length must be `c * h * w`.
    pub fn new(data: &'a [f32], shape: [usize; 3]) -> Result<Self, MetricError> {
        if data.len() != shape.iter().product::<usize>() || data.is_empty() {
            return Err(MetricError::BadBuffer {
                len: data.len(),
                shape,
            });
        }
        Ok(Image { data, shape })
    }

    /// The scalars, channel-major.
    pub fn data(&self) -> &'a [f32] {
        self.data
    }

    /// `[c, h, w]`.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    /// One channel as an `h * w` slice.
    pub fn channel(&self, c: usize) -> &'a [f32] {
        let plane = self.shape[1] * self.shape[2];
        &self.data[c * plane..(c + 1) * plane]
    }
}

fn same_shape(a: &Image<'_>, b: &Image<'_>) -> Result<(), MetricError> {
    if a.shape != b.shape {
        return Err(MetricError::ShapeMismatch {
            left: a.shape,
            right: b.shape,
        });
    }
    Ok(())
}

/// Mean squared error over all scalars.
pub fn mse(a: &Image<'_>, b: &Image<'_>) -> Result<f64, MetricError> {
    same_shape(a, b)?;
    let sum: f64 = a
        .data
        .iter()
        .zip(b.data)
        .map(|(&x, &y)| {
            let d = x as f64 - y as f64;
            d * d
        })
        .sum();
    Ok(sum / a.data.len() as f64)
}

/// PSNR in dB for data range 1: `10 log10(1 / MSE)`, `+inf` for identical images.
pub fn psnr(a: &Image<'_>, b: &Image<'_>) -> Result<f64, MetricError> {
    Ok(psnr_from_mse(mse(a, b)?))
}

/// PSNR for a known MSE (data range 1).
pub fn psnr_from_mse(mse: f64) -> f64 {
    if mse == 0.0 {
        f64::INFINITY
    } else {
        -10.0 * mse.log10()
    }
}

/// SSIM, PSNR and MSE of one image pair.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ImageScores {
    /// Structural similarity in `[-1, 1]`.
    pub ssim: f64,
    /// Peak signal-to-noise ratio in dB (`+inf` for identical images).
    pub psnr: f64,
    /// Mean squared error.
    pub mse: f64,
}

impl ImageScores {
    /// Scores `b` against the reference `a`.
    pub fn compute(a: &Image<'_>, b: &Image<'_>) -> Result<Self, MetricError> {
        let mse = mse(a, b)?;
        Ok(ImageScores {
            ssim: ssim(a, b)?,
            psnr: psnr_from_mse(mse),
            mse,
        })
    }
}

/// Mean and population standard deviation of a sample.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// Arithmetic mean.
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
    /// Sample count.
    pub count: usize,
}

impl Summary {
    /// Summarises `values`; fails on an empty sample.
    pub fn of(values: &[f64]) -> Result<Self, MetricError> {
        if values.is_empty() {
            return Err(MetricError::Empty);
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        Ok(Summary {
            mean,
            std: var.sqrt(),
            count: values.len(),
        })
    }
}

/// Fraction of positions where `predicted == truth`.
pub fn accuracy(predicted: &[usize], truth: &[usize]) -> Result<f64, MetricError> {
    if predicted.len() != truth.len() {
        return Err(MetricError::ShapeMismatch {
            left: [predicted.len(), 1, 1],
            right: [truth.len(), 1, 1],
        });
    }
    if truth.is_empty() {
        return Err(MetricError::Empty);
    }
    let hits = predicted.iter().zip(truth).filter(|(p, t)| p == t).count();
    Ok(hits as f64 / truth.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_largest_and_sees_nan() {
        assert_eq!(argmax(&[0.1f32, 3.0, -1.0, 3.0]), 1);
        assert_eq!(argmax(&[1.0f64, f64::NAN, 2.0]), 1);
        assert_eq!(argmax::<f32>(&[]), 0);
    }

    #[test]
    fn mse_and_psnr_of_a_constant_offset() {
        let a = vec![0.5f32; 3 * 16 * 16];
        let b = vec![0.6f32; 3 * 16 * 16];
        let (ia, ib) = (
            Image::new(&a, [3, 16, 16]).expect("a"),
            Image::new(&b, [3, 16, 16]).expect("b"),
        );
        let m = mse(&ia, &ib).expect("mse");
        assert!((m - 0.01).abs() < 1e-7, "{m}");
        assert!((psnr(&ia, &ib).expect("psnr") - 20.0).abs() < 1e-4);
        assert_eq!(psnr(&ia, &ia).expect("psnr"), f64::INFINITY);
    }

    #[test]
    fn shape_errors_are_reported() {
        let a = vec![0.0f32; 16];
        assert!(matches!(
            Image::new(&a, [1, 4, 5]),
            Err(MetricError::BadBuffer { .. })
        ));
        let ia = Image::new(&a, [1, 4, 4]).expect("a");
        let ib = Image::new(&a, [1, 2, 8]).expect("b");
        assert!(matches!(
            mse(&ia, &ib),
            Err(MetricError::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn accuracy_and_summary() {
        assert_eq!(accuracy(&[1, 2, 3, 4], &[1, 2, 0, 4]).expect("acc"), 0.75);
        assert!(accuracy(&[], &[]).is_err());
        let s = Summary::of(&[1.0, 3.0]).expect("summary");
        assert_eq!((s.mean, s.std, s.count), (2.0, 1.0, 2));
    }
}
