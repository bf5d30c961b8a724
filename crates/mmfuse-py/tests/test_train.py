"""Training, evaluation and encoding from Python: a train → load → predict round trip beats the
unimodal optimum, the progress callback sees every step and evaluation and can stop the run
(which then resumes), Ctrl-C keeps the last checkpoint, bad configurations and data raise
the documented exceptions, and the encoders match PyTorch's outputs."""

from __future__ import annotations

import _thread
import json
import signal
from pathlib import Path

import numpy as np
import pytest

import mmfuse
from conftest import CONFIGS, shared_dir
from mmfuse.errors import ConfigError, TrainingError


def test_round_trip_beats_the_unimodal_optimum(cls_run, corpus):
    """The synthetic labels need both modalities: text-only and image-only models reach 50 %."""
    results = json.loads((Path(cls_run) / "results.json").read_text())
    model = mmfuse.load(cls_run)
    posts = [json.loads(line) for line in (corpus / "cls" / "test.jsonl").read_text().splitlines()]
    pred = model.predict([p["text"] for p in posts], [corpus / "cls" / p["image"] for p in posts])
    accuracy = np.mean([r["label"] == p["label"] for r, p in zip(pred, posts)])
    assert accuracy >= 0.9, f"test accuracy {accuracy:.3f}"
    assert accuracy == pytest.approx(results["test"]["accuracy"], abs=1e-12)
    scores = mmfuse.evaluate(cls_run)
    assert scores["test"]["accuracy"] == pytest.approx(results["test"]["accuracy"], abs=1e-12)


def test_progress_callback_and_stopping_resume(corpus, tmp_path):
    events = []
    stop_at = 7

    def progress(e):
        events.append(e)
        return not (e["event"] == "step" and e["step"] == stop_at)

    cfg = CONFIGS / "demo-classify.toml"
    o = {"data.dir": str(corpus / "cls"), "train.epochs": 2, "train.eval_every": 5}
    run = mmfuse.train(cfg, out=tmp_path / "run", overrides=o, progress=progress)
    steps = [e for e in events if e["event"] == "step"]
    assert [e["step"] for e in steps] == list(range(1, stop_at + 1))
    assert all(e["total"] == 2 * 47 for e in steps)  # 1500 posts: 47 batches of 32 per epoch
    assert all(math_finite(e["loss"]) for e in steps)
    evals = [e for e in events if e["event"] == "eval"]
    assert [e["step"] for e in evals] == [5] and "macro_f1" in evals[0]["scores"]
    assert not (Path(run) / "results.json").exists(), "a stopped run has no results yet"
    # resumed from the step-7 checkpoint to the end
    seen = []
    mmfuse.train(cfg, out=run, overrides=o, resume=True, progress=lambda e: seen.append(e["step"]) or None)
    assert seen[0] == stop_at + 1 and (Path(run) / "results.json").exists()


def math_finite(x):
    return x == x and abs(x) != float("inf")


def test_ctrl_c_keeps_the_last_checkpoint(corpus, tmp_path):
    # Python's own Ctrl-C handler (another library, e.g. Ray Tune, may have installed its own)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)

    def progress(e):
        if e["event"] == "step" and e["step"] == 3:
            _thread.interrupt_main()  # as Ctrl-C would

    try:
        with pytest.raises(KeyboardInterrupt):
            mmfuse.train(CONFIGS / "demo-classify.toml", out=tmp_path / "run", overrides={"data.dir": str(corpus / "cls")}, progress=progress)
    finally:
        signal.signal(signal.SIGINT, previous)
    state = json.loads((tmp_path / "run" / "checkpoints" / "last" / "state.json").read_text())
    assert state["step"] == 3


def test_a_callback_exception_stops_training_and_is_raised(corpus, tmp_path):
    def progress(e):
        raise RuntimeError("from the callback")

    with pytest.raises(RuntimeError, match="from the callback"):
        mmfuse.train(CONFIGS / "demo-classify.toml", out=tmp_path / "run", overrides={"data.dir": str(corpus / "cls")}, progress=progress)


def test_configuration_and_data_errors(corpus, tmp_path):
    with pytest.raises(ConfigError, match="unknown field `epochz`"):
        mmfuse.train(CONFIGS / "demo-classify.toml", out=tmp_path / "a", overrides={"train.epochz": 2})
    with pytest.raises(ConfigError):
        mmfuse.train({"data": {"task": "classify"}}, out=tmp_path / "b")
    # a dict configuration works like the file
    bad = tmp_path / "bad"
    bad.mkdir()
    lines = (corpus / "cls" / "train.jsonl").read_text().splitlines()
    (bad / "train.jsonl").write_text("\n".join([lines[0], lines[1], '{"id": 5, "text": broken'] + lines[2:]) + "\n")
    for f in ("dev.jsonl", "test.jsonl"):
        (bad / f).write_text((corpus / "cls" / f).read_text())
    (bad / "images").symlink_to(corpus / "cls" / "images")
    config = {"data": {"task": "classify", "dir": str(bad), "max_len": 16}, "model": {"method": "concat"}, "train": {"epochs": 1}}
    with pytest.raises(TrainingError, match=r"train\.jsonl:3"):
        mmfuse.train(config, out=tmp_path / "c")


def test_robustness_report_from_python(cls_run):
    report = mmfuse.evaluate(cls_run, robustness=True, missing_only=True)
    names = [(r["kind"], r["name"]) for r in report["rows"]]
    assert names == [("full", "all modalities"), ("absent", "image"), ("absent", "text")]
    by = {r["name"]: r["scores"]["accuracy"] for r in report["rows"]}
    # trained with modality dropout: the unimodal optimum (50 %) without either modality
    assert by["all modalities"] > 0.9 and 0.4 < by["image"] < 0.6 and 0.4 < by["text"] < 0.6
    for f in ("robustness.json", "robustness.md", "robustness.png"):
        assert (Path(cls_run) / f).exists()


def _shared(name):
    p = shared_dir() / name
    if not p.exists():
        pytest.skip(f"NOTE: {p} is missing (set MMFUSE_SHARED_DIR): the encoder golden test is skipped")
    return p


def _read_safetensors(path, name):
    """One tensor of a safetensors file, read with the format's own layout (an 8-byte header
    length, a JSON header, the raw little-endian data)."""
    raw = Path(path).read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    meta = header[name]
    dtype = {"F32": np.float32, "I64": np.int64, "U8": np.uint8}[meta["dtype"]]
    a, b = meta["data_offsets"]
    return np.frombuffer(raw[8 + n + a : 8 + n + b], dtype=dtype).reshape(meta["shape"])


def test_encode_texts_matches_the_pytorch_golden():
    golden = _shared("golden")
    sentences = json.loads((golden / "minilm.json").read_text())["sentences"]
    ours = mmfuse.encode(sentences, text_encoder=_shared("models/all-minilm-l6-v2"), batch_size=4)
    want = _read_safetensors(golden / "minilm.safetensors", "sentence_embedding")
    assert ours.dtype == np.float32 and ours.shape == want.shape
    assert np.abs(ours - want).max() < 1e-4


def test_encode_images_matches_the_pytorch_golden():
    golden = _shared("golden")
    info = json.loads((golden / "mobilenet.json").read_text())
    files = [golden / im["file"] for im in info["images"]]
    ours = mmfuse.encode(images=[str(f) for f in files], image_encoder=_shared("models/mobilenet-v2-imagenet"))
    want = _read_safetensors(golden / "mobilenet.safetensors", "features").mean(axis=(2, 3))
    assert ours.shape == want.shape == (len(files), 1280)
    assert np.abs(ours - want).max() < 1e-3
    # numpy arrays and bytes give the same embeddings
    from PIL import Image

    again = mmfuse.encode(images=[np.asarray(Image.open(files[0]).convert("RGB")), files[1].read_bytes()], image_encoder=_shared("models/mobilenet-v2-imagenet"))
    assert np.array_equal(again, ours[:2])
