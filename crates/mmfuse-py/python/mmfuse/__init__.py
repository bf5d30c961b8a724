"""mmfuse: train, evaluate and serve multimodal (text + image) fusion models from Python.

The package is a thin layer over mmfuse's Rust core (the ``mmfuse._core`` extension): the same
library calls as the ``mmfuse`` command line, with the GIL released while they compute.

>>> import mmfuse
>>> mmfuse.synth("corpus", seed=1)                        # the synthetic corpus
>>> run = mmfuse.train("configs/demo-classify.toml", out="runs/cls",
...                    overrides={"data.dir": "corpus/cls"})
>>> model = mmfuse.load(run)
>>> model.predict("what a lovely day", images="corpus/cls/images/17.png")
{'label': 'positive', 'probs': {...}, 'modalities': ['text', 'image']}
>>> model.predict(["no picture here"], images=[None])     # text-only: the model knows
[{'label': ..., 'probs': {...}, 'modalities': ['text']}]

Functions: :func:`load` (a run folder → :class:`Model`), :func:`train`, :func:`evaluate`
(metrics, or the robustness report), :func:`encode` (embeddings from pretrained encoders as numpy
arrays), :func:`synth` / :func:`synth_aligned` (synthetic corpora). Errors are
:mod:`mmfuse.errors` classes.
"""

from . import errors
from ._core import Model, __version__, encode, evaluate, load, synth, synth_aligned, train
from .errors import ConfigError, ImageError, InputError, MmfuseError, RunFolderError, TrainingError

__all__ = [
    "Model",
    "load",
    "train",
    "evaluate",
    "encode",
    "synth",
    "synth_aligned",
    "errors",
    "MmfuseError",
    "InputError",
    "ImageError",
    "ConfigError",
    "RunFolderError",
    "TrainingError",
    "__version__",
]
