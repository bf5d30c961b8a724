"""Shared fixtures of the Python package's tests: a small synthetic corpus and two trained run
folders (classification and NER) per session, the CLI binary, and the shared models folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import mmfuse

REPO = Path(__file__).resolve().parents[3]
CONFIGS = REPO / "configs"


def shared_dir() -> Path:
    """The models and goldens folder beside the checkout (``MMFUSE_SHARED_DIR`` overrides)."""
    return Path(os.environ.get("MMFUSE_SHARED_DIR", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    mmfuse.synth(out, seed=11, n_train=1500, n_dev=200, n_test=300)
    return out


@pytest.fixture(scope="session")
def cls_run(corpus, tmp_path_factory) -> Path:
    """The demo's late-fusion classifier with modality dropout, on the synthetic corpus."""
    out = tmp_path_factory.mktemp("runs") / "cls"
    return mmfuse.train(
        CONFIGS / "demo-classify.toml",
        out=out,
        overrides={"data.dir": str(corpus / "cls"), "train.modality_dropout": {"image": 0.2, "text": 0.2}},
    )


@pytest.fixture(scope="session")
def ner_run(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "ner"
    return mmfuse.train(CONFIGS / "demo-ner.toml", out=out, overrides={"data.dir": str(corpus / "ner"), "train.epochs": 3})


@pytest.fixture(scope="session")
def cli() -> str:
    """The ``mmfuse`` binary: ``MMFUSE_BIN``, else the one on ``PATH``; a visible skip otherwise."""
    b = os.environ.get("MMFUSE_BIN") or shutil.which("mmfuse")
    if not b or not Path(b).exists():
        pytest.skip("NOTE: no mmfuse binary (set MMFUSE_BIN, as scripts/test.sh does): the CLI comparison is skipped")
    return b
