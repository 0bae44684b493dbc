#!/usr/bin/env python3
"""veil's default black-box attack and the plain PyTorch reference (tools/reference_attack.py)
on the same model, layers, maps, auxiliary images and victims, in one run on one machine,
alternating (issue #16). Prints a Markdown table: SSIM of both (median over `--rounds`), the
difference and the seconds of each.

Maps are the contiguous block 0..k-1 on both sides (veil's `--selection contiguous`).

Usage: python3 tools/attack_side_by_side.py --weights runs/lenet5-mnist/model.safetensors
           [--veil target/release/veil] [--python PY] [--dataset mnist]
           [--cells conv1:6,relu2:16,relu2:4,conv1:1] [--aux 20000] [--victims 1000]
           [--epochs 10] [--rounds 1] [--json OUT]
`--python` runs the reference (an interpreter with torch, numpy, scikit-image). Without them
the tool says so, runs nothing and exits 0.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run_json(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} ... failed ({out.returncode}): {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--veil", default="target/release/veil")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--cells", default="conv1:6,relu2:16,relu2:4,conv1:1")
    ap.add_argument("--aux", type=int, default=20000)
    ap.add_argument("--victims", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--json", dest="json_out")
    a = ap.parse_args()
    cells = [(c.split(":")[0], int(c.split(":")[1])) for c in a.cells.split(",")]
    try:
        probe = subprocess.run([a.python, "-c", "import numpy, torch, skimage.metrics"], capture_output=True).returncode
    except OSError:
        probe = 1
    if probe != 0:
        print(f"skipped: {a.python} lacks torch, numpy or scikit-image "
              "(pip install torch numpy scikit-image); nothing was run")
        return 0
    budget = ["--aux", str(a.aux), "--victims", str(a.victims), "--epochs", str(a.epochs)]
    rows = []
    for layer, k in cells:
        veil_runs, ref_runs = [], []
        for _ in range(a.rounds):
            veil_runs.append(run_json([a.veil, "attack", "--weights", a.weights, "--dataset", a.dataset,
                                       "--layer", layer, "--maps", str(k), "--selection", "contiguous",
                                       "--json"] + budget))
            ref = run_json([a.python, os.path.join(HERE, "reference_attack.py"), "--weights", a.weights,
                            "--dataset", a.dataset, "--layer", layer, "--maps", str(k)] + budget)
            if "skipped" in ref:
                print(f"reference skipped: {ref['skipped']}")
                return 0
            ref_runs.append(ref)
        med = lambda runs, key: statistics.median(r[key] for r in runs)  # noqa: E731
        rows.append({"layer": layer, "maps": k, "veil_ssim": med(veil_runs, "ssim_mean"),
                     "reference_ssim": med(ref_runs, "ssim_mean"), "veil_s": med(veil_runs, "seconds"),
                     "reference_s": med(ref_runs, "seconds"), "torch": ref_runs[0]["torch"],
                     "veil_runs": veil_runs, "reference_runs": ref_runs})
    print(f"| split | veil SSIM | PyTorch reference SSIM | veil - reference | veil s | reference s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['layer']}, maps 0..{r['maps'] - 1} | {r['veil_ssim']:.3f} | {r['reference_ssim']:.3f} | "
              f"{r['veil_ssim'] - r['reference_ssim']:+.3f} | {r['veil_s']:.0f} | {r['reference_s']:.0f} |")
    print(f"\nmedian of {a.rounds} round(s), alternating; torch {rows[0]['torch'] if rows else '-'}; "
          f"{a.aux} auxiliary images, {a.victims} victims, {a.epochs} epochs")
    if a.json_out:
        for r in rows:
            for run in r["veil_runs"]:
                run.pop("examples", None)
        with open(a.json_out, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
