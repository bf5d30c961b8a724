#!/usr/bin/env bash
# Prepare the PyTorch side of bench/run.sh and bench/encoders.sh: a virtualenv bench/.venv with torch
# and torchvision (CPU wheels), transformers, safetensors and ONNX Runtime (onnxruntime, onnx, onnxscript).
# CI never needs this. With TORCH_PYTHON=/path/to/python (an interpreter that already has
# torch), nothing is installed: the script only checks it and prints how to run the bench.
#
#   bench/setup.sh
#   TORCH_PYTHON=/work/torchenv/bin/python bench/setup.sh
set -euo pipefail
cd "$(dirname "$0")"
if [ -n "${TORCH_PYTHON:-}" ]; then
  "$TORCH_PYTHON" -c 'import torch; print("torch", torch.__version__, "at", torch.__file__)'
  "$TORCH_PYTHON" -c 'import onnxruntime, onnxscript' 2>/dev/null ||
    echo "note: $TORCH_PYTHON lacks onnxruntime/onnxscript: pip install onnxruntime onnx onnxscript (or ENGINES=compile)"
  echo "use: TORCH_PYTHON=$TORCH_PYTHON bench/run.sh"
  exit 0
fi
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --upgrade pip
# CPU-only wheels: the comparison is on the CPU
.venv/bin/python -m pip install --index-url "${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}" torch torchvision
# bench/encoders.sh also loads MiniLM with transformers and the weights with safetensors
# the other engines of bench/run.sh and bench/encoders.sh: ONNX Runtime and the exporter's packages
# (torch.compile's inductor comes with torch)
.venv/bin/python -m pip install transformers safetensors numpy onnxruntime onnx onnxscript
.venv/bin/python -c 'import torch, torchvision, transformers, onnxruntime; print("torch", torch.__version__, "torchvision", torchvision.__version__, "transformers", transformers.__version__, "onnxruntime", onnxruntime.__version__)'
echo "use: bench/run.sh   (or TORCH_PYTHON=$(pwd)/.venv/bin/python bench/run.sh)"
