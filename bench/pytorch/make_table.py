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


ENGINES = [("pytorch", "PyTorch eager"), ("torch_compile", "torch.compile"), ("onnxruntime", "ONNX Runtime")]


def lower_is_better(metric):
    return metric.startswith(("latency", "cold_start", "peak_rss", "compile", "first"))


def info_lines(path):
    """The distinct info lines (pooled files repeat them)."""
    seen = []
    for line in open(path):
        if line.startswith('{"info"') and line.strip() not in seen:
            seen.append(line.strip())
    return [json.loads(line) for line in seen]


def engines_table(a, runs, rows):
    """One row per (label, model, metric): mmfuse, every other engine, the best of them and the ratio."""
    print(f"threads = {a.threads}; mmfuse cargo features: {a.features}; medians (min–max) of the pooled runs;")
    print("vs best = how many times better mmfuse is than the best other engine on the row (above 1: mmfuse is ahead)\n")
    print("| metric | mmfuse | " + " | ".join(n for _, n in ENGINES) + " | best other | mmfuse vs best |")
    print("|---|---|" + "---|" * len(ENGINES) + "---|---|")
    for label, model, metric in rows:
        c1, m1 = cell(runs.get(("mmfuse", model, metric), []))
        cells, best = [], None
        for impl, name in ENGINES:
            c, m = cell(runs.get((impl, model, metric), []))
            cells.append(c)
            if m is not None and (best is None or (m < best[1] if lower_is_better(metric) else m > best[1])):
                best = (name, m)
        if best and m1:
            ratio = best[1] / m1 if lower_is_better(metric) else m1 / best[1]
            vs = f"**{ratio:.2f}×**"
        else:
            vs = "–"
        print(f"| {label} | {c1} | " + " | ".join(cells) + f" | {best[0] if best else '–'} | {vs} |")


def encoder_table(a, runs):
    """bench/encoders.sh: the `encode` workload against every engine, and their one-time costs."""
    engines_table(
        a,
        runs,
        [
            ("all-MiniLM-L6-v2 samples/s (batch 32 × 64 tokens)", "minilm", "samples_per_s"),
            ("MobileNetV2 samples/s (batch 8 × 224×224)", "mobilenet_v2", "samples_per_s"),
        ],
    )
    costs = []
    for model in ("minilm", "mobilenet_v2"):
        for impl, metric, what in [("torch_compile", "compile_s", "torch.compile + first call"), ("onnxruntime", "export_s", "ONNX export + session")]:
            v = runs.get((impl, model, metric), [])
            if v:
                costs.append(f"{model} {what}: {fmt(statistics.median(v))} s")
    if costs:
        print("\nOne-time costs, left out of the rows above: " + "; ".join(costs) + ".")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("results")
    p.add_argument("--threads", default="?")
    p.add_argument("--features", default="none", help="extra cargo features of the mmfuse build")
    p.add_argument("--gpu", action="store_true", help="the table of bench/gpu.sh")
    p.add_argument("--encoders", action="store_true", help="the table of bench/encoders.sh")
    a = p.parse_args()
    runs = load(a.results)
    if a.gpu:
        gpu_table(a.results, runs)
        return
    if a.encoders:
        encoder_table(a, runs)
        return
    rows = [
        ("MuSE training steps/s (batch 16)", "muse", "train_steps_per_s"),
        ("MuSE inference samples/s (batch 32)", "muse", "infer_samples_per_s_b32"),
        ("MuSE latency ms (batch 1)", "muse", "latency_ms_b1"),
        ("concat training steps/s (batch 16)", "concat", "train_steps_per_s"),
        ("concat inference samples/s (batch 32)", "concat", "infer_samples_per_s_b32"),
        ("concat latency ms (batch 1)", "concat", "latency_ms_b1"),
    ]
    engines_table(a, runs, rows)
    # the released exchange loop, cold start and memory: against eager PyTorch (the others do not apply)
    print("\n| metric | mmfuse | PyTorch | mmfuse vs PyTorch |\n|---|---|---|---|")
    for label, ours, theirs, metric in [
        ("MuSE training steps/s vs the released loop exchange (eager)", "muse", "muse_loop", "train_steps_per_s"),
        ("MuSE cold start s (process start → first prediction, batch 1)", "muse", "muse", "cold_start_s"),
        ("MuSE peak RSS MB (load + predict batch 1)", "muse", "muse", "peak_rss_mb_b1"),
        ("MuSE peak RSS MB (load + 3 × predict batch 32)", "muse", "muse", "peak_rss_mb_b32"),
    ]:
        c1, m1 = cell(runs.get(("mmfuse", ours, metric), []))
        c2, m2 = cell(runs.get(("pytorch", theirs, metric), []))
        ratio = (m2 / m1 if lower_is_better(metric) else m1 / m2) if m1 and m2 else None
        print(f"| {label} | {c1} | {c2} | {f'{ratio:.2f}×' if ratio else '–'} |")
    # one-time costs of the other engines
    costs = []
    for model in ("muse", "concat"):
        for impl, metric, what in [("torch_compile", "compile_train_s", "torch.compile, training graph (+1 step)"), ("torch_compile", "compile_infer_s_b32", "torch.compile, inference batch 32"), ("torch_compile", "compile_infer_s_b1", "torch.compile, inference batch 1"), ("onnxruntime", "export_s_b32", "ONNX export + session, batch 32")]:
            v = runs.get((impl, model, metric), [])
            if v:
                costs.append(f"{model} {what}: {fmt(statistics.median(v))} s")
    if costs:
        print("\nOne-time costs, left out of the rows above: " + "; ".join(costs) + ".")
    # the machine's limit and each engine's share of it
    print("\n**The machine's limit.**")
    for i in info_lines(a.results):
        if "build" in i:  # the BLAS and oneDNN lines of PyTorch's build configuration
            i = {**i, "build": [b for b in i["build"] if "Math Kernel" in b or "MKL-DNN" in b or "oneDNN" in b]}
        print("- " + json.dumps(i))
    fma = runs.get(("mmfuse", "fma", "fma_peak_gflops"), [])
    peak = statistics.median(fma) if fma else None
    if peak:
        print(f"\nf32 FMA peak of the cores in use: {fmt(peak)} GFLOP/s (median, {len(fma)} runs)\n")
    print("| GFLOP/s | mmfuse | " + " | ".join(n for _, n in ENGINES) + " |\n|---|---|" + "---|" * len(ENGINES))
    mm = [cell(runs.get((impl, "matmul1024", "matmul_gflops"), [])) for impl in ["mmfuse"] + [e for e, _ in ENGINES]]
    pct = lambda m: f" = {100 * m / peak:.0f} % of peak" if (m and peak) else ""  # noqa: E731
    print("| matmul 1024² | " + " | ".join(f"{c}{pct(m)}" for c, m in mm) + " |")
    # achieved GFLOP/s of the inference forward at batch 32 (matmuls and convolutions only)
    for model in ("muse", "concat"):
        gf = forward_flops(model) / 1e9
        out = []
        for impl in ["mmfuse"] + [e for e, _ in ENGINES]:
            c, m = cell([x * gf for x in runs.get((impl, model, "infer_samples_per_s_b32"), [])])
            out.append(f"{c}{pct(m)}")
        print(f"| {model} inference, batch 32 ({gf:.2f} GFLOP/sample) | " + " | ".join(out) + " |")


if __name__ == "__main__":
    main()
