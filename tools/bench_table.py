#!/usr/bin/env python3
"""Run `veil bench` several times per thread count and print the medians as a Markdown table.

veil alone: for the comparison with PyTorch, run tools/engine_side_by_side.py, which measures
both in one run (no reference number is stored anywhere, issue #17).

Usage: python3 tools/bench_table.py [--veil target/release/veil] [--model lenet5]
                                    [--dataset mnist] [--runs 5] [--threads 1 2]
"""
import argparse, json, statistics, subprocess, os

ap = argparse.ArgumentParser()
ap.add_argument("--veil", default="target/release/veil")
ap.add_argument("--model", default="lenet5")
ap.add_argument("--dataset", default="mnist")
ap.add_argument("--runs", type=int, default=5)
ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
a = ap.parse_args()

rows = []
for t in a.threads:
    env = dict(os.environ, RAYON_NUM_THREADS=str(t))
    runs = []
    for _ in range(a.runs):
        cmd = [a.veil, "bench", "--model", a.model, "--json"]
        if a.dataset != "random":
            cmd += ["--dataset", a.dataset]
        runs.append(json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout))
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0] if isinstance(runs[0][k], (int, float))}
    spread = {k: (min(r[k] for r in runs), max(r[k] for r in runs)) for k in med}
    rows.append((t, med, spread))

print("| metric | " + " | ".join(f"veil, {t} thread{'s' if t > 1 else ''}" for t, _, _ in rows) + " |")
print("|---|" + "---|" * len(rows))
for key, label in [("train_steps_per_second", "training steps/s (batch 64)"),
                   ("single_inferences_per_second", "single-image inferences/s (batch 1)"),
                   ("batches_per_second", "batch-256 inferences/s")]:
    cells = [f"{m[key]:.1f} ({s[key][0]:.1f}-{s[key][1]:.1f})" for _, m, s in rows]
    print(f"| {label} | " + " | ".join(cells) + " |")
lat = " | ".join(f"{m['latency_median_ms']:.3f}" for _, m, _ in rows)
print(f"| median latency, batch 1 (ms) | {lat} |")
print(f"\nmedian of {a.runs} runs (min-max in parentheses); inputs: {a.dataset}")
