//! Two image files scored against each other (`veil compare`): SSIM, PSNR and MSE of images of
//! the same shape, values scaled to `[0, 1]` — how a reconstruction is judged against its
//! original.

use std::path::Path;

use serde::Serialize;
use veil_metrics::{Image, ImageScores};

use crate::AttackError;

/// The scores of one pair; `psnr` is `None` when the images are identical (infinite PSNR).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Comparison {
    /// Structural similarity.
    pub ssim: f64,
    /// Peak signal-to-noise ratio (dB), `None` for identical images.
    pub psnr: Option<f64>,
    /// Mean squared error.
    pub mse: f64,
    /// `[channels, height, width]`.
    pub shape: [usize; 3],
}

/// Scores the image at `candidate` against the one at `reference`.
pub fn image_files(reference: &Path, candidate: &Path) -> Result<Comparison, AttackError> {
    let a = veil_data::read_image(reference)?;
    let b = veil_data::read_image(candidate)?;
    if a.shape != b.shape {
        return Err(AttackError::Invalid(format!(
            "images differ in shape: {} is {:?}, {} is {:?} ([channels, height, width])",
            reference.display(),
            a.shape,
            candidate.display(),
            b.shape
        )));
    }
    let scores = ImageScores::compute(
        &Image::new(&a.data, a.shape)?,
        &Image::new(&b.data, b.shape)?,
    )?;
    Ok(Comparison {
        ssim: scores.ssim,
        psnr: scores.psnr.is_finite().then_some(scores.psnr),
        mse: scores.mse,
        shape: a.shape,
    })
}

impl Comparison {
    /// The scores on one line (`inf` for an infinite PSNR).
    pub fn text(&self) -> String {
        let psnr = self
            .psnr
            .map_or("inf".to_string(), |p| format!("{p:.4} dB"));
        format!("ssim {:.6}  psnr {psnr}  mse {:.6e}", self.ssim, self.mse)
    }
}
