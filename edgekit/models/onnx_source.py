"""Take an `.onnx` restoration model (e.g. exported from PyTorch) as MODEL, checked before it runs.

Validation comes first and loads nothing executable: onnx.checker, the opset, no operator from a
custom domain (edgekit never loads custom-op libraries), exactly one rank-4 float image input and
one output, 1 or 3 channels in NCHW or NHWC, static or symbolic H/W. The loaded model is an
`OnnxModel`: callable like a Keras model on float32 NHWC batches (ONNX Runtime, CPU), so compare,
bench and export validation run it as the reference. ONNX and TensorRT exports start from the
graph itself (export/onnx.py); TFLite export and compress need a Keras graph and refuse it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import EdgekitError, require

STANDARD_DOMAINS = ("", "ai.onnx")
MIN_OPSET = 11
_FLOATS = {1: "float32", 10: "float16"}  # onnx.TensorProto.FLOAT, FLOAT16
KERAS_ONLY = "needs a Keras model (it changes or converts the Keras graph)"


def is_onnx(loaded) -> bool:
    return bool(loaded.info.extra.get("format") == "onnx")


def refuse(loaded, what: str) -> None:
    """One-line refusal for a step that needs a Keras graph."""
    if is_onnx(loaded):
        raise EdgekitError(
            f"{loaded.info.source}: {what} {KERAS_ONLY}, and this is an ONNX model; export it "
            "with --format onnx or tensorrt, or pass the Keras model it came from"
        )


def _dims(value_info) -> list:
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else None for d in shape.dim]


def _layout(path, dims) -> tuple[str, int]:
    """(layout, channels) of a rank-4 image input: NCHW if dim 1 holds the channels, else NHWC."""
    if dims[1] in (1, 3):
        return "NCHW", dims[1]
    if dims[3] in (1, 3):
        return "NHWC", dims[3]
    shown = "x".join("?" if d is None else str(d) for d in dims)
    raise EdgekitError(
        f"{path}: input shape {shown} has no 1- or 3-channel axis (NCHW dim 1 or NHWC dim 3); "
        "edgekit needs an RGB or grayscale image input"
    )


def validate(path: Path):
    """The checked onnx.ModelProto and a summary dict; one-line EdgekitError otherwise."""
    onnx = require("onnx", "onnx", "loading ONNX models")
    try:
        proto = onnx.load(str(path))
    except Exception:  # noqa: BLE001 - protobuf DecodeError and friends: the file is broken
        raise EdgekitError(
            f"{path}: not a readable ONNX model (truncated or corrupted?); export it again"
        ) from None
    customs = sorted(
        {f"{n.domain}:{n.op_type}" for n in proto.graph.node if n.domain not in STANDARD_DOMAINS}
    )
    if customs:
        raise EdgekitError(
            f"{path}: uses operators from custom domains ({', '.join(customs[:3])}); edgekit never "
            "loads custom-op libraries: export the model with standard ONNX operators only"
        )
    opset = max((o.version for o in proto.opset_import if o.domain in STANDARD_DOMAINS), default=0)
    if opset < MIN_OPSET:
        raise EdgekitError(f"{path}: opset {opset}; edgekit needs opset {MIN_OPSET} or newer")
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:  # noqa: BLE001 - ValidationError
        text = " ".join(str(exc).split())[:200]
        raise EdgekitError(f"{path}: onnx.checker rejects the model ({text})") from None
    inits = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in inits]
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs)
        raise EdgekitError(
            f"{path}: model has {len(inputs)} inputs ({names}); edgekit needs exactly one image input"
        )
    if len(proto.graph.output) != 1:
        raise EdgekitError(
            f"{path}: model has {len(proto.graph.output)} outputs; edgekit needs one image output"
        )
    inp = inputs[0]
    elem = inp.type.tensor_type.elem_type
    if elem not in _FLOATS:
        raise EdgekitError(f"{path}: input '{inp.name}' is not float32/float16 (type {elem})")
    dims = _dims(inp)
    if len(dims) != 4:
        raise EdgekitError(
            f"{path}: input '{inp.name}' has rank {len(dims)}; edgekit needs one rank-4 image"
        )
    layout, channels = _layout(path, dims)
    hw = dims[2:4] if layout == "NCHW" else dims[1:3]
    return proto, {"layout": layout, "channels": channels, "hw": hw, "opset": opset}


class OnnxModel:
    """An ONNX graph run by ONNX Runtime (CPU) on float32 NHWC batches, like `keras_model(x)`."""

    def __init__(self, proto, layout: str, name: str, threads: int = 2):
        ort = require("onnxruntime", "onnx", "running ONNX models")
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.log_severity_level = 3
        self.proto = proto
        self.layout = layout
        self.name = name
        self._session = ort.InferenceSession(
            proto.SerializeToString(), so, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0]

    def __call__(self, x, training: bool = False) -> np.ndarray:
        dtype = np.float16 if self._input.type == "tensor(float16)" else np.float32
        outs = []
        for img in np.asarray(x, np.float32):
            feed = img[None].transpose(0, 3, 1, 2) if self.layout == "NCHW" else img[None]
            y = self._session.run(None, {self._input.name: np.ascontiguousarray(feed, dtype)})[0]
            y = np.asarray(y, np.float32)
            outs.append(y.transpose(0, 2, 3, 1) if self.layout == "NCHW" else y)
        return np.concatenate(outs)


def _probe(model: OnnxModel, path, hw) -> tuple[int, int]:
    """(scale, input multiple) from runs on zero images, as loading.py does for Keras models."""
    from .loading import PROBE

    h, w = (hw[0] or PROBE, hw[1] or PROBE)
    try:
        y = model(np.zeros((1, h, w, 3), np.float32))
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own exception types
        text = " ".join(str(exc).split())[:160]
        raise EdgekitError(f"{path}: the model fails on a {h}x{w} probe image ({text})") from None
    if y.ndim != 4 or y.shape[3] != 3 or y.shape[1] % h or y.shape[1] // h != y.shape[2] // w:
        raise EdgekitError(
            f"{path}: output shape {y.shape} for a (1, {h}, {w}, 3) input; edgekit needs an RGB "
            "image output of the input size times one integer scale"
        )
    scale = y.shape[1] // h
    if all(hw):
        return scale, 1
    for m in (1, 2, 4, 8, 16, 32, 64):
        size = m * (3 if m >= 16 else 1 + 2 * (48 // (2 * m)))
        try:
            y = model(np.zeros((1, size, size, 3), np.float32))
        except Exception:  # noqa: BLE001 - a size the model cannot take
            continue
        if y.shape[1:3] == (size * scale, size * scale):
            return scale, m
    raise EdgekitError(f"{path}: the model runs on {h}x{w} but on no smaller size tried")


def load(path: Path, value_range=None, task: str | None = None, degradation: str | None = None):
    """LoadedModel for a validated .onnx file (RGB, [0, 1] in and out)."""
    from ..data.degradations import parse
    from .info import LoadedModel, ModelInfo
    from .loading import _multiple_note

    proto, summary = validate(path)
    if summary["channels"] != 3:
        raise EdgekitError(f"{path}: a 1-channel ONNX model; edgekit takes RGB ONNX models only")
    if value_range is not None and tuple(float(v) for v in value_range) != (0.0, 1.0):
        raise EdgekitError(
            f"{path}: --value-range is not supported for ONNX models; export the model with its "
            "input and output in [0, 1]"
        )
    model = OnnxModel(proto, summary["layout"], path.stem)
    scale, multiple = _probe(model, path, summary["hw"])
    if degradation is not None:
        deg = parse(degradation)
        if deg.scale != scale:
            raise EdgekitError(
                f"{path}: degradation '{degradation}' has scale {deg.scale}, the model {scale}"
            )
        degradation = deg.spec
    elif scale in (2, 3, 4):
        degradation = f"downscale:factor={scale}"
    extra = {
        "format": "onnx",
        "onnx_layout": summary["layout"],
        "onnx_opset": summary["opset"],
        "input_multiple": multiple,
        "input_note": _multiple_note(multiple, scale),
    }
    if all(summary["hw"]):
        extra["fixed_input_hw"] = list(summary["hw"])
    info = ModelInfo(
        name=path.stem,
        task=task or ("super-resolution" if scale > 1 else "restore"),
        degradation=degradation,
        scale=scale,
        source=str(path),
        extra=extra,
        input_multiple=multiple,
    )
    return LoadedModel(model, info)


def graph_for_export(loaded, shape, dynamic_hw: bool):
    """The source graph for an ONNX/TensorRT export: input fixed to the tile (batch 1) unless
    dynamic_hw, output dims from a probe run; returns (onnx.ModelProto, layout)."""
    onnx = require("onnx", "onnx", "ONNX export")
    model = loaded.model
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    if shape is not None and not dynamic_hw:
        h, w = shape
        c = 3
        dims = [1, c, h, w] if model.layout == "NCHW" else [1, h, w, c]
        inits = {t.name for t in proto.graph.initializer}
        inp = next(i for i in proto.graph.input if i.name not in inits)
        y = model(np.zeros((1, h, w, c), np.float32))
        out_dims = [1, y.shape[3], y.shape[1], y.shape[2]] if model.layout == "NCHW" else y.shape
        for vi, new in ((inp, dims), (proto.graph.output[0], list(out_dims))):
            del vi.type.tensor_type.shape.dim[:]
            for d in new:
                vi.type.tensor_type.shape.dim.add().dim_value = int(d)
        del proto.graph.value_info[:]
        proto = onnx.shape_inference.infer_shapes(proto)
    return proto, model.layout
