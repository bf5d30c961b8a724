"""Scale-out through Ray, on this machine only: the batch-prediction example runs on a local
Ray instance (loopback) with 2 model actors, and every post gets exactly one prediction, equal
to the single-process one; the Tune example runs a 2-trial sweep of `mmfuse.train`. Skips with
a visible note where Ray is not installed."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest

# loopback only, no usage reporting, no auth token written: before Ray is imported
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")

ray = pytest.importorskip("ray", reason="NOTE: Ray is not installed (pip install 'ray[data,tune]'): the Ray tests are skipped")

import mmfuse  # noqa: E402
from conftest import CONFIGS, REPO  # noqa: E402

sys.path.insert(0, str(REPO / "examples"))
import ray_batch_predict  # noqa: E402
import ray_tune_sweep  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    sigint = signal.getsignal(signal.SIGINT)  # Ray Tune installs its own Ctrl-C handler
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=256 * 1024**2)
    yield
    ray.shutdown()
    signal.signal(signal.SIGINT, sigint)


def test_batch_prediction_with_ray_data_equals_one_process(local_ray, cls_run, corpus, tmp_path):
    # a folder of posts in two files, one post without an image, one with a broken image
    posts = [json.loads(line) for line in (corpus / "cls" / "test.jsonl").read_text().splitlines()][:120]
    folder = tmp_path / "posts"
    folder.mkdir()
    for k, part in enumerate([posts[:70], posts[70:]]):
        lines = []
        for p in part:
            image = str((corpus / "cls" / p["image"]).resolve())
            lines.append(json.dumps({"id": p["id"], "text": p["text"], "image": image}))
        (folder / f"part{k}.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "extra.jsonl").write_text(json.dumps({"id": "no-image", "text": "what a lovely day"}) + "\n" + json.dumps({"id": "broken", "text": "x", "image": "/nope.png"}) + "\n")

    rows = ray_batch_predict.run(str(cls_run), folder, out=tmp_path / "preds", workers=2, batch_size=16)
    by_id = {}
    for r in rows:
        assert r["id"] not in by_id, f"post {r['id']} predicted twice"
        by_id[r["id"]] = r["prediction"]
    assert len(by_id) == 122
    # the single-process answers
    model = mmfuse.load(cls_run)
    want = model.predict([p["text"] for p in posts], [str((corpus / "cls" / p["image"]).resolve()) for p in posts], ids=[p["id"] for p in posts])
    for w in want:
        assert by_id[w["id"]] == w
    assert by_id["no-image"]["modalities"] == ["text"]
    assert "cannot read /nope.png" in by_id["broken"]["error"]
    assert any((tmp_path / "preds").iterdir()), "no JSON written"
    # the actors ran in other processes: the driver only collected
    assert ray.is_initialized()


def test_a_small_sweep_with_ray_tune(local_ray, corpus, tmp_path):
    cfg, metrics = ray_tune_sweep.sweep(
        str(CONFIGS / "demo-classify.toml"),
        str(corpus / "cls"),
        str(tmp_path / "sweep"),
        lrs=(2e-3,),
        dropouts=(0.0, 0.2),
        extra={"train.epochs": 2},
    )
    assert cfg["modality_dropout"] in (0.0, 0.2)
    assert metrics["dev_macro_f1"] > 0.5
    runs = sorted(p.name for p in (tmp_path / "sweep").iterdir() if (p / "results.json").exists())
    assert runs == ["lr0.002-md0", "lr0.002-md0.2"]
    assert Path(metrics["run_dir"]).name in runs
