#!/usr/bin/env bash
# Twitter-2015 as shipped has no images: every post is the absent-image case. This trains the
# text path of MuSE and of the late-fusion baseline twice each, on the same seed: with the
# images absent (data.missing_image = "absent": the model is told) and with the reference
# code's grey placeholder (data.missing_image = "reference_placeholder"), and prints the test
# entity F1 of each (results.json).
#
#   MMFUSE=target/release/mmfuse DATA=../shared/data/twitter2015 bench/twitter2015_missing.sh
#
# Environment: MMFUSE (the binary), DATA (the corpus folder), OUT (runs folder,
# runs/tw15-missing), SEEDS (42), EXTRA (more --set overrides, e.g. "train.epochs=4").
set -euo pipefail
cd "$(dirname "$0")/.."
MMFUSE="${MMFUSE:-target/release/mmfuse}"
DATA="${DATA:-../shared/data/twitter2015}"
OUT="${OUT:-runs/tw15-missing}"
SEEDS="${SEEDS:-42}"
sets=()
for e in ${EXTRA:-}; do sets+=(--set "$e"); done
for seed in $SEEDS; do
  for policy in absent reference_placeholder; do
    "$MMFUSE" --quiet train --config configs/twitter2015-text-scratch.toml --set data.dir="\"$DATA\"" --set 'model.modality="fused"' \
      --missing-image "$policy" --set train.seed="$seed" "${sets[@]}" --out "$OUT/concat-$policy-$seed"
    "$MMFUSE" --quiet train --config configs/muse-twitter2015-scratch.toml --set data.dir="\"$DATA\"" \
      --missing-image "$policy" --set train.seed="$seed" "${sets[@]}" --out "$OUT/muse-$policy-$seed"
  done
done
python3 - "$OUT" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
print("| model | images | seed | test entity F1 % | dev F1 % | placeholder/absent images counted | time (s) |")
print("|---|---|---:|---:|---:|---:|---:|")
for run in sorted(out.iterdir()):
    r = json.loads((run / "results.json").read_text())
    model, policy, seed = run.name.split("-", 1)[0], run.name.split("-", 1)[1].rsplit("-", 1)[0], run.name.rsplit("-", 1)[1]
    print(f"| {model} | {policy} | {seed} | {100 * r['test']['micro']['f1']:.2f} | {100 * r['dev']['micro']['f1']:.2f} | {r['placeholder_images']} | {r['seconds']:.0f} |")
PY
