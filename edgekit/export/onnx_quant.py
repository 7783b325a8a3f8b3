"""Static int8 quantization of an fp32 ONNX graph into Q/DQ form, calibrated on edgekit tiles.

The format is what TensorRT's explicit quantization wants (and ONNX Runtime runs as S8S8):
QuantizeLinear/DequantizeLinear pairs, int8 weights quantized symmetrically per output channel,
activations per tensor: int8 symmetric (zero point 0) for TensorRT, uint8 asymmetric for ONNX
Runtime's CPU kernels (U8S8). Calibration statistics come
from the degraded tiles edgekit cuts from the calibration images (request.calib_inputs).

The ONNX Runtime recipe (asymmetric activations) differs from quantize_static's defaults where
measured better on the zoo (benchmarks/bench_int8_fast.py, onnx-int8 vs onnx-int8-qs): clamps
are fused into one Clip that quantize_static folds into the QuantizeLinear before it, the output
clamp's tensor gets exactly the clamp's range (edgekit.export.onnx_clamp), and weights are per
channel. Calibration stays min/max, as in quantize_static's defaults: percentile ranges were
closer to the fp32 graph (0.6-1.3 dB on dncnn, the ESPCNs, unet_deshadow) but moved PSNR vs clean
by -0.17 dB on unet_deshadow (its skip concat's tail got clipped), +0.00-0.02 dB on the others.
The TensorRT recipe (symmetric) keeps the graph as it is.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path

import numpy as np

from ..errors import EdgekitError, require

_METHODS = ("minmax", "percentile", "entropy")


def _calibration_reader(base, inputs: np.ndarray, input_name: str, layout: str):
    """A CalibrationDataReader yielding one NHWC tile at a time (transposed for NCHW graphs)."""

    class TileReader(base):
        def __init__(self):
            self._i = 0

        def get_next(self):
            if self._i >= len(inputs):
                return None
            x = np.asarray(inputs[self._i], np.float32)[None]
            self._i += 1
            if layout == "NCHW":
                x = x.transpose(0, 3, 1, 2)
            return {input_name: np.ascontiguousarray(x)}

        def rewind(self):
            self._i = 0

    return TileReader()


def quantize_qdq(
    fp32_model,
    calib_inputs: np.ndarray,
    *,
    layout: str = "NHWC",
    method: str = "minmax",
    quantize_bias: bool = True,
    symmetric_activations: bool = True,
    per_channel: bool = True,
    source: str = "model",
    nodes_to_exclude: list[str] | None = None,
):
    """(int8 Q/DQ onnx.ModelProto, info dict) from an fp32 ModelProto and (N, H, W, 3) tiles.

    quantize_bias: int32 biases (ONNX Runtime's default). TensorRT rejects a DequantizeLinear of
    int32 ("input has type Int32 but must have type ... Int8"); it fuses float biases itself, so
    graphs meant for TensorRT keep them float (quantize_bias=False).
    symmetric_activations: int8 with zero point 0 for every activation, which TensorRT requires.
    ONNX Runtime's CPU kernels then keep each ReLU in float between a DequantizeLinear and a
    QuantizeLinear (it can only drop a ReLU whose QuantizeLinear saturates at zero), and on x86
    it converts part of an S8S8 graph to uint8, after which most convs no longer fuse into
    QLinearConv (a residual U-Net ran 0.5x its fp32). symmetric_activations=False quantizes
    activations to asymmetric uint8 (U8S8, MLAS's native x86 kernels): every conv fuses, ReLUs
    fold away (measured 1.5x fp32 on the same U-Net, 2.8x quantize_static's defaults).
    nodes_to_exclude: node names kept in float (mixed precision); info["mixed_precision"] then
    lists every quantizable node, so a caller can choose among them.
    With asymmetric activations the graph's clamps are fused first (edgekit.export.onnx_clamp).
    """
    onnx = require("onnx", "onnx", "ONNX int8 quantization")
    quant = require("onnxruntime.quantization", "onnx", "ONNX int8 quantization")
    if method not in _METHODS:
        raise EdgekitError(f"option calib_method='{method}': expected one of {', '.join(_METHODS)}")
    calib_inputs = np.asarray(calib_inputs, np.float32)
    if calib_inputs.ndim != 4 or calib_inputs.shape[-1] != 3:
        raise EdgekitError(
            f"{source}: calibration tiles must be an (N, H, W, 3) float32 array, got shape {calib_inputs.shape}"
        )
    calibrate = {
        "minmax": quant.CalibrationMethod.MinMax,
        "percentile": quant.CalibrationMethod.Percentile,
        "entropy": quant.CalibrationMethod.Entropy,
    }[method]
    input_name = fp32_model.graph.input[0].name
    clamps = None
    overrides = {}
    if not symmetric_activations:  # TensorRT's graphs stay as they are
        from .onnx_clamp import fuse_clamps

        fp32_model, clamps = fuse_clamps(fp32_model)
        out_clamp = clamps["output_clamp"]
        if out_clamp is not None:  # the clamp's exact range, not a calibrated one
            lo, hi = out_clamp["range"]
            overrides[out_clamp["tensor"]] = [{"rmin": np.float32(lo), "rmax": np.float32(hi)}]
    mixed = None
    if nodes_to_exclude is not None:
        mixed = _mixed_precision(fp32_model, list(nodes_to_exclude), source)
    extra = {
        "ActivationSymmetric": bool(symmetric_activations),  # zero point 0: TensorRT requires it
        "WeightSymmetric": True,
        "QuantizeBias": bool(quantize_bias),
    }
    if overrides:
        extra["TensorQuantOverrides"] = overrides
    with tempfile.TemporaryDirectory(prefix="edgekit-qdq-") as tmp:
        src = Path(tmp) / "fp32.onnx"
        dst = Path(tmp) / "int8.onnx"
        onnx.save(fp32_model, str(src))
        root = logging.getLogger()
        level = root.level
        root.setLevel(
            logging.ERROR
        )  # ORT warns to run its pre-processing; edgekit's graph is already clean
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # histogram calibrators print
                quant.quantize_static(
                    str(src),
                    str(dst),
                    _calibration_reader(
                        quant.CalibrationDataReader, calib_inputs, input_name, layout
                    ),
                    quant_format=quant.QuantFormat.QDQ,
                    per_channel=bool(per_channel),
                    activation_type=quant.QuantType.QInt8
                    if symmetric_activations
                    else quant.QuantType.QUInt8,
                    weight_type=quant.QuantType.QInt8,
                    calibrate_method=calibrate,
                    extra_options=extra,
                    nodes_to_exclude=list(nodes_to_exclude or []),
                )
        except Exception as exc:
            raise EdgekitError(
                f"{source}: ONNX Runtime could not quantize the graph to int8 Q/DQ "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                "export fp32/fp16 instead or report the layer named above"
            ) from None
        finally:
            root.setLevel(level)
        model = onnx.load(str(dst))
    info = {
        "scheme": "QDQ",
        "weights": f"int8 symmetric {'per-channel' if per_channel else 'per-tensor'}",
        "activations": "int8 symmetric per-tensor"
        if symmetric_activations
        else "uint8 asymmetric per-tensor",
        "tensorrt_compatible": bool(symmetric_activations and not quantize_bias),
        "bias": "int32" if quantize_bias else "float32",
        "calibration": {
            "method": method,
            "tiles": int(len(calib_inputs)),
            "tile": list(calib_inputs.shape[1:3]),
        },
        "quantized_nodes": _quantized_ops(model),
    }
    if clamps is not None:
        info["clamps"] = clamps
    if mixed is not None:
        info["mixed_precision"] = mixed
    return model, info


def _layer_of(node: str) -> str | None:
    """The Keras layer in a tf2onnx node name ('StatefulPartitionedCall/model/conv3/Conv2D')."""
    parts = [p for p in node.split("/") if not p.startswith("StatefulPartitionedCall")]
    return parts[1] if len(parts) >= 3 else None


def _mixed_precision(fp32_model, exclude: list[str], source: str) -> dict:
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    quantizable = set(QDQRegistry) | set(QLinearOpsRegistry)  # what quantize_static quantizes
    nodes = [
        {"node": n.name, "op": n.op_type, "layer": _layer_of(n.name), "rmse_over_scale": None}
        for n in fp32_model.graph.node
        if n.op_type in quantizable
    ]
    known = {n["node"] for n in nodes}
    unknown = [n for n in exclude if n not in known]
    if unknown:
        raise EdgekitError(
            f"{source}: option float_nodes: {', '.join(unknown[:3])} is not a quantizable node of "
            "this ONNX graph; take the names from a manifest's int8_report.mixed_precision.nodes"
        )
    return {
        "float_nodes": exclude,
        "float_layers": sorted({n["layer"] or n["node"] for n in nodes if n["node"] in exclude}),
        "nodes": nodes,
        "method": "onnxruntime.quantization.quantize_static nodes_to_exclude",
    }


def _quantized_ops(model) -> dict[str, int]:
    """How many nodes of each op type read a DequantizeLinear output (run on the int8 path)."""
    dq_outputs = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    hist: dict[str, int] = {}
    for n in model.graph.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear") and any(
            i in dq_outputs for i in n.input
        ):
            hist[n.op_type] = hist.get(n.op_type, 0) + 1
    return dict(sorted(hist.items()))
