#!/usr/bin/env bash
# mmfuse vs PyTorch on the CPU, same model, same inputs, same thread count: MuSE-small (text
# Transformer 4 x d256, small CNN, CrossTransformer 4 layers, 64 tokens, 64x64 images, 3 classes)
# and the concat baseline. Prints one markdown table (medians, min-max over the runs, ratio
# mmfuse / PyTorch).
#
#   THREADS=2 TORCH_PYTHON=/work/torchenv/bin/python bench/run.sh
#
# Environment: THREADS (2), REPS measured repeats per process (5), ROUNDS (1; runs are pooled
# over rounds), TRAIN_STEPS per repeat (1), INFER_ITERS batches of 32 per repeat (1),
# LATENCY_ITERS batch-1 predictions per repeat (5), COLD_RUNS (5), TORCH_PYTHON (else
# bench/.venv/bin/python from bench/setup.sh), RESULTS folder (bench/results), MMFUSE_FEATURES
# (extra cargo features for the mmfuse build; the workspace already enables burn's `rayon` and
# `simd`, so burn-flex uses RAYON_NUM_THREADS threads).
# The two sides run alternately, model by model, in the same invocation.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS="${THREADS:-2}"
REPS="${REPS:-5}"
ROUNDS="${ROUNDS:-1}"
TRAIN_STEPS="${TRAIN_STEPS:-1}"
INFER_ITERS="${INFER_ITERS:-1}"
LATENCY_ITERS="${LATENCY_ITERS:-5}"
COLD_RUNS="${COLD_RUNS:-5}"
PY="${TORCH_PYTHON:-bench/.venv/bin/python}"
RESULTS="${RESULTS:-bench/results}"
[ -x "$PY" ] || { echo "no Python with torch at $PY: run bench/setup.sh or set TORCH_PYTHON" >&2; exit 1; }
"$PY" -c 'import torch' || { echo "$PY cannot import torch" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "needs GNU time at /usr/bin/time (Debian: apt-get install time)" >&2; exit 1; }

# the same thread count on both sides (burn-flex: rayon; torch: intra-op pool)
export RAYON_NUM_THREADS="$THREADS" OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS" THREADS

echo "building the mmfuse bench (release)..." >&2
MMFUSE_FEATURES="${MMFUSE_FEATURES:-}"
BIN="$(cargo bench -p mmfuse --bench muse_vs_torch --no-run ${MMFUSE_FEATURES:+--features "$MMFUSE_FEATURES"} --message-format=json 2>/dev/null |
    "$PY" bench/cargo_artifact.py muse_vs_torch)"
[ -x "$BIN" ] || { echo "could not build the muse_vs_torch bench (cargo bench -p mmfuse --bench muse_vs_torch --no-run)" >&2; exit 1; }
TORCH_BENCH=bench/pytorch/muse_small.py

mkdir -p "$RESULTS"
OUT="$RESULTS/results-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
COMMON=(--reps "$REPS" --train-steps "$TRAIN_STEPS" --infer-iters "$INFER_ITERS" --latency-iters "$LATENCY_ITERS")

"$PY" "$TORCH_BENCH" --check >&2
for round in $(seq "$ROUNDS"); do
  echo "round $round/$ROUNDS: MuSE" >&2
  "$BIN" --models muse "${COMMON[@]}" | tee -a "$OUT" >&2
  "$PY" "$TORCH_BENCH" --threads "$THREADS" --models muse "${COMMON[@]}" | tee -a "$OUT" >&2
  "$PY" "$TORCH_BENCH" --threads "$THREADS" --models muse_loop "${COMMON[@]}" | tee -a "$OUT" >&2
  echo "round $round/$ROUNDS: concat" >&2
  "$BIN" --models concat "${COMMON[@]}" | tee -a "$OUT" >&2
  "$PY" "$TORCH_BENCH" --threads "$THREADS" --models concat "${COMMON[@]}" | tee -a "$OUT" >&2
done

echo "cold start and peak RSS" >&2
"$BIN" --save "$WORK/muse.bpk" 2>/dev/null
"$PY" "$TORCH_BENCH" --save "$WORK/muse.pt"
# one untimed run each: the page cache holds both binaries/libraries afterwards
"$BIN" --cold-start "$WORK/muse.bpk" >/dev/null
"$PY" "$TORCH_BENCH" --threads "$THREADS" --cold-start "$WORK/muse.pt" >/dev/null
# process start -> first prediction (batch 1) and its max RSS; max RSS of load + 3 x batch 32
timed() { # impl metric_time metric_rss command...
  local impl="$1" mt="$2" mr="$3"
  shift 3
  /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >>"$WORK/inprocess.jsonl"
  read -r secs kb <"$WORK/time"
  [ -n "$mt" ] && echo "{\"impl\":\"$impl\",\"model\":\"muse\",\"metric\":\"$mt\",\"runs\":[$secs]}" >>"$OUT"
  echo "{\"impl\":\"$impl\",\"model\":\"muse\",\"metric\":\"$mr\",\"runs\":[$(awk "BEGIN{print $kb/1024}")]}" >>"$OUT"
}
for _ in $(seq "$COLD_RUNS"); do
  timed mmfuse cold_start_s peak_rss_mb_b1 "$BIN" --cold-start "$WORK/muse.bpk"
  timed pytorch cold_start_s peak_rss_mb_b1 "$PY" "$TORCH_BENCH" --threads "$THREADS" --cold-start "$WORK/muse.pt"
  timed mmfuse "" peak_rss_mb_b32 "$BIN" --cold-start "$WORK/muse.bpk" --batch 32 --iters 3
  timed pytorch "" peak_rss_mb_b32 "$PY" "$TORCH_BENCH" --threads "$THREADS" --cold-start "$WORK/muse.pt" --batch 32 --iters 3
done
cat "$WORK/inprocess.jsonl" >>"$OUT"

echo "matmul peak" >&2
"$BIN" --matmul-peak --reps "$REPS" | tee -a "$OUT" >&2
"$PY" "$TORCH_BENCH" --threads "$THREADS" --matmul-peak --reps "$REPS" | tee -a "$OUT" >&2

echo "raw results: $OUT" >&2
"$PY" bench/pytorch/make_table.py "$OUT" --threads "$THREADS" --features "${MMFUSE_FEATURES:-none}"
