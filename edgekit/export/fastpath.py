"""The data table of which ops each runtime runs on its fast path, per precision class.

One place for the rules `edgekit inspect` applies before any conversion and that the op report
(edgekit.export.tflite_ops) confirms after it. Op names are the runtime's own: TFLite builtin
ops for XNNPACK, ONNX ops for ONNX Runtime and TensorRT. Sources: measured on our development
machine with LiteRT 2.3 / ONNX Runtime 1.32 (USERS.md, benchmarks/bench_int8_fast.py) and the
upstream issues named in the reasons.
"""

from __future__ import annotations

# Keras layer class -> ops it becomes, per artifact format. A callable gets the layer (for ops
# that depend on its settings). () = folded away by the converter.
_RELU_TFLITE = lambda layer: (  # noqa: E731
    ("MINIMUM", "RELU") if getattr(layer, "max_value", None) is not None else ("RELU",)
)
_RELU_TENSORRT = lambda layer: (  # noqa: E731
    ("Relu", "Min") if getattr(layer, "max_value", None) is not None else ("Relu",)
)
# tf2onnx's Relu + Min + Max clamp: edgekit's ONNX Runtime int8 recipe fuses it into one Clip,
# which the quantizer folds into the QuantizeLinear before it (edgekit.export.onnx_clamp)
_RELU_ONNX = lambda layer: (  # noqa: E731
    ("Clip",) if getattr(layer, "max_value", None) is not None else ("Relu",)
)
_UPSAMPLE_TFLITE = lambda layer: (  # noqa: E731
    ("RESIZE_BILINEAR",) if layer.interpolation == "bilinear" else ("RESIZE_NEAREST_NEIGHBOR",)
)
LAYER_OPS: dict[str, dict] = {
    "tflite": {
        "InputLayer": (),
        "Conv2D": ("CONV_2D",),
        "DepthwiseConv2D": ("DEPTHWISE_CONV_2D",),
        "Conv2DTranspose": ("TRANSPOSE_CONV",),
        "Dense": ("FULLY_CONNECTED",),
        "PReLU": ("PRELU",),
        "LeakyReLU": ("LEAKY_RELU",),
        "ReLU": _RELU_TFLITE,
        "Add": ("ADD",),
        "Subtract": ("SUB",),
        "Multiply": ("MUL",),
        "Concatenate": ("CONCATENATION",),
        "AveragePooling2D": ("AVERAGE_POOL_2D",),
        "MaxPooling2D": ("MAX_POOL_2D",),
        "UpSampling2D": _UPSAMPLE_TFLITE,
        "DepthToSpace": ("DEPTH_TO_SPACE",),
        "ZeroPadding2D": ("PAD",),
        "BatchNormalization": (),
        # edgekit's rewritten forms (edgekit.export.rewrites)
        "PReluDepthwise": ("DEPTHWISE_CONV_2D", "ADD"),
        "Clamp": lambda layer: ("SUB",) if layer.form == "relu_sub" else ("MUL",),
        "SubPixelConv": ("CONV_2D", "DEPTH_TO_SPACE"),
        "NarrowInputConv": ("CONV_2D", "CONV_2D"),
        "BlockConv": ("SPACE_TO_DEPTH", "CONV_2D", "DEPTH_TO_SPACE"),
        "AvgPoolDepthwise": ("DEPTHWISE_CONV_2D",),
        "ConcatTree": ("CONCATENATION",),
    },
    "onnx": {
        "InputLayer": (),
        "Conv2D": ("Conv",),
        "DepthwiseConv2D": ("Conv",),
        "Conv2DTranspose": ("ConvTranspose",),
        "Dense": ("MatMul",),
        "PReLU": ("Relu", "Neg", "Mul"),  # tf2onnx's decomposition of PReLU
        "LeakyReLU": ("LeakyRelu",),
        "ReLU": _RELU_ONNX,
        "Add": ("Add",),
        "Subtract": ("Sub",),
        "Multiply": ("Mul",),
        "Concatenate": ("Concat",),
        "AveragePooling2D": ("AveragePool",),
        "MaxPooling2D": ("MaxPool",),
        "UpSampling2D": ("Resize",),
        "DepthToSpace": ("DepthToSpace",),
        "ZeroPadding2D": ("Pad",),
        "BatchNormalization": (),
        "PReluDepthwise": ("Conv", "Add"),
        "SubPixelConv": ("Conv", "DepthToSpace"),
        "NarrowInputConv": ("Conv", "Conv"),
        "PaddedConv": lambda layer: tuple(
            (["Pad"] if layer.kernel_np.shape[2] > layer.cin else [])
            + ["Conv"]
            + (["Slice"] if layer.kernel_np.shape[3] > layer.cout else [])
        ),
        "AvgPoolDepthwise": ("Conv",),
    },
}
LAYER_OPS["tensorrt"] = {**LAYER_OPS["onnx"], "ReLU": _RELU_TENSORRT}

# A standalone activation right after one of these is fused into it by the converter.
FUSES_ACTIVATION = {
    "tflite": ("Conv2D", "DepthwiseConv2D", "Add", "Subtract", "Multiply", "Dense"),
    "onnx": ("Conv2D", "DepthwiseConv2D"),
}
FUSES_ACTIVATION["tensorrt"] = FUSES_ACTIVATION["onnx"]

# runtime -> precision class -> op -> why it is OFF the fast path (ops not listed are on it).
# "*" lists the ops known to be ON it: an op in neither is reported as unknown, not guessed.
OFF_FAST_PATH: dict[str, dict[str, dict[str, str]]] = {
    "xnnpack": {
        "int8": {
            "PRELU": "XNNPACK has no int8 PRELU (TF #39014): LiteRT's reference kernel",
            "MINIMUM": "XNNPACK does not take int8 MINIMUM (a [0,1] clamp lowers to MINIMUM + RELU)",
            "MAXIMUM": "XNNPACK does not take int8 MAXIMUM",
            "RELU": "a standalone int8 RELU (not fused into the op before it) stays off XNNPACK",
            "AVERAGE_POOL_2D": "XNNPACK has no int8 AVERAGE_POOL_2D (XNNPACK #3040)",
            "TRANSPOSE_CONV": "per-channel int8 TRANSPOSE_CONV is slow in XNNPACK (#2762)",
            "NEG": "a standalone NEG stays off XNNPACK",
            "*": "CONV_2D DEPTHWISE_CONV_2D ADD SUB MUL CONCATENATION DEPTH_TO_SPACE SPACE_TO_DEPTH "
            "RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR LEAKY_RELU MEAN PAD MAX_POOL_2D "
            "FULLY_CONNECTED",
        },
        "float": {
            "*": "CONV_2D DEPTHWISE_CONV_2D TRANSPOSE_CONV ADD SUB MUL CONCATENATION DEPTH_TO_SPACE "
            "SPACE_TO_DEPTH RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR LEAKY_RELU PRELU MEAN PAD MAX_POOL_2D "
            "AVERAGE_POOL_2D MINIMUM MAXIMUM RELU NEG FULLY_CONNECTED",
        },
        "int16x8": {"*": ""},  # nothing: XNNPACK has no int16-activation kernels
    },
    "ort-cpu": {
        "int8": {
            "ConvTranspose": "ONNX Runtime runs a per-channel int8 ConvTranspose in float "
            "between DequantizeLinear/QuantizeLinear",
            "Neg": "PReLU's Neg/Mul decomposition stays in float between Q/DQ pairs",
            "Min": "a Min stays in float between Q/DQ pairs (measured, ORT 1.32; edgekit's own "
            "export fuses a clamp's Relu + Min + Max into a Clip it folds away)",
            "AveragePool": "not checked on ORT's int8 kernels; edgekit rewrites it to a conv",
            "*": "Conv Add Mul Concat DepthToSpace Relu Clip LeakyRelu MaxPool "
            "Resize Pad Sub MatMul Slice",
        },
        "float": {
            "*": "Conv ConvTranspose Add Mul Concat DepthToSpace Relu Min Clip LeakyRelu "
            "MaxPool AveragePool Resize Pad Sub MatMul Neg"
        },
    },
    "tensorrt": {
        "int8": {
            "Resize": "TensorRT has no int8 resize: it runs in fp16/fp32 between reformat layers",
            "*": "Conv ConvTranspose Add Mul Concat DepthToSpace Relu Min Clip LeakyRelu "
            "MaxPool AveragePool Pad Sub MatMul Neg",
        },
        "float": {
            "*": "Conv ConvTranspose Add Mul Concat DepthToSpace Relu Min Clip LeakyRelu "
            "MaxPool AveragePool Resize Pad Sub MatMul Neg"
        },
    },
}

RUNTIME_OF_FORMAT = {"tflite": "xnnpack", "onnx": "ort-cpu", "tensorrt": "tensorrt"}
# the rewrite registry's runtime keys (edgekit.export.rewrites)
REWRITE_RUNTIME = {"xnnpack": "litert", "ort-cpu": "onnxruntime"}
FORMAT_OF_TARGET_RUNTIME = {"litert": "tflite", "onnxruntime": "onnx", "tensorrt": "tensorrt"}


def host_int8_tiles() -> bool:
    """Whether this machine's CPU has Intel AMX int8 tiles (Linux /proc/cpuinfo flag amx_int8):
    XNNPACK's int8 convs there cost per pixel and tap, nearly flat up to 64 channels."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return "amx_int8" in line.split()
    except OSError:
        return False
    return False


def block_convs_on(option: str) -> tuple[bool, str]:
    """(apply rewrites.block_conv?, why) for TFLite option block_convs = auto | on | off."""
    if option == "on":
        return True, "block_convs: on"
    if option == "off":
        return False, "block_convs: off"
    if host_int8_tiles():
        return True, "block_convs: auto, this host's CPU has AMX int8 tiles"
    return False, "block_convs: auto, this host's CPU has no AMX int8 tiles"


def precision_class(precision: str) -> str:
    return {"int8": "int8", "int16x8": "int16x8"}.get(precision, "float")


def layer_ops(layer, fmt: str) -> tuple[str, ...] | None:
    """Ops a layer becomes in `fmt` (None: not in the table)."""
    entry = LAYER_OPS[fmt].get(type(layer).__name__)
    if entry is None:
        return None
    return tuple(entry(layer)) if callable(entry) else tuple(entry)


def op_verdict(op: str, runtime: str, precision: str) -> str | None:
    """None when `op` is on the runtime's fast path at this precision, else the reason.
    Unknown ops get a reason saying so."""
    table = OFF_FAST_PATH[runtime][precision_class(precision)]
    if op in table and op != "*":
        return table[op]
    if op in table.get("*", "").split():
        return None
    if runtime == "xnnpack" and precision_class(precision) == "int16x8":
        return "XNNPACK has no int16-activation kernels: LiteRT's built-in kernels"
    return f"{op} is not in edgekit's fast-path table for {runtime} {precision}"
