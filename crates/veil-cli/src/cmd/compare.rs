//! `veil compare A B`: SSIM, PSNR and MSE of two same-sized images scaled to `[0, 1]`.
//!
//! PSNR is `null` in JSON (and `inf` in text) when the images are identical.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Serialize;
use veil_metrics::{Image, ImageScores};

/// Arguments of `veil compare`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Reference image (PNG, JPEG or PPM).
    pub reference: PathBuf,
    /// Image to score against the reference.
    pub candidate: PathBuf,
}

#[derive(Serialize)]
struct CompareOutput {
    ssim: f64,
    psnr: Option<f64>,
    mse: f64,
    shape: [usize; 3],
}

/// Runs `veil compare`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let a = veil_data::read_image(&args.reference)?;
    let b = veil_data::read_image(&args.candidate)?;
    if a.shape != b.shape {
        bail!(
            "images differ in shape: {} is {:?}, {} is {:?} ([channels, height, width])",
            args.reference.display(),
            a.shape,
            args.candidate.display(),
            b.shape
        );
    }
    let scores = ImageScores::compute(
        &Image::new(&a.data, a.shape)?,
        &Image::new(&b.data, b.shape)?,
    )
    .context("computing image metrics")?;
    let out = CompareOutput {
        ssim: scores.ssim,
        psnr: scores.psnr.is_finite().then_some(scores.psnr),
        mse: scores.mse,
        shape: a.shape,
    };
    if crate::json() {
        return crate::print_json(&out);
    }
    crate::out(&format!(
        "ssim {:.6}  psnr {}  mse {:.6e}",
        out.ssim,
        out.psnr.map_or("inf".to_string(), |p| format!("{p:.4} dB")),
        out.mse
    ))?;
    Ok(())
}
