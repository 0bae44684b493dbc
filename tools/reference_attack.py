#!/usr/bin/env python3
"""A plain PyTorch reference for `veil attack` (issue #16): black-box inversion of one split
layer of a veil model, to run side by side with veil on the same machine.

The device part is built in PyTorch from the spec and weights in veil's weight file
(tools/veil_torch.py); the attacker queries it on the first `--aux` training images, trains a
small generic decoder (no knowledge of the device part: conv features go through a 3x3
convolution, stride-2 transposed convolutions while the side can double, a bilinear resize to
the image and two 3x3 convolutions; flat features through one hidden layer of 1,024) with MSE
and Adam (lr 1e-3, batch 64), and reconstructs the first `--victims` test images. SSIM, PSNR
and MSE as SYSTEM.md section 3 defines them (scikit-image's structural_similarity with
Wang et al.'s settings, which tools/ssim_reference.py checks veil against).

Maps: `--maps K` keeps maps 0..K-1 (veil's `--selection contiguous`), so both sides see the
same maps.

Usage: python3 tools/reference_attack.py --weights W --layer relu2 [--maps 4]
           [--dataset mnist] [--aux 20000] [--victims 1000] [--epochs 10] [--seed 0]
           [--threads 2]
Prints one JSON document. Needs torch and scikit-image; without torch it prints
{"skipped": "..."} and exits 0.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import veil_torch  # noqa: E402


def decoder(torch, feat_shape, image_shape):
    nn = torch.nn
    c, h, w = image_shape
    if len(feat_shape) == 1:
        return nn.Sequential(nn.Linear(feat_shape[0], 1024), nn.ReLU(),
                             nn.Linear(1024, c * h * w), nn.Sigmoid(), nn.Unflatten(1, (c, h, w)))
    k, fh, _ = feat_shape
    mods = [nn.Conv2d(k, 64, 3, padding=1), nn.ReLU()]
    side = fh
    while side * 2 <= h:
        mods += [nn.ConvTranspose2d(64, 64, 4, 2, 1), nn.ReLU()]
        side *= 2
    if side != h:
        mods.append(nn.Upsample(size=(h, w), mode="bilinear", align_corners=False))
    mods += [nn.Conv2d(64, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, c, 3, padding=1), nn.Sigmoid()]
    return nn.Sequential(*mods)


def scores(originals, recon):
    import numpy as np
    from skimage.metrics import structural_similarity, peak_signal_noise_ratio
    ssim, psnr, mse = [], [], []
    for a, b in zip(originals, recon):
        a, b = a.astype(np.float64), np.clip(b, 0, 1).astype(np.float64)
        if a.shape[0] == 1:
            a2, b2, axis = a[0], b[0], None
        else:
            a2, b2, axis = a.transpose(1, 2, 0), b.transpose(1, 2, 0), -1
        ssim.append(structural_similarity(a2, b2, gaussian_weights=True, sigma=1.5,
                                          use_sample_covariance=False, data_range=1.0,
                                          channel_axis=axis))
        m = float(((a - b) ** 2).mean())
        mse.append(m)
        psnr.append(peak_signal_noise_ratio(a, b, data_range=1.0) if m > 0 else 100.0)
    return np.array(ssim), np.array(psnr), np.array(mse)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--layer", required=True)
    ap.add_argument("--maps", type=int, default=None)
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--data", default=os.environ.get("VEIL_DATA", "../shared/data"))
    ap.add_argument("--aux", type=int, default=20000)
    ap.add_argument("--victims", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch = veil_torch.import_torch()
    if torch is None:
        print(json.dumps({"skipped": "torch, numpy or scikit-image is not installed (pip install torch numpy scikit-image)"}))
        return 0
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    spec, tensors = veil_torch.read_weights(a.weights)
    device, feat_shape = veil_torch.build(spec, tensors, upto=a.layer)
    device.eval()
    train, test = veil_torch.idx_split(a.data, a.dataset)
    aux, victims = torch.from_numpy(train[:a.aux]), torch.from_numpy(test[:a.victims])
    with torch.no_grad():
        fa, fv = device(aux), device(victims)
    if a.maps is not None:
        if len(feat_shape) != 3 or not 1 <= a.maps <= feat_shape[0]:
            raise SystemExit(f"--maps {a.maps}: {a.layer} has shape {feat_shape}")
        fa, fv = fa[:, :a.maps], fv[:, :a.maps]
        feat_shape = [a.maps] + feat_shape[1:]
    dec = decoder(torch, feat_shape, list(aux.shape[1:]))
    opt = torch.optim.Adam(dec.parameters(), lr=1e-3)
    start = time.perf_counter()
    for _ in range(a.epochs):
        order = torch.randperm(len(aux))
        for i in range(0, len(aux), a.batch):
            idx = order[i:i + a.batch]
            loss = torch.nn.functional.mse_loss(dec(fa[idx]), aux[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        recon = torch.cat([dec(fv[i:i + 256]) for i in range(0, len(fv), 256)]).numpy()
    ssim, psnr, mse = scores(victims.numpy(), recon)
    print(json.dumps({
        "reference": "pytorch", "torch": torch.__version__, "threads": a.threads,
        "layer": a.layer, "maps": a.maps, "feature_shape": feat_shape, "aux_samples": len(aux),
        "victims": len(victims), "epochs": a.epochs, "seed": a.seed,
        "ssim_mean": float(ssim.mean()), "ssim_std": float(ssim.std()),
        "psnr_mean": float(psnr.mean()), "mse_mean": float(mse.mean()), "seconds": seconds,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
