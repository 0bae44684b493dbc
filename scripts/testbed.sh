#!/usr/bin/env bash
# veil runtime test bed: a coordinator, a source (cam0) and N helpers as separate `veil`
# processes, on loopback or each in its own network namespace with its egress shaped by tc
# to its device's link (802.11n 72.2 Mb/s for rpi3/nexus5, 802.11ah 7.2 Mb/s for stm32h7),
# then `veil net load` drives the source with Poisson requests and reports latency
# percentiles, rejections, bytes per link and every node's memory.
#
# Usage: scripts/testbed.sh [--netns] [--helpers N] [--stm32 K] [--emulate]
#          [--rate R] [--requests N | --duration S] [--sample-s S]
#          [--weights FILE] [--tau T] [--out DIR] [--veil BIN] [--delay-ms D]
#          [--partial-sums masked|plain]
#   --netns     one namespace per node on a bridge, tc tbf shaping (needs root, iproute2)
#   --stm32 K   the last K helpers are stm32h7 (7.2 Mb/s); the others rpi3 (72.2 Mb/s)
#   --emulate   nodes compute at their device class's speed (multiplications / e)
#   --delay-ms  one-way netem delay added on every shaped link (default 0)
#   --partial-sums  how partial sums travel (the coordinator's flag; default masked)
# Outputs in --out (default runs/testbed): coordinator.out (one JSON line per plan),
# load.json (the report), trace.jsonl (one line per request), samples.csv, *.log.
set -euo pipefail

helpers=7 stm32=0 netns=0 emulate=0 rate=10 requests=200 duration="" sample_s=0
weights=runs/lenet5-mnist/model.safetensors tau=0.95 out=runs/testbed veil=target/release/veil
delay_ms=0 partial_sums=masked
while [ $# -gt 0 ]; do
  case "$1" in
    --netns) netns=1 ;;
    --emulate) emulate=1 ;;
    --helpers) helpers=$2; shift ;;
    --stm32) stm32=$2; shift ;;
    --rate) rate=$2; shift ;;
    --requests) requests=$2; shift ;;
    --duration) duration=$2; shift ;;
    --sample-s) sample_s=$2; shift ;;
    --weights) weights=$2; shift ;;
    --tau) tau=$2; shift ;;
    --out) out=$2; shift ;;
    --veil) veil=$2; shift ;;
    --delay-ms) delay_ms=$2; shift ;;
    --partial-sums) partial_sums=$2; shift ;;
    *) echo "testbed: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$veil" ] || { echo "testbed: no veil binary at $veil (cargo build --release)" >&2; exit 2; }
[ -f "$weights" ] || { echo "testbed: no weights at $weights (veil train first)" >&2; exit 2; }
mkdir -p "$out"
out=$(cd "$out" && pwd)
veil=$(cd "$(dirname "$veil")" && pwd)/$(basename "$veil")
weights=$(cd "$(dirname "$weights")" && pwd)/$(basename "$weights")
keys=$out/keys
"$veil" net keygen --helpers "$helpers" --out "$keys" >/dev/null

names=(coordinator cam0)
for ((i = 0; i < helpers; i++)); do names+=("h$i"); done
device_of() {
  case "$1" in
    coordinator | cam0) echo rpi3 ;;
    h*) local i=${1#h}; if ((i >= helpers - stm32)); then echo stm32h7; else echo rpi3; fi ;;
  esac
}
rate_of() { [ "$(device_of "$1")" = stm32h7 ] && echo 7.2mbit || echo 72.2mbit; }

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if ((netns)); then
    for n in "${names[@]}"; do ip netns del "veil-$n" 2>/dev/null || true; done
    ip link del veilbr0 2>/dev/null || true
  fi
}
trap cleanup EXIT

declare -A addr
if ((netns)); then
  cleanup # leftovers of an interrupted run
  for n in "${names[@]}"; do ip link del "vb-$n" 2>/dev/null || true; done
  ip link add veilbr0 type bridge
  ip addr add 10.77.0.1/24 dev veilbr0
  ip link set veilbr0 up
  k=10
  for n in "${names[@]}"; do
    ns=veil-$n
    ip netns add "$ns"
    ip link add "vb-$n" type veth peer name "vn-$n"
    ip link set "vb-$n" master veilbr0 up
    ip link set "vn-$n" netns "$ns"
    ip -n "$ns" addr add "10.77.0.$k/24" dev "vn-$n"
    ip -n "$ns" link set "vn-$n" up
    ip -n "$ns" link set lo up
    if [ "$n" != coordinator ]; then
      # The node's sending rate is its device's link rate (rho_i of the cost model).
      if ((delay_ms > 0)); then
        ip netns exec "$ns" tc qdisc add dev "vn-$n" root handle 1: netem delay "${delay_ms}ms"
        ip netns exec "$ns" tc qdisc add dev "vn-$n" parent 1: handle 2: tbf rate "$(rate_of "$n")" burst 2kb latency 400ms
      else
        ip netns exec "$ns" tc qdisc add dev "vn-$n" root tbf rate "$(rate_of "$n")" burst 2kb latency 400ms
      fi
    fi
    addr[$n]=10.77.0.$k:7000
    k=$((k + 1))
  done
  # `exec`: the background job's pid is the node's own, so cleanup can stop it.
  run_in() { local n=$1; shift; exec ip netns exec "veil-$n" "$@"; }
else
  port=17000
  for n in "${names[@]}"; do addr[$n]=127.0.0.1:$port; port=$((port + 1)); done
  run_in() { shift; exec "$@"; }
fi

run_in coordinator "$veil" coordinator --listen "${addr[coordinator]}" --weights "$weights" \
  --tau "$tau" --helpers "$helpers" --keys "$keys" --partial-sums "$partial_sums" >"$out/coordinator.out" 2>"$out/coordinator.log" &
pids+=($!)
node_flags=()
((emulate)) && node_flags+=(--emulate)
for n in "${names[@]:1}"; do
  role=helper; [ "$n" = cam0 ] && role=source
  run_in "$n" "$veil" node --name "$n" --role "$role" --device "$(device_of "$n")" \
    --listen "${addr[$n]}" --coordinator "${addr[coordinator]}" --keys "$keys" \
    "${node_flags[@]}" 2>"$out/$n.log" &
  pids+=($!)
done

for _ in $(seq 600); do
  grep -q '"planned":true' "$out/coordinator.out" 2>/dev/null && break
  sleep 0.1
done
grep -q '"planned":true' "$out/coordinator.out" || { echo "testbed: no plan; see $out/coordinator.log" >&2; exit 1; }
head -n1 "$out/coordinator.out"

load=(--source-addr "${addr[cam0]}" --keys "$keys" --rate "$rate" --weights "$weights"
  --trace "$out/trace.jsonl" --samples "$out/samples.csv" --sample-s "$sample_s" --json)
if [ -n "$duration" ]; then load+=(--duration-s "$duration"); else load+=(--requests "$requests"); fi
"$veil" net load "${load[@]}" >"$out/load.json"
python3 - "$out/load.json" "$out/coordinator.out" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
plan = json.loads(open(sys.argv[2]).readline())
s = r["summary"]
print(f"requests {s['requests']}: answered {s['answered']}, rejected {s['rejected']}, failed {s['failed']}")
l = s["latency_ms"]
print(f"latency ms: mean {l['mean']:.2f} p50 {l['p50']:.2f} p90 {l['p90']:.2f} p95 {l['p95']:.2f} p99 {l['p99']:.2f} max {l['max']:.2f}")
print(f"cost model: {plan['latency_s_planned']*1e3:.2f} ms ({(l['p50']/(plan['latency_s_planned']*1e3)-1)*100:+.0f}% measured p50), "
      f"with {plan['hops']} hops of overhead {plan['latency_s_calibrated']*1e3:.2f} ms ({(l['p50']/(plan['latency_s_calibrated']*1e3)-1)*100:+.0f}%), "
      f"{plan['shared_bytes_planned']:.0f} bytes per request")
if r.get("check"):
    c = r["check"]; print(f"same argmax {c['same_argmax']}/{c['answered']}, max |diff| {c['max_abs_logit_diff']:.2e}")
for k in r["links"]:
    print(f"  {k['from']:>5} -> {k['to']:<5} {k['messages']:>7} msgs {k['value_bytes']:>12} value B {k['frame_bytes']:>12} frame B")
for m in r["memory"]:
    print(f"  {m['name']:>5} RSS {m['first_kib']} -> {m['last_kib']} KiB (max {m['max_kib']}), open requests <= {m['max_live_requests']}")
EOF
