"""TensorRT-RTX for the tests: required where its extra is installed, and whether a GPU is here."""

from __future__ import annotations

from importlib import metadata

import pytest


def require_tensorrt_rtx():
    """The tensorrt_rtx module. Where the `tensorrt-rtx` extra is installed the module must import
    (engines build on this CPU-only machine), so an import error fails; elsewhere the tests skip."""
    try:
        metadata.version("tensorrt-rtx-cu12")
    except metadata.PackageNotFoundError:
        pytest.skip(
            "the tensorrt-rtx extra (tensorrt-rtx-cu12) is not installed", allow_module_level=True
        )
    import tensorrt_rtx

    return tensorrt_rtx


def gpu_reason() -> str | None:
    """Why TensorRT engines cannot run here (no CUDA runtime / GPU), or None when they can."""
    from edgekit.runtimes.base import RunnerError
    from edgekit.runtimes.tensorrt import _load_cudart

    try:
        _load_cudart()
    except RunnerError as exc:
        return str(exc)
    return None
