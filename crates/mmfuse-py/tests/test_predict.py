"""Prediction from Python: the same answers as the CLI on the same run folder, every image type
giving the same result, bad input raising the documented exceptions, the GIL released while the
model computes."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import mmfuse
from mmfuse.errors import ImageError, InputError, MmfuseError, RunFolderError


def test_matches_the_cli(cls_run, corpus, cli, tmp_path):
    """`mmfuse predict --input test.jsonl` and `Model.predict` on the same posts: the same labels,
    probabilities within 1e-6, the same modalities."""
    test = corpus / "cls" / "test.jsonl"
    out = tmp_path / "cli.jsonl"
    subprocess.run([cli, "--quiet", "predict", "--model", str(cls_run), "--input", str(test), "--output", str(out)], check=True)
    cli_rows = [json.loads(line) for line in out.read_text().splitlines()]
    posts = [json.loads(line) for line in test.read_text().splitlines()]
    model = mmfuse.load(cls_run)
    py_rows = model.predict([p["text"] for p in posts], [str(test.parent / p["image"]) for p in posts], ids=[str(p["id"]) for p in posts], batch_size=7)
    assert len(cli_rows) == len(py_rows) == len(posts) == 300
    for c, p in zip(cli_rows, py_rows):
        assert c["id"] == p["id"]
        assert c["label"] == p["label"]
        assert c["modalities"] == p["modalities"] == ["text", "image"]
        assert c["probs"].keys() == p["probs"].keys()
        for k in c["probs"]:
            assert abs(c["probs"][k] - p["probs"][k]) <= 1e-6


def test_every_image_type_gives_the_same_result(cls_run, corpus):
    model = mmfuse.load(cls_run)
    post = json.loads((corpus / "cls" / "test.jsonl").read_text().splitlines()[0])
    path = corpus / "cls" / post["image"]
    pil = Image.open(path)
    kinds = {
        "str": str(path),
        "Path": path,
        "bytes": path.read_bytes(),
        "bytearray": bytearray(path.read_bytes()),
        "PIL": pil,
        "numpy": np.asarray(pil.convert("RGB")),
        "numpy (Fortran order)": np.asfortranarray(np.asarray(pil.convert("RGB"))),
        "numpy RGBA": np.asarray(pil.convert("RGBA")),
    }
    results = {k: model.predict(post["text"], v) for k, v in kinds.items()}
    first = results["str"]
    for k, r in results.items():
        assert r == first, f"{k}: {r} != {first}"
    # a grey (H×W) image is the RGB image with three equal channels
    grey = np.asarray(pil.convert("L"))
    assert model.predict(post["text"], grey) == model.predict(post["text"], np.repeat(grey[:, :, None], 3, axis=2))


def test_modalities_and_absent_inputs(cls_run, corpus):
    model = mmfuse.load(cls_run)
    post = json.loads((corpus / "cls" / "test.jsonl").read_text().splitlines()[0])
    img = corpus / "cls" / post["image"]
    both, text_only, image_only = model.predict([post["text"], post["text"], ""], [img, None, img])
    assert (both["modalities"], text_only["modalities"], image_only["modalities"]) == (["text", "image"], ["text"], ["image"])
    assert "placeholder_image" not in text_only
    for r in (both, text_only, image_only):
        assert math.isclose(sum(r["probs"].values()), 1.0, abs_tol=1e-5)
    # trained with modality dropout, a post without its image is the text-only optimum's 50/50
    # between the two labels its text allows
    assert sorted(text_only["probs"].values())[0] < 0.15
    info = model.info()
    assert info["task"] == "classify" and info["labels"] == ["negative", "positive", "sarcastic"] and model.labels == info["labels"]


def test_ner_entities_with_spans(ner_run, corpus):
    model = mmfuse.load(ner_run)
    assert model.task == "ner"
    text = "so i met Kalo Terzu at the station today"
    r = model.predict(text)
    assert r["words"] == text.split() and len(r["tags"]) == len(r["words"])
    for e in r["entities"]:
        assert text[e["start_char"] : e["end_char"]] == e["text"]
        assert " ".join(r["words"][e["start_word"] : e["end_word"]]) == e["text"]
    with pytest.raises(InputError, match="a tagger needs words"):
        model.predict("", corpus / "ner" / "images" / sorted(p.name for p in (corpus / "ner" / "images").iterdir())[0])


def test_bad_inputs_raise_documented_exceptions(cls_run, tmp_path):
    model = mmfuse.load(cls_run)
    with pytest.raises(ImageError, match=r"post 1: cannot read .*nope\.png"):
        model.predict(["fine", "bad"], [None, tmp_path / "nope.png"])
    with pytest.raises(ImageError, match="cannot decode image <upload>"):
        model.predict("x", b"\x89PNG not really")
    with pytest.raises(ImageError, match="above the limit"):
        model.predict("x", np.zeros((7000, 7000, 3), np.uint8))
    with pytest.raises(InputError, match="neither a text nor an image"):
        model.predict("  ")
    with pytest.raises(InputError, match="2 images for 3 texts"):
        model.predict(["a", "b", "c"], [None, None])
    with pytest.raises(TypeError, match="numpy uint8 array"):
        model.predict("x", np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"H×W×3"):
        model.predict("x", np.zeros((8, 8, 2), np.uint8))
    with pytest.raises(ValueError):  # InputError is a ValueError
        model.predict("  ")
    with pytest.raises(RunFolderError, match="config.toml is missing"):
        mmfuse.load(tmp_path)
    with pytest.raises(InputError, match="unknown device"):
        mmfuse.load(cls_run, device="tpu")
    # errors="return": the bad post is a dict with its error, the others predict
    rows = model.predict(["good", "bad", ""], [None, b"junk", None], ids=["a", "b", "c"], errors="return")
    assert "label" in rows[0] and rows[1]["id"] == "b" and "cannot decode image" in rows[1]["error"]
    assert rows[2]["error"] == "the post has neither a text nor an image"
    assert all(issubclass(c, MmfuseError) for c in (ImageError, InputError, RunFolderError))


def test_the_gil_is_released_while_predicting(cls_run, corpus):
    """A Python thread runs while another predicts (it could not with the GIL held)."""
    model = mmfuse.load(cls_run)
    posts = [json.loads(line) for line in (corpus / "cls" / "test.jsonl").read_text().splitlines()]
    texts = [p["text"] for p in posts]
    images = [str(corpus / "cls" / p["image"]) for p in posts]
    # a call of about a second, whatever the machine's speed
    t0 = time.perf_counter()
    model.predict(texts, images)
    reps = max(1, round(1.0 / max(time.perf_counter() - t0, 1e-3)))
    texts, images = texts * reps, images * reps
    ticks = []
    done = threading.Event()

    def count():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=count)
    start = time.perf_counter()
    t.start()
    model.predict(texts, images)
    end = time.perf_counter()
    done.set()
    t.join()
    during = [x for x in ticks if start < x < end]
    assert end - start > 0.2, "the prediction was too short to tell"
    # with the GIL held the counter would stall for the whole call
    gaps = np.diff([start, *during, end])
    assert gaps.max() < 0.5 * (end - start), f"the counter stalled for {gaps.max():.3f} s of a {end - start:.3f} s call"


CONCURRENCY = r"""
import json, sys, threading, time
import mmfuse
run, corpus = sys.argv[1], sys.argv[2]
posts = [json.loads(l) for l in open(corpus + "/cls/test.jsonl")]
texts = [p["text"] for p in posts]
images = [corpus + "/cls/" + p["image"] for p in posts]
model = mmfuse.load(run)
model.predict(texts[:32], images[:32], batch_size=1)
def one():
    model.predict(texts, images, batch_size=1)
best_one, best_two = 1e9, 1e9
for _ in range(3):
    t = time.perf_counter(); one(); best_one = min(best_one, time.perf_counter() - t)
    ths = [threading.Thread(target=one) for _ in range(2)]
    t = time.perf_counter()
    for th in ths: th.start()
    for th in ths: th.join()
    best_two = min(best_two, time.perf_counter() - t)
print(json.dumps({"one": best_one, "two": best_two}))
"""


def test_two_threads_predict_faster_than_twice_one(cls_run, corpus):
    """Two threads predicting at once finish in less than twice one thread's time: post by post
    (batch size 1, as a server answering single requests), one call keeps the two compute
    threads busy only part of the time, so two calls overlap; with the GIL held they would run
    one after the other. (At batch size 32 one call already keeps both cores busy: 1.9×, the
    machine's limit, not the GIL's.) Measured: 1.15×. A child process with 2 compute threads,
    best of 3."""
    env = {**__import__("os").environ, "RAYON_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", CONCURRENCY, str(cls_run), str(corpus)], env=env, capture_output=True, text=True, check=True)
    t = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"one thread {t['one']:.3f} s, two threads at once {t['two']:.3f} s")
    assert t["two"] < 1.6 * t["one"], f"two threads took {t['two']:.3f} s, one {t['one']:.3f} s"
