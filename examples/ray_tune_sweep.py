"""A small hyper-parameter sweep of ``mmfuse.train`` with Ray Tune: a grid over the learning
rate and the modality dropout of the late-fusion baseline on a corpus folder, one trial per
CPU, the best run by dev macro-F1.

    python examples/ray_tune_sweep.py --config configs/demo-classify.toml --data corpus/cls --out sweeps/cls

Each trial is an ordinary mmfuse run folder under ``--out`` (``results.json``, checkpoints), so
the best one can be loaded with ``mmfuse.load`` or served with ``mmfuse serve``. On a cluster,
pass ``--address auto`` and an ``--out`` on shared storage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")

import ray
from ray import tune


# imported as a module (not run as a script), this file is not on the workers' path: send its
# code along with the tasks (cloudpickle pickles it by value)
if __name__ != "__main__":
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def trial(config: dict) -> None:
    """One Tune trial: an mmfuse training run, reported by its best-dev scores."""
    import mmfuse

    name = f"lr{config['lr']:g}-md{config['modality_dropout']:g}"
    out = Path(config["out"]) / name
    overrides = {
        "data.dir": config["data"],
        "train.lr": config["lr"],
        "train.modality_dropout": {"image": config["modality_dropout"], "text": config["modality_dropout"]},
        **config.get("extra", {}),
    }
    run = mmfuse.train(config["config"], out=out, overrides=overrides)
    results = json.loads((Path(run) / "results.json").read_text())
    tune.report({"dev_macro_f1": results["dev"]["macro_f1"], "test_accuracy": results["test"]["accuracy"], "run_dir": str(run)})


def sweep(config: str, data: str, out: str, lrs=(1e-3, 3e-3), dropouts=(0.0, 0.2), extra: dict | None = None, address: str | None = None, max_concurrent: int = 2):
    """Run the grid; returns (best config, best metrics)."""
    started = not ray.is_initialized()
    if started:
        if address:
            ray.init(address=address)
        else:
            ray.init(address="local", num_cpus=max_concurrent, include_dashboard=False, log_to_driver=False)
    try:
        space = {
            "config": str(Path(config).resolve()),
            "data": str(Path(data).resolve()),
            "out": str(Path(out).resolve()),
            "extra": extra or {},
            "lr": tune.grid_search(list(lrs)),
            "modality_dropout": tune.grid_search(list(dropouts)),
        }
        tuner = tune.Tuner(
            tune.with_resources(trial, {"cpu": 1}),
            param_space=space,
            tune_config=tune.TuneConfig(metric="dev_macro_f1", mode="max", max_concurrent_trials=max_concurrent),
            run_config=tune.RunConfig(name="mmfuse-sweep", storage_path=str((Path(out) / "_tune").resolve()), verbose=0),
        )
        results = tuner.fit()
        best = results.get_best_result()
        return best.config, best.metrics
    finally:
        if started:
            ray.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--data", required=True, help="the corpus folder (data.dir)")
    ap.add_argument("--out", required=True, help="folder of the trials' run folders")
    ap.add_argument("--address", help="an existing Ray cluster (e.g. auto)")
    a = ap.parse_args()
    cfg, metrics = sweep(a.config, a.data, a.out, address=a.address)
    print(f"best: lr {cfg['lr']}, modality dropout {cfg['modality_dropout']}: dev macro-F1 {metrics['dev_macro_f1']:.4f}, run {metrics['run_dir']}")


if __name__ == "__main__":
    main()
