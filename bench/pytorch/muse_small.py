"""MuSE-small and the concat baseline in PyTorch: the reference side of `bench/run.sh`.

The same models as `crates/mmfuse/benches/muse_vs_torch.rs` builds with mmfuse's own types,
the same inputs, the same measurements and the same JSON-lines output:

- text encoder: token + learned position embeddings -> LayerNorm -> dropout -> 4 pre-LN
  Transformer encoder layers (d 256, 4 heads, FF 1024, GELU) -> LayerNorm;
- image encoder: 3 x (conv3x3 same -> BatchNorm -> ReLU -> max-pool 2x2), channels 32/64/128,
  64x64 input -> 8x8 = 64 tokens -> Linear(128 -> 256);
- MuSE: CrossTransformer of 4 post-LN layers shared by the text stream [cls_t; T] and the
  image stream [cls_i; I] (learnable [CLS] per stream), multi-head attention with key-padding
  masks; in layers 1..3, between the attention and the FF block, each stream's
  floor(0.1 (n-1)) + 1 real non-[CLS] tokens with the lowest head-averaged [CLS] attention get
  the other stream's (masked) mean of real non-[CLS] tokens added; head:
  [cls_t; cls_i] -> Linear(512 -> 256) -> ReLU -> dropout -> Linear(-> 3);
  `--exchange vectorised` ranks by a double argsort over the batch (as mmfuse does),
  `--exchange loop` is the released code's form: a Python loop over the samples, each taking
  numpy's quantile of its attention row, and inside it a Python loop over the tokens, updating
  in place each one strictly below it;
- concat: [masked mean of text ; mean of image tokens] -> Linear(512 -> 256) -> GELU -> dropout
  -> Linear(-> 3).

Training step: forward + cross-entropy + backward + clip_grad_norm_(1.0) + AdamW (weight
decay 0.01 except biases and norm parameters, eps 1e-8, lr 1e-3). Dropout 0.1 everywhere.

Engines (`--engine`): `eager` (PyTorch as written); `compile` (`torch.compile`, inductor, one
graph per batch size; the first call of each, the compilation, is reported apart as
`compile_train_s` / `compile_infer_s` and left out of the timed repeats); `onnxruntime` (the
eval model exported with `torch.onnx.export` at each batch size, its probabilities checked
against eager's first, run by ONNX Runtime's CPU provider with `intra_op_num_threads` = the
thread count; inference only).

    python muse_small.py [--models muse,muse_loop,concat] [--reps 5] [--threads N]
    python muse_small.py --engine compile|onnxruntime [--models muse,concat] ...
    python muse_small.py --save FILE
    python muse_small.py --cold-start FILE [--batch N] [--iters K]
    python muse_small.py --matmul-peak
    python muse_small.py --check        # vectorised and loop exchange agree
"""

import time

_STARTED = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

D, HEADS, LAYERS, D_FF, SEQ, IMAGE, VOCAB = 256, 4, 4, 1024, 64, 64, 1000
TRAIN_BATCH, INFER_BATCH, N_CLASSES, DROPOUT = 16, 32, 3, 0.1
RATIO, EX_START, EX_END = 0.1, 1, 3


class TextTransformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.token_embedding = nn.Embedding(VOCAB, D)
        self.position_embedding = nn.Embedding(SEQ, D)
        self.embedding_norm = nn.LayerNorm(D)
        self.dropout = nn.Dropout(DROPOUT)
        layer = nn.TransformerEncoderLayer(D, HEADS, D_FF, DROPOUT, activation="gelu", batch_first=True, norm_first=True)
        # no nested tensors: padded positions are computed, as mmfuse does
        self.encoder = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(D)

    def forward(self, ids, mask):
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.dropout(self.embedding_norm(self.token_embedding(ids) + self.position_embedding(pos)))
        x = self.encoder(x, src_key_padding_mask=~mask)
        return self.final_norm(x)


class ImageCnn(nn.Module):
    def __init__(self, channels=(32, 64, 128)):
        super().__init__()
        blocks, c_in = [], 3
        for c in channels:
            blocks += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2, 2)]
            c_in = c
        self.blocks = nn.Sequential(*blocks)
        self.proj = nn.Linear(c_in, D)

    def forward(self, images):
        x = self.blocks(images)
        b, c, h, w = x.shape
        return self.proj(x.reshape(b, c, h * w).transpose(1, 2))


class SelfAttention(nn.Module):
    """MHA with key-padding mask that also returns the head-averaged [CLS] attention row."""

    def __init__(self):
        super().__init__()
        self.query, self.key, self.value, self.output = (nn.Linear(D, D) for _ in range(4))
        self.dropout = nn.Dropout(DROPOUT)

    def forward(self, x, mask):
        b, l, d = x.shape
        dk = d // HEADS

        def split(t):
            return t.reshape(b, l, HEADS, dk).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(dk)
        weights = torch.softmax(scores.masked_fill(~mask[:, None, None, :], -1.0e9), dim=-1)
        cls_row = weights[:, :, 0, :].mean(1)
        ctx = (self.dropout(weights) @ v).transpose(1, 2).reshape(b, l, d)
        return self.output(ctx), cls_row


class CrossLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.attention = SelfAttention()
        self.norm_1 = nn.LayerNorm(D)
        self.ffn_in = nn.Linear(D, D_FF)
        self.ffn_out = nn.Linear(D_FF, D)
        self.norm_2 = nn.LayerNorm(D)
        self.dropout = nn.Dropout(DROPOUT)

    def attention_block(self, x, mask):
        a, cls = self.attention(x, mask)
        return self.norm_1(x + self.dropout(a)), cls

    def ffn_block(self, x):
        f = self.ffn_out(self.dropout(F.relu(self.ffn_in(x))))
        return self.norm_2(x + self.dropout(f))


def masked_mean(x, m):
    mf = m.to(x.dtype).unsqueeze(2)
    return (x * mf).sum(1) / mf.sum(1).clamp_min(1.0)


def not_cls(m):
    m = m.clone()
    m[:, 0] = False
    return m


def select_low_attention(attn, cand, ratio):
    """mmfuse's rule, vectorised: among `cand`, the floor(ratio (n-1)) + 1 lowest."""
    n = cand.sum(1, keepdim=True).to(attn.dtype)
    k = (torch.floor((n - 1).clamp_min(0) * ratio) + 1) * (n > 0).to(attn.dtype)
    scores = attn.detach().masked_fill(~cand, torch.finfo(attn.dtype).max)
    ranks = scores.argsort(1).argsort(1).to(attn.dtype)
    return ((ranks < k) & cand).to(attn.dtype)


def exchange_vectorised(t, ta, tm, i, ia, im, ratio):
    ct, ci = not_cls(tm), not_cls(im)
    mean_t, mean_i = masked_mean(t, ct).unsqueeze(1), masked_mean(i, ci).unsqueeze(1)
    sel_t = select_low_attention(ta, ct, ratio).unsqueeze(2)
    sel_i = select_low_attention(ia, ci, ratio).unsqueeze(2)
    return t + mean_i * sel_t, i + mean_t * sel_i


def exchange_loop(t, ta, tm, i, ia, im, ratio):
    """The released code's `_cr_block` (RecklessRonan/MuSE, code/models.py), with its padding
    defect fixed (quantile and means over real non-[CLS] tokens only): per sample, numpy's
    interpolated quantile of the [CLS] attention row on the host, then a Python loop over the
    token positions, each comparing one attention weight with it (a tensor comparison read back
    to Python) and updating a selected token in place with the other stream's mean. Both means
    are taken before either stream changes. Both streams must have the same length, as there."""
    assert t.shape[1] == i.shape[1], "the released loop walks both streams with one index"
    ct, ci = not_cls(tm), not_cls(im)
    mean_t, mean_i = masked_mean(t, ct), masked_mean(i, ci)
    for b in range(t.shape[0]):
        cand_t, cand_i = ct[b].tolist(), ci[b].tolist()
        theta_t = np.quantile(ta[b][ct[b]].detach().cpu().numpy(), ratio)
        theta_i = np.quantile(ia[b][ci[b]].detach().cpu().numpy(), ratio)
        for j in range(1, t.shape[1]):
            if cand_t[j] and ta[b][j] < theta_t:
                t[b][j] = mean_i[b] + t[b][j]
            if cand_i[j] and ia[b][j] < theta_i:
                i[b][j] = mean_t[b] + i[b][j]
    return t, i


class CrossTransformer(nn.Module):
    def __init__(self, exchange):
        super().__init__()
        self.cls_text = nn.Parameter(torch.randn(D) * 0.02)
        self.cls_image = nn.Parameter(torch.randn(D) * 0.02)
        self.layers = nn.ModuleList(CrossLayer() for _ in range(LAYERS))
        self.exchange = exchange_loop if exchange == "loop" else exchange_vectorised

    def forward(self, text, text_mask, image, image_mask):
        b = text.shape[0]
        ones = torch.ones(b, 1, dtype=torch.bool, device=text.device)
        t = torch.cat([self.cls_text.expand(b, 1, D), text], 1)
        i = torch.cat([self.cls_image.expand(b, 1, D), image], 1)
        mt, mi = torch.cat([ones, text_mask], 1), torch.cat([ones, image_mask], 1)
        for l, layer in enumerate(self.layers):
            t1, ct = layer.attention_block(t, mt)
            i1, ci = layer.attention_block(i, mi)
            if EX_START <= l <= EX_END:
                t1, i1 = self.exchange(t1, ct, mt, i1, ci, mi, RATIO)
            t, i = layer.ffn_block(t1), layer.ffn_block(i1)
        return t, i


class Muse(nn.Module):
    def __init__(self, exchange="vectorised"):
        super().__init__()
        self.text = TextTransformer()
        self.image = ImageCnn()
        self.cross = CrossTransformer(exchange)
        self.fuse = nn.Linear(2 * D, D)
        self.dropout = nn.Dropout(DROPOUT)
        self.head = nn.Linear(D, N_CLASSES)

    def forward(self, ids, mask, images):
        t = self.text(ids, mask)
        i = self.image(images)
        image_mask = torch.ones(i.shape[:2], dtype=torch.bool, device=i.device)
        t, i = self.cross(t, mask, i, image_mask)
        feats = torch.cat([t[:, 0], i[:, 0]], 1)
        return self.head(self.dropout(F.relu(self.fuse(feats))))


class Concat(nn.Module):
    def __init__(self):
        super().__init__()
        self.text = TextTransformer()
        self.image = ImageCnn()
        self.hidden = nn.Linear(2 * D, D)
        self.dropout = nn.Dropout(DROPOUT)
        self.output = nn.Linear(D, N_CLASSES)

    def forward(self, ids, mask, images):
        t = masked_mean(self.text(ids, mask), mask)
        i = self.image(images).mean(1)
        return self.output(self.dropout(F.gelu(self.hidden(torch.cat([t, i], 1)))))


def build(name):
    return {"muse": lambda: Muse("vectorised"), "muse_loop": lambda: Muse("loop"), "concat": Concat}[name]()


def batch(b):
    """The inputs mmfuse's bench builds: sample b has `b % 5` padding tokens at the end."""
    idx = torch.arange(b * SEQ)
    ids = (idx * 7919 % VOCAB).reshape(b, SEQ)
    mask = ((idx % SEQ) < SEQ - (idx // SEQ) % 5).reshape(b, SEQ)
    pix = torch.arange(b * 3 * IMAGE * IMAGE, dtype=torch.int64)
    images = ((pix * 31 % 255).to(torch.float32) / 127.5 - 1.0).reshape(b, 3, IMAGE, IMAGE)
    classes = torch.arange(b) % 3
    return ids, mask, images, classes


def adamw(model):
    decay, no_decay = [], []
    norms = (nn.LayerNorm, nn.BatchNorm2d)
    for mod in model.modules():
        for name, p in mod.named_parameters(recurse=False):
            (no_decay if name == "bias" or isinstance(mod, norms) else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-3, eps=1e-8)


def predict(model, ids, mask, images):
    """Class probabilities on the host, as mmfuse's `Prediction::from_probs`."""
    return torch.softmax(model(ids, mask, images), 1).tolist()


DEVICE = "cpu"
# the engine's name in the results: pytorch (eager), torch_compile, onnxruntime
IMPL = "pytorch"


def emit(model, metric, unit, runs, impl=None):
    """One result line of bench/run.sh's format (make_table.py reads it); `impl`: the engine's
    name, else this process's `IMPL`."""
    print(
        json.dumps(
            {
                "impl": impl or IMPL,
                "model": model,
                "metric": metric,
                "unit": unit,
                "median": statistics.median(runs),
                "min": min(runs),
                "max": max(runs),
                "threads": torch.get_num_threads(),
                "device": DEVICE,
                "runs": runs,
            }
        ),
        flush=True,
    )


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_model(name, a):
    device = torch.device(a.device)
    torch.manual_seed(1)
    model = build(name).to(device)
    on = lambda xs: [x.to(device) for x in xs]  # noqa: E731
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    if not a.skip_train:
        model.train()
        opt = adamw(model)
        ids, mask, images, y = on(batch(TRAIN_BATCH))
        rates = []
        for rep in range(a.reps + 1):
            t0 = time.perf_counter()
            for _ in range(a.train_steps):
                loss = F.cross_entropy(model(ids, mask, images), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
            sync(device)
            t = time.perf_counter() - t0
            if rep > 0:  # rep 0 is the warm-up
                rates.append(a.train_steps / t)
            else:
                emit(name, "first_train_s", "s", [t])
        emit(name, "train_steps_per_s", "steps/s", rates)
    if not a.skip_infer:
        model.eval()
        b1 = on(batch(1)[:3])
        with torch.inference_mode():
            for bs in a.infer_batches:
                bn = on(batch(bs)[:3])
                inf = []
                for rep in range(a.reps + 1):
                    t0 = time.perf_counter()
                    for _ in range(a.infer_iters):
                        predict(model, *bn)
                    t = time.perf_counter() - t0
                    if rep > 0:
                        inf.append(a.infer_iters * bs / t)
                    elif bs == a.infer_batches[0]:
                        emit(name, "first_infer_s", "s", [t])
                emit(name, f"infer_samples_per_s_b{bs}", "samples/s", inf)
            lat = []
            for rep in range(a.reps + 1):
                t1 = time.perf_counter()
                for _ in range(a.latency_iters):
                    predict(model, *b1)
                if rep > 0:
                    lat.append((time.perf_counter() - t1) * 1000.0 / a.latency_iters)
        emit(name, "latency_ms_b1", "ms", lat)
    if device.type == "cuda":
        emit(name, "peak_device_mb", "MB", [torch.cuda.max_memory_reserved(device) / 1e6])


def bench_compiled(name, a):
    """`torch.compile` (inductor): the same training step and predictions as `bench_model`."""
    torch.manual_seed(1)
    model = build(name)
    if not a.skip_train:
        model.train()
        opt = adamw(model)
        step_fn = torch.compile(model)
        ids, mask, images, y = batch(TRAIN_BATCH)
        rates = []
        for rep in range(a.reps + 2):
            t0 = time.perf_counter()
            for _ in range(1 if rep == 0 else a.train_steps):
                loss = F.cross_entropy(step_fn(ids, mask, images), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
            t = time.perf_counter() - t0
            if rep == 0:
                emit(name, "compile_train_s", "s", [t])  # compilation + one step
            elif rep > 1:  # rep 1 settles the optimiser's first steps
                rates.append(a.train_steps / t)
        emit(name, "train_steps_per_s", "steps/s", rates)
    if not a.skip_infer:
        model.eval()
        fwd = torch.compile(model, dynamic=False)
        with torch.no_grad():
            for bs in [*a.infer_batches, 1]:
                bn = batch(bs)[:3]
                t0 = time.perf_counter()
                predict(fwd, *bn)
                emit(name, f"compile_infer_s_b{bs}", "s", [time.perf_counter() - t0])
                if bs == 1:
                    lat = []
                    for _ in range(a.reps):
                        t1 = time.perf_counter()
                        for _ in range(a.latency_iters):
                            predict(fwd, *bn)
                        lat.append((time.perf_counter() - t1) * 1000.0 / a.latency_iters)
                    emit(name, "latency_ms_b1", "ms", lat)
                    continue
                inf = []
                for _ in range(a.reps):
                    t0 = time.perf_counter()
                    for _ in range(a.infer_iters):
                        predict(fwd, *bn)
                    inf.append(a.infer_iters * bs / (time.perf_counter() - t0))
                emit(name, f"infer_samples_per_s_b{bs}", "samples/s", inf)


def bench_onnxruntime(name, a, workdir):
    """ONNX Runtime (CPU provider): the eval model exported once per batch size."""
    import onnxruntime as ort

    torch.manual_seed(1)
    model = build(name).eval()
    so = ort.SessionOptions()
    so.intra_op_num_threads = torch.get_num_threads()
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    for bs in [*a.infer_batches, 1]:
        ids, mask, images = batch(bs)[:3]
        path = os.path.join(workdir, f"{name}_b{bs}.onnx")
        t0 = time.perf_counter()
        with torch.no_grad():
            torch.onnx.export(model, (ids, mask, images), path, input_names=["ids", "mask", "images"], output_names=["logits"], dynamo=True, optimize=True, verbose=False)
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        emit(name, f"export_s_b{bs}", "s", [time.perf_counter() - t0])
        feed = {"ids": ids.numpy(), "mask": mask.numpy(), "images": images.numpy()}

        def run():
            logits = sess.run(["logits"], feed)[0]
            z = np.exp(logits - logits.max(1, keepdims=True))
            return (z / z.sum(1, keepdims=True)).tolist()

        with torch.no_grad():
            want = np.array(predict(model, ids, mask, images))
        err = float(np.abs(np.array(run()) - want).max())
        print(json.dumps({"check": f"onnxruntime_vs_eager_{name}_b{bs}", "max_abs_diff_probs": err}), flush=True)
        assert err < 1e-4, f"the ONNX export of {name} differs from eager by {err}"
        if bs == 1:
            lat = []
            for _ in range(a.reps):
                t1 = time.perf_counter()
                for _ in range(a.latency_iters):
                    run()
                lat.append((time.perf_counter() - t1) * 1000.0 / a.latency_iters)
            emit(name, "latency_ms_b1", "ms", lat)
        else:
            run()
            inf = []
            for _ in range(a.reps):
                t0 = time.perf_counter()
                for _ in range(a.infer_iters):
                    run()
                inf.append(a.infer_iters * bs / (time.perf_counter() - t0))
            emit(name, f"infer_samples_per_s_b{bs}", "samples/s", inf)


def cold_start(path, b, iters):
    model = Muse("vectorised")
    model.load_state_dict(torch.load(path, weights_only=True))
    model.eval()
    loaded = time.perf_counter() - _STARTED
    inputs = batch(b)[:3]
    first = 0.0
    with torch.inference_mode():
        for k in range(iters):
            predict(model, *inputs)
            if k == 0:
                first = time.perf_counter() - _STARTED
    print(
        json.dumps(
            {
                "impl": "pytorch",
                "model": "muse",
                "metric": "cold_start_inprocess",
                "load_s": loaded,
                "first_prediction_s": first,
                "total_s": time.perf_counter() - _STARTED,
                "batch": b,
                "iters": iters,
            }
        )
    )


def matmul_peak(reps, engine="eager"):
    """GFLOP/s of a 1024² f32 matmul: PyTorch's BLAS (MKL on x86), or ONNX Runtime's MLAS; with
    an info line naming the kernel path each engine takes."""
    n = 1024
    iters = 5
    if engine == "onnxruntime":
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper

        g = helper.make_graph(
            [helper.make_node("MatMul", ["a", "b"], ["c"])],
            "mm",
            [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n]), helper.make_tensor_value_info("b", TensorProto.FLOAT, [n, n])],
            [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
        )
        so = ort.SessionOptions()
        so.intra_op_num_threads = torch.get_num_threads()
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString(), so, providers=["CPUExecutionProvider"])
        feed = {"a": np.random.randn(n, n).astype(np.float32), "b": np.random.randn(n, n).astype(np.float32)}
        run = lambda: sess.run(["c"], feed)  # noqa: E731
        print(json.dumps({"info": "onnxruntime", "version": ort.__version__, "onnx": onnx.__version__, "providers": ort.get_available_providers(), "kernels": "MLAS (run-time ISA dispatch)"}), flush=True)
    else:
        a, b = torch.randn(n, n), torch.randn(n, n)
        run = lambda: a @ b  # noqa: E731
        cfg = torch.__config__.show()
        blas = [line.strip() for line in cfg.splitlines() if "BLAS" in line or "Math Kernel" in line or "oneDNN" in line or "MKL" in line]
        print(json.dumps({"info": "pytorch", "version": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(), "mkl": torch.backends.mkl.is_available(), "mkldnn": torch.backends.mkldnn.is_available(), "build": blas[:4]}), flush=True)
    run()
    rates = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(iters):
            run()
        rates.append(iters * 2.0 * n**3 / (time.perf_counter() - t0) / 1e9)
    emit("matmul1024", "matmul_gflops", "GFLOP/s", rates)


def check():
    """Vectorised and loop exchange give the same outputs and input gradients where the quantile rule and the
    rank rule select the same count (n - 1 not a multiple of 10)."""
    torch.manual_seed(0)
    b, l = 4, 65
    t, i = torch.randn(b, l, D), torch.randn(b, l, D)
    ta, ia = torch.rand(b, l), torch.rand(b, l)
    tm = torch.ones(b, l, dtype=torch.bool)
    tm[1, -2:] = False  # 62 real tokens: 0.1 * 61 is not an integer
    im = torch.ones(b, l, dtype=torch.bool)
    w_t, w_i = torch.randn(b, l, D), torch.randn(b, l, D)

    def run(exchange):
        # non-leaf inputs, as in the model (the loop updates them in place), and their gradients
        t0, i0 = t.clone().requires_grad_(), i.clone().requires_grad_()
        out_t, out_i = exchange(t0 * 1.0, ta, tm, i0 * 1.0, ia, im, RATIO)
        ((out_t * w_t).sum() + (out_i * w_i).sum()).backward()
        return out_t.detach(), out_i.detach(), t0.grad, i0.grad

    v, lp = run(exchange_vectorised), run(exchange_loop)
    err = max((x - y).abs().max().item() for x, y in zip(v, lp))
    print(json.dumps({"check": "exchange_vectorised_vs_loop", "max_abs_diff_values_and_grads": err}))
    assert err < 1e-4, err


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", default="muse,muse_loop,concat")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--train-steps", type=int, default=3)
    p.add_argument("--infer-iters", type=int, default=2)
    p.add_argument("--latency-iters", type=int, default=10)
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--skip-infer", action="store_true")
    p.add_argument("--threads", type=int, default=int(os.environ.get("THREADS", "0")) or None)
    p.add_argument("--save")
    p.add_argument("--cold-start")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--iters", type=int, default=1)
    p.add_argument("--matmul-peak", action="store_true")
    p.add_argument("--check", action="store_true")
    p.add_argument("--device", default="cpu", help="cpu, or cuda[:N] for the GPU benchmark")
    p.add_argument("--infer-batches", default=str(INFER_BATCH), help="comma-separated inference batch sizes")
    p.add_argument("--engine", default="eager", choices=["eager", "compile", "onnxruntime"])
    p.add_argument("--workdir", default=None, help="where --engine onnxruntime writes its .onnx files")
    a = p.parse_args()
    a.infer_batches = [int(x) for x in a.infer_batches.split(",")]
    if a.threads:
        torch.set_num_threads(a.threads)
    global DEVICE, IMPL
    DEVICE = a.device
    IMPL = {"eager": "pytorch", "compile": "torch_compile", "onnxruntime": "onnxruntime"}[a.engine]
    if a.matmul_peak:
        matmul_peak(a.reps, a.engine)
        return
    if a.engine != "eager":
        import tempfile

        workdir = a.workdir or tempfile.mkdtemp()
        os.makedirs(workdir, exist_ok=True)
        for m in a.models.split(","):
            if a.engine == "compile":
                bench_compiled(m, a)
            else:
                bench_onnxruntime(m, a, workdir)
        return
    if a.save:
        torch.manual_seed(1)
        torch.save(Muse("vectorised").eval().state_dict(), a.save)
    elif a.cold_start:
        cold_start(a.cold_start, a.batch, a.iters)
    elif a.matmul_peak:
        matmul_peak(a.reps)
    elif a.check:
        check()
    else:
        for m in a.models.split(","):
            # the loop exchange is what users run for training; its inference is not in the table
            if m == "muse_loop":
                saved = a.skip_infer
                a.skip_infer = True
                bench_model(m, a)
                a.skip_infer = saved
            else:
                bench_model(m, a)


if __name__ == "__main__":
    main()
