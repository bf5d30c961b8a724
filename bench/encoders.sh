#!/usr/bin/env bash
# The `encode` workload: forward throughput of the pretrained encoders (all-MiniLM-L6-v2, batch
# 32 x 64 tokens; MobileNetV2, batch 8 x 224x224), mmfuse (burn-flex CPU) against PyTorch eager,
# torch.compile and ONNX Runtime, same weights, same thread count, alternated engine by engine in
# one invocation (ROUNDS rounds, pooled). Prints a markdown table with the best other engine and
# the ratio to it.
#   TORCH_PYTHON=/path/to/venv/bin/python THREADS=2 ROUNDS=3 bench/encoders.sh
# Environment: THREADS (2), ROUNDS (3), REPS repeats per process (5), ENGINES ("compile
# onnxruntime" beside eager), TORCH_PYTHON (else bench/.venv/bin/python from bench/setup.sh),
# MMFUSE_FEATURES (mmfuse/wgpu: the test command's build), RESULTS folder (bench/results).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS="${THREADS:-2}"
ROUNDS="${ROUNDS:-3}"
REPS="${REPS:-5}"
PY="${TORCH_PYTHON:-bench/.venv/bin/python}"
RESULTS="${RESULTS:-bench/results}"
SHARED="${MMFUSE_SHARED_DIR:-$(cd .. && pwd)/shared}"
ENGINES="${ENGINES-compile onnxruntime}"
[ -x "$PY" ] || { echo "no Python with torch at $PY: run bench/setup.sh or set TORCH_PYTHON" >&2; exit 1; }
export RAYON_NUM_THREADS="$THREADS" OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"

echo "building the mmfuse encoder bench (release)..." >&2
MMFUSE_FEATURES="${MMFUSE_FEATURES-mmfuse/wgpu}"
BIN="$(cargo bench --workspace --bench encoders --no-run ${MMFUSE_FEATURES:+--features "$MMFUSE_FEATURES"} --message-format=json 2>/dev/null |
    "$PY" bench/cargo_artifact.py encoders)"
[ -x "$BIN" ] || { echo "could not build the encoders bench (cargo bench --workspace --bench encoders --no-run)" >&2; exit 1; }

mkdir -p "$RESULTS"
OUT="$RESULTS/encoders-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
for round in $(seq "$ROUNDS"); do
  for model in minilm mobilenet_v2; do
    echo "round $round/$ROUNDS: $model" >&2
    MMFUSE_SHARED_DIR="$SHARED" "$BIN" --reps "$REPS" --models "$model" | grep '^{' | tee -a "$OUT" >&2
    for engine in eager $ENGINES; do
      "$PY" bench/pytorch/encoders.py "$SHARED" "$THREADS" --engine "$engine" --reps "$REPS" --models "$model" --workdir "$WORK" | tee -a "$OUT" >&2
    done
  done
done
echo "raw results: $OUT" >&2
"$PY" bench/pytorch/make_table.py "$OUT" --threads "$THREADS" --features "${MMFUSE_FEATURES:-none}" --encoders
