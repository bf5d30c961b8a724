#!/usr/bin/env bash
# mmfuse vs PyTorch on the CPU, same model, same inputs, same thread count: MuSE-small (text
# Transformer 4 x d256, small CNN, CrossTransformer 4 layers, 64 tokens, 64x64 images, 3 classes)
# and the concat baseline. Prints one markdown table (medians, min-max over the runs, ratio
# mmfuse / PyTorch), with torch.compile and ONNX Runtime beside eager PyTorch and the ratio to
# the best other engine per row.
#
#   THREADS=2 TORCH_PYTHON=/work/torchenv/bin/python bench/run.sh
#
# Environment: THREADS (2), REPS measured repeats per process (5), ROUNDS (1; runs are pooled
# over rounds), TRAIN_STEPS per repeat (1), INFER_ITERS batches of 32 per repeat (1),
# LATENCY_ITERS batch-1 predictions per repeat (5), COLD_RUNS (5), TORCH_PYTHON (else
# bench/.venv/bin/python from bench/setup.sh), RESULTS folder (bench/results), MMFUSE_FEATURES
# (cargo features of the mmfuse build, default mmfuse/wgpu: the test command's build; the
# workspace enables burn's `rayon` and `simd`, so burn-flex uses RAYON_NUM_THREADS threads),
# ENGINES (default "compile onnxruntime").
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
# the test command's feature set (the CPU backend is the same with the GPU backend compiled in):
# the bench reuses its build instead of compiling every dependency again
MMFUSE_FEATURES="${MMFUSE_FEATURES-mmfuse/wgpu}"
BIN="$(cargo bench --workspace --bench muse_vs_torch --no-run ${MMFUSE_FEATURES:+--features "$MMFUSE_FEATURES"} --message-format=json 2>/dev/null |
    "$PY" bench/cargo_artifact.py muse_vs_torch)"
[ -x "$BIN" ] || { echo "could not build the muse_vs_torch bench (cargo bench --workspace --bench muse_vs_torch --no-run)" >&2; exit 1; }
TORCH_BENCH=bench/pytorch/muse_small.py

mkdir -p "$RESULTS"
OUT="$RESULTS/results-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
COMMON=(--reps "$REPS" --train-steps "$TRAIN_STEPS" --infer-iters "$INFER_ITERS" --latency-iters "$LATENCY_ITERS")

"$PY" "$TORCH_BENCH" --check >&2
# the other engines: torch.compile (inductor) and ONNX Runtime (CPU provider); ENGINES="" for
# eager PyTorch alone
ENGINES="${ENGINES-compile onnxruntime}"
for round in $(seq "$ROUNDS"); do
  for model in muse concat; do
    echo "round $round/$ROUNDS: $model" >&2
    "$BIN" --models "$model" "${COMMON[@]}" | tee -a "$OUT" >&2
    "$PY" "$TORCH_BENCH" --threads "$THREADS" --models "$model" "${COMMON[@]}" | tee -a "$OUT" >&2
    [ "$model" = muse ] && "$PY" "$TORCH_BENCH" --threads "$THREADS" --models muse_loop "${COMMON[@]}" | tee -a "$OUT" >&2
    for engine in $ENGINES; do
      "$PY" "$TORCH_BENCH" --threads "$THREADS" --engine "$engine" --workdir "$WORK" --models "$model" "${COMMON[@]}" | tee -a "$OUT" >&2
    done
  done
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

echo "the machine's limit: FMA peak of the cores in use, and each engine's best matmul" >&2
"$BIN" --fma-peak --reps "$REPS" | tee -a "$OUT" >&2
"$BIN" --matmul-peak --reps "$REPS" | tee -a "$OUT" >&2
"$PY" "$TORCH_BENCH" --threads "$THREADS" --matmul-peak --reps "$REPS" | tee -a "$OUT" >&2
"$PY" "$TORCH_BENCH" --threads "$THREADS" --engine onnxruntime --matmul-peak --reps "$REPS" | tee -a "$OUT" >&2

echo "raw results: $OUT" >&2
"$PY" bench/pytorch/make_table.py "$OUT" --threads "$THREADS" --features "${MMFUSE_FEATURES:-none}"
