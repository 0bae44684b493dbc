#!/bin/bash
# Redraws every chart in docs/figures from the results committed in docs/ (no attack, no
# training: ~15 s on 2 cores). Each chart is written as PNG and SVG. Run from the repository
# root after `cargo build --release -p veil-cli`; VEIL=path/to/veil overrides the binary.
set -euo pipefail
V=${VEIL:-${CARGO_TARGET_DIR:-target}/release/veil}
D=docs/results/defend
F=docs/figures/defend
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for n in 6 7 8 9; do "$V" game --figure "$n" --out docs/figures; done
# Fig. 3: the committed CSVs stay (a rerun only changes their placing_seconds timing column).
for f in 3a 3b 3c 3d 3e 3f; do
  "$V" simulate --figure "$f" --out "$tmp/fig3" --json >/dev/null
  cp "$tmp/fig3/fig$f.png" "$tmp/fig3/fig$f.svg" docs/figures/fig3/
done
for r in lenet5-pool1-dp lenet5-pool1-dropout lenet5-pool1-gaussian lenet5-pool1-laplace \
  lenet5-layers-split gtsrb_cnn-conv4-dp gtsrb_cnn-conv4-dp-stale; do
  "$V" defend chart --settings --csv "$D/$r.csv" --png "$F/$r.png"
done
# The equal-accuracy tables go to docs/results (the chart command writes them beside the PNG).
"$V" defend chart --csv "$D/gtsrb_cnn-conv4-dp.csv,$D/gtsrb_cnn-conv4-dp-stale.csv" \
  --accuracy 0.85,0.84,0.8,0.5 --png "$F/gtsrb-dp-attackers.png"
mv "$F/gtsrb-dp-attackers.csv" "$D/gtsrb-dp-attackers.csv"
"$V" defend chart --accuracy 0.99,0.98,0.97,0.95,0.9 --png "$F/lenet5-shields.png" \
  --csv "$D/lenet5-layers-split.csv,$D/lenet5-pool1-dp.csv,$D/lenet5-pool1-gaussian.csv,$D/lenet5-pool1-laplace.csv,$D/lenet5-pool1-dropout.csv,$D/lenet5-obfnet2x10.csv,$D/lenet5-obfnet1x10.csv"
mv "$F/lenet5-shields.csv" "$D/lenet5-shields-equal-accuracy.csv"
for m in lenet5-mnist gtsrb_cnn-gtsrb; do
  "$V" profile --redraw "docs/results/profile-$m.json" --out "$tmp/$m/profile.json"
  cp "$tmp/$m/profile.png" "docs/figures/profile-$m.png"
  cp "$tmp/$m/profile.svg" "docs/figures/profile-$m.svg"
done
echo "charts redrawn; image grids (attack-*, helper-*, reconstructions) come from their runs"
