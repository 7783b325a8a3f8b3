"""Selective (mixed-precision) int8 TFLite: named nodes stay float, the rest is full integer.

Built on TensorFlow's QuantizationDebugger: it calibrates the converter once, reports a
per-node error (RMSE of the quantized output over its scale: ~0.29 is healthy rounding, > 0.7 is
suspect) and re-quantizes the calibrated model with `denylisted_nodes` kept in float. The
calibrated model is cached per process (model weights + calibration tiles + converter signature),
so several recipes on one model calibrate once.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import hashlib
import io
import os
import sys

import numpy as np

_CACHE: dict[str, object] = {}  # key -> QuantizationDebugger (holds the calibrated model)
_CACHE_SIZE = 2
STATS_SAMPLES = 4  # calibration tiles the per-node error statistics are collected on


@contextlib.contextmanager
def _quiet():
    """fd 1 and 2 to /dev/null: the MLIR quantizer prints its settings from C++."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            ctypes.CDLL(None).fflush(None)  # C stdio may still hold what it printed: drop it
            for fd, old in zip((1, 2), saved, strict=True):
                os.dup2(old, fd)
                os.close(old)


def layer_of(node: str) -> str | None:
    """The Keras layer a TFLite tensor name comes from ('model/conv3/BiasAdd;...' -> 'conv3')."""
    for part in node.split(";"):
        bits = part.split("/")
        if len(bits) >= 3:
            return bits[1]
    return None


def _key(model, calib: np.ndarray, signature) -> str:
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    h.update(np.ascontiguousarray(calib).tobytes())
    h.update(repr(signature).encode())
    return h.hexdigest()


def _debugger(tf, conv, calib: np.ndarray, key: str):
    if key in _CACHE:
        return _CACHE[key], True
    samples = calib[: max(1, min(STATS_SAMPLES, len(calib)))]

    def stats_data():
        for x in samples:
            yield [x[None].astype(np.float32)]

    dbg = tf.lite.experimental.QuantizationDebugger(
        converter=conv,
        debug_dataset=stats_data,
        debug_options=tf.lite.experimental.QuantizationDebugOptions(),
    )
    dbg.run()
    while len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = dbg
    return dbg, False


def node_stats(dbg) -> list[dict]:
    """One row per quantized node, in graph order: name, op, Keras layer, RMSE/scale."""
    buf = io.StringIO()
    dbg.layer_statistics_dump(buf)
    rows = []
    for r in csv.DictReader(io.StringIO(buf.getvalue())):
        scale = float(r.get("scale") or 0.0)
        mse = float(r.get("mean_squared_error") or 0.0)
        rows.append(
            {
                "node": r["tensor_name"],
                "op": r["op_name"],
                "layer": layer_of(r["tensor_name"]),
                "rmse_over_scale": round(float(np.sqrt(mse) / scale), 4) if scale > 0 else None,
            }
        )
    return rows


def convert_mixed(
    model, conv, calib: np.ndarray, float_nodes: list[str], signature
) -> tuple[bytes, dict]:
    """(tflite bytes, manifest block) for `conv` (an int8 converter with float kernels allowed
    and its representative dataset set) with `float_nodes` kept in float."""
    from ..errors import EdgekitError
    from ..tfcompat import import_tf

    tf, _ = import_tf()
    dbg, cached = _debugger(tf, conv, np.asarray(calib, np.float32), _key(model, calib, signature))
    nodes = node_stats(dbg)
    known = {n["node"] for n in nodes}
    unknown = [n for n in float_nodes if n not in known]
    if unknown:
        raise EdgekitError(
            f"export option float_nodes: {', '.join(unknown[:3])} is not a quantized node of this "
            "model; take the names from a manifest's converter.mixed_precision.nodes"
        )
    dbg._debug_options.denylisted_nodes = list(float_nodes)  # read by the re-quantization below
    with _quiet():
        data = dbg.get_nondebug_quantized_model()
    return bytes(data), {
        "float_nodes": list(float_nodes),
        "float_layers": sorted(
            {n["layer"] or n["node"] for n in nodes if n["node"] in float_nodes}
        ),
        "nodes": nodes,
        "calibration_reused": cached,
        "method": "tf.lite.experimental.QuantizationDebugger denylisted_nodes",
    }
