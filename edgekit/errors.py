"""User-facing errors. Anything raised as EdgekitError is printed as one line, exit code 2."""

from __future__ import annotations


class EdgekitError(Exception):
    """Bad input or an unmet requirement the user can fix. The message is the whole story:
    it names the file/layer/key, says what was expected and what to do."""

    exit_code = 2


class MissingBackendError(EdgekitError):
    """An optional backend (ONNX, TensorRT, ...) is not installed."""

    def __init__(self, module: str, extra: str, purpose: str):
        super().__init__(
            f"{purpose} needs the Python module '{module}', which is not installed; "
            f"install it with: pip install 'edgekit[{extra}]'"
        )
        self.module = module
        self.extra = extra


def require(module: str, extra: str, purpose: str):
    """Import an optional backend or raise MissingBackendError naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingBackendError(module, extra, purpose) from exc
