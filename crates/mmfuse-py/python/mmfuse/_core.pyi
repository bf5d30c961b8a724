"""Type stubs of mmfuse's native module (see the functions' docstrings for the details)."""

import os
import pathlib
from typing import Any, Callable, Literal, Mapping, Optional, Sequence, Tuple, Union, overload

import numpy as np
import numpy.typing as npt

__version__: str

PathLike = Union[str, os.PathLike[str]]
#: A path, encoded bytes (PNG, JPEG), a PIL image or a numpy uint8 array H×W×3 (H×W, H×W×4 too).
ImageLike = Union[PathLike, bytes, bytearray, npt.NDArray[np.uint8], Any]
#: The CLI's JSON line for one post: {"label", "probs"} or {"words", "tags", "entities"},
#: plus "modalities" (and "id", "placeholder_image" when set); {"error"} with errors="return".
Result = dict[str, Any]
Device = str  # "cpu", "gpu", "gpu:0", "gpu:software"

class Model:
    """A trained run folder, loaded for prediction (see :func:`load`)."""

    @property
    def task(self) -> Literal["ner", "classify", "regression"]: ...
    @property
    def labels(self) -> list[str]: ...
    @property
    def run_dir(self) -> pathlib.Path: ...
    @property
    def device(self) -> str: ...
    def info(self) -> dict[str, Any]: ...
    @overload
    def predict(
        self,
        texts: str,
        images: Optional[ImageLike] = None,
        *,
        ids: Optional[Sequence[Optional[str]]] = None,
        ocr: Optional[str] = None,
        batch_size: int = 32,
        errors: Literal["raise", "return"] = "raise",
    ) -> Result: ...
    @overload
    def predict(
        self,
        texts: Sequence[Optional[str]],
        images: Optional[Sequence[Optional[ImageLike]]] = None,
        *,
        ids: Optional[Sequence[Optional[str]]] = None,
        ocr: Optional[Sequence[Optional[str]]] = None,
        batch_size: int = 32,
        errors: Literal["raise", "return"] = "raise",
    ) -> list[Result]: ...
    def predict_segments(
        self, segments: Sequence[Mapping[str, Any]], *, batch_size: int = 32, errors: Literal["raise", "return"] = "raise"
    ) -> list[Result]: ...

def load(run_dir: PathLike, device: Device = "cpu") -> Model: ...
@overload
def encode(
    texts: Sequence[str],
    images: None = None,
    *,
    text_encoder: PathLike,
    image_encoder: None = None,
    pooling: Literal["mean-normalized", "mean", "cls"] = "mean-normalized",
    max_len: int = 128,
    preprocess: Literal["imagenet_eval", "muse", "clip"] = "imagenet_eval",
    batch_size: int = 32,
    device: Device = "cpu",
) -> npt.NDArray[np.float32]: ...
@overload
def encode(
    texts: None = None,
    images: Sequence[ImageLike] = ...,
    *,
    text_encoder: None = None,
    image_encoder: PathLike,
    pooling: Literal["mean-normalized", "mean", "cls"] = "mean-normalized",
    max_len: int = 128,
    preprocess: Literal["imagenet_eval", "muse", "clip"] = "imagenet_eval",
    batch_size: int = 32,
    device: Device = "cpu",
) -> npt.NDArray[np.float32]: ...
@overload
def encode(
    texts: Sequence[str],
    images: Sequence[ImageLike],
    *,
    text_encoder: PathLike,
    image_encoder: PathLike,
    pooling: Literal["mean-normalized", "mean", "cls"] = "mean-normalized",
    max_len: int = 128,
    preprocess: Literal["imagenet_eval", "muse", "clip"] = "imagenet_eval",
    batch_size: int = 32,
    device: Device = "cpu",
) -> Tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]: ...
def train(
    config: Union[PathLike, Mapping[str, Any]],
    *,
    out: PathLike,
    overrides: Optional[Union[Mapping[str, Any], Sequence[str]]] = None,
    resume: bool = False,
    progress: Optional[Callable[[dict[str, Any]], Optional[bool]]] = None,
    device: Optional[Device] = None,
    quiet: bool = True,
) -> pathlib.Path: ...
def evaluate(
    run_dir: PathLike,
    data_dir: Optional[PathLike] = None,
    *,
    robustness: bool = False,
    missing_only: bool = False,
    split: Literal["dev", "test"] = "test",
    seed: int = 0,
    device: Device = "cpu",
) -> dict[str, Any]: ...
def synth(out: PathLike, *, seed: int = 42, n_train: int = 3000, n_dev: int = 500, n_test: int = 1000, label_noise: float = 0.0) -> dict[str, int]: ...
def synth_aligned(out: PathLike, *, seed: int = 7, n_train: int = 1284, n_dev: int = 229, n_test: int = 686) -> None: ...
