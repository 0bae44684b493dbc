//! SSIM (Wang et al. 2004) with the reference constants; see the crate docs for the exact
//! definition. The Gaussian filter is separable, computed in `f64`, "valid" region only.

use crate::{Image, MetricError, same_shape};

/// Side of the Gaussian window.
pub const SSIM_WINDOW: usize = 11;
/// Standard deviation of the Gaussian window, in pixels.
pub const SSIM_SIGMA: f64 = 1.5;
/// `K1` of Wang et al.
pub const SSIM_K1: f64 = 0.01;
/// `K2` of Wang et al.
pub const SSIM_K2: f64 = 0.03;
/// Data range `L` (images in `[0, 1]`).
const DATA_RANGE: f64 = 1.0;

/// The 1-D Gaussian taps, normalised to sum 1 (their outer product is the 2-D window).
fn gaussian_taps() -> [f64; SSIM_WINDOW] {
    let mut taps = [0.0; SSIM_WINDOW];
    let centre = (SSIM_WINDOW / 2) as f64;
    for (i, t) in taps.iter_mut().enumerate() {
        let d = i as f64 - centre;
        *t = (-d * d / (2.0 * SSIM_SIGMA * SSIM_SIGMA)).exp();
    }
    let sum: f64 = taps.iter().sum();
    taps.iter_mut().for_each(|t| *t /= sum);
    taps
}

/// Separable "valid" filtering of an `h x w` plane: output `(h-10) x (w-10)`.
fn filter_valid(plane: &[f64], h: usize, w: usize, taps: &[f64; SSIM_WINDOW], out: &mut Vec<f64>) {
    let (oh, ow) = (h + 1 - SSIM_WINDOW, w + 1 - SSIM_WINDOW);
    // Horizontal pass: h x ow.
    let mut rows = vec![0.0; h * ow];
    for y in 0..h {
        let row = &plane[y * w..(y + 1) * w];
        for x in 0..ow {
            rows[y * ow + x] = taps
                .iter()
                .zip(&row[x..x + SSIM_WINDOW])
                .map(|(t, v)| t * v)
                .sum();
        }
    }
    out.clear();
    out.resize(oh * ow, 0.0);
    for y in 0..oh {
        for (k, t) in taps.iter().enumerate() {
            let src = &rows[(y + k) * ow..(y + k + 1) * ow];
            for (o, v) in out[y * ow..(y + 1) * ow].iter_mut().zip(src) {
                *o += t * v;
            }
        }
    }
}

/// Mean SSIM of `b` against `a`, averaged over channels.
///
/// Both images must have the same `[c, h, w]` shape with `h, w >= 11`.
pub fn ssim(a: &Image<'_>, b: &Image<'_>) -> Result<f64, MetricError> {
    same_shape(a, b)?;
    let [c, h, w] = a.shape();
    if h < SSIM_WINDOW || w < SSIM_WINDOW {
        return Err(MetricError::TooSmall {
            min: SSIM_WINDOW,
            h,
            w,
        });
    }
    let taps = gaussian_taps();
    let c1 = (SSIM_K1 * DATA_RANGE).powi(2);
    let c2 = (SSIM_K2 * DATA_RANGE).powi(2);
    let n = h * w;
    let (mut x, mut y, mut xx, mut yy, mut xy) = (
        vec![0.0; n],
        vec![0.0; n],
        vec![0.0; n],
        vec![0.0; n],
        vec![0.0; n],
    );
    let (mut mx, mut my, mut sxx, mut syy, mut sxy) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut total = 0.0;
    for ch in 0..c {
        for (i, (&p, &q)) in a.channel(ch).iter().zip(b.channel(ch)).enumerate() {
            let (p, q) = (p as f64, q as f64);
            x[i] = p;
            y[i] = q;
            xx[i] = p * p;
            yy[i] = q * q;
            xy[i] = p * q;
        }
        filter_valid(&x, h, w, &taps, &mut mx);
        filter_valid(&y, h, w, &taps, &mut my);
        filter_valid(&xx, h, w, &taps, &mut sxx);
        filter_valid(&yy, h, w, &taps, &mut syy);
        filter_valid(&xy, h, w, &taps, &mut sxy);
        let mut sum = 0.0;
        for i in 0..mx.len() {
            let (ux, uy) = (mx[i], my[i]);
            let vx = sxx[i] - ux * ux;
            let vy = syy[i] - uy * uy;
            let cov = sxy[i] - ux * uy;
            sum += ((2.0 * ux * uy + c1) * (2.0 * cov + c2))
                / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
        }
        total += sum / mx.len() as f64;
    }
    Ok(total / c as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random image in [0, 1]: `((i * 7919 + seed * 104729) mod 1009) /
    /// 1008`, the same formula `tools/ssim_reference.py` uses.
    fn pattern(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7919 + seed * 104_729) % 1009) as f32 / 1008.0)
            .collect()
    }

    /// Golden values from scikit-image 0.25 `structural_similarity(a[c], b[c],
    /// gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)`
    /// averaged over channels, with `a = pattern(s1)` and `b = 0.7 a + 0.3 pattern(s2)`
    /// (script in the commit that added this test; `tools/ssim_reference.py` checks random
    /// pairs end to end through `veil compare`).
    #[test]
    fn matches_scikit_image_golden_values() {
        for (c, h, w, s1, s2, want) in [
            (1, 28, 28, 1, 2, 0.888_869_851_006_116_8),
            (3, 32, 32, 3, 4, 0.890_188_854_140_826_2),
            (1, 11, 17, 5, 6, 0.880_991_047_177_630_4),
        ] {
            let a = pattern(c * h * w, s1);
            let b: Vec<f32> = a
                .iter()
                .zip(pattern(c * h * w, s2))
                .map(|(&x, y)| (0.7 * x as f64 + 0.3 * y as f64) as f32)
                .collect();
            let got = ssim(
                &Image::new(&a, [c, h, w]).expect("a"),
                &Image::new(&b, [c, h, w]).expect("b"),
            )
            .expect("ssim");
            assert!((got - want).abs() < 1e-6, "{c}x{h}x{w}: {got} vs {want}");
        }
    }

    #[test]
    fn identical_images_score_one() {
        let a = pattern(3 * 32 * 32, 1);
        let img = Image::new(&a, [3, 32, 32]).expect("img");
        assert!((ssim(&img, &img).expect("ssim") - 1.0).abs() < 1e-12);
    }

    #[test]
    fn too_small_images_are_rejected() {
        let a = vec![0.5f32; 10 * 10];
        let img = Image::new(&a, [1, 10, 10]).expect("img");
        assert!(matches!(
            ssim(&img, &img),
            Err(MetricError::TooSmall { .. })
        ));
    }

    #[test]
    fn taps_are_normalised_and_symmetric() {
        let t = gaussian_taps();
        assert!((t.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        assert_eq!(t[0], t[10]);
        assert!(t[5] > t[4]);
    }
}
