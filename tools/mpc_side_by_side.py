#!/usr/bin/env python3
"""veil's secure two-server inference and CrypTen side by side on the same networks, in one
run on one machine, alternating (issue #22): `veil mpc bench --model M --weights W --json`
(four processes over mutual TLS on loopback, batch 1) against tools/crypten_bench.py (two
processes over loopback, batch 1) on the identical network (built from the spec in W). Prints
a Markdown table: medians (min-max over rounds) of both, the speed-up (CrypTen / veil time)
and the traffic ratio (CrypTen / veil online bytes, both directions), with veil's floor. No
reference number is stored anywhere: every figure comes from this run.

Usage: python3 tools/mpc_side_by_side.py --model minionn=runs/minionn-mnist/model.safetensors
           [--model ...] [--veil target/release/veil] [--python PY] [--rounds 3]
           [--images 20] [--json OUT]
`--python` runs the CrypTen side (an interpreter with crypten and torch; see
tools/crypten_bench.py). Without them the tool says so, runs nothing and exits 0 (CI runs it
this way).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import veil_torch  # noqa: E402  (lazy about torch: the probe runs in another interpreter)


def run_json(cmd, retry_crash=False):
    """Runs `cmd` and parses its JSON. With `retry_crash`, a run that dies of a crash (CrypTen's
    party processes sometimes abort in teardown: "terminate called without an active
    exception") is run once more, and says so on stderr; veil's runs are never retried."""
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0 and retry_crash and "terminate called" in p.stderr:
        print(f"{' '.join(cmd[:4])} ... crashed (status {p.returncode}); running it once more", file=sys.stderr)
        p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed (status {p.returncode}): {p.stderr[-1500:]}")
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError:
        return json.loads(p.stdout.strip().splitlines()[-1])


def spread(xs, scale=1.0, fmt="{:.1f}"):
    xs = [x * scale for x in xs]
    return f"{fmt.format(statistics.median(xs))} ({fmt.format(min(xs))}-{fmt.format(max(xs))})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", action="append", required=True, help="NAME=WEIGHTS")
    ap.add_argument("--veil", default="target/release/veil")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--images", type=int, default=20, help="images per run and side")
    ap.add_argument("--json", dest="json_out")
    a = ap.parse_args()
    if not veil_torch.interpreter_has(a.python, ["crypten", "torch"]):
        print(f"skipped: {a.python} lacks crypten or torch (see tools/crypten_bench.py); nothing was run")
        return 0
    rows, versions = [], {}
    for spec in a.model:
        name, weights = spec.split("=", 1)
        runs = {"veil": [], "crypten": []}
        for r in range(a.rounds):
            for side in (["veil", "crypten"] if r % 2 == 0 else ["crypten", "veil"]):
                if side == "veil":
                    runs["veil"].append(run_json([a.veil, "mpc", "bench", "--model", name, "--weights", weights,
                                                  "--images", str(a.images), "--json"]))
                else:
                    doc = run_json([a.python, os.path.join(HERE, "crypten_bench.py"), "--weights", weights,
                                    "--images", str(a.images)], retry_crash=True)
                    versions = {"torch": doc["torch"], "crypten": doc["crypten"]}
                    runs["crypten"].append(doc)
        rows.append((name, runs))
    print(f"CrypTen {versions.get('crypten')} (torch {versions.get('torch')}), {a.rounds} rounds alternating, "
          f"{a.images} images per run, batch 1; medians (min-max over rounds)\n")
    print("| network | CrypTen ms | veil ms | faster | CrypTen online KB | veil online KB | less traffic "
          "| veil floor KB (x floor) | rounds CrypTen / veil | agreement CrypTen / veil |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    table = []
    for name, runs in rows:
        c_ms = [x["latency_ms_median"] for x in runs["crypten"]]
        v_ms = [x["latency_ms_median"] for x in runs["veil"]]
        c_b = [x["online_bytes"] for x in runs["crypten"]]
        v_b = [x["online_bytes"] for x in runs["veil"]]
        floor = runs["veil"][0]["floor"]
        floor_b = floor["comparison_bytes"] + floor["linear_bytes"]
        speed = statistics.median(c_ms) / statistics.median(v_ms)
        traffic = statistics.median(c_b) / statistics.median(v_b)
        print(f"| {name} | {spread(c_ms)} | {spread(v_ms, fmt='{:.2f}')} | **{speed:.0f}x** "
              f"| {spread(c_b, 1e-3, '{:.0f}')} | {spread(v_b, 1e-3)} | **{traffic:.0f}x** "
              f"| {floor_b / 1e3:.1f} ({statistics.median(v_b) / floor_b:.2f}x) "
              f"| {statistics.median([x['rounds'] for x in runs['crypten']]):.0f} / {runs['veil'][0]['rounds']} "
              f"| {min(x['agreement'] for x in runs['crypten']):.2f} / {min(x['agreement'] for x in runs['veil']):.2f} |")
        table.append({"network": name, "runs": runs, "speedup": speed, "traffic_ratio": traffic})
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump({"versions": versions, "rows": table}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
