#!/usr/bin/env python3
"""Validate `veil compare` against scikit-image's SSIM with Wang et al. (2004) settings.

Reference: skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1.0) -- an 11x11 Gaussian window (truncate 3.5 ->
radius 5), K1=0.01, K2=0.03, population covariances, mean over the valid region and over
channels. This is exactly SYSTEM.md section 3.

Usage: python3 tools/ssim_reference.py [--veil target/release/veil] [--pairs 200] [--seed 0]
Needs: numpy, scikit-image, pillow (pip install scikit-image pillow).
Prints the largest absolute differences for SSIM, PSNR and MSE and exits 1 if SSIM differs by
more than 1e-4 on any pair.
"""
import argparse, json, subprocess, sys, tempfile, os
import numpy as np
from PIL import Image
from skimage.metrics import structural_similarity, peak_signal_noise_ratio, mean_squared_error


def pair(rng, kind):
    h, w = rng.integers(11, 64, size=2)
    c = 1 if kind % 2 == 0 else 3
    shape = (h, w) if c == 1 else (h, w, 3)
    if kind % 4 < 2:  # independent noise
        a, b = rng.random(shape), rng.random(shape)
    else:  # smooth image and a noisy, shifted, rescaled copy
        yy, xx = np.mgrid[0:h, 0:w]
        a = 0.5 + 0.5 * np.sin(xx / rng.uniform(2, 9)) * np.cos(yy / rng.uniform(2, 9))
        if c == 3:
            a = np.stack([a, a[::-1], a[:, ::-1]], axis=-1)
        b = np.clip(0.8 * np.roll(a, 1, axis=0) + rng.normal(0, rng.uniform(0.01, 0.3), shape) + 0.05, 0, 1)
    q = lambda x: (np.clip(x, 0, 1) * 255).round().astype(np.uint8)
    return q(a), q(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--veil", default="target/release/veil")
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    worst = {"ssim": 0.0, "psnr": 0.0, "mse": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.pairs):
            a8, b8 = pair(rng, i)
            pa, pb = os.path.join(tmp, "a.png"), os.path.join(tmp, "b.png")
            Image.fromarray(a8).save(pa)
            Image.fromarray(b8).save(pb)
            a, b = a8 / 255.0, b8 / 255.0
            kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)
            if a.ndim == 3:
                kw["channel_axis"] = -1
            ref = {
                "ssim": structural_similarity(a, b, **kw),
                "mse": mean_squared_error(a, b),
                "psnr": peak_signal_noise_ratio(a, b, data_range=1.0),
            }
            out = json.loads(subprocess.run([args.veil, "compare", pa, pb, "--json"],
                                            check=True, capture_output=True, text=True).stdout)
            for k in worst:
                worst[k] = max(worst[k], abs(out[k] - ref[k]))
    print(json.dumps({"pairs": args.pairs, "max_abs_diff": worst}))
    sys.exit(0 if worst["ssim"] <= 1e-4 else 1)


if __name__ == "__main__":
    main()
