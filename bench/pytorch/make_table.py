"""The markdown table of bench/run.sh from its JSON-lines results.

Lines with the same (impl, model, metric) are pooled (their `runs` joined); each cell is the
median (min-max) of the pooled runs; ratio = mmfuse median / PyTorch median.

    python make_table.py RESULTS.jsonl [--threads N]
"""

import argparse
import json
import statistics
from collections import defaultdict

# sizes of MuSE-small (crates/mmfuse/benches/muse_vs_torch.rs, muse_small.py)
D, LAYERS, D_FF, SEQ, N_CLASSES = 256, 4, 1024, 64, 3
IMAGE, CHANNELS, IMAGE_TOKENS = 64, (32, 64, 128), 64


def encoder_layer_flops(l):
    """Per sample, multiply-add = 2 FLOPs: Q, K, V, O projections, QK^T and AV, the FF."""
    return 2 * l * (4 * D * D + 2 * D * D_FF) + 2 * 2 * l * l * D


def forward_flops(model):
    """Matmul and convolution FLOPs of one sample's inference forward (elementwise work left out)."""
    text = LAYERS * encoder_layer_flops(SEQ)
    cnn, c_in, side = 0, 3, IMAGE
    for c in CHANNELS:
        cnn += 2 * side * side * c_in * 9 * c
        c_in, side = c, side // 2
    cnn += 2 * IMAGE_TOKENS * c_in * D
    head = 2 * (2 * D * D + D * N_CLASSES)
    if model == "concat":
        return text + cnn + head
    cross = LAYERS * (encoder_layer_flops(SEQ + 1) + encoder_layer_flops(IMAGE_TOKENS + 1))
    return text + cnn + cross + head


def load(path):
    runs = defaultdict(list)
    for line in open(path):
        line = line.strip()
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        if "runs" in r:
            runs[(r["impl"], r["model"], r["metric"])] += [float(x) for x in r["runs"]]
    return runs


def fmt(v):
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def cell(runs):
    if not runs:
        return "–", None
    m = statistics.median(runs)
    return f"{fmt(m)} ({fmt(min(runs))}–{fmt(max(runs))}), n={len(runs)}", m


def gpu_table(path, runs):
    info = [json.loads(line) for line in open(path) if line.startswith('{"info"')]
    print(" ".join(json.dumps(i) for i in info) + "\n")
    print("ratio = mmfuse / PyTorch (above 1 is better for /s rows, worse for ms, s, MB rows)\n")
    print("| metric | mmfuse median (min–max) | PyTorch median (min–max) | ratio |")
    print("|---|---|---|---|")
    batches = sorted({int(k[2].rsplit("_b", 1)[1]) for k in runs if k[2].startswith("infer_samples_per_s_b")})
    for model in ("muse", "concat"):
        rows = [(f"{model} training steps/s (batch 16)", "train_steps_per_s")]
        rows += [(f"{model} inference samples/s (batch {b})", f"infer_samples_per_s_b{b}") for b in batches]
        rows += [
            (f"{model} latency ms (batch 1)", "latency_ms_b1"),
            (f"{model} first training step s (compilation, once)", "first_train_s"),
            (f"{model} first inference batch s (after training)", "first_infer_s"),
            (f"{model} peak GPU memory MB (allocator reserved)", "peak_device_mb"),
        ]
        for label, metric in rows:
            c1, m1 = cell(runs.get(("mmfuse", model, metric), []))
            c2, m2 = cell(runs.get(("pytorch", model, metric), []))
            ratio = f"{m1 / m2:.2f}" if m1 is not None and m2 else "–"
            print(f"| {label} | {c1} | {c2} | {ratio} |")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("results")
    p.add_argument("--threads", default="?")
    p.add_argument("--features", default="none", help="extra cargo features of the mmfuse build")
    p.add_argument("--gpu", action="store_true", help="the table of bench/gpu.sh")
    a = p.parse_args()
    runs = load(a.results)
    if a.gpu:
        gpu_table(a.results, runs)
        return
    rows = [
        ("MuSE training steps/s (batch 16)", "muse", "muse", "train_steps_per_s"),
        ("MuSE training steps/s vs PyTorch loop exchange", "muse", "muse_loop", "train_steps_per_s"),
        ("MuSE inference samples/s (batch 32)", "muse", "muse", "infer_samples_per_s_b32"),
        ("MuSE latency ms (batch 1)", "muse", "muse", "latency_ms_b1"),
        ("concat training steps/s (batch 16)", "concat", "concat", "train_steps_per_s"),
        ("concat inference samples/s (batch 32)", "concat", "concat", "infer_samples_per_s_b32"),
        ("concat latency ms (batch 1)", "concat", "concat", "latency_ms_b1"),
        ("MuSE cold start s (process start → first prediction, batch 1)", "muse", "muse", "cold_start_s"),
        ("MuSE peak RSS MB (load + predict batch 1)", "muse", "muse", "peak_rss_mb_b1"),
        ("MuSE peak RSS MB (load + 3 × predict batch 32)", "muse", "muse", "peak_rss_mb_b32"),
        ("matmul 1024×1024 GFLOP/s (same backend)", "matmul1024", "matmul1024", "matmul_gflops"),
    ]
    print(f"threads = {a.threads}; mmfuse extra cargo features: {a.features}; ratio = mmfuse / PyTorch (above 1 is better for /s rows, worse for ms, s, MB rows)\n")
    print("| metric | mmfuse median (min–max) | PyTorch median (min–max) | ratio |")
    print("|---|---|---|---|")
    for label, ours, theirs, metric in rows:
        c1, m1 = cell(runs.get(("mmfuse", ours, metric), []))
        c2, m2 = cell(runs.get(("pytorch", theirs, metric), []))
        ratio = f"{m1 / m2:.2f}" if m1 is not None and m2 else "–"
        print(f"| {label} | {c1} | {c2} | {ratio} |")
    # achieved GFLOP/s of the inference forward at batch 32 (matmuls and convolutions only)
    for model in ("muse", "concat"):
        gf = forward_flops(model) / 1e9
        scale = lambda v: [x * gf for x in v]  # noqa: E731
        c1, m1 = cell(scale(runs.get(("mmfuse", model, "infer_samples_per_s_b32"), [])))
        c2, m2 = cell(scale(runs.get(("pytorch", model, "infer_samples_per_s_b32"), [])))
        ratio = f"{m1 / m2:.2f}" if m1 is not None and m2 else "–"
        print(f"| {model} inference GFLOP/s achieved (batch 32, {gf:.2f} GFLOP/sample) | {c1} | {c2} | {ratio} |")


if __name__ == "__main__":
    main()
