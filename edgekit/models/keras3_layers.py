"""Keras 3 layer configs -> the tf_keras layers that compute the same function (a fixed table).

Used by keras3.py. Each translator reads only plain values from a layer's config (numbers, names)
and creates tf_keras built-ins: nothing named in the file is imported or called. Keras 3 details
handled here: dtype-policy dicts (float ones rebuild in float32), activation names (silu, gelu,
relu6, leaky_relu, and hard_sigmoid, which Keras 3 defines as relu6(x + 3) / 6 unlike tf_keras),
LeakyReLU's `negative_slope`, L1/L2 regularizer dicts, channels_last only.
"""

from __future__ import annotations

EXPORT_HINT = (
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
MODELS = {"Functional", "Sequential"}
MERGE = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate"}
LAMBDAS = {"Lambda", "TFOpLambda", "SlicingOpLambda"}
# Keras 3 ops (keras.ops.*) recorded in a functional graph; they own no weights.
OPS = {"DepthToSpace", "Clip", "Add", "Subtract", "Multiply"}


def layer_name(entry: dict) -> str:
    cfg = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    return str(cfg.get("name") or entry.get("name") or "?")


def is_tensor(v) -> bool:
    return isinstance(v, dict) and v.get("class_name") == "__keras_tensor__"


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
        raise ctx.fail(entry, f"a custom activation ({value.get('class_name')}); {EXPORT_HINT}")
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
    raise ctx.fail(entry, f"activation '{name}' is not translated to tf_keras; {EXPORT_HINT}")


def _regularizer(value, entry, ctx):
    if not value:
        return None
    cls, cfg = value.get("class_name"), value.get("config") or {}
    if cls in ("L1", "L2", "L1L2"):
        keys = {"L1": ("l1",), "L2": ("l2",), "L1L2": ("l1", "l2")}[cls]
        return getattr(ctx.keras.regularizers, cls)(**{k: float(cfg.get(k, 0.0)) for k in keys})
    ctx.notes.append(f"{layer_name(entry)}: regularizer {cls} dropped (affects fine-tuning only)")
    return None


def _constraint(value, entry, ctx):
    if value:
        ctx.notes.append(
            f"{layer_name(entry)}: constraint {value.get('class_name')} dropped (affects training only)"
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
    out = {"name": layer_name(entry), "trainable": bool(cfg.get("trainable", True))}
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


TRANSLATORS = {
    **{c: _t_conv for c in _CONVS}, "Dense": _t_dense,
    "BatchNormalization": _t_norm, "LayerNormalization": _t_norm,
    "ReLU": _t_relu, "LeakyReLU": _t_leaky, "PReLU": _t_prelu, "Activation": _t_activation,
    **{m: _t_merge for m in MERGE},
    "UpSampling2D": _t_upsampling, "ZeroPadding2D": _t_zeropad, "Cropping2D": _t_crop,
    "AveragePooling2D": _t_pool, "MaxPooling2D": _t_pool,
    "GlobalAveragePooling2D": _t_global_pool, "GlobalMaxPooling2D": _t_global_pool,
    "Rescaling": _t_rescaling, "Dropout": _t_dropout, "SpatialDropout2D": _t_dropout,
    "Identity": _t_identity, "Reshape": _t_reshape, "InputLayer": None,
}  # fmt: skip


# ----------------------------------------------------------------------------- ops


def op_layers(entry, args, ctx):
    """tf_keras layers for a keras.ops call, and which positional tensor inputs they take."""
    cls, cfg, keras = entry["class_name"], entry.get("config") or {}, ctx.keras
    name = layer_name(entry)
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
    consts = [a for a in args if not is_tensor(a)]
    if not consts:
        return [getattr(keras.layers, cls)(name=name)]
    if len(args) != 2 or not all(isinstance(c, (int, float)) for c in consts):
        raise ctx.fail(entry, "keras.ops call with arguments edgekit does not translate")
    c = float(consts[0])
    tensor_first = is_tensor(args[0])
    scale, offset = {
        "Add": (1.0, c),
        "Multiply": (c, 0.0),
        "Subtract": (1.0, -c) if tensor_first else (-1.0, c),
    }[cls]
    return [keras.layers.Rescaling(scale, offset=offset, name=name)]
