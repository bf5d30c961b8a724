"""The Python binding's overhead: the same model and posts predicted through `mmfuse.Model.predict`
(in-process), `mmfuse predict --input` (the CLI, a process per file) and `mmfuse serve` (HTTP,
JSON with base64 images, batches of 32 posts on one keep-alive connection); plus the wheel's
size and `import mmfuse`'s time. Prints JSON lines and a markdown table.

    MMFUSE_BIN=target/release/mmfuse python bench/python_overhead.py [--posts 2000] [--reps 3] [--wheel PATH]

Run with the virtualenv that has the wheel installed (scripts/test.sh's, or `pip install
./crates/mmfuse-py`). The model: the demo's late-fusion classifier trained on a synthetic corpus
(written to a temporary folder).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mmfuse

REPO = Path(__file__).resolve().parents[1]


def best(f, reps):
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return min(ts), statistics.median(ts)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--posts", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--wheel", help="the wheel file, for its size")
    a = ap.parse_args()
    binary = os.environ.get("MMFUSE_BIN", str(REPO / "target/release/mmfuse"))
    work = Path(tempfile.mkdtemp(prefix="mmfuse-pybench-"))
    mmfuse.synth(work / "corpus", seed=5, n_train=1500, n_dev=200, n_test=a.posts)
    run = mmfuse.train(REPO / "configs/demo-classify.toml", out=work / "run", overrides={"data.dir": str(work / "corpus/cls"), "train.epochs": 2})
    test = work / "corpus/cls/test.jsonl"
    posts = [json.loads(line) for line in test.read_text().splitlines()]
    texts = [p["text"] for p in posts]
    images = [str(test.parent / p["image"]) for p in posts]
    n = len(posts)
    threads = os.environ.get("RAYON_NUM_THREADS", str(os.cpu_count()))
    rows = {}

    model = mmfuse.load(run)
    model.predict(texts[:64], images[:64])
    t, m = best(lambda: model.predict(texts, images, batch_size=32), a.reps)
    rows["python"] = (n / t, n / m)

    out = work / "cli.jsonl"
    cli = [binary, "--quiet", "predict", "--model", str(run), "--input", str(test), "--output", str(out), "--batch-size", "32"]
    subprocess.run(cli, check=True)
    t, m = best(lambda: subprocess.run(cli, check=True), a.reps)
    rows["cli"] = (n / t, n / m)

    port = free_port()
    server = subprocess.Popen([binary, "--quiet", "serve", "--model", str(run), "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        bodies = []
        for k in range(0, n, 32):
            chunk = [{"id": str(posts[i]["id"]), "text": texts[i], "image": base64.b64encode(Path(images[i]).read_bytes()).decode()} for i in range(k, min(n, k + 32))]
            bodies.append(json.dumps({"posts": chunk}).encode())
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

        def serve_all():
            for b in bodies:
                conn.request("POST", "/v1/predict/batch", body=b, headers={"content-type": "application/json"})
                r = conn.getresponse()
                r.read()
                assert r.status == 200, r.status

        serve_all()
        t, m = best(serve_all, a.reps)
        rows["server"] = (n / t, n / m)
    finally:
        server.terminate()
        server.wait(timeout=30)

    imports = []
    for _ in range(5):
        r = subprocess.run([sys.executable, "-c", "import time; t = time.perf_counter(); import mmfuse; print(time.perf_counter() - t)"], capture_output=True, text=True, check=True)
        imports.append(float(r.stdout.strip()))
    wheel = Path(a.wheel) if a.wheel else None
    info = {
        "posts": n,
        "threads": threads,
        "posts_per_s": {k: {"best": v[0], "median": v[1]} for k, v in rows.items()},
        "import_s": {"best": min(imports), "median": statistics.median(imports)},
        "wheel_mb": wheel.stat().st_size / 1e6 if wheel and wheel.exists() else None,
        "so_mb": (Path(mmfuse._core.__file__).stat().st_size / 1e6),
    }
    print(json.dumps(info))
    print(f"\n{n} posts (text + 32×32 PNG), demo late-fusion classifier, batches of 32, RAYON_NUM_THREADS={threads}, best of {a.reps}:\n")
    print("| path | posts/s (best) | median | vs Python |")
    print("|---|---:|---:|---:|")
    for k, label in [("python", "Python `Model.predict`"), ("cli", "CLI `mmfuse predict --input` (process start included)"), ("server", "server `/v1/predict/batch`, base64 JSON, one connection")]:
        b, med = rows[k]
        print(f"| {label} | {b:.0f} | {med:.0f} | {b / rows['python'][0]:.2f} |")
    print(f"\n`import mmfuse`: {min(imports) * 1000:.0f} ms (best of 5); extension module {info['so_mb']:.0f} MB" + (f", wheel {info['wheel_mb']:.0f} MB" if info["wheel_mb"] else ""))


if __name__ == "__main__":
    main()
