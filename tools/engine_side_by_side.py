#!/usr/bin/env python3
"""veil's engine and PyTorch side by side on the same models, in one run on one machine,
alternating (issue #17): `veil bench --model M --json` against tools/torch_bench.py on the
identical architecture (built from the spec in M's veil weight file, or in veil's report when no
weight file is given). Each run is its own process, so peak RSS is per run (wait4). Prints a
Markdown table: medians (min-max) of both and the ratio veil / PyTorch per workload. No reference number is stored anywhere: every
figure comes from this run.

Usage: python3 tools/engine_side_by_side.py --model lenet5[=runs/lenet5-mnist/model.safetensors]
           [--model gtsrb_cnn] [--decoder lenet5:relu2]
           [--veil target/release/veil]
           [--python PY] [--threads 2] [--rounds 3] [--json OUT] [--quick]
`--decoder MODEL:LAYER` measures the decoder the default attack trains against LAYER's output
(`veil bench --model MODEL --decoder-at LAYER`; its spec, from veil's JSON, builds the
PyTorch twin; training is mean squared error against random maps).
`--python` runs the PyTorch side (an interpreter with torch and numpy). Without them the tool
says so, runs nothing and exits 0 (CI runs it this way).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import veil_torch  # noqa: E402  (lazy about torch: the probe runs in another interpreter)
WORKLOADS = [("train_steps_per_second", "training steps/s (batch 64)"),
             ("single_inferences_per_second", "inferences/s, batch 1"),
             ("batches_per_second", "batches/s, batch 256"),
             ("peak_rss_mb", "peak RSS (MB, lower is better)")]


def rss_run(cmd, env):
    """The JSON stdout of one process and its peak RSS (wait4), in MB."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    if status != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} ... failed (status {status})")
    doc = json.loads(out)
    doc["peak_rss_mb"] = usage.ru_maxrss / 1024
    return doc


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", action="append", default=[], help="NAME or NAME=WEIGHTS")
    ap.add_argument("--decoder", action="append", default=[], help="MODEL:LAYER (the attack's decoder)")
    ap.add_argument("--veil", default="target/release/veil")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", dest="json_out")
    ap.add_argument("--quick", action="store_true", help="a few iterations each (a smoke test)")
    a = ap.parse_args()
    counts = ["--train-steps", "5", "--latency-iters", "20", "--throughput-iters", "2"] if a.quick else []
    if not veil_torch.interpreter_has(a.python, ["numpy", "torch"]):
        print(f"skipped: {a.python} lacks torch or numpy (pip install torch numpy); nothing was run")
        return 0
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
    if not a.model and not a.decoder:
        ap.error("give at least one --model NAME[=WEIGHTS] or --decoder MODEL:LAYER")
    # NAME=WEIGHTS builds the PyTorch twin from the weight file's spec; a bare NAME from the spec
    # in veil's own report (random weights on both sides: speed does not depend on them).
    jobs = [(m.split("=", 1)[0], ["--model", m.split("=", 1)[0]],
             ["--weights", m.split("=", 1)[1]] if "=" in m else None) for m in a.model]
    jobs += [(f"{d.split(':', 1)[0]} decoder at {d.split(':', 1)[1]}",
              ["--model", d.split(":", 1)[0], "--decoder-at", d.split(":", 1)[1]], None)
             for d in a.decoder]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, veil_args, torch_args) in enumerate(jobs):
            runs = {"veil": [], "torch": []}
            for r in range(a.rounds):
                # veil first in even rounds: a decoder's spec comes from veil's first report.
                order = ["veil", "torch"] if r % 2 == 0 else ["torch", "veil"]
                for side in order:
                    if side == "veil":
                        doc = rss_run([a.veil, "bench"] + veil_args + ["--json"] + counts, env)
                        runs["veil"].append(doc)
                        if torch_args is None:
                            spec_file = os.path.join(tmp, f"spec{i}.json")
                            with open(spec_file, "w") as f:
                                json.dump(doc["spec"], f)
                            torch_args = ["--spec", spec_file]
                    else:
                        runs["torch"].append(rss_run([a.python, os.path.join(HERE, "torch_bench.py")]
                                                     + torch_args + ["--threads", str(a.threads)] + counts, env))
            rows.append((name, runs))
    torch_version = rows[0][1]["torch"][0].get("torch", "?")
    print("| model | workload | PyTorch | veil | veil / PyTorch |")
    print("|---|---|---|---|---|")
    for name, runs in rows:
        for key, label in WORKLOADS:
            if runs["veil"][0].get("task") == "regress":
                label = label.replace("training steps/s", "decoder training steps/s (MSE)")
            t = [x[key] for x in runs["torch"]]
            v = [x[key] for x in runs["veil"]]
            ratio = statistics.median(v) / statistics.median(t)
            if key == "peak_rss_mb":
                ratio = statistics.median(t) / statistics.median(v)
            cell = lambda xs: f"{statistics.median(xs):.1f} ({min(xs):.1f}-{max(xs):.1f})"  # noqa: E731
            print(f"| {name} | {label} | {cell(t)} | {cell(v)} | {ratio:.2f}x |")
    print(f"\nmedians (min-max) of {a.rounds} alternating rounds; {a.threads} threads each; "
          f"torch {torch_version}; random inputs; peak RSS ratio is PyTorch / veil (>= 1: veil leaner)")
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump({n: {side: [{k: v for k, v in d.items() if k != "spec"} for d in docs]
                           for side, docs in r.items()} for n, r in rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
