//! The image grid: originals in the top row, reconstructions below, as one PNG.

use std::path::Path;

use crate::AttackError;

/// Writes the first victims of `victims` (top row) above their `reconstructions` (an attack
/// report's `examples`, in victim order) with [`save_grid`].
pub fn save_victim_grid(
    path: &Path,
    victims: &veil_data::Dataset,
    reconstructions: &[Vec<f32>],
) -> Result<(), AttackError> {
    let n = reconstructions.len().min(victims.len());
    let originals: Vec<&[f32]> = (0..n).map(|i| victims.sample(i)).collect();
    let recon: Vec<&[f32]> = reconstructions[..n].iter().map(Vec::as_slice).collect();
    save_grid(path, victims.shape, &originals, &recon)
}

/// Writes `originals` (top row) and `reconstructions` (bottom row), planar `[c, h, w]` images
/// with values in `[0, 1]`, side by side with a 2-pixel gap, as a PNG (gray for `c = 1`, RGB
/// for `c = 3`).
pub fn save_grid(
    path: &Path,
    shape: [usize; 3],
    originals: &[&[f32]],
    reconstructions: &[&[f32]],
) -> Result<(), AttackError> {
    let [c, h, w] = shape;
    let n = originals.len().min(reconstructions.len());
    let err = |m: String| AttackError::Write {
        path: path.display().to_string(),
        message: m,
    };
    if n == 0 || !(c == 1 || c == 3) {
        return Err(err(format!(
            "need images with 1 or 3 channels, got {n} of {shape:?}"
        )));
    }
    let gap = 2;
    let (gw, gh) = ((n * (w + gap) + gap) as u32, (2 * (h + gap) + gap) as u32);
    let mut canvas = image::RgbImage::from_pixel(gw, gh, image::Rgb([255, 255, 255]));
    for (row, set) in [originals, reconstructions].iter().enumerate() {
        for (col, img) in set.iter().take(n).enumerate() {
            for y in 0..h {
                for x in 0..w {
                    let px = |ch: usize| {
                        let v = img
                            .get(ch.min(c - 1) * h * w + y * w + x)
                            .copied()
                            .unwrap_or(0.0);
                        (v.clamp(0.0, 1.0) * 255.0).round() as u8
                    };
                    let (ox, oy) = (gap + col * (w + gap) + x, gap + row * (h + gap) + y);
                    canvas.put_pixel(ox as u32, oy as u32, image::Rgb([px(0), px(1), px(2)]));
                }
            }
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    }
    canvas.save(path).map_err(|e| err(e.to_string()))
}
