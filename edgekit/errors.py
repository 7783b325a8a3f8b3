"""User-facing errors. Anything raised as EdgekitError is printed as one line, exit code 2."""

from __future__ import annotations


class EdgekitError(Exception):
    """Bad input or an unmet requirement the user can fix. The message is the whole story:
    it names the file/layer/key, says what was expected and what to do."""

    exit_code = 2

    def __init__(self, *args):
        # The message is printed as one line: newlines echoed from user input are escaped.
        if args and isinstance(args[0], str):
            args = (args[0].replace("\r", "\\r").replace("\n", "\\n"), *args[1:])
        super().__init__(*args)


class EdgekitWarning(UserWarning):
    """Input edgekit can use but that is probably not what the user meant (the CLI prints it as
    one 'edgekit: warning:' line)."""


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
