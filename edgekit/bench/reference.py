"""Float-reference runs: the float Keras model on the artifacts' tiles, cached under an explicit key.

Runs on the host through the same tiling as the artifacts (and on whole images when the model
takes any size); the cache key is the model's weights plus the eval inputs, not id(model).
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..models.info import LoadedModel
from ..models.predict import from_model_range, predict, to_model_range
from .evalset import EvalSet, TiledSet


def model_key(loaded: LoadedModel) -> str:
    """What identifies a reference model's outputs: its name, source and a hash of its weights."""
    h = hashlib.sha1(f"{loaded.info.name}|{loaded.info.source}".encode())
    for w in loaded.model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


class ReferenceRuns:
    """The reference model's outputs, computed once per (model, eval inputs, tiling) and kept in
    `cache` (a dict the caller may share between bench() calls, e.g. one per target)."""

    def __init__(self, loaded: LoadedModel, cache: dict | None = None):
        self.loaded = loaded
        self.cache = {} if cache is None else cache
        self.key = model_key(loaded)

    def tiled(self, evalset: EvalSet, ts: TiledSet | None, tile, overlap, margin, progress=None):
        """Whole-image outputs of the model run through the artifacts' tiling (`ts` None:
        streamed per photo instead of from all tiles at once)."""
        key = (self.key, "tiles", tuple(tile), overlap, margin, evalset.key)
        if key not in self.cache:
            if ts is None:  # streamed, tile row by tile row (memory bounded by the tile)
                from .stream import keras_outputs

                self.cache[key] = keras_outputs(
                    self.loaded, evalset, tile, overlap, margin, progress=progress
                )
            else:
                info = self.loaded.info
                out = predict(self.loaded.model, to_model_range(ts.tiles, info), progress=progress)
                self.cache[key] = ts.blend(from_model_range(out, info))
        return self.cache[key]

    def whole(self, evalset: EvalSet) -> list[np.ndarray] | None:
        """The model on each whole image, when it accepts any H x W (else None)."""
        key = (self.key, "whole", evalset.key)
        if key not in self.cache:
            self.cache[key] = _whole_images(self.loaded, evalset.degraded)
        return self.cache[key]


def _whole_images(reference: LoadedModel, degraded: list[np.ndarray]) -> list[np.ndarray] | None:
    try:
        shape = reference.model.input_shape
        if isinstance(shape, list):
            return None
        if shape[1] is not None or shape[2] is not None:
            return None
        return [
            from_model_range(
                predict(reference.model, to_model_range(x[None], reference.info), 1)[0],
                reference.info,
            )
            for x in degraded
        ]
    except Exception:  # noqa: BLE001 - an extra diagnostic; never fail the benchmark for it
        return None
