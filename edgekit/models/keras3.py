"""Rebuild a Keras 3 `.keras` file as an equivalent tf_keras model, running no code from the file.

The archive's config.json is read as plain JSON and every layer is translated, from a fixed table,
into the tf_keras layer that computes the same function (activations, dtype policies, initializer
and regularizer dicts, LeakyReLU's renamed slope, Keras 3's hard_sigmoid ...). Weights come from
model.weights.h5, read with h5py in Keras 3's layout: `layers/<snake_case class name>[_k]/vars/<i>`
per layer, nested models nesting. Nothing is imported or called by a name read from the file: a
Lambda, a custom or registered class, or any class outside the table is refused with its name.
`--allow-custom-code` does not change that here: tf_keras cannot run Keras 3 Python code, so the
message points to `model.export(DIR)` (a SavedModel) instead.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np

from ..errors import EdgekitError

_EXPORT_HINT = (
    "replace it with built-in layers and re-save, or in Keras 3 run model.export('DIR') and pass "
    "DIR (a SavedModel: export, bench and compare work, compress does not)"
)

# Keras 3 activation name -> tf_keras activation name with the same definition.
_SAME_ACTIVATIONS = {
    "linear": "linear", "relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "gelu": "gelu",
    "silu": "swish", "swish": "swish", "softplus": "softplus", "softsign": "softsign",
    "elu": "elu", "selu": "selu", "exponential": "exponential", "mish": "mish",
    "softmax": "softmax",
}  # fmt: skip
_FLOAT_POLICIES = {"float32", "float16", "bfloat16", "mixed_float16", "mixed_bfloat16", "float64"}
_MODELS = {"Functional", "Sequential"}
_MERGE = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate"}
_LAMBDAS = {"Lambda", "TFOpLambda", "SlicingOpLambda"}
# Keras 3 ops (keras.ops.*) recorded in a functional graph; they own no weights.
_OPS = {"DepthToSpace", "Clip", "Add", "Subtract", "Multiply"}


def is_keras3(metadata: dict) -> bool:
    return str(metadata.get("keras_version", "")).startswith("3")


def _snake(name: str) -> str:
    """Keras 3's naming.to_snake_case: how the weights file names a layer by its class."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


class _Ctx:
    """What one conversion needs: the file (for messages), tf_keras, and notes for the manifest."""

    def __init__(self, path, keras, allow_custom_code: bool):
        self.path = path
        self.keras = keras
        self.allow_custom_code = allow_custom_code
        self.notes: list[str] = []

    def fail(self, entry: dict | None, what: str) -> EdgekitError:
        where = ""
        if entry is not None:
            where = f"layer '{_name(entry)}' ({entry.get('class_name', '?')}): "
        return EdgekitError(f"{self.path}: {where}{what}")


def _name(entry: dict) -> str:
    cfg = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    return str(cfg.get("name") or entry.get("name") or "?")


# ----------------------------------------------------------------------------- safety check


def _kind(entry: dict) -> str:
    """'layer', 'model', 'op' for a class edgekit translates; raises nothing (see check)."""
    module = str(entry.get("module") or "")
    cls = entry.get("class_name")
    if module.startswith("keras.src.ops.") and cls in _OPS:
        return "op"
    if cls in _MODELS and module in ("keras", "keras.models", "keras.src.models.functional",
                                     "keras.src.models.sequential"):  # fmt: skip
        return "model"
    if module in ("keras.layers", "keras.src.layers") or module.startswith("keras.src.layers."):
        if cls in _TRANSLATORS:
            return "layer"
        return "unsupported"
    return "custom"


def check(config: dict, ctx: _Ctx) -> None:
    """Refuse Lambda, custom and unknown classes anywhere in the config, before building anything."""
    for entry in _walk(config):
        cls = str(entry.get("class_name", "?"))
        kind = _kind(entry)
        if cls in _LAMBDAS:
            raise ctx.fail(
                entry,
                "a Lambda layer is Python code stored in the file; edgekit never runs it "
                f"(--allow-custom-code can't help: tf_keras can't run Keras 3 code); {_EXPORT_HINT}",
            )
        if kind == "custom":
            reg = entry.get("registered_name") or cls
            raise ctx.fail(
                entry,
                f"a custom class ('{reg}' from module '{entry.get('module')}') whose code is not "
                "in the file and which edgekit does not rebuild (--allow-custom-code can't help: "
                f"tf_keras can't run Keras 3 code); {_EXPORT_HINT}",
            )
        if kind == "unsupported":
            raise ctx.fail(
                entry,
                "a Keras 3 layer edgekit's converter does not translate (supported: "
                f"{', '.join(sorted(_TRANSLATORS))}); {_EXPORT_HINT}",
            )


def _walk(entry: dict):
    yield entry
    cfg = entry.get("config")
    if entry.get("class_name") in _MODELS and isinstance(cfg, dict):
        for sub in cfg.get("layers") or []:
            if isinstance(sub, dict):
                yield from _walk(sub)


# ----------------------------------------------------------------------------- config translation


def _policy(value, entry, ctx) -> None:
    """Keras 3 dtype policies: float ones rebuild in float32; quantized ones are refused."""
    if value is None or isinstance(value, str):
        name = value or "float32"
    elif isinstance(value, dict):
        if "Quantized" in str(value.get("class_name", "")):
            raise ctx.fail(entry, "a quantized Keras 3 layer; give edgekit the float model")
        name = str((value.get("config") or {}).get("name", "float32"))
    else:
        name = "float32"
    if name not in _FLOAT_POLICIES:
        raise ctx.fail(entry, f"dtype policy '{name}'; edgekit rebuilds float models only")
    if name != "float32" and f"dtype {name} rebuilt as float32" not in ctx.notes:
        ctx.notes.append(f"dtype {name} rebuilt as float32")


def _activation(value, entry, ctx) -> tuple[str, list]:
    """(tf_keras activation, extra layers applied after) for a Keras 3 activation."""
    if value is None:
        return "linear", []
    if isinstance(value, dict):
        raise ctx.fail(entry, f"a custom activation ({value.get('class_name')}); {_EXPORT_HINT}")
    name = str(value)
    keras = ctx.keras
    if name in _SAME_ACTIVATIONS:
        return _SAME_ACTIVATIONS[name], []
    if name == "relu6":
        return "linear", [lambda n: keras.layers.ReLU(max_value=6.0, name=n)]
    if name == "leaky_relu":  # keras.activations.leaky_relu's default slope
        return "linear", [lambda n: keras.layers.LeakyReLU(alpha=0.2, name=n)]
    if name == "hard_sigmoid":  # Keras 3: relu6(x + 3) / 6, not tf_keras' clip(0.2 x + 0.5)
        return "linear", [
            lambda n: keras.layers.Rescaling(1.0 / 6.0, offset=0.5, name=n + "_affine"),
            lambda n: keras.layers.ReLU(max_value=1.0, name=n),
        ]
    raise ctx.fail(entry, f"activation '{name}' is not translated to tf_keras; {_EXPORT_HINT}")


def _regularizer(value, entry, ctx):
    if not value:
        return None
    cls, cfg = value.get("class_name"), value.get("config") or {}
    if cls in ("L1", "L2", "L1L2"):
        keys = {"L1": ("l1",), "L2": ("l2",), "L1L2": ("l1", "l2")}[cls]
        return getattr(ctx.keras.regularizers, cls)(**{k: float(cfg.get(k, 0.0)) for k in keys})
    ctx.notes.append(f"{_name(entry)}: regularizer {cls} dropped (affects fine-tuning only)")
    return None


def _constraint(value, entry, ctx):
    if value:
        ctx.notes.append(
            f"{_name(entry)}: constraint {value.get('class_name')} dropped (affects training only)"
        )


def _channels_last(cfg, entry, ctx) -> None:
    fmt = cfg.get("data_format") or "channels_last"
    if fmt != "channels_last":
        raise ctx.fail(
            entry,
            f"data_format '{fmt}'; edgekit needs channels_last (NHWC) layers; re-save with "
            "keras.config.set_image_data_format('channels_last')",
        )


def _pair(v):
    return tuple(v) if isinstance(v, (list, tuple)) else (v, v)


def _common(cfg, entry, ctx, *, weights=(), regs=()) -> dict:
    """name, trainable, dtype check; regularizers named in `regs`; constraints noted."""
    _policy(cfg.get("dtype"), entry, ctx)
    out = {"name": _name(entry), "trainable": bool(cfg.get("trainable", True))}
    for key in regs:
        out[key] = _regularizer(cfg.get(key), entry, ctx)
    for key in weights:
        _constraint(cfg.get(key), entry, ctx)
    return out


def _conv_args(cfg, entry, ctx, prefix_keys: tuple[str, ...]) -> dict:
    _channels_last(cfg, entry, ctx)
    regs = tuple(f"{p}_regularizer" for p in prefix_keys) + ("activity_regularizer",)
    cons = tuple(f"{p}_constraint" for p in prefix_keys)
    out = _common(cfg, entry, ctx, weights=cons, regs=regs)
    out |= {
        "kernel_size": _pair(cfg["kernel_size"]),
        "strides": _pair(cfg.get("strides", 1)),
        "padding": cfg.get("padding", "valid"),
        "use_bias": bool(cfg.get("use_bias", True)),
    }
    if out["padding"] not in ("valid", "same"):
        raise ctx.fail(entry, f"padding '{out['padding']}'; expected valid or same")
    return out


# class -> (weight name prefixes, extra integer keys with their defaults)
_CONVS = {
    "Conv2D": (("kernel", "bias"), {"filters": None, "groups": 1}),
    "DepthwiseConv2D": (("depthwise", "bias"), {"depth_multiplier": 1}),
    "SeparableConv2D": (
        ("depthwise", "pointwise", "bias"),
        {"filters": None, "depth_multiplier": 1},
    ),
    "Conv2DTranspose": (("kernel", "bias"), {"filters": None}),
}


def _t_conv(cfg, entry, ctx):
    cls = entry["class_name"]
    prefixes, ints = _CONVS[cls]
    a = _conv_args(cfg, entry, ctx, prefixes)
    a["dilation_rate"] = _pair(cfg.get("dilation_rate", 1))
    a |= {k: int(cfg[k] if d is None else cfg.get(k, d)) for k, d in ints.items()}
    if cls == "Conv2DTranspose" and cfg.get("output_padding") is not None:
        a["output_padding"] = _pair(cfg["output_padding"])
    return _with_activation(getattr(ctx.keras.layers, cls), a, cfg, entry, ctx)


def _t_dense(cfg, entry, ctx):
    if cfg.get("lora_rank") or cfg.get("quantization_config"):
        raise ctx.fail(entry, "LoRA or quantized Dense; merge/dequantize it and re-save")
    a = _common(
        cfg, entry, ctx, weights=("kernel_constraint", "bias_constraint"),
        regs=("kernel_regularizer", "bias_regularizer", "activity_regularizer"),
    )  # fmt: skip
    a |= {"units": int(cfg["units"]), "use_bias": bool(cfg.get("use_bias", True))}
    return _with_activation(ctx.keras.layers.Dense, a, cfg, entry, ctx)


def _with_activation(cls, args, cfg, entry, ctx):
    act, post = _activation(cfg.get("activation"), entry, ctx)
    name = args["name"]
    if post:  # the weighted layer keeps the name; the activation layers follow it
        return [cls(activation=act, **args)] + [make(f"{name}_act") for make in post]
    return [cls(activation=act, **args)]


def _norm_axis(cfg, entry, ctx, default=-1):
    axis = cfg.get("axis", default)
    axes = axis if isinstance(axis, list) else [axis]
    if axes not in ([-1], [3]):
        raise ctx.fail(entry, f"normalization over axis {axis}; expected the channel axis (-1)")
    return -1


def _t_norm(cfg, entry, ctx):
    """BatchNormalization and LayerNormalization over the channel axis."""
    cls = entry["class_name"]
    if cfg.get("renorm") or cfg.get("rms_scaling"):
        raise ctx.fail(entry, "renorm / rms_scaling has no tf_keras counterpart; re-save without")
    a = _common(
        cfg, entry, ctx, weights=("beta_constraint", "gamma_constraint"),
        regs=("beta_regularizer", "gamma_regularizer"),
    )  # fmt: skip
    a |= {
        "axis": _norm_axis(cfg, entry, ctx),
        "epsilon": float(cfg.get("epsilon", 1e-3)),
        "center": bool(cfg.get("center", True)),
        "scale": bool(cfg.get("scale", True)),
    }
    if cls == "BatchNormalization":
        a["momentum"] = float(cfg.get("momentum", 0.99))
    return [getattr(ctx.keras.layers, cls)(**a)]


def _t_relu(cfg, entry, ctx):
    a = _common(cfg, entry, ctx)
    mv = cfg.get("max_value")
    return [
        ctx.keras.layers.ReLU(
            max_value=None if mv is None else float(mv),
            negative_slope=float(cfg.get("negative_slope", 0.0)),
            threshold=float(cfg.get("threshold", 0.0)),
            **a,
        )
    ]


def _t_leaky(cfg, entry, ctx):
    a = _common(cfg, entry, ctx)
    slope = cfg.get("negative_slope", cfg.get("alpha", 0.3))
    return [ctx.keras.layers.LeakyReLU(alpha=float(slope), **a)]


def _t_prelu(cfg, entry, ctx):
    a = _common(cfg, entry, ctx, weights=("alpha_constraint",), regs=("alpha_regularizer",))
    return [ctx.keras.layers.PReLU(shared_axes=cfg.get("shared_axes"), **a)]


def _t_activation(cfg, entry, ctx):
    a = _common(cfg, entry, ctx)
    act, post = _activation(cfg.get("activation"), entry, ctx)
    if post:
        return [make(a["name"]) for make in post]
    return [ctx.keras.layers.Activation(act, **a)]


def _t_merge(cfg, entry, ctx):
    a = _common(cfg, entry, ctx)
    cls = entry["class_name"]
    if cls == "Concatenate":
        axis = int(cfg.get("axis", -1))
        if axis not in (-1, 3):
            raise ctx.fail(entry, f"concatenation on axis {axis}; expected channels (-1)")
        return [ctx.keras.layers.Concatenate(axis=-1, **a)]
    return [getattr(ctx.keras.layers, cls)(**a)]


def _t_upsampling(cfg, entry, ctx):
    _channels_last(cfg, entry, ctx)
    interp = cfg.get("interpolation", "nearest")
    if interp not in ("nearest", "bilinear"):
        raise ctx.fail(entry, f"interpolation '{interp}'; edgekit translates nearest and bilinear")
    size = _pair(cfg.get("size", 2))
    return [
        ctx.keras.layers.UpSampling2D(size=size, interpolation=interp, **_common(cfg, entry, ctx))
    ]


def _t_zeropad(cfg, entry, ctx):
    _channels_last(cfg, entry, ctx)
    return [ctx.keras.layers.ZeroPadding2D(cfg.get("padding", 1), **_common(cfg, entry, ctx))]


def _t_crop(cfg, entry, ctx):
    _channels_last(cfg, entry, ctx)
    return [ctx.keras.layers.Cropping2D(cfg.get("cropping", 0), **_common(cfg, entry, ctx))]


def _t_pool(cfg, entry, ctx):
    _channels_last(cfg, entry, ctx)
    pool = _pair(cfg.get("pool_size", 2))
    strides = cfg.get("strides")
    return [
        getattr(ctx.keras.layers, entry["class_name"])(
            pool_size=pool,
            strides=None if strides is None else _pair(strides),
            padding=cfg.get("padding", "valid"),
            **_common(cfg, entry, ctx),
        )
    ]


def _t_global_pool(cfg, entry, ctx):
    _channels_last(cfg, entry, ctx)
    return [
        getattr(ctx.keras.layers, entry["class_name"])(
            keepdims=bool(cfg.get("keepdims", False)), **_common(cfg, entry, ctx)
        )
    ]


def _number(value, entry, ctx, key):
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
        return [float(v) for v in value]
    raise ctx.fail(entry, f"'{key}' is {type(value).__name__}; expected a number or a list")


def _t_rescaling(cfg, entry, ctx):
    return [
        ctx.keras.layers.Rescaling(
            scale=_number(cfg.get("scale", 1.0), entry, ctx, "scale"),
            offset=_number(cfg.get("offset", 0.0), entry, ctx, "offset"),
            **_common(cfg, entry, ctx),
        )
    ]


def _t_dropout(cfg, entry, ctx):
    cls = entry["class_name"]
    return [getattr(ctx.keras.layers, cls)(float(cfg.get("rate", 0.0)), **_common(cfg, entry, ctx))]


def _t_identity(cfg, entry, ctx):
    return [ctx.keras.layers.Identity(**_common(cfg, entry, ctx))]


def _t_reshape(cfg, entry, ctx):
    shape = list(cfg.get("target_shape") or [])
    if len(shape) != 3:
        raise ctx.fail(
            entry,
            f"reshape to {tuple(shape)}; edgekit needs the image to stay (height, width, channels)",
        )
    return [ctx.keras.layers.Reshape(tuple(shape), **_common(cfg, entry, ctx))]


_TRANSLATORS = {
    **{c: _t_conv for c in _CONVS}, "Dense": _t_dense,
    "BatchNormalization": _t_norm, "LayerNormalization": _t_norm,
    "ReLU": _t_relu, "LeakyReLU": _t_leaky, "PReLU": _t_prelu, "Activation": _t_activation,
    **{m: _t_merge for m in _MERGE},
    "UpSampling2D": _t_upsampling, "ZeroPadding2D": _t_zeropad, "Cropping2D": _t_crop,
    "AveragePooling2D": _t_pool, "MaxPooling2D": _t_pool,
    "GlobalAveragePooling2D": _t_global_pool, "GlobalMaxPooling2D": _t_global_pool,
    "Rescaling": _t_rescaling, "Dropout": _t_dropout, "SpatialDropout2D": _t_dropout,
    "Identity": _t_identity, "Reshape": _t_reshape, "InputLayer": None,
}  # fmt: skip


# ----------------------------------------------------------------------------- ops


def _op_layers(entry, args, ctx):
    """tf_keras layers for a keras.ops call, and which positional tensor inputs they take."""
    cls, cfg, keras = entry["class_name"], entry.get("config") or {}, ctx.keras
    name = _name(entry)
    if cls == "DepthToSpace":
        _channels_last(cfg, entry, ctx)
        from .layers import layer_classes

        return [layer_classes()["DepthToSpace"](int(cfg["block_size"]), name=name)]
    if cls == "Clip":
        lo, hi = cfg.get("x_min"), cfg.get("x_max")
        if lo != 0 or not isinstance(hi, (int, float)):
            raise ctx.fail(entry, f"clip to [{lo}, {hi}]; edgekit translates clip(x, 0, max)")
        return [keras.layers.ReLU(max_value=float(hi), name=name)]
    # Add / Subtract / Multiply of two tensors, or of a tensor and a number
    consts = [a for a in args if not _is_tensor(a)]
    if not consts:
        return [getattr(keras.layers, cls)(name=name)]
    if len(args) != 2 or not all(isinstance(c, (int, float)) for c in consts):
        raise ctx.fail(entry, "keras.ops call with arguments edgekit does not translate")
    c = float(consts[0])
    tensor_first = _is_tensor(args[0])
    scale, offset = {
        "Add": (1.0, c),
        "Multiply": (c, 0.0),
        "Subtract": (1.0, -c) if tensor_first else (-1.0, c),
    }[cls]
    return [keras.layers.Rescaling(scale, offset=offset, name=name)]


# ----------------------------------------------------------------------------- graph


def _is_tensor(v) -> bool:
    return isinstance(v, dict) and v.get("class_name") == "__keras_tensor__"


def _history(v) -> tuple[str, int, int]:
    name, node, index = v["config"]["keras_history"]
    return str(name), int(node), int(index)


def _refs(value) -> list:
    if isinstance(value, list) and value and isinstance(value[0], str):
        return [value]
    return list(value or [])


def _input(entry, ctx):
    cfg = entry.get("config") or {}
    shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
    if shape is None and cfg.get("shape") is not None:
        shape = [None, *cfg["shape"]]
    if shape is None or len(shape) != 4:
        raise ctx.fail(
            entry, f"input shape {shape}; edgekit needs (batch, height, width, channels)"
        )
    return ctx.keras.Input(batch_shape=tuple(shape), name=_name(entry))


def _build(entry: dict, ctx: _Ctx):
    """A tf_keras functional Model for a Keras 3 Functional or Sequential entry, plus
    {layer name: (tf_keras layers, config entry)} for the weight loader."""
    cfg = entry.get("config") or {}
    layers = [e for e in cfg.get("layers") or [] if isinstance(e, dict)]
    if entry.get("class_name") == "Sequential":
        return _build_sequential(entry, layers, ctx)
    made: dict[str, tuple] = {}
    tensors: dict[tuple[str, int], list] = {}
    inputs = {}
    pending = []
    for e in layers:
        name = _name(e)
        if e.get("class_name") == "InputLayer":
            t = _input(e, ctx)
            inputs[name] = t
            tensors[(name, 0)] = [t]
            continue
        for i, node in enumerate(e.get("inbound_nodes") or []):
            pending.append((e, i, node))
    while pending:
        rest = []
        for e, i, node in pending:
            if not _ready(node, tensors):
                rest.append((e, i, node))
                continue
            tensors[(_name(e), i)] = _call(e, node, tensors, made, ctx)
        if len(rest) == len(pending):
            raise ctx.fail(rest[0][0], "its inputs never appear in the graph (broken config.json)")
        pending = rest
    ins = [inputs.get(str(r[0])) for r in _refs(cfg.get("input_layers"))]
    outs = []
    for ref in _refs(cfg.get("output_layers")):
        key = (str(ref[0]), int(ref[1]))
        if key not in tensors or None in ins:
            raise ctx.fail(
                entry, f"output/input '{ref[0]}' is not in the graph (broken config.json)"
            )
        outs.append(tensors[key][int(ref[2])])
    if not ins or not outs:
        raise ctx.fail(entry, "no inputs or outputs in config.json (broken file?)")
    model = ctx.keras.Model(ins, outs if len(outs) > 1 else outs[0], name=_name(entry))
    return model, made


def _build_sequential(entry, layers, ctx):
    made: dict[str, tuple] = {}
    if layers and layers[0].get("class_name") == "InputLayer":
        inp = _input(layers[0], ctx)
        layers = layers[1:]
    else:
        shape = (entry.get("build_config") or {}).get("input_shape") or (
            entry.get("config") or {}
        ).get("build_input_shape")
        if not shape:
            raise ctx.fail(entry, "a Sequential model without an input shape; build it first")
        inp = _input({"config": {"batch_shape": shape, "name": "input"}}, ctx)
    x = inp
    for e in layers:
        x = _apply(e, [x], made, ctx)
    return ctx.keras.Model(inp, x, name=_name(entry)), made


def _ready(node, tensors) -> bool:
    return all((n, i) in tensors for n, i, _ in _node_inputs(node))


def _node_inputs(node) -> list:
    found = []

    def visit(v):
        if _is_tensor(v):
            found.append(_history(v))
        elif isinstance(v, (list, tuple)):
            for x in v:
                visit(x)

    visit(node.get("args") if isinstance(node, dict) else node)
    return found


def _call(e, node, tensors, made, ctx):
    if not isinstance(node, dict):
        raise ctx.fail(e, "inbound node in an unknown format (not a Keras 3 file?)")
    for key, value in (node.get("kwargs") or {}).items():
        if _node_inputs({"args": [value]}):
            raise ctx.fail(e, f"takes a tensor as keyword argument '{key}'; not translated")

    def resolve(v):
        if _is_tensor(v):
            n, i, t = _history(v)
            return tensors[(n, i)][t]
        if isinstance(v, list):
            return [resolve(x) for x in v]
        return v

    args = node.get("args") or []
    if _kind(e) == "op":
        if _name(e) not in made:
            made[_name(e)] = (_op_layers(e, args, ctx), e)
        tensor_args = [resolve(a) for a in args if _is_tensor(a)]
        x = tensor_args if len(tensor_args) > 1 else tensor_args[0]
        return [_chain(made[_name(e)][0], x)]
    if len(args) != 1:
        raise ctx.fail(e, f"called with {len(args)} positional arguments; expected one")
    return [_apply(e, resolve(args[0]), made, ctx)]


def _apply(e, x, made, ctx):
    """Create the tf_keras counterpart of entry `e` once (shared layers reuse it) and call it."""
    name = _name(e)
    if name not in made:
        kind = _kind(e)
        if kind == "model":
            sub, sub_made = _build(e, ctx)
            made[name] = ([sub], e, sub_made)
        elif kind == "layer" and e.get("class_name") != "InputLayer":
            made[name] = (_TRANSLATORS[e["class_name"]](e.get("config") or {}, e, ctx), e)
        else:
            raise ctx.fail(e, "not translated here (an input layer inside a Sequential body?)")
    if isinstance(x, list) and len(x) == 1 and e.get("class_name") not in _MERGE:
        x = x[0]
    return _chain(made[name][0], x)


def _chain(layers, x):
    for layer in layers:
        x = layer(x)
    return x


# ----------------------------------------------------------------------------- weights


def _weighted_children(entry: dict) -> list[tuple[str, dict]]:
    """(h5 group name, entry) for each layer of a model entry, named as Keras 3 saves them."""
    cfg = entry.get("config") or {}
    layers = [e for e in cfg.get("layers") or [] if isinstance(e, dict)]
    if entry.get("class_name") == "Sequential" and layers:
        if layers[0].get("class_name") == "InputLayer":
            layers = layers[1:]
    used: dict[str, int] = {}
    out = []
    for e in layers:
        if _kind(e) == "op":
            continue  # keras.ops calls are not layers: they own no weights and no h5 group
        base = _snake(str(e.get("class_name", "")))
        if base in used:
            used[base] += 1
            key = f"{base}_{used[base]}"
        else:
            used[base] = 0
            key = base
        out.append((key, e))
    return out


def _assign(entry: dict, made: dict, group, ctx: _Ctx) -> None:
    """Set every layer's weights from its h5 group `layers/<key>/vars`, checking count and shapes."""
    layers_group = group.get("layers") if group is not None else None
    for key, e in _weighted_children(entry):
        name = _name(e)
        if name not in made:
            continue  # an InputLayer
        sub = layers_group.get(key) if layers_group is not None else None
        if _kind(e) == "model":
            _assign(e, made[name][2], sub, ctx)
            continue
        tf_layers = made[name][0]
        target = [w for layer in tf_layers for w in layer.weights]
        stored = []
        vars_group = sub.get("vars") if sub is not None else None
        if vars_group is not None:
            stored = [np.asarray(vars_group[str(i)]) for i in range(len(vars_group))]
        want = [tuple(w.shape) for w in target]
        have = [tuple(a.shape) for a in stored]
        if want != have:
            raise ctx.fail(
                e,
                f"model.weights.h5 holds {len(have)} arrays {have or ''} under layers/{key} but "
                f"the config needs {len(want)} {want or ''}; the weights do not belong to this "
                "config; re-save the model",
            )
        for w, a in zip(target, stored, strict=True):
            w.assign(a.astype(np.float32))


# ----------------------------------------------------------------------------- entry point


def read_archive(path: Path) -> tuple[dict, dict, bytes | None]:
    """(config, metadata, model.weights.h5 bytes) of a .keras zip; one-line errors if unreadable."""
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            metadata = json.loads(z.read("metadata.json")) if "metadata.json" in names else {}
            if "config.json" not in names:
                raise EdgekitError(
                    f"{path}: .keras archive without config.json (not a saved model?); re-save it "
                    "with model.save('model.keras')"
                )
            config = json.loads(z.read("config.json"))
            weights = z.read("model.weights.h5") if "model.weights.h5" in names else None
    except (zipfile.BadZipFile, ValueError, KeyError, OSError, EOFError):
        raise EdgekitError(
            f"{path}: unreadable .keras archive (corrupted or truncated?); re-save the model"
        ) from None
    if not isinstance(config, dict) or not isinstance(metadata, dict):
        raise EdgekitError(f"{path}: config.json is not a model config; re-save the model")
    return config, metadata, weights


def load(path: Path, config: dict, weights: bytes | None, allow_custom_code: bool = False):
    """tf_keras model rebuilt from a Keras 3 archive's config and weights. Returns (model, notes).

    The config is checked before TensorFlow is even imported: a refused file costs nothing."""
    ctx = _Ctx(path, None, allow_custom_code)
    if config.get("class_name") not in _MODELS:
        raise ctx.fail(
            None,
            f"the saved object is a {config.get('class_name')!r}, not a Functional or "
            f"Sequential model (a subclassed model's code is not in the file); {_EXPORT_HINT}",
        )
    check(config, ctx)
    if weights is None:
        raise EdgekitError(f"{path}: .keras archive without model.weights.h5; re-save the model")
    import h5py

    from ..tfcompat import import_tf

    ctx.keras = import_tf()[1]
    try:
        model, made = _build(config, ctx)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        text = " ".join(str(exc).split())[:200]
        raise EdgekitError(
            f"{path}: config.json does not describe a model edgekit can rebuild "
            f"({exc.__class__.__name__}: {text}); re-save the model with Keras 3"
        ) from None
    try:
        h5 = h5py.File(io.BytesIO(weights), "r")
    except OSError:
        raise EdgekitError(
            f"{path}: model.weights.h5 inside the archive is unreadable (corrupted?); re-save"
        ) from None
    with h5:
        _assign(config, made, h5, ctx)
    return model, ctx.notes
