#!/usr/bin/env python3
"""The PyTorch twin of `veil bench` (crates/veil-model/src/bench.rs) on a veil model, for the
side-by-side comparison of issue #17 (tools/engine_side_by_side.py runs both).

The same architecture (built from the spec in a veil weight file, or from a spec JSON file
such as the `spec` of `veil bench --decoder-at L --json`; tools/veil_torch.py) and the same
work: training with Adam (lr 1e-3) at batch 64 (cross-entropy for a classifier; mean squared
error against uniform random target maps for a spec whose output is maps, a decoder), timed over
`--train-steps` distinct batches after 10 warm-up steps, batch assembly included;
`--latency-iters` single-sample forward passes (median latency and the mean rate) after 50
warm-up passes; `--throughput-iters` forward passes of a batch of 256 after 3 warm-up passes.
Inputs are seeded uniform noise in [0, 1), as `veil bench` without `--dataset`.

Usage: python3 tools/torch_bench.py (--weights W | --spec S.json) [--threads 2] [--train-steps 300]
           [--latency-iters 2000] [--throughput-iters 50]
Prints one JSON document with `veil bench --json`'s keys plus `peak_rss_mb`; without torch,
{"skipped": "..."} (exit 0).
"""
import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import veil_torch  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--weights")
    source.add_argument("--spec", help="a veil spec as JSON (e.g. a decoder)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train-steps", type=int, default=300)
    ap.add_argument("--latency-iters", type=int, default=2000)
    ap.add_argument("--throughput-iters", type=int, default=50)
    a = ap.parse_args()
    torch = veil_torch.import_torch(ssim=False)
    if torch is None:
        print(json.dumps({"skipped": "torch or numpy is not installed (pip install torch numpy)"}))
        return 0
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.spec:
        with open(a.spec) as f:
            spec = json.load(f)
    else:
        spec, _ = veil_torch.read_weights(a.weights)
    net, out_shape = veil_torch.build(spec)
    shape = spec["input_shape"]
    regress = len(out_shape) == 3
    batch = 64
    steps = a.train_steps + 10
    x = torch.rand(steps * batch, *shape)
    if regress:
        y = torch.rand(steps * batch, *out_shape)
        loss_fn = torch.nn.MSELoss()
    else:
        y = torch.randint(0, out_shape[0], (steps * batch,))
        loss_fn = torch.nn.CrossEntropyLoss()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()

    def step(i):
        xb, yb = x[i * batch:(i + 1) * batch].contiguous(), y[i * batch:(i + 1) * batch]
        opt.zero_grad()
        loss_fn(net(xb), yb).backward()
        opt.step()

    for i in range(10):
        step(i)
    t = time.perf_counter()
    for i in range(10, steps):
        step(i)
    train_s = time.perf_counter() - t
    net.eval()
    one, many = torch.rand(1, *shape), torch.rand(256, *shape)
    with torch.no_grad():
        for _ in range(50):
            net(one)
        times = []
        start = time.perf_counter()
        for _ in range(a.latency_iters):
            t = time.perf_counter()
            net(one).numpy()
            times.append(time.perf_counter() - t)
        single_s = time.perf_counter() - start
        for _ in range(3):
            net(many)
        start = time.perf_counter()
        for _ in range(a.throughput_iters):
            net(many).numpy()
        batched_s = time.perf_counter() - start
    times.sort()
    print(json.dumps({
        "model": spec["name"], "torch": torch.__version__, "threads": a.threads,
        "task": "regress" if regress else "classify",
        "train_steps_per_second": a.train_steps / train_s,
        "train_images_per_second": a.train_steps * batch / train_s,
        "latency_median_ms": times[len(times) // 2] * 1e3,
        "single_inferences_per_second": a.latency_iters / single_s,
        "batches_per_second": a.throughput_iters / batched_s,
        "batched_images_per_second": a.throughput_iters * 256 / batched_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
