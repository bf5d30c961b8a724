#!/usr/bin/env bash
# mmfuse on the GPU (burn's wgpu backend, Vulkan) vs PyTorch on CUDA: the MuSE-small and concat
# models of bench/run.sh, same inputs, same batches. Prints one markdown table: train steps/s
# (batch 16), inference samples/s (batch 32 and 256), batch-1 latency, peak GPU memory of each
# side's allocator, and the first training step / first inference batch (kernel compilation,
# autotuning) apart from the steady state.
#
#   bench/gpu.sh                                 # on a machine with an NVIDIA GPU and torch (CUDA)
#   MMFUSE_DEVICE=gpu:software TORCH_DEVICE=cpu bench/gpu.sh   # the same path on lavapipe (no GPU)
#
# Environment: BIN (a prebuilt muse_vs_torch bench binary built with `--features mmfuse/wgpu`;
# else it is built here), MMFUSE_DEVICE (gpu), TORCH_DEVICE (cuda), TORCH_PYTHON (python3),
# REPS (5), TRAIN_STEPS (5), INFER_ITERS (3), LATENCY_ITERS (20), BATCHES (32,256), RESULTS
# (bench/results). Needs libvulkan.so.1 and the GPU's Vulkan driver at run time: where the
# loader is missing, a libvulkan1 .deb in bench/gpu-deps/ (apt-get download libvulkan1) is
# unpacked with dpkg -x; NVIDIA's ICD file is found in the usual places or VK_DRIVER_FILES.
set -euo pipefail
cd "$(dirname "$0")/.."
MMFUSE_DEVICE="${MMFUSE_DEVICE:-gpu}"
TORCH_DEVICE="${TORCH_DEVICE:-cuda}"
PY="${TORCH_PYTHON:-python3}"
REPS="${REPS:-5}"
RESULTS="${RESULTS:-bench/results}"
COMMON=(--reps "$REPS" --train-steps "${TRAIN_STEPS:-5}" --infer-iters "${INFER_ITERS:-3}" --latency-iters "${LATENCY_ITERS:-20}" --infer-batches "${BATCHES:-32,256}")

if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1 '; then
  deb="$(ls bench/gpu-deps/libvulkan1_*.deb 2>/dev/null | head -1 || true)"
  [ -n "$deb" ] || { echo "no libvulkan.so.1 on this machine and no bench/gpu-deps/libvulkan1_*.deb to unpack" >&2; exit 1; }
  VKROOT="$(mktemp -d)"
  dpkg -x "$deb" "$VKROOT"
  export LD_LIBRARY_PATH="$VKROOT/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "using the Vulkan loader from $deb" >&2
fi
if [ -z "${VK_DRIVER_FILES:-}" ] && [ "$MMFUSE_DEVICE" != gpu:software ]; then
  for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
    if [ -e "$f" ]; then export VK_DRIVER_FILES="$f"; break; fi
  done
fi

if [ -z "${BIN:-}" ]; then
  echo "building the mmfuse bench with the wgpu backend (release)..." >&2
  # --workspace: the same feature set as the test build, so its artifacts are reused
  BIN="$(cargo bench --workspace --bench muse_vs_torch --no-run --features mmfuse/wgpu --message-format=json 2>/dev/null |
    "$PY" bench/cargo_artifact.py muse_vs_torch)"
fi
[ -x "$BIN" ] || { echo "no bench binary (BIN=$BIN)" >&2; exit 1; }
"$PY" -c "import torch; d = torch.device('$TORCH_DEVICE'); assert d.type != 'cuda' or torch.cuda.is_available(), 'torch sees no CUDA GPU'" ||
  { echo "$PY cannot run torch on $TORCH_DEVICE" >&2; exit 1; }

mkdir -p "$RESULTS"
OUT="$RESULTS/gpu-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
{
  echo "{\"info\":\"gpu\",\"mmfuse_device\":\"$MMFUSE_DEVICE\",\"torch_device\":\"$TORCH_DEVICE\",\"date\":\"$(date -u +%FT%TZ)\"}"
  "$PY" -c "import json, torch; print(json.dumps({'info': 'torch', 'version': torch.__version__, 'cuda': torch.version.cuda, 'gpu': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}))"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed 's/^/{"info":"nvidia-smi","gpu":"/; s/$/"}/' || true
} | tee -a "$OUT" >&2
for model in muse concat; do
  echo "$model: mmfuse on $MMFUSE_DEVICE" >&2
  "$BIN" --device "$MMFUSE_DEVICE" --models "$model" "${COMMON[@]}" | tee -a "$OUT" >&2
  echo "$model: PyTorch on $TORCH_DEVICE" >&2
  "$PY" bench/pytorch/muse_small.py --device "$TORCH_DEVICE" --models "$model" "${COMMON[@]}" | tee -a "$OUT" >&2
done
echo "raw results: $OUT" >&2
"$PY" bench/pytorch/make_table.py "$OUT" --gpu
