"""The one way to run a Keras model on a stack of images: small batches, inference mode, float32 out.

Also the conversion between edgekit's [0, 1] images and a model's own value range.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .info import ModelInfo


def predict(
    model, x: np.ndarray, batch: int = 4, progress: Callable[[int, int], None] | None = None
) -> np.ndarray:
    """`model` (tf_keras) on float32 NHWC `x` in batches of `batch`; progress(done, total) after each."""
    outs = []
    for i in range(0, len(x), batch):
        y = model(np.asarray(x[i : i + batch], np.float32), training=False)
        outs.append(np.asarray(y, np.float32))
        if progress is not None:
            progress(min(i + batch, len(x)), len(x))
    return np.concatenate(outs, axis=0)


def to_model_range(x: np.ndarray, info: ModelInfo) -> np.ndarray:
    """[0, 1] pixels -> the model's value range."""
    lo, hi = info.value_range
    return x if (lo, hi) == (0.0, 1.0) else (lo + x * (hi - lo)).astype(np.float32)


def from_model_range(y: np.ndarray, info: ModelInfo) -> np.ndarray:
    """The model's value range -> [0, 1] pixels."""
    lo, hi = info.value_range
    return y if (lo, hi) == (0.0, 1.0) else ((y - lo) / (hi - lo)).astype(np.float32)
