"""Batch prediction over a folder of posts with Ray Data: one mmfuse model per worker actor.

Every ``*.jsonl`` file of ``--posts`` holds posts as ``mmfuse predict --input`` reads them
(``{"id", "text", "image"?}``, image paths relative to the file). The predictions are written
as JSONL to ``--out`` (one file per block) and, with ``--collect``, printed.

    python examples/ray_batch_predict.py --model runs/cls --posts corpus/cls/posts --out preds --workers 2

On a cluster, start Ray there (``ray start --head`` on one machine, ``ray start
--address=...`` on the others) and pass ``--address auto``; each worker machine needs mmfuse
installed (``pip install`` of the same wheel) and the run folder at the same path (or on shared
storage). Without ``--address`` a local Ray instance is started on this machine only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# loopback only and no usage reporting, set before Ray is imported
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")

import numpy as np
import ray


# imported as a module (not run as a script), this file is not on the workers' path: send its
# code along with the tasks (cloudpickle pickles it by value)
if __name__ != "__main__":
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


class MmfusePredictor:
    """A Ray Data actor: loads the run folder once, then predicts batches of posts."""

    def __init__(self, run_dir: str, device: str = "cpu"):
        import mmfuse

        self.model = mmfuse.load(run_dir, device=device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = [str(t) if t is not None else "" for t in batch["text"]]
        images = [str(p) if isinstance(p, str) and p else None for p in batch["image_path"]]
        ids = [str(i) for i in batch["id"]]
        results = self.model.predict(texts, images, ids=ids, errors="return")
        return {"id": np.array(ids, dtype=object), "prediction": np.array([json.dumps(r) for r in results], dtype=object)}


def read_posts(folder: Path) -> list[dict]:
    """The posts of every ``*.jsonl`` file, with image paths made absolute."""
    rows = []
    for f in sorted(folder.glob("*.jsonl")):
        for line in f.read_text().splitlines():
            if line.strip():
                p = json.loads(line)
                image = p.get("image")
                rows.append({"id": str(p["id"]), "text": p.get("text", ""), "image_path": str((f.parent / image).resolve()) if image else ""})
    return rows


def run(model: str, posts: Path, out: Path | None = None, workers: int = 2, batch_size: int = 32, address: str | None = None) -> list[dict]:
    """Predict every post; returns ``[{"id", "prediction"}]`` (prediction: the result dict)."""
    started = not ray.is_initialized()
    if started:
        if address:
            ray.init(address=address)
        else:
            ray.init(address="local", num_cpus=max(workers, 1), include_dashboard=False, log_to_driver=False)
    try:
        ds = ray.data.from_items(read_posts(posts))
        preds = ds.map_batches(
            MmfusePredictor,
            fn_constructor_kwargs={"run_dir": str(Path(model).resolve())},
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=1,
            batch_size=batch_size,
            batch_format="numpy",
        )
        if out is not None:
            preds.write_json(str(Path(out).resolve()))
        return [{"id": r["id"], "prediction": json.loads(r["prediction"])} for r in preds.take_all()]
    finally:
        if started:
            ray.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a trained run folder")
    ap.add_argument("--posts", required=True, type=Path, help="a folder of *.jsonl posts")
    ap.add_argument("--out", type=Path, help="output folder for JSONL predictions")
    ap.add_argument("--workers", type=int, default=2, help="model actors (one model each)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--address", help="an existing Ray cluster (e.g. auto); default: a local instance")
    ap.add_argument("--collect", action="store_true", help="print the predictions")
    a = ap.parse_args()
    rows = run(a.model, a.posts, a.out, a.workers, a.batch_size, a.address)
    if a.collect:
        for r in rows:
            print(json.dumps(r))
    print(f"{len(rows)} posts predicted by {a.workers} workers")


if __name__ == "__main__":
    main()
