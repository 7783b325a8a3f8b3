"""The runner contract and its registry (@register_runner, keyed by the class's artifact `suffixes`).

numpy only; no TensorFlow, no other edgekit imports: this package ships to devices.
"""

from __future__ import annotations

import numpy as np

# artifact suffix -> runner class; the runner modules import their runtime inside functions.
_RUNNERS: dict[str, type] = {}


class RunnerError(Exception):
    """A runner could not load or run an artifact; the message names the file and the remedy."""


class Runner:
    """Loads one artifact. `run` takes and returns float32 NHWC batches in the model's value
    range, whatever the artifact's own I/O dtype and layout (int8 I/O is (de)quantized here)."""

    runtime: str = ""
    suffixes: tuple[str, ...] = ()  # the artifact files it runs

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


def register_runner(cls):
    """Class decorator: `cls` runs artifacts with its `suffixes`."""
    for suffix in cls.suffixes:
        _RUNNERS[suffix] = cls
    return cls


def runner_for(path: str, **kwargs) -> Runner:
    import os

    # The runners register themselves on import. Imported here, not by the package: a device
    # without numpy must still import edgekit.runtimes.modules to say what it lacks.
    from . import litert, onnxruntime, tensorrt  # noqa: F401

    suffix = os.path.splitext(str(path))[1].lower()
    cls = _RUNNERS.get(suffix)
    if cls is None:
        raise RunnerError(
            f"{path}: no runner for '{suffix}' files; expected one of {', '.join(_RUNNERS)}"
        )
    return cls(path, **kwargs)
