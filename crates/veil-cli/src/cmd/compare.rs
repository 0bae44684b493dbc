//! `veil compare A B`: SSIM, PSNR and MSE of two same-sized images scaled to `[0, 1]`.
//!
//! PSNR is `null` in JSON (and `inf` in text) when the images are identical.

use std::path::PathBuf;

/// Arguments of `veil compare`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Reference image (PNG, JPEG or PPM).
    pub reference: PathBuf,
    /// Image to score against the reference.
    pub candidate: PathBuf,
}

/// Runs `veil compare`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let comparison = veil_attack::compare::image_files(&args.reference, &args.candidate)?;
    crate::report(&comparison, |c| c.text())
}
