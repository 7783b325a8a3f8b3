"""Type checks on a manifest read back from disk, so a wrong one fails in one line.

A hand-edited or foreign `<artifact>.json` of the wrong shape names the file and the key,
instead of failing deep in the harness.
"""

from __future__ import annotations

import math

from ..checks import MAX_SIDE
from ..errors import EdgekitError

_NONE = type(None)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _shape(v) -> bool:
    # [H, W], [H, W, C] or [N, H, W, C]; None marks a dynamic dimension
    return v is None or (
        isinstance(v, list)
        and 2 <= len(v) <= 4
        and all(d is None or (_is_int(d) and 1 <= d <= MAX_SIDE) for d in v)
    )


# key -> (test, what was expected); keys not listed are not read by edgekit and pass through.
_TOP = {
    "manifest_version": (_is_int, "a whole number"),
    "format": (lambda v: isinstance(v, str), "a string such as 'tflite'"),
    "precision": (lambda v: isinstance(v, (str, _NONE)), "a string such as 'int8'"),
    "io": (lambda v: v in (None, "float", "int8"), "'float' or 'int8'"),
    "label": (lambda v: isinstance(v, (str, _NONE)), "a string"),
    "file": (lambda v: isinstance(v, str), "a file name"),
    "layout": (lambda v: v in (None, "NHWC", "NCHW"), "'NHWC' or 'NCHW'"),
    "input_shape": (
        _shape,
        f"a list of 2 to 4 dimensions from 1 to {MAX_SIDE} (or null), e.g. [1, 256, 256, 3]",
    ),
    "output_shape": (
        _shape,
        f"a list of 2 to 4 dimensions from 1 to {MAX_SIDE} (or null), e.g. [1, 256, 256, 3]",
    ),
    "dynamic_shape": (lambda v: isinstance(v, bool), "true or false"),
    "model": (lambda v: isinstance(v, dict), "an object describing the model"),
    "versions": (lambda v: isinstance(v, (dict, _NONE)), "an object"),
    "converter": (lambda v: isinstance(v, (dict, _NONE)), "an object"),
    "options": (lambda v: isinstance(v, (dict, _NONE)), "an object"),
    "plan": (lambda v: isinstance(v, (list, dict, _NONE)), "a list of plan steps"),
    "validation": (lambda v: isinstance(v, (dict, _NONE)), "an object"),
    "onnx_validation": (lambda v: isinstance(v, (dict, _NONE)), "an object"),
    "ops": (lambda v: isinstance(v, (dict, _NONE)), "an object"),
    "int8_report": (lambda v: isinstance(v, (dict, _NONE)), "an object"),
    "input": (lambda v: isinstance(v, (dict, _NONE)), "an object"),
    "output": (lambda v: isinstance(v, (dict, _NONE)), "an object"),
    "tensorrt_build": (lambda v: isinstance(v, (dict, _NONE)), "an object"),
    "io_dtypes": (lambda v: isinstance(v, (dict, _NONE)), "an object"),
    "sha256": (lambda v: isinstance(v, (str, _NONE)), "a hex string"),
    "size_bytes": (lambda v: v is None or (_is_int(v) and v >= 0), "a whole number >= 0"),
}
_MODEL = {
    "name": (lambda v: isinstance(v, str), "a string"),
    "task": (lambda v: isinstance(v, str), "a string"),
    "degradation": (lambda v: isinstance(v, (str, _NONE)), "a spec such as 'noise:sigma=25'"),
    "scale": (lambda v: _is_int(v) and 1 <= v <= 16, "a whole number from 1 to 16"),
    "value_range": (
        lambda v: isinstance(v, list) and len(v) == 2 and all(map(_is_num, v)) and v[0] < v[1],
        "[low, high] with low < high",
    ),
    "channels": (lambda v: v in (1, 3) and not isinstance(v, bool), "1 or 3"),
    "layout": (lambda v: v in ("NHWC", "NCHW"), "'NHWC' or 'NCHW'"),
    "source": (lambda v: isinstance(v, str), "a string"),
    "extra": (lambda v: isinstance(v, dict), "an object"),
    "input_multiple": (lambda v: _is_int(v) and 1 <= v <= 1024, "a whole number from 1 to 1024"),
}
_MODEL_REQUIRED = ("name", "task", "degradation")


def check_manifest(data, where) -> dict:
    """Return `data` if it is a manifest edgekit can read; else a one-line EdgekitError naming
    `where` (the manifest file) and the first bad key."""
    hint = "re-export the artifact with `edgekit export` (or fix the file by hand)"
    if not isinstance(data, dict):
        raise EdgekitError(
            f"{where}: a manifest must be a JSON object, got {type(data).__name__}; {hint}"
        )
    for key, (ok, expected) in _TOP.items():
        if key in data and not ok(data[key]):
            raise EdgekitError(
                f"{where}: key '{key}' must be {expected}, got {_show(data[key])}; {hint}"
            )
    model = data.get("model")
    if model is not None:
        unknown = sorted(set(model) - set(_MODEL))
        if unknown:
            raise EdgekitError(f"{where}: key 'model.{unknown[0]}' is not known; {hint}")
        missing = [k for k in _MODEL_REQUIRED if k not in model]
        if missing and model:
            raise EdgekitError(f"{where}: key 'model.{missing[0]}' is missing; {hint}")
        for key, (ok, expected) in _MODEL.items():
            if key in model and not ok(model[key]):
                raise EdgekitError(
                    f"{where}: key 'model.{key}' must be {expected}, got {_show(model[key])}; {hint}"
                )
    return data


def _show(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."
