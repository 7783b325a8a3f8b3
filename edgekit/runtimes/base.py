"""The runner contract and registry (numpy only; no TensorFlow, no edgekit imports)."""

from __future__ import annotations

import importlib

import numpy as np

# artifact suffix -> "module:Class", relative to this package, imported lazily.
_RUNNERS = {
    ".tflite": (".litert", "LiteRTRunner"),
    ".onnx": (".onnxruntime", "OnnxRuntimeRunner"),
    ".engine": (".tensorrt", "TensorRTRunner"),
    ".plan": (".tensorrt", "TensorRTRunner"),
}


class RunnerError(Exception):
    """A runner could not load or run an artifact; the message names the file and the remedy."""


class Runner:
    """Loads one artifact. `run` takes and returns float32 NHWC batches in the model's value
    range, whatever the artifact's own I/O dtype and layout (int8 I/O is (de)quantized here)."""

    runtime: str = ""

    def __init__(
        self, path: str, threads: int = 1, delegate: str = "xnnpack", manifest: dict | None = None
    ):
        self.path = str(path)
        self.threads = threads
        self.delegate = delegate
        self.manifest = manifest or {}
        self._load()

    def _load(self) -> None:
        raise NotImplementedError

    @property
    def input_shape(self) -> tuple:
        raise NotImplementedError

    def run(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 4:
            raise RunnerError(
                f"{self.path}: expected an NHWC float32 batch (N, H, W, C), got shape {x.shape}"
            )
        return self._infer(x)

    def _infer(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def versions(self) -> dict:
        return {}


def runner_for(path: str, **kwargs) -> Runner:
    import os

    suffix = os.path.splitext(str(path))[1].lower()
    entry = _RUNNERS.get(suffix)
    if entry is None:
        raise RunnerError(
            f"{path}: no runner for '{suffix}' files; expected one of {', '.join(_RUNNERS)}"
        )
    module = importlib.import_module(entry[0], __package__)
    return getattr(module, entry[1])(path, **kwargs)
