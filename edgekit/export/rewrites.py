"""Exact-in-float graph rewrites that move a tf_keras model's layers onto a runtime's int8 fast path.

Each rewrite replaces one layer by a small composite layer computing the same function in float
(up to float rounding) out of ops the runtime runs fast in int8 (see ../shared/USERS.md and
edgekit/export/fastpath.py, the table of which ops stay on which runtime's fast path):

    prelu             PReLU -> LeakyReLU (one shared alpha <= 1), else per-channel
                      x + relu((alpha-1)*x) (alpha <= 1) or x - relu((1-alpha)*x) (alpha > 1):
                      one 1x1 depthwise conv with fused ReLU and one ADD/SUB (exact: see below).
                      PRELU has no int8 XNNPACK kernel; max(x, alpha*x) lowers to MAXIMUM, which
                      XNNPACK does not take in int8 either (measured with LiteRT 2.3).
    clamp             ReLU(max_value=m) (the zoo's [0, 1] output clamp, MINIMUM + RELU in TFLite,
                      neither delegated in int8) -> relu(x) - relu(relu(x) - m) when the op
                      before takes a fused ReLU (ADD, CONV_2D ...: one extra SUB with fused ReLU
                      and one SUB), else relu6(x * 6/m) * m/6 (two MULs, the first with a fused
                      RELU6). For ONNX Runtime always the MUL form (it has no int8 Sub).
    transpose_conv    Conv2DTranspose(k, stride s) -> [ZeroPadding2D] + Conv2D(s*s*C) +
                      DepthToSpace(s) (sub-pixel convolution; weights remapped exactly, the
                      kernel zero-padded when k is not a multiple of s).
    avg_pool          AveragePooling2D(k, 'valid') -> DepthwiseConv2D(k, stride k, weights 1/k^2).
    concat_tree       Concatenate of more than 4 inputs (XNNPACK's limit) -> a tree of <= 4.

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


REWRITES: dict[str, Rewrite] = {}


def register(name: str, layer_class: str, runtimes: tuple[str, ...], description: str):
    """Decorator: register `build(layer) -> new layer | reason str` under `name`."""

    def deco(fn):  # fn(layer) -> replacement layer, a str (why it is skipped) or None (n/a)
        REWRITES[name] = Rewrite(name, layer_class, tuple(runtimes), description, fn)
        return fn

    return deco


def for_runtime(runtime: str) -> list[Rewrite]:
    return [r for r in REWRITES.values() if runtime in r.runtimes]


def match(layer, runtime: str) -> tuple[Rewrite, object] | None:
    """(rewrite, replacement layer or reason str) for the first rewrite of `runtime` that looks at
    this layer's class, or None when none does."""
    cls = type(layer).__name__
    for rw in for_runtime(runtime):
        if rw.layer_class == cls:
            return rw, rw.build(layer)
    return None


def apply(model, runtime: str) -> tuple[object, dict]:
    """(rewritten copy of model, manifest record) for `runtime` ("litert" or "onnxruntime").

    The record is {"runtime", "applied": [{"rewrite", "layers"}], "skipped": [{"rewrite", "layer",
    "reason"}]}; when nothing applies the original model is returned (no copy needed)."""
    from ..tfcompat import import_tf

    _, keras = import_tf()
    applied: dict[str, list[str]] = {}
    skipped: list[dict] = []
    replacements: dict[str, object] = {}
    for layer in _flat_layers(model):
        inner = getattr(layer, "layer", None)  # a tfmot QuantizeWrapper around a layer
        wrapped = [r for r in for_runtime(runtime) if r.layer_class == type(inner).__name__]
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
        found = match(layer, runtime)
        if found is None:
            continue
        rw, new = found
        if new is None:
            continue
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


def for_export(model, precision: str, choice: bool | None, runtime: str) -> tuple[object, dict]:
    """The model to convert and the manifest record. choice None (the default): rewrites on for
    integer precisions; False (CLI --no-rewrite, option rewrite: false) converts the model as is."""
    on = precision in INTEGER_PRECISIONS if choice is None else bool(choice)
    if not on:
        return model, {"enabled": False}
    copy, record = apply(model, runtime)
    return copy, {"enabled": True, **record}


# Layers whose TFLite op takes a fused ReLU: a clamp right after one of them uses the SUB form.
FUSES_RELU = ("Add", "Subtract", "Multiply", "Conv2D", "DepthwiseConv2D", "Dense", "PReluDepthwise")


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
    ("litert", "onnxruntime"),
    "PReLU -> LeakyReLU (shared alpha) or 1x1 depthwise convs with fused ReLU + ADD/SUB",
)
def _prelu(layer):
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
    return _classes()["PReluDepthwise"](alpha.astype(np.float32), name=layer.name)


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


@register(
    "clamp_mul",
    "ReLU",
    ("onnxruntime",),
    "ReLU(max_value=m) clamp -> Mul + Clip(0, 6) + Mul (ONNX Runtime has no int8 Sub)",
)
def _clamp_mul(layer):
    return _clamp_layer(layer, "relu6_mul")


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
        add a second 1x1 depthwise conv holding the +1/-1 signs."""

        def __init__(self, alpha, **kwargs):
            super().__init__(**kwargs)
            self.alpha = np.asarray(alpha, np.float32)

        def build(self, input_shape):
            a = self.alpha
            le1 = a <= 1
            self.r = depthwise(f"{self.name}_relu", np.where(le1, a - 1.0, 1.0 - a), "relu")
            self.mode = "le1" if np.all(le1) else ("gt1" if not np.any(le1) else "mixed")
            if self.mode == "mixed":
                self.sign = depthwise(f"{self.name}_sign", np.where(le1, 1.0, -1.0))
            super().build(input_shape)

        def call(self, x):
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
        "AvgPoolDepthwise": AvgPoolDepthwise,
        "ConcatTree": ConcatTree,
    }
