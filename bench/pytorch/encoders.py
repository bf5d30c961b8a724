"""PyTorch side of bench/encoders.sh: forward throughput of all-MiniLM-L6-v2 (batch 32 x 64
tokens, transformers BertModel) and torchvision MobileNetV2 (batch 8 x 224x224), from the same
weight files as mmfuse, medians and min-max over 7 repeats after one warm-up, one JSON line per
model. Usage: python encoders.py SHARED_DIR THREADS"""
import json
import sys
import time

import torch
import torchvision
from safetensors.torch import load_file
from transformers import BertModel


def timed(f):
    f()
    out = []
    for _ in range(7):
        t = time.perf_counter()
        f()
        out.append(time.perf_counter() - t)
    return out


def stats(v):
    v = sorted(v)
    return v[len(v) // 2], v[0], v[-1]


def main():
    shared, threads = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(threads)
    torch.set_grad_enabled(False)
    bert = BertModel.from_pretrained(f"{shared}/models/all-minilm-l6-v2", add_pooling_layer=False).eval()
    b, l = 32, 64
    ids = torch.tensor([[101 if p == 0 else 1000 + ((i * l + p) * 7919 % 20000) for p in range(l)] for i in range(b)])
    mask = torch.ones(b, l, dtype=torch.long)
    t = timed(lambda: bert(input_ids=ids, attention_mask=mask).last_hidden_state)
    m, lo, hi = stats([b / s for s in t])
    print(json.dumps({"model": "minilm", "batch": b, "tokens": l, "samples_per_s": round(m, 2), "min": round(lo, 2), "max": round(hi, 2)}))
    net = torchvision.models.mobilenet_v2()
    net.load_state_dict(load_file(f"{shared}/models/mobilenet-v2-imagenet/model.safetensors"))
    net.eval()
    b = 8
    x = torch.randn(b, 3, 224, 224)
    t = timed(lambda: net(x))
    m, lo, hi = stats([b / s for s in t])
    print(json.dumps({"model": "mobilenet_v2", "batch": b, "size": 224, "samples_per_s": round(m, 2), "min": round(lo, 2), "max": round(hi, 2)}))


if __name__ == "__main__":
    main()
