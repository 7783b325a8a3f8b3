"""Exact-in-float graph rewrites that move a tf_keras model's layers onto a runtime's int8 fast path.

Each rewrite replaces one layer by a small composite layer computing the same function in float
(up to float rounding) out of ops the runtime runs fast in int8 (see ../shared/USERS.md and
edgekit/export/fastpath.py, the table of which ops stay on which runtime's fast path):

    prelu             PReLU -> LeakyReLU (one shared alpha <= 1), else per-channel
                      x + relu((alpha-1)*x) (alpha <= 1) or x - relu((1-alpha)*x) (alpha > 1):
                      one 1x1 depthwise conv with fused ReLU and one ADD/SUB (exact: see below).
                      For ONNX Runtime (prelu_split), when every alpha <= 1:
                      alpha*x + relu((1-alpha)*x), two 1x1 depthwise convs and an Add (its int8
                      scores 0.02-0.03 dB higher vs clean on the zoo ESPCNs).
                      PRELU has no int8 XNNPACK kernel; max(x, alpha*x) lowers to MAXIMUM, which
                      XNNPACK does not take in int8 either (measured with LiteRT 2.3).
    clamp             ReLU(max_value=m) (the zoo's [0, 1] output clamp, MINIMUM + RELU in TFLite,
                      neither delegated in int8) -> relu(x) - relu(relu(x) - m) when the op
                      before takes a fused ReLU (ADD, CONV_2D ...: one extra SUB with fused ReLU
                      and one SUB), else relu6(x * 6/m) * m/6 (two MULs, the first with a fused
                      RELU6). Not for ONNX Runtime: its int8 export fuses the clamp into one
                      Clip that the quantizer folds into the QuantizeLinear before it
                      (edgekit.export.onnx_clamp; the MUL form cost 0.03 dB on DnCNN there).
    transpose_conv    Conv2DTranspose(k, stride s) -> [ZeroPadding2D] + Conv2D(s*s*C) +
                      DepthToSpace(s) (sub-pixel convolution; weights remapped exactly, the
                      kernel zero-padded when k is not a multiple of s).
    avg_pool          AveragePooling2D(k, 'valid') -> DepthwiseConv2D(k, stride k, weights 1/k^2).
    concat_tree       Concatenate of more than 4 inputs (XNNPACK's limit) -> a tree of <= 4.
    narrow_input      Conv2D(kh x kw, kw >= 5) over <= 4 channels (the first conv: RGB) -> a 1 x kw
                      conv with one-hot weights that gathers each pixel's kw row neighbours into
                      cin*kw channels, then a kh x 1 conv over them. XNNPACK's int8 conv pads each
                      tap's channels to a vector width, so a 3-channel conv runs no faster than
                      float (measured 0.9x at 144 px); the gathered form reads cin*kw channels
                      per tap. Same MACs, exact: the gather copies values (its int8 range is the
                      input's).
    pad_channels      (opt-in: ONNX int8 with asymmetric activations, ONNX Runtime's CPU recipe)
                      Conv2D with < 16 outputs -> 16 (zero weights) + a channel slice, and < 16
                      inputs -> a multiple of 4 (a channel pad first): MLAS's int8 conv kernels
                      do not tile 3 channels (DnCNN's 48->3 conv 6.65 -> 1.65 ms).
    block_conv        (opt-in: TFLite option block_convs) Conv2D(k, stride 1, 'same') with <= 32
                      input and <= 16 output channels, or a >= 5x5 one over RGB ->
                      SPACE_TO_DEPTH(2) + Conv2D on 2x2 blocks (4x
                      the channels, a quarter of the pixels, 4x the MACs) + DEPTH_TO_SPACE(2).
                      For int8 engines whose cost is per pixel and tap, not per MAC (Intel AMX
                      tiles: a 3->16 and a 32->32 conv take the same 1.3 ms at 256 px on our
                      host, the block form of a 16->16 conv 0.67 ms). Where int8 cost follows
                      MACs (a phone's dot-product kernels) 4x the MACs should be slower (not
                      measured: no phone here), so it is never on by default.

The model is rebuilt with tf_keras.models.clone_model: untouched layers are fresh copies with the
original weights, so the caller's model is never changed. `apply(model, runtime)` returns the
copy plus a record for the artifact manifest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np

# XNNPACK's CONCATENATION node takes at most this many inputs (a larger one stays on LiteRT's
# built-in kernel: measured on zoo espcn_x3's 9-way input repeat).
MAX_CONCAT_INPUTS = 4
INTEGER_PRECISIONS = ("int8", "int16x8")


@dataclass(frozen=True)
class Rewrite:
    name: str
    layer_class: str  # tf_keras class name the rewrite looks at
    runtimes: tuple[str, ...]  # runtimes whose int8 fast path it serves
    description: str
    build: Callable  # build(layer) -> replacement layer, str (why skipped) or None (not relevant)
    opt_in: bool = False  # applied only when named in `enable` (hardware-specific)


REWRITES: dict[str, Rewrite] = {}


def register(
    name: str, layer_class: str, runtimes: tuple[str, ...], description: str, opt_in: bool = False
):
    """Decorator: register `build(layer) -> new layer | reason str` under `name`. Rewrites of one
    layer class are tried in registration order."""

    def deco(fn):  # fn(layer) -> replacement layer, a str (why it is skipped) or None (n/a)
        REWRITES[name] = Rewrite(name, layer_class, tuple(runtimes), description, fn, opt_in)
        return fn

    return deco


def for_runtime(runtime: str, enable: tuple[str, ...] = ()) -> list[Rewrite]:
    return [
        r for r in REWRITES.values() if runtime in r.runtimes and (not r.opt_in or r.name in enable)
    ]


def match(layer, runtime: str, enable: tuple[str, ...] = ()) -> tuple[Rewrite, object] | None:
    """(rewrite, replacement layer or reason str) of `runtime`'s rewrites for this layer's class:
    the first that builds a replacement, else the first reason one gives, else None."""
    cls = type(layer).__name__
    reason = None
    for rw in for_runtime(runtime, enable):
        if rw.layer_class == cls:
            new = rw.build(layer)
            if new is not None and not isinstance(new, str):
                return rw, new
            if reason is None and new is not None:
                reason = (rw, new)
    return reason


def apply(model, runtime: str, enable: tuple[str, ...] = ()) -> tuple[object, dict]:
    """(rewritten copy of model, manifest record) for `runtime` ("litert" or "onnxruntime");
    `enable` names opt-in rewrites to apply too.

    The record is {"runtime", "applied": [{"rewrite", "layers"}], "skipped": [{"rewrite", "layer",
    "reason"}]}; when nothing applies the original model is returned (no copy needed)."""
    from ..tfcompat import import_tf

    _, keras = import_tf()
    applied: dict[str, list[str]] = {}
    skipped: list[dict] = []
    replacements: dict[str, object] = {}
    for layer in _flat_layers(model):
        inner = getattr(layer, "layer", None)  # a tfmot QuantizeWrapper around a layer
        wrapped = [r for r in for_runtime(runtime, enable) if r.layer_class == type(inner).__name__]
        if inner is not None and wrapped:
            skipped.append(
                {
                    "rewrite": wrapped[0].name,
                    "layer": layer.name,
                    "reason": "inside a QAT wrapper: its fake-quant ranges were trained for the "
                    "layer as it is (QAT models are converted without rewrites)",
                }
            )
            continue
        found = match(layer, runtime, enable)
        if found is None:
            continue
        rw, new = found
        if isinstance(new, str):
            skipped.append({"rewrite": rw.name, "layer": layer.name, "reason": new})
            continue
        replacements[layer.name] = new
        applied.setdefault(rw.name, []).append(layer.name)
    record = {
        "runtime": runtime,
        "applied": [{"rewrite": k, "layers": v} for k, v in applied.items()],
        "skipped": skipped,
    }
    if not replacements:
        return model, record
    nested = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
    if nested:
        record["applied"] = []
        record["skipped"] = skipped + [
            {
                "rewrite": "*",
                "layer": ", ".join(nested),
                "reason": "nested sub-models are not rebuilt; rewrites need a flat functional model",
            }
        ]
        return model, record

    def clone(layer):
        if layer.name in replacements:
            return replacements[layer.name]
        return layer.__class__.from_config(layer.get_config())

    try:
        copy = keras.models.clone_model(model, clone_function=clone)
    except Exception as exc:  # noqa: BLE001 - an unclonable model is exported as it is
        record["applied"] = []
        record["skipped"] = skipped + [
            {"rewrite": "*", "layer": model.name, "reason": f"model could not be rebuilt ({exc})"}
        ]
        return model, record
    for old in model.layers:
        if old.name not in replacements and old.weights:
            copy.get_layer(old.name).set_weights(old.get_weights())
    return copy, record


def for_export(
    model, precision: str, choice: bool | None, runtime: str, enable: tuple[str, ...] = ()
) -> tuple[object, dict]:
    """The model to convert and the manifest record. choice None (the default): rewrites on for
    integer precisions; False (CLI --no-rewrite, option rewrite: false) converts the model as is.
    `enable`: opt-in rewrites (block_conv) to apply as well."""
    on = precision in INTEGER_PRECISIONS if choice is None else bool(choice)
    if not on:
        return model, {"enabled": False}
    copy, record = apply(model, runtime, enable)
    return copy, {"enabled": True, **record}


def settle(model, record: dict) -> dict:
    """The record after the model was traced at its export shape: block_conv layers that fell
    back to the plain conv (odd or unknown height/width there) move from applied to skipped."""
    fell_back = [
        layer.name
        for layer in _flat_layers(model)
        if type(layer).__name__ == "BlockConv" and not getattr(layer, "blocked", False)
    ]
    if not fell_back:
        return record
    applied = []
    for entry in record.get("applied", []):
        kept = [n for n in entry["layers"] if n not in fell_back]
        if kept:
            applied.append({**entry, "layers": kept})
    skipped = list(record.get("skipped", [])) + [
        {
            "rewrite": "block_conv",
            "layer": n,
            "reason": "odd or unknown height/width at this layer (2x2 blocks need even sizes)",
        }
        for n in fell_back
    ]
    return {**record, "applied": applied, "skipped": skipped}


# Layers whose TFLite op takes a fused ReLU: a clamp right after one of them uses the SUB form.
FUSES_RELU = (
    "Add", "Subtract", "Multiply", "Conv2D", "DepthwiseConv2D", "Dense", "PReluDepthwise",
    "NarrowInputConv", "BlockConv",
)  # fmt: skip


def clamp_form(producer_class: str | None) -> str:
    """ "relu_sub" (relu(x) - relu(relu(x) - m): the first ReLU fuses into the producer, the second
    into a SUB; int8 quality as good as MINIMUM + RELU) where the producer takes a fused ReLU, else
    "relu6_mul" (relu6(x * 6/m) * m/6: MUL with fused RELU6 + MUL; ~4 dB worse vs Keras on DnCNN,
    still far below the restoration error)."""
    return "relu_sub" if producer_class in FUSES_RELU else "relu6_mul"


def clamp(tf, y, lo: float, hi: float, form: str = "relu6_mul"):
    """clip(y, lo, hi) in a form that stays on XNNPACK's int8 path (tf.clip_by_value lowers to
    MINIMUM + RELU, which XNNPACK does not take in int8). Exact in float."""
    span = hi - lo
    z = y - lo if lo != 0.0 else y
    if form == "relu_sub":
        # span - relu(span - relu(z)): both intermediate ranges span [0, span] on any data (the
        # form relu(z) - relu(relu(z) - span) gets a degenerate int8 scale when no calibration
        # output exceeds span, and XNNPACK then refuses its SUB)
        z = span - tf.nn.relu(span - tf.nn.relu(z))
    else:
        z = tf.nn.relu6(z * (6.0 / span)) * (span / 6.0)
    return z + lo if lo != 0.0 else z


def _flat_layers(model):
    for layer in model.layers:
        sub = getattr(layer, "layers", None)
        if sub:
            yield from _flat_layers(layer)
        else:
            yield layer


# ---------------------------------------------------------------------------------------------
# The rewrites


@register(
    "prelu",
    "PReLU",
    ("litert",),
    "PReLU -> LeakyReLU (shared alpha) or 1x1 depthwise convs with fused ReLU + ADD/SUB",
)
def _prelu(layer):
    return _prelu_layer(layer, split=False)


@register(
    "prelu_split",
    "PReLU",
    ("onnxruntime",),
    "PReLU -> LeakyReLU (shared alpha), alpha*x + relu((1-alpha)*x) as two 1x1 depthwise convs + "
    "Add (every alpha <= 1), else as the litert form",
)
def _prelu_split(layer):
    # ONNX Runtime int8, PSNR vs clean minus quantize_static defaults' (zoo espcn_x3 / espcn_x2,
    # benchmarks/bench_int8_fast.py's held-out tiles): x + relu((alpha-1)*x) -0.021 / +0.001 dB,
    # this form +0.005 / +0.019 dB (the user U-Net: 0.000 either way), for one more 1x1
    # depthwise conv per PReLU (its cost on ORT's speed is not measured yet)
    return _prelu_layer(layer, split=True)


def _prelu_layer(layer, split: bool):
    alpha = np.asarray(layer.get_weights()[0], np.float64)
    if alpha.ndim != 3 or alpha.shape[0] != 1 or alpha.shape[1] != 1:
        if np.all(alpha == alpha.flat[0]):
            alpha = alpha.reshape(-1)[:1]
        else:
            return "alpha varies over height/width (PReLU without shared_axes=[1, 2])"
    alpha = alpha.reshape(-1)
    keras = _keras()
    if np.all(alpha == alpha[0]) and alpha[0] <= 1.0:
        return keras.layers.LeakyReLU(alpha=float(alpha[0]), name=layer.name)
    return _classes()["PReluDepthwise"](alpha.astype(np.float32), split=split, name=layer.name)


@register(
    "clamp",
    "ReLU",
    ("litert",),
    "ReLU(max_value=m) clamp -> ReLU fused into the op before + SUB(fused ReLU) + SUB, or "
    "MUL(fused RELU6) + MUL after an op that takes no fused activation",
)
def _clamp(layer):
    from .inspect import _producers

    producers = _producers(layer)
    form = clamp_form(type(producers[0]).__name__ if len(producers) == 1 else None)
    return _clamp_layer(layer, form)


def _clamp_layer(layer, form: str):
    m = layer.max_value
    if m is None:
        return None  # a plain ReLU fuses into the op before it
    m = float(np.asarray(m))
    if float(np.asarray(layer.threshold)) != 0.0 or float(np.asarray(layer.negative_slope)) != 0.0:
        return "ReLU with a threshold or negative slope is not a clamp"
    if not m > 0:
        return f"max_value {m} is not positive"
    return _classes()["Clamp"](m, form, name=layer.name)


@register(
    "transpose_conv",
    "Conv2DTranspose",
    ("litert", "onnxruntime"),
    "Conv2DTranspose(k, stride s) -> Conv2D with s*s*C outputs + DepthToSpace(s) (sub-pixel)",
)
def _transpose_conv(layer):
    sh, sw = layer.strides
    if sh != sw or sh < 2:
        return f"strides {layer.strides}: only equal strides >= 2 map onto a pixel shuffle"
    if tuple(layer.dilation_rate) != (1, 1):
        return "dilated transposed conv"
    if layer.output_padding is not None:
        return "output_padding is set"
    if layer.data_format != "channels_last":
        return "channels_first"
    kh, kw = layer.kernel_size
    if layer.padding == "valid" and (kh > sh or kw > sw):
        return "padding 'valid' with a kernel larger than the stride grows the output by k - s"
    weights = layer.get_weights()
    kernel = np.asarray(weights[0], np.float32)  # (kh, kw, out, in)
    bias = np.asarray(weights[1], np.float32) if layer.use_bias else None
    k2, bias2, pads = subpixel_weights(kernel, bias, sh, layer.padding)
    act = layer.get_config()["activation"]
    return _classes()["SubPixelConv"](k2, bias2, sh, pads, act, name=layer.name)


@register(
    "avg_pool",
    "AveragePooling2D",
    ("litert", "onnxruntime"),
    "AveragePooling2D(k) -> DepthwiseConv2D(k, stride k) with fixed 1/k^2 weights",
)
def _avg_pool(layer):
    if layer.padding != "valid":
        return "padding 'same' averages fewer pixels at the border (not a fixed-weight conv)"
    if layer.data_format != "channels_last":
        return "channels_first"
    channels = layer.input_shape[-1]
    if channels is None:
        return "unknown channel count"
    return _classes()["AvgPoolDepthwise"](
        tuple(layer.pool_size), tuple(layer.strides), int(channels), name=layer.name
    )


@register(
    "concat_tree",
    "Concatenate",
    ("litert",),
    f"Concatenate of > {MAX_CONCAT_INPUTS} inputs -> a tree of <= {MAX_CONCAT_INPUTS}-input concats",
)
def _concat_tree(layer):
    n = len(layer.input_shape) if isinstance(layer.input_shape, list) else 1
    if n <= MAX_CONCAT_INPUTS:
        return None
    if layer.axis not in (-1, 3):
        return f"axis {layer.axis}: only channel concatenation is rewritten"
    return _classes()["ConcatTree"](MAX_CONCAT_INPUTS, name=layer.name)


# Which stride-1 convs run on 2x2 blocks (block_conv), measured int8 on an AMX host (ms, plain ->
# blocks): 256 px 3->16 1.37 -> 0.58, 16->16 1.41 -> 0.67, 16->3 1.39 -> 0.55, 32->16 1.44 -> 1.19;
# but 32->32 1.49 -> 2.23, 24->24 1.48 -> 1.87, 48->12 1.66 -> 1.98, 3->64 (3x3) 1.83 -> 2.38. A
# 5x5 conv over RGB gains (144 px 3->64: 1.07 -> 0.47): blocks cut its 25 taps to 9.
BLOCK_CONV_MAX_IN, BLOCK_CONV_MAX_OUT = 32, 16


@register(
    "block_conv",
    "Conv2D",
    ("litert",),
    f"Conv2D(stride 1, 'same', <= {BLOCK_CONV_MAX_IN} channels in and <= {BLOCK_CONV_MAX_OUT} "
    "out, or >= 5x5 over RGB) -> "
    "SPACE_TO_DEPTH(2) + Conv2D on 2x2 blocks + DEPTH_TO_SPACE(2) (tile-bound int8 engines)",
    opt_in=True,
)
def _block_conv(layer):
    cin = layer.input_shape[-1] if not isinstance(layer.input_shape, list) else None
    if cin is None:
        return None
    narrow = cin <= BLOCK_CONV_MAX_IN and layer.filters <= BLOCK_CONV_MAX_OUT
    wide_rgb = cin <= NARROW_CHANNELS and min(layer.kernel_size) >= NARROW_MIN_KERNEL
    if not (narrow or wide_rgb):
        return None
    if tuple(layer.strides) != (1, 1):
        return None  # a strided conv already runs on fewer pixels
    if tuple(layer.dilation_rate) != (1, 1) or getattr(layer, "groups", 1) != 1:
        return "dilated or grouped conv"
    if layer.padding != "same" or layer.data_format != "channels_last":
        return "only 'same' padding, channels_last convs map onto 2x2 blocks"
    weights = layer.get_weights()
    kernel = np.asarray(weights[0], np.float32)
    bias = np.asarray(weights[1], np.float32) if layer.use_bias else None
    blocks, pads = block_weights(kernel)
    act = layer.get_config()["activation"]
    return _classes()["BlockConv"](kernel, bias, blocks, pads, act, name=layer.name)


def block_weights(kernel: np.ndarray, s: int = 2) -> tuple[np.ndarray, tuple[int, int]]:
    """(kernel over s x s blocks (KB, KB, s*s*cin, s*s*cout), (blocks padded before, after)) equal
    to a stride-1 'same' Conv2D with `kernel` (k, k, cin, cout) between SPACE_TO_DEPTH(s) and
    DEPTH_TO_SPACE(s) (channel (ry*s + rx)*C + c holds pixel (s*y + ry, s*x + rx)). Output pixel
    s*y + r reads input s*y + r + i - p (p = (k - 1) // 2, TF's 'same'), which lies in block
    y + (r + i - p) // s at sub-position (r + i - p) % s; the same along x."""
    kh, kw, cin, cout = kernel.shape
    if kh != kw:
        raise ValueError("block_weights needs a square kernel")
    p = (kh - 1) // 2
    lo, hi = (-p) // s, (s - 1 + kh - 1 - p) // s
    kb = hi - lo + 1
    out = np.zeros((kb, kb, s * s * cin, s * s * cout), np.float32)
    for ry in range(s):
        for rx in range(s):
            o = (ry * s + rx) * cout
            for i in range(kh):
                for j in range(kw):
                    sy, sx = ry + i - p, rx + j - p
                    c = ((sy % s) * s + sx % s) * cin
                    out[sy // s - lo, sx // s - lo, c : c + cin, o : o + cout] += kernel[i, j]
    return out, (-lo, hi)


# ONNX Runtime's int8 QLinearConv (MLAS, x86) is slow on channel counts its kernels do not tile:
# zoo DnCNN at 256 px, 48->3 output conv 6.65 ms (fp32: 4.0), 3->48 input conv 2.95 ms; padded
# with zero weights to 16 outputs 1.65 ms, to 4 inputs 1.07 ms (+0.25 ms for the pad and its
# quantize). 4 or 8 outputs did not help (6.4 ms).
ORT_MIN_OUT, ORT_IN_MULTIPLE = 16, 4


@register(
    "pad_channels",
    "Conv2D",
    ("onnxruntime",),
    f"Conv2D with < {ORT_MIN_OUT} outputs or < 16 inputs not a multiple of {ORT_IN_MULTIPLE} -> "
    "the same conv with zero-weight channels + a slice / a channel pad (ORT CPU int8)",
    opt_in=True,
)
def _pad_channels(layer):
    cin = layer.input_shape[-1] if not isinstance(layer.input_shape, list) else None
    if cin is None or getattr(layer, "groups", 1) != 1 or layer.data_format != "channels_last":
        return None
    cout = layer.filters
    cin_p = -(-cin // ORT_IN_MULTIPLE) * ORT_IN_MULTIPLE if cin < 16 else cin
    cout_p = max(cout, ORT_MIN_OUT)
    if (cin_p, cout_p) == (cin, cout):
        return None
    weights = layer.get_weights()
    kernel = np.zeros((*layer.kernel_size, cin_p, cout_p), np.float32)
    kernel[:, :, :cin, :cout] = weights[0]
    bias = None
    if layer.use_bias:
        bias = np.zeros(cout_p, np.float32)
        bias[:cout] = weights[1]
    cfg = layer.get_config()
    cfg.update(filters=cout_p, name=f"{layer.name}_padded")
    return _classes()["PaddedConv"](cfg, kernel, bias, cin, cout, name=layer.name)


# A conv reading at most this many channels is a "narrow input" (RGB, RGBA, grey). Only kernels
# at least this wide are split: ESPCN's 5x5 3->64 conv went 0.9 -> 0.45 ms at 144 px, a U-Net's
# 3x3 3->16 conv gained nothing (whole model 7.1 -> 7.3 ms at 256 px).
NARROW_CHANNELS = 4
NARROW_MIN_KERNEL = 5


@register(
    "narrow_input",
    "Conv2D",
    ("litert", "onnxruntime"),
    f"Conv2D(kh x kw) over <= {NARROW_CHANNELS} channels -> 1 x kw one-hot gather conv + kh x 1 conv",
)
def _narrow_input(layer):
    cin = layer.input_shape[-1] if not isinstance(layer.input_shape, list) else None
    kh, kw = layer.kernel_size
    if cin is None or cin > NARROW_CHANNELS or kw < NARROW_MIN_KERNEL or kh < 2:
        return None  # not a narrow-input conv, a 3x3 one (no gain measured), or one-dimensional
    if tuple(layer.dilation_rate) != (1, 1) or getattr(layer, "groups", 1) != 1:
        return "dilated or grouped conv"
    if layer.data_format != "channels_last":
        return "channels_first"
    weights = layer.get_weights()
    gather, kernel = narrow_input_weights(np.asarray(weights[0], np.float32))
    bias = np.asarray(weights[1], np.float32) if layer.use_bias else None
    cfg = layer.get_config()
    return _classes()["NarrowInputConv"](
        gather,
        kernel,
        bias,
        tuple(layer.strides),
        layer.padding,
        cfg["activation"],
        name=layer.name,
    )


def narrow_input_weights(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gather (1, kw, cin, kw*cin), column kernel (kh, 1, kw*cin, cout)) from a Conv2D kernel
    (kh, kw, cin, cout): the gather puts x[., x + j - pw, c] in channel j*cin + c, and the column
    conv sums kernel[i, j, c] over them, which is the original conv (padding splits per axis)."""
    kh, kw, cin, cout = kernel.shape
    gather = np.zeros((1, kw, cin, kw * cin), np.float32)
    for j in range(kw):
        gather[0, j, np.arange(cin), j * cin + np.arange(cin)] = 1.0
    column = kernel.reshape(kh, 1, kw * cin, cout).copy()  # (i, j, c) -> (i, 0, j*cin + c)
    return gather, column


def subpixel_weights(kernel: np.ndarray, bias, stride: int, padding: str):
    """Conv2D weights equal to a Conv2DTranspose followed by nothing: returns (kernel (KH, KW, in,
    s*s*out) for DepthToSpace's channel order, bias (s*s*out,) or None, ((top, bottom), (left,
    right)) zero padding before a 'valid' Conv2D).

    Transposed conv: out[q*s + r] = sum_d x[q - d] * W[d*s + r + p] (p = the 'same' padding
    before, (k - s) // 2); a Conv2D over x padded by dmax before and -dmin after reads x[q - d]
    at tap j = dmax - d."""
    kh, kw, cout, cin = kernel.shape
    s = stride

    def axis(k):
        p = max(k - s, 0) // 2 if padding == "same" else 0
        ds = [d for r in range(s) for d in range(-k, k + 1) if 0 <= d * s + r + p < k]
        return p, min(ds), max(ds)

    (py, dminy, dmaxy), (px, dminx, dmaxx) = axis(kh), axis(kw)
    KH, KW = dmaxy - dminy + 1, dmaxx - dminx + 1
    out = np.zeros((KH, KW, cin, s * s * cout), np.float32)
    for ry in range(s):
        for rx in range(s):
            block = (ry * s + rx) * cout
            for jy in range(KH):
                ty = (dmaxy - jy) * s + ry + py
                if not 0 <= ty < kh:
                    continue
                for jx in range(KW):
                    tx = (dmaxx - jx) * s + rx + px
                    if 0 <= tx < kw:
                        out[jy, jx, :, block : block + cout] = kernel[ty, tx].T
    b = None if bias is None else np.tile(np.asarray(bias, np.float32), s * s)
    return out, b, ((dmaxy, -dminy), (dmaxx, -dminx))


# ---------------------------------------------------------------------------------------------
# Composite layers (conversion-only: built from numpy weights, never serialised)


def _keras():
    from ..tfcompat import import_tf

    return import_tf()[1]


@cache
def _classes() -> dict[str, type]:
    from ..models.layers import layer_classes
    from ..tfcompat import import_tf

    tf, keras = import_tf()
    DepthToSpace = layer_classes()["DepthToSpace"]

    def depthwise(name, weights, activation=None):
        c = len(weights)
        dw = keras.layers.DepthwiseConv2D(1, use_bias=False, activation=activation, name=name)
        dw.build((None, None, None, c))
        dw.set_weights([np.asarray(weights, np.float32).reshape(1, 1, c, 1)])
        return dw

    class PReluDepthwise(keras.layers.Layer):
        """PReLU with per-channel alpha as x +/- a 1x1 depthwise conv with fused ReLU.

        PReLU(x) = x + (1 - alpha) * relu(-x) = x + relu((alpha - 1) * x) where alpha <= 1, and
        x - (alpha - 1) * relu(-x) = x - relu((1 - alpha) * x) where alpha > 1; mixed channels
        add a second 1x1 depthwise conv holding the +1/-1 signs.
        split (every alpha <= 1): alpha * x + relu((1 - alpha) * x), two 1x1 depthwise convs (the
        second with fused ReLU) and an add; ONNX Runtime's int8 scores higher this way."""

        def __init__(self, alpha, split=False, **kwargs):
            super().__init__(**kwargs)
            self.alpha = np.asarray(alpha, np.float32)
            self.split = bool(split)

        def build(self, input_shape):
            a = self.alpha
            le1 = a <= 1
            self.mode = "le1" if np.all(le1) else ("gt1" if not np.any(le1) else "mixed")
            if self.split and self.mode == "le1":
                self.mode = "split"
                self.s = depthwise(f"{self.name}_scale", a)
                self.t = depthwise(f"{self.name}_relu", 1.0 - a, "relu")
                super().build(input_shape)
                return
            self.r = depthwise(f"{self.name}_relu", np.where(le1, a - 1.0, 1.0 - a), "relu")
            if self.mode == "mixed":
                self.sign = depthwise(f"{self.name}_sign", np.where(le1, 1.0, -1.0))
            super().build(input_shape)

        def call(self, x):
            if self.mode == "split":
                return self.s(x) + self.t(x)
            r = self.r(x)
            if self.mode == "le1":
                return x + r
            if self.mode == "gt1":
                return x - r
            return x + self.sign(r)

    class Clamp(keras.layers.Layer):
        """min(max(x, 0), m) in one of clamp()'s forms (edgekit.export.rewrites.clamp_form)."""

        def __init__(self, max_value, form, **kwargs):
            super().__init__(**kwargs)
            self.max_value, self.form = float(max_value), form

        def call(self, x):
            return clamp(tf, x, 0.0, self.max_value, self.form)

    class SubPixelConv(keras.layers.Layer):
        """A Conv2DTranspose as [ZeroPadding2D] + Conv2D(s*s*C) + DepthToSpace(s)."""

        def __init__(self, kernel, bias, stride, pads, activation, **kwargs):
            super().__init__(**kwargs)
            self.kernel_np, self.bias_np = kernel, bias
            self.stride, self.pads, self.act = int(stride), pads, activation

        def build(self, input_shape):
            kh, kw = self.kernel_np.shape[:2]
            (t, b), (le, ri) = self.pads
            same = (t, b) == ((kh - 1) // 2, kh - 1 - (kh - 1) // 2) and (le, ri) == (
                (kw - 1) // 2,
                kw - 1 - (kw - 1) // 2,
            )
            self.pad = None
            if not same:
                self.pad = keras.layers.ZeroPadding2D(self.pads, name=f"{self.name}_pad")
            self.conv = keras.layers.Conv2D(
                self.kernel_np.shape[-1],
                (kh, kw),
                padding="same" if same else "valid",
                use_bias=self.bias_np is not None,
                activation=self.act,  # element-wise: commutes with the pixel shuffle
                name=f"{self.name}_conv",
            )
            self.conv.build((None, None, None, self.kernel_np.shape[2]))
            w = [self.kernel_np] + ([self.bias_np] if self.bias_np is not None else [])
            self.conv.set_weights(w)
            self.shuffle = DepthToSpace(self.stride, name=f"{self.name}_shuffle")
            super().build(input_shape)

        def call(self, x):
            if self.pad is not None:
                x = self.pad(x)
            return self.shuffle(self.conv(x))

    class NarrowInputConv(keras.layers.Layer):
        """A Conv2D over few channels as a 1 x kw gather conv + a kh x 1 conv (narrow_input_weights).
        The strides split per axis like 'same'/'valid' padding does, so the pair is exact."""

        def __init__(self, gather, kernel, bias, strides, padding, activation, **kwargs):
            super().__init__(**kwargs)
            self.gather_np, self.kernel_np, self.bias_np = gather, kernel, bias
            self.strides_, self.padding, self.act = strides, padding, activation

        def build(self, input_shape):
            (sh, sw), (_, kw, cin, n) = self.strides_, self.gather_np.shape
            self.gather = keras.layers.Conv2D(
                n, (1, kw), strides=(1, sw), padding=self.padding, use_bias=False,
                name=f"{self.name}_gather",
            )  # fmt: skip
            self.gather.build((None, None, None, cin))
            self.gather.set_weights([self.gather_np])
            kh, _, _, cout = self.kernel_np.shape
            self.conv = keras.layers.Conv2D(
                cout, (kh, 1), strides=(sh, 1), padding=self.padding,
                use_bias=self.bias_np is not None, activation=self.act, name=f"{self.name}_conv",
            )  # fmt: skip
            self.conv.build((None, None, None, n))
            w = [self.kernel_np] + ([self.bias_np] if self.bias_np is not None else [])
            self.conv.set_weights(w)
            super().build(input_shape)

        def call(self, x):
            return self.conv(self.gather(x))

    class BlockConv(keras.layers.Layer):
        """A stride-1 'same' Conv2D as SPACE_TO_DEPTH(2) + Conv2D on blocks + DEPTH_TO_SPACE(2)
        (block_weights). Where the traced height or width is odd or unknown it runs the plain
        conv instead and says so in `blocked` (rewrites.settle reads it)."""

        def __init__(self, kernel, bias, blocks, pads, activation, **kwargs):
            super().__init__(**kwargs)
            self.kernel_np, self.bias_np, self.blocks_np = kernel, bias, blocks
            self.pads, self.act = pads, activation
            self.blocked = False

        def build(self, input_shape):
            k, _, cin, cout = self.kernel_np.shape
            use_bias = self.bias_np is not None
            self.plain = keras.layers.Conv2D(
                cout, k, padding="same", use_bias=use_bias, activation=self.act,
                name=f"{self.name}_plain",
            )  # fmt: skip
            self.plain.build((None, None, None, cin))
            self.plain.set_weights([self.kernel_np] + ([self.bias_np] if use_bias else []))
            kb = self.blocks_np.shape[0]
            before, after = self.pads
            same = before == after == (kb - 1) // 2 and kb % 2 == 1
            self.pad = None if same else keras.layers.ZeroPadding2D(((before, after),) * 2)
            self.conv = keras.layers.Conv2D(
                4 * cout, kb, padding="same" if same else "valid", use_bias=use_bias,
                activation=self.act, name=f"{self.name}_blocks",
            )  # fmt: skip
            self.conv.build((None, None, None, 4 * cin))
            b = [np.tile(self.bias_np, 4)] if use_bias else []
            self.conv.set_weights([self.blocks_np] + b)
            super().build(input_shape)

        def call(self, x):
            h, w = x.shape[1], x.shape[2]
            if h is None or w is None or h % 2 or w % 2:
                self.blocked = False
                return self.plain(x)
            self.blocked = True
            y = tf.nn.space_to_depth(x, 2)
            if self.pad is not None:
                y = self.pad(y)
            return tf.nn.depth_to_space(self.conv(y), 2)

    class PaddedConv(keras.layers.Layer):
        """A Conv2D run with zero-weight channels: the input padded to `cin_p` channels, the
        output sliced back to `cout` (exact: the extra weights are zero)."""

        def __init__(self, conv_config, kernel, bias, cin, cout, **kwargs):
            super().__init__(**kwargs)
            self.conv_config, self.kernel_np, self.bias_np = conv_config, kernel, bias
            self.cin, self.cout = int(cin), int(cout)

        def build(self, input_shape):
            self.conv = keras.layers.Conv2D.from_config(self.conv_config)
            self.conv.build((None, None, None, self.kernel_np.shape[2]))
            self.conv.set_weights(
                [self.kernel_np] + ([self.bias_np] if self.bias_np is not None else [])
            )
            super().build(input_shape)

        def call(self, x):
            extra = self.kernel_np.shape[2] - self.cin
            if extra:
                x = tf.pad(x, [[0, 0], [0, 0], [0, 0], [0, extra]])
            y = self.conv(x)
            return y[..., : self.cout] if self.kernel_np.shape[3] > self.cout else y

    class AvgPoolDepthwise(keras.layers.Layer):
        """AveragePooling2D('valid') as a DepthwiseConv2D with fixed 1/(kh*kw) weights."""

        def __init__(self, pool, strides, channels, **kwargs):
            super().__init__(**kwargs)
            self.pool, self.strides_, self.channels = pool, strides, channels

        def build(self, input_shape):
            kh, kw = self.pool
            self.dw = keras.layers.DepthwiseConv2D(
                (kh, kw), strides=self.strides_, use_bias=False, name=f"{self.name}_dw"
            )
            self.dw.build((None, None, None, self.channels))
            self.dw.set_weights([np.full((kh, kw, self.channels, 1), 1.0 / (kh * kw), np.float32)])
            super().build(input_shape)

        def call(self, x):
            return self.dw(x)

    class ConcatTree(keras.layers.Layer):
        """Channel concatenation as a tree of concats of at most `fan` inputs each."""

        def __init__(self, fan, **kwargs):
            super().__init__(**kwargs)
            self.fan = int(fan)

        def call(self, inputs):
            xs = list(inputs)
            while len(xs) > self.fan:
                xs = [
                    tf.concat(xs[i : i + self.fan], -1) if len(xs[i : i + self.fan]) > 1 else xs[i]
                    for i in range(0, len(xs), self.fan)
                ]
            return tf.concat(xs, -1)

    return {
        "PReluDepthwise": PReluDepthwise,
        "Clamp": Clamp,
        "SubPixelConv": SubPixelConv,
        "NarrowInputConv": NarrowInputConv,
        "BlockConv": BlockConv,
        "PaddedConv": PaddedConv,
        "AvgPoolDepthwise": AvgPoolDepthwise,
        "ConcatTree": ConcatTree,
    }
