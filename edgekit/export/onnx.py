"""ONNX exporter: tf_keras model -> ONNX (fp32, fp16, int8 Q/DQ), validated against Keras.

The graph comes from tf2onnx with an explicit input signature (Keras 3 / tf_keras models fail
without one, onnx/tensorflow-onnx#2329). `options["layout"] = "NCHW"` asks tf2onnx to move the
layout change to the graph edges, where its optimizer cancels the NHWC<->NCHW transposes tf2onnx
otherwise leaves around every convolution (onnx/tensorflow-onnx#977); the number of Transpose
nodes left is recorded in the manifest. fp16 is a cast pass over the fp32 graph written here
(no onnxconverter-common needed); int8 is static Q/DQ quantization (edgekit.export.onnx_quant).

Request options (all optional):
    opset          ONNX opset (default DEFAULT_OPSET)
    layout         "NHWC" (default) or "NCHW" for the artifact's input/output
    keep_io_types  fp16: keep float32 input/output (default True)
    calib_method   int8: "minmax" (default), "percentile" or "entropy"
    quantize_bias  int8: int32 biases (default True; the TensorRT exporter asks for float biases)
    activations    int8: "asymmetric" (default: uint8 activations, int8 weights (U8S8), what ONNX
                   Runtime's CPU kernels fuse into QLinearConv; clamps fused into a Clip that
                   folds into the QuantizeLinear before it, edgekit.export.onnx_clamp) or
                   "symmetric" (int8, zero points 0: what TensorRT's explicit quantization
                   needs; the TensorRT exporter asks for it)
    per_channel    int8: per-channel weight scales (default True)
    rewrite        int8: exact graph rewrites onto ONNX Runtime's int8 kernels before converting
                   (PReLU, Conv2DTranspose, AveragePooling2D; edgekit.export.rewrites;
                   default on for int8)
    dynamic_hw     True: leave H and W symbolic (TensorRT profiles); validation uses the tile
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .. import atomic
from ..errors import EdgekitError, require
from ..models.info import LoadedModel
from ..terminal import spinner_progress
from .base import Artifact, Exporter, ExportRequest, manifest_path, register_exporter

DEFAULT_OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "output"
CONV_OPS = ("Conv", "ConvTranspose", "QLinearConv", "ConvInteger")

_FLOAT = 1  # onnx.TensorProto.FLOAT
_FLOAT16 = 10  # onnx.TensorProto.FLOAT16


def _onnx():
    return require("onnx", "onnx", "ONNX export")


def _tf2onnx():
    return require("tf2onnx", "onnx", "ONNX export (Keras -> ONNX conversion)")


def _activations(request: ExportRequest) -> str:
    # Without a target the graph is for ONNX Runtime: asymmetric uint8 (what its CPU kernels fuse).
    # The TensorRT exporter asks for "symmetric" itself.
    value = str(request.opts.activations or "asymmetric").lower()
    if value not in ("symmetric", "asymmetric"):
        raise EdgekitError(f"option activations='{value}': expected symmetric or asymmetric")
    return value


def _layout(request: ExportRequest) -> str:
    layout = str(request.opts.layout or "NHWC").upper()
    if layout not in ("NHWC", "NCHW"):
        raise EdgekitError(f"option layout='{layout}': expected NHWC or NCHW")
    return layout


# ---------------------------------------------------------------------------------------------
# Keras -> ONNX


def _cause_line(exc: Exception) -> str:
    """The informative line of a conversion error: TensorFlow's tracing errors start with
    "in user code:" and a traceback, and end with the actual message."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[-1] if lines[0].startswith("in user code") else lines[0]
    return line[:240]


def keras_to_onnx(
    model,
    shape: tuple[int, int] | None,
    *,
    opset: int = DEFAULT_OPSET,
    layout: str = "NHWC",
    dynamic_hw: bool = False,
    source: str = "model",
):
    """Convert a single-input single-output tf_keras image model to an fp32 onnx.ModelProto.

    Input and output are renamed `input` / `output`; with layout NCHW both are NCHW. Ops tf2onnx
    cannot convert raise EdgekitError naming the Keras layer and the TensorFlow op.
    """
    from ..tfcompat import import_tf

    tf, _ = import_tf()
    onnx = _onnx()
    tf2onnx = _tf2onnx()
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise EdgekitError(
            f"{source}: ONNX export supports one image input and one image output, the model has "
            f"{len(model.inputs)} inputs and {len(model.outputs)} outputs"
        )
    in_shape = tuple(model.inputs[0].shape)
    channels = in_shape[-1]
    if dynamic_hw or shape is None:
        hw = (None, None)
    else:
        hw = tuple(int(v) for v in shape)
        for fixed, want, axis in zip(in_shape[1:3], hw, ("height", "width"), strict=True):
            if fixed is not None and fixed != want:
                raise EdgekitError(
                    f"{source}: the model's input {axis} is fixed at {fixed} but the tile asks for "
                    f"{want}; export with --shape matching the model or rebuild it with None H/W"
                )
    spec = (tf.TensorSpec((1, *hw, channels), tf.float32, name=INPUT_NAME),)
    keras_out = model.output_names[0] if hasattr(model, "output_names") else None
    kwargs = {}
    if layout == "NCHW":
        kwargs = {
            "inputs_as_nchw": [INPUT_NAME],
            "outputs_as_nchw": [keras_out] if keras_out else None,
        }
    unsupported: list[str] = []
    handler = _CollectUnsupported(unsupported)
    tf2onnx_log = logging.getLogger("tf2onnx")
    tf2onnx_log.addHandler(handler)
    try:
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset, **kwargs)
    except Exception as exc:  # tf2onnx raises many types; name the model and the cause
        raise EdgekitError(
            f"{source}: tf2onnx {tf2onnx.__version__} could not convert the model at opset {opset} "
            f"({type(exc).__name__}: {_cause_line(exc)}); "
            "try another --opset or replace the layer named above"
        ) from None
    finally:
        tf2onnx_log.removeHandler(handler)
    bad = _unknown_ops(proto, opset)
    if bad or unsupported:
        names = ", ".join(bad or [f"op {u}" for u in unsupported])
        raise EdgekitError(
            f"{source}: tf2onnx {tf2onnx.__version__} cannot convert {names} to ONNX opset {opset}; "
            "replace that layer with supported ops (Conv2D, DepthToSpace, Add, ...) or try a newer --opset"
        )
    _rename_io(proto)
    proto.producer_name = "edgekit+tf2onnx"
    onnx.checker.check_model(proto)
    return proto


class _CollectUnsupported(logging.Handler):
    """Catches tf2onnx's 'Tensorflow op [name: Op] is not supported' log lines."""

    def __init__(self, sink: list[str]):
        super().__init__(logging.ERROR)
        self.sink = sink

    def emit(self, record):
        msg = record.getMessage()
        if "is not supported" in msg and msg.startswith("Tensorflow op ["):
            self.sink.append(msg[len("Tensorflow op [") : msg.index("]")])


def _layer_of(node_name: str) -> str:
    # tf2onnx keeps TensorFlow node names: "<model>/<layer>/<op scope>/Op".
    parts = node_name.split("/")
    return parts[1] if len(parts) > 2 else parts[0]


def _unknown_ops(proto, opset: int) -> list[str]:
    """Nodes whose op is not in the ONNX standard (what tf2onnx leaves for unconvertible TF ops)."""
    import onnx

    out = []
    for node in proto.graph.node:
        domain = node.domain or ""
        if domain not in ("", "ai.onnx") or not onnx.defs.has(node.op_type, domain):
            out.append(
                f"layer '{_layer_of(node.name)}' (TensorFlow op {node.op_type}, node {node.name})"
            )
    return out


def _rename_io(proto) -> None:
    """Call the graph's output `output` (tf2onnx uses the Keras layer name)."""
    graph = proto.graph
    old = graph.output[0].name
    if old == OUTPUT_NAME:
        return
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = OUTPUT_NAME
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = OUTPUT_NAME
    graph.output[0].name = OUTPUT_NAME


# ---------------------------------------------------------------------------------------------
# Graph facts


def count_ops(proto, op_type: str) -> int:
    return sum(1 for n in proto.graph.node if n.op_type == op_type)


def transposes_between_convs(proto) -> list[str]:
    """Names of Transpose nodes that lie on a path from one convolution to another."""
    graph = proto.graph
    producer = {out: n for n in graph.node for out in n.output}
    consumers: dict[str, list] = {}
    for n in graph.node:
        for name in n.input:
            consumers.setdefault(name, []).append(n)

    def reach(start_nodes, step) -> set[str]:
        seen: set[str] = set()
        stack = list(start_nodes)
        while stack:
            n = stack.pop()
            for nxt in step(n):
                if nxt.name not in seen:
                    seen.add(nxt.name)
                    stack.append(nxt)
        return seen

    convs = [n for n in graph.node if n.op_type in CONV_OPS]
    after_conv = reach(convs, lambda n: [c for o in n.output for c in consumers.get(o, [])])
    before_conv = reach(convs, lambda n: [producer[i] for i in n.input if i in producer])
    return [
        n.name
        for n in graph.node
        if n.op_type == "Transpose" and n.name in after_conv & before_conv
    ]


# ---------------------------------------------------------------------------------------------
# fp16 cast pass

# Inputs that ONNX requires to stay float32 whatever the graph's compute type: Resize roi/scales.
_KEEP_FLOAT_INPUTS = {"Resize": (1, 2), "Upsample": (1,)}


def to_float16(proto, keep_io_types: bool = True):
    """A float16 copy of an fp32 graph: float initializers, constants and Casts become float16.

    keep_io_types: the graph input/output stay float32 with Cast nodes at the edges; otherwise
    they become float16. Values are clipped to the float16 range rather than overflowing to inf.
    """
    onnx = _onnx()
    from onnx import helper, numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    graph = model.graph
    keep = set()
    for node in graph.node:
        for idx in _KEEP_FLOAT_INPUTS.get(node.op_type, ()):
            if idx < len(node.input) and node.input[idx]:
                keep.add(node.input[idx])

    def half(t):
        arr = numpy_helper.to_array(t).astype(np.float32)
        arr = np.clip(arr, -65504.0, 65504.0).astype(np.float16)
        return numpy_helper.from_array(arr, t.name)

    for i, init in enumerate(graph.initializer):
        if init.data_type == _FLOAT and init.name not in keep:
            graph.initializer[i].CopyFrom(half(init))
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == _FLOAT:
                if not (node.op_type == "Constant" and node.output[0] in keep):
                    attr.t.CopyFrom(half(attr.t))
            if node.op_type == "Cast" and attr.name == "to" and attr.i == _FLOAT:
                attr.i = _FLOAT16
    del graph.value_info[:]
    inp, out = graph.input[0], graph.output[0]
    if keep_io_types:
        cast_in = inp.name + "__fp16"
        cast_out = out.name + "__fp16"
        for node in graph.node:
            for i, name in enumerate(node.input):
                if name == inp.name:
                    node.input[i] = cast_in
            for i, name in enumerate(node.output):
                if name == out.name:
                    node.output[i] = cast_out
        graph.node.insert(
            0,
            helper.make_node(
                "Cast", [inp.name], [cast_in], name="edgekit_input_to_fp16", to=_FLOAT16
            ),
        )
        graph.node.append(
            helper.make_node(
                "Cast", [cast_out], [out.name], name="edgekit_output_to_fp32", to=_FLOAT
            )
        )
    else:
        inp.type.tensor_type.elem_type = _FLOAT16
        out.type.tensor_type.elem_type = _FLOAT16
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model)
    return model


# ---------------------------------------------------------------------------------------------
# Running an ONNX graph for validation (the runner does the same for the harness)


def ort_session(model_or_path, threads: int = 2):
    ort = require("onnxruntime", "onnx", "running ONNX models")
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    data = (
        model_or_path.SerializeToString()
        if hasattr(model_or_path, "SerializeToString")
        else str(model_or_path)
    )
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def run_onnx(session, x_nhwc: np.ndarray, layout: str) -> np.ndarray:
    """Run a batch through a session one image at a time; NHWC float32 in and out."""
    inp = session.get_inputs()[0]
    dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
    outs = []
    for x in np.asarray(x_nhwc, np.float32):
        feed = x[None].transpose(0, 3, 1, 2) if layout == "NCHW" else x[None]
        y = session.run(None, {inp.name: np.ascontiguousarray(feed, dtype=dtype)})[0].astype(
            np.float32
        )
        outs.append(y.transpose(0, 2, 3, 1) if layout == "NCHW" else y)
    return np.concatenate(outs)


# ---------------------------------------------------------------------------------------------
# The exporter


@register_exporter
class OnnxExporter(Exporter):
    format = "onnx"
    precisions = ("fp32", "fp16", "int8")

    def _export(self, loaded: LoadedModel, request: ExportRequest, out: Path) -> Artifact:
        from ..models.predict import predict
        from .manifest import build_manifest, package_version, write_manifest
        from .validate import validate_outputs

        _onnx()
        precision = request.precision.value
        layout = _layout(request)
        opset = int(request.opts.opset or DEFAULT_OPSET)
        keep_io = request.opts.keep_io_types
        dynamic_hw = request.opts.dynamic_hw
        source = loaded.info.source or loaded.info.name
        if precision == "int8" and (request.calib_inputs is None or len(request.calib_inputs) == 0):
            raise EdgekitError(
                f"{source}: ONNX int8 needs calibration tiles (request.calib_inputs); "
                "pass --calib with a folder of photos"
            )
        val_inputs = request.val_inputs if request.val_inputs is not None else request.calib_inputs
        converter: dict = {"name": "tf2onnx", "opset": opset, "layout": layout}
        extra: dict = {}
        from .rewrites import for_export

        rewritten: list = []
        model = loaded.model
        if loaded.info.extra.get("format") != "onnx":  # an ONNX source graph is not rewritten
            # ONNX Runtime's CPU recipe (asymmetric uint8) also pads convs to channel counts
            # MLAS tiles; TensorRT's (symmetric) does not need it
            enable = ("pad_channels",) if _activations(request) == "asymmetric" else ()
            model, rewritten = for_export(
                model, precision, request.opts.rewrite, "onnxruntime", enable
            )
        with spinner_progress() as progress:
            task = progress.add_task(f"ONNX {precision}: converting with tf2onnx", total=4)
            if loaded.info.extra.get("format") == "onnx":  # an ONNX model: start from its graph
                from ..models.onnx_source import graph_for_export

                fp32, layout = graph_for_export(loaded, request.shape, dynamic_hw)
                opset = loaded.info.extra["onnx_opset"]
                converter = {
                    "name": "source onnx (not converted)",
                    "opset": opset,
                    "layout": layout,
                }
            else:
                fp32 = keras_to_onnx(
                    model,
                    request.shape,
                    opset=opset,
                    layout=layout,
                    dynamic_hw=dynamic_hw,
                    source=source,
                )
            converter["rewrites"] = rewritten
            progress.update(task, advance=1)
            if precision == "fp16":
                progress.update(task, description="ONNX fp16: casting to float16")
                proto = to_float16(fp32, keep_io_types=keep_io)
                converter["keep_io_types"] = keep_io
            elif precision == "int8":
                from .onnx_quant import quantize_qdq

                progress.update(task, description="ONNX int8: calibrating Q/DQ")
                proto, qinfo = quantize_qdq(
                    fp32,
                    request.calib_inputs,
                    layout=layout,
                    method=request.opts.calib_method,
                    quantize_bias=request.opts.quantize_bias,
                    symmetric_activations=_activations(request) == "symmetric",
                    per_channel=request.opts.per_channel,
                    source=source,
                    nodes_to_exclude=request.opts.float_nodes,  # mixed precision
                )
                extra["int8_report"] = qinfo
                if "mixed_precision" in qinfo:
                    converter["mixed_precision"] = qinfo.pop("mixed_precision")
            else:
                proto = fp32
            progress.update(
                task, advance=1, description=f"ONNX {precision}: validating against Keras"
            )
            session = ort_session(proto)
            validation = validate_outputs(
                lambda xs: run_onnx(session, xs, layout),
                val_inputs,
                predict(loaded.model, val_inputs) if val_inputs is not None else None,
                precision=precision,
                label=str(out),
                options=request.options,
                value_range=loaded.info.value_range,
            )
            progress.update(task, advance=1, description=f"ONNX {precision}: writing {out.name}")
            inp, outp = _io_desc(proto.graph.input[0]), _io_desc(proto.graph.output[0])
            extra.update(
                {
                    "layout": layout,
                    "input": inp,
                    "output": outp,
                    # NHWC like every runner's input_shape; the artifact's own dims are in input/output
                    "input_shape": _nhwc(inp["shape"], layout),
                    "output_shape": _nhwc(outp["shape"], layout),
                    "dynamic_shape": _nhwc(inp["shape"], layout) is None,
                    "converter": converter,
                    "transposes": count_ops(proto, "Transpose"),
                    "transposes_between_convs": len(transposes_between_convs(proto)),
                    "ops": _op_histogram(proto),
                    "validation": validation,
                    "versions": {
                        "onnx": package_version("onnx"),
                        "tf2onnx": package_version("tf2onnx"),
                        "onnxruntime": package_version("onnxruntime"),
                    },
                }
            )
            # The artifact and its manifest are renamed into place together, or neither is.
            with atomic.atomic_paths(out, manifest_path(out)) as (tmp, tmp_manifest):
                tmp.write_bytes(proto.SerializeToString())
                manifest = build_manifest(loaded, request, out, extra, written=tmp)
                write_manifest(out, manifest, tmp=tmp_manifest)
            progress.update(task, advance=1)
        return Artifact(out, manifest)


def _op_histogram(proto) -> dict[str, int]:
    hist: dict[str, int] = {}
    for n in proto.graph.node:
        hist[n.op_type] = hist.get(n.op_type, 0) + 1
    return dict(sorted(hist.items()))


def _nhwc(dims: list, layout: str) -> list[int] | None:
    """[1, H, W, C] from the artifact's dims; None when H or W is symbolic."""
    if any(not isinstance(d, int) for d in dims):
        return None
    return [dims[0], dims[2], dims[3], dims[1]] if layout == "NCHW" else list(dims)


def _io_desc(value_info) -> dict:
    t = value_info.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]
    dtype = {_FLOAT: "float32", _FLOAT16: "float16"}.get(t.elem_type, str(t.elem_type))
    return {"name": value_info.name, "dtype": dtype, "shape": dims}
