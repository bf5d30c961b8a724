"""The other engines' side of bench/encoders.sh (the `encode` workload): forward throughput of
all-MiniLM-L6-v2 (batch 32 x 64 tokens, transformers BertModel, last hidden state) and
torchvision MobileNetV2 (batch 8 x 224x224, logits), from the same weight files as mmfuse.
One JSON line per model and metric, in bench/run.sh's format (`impl`, `model`, `metric`,
`runs`: samples/s of each repeat, after one warm-up).

Engines (`--engine`): `eager` (PyTorch as written, no grad); `compile` (`torch.compile`,
inductor, static shapes: compilation + first call timed apart as `compile_s`); `onnxruntime`
(each model exported with `torch.onnx.export(dynamo=True)` at the benchmark's shape, its output
checked against eager first, then run by ONNX Runtime's CPU provider with
`intra_op_num_threads` = the thread count; export + session creation timed apart as `export_s`).

    python encoders.py SHARED_DIR THREADS [--engine eager|compile|onnxruntime] [--reps 7]
        [--models minilm,mobilenet_v2] [--workdir DIR]
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch
import torchvision
from safetensors.torch import load_file
from transformers import BertModel

from muse_small import emit  # the results format of bench/run.sh

IMPL = {"eager": "pytorch", "compile": "torch_compile", "onnxruntime": "onnxruntime"}


class LastHidden(torch.nn.Module):
    """BertModel's last hidden state as a plain tensor (what `mmfuse encode` pools from)."""

    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, ids, mask):
        return self.bert(input_ids=ids, attention_mask=mask).last_hidden_state


def minilm(shared):
    bert = BertModel.from_pretrained(f"{shared}/models/all-minilm-l6-v2", add_pooling_layer=False, attn_implementation="eager").eval()
    b, l = 32, 64
    # the same ids as crates/mmfuse/benches/encoders.rs
    ids = torch.tensor([[101 if p == 0 else 1000 + ((i * l + p) * 7919 % 20000) for p in range(l)] for i in range(b)])
    mask = torch.ones(b, l, dtype=torch.long)
    return LastHidden(bert).eval(), (ids, mask), ["ids", "mask"], b


def mobilenet(shared):
    net = torchvision.models.mobilenet_v2()
    net.load_state_dict(load_file(f"{shared}/models/mobilenet-v2-imagenet/model.safetensors"))
    b = 8
    x = torch.randn(b, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    return net.eval(), (x,), ["images"], b


MODELS = {"minilm": minilm, "mobilenet_v2": mobilenet}


def repeats(f, reps, b):
    f()  # warm-up
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        out.append(b / (time.perf_counter() - t))
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("shared")
    p.add_argument("threads", type=int)
    p.add_argument("--engine", default="eager", choices=list(IMPL))
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--models", default="minilm,mobilenet_v2")
    p.add_argument("--workdir", default=None, help="where --engine onnxruntime writes its .onnx files")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_grad_enabled(False)
    impl = IMPL[a.engine]
    if a.engine == "onnxruntime":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = a.threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        workdir = a.workdir or tempfile.mkdtemp()
    for name in a.models.split(","):
        model, inputs, input_names, b = MODELS[name](a.shared)
        if a.engine == "eager":
            f = lambda: model(*inputs)  # noqa: E731
        elif a.engine == "compile":
            fwd = torch.compile(model, dynamic=False)
            t0 = time.perf_counter()
            fwd(*inputs)
            emit(name, "compile_s", "s", [time.perf_counter() - t0], impl=impl)
            f = lambda: fwd(*inputs)  # noqa: E731
        else:
            path = os.path.join(workdir, f"{name}.onnx")
            t0 = time.perf_counter()
            torch.onnx.export(model, inputs, path, input_names=input_names, output_names=["out"], dynamo=True, optimize=True, verbose=False)
            sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            emit(name, "export_s", "s", [time.perf_counter() - t0], impl=impl)
            feed = {k: v.numpy() for k, v in zip(input_names, inputs)}
            want = model(*inputs).numpy()
            err = float(np.abs(sess.run(["out"], feed)[0] - want).max())
            print(json.dumps({"check": f"onnxruntime_vs_eager_{name}", "max_abs_diff": err, "max_abs_eager": float(np.abs(want).max())}), flush=True)
            if err > 1e-3:
                sys.exit(f"the ONNX export of {name} differs from eager by {err}")
            f = lambda: sess.run(["out"], feed)  # noqa: E731
        emit(name, "samples_per_s", "samples/s", repeats(f, a.reps, b), impl=impl)


if __name__ == "__main__":
    main()
