"""Give a dynamic-shape .tflite a fixed input (the tile), so every tool allocates the real size.

An fp32/fp16/dynamic-range export has the input [1, -1, -1, 3]: LiteRT allocates it as 1x1x1x3
unless the caller resizes, so Google's benchmark_litert_model timed a 1x1 image (0.01 ms) and an
app that does not resize gets the same. Here the model is allocated once at the tile, every
tensor's real shape is read back, and the shape and shape_signature vectors of each tensor are
overwritten in place in the flatbuffer (same lengths, so nothing else in the file moves). The
result is checked to give bit-identical outputs to the original model resized to the tile.
"""

from __future__ import annotations

import numpy as np

from ..errors import EdgekitError


def _interpreter(model: bytes, shape=None):
    from ai_edge_litert.interpreter import Interpreter

    from ..quiet import capture_stderr

    with capture_stderr():
        it = Interpreter(model_content=model, num_threads=1)
    if shape is not None:
        it.resize_tensor_input(it.get_input_details()[0]["index"], list(shape), strict=False)
    it.allocate_tensors()
    return it


def _run(it, x: np.ndarray) -> np.ndarray:
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"]).copy()


def is_dynamic(model: bytes) -> bool:
    sig = _interpreter(model).get_input_details()[0]["shape_signature"]
    return bool(np.any(np.asarray(sig)[1:3] < 0))


def fix_input_shape(model: bytes, tile: tuple[int, int], name: str = "model") -> bytes:
    """`model` with every tensor's shape fixed for a (1, tile[0], tile[1], C) input."""
    from ai_edge_litert import schema_py_generated as schema

    original = _interpreter(model)
    detail = original.get_input_details()[0]
    shape = [1, int(tile[0]), int(tile[1]), int(detail["shape_signature"][-1])]
    sized = _interpreter(model, shape)
    real = {int(t["index"]): [int(d) for d in t["shape"]] for t in sized.get_tensor_details()}
    buf = bytearray(model)
    root = schema.Model.GetRootAs(buf, 0)
    if root.SubgraphsLength() != 1:
        raise EdgekitError(
            f"{name}: expected a model with one subgraph, got {root.SubgraphsLength()}"
        )
    sub = root.Subgraphs(0)
    for i in range(sub.TensorsLength()):
        t = sub.Tensors(i)
        if i not in real or not real[i] or t.ShapeLength() != len(real[i]):
            continue  # scalars and tensors the runtime does not report keep their shapes
        t.ShapeAsNumpy()[:] = real[i]  # views into `buf`: written in place
        if t.ShapeSignatureLength() == len(real[i]):
            t.ShapeSignatureAsNumpy()[:] = real[i]
    fixed = bytes(buf)
    # the fixed model must allocate at the tile by itself and compute exactly the same
    check = _interpreter(fixed)
    got = [int(d) for d in check.get_input_details()[0]["shape"]]
    if got != shape or is_dynamic(fixed):
        raise EdgekitError(f"{name}: could not fix the input shape to {shape} (got {got})")
    dtype = np.dtype(detail["dtype"])
    rng = np.random.default_rng(0)
    x = rng.random(shape).astype(np.float32)
    if dtype.kind != "f":
        x = rng.integers(-100, 100, shape).astype(dtype)
    if not np.array_equal(_run(check, x), _run(sized, x)):
        raise EdgekitError(
            f"{name}: the model with a fixed {shape[1]}x{shape[2]} input does not reproduce the "
            "original's output; re-export it with --shape HxW instead"
        )
    return fixed
