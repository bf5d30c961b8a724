#!/usr/bin/env bash
# Forward throughput of the pretrained encoders, mmfuse (burn-flex CPU) vs PyTorch eager, same
# weights, same thread count, one after the other in one invocation:
#   TORCH_PYTHON=/path/to/venv/bin/python THREADS=2 bench/encoders.sh
# (TORCH_PYTHON defaults to bench/.venv/bin/python, made by bench/setup.sh.)
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS="${THREADS:-2}"
PY="${TORCH_PYTHON:-bench/.venv/bin/python}"
SHARED="${MMFUSE_SHARED_DIR:-$(cd .. && pwd)/shared}"
export RAYON_NUM_THREADS="$THREADS" OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"
ours=$(MMFUSE_SHARED_DIR="$SHARED" cargo bench -q -p mmfuse --bench encoders 2>/dev/null | grep '^{')
theirs=$("$PY" bench/pytorch/encoders.py "$SHARED" "$THREADS" | grep '^{')
python3 - "$ours" "$theirs" "$THREADS" <<'PY'
import json, sys
ours = {d["model"]: d for d in map(json.loads, sys.argv[1].splitlines())}
theirs = {d["model"]: d for d in map(json.loads, sys.argv[2].splitlines())}
print(f"threads: {sys.argv[3]}; samples/s, median (min-max) of 7 runs")
print("| encoder | mmfuse | PyTorch | mmfuse / PyTorch |")
print("|---|---:|---:|---:|")
for k, name in [("minilm", "all-MiniLM-L6-v2, batch 32 x 64 tokens"), ("mobilenet_v2", "MobileNetV2, batch 8 x 224x224")]:
    o, t = ours[k], theirs[k]
    print(f"| {name} | {o['samples_per_s']:.1f} ({o['min']:.1f}-{o['max']:.1f}) | {t['samples_per_s']:.1f} ({t['min']:.1f}-{t['max']:.1f}) | {o['samples_per_s'] / t['samples_per_s']:.2f}x |")
PY
