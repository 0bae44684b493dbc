#!/usr/bin/env python3
"""CrypTen's two-party inference of a veil model on MNIST test images, for the side-by-side
comparison of issue #22 (tools/mpc_side_by_side.py runs it). One process per party over
loopback (torch.distributed, gloo): party 0 holds the model (built from the spec in the veil
weight file, tools/veil_torch.py), party 1 the images. Default CrypTen configuration (0.4.1:
arithmetic secret sharing, Beaver triples from a trusted first party).

Per image it times the encrypted forward pass only (from party 1's input being shared to the
logits' shares; the slower party counts, as for veil's servers) and reads CrypTen's own
communication counters (`bytes` of one party: everything it sends and receives, so both
directions between the two parties; `rounds`). It prints one JSON document: medians, ranges,
agreement with the plaintext PyTorch argmax, versions.

Usage: python3 tools/crypten_bench.py --weights W [--images 20] [--warmup 2] [--threads 1]
           [--data DIR] [--port 29517]
Install: pip install crypten==0.4.1 --no-deps && pip install omegaconf onnx pandas pyyaml
future scipy "numpy<2" (torch 2.1.2). Without crypten it prints `{"skipped": ...}` and exits 0.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def party(a):
    """One party's run; returns its measurements."""
    os.environ.update(RENDEZVOUS="env://", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(a.port),
                      RANK=str(a.rank), WORLD_SIZE="2", BACKEND="gloo")
    import warnings
    warnings.filterwarnings("ignore")
    import torch
    import crypten
    import veil_torch
    torch.set_num_threads(a.threads)
    crypten.init()
    crypten.cfg.communicator.verbose = True
    spec, tensors = veil_torch.read_weights(a.weights)
    model, _ = veil_torch.build(spec, tensors)
    model.eval()
    dummy = torch.empty(1, *spec["input_shape"])
    private = crypten.nn.from_pytorch(model, dummy)
    private.encrypt(src=0)
    private.eval()
    _, test = veil_torch.idx_split(a.data, "mnist")
    comm = crypten.comm.get()
    lat, sent, rounds, agree = [], [], [], 0
    for i in range(a.warmup + a.images):
        x = torch.from_numpy(test[i % len(test):i % len(test) + 1].copy())
        x_enc = crypten.cryptensor(x if a.rank == 1 else torch.zeros_like(x), src=1)
        comm.reset_communication_stats()
        t0 = time.perf_counter()
        y = private(x_enc)
        dt = time.perf_counter() - t0
        stats = comm.get_communication_stats()
        logits = y.get_plain_text()
        if i < a.warmup:
            continue
        lat.append(dt * 1e3)
        sent.append(stats["bytes"])
        rounds.append(stats["rounds"])
        with torch.no_grad():
            agree += int(model(x).argmax().item() == logits.argmax().item())
    return {"rank": a.rank, "latency_ms": lat, "bytes": sent, "rounds": rounds,
            "agreement": agree / max(1, a.images), "torch": torch.__version__,
            "crypten": getattr(crypten, "__version__", "?")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per party")
    ap.add_argument("--data", default=os.environ.get("VEIL_DATA", "../shared/data"))
    ap.add_argument("--port", type=int, default=29517)
    ap.add_argument("--rank", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.rank is not None:
        print(json.dumps(party(a)))
        return 0
    try:
        import crypten  # noqa: F401
        import torch  # noqa: F401
    except ImportError as e:
        print(json.dumps({"skipped": f"CrypTen is not installed ({e}); nothing was run"}))
        return 0
    procs = [subprocess.Popen([sys.executable, __file__, "--rank", str(r), "--weights", a.weights,
                               "--images", str(a.images), "--warmup", str(a.warmup),
                               "--threads", str(a.threads), "--data", a.data,
                               "--port", str(a.port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in (0, 1)]
    outs = []
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"CrypTen party failed (status {p.returncode}): {err[-2000:]}")
        outs.append(json.loads(out.strip().splitlines()[-1]))
    # The slower party's time per image; party 0's counters (both directions).
    lat = [max(a0, a1) for a0, a1 in zip(outs[0]["latency_ms"], outs[1]["latency_ms"])]
    doc = {
        "latency_ms_median": statistics.median(lat), "latency_ms_min": min(lat),
        "latency_ms_max": max(lat), "online_bytes": statistics.median(outs[0]["bytes"]),
        "rounds": statistics.median(outs[0]["rounds"]), "agreement": outs[0]["agreement"],
        "images": a.images, "torch": outs[0]["torch"], "crypten": outs[0]["crypten"],
        "threads_per_party": a.threads,
    }
    print(json.dumps(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
