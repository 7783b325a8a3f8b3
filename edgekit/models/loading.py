"""Load a zoo model or a user's model file safely, as a tf_keras model on [0, 1] NHWC images.

Formats: `zoo:NAME`, `.h5` (full model), `.keras` (tf_keras zip, or a Keras 3 zip rebuilt by
keras3.py), SavedModel directory.
Safety: the stored model config is read as plain JSON/protobuf *before* anything is deserialised.
A Lambda layer (Python bytecode stored in the file), a TF-op layer calling something outside a
list of pure math/image functions, or a layer class that is neither tf_keras' nor edgekit's is
refused unless the caller opts in with `allow_custom_code=True` (`--allow-custom-code`), because
rebuilding it runs code from the file. This matters for `.h5`, where Keras' own safe_mode does
not apply.
"""

from __future__ import annotations

import json
import zipfile
from functools import cache
from pathlib import Path

from ..checks import input_file
from ..checks import input_size as check_input_size_bound
from ..errors import EdgekitError
from .info import LoadedModel, ModelInfo

OPT_IN = "--allow-custom-code (load_model(..., allow_custom_code=True))"
PROBE = 64  # probe input size (a multiple of 4, 8, 16, 32 and 64) used to infer the scale factor

# Keras layers that run Python code stored in the model file.
_CODE_LAYERS = {"Lambda"}
# Layers wrapping a TensorFlow API function by name: allowed when the function is pure math.
_TF_OP_LAYERS = {"TFOpLambda", "SlicingOpLambda"}
_SAFE_TF_OP_NAMESPACES = ("math.", "nn.", "image.", "__operators__.", "linalg.", "bitwise.")
_SAFE_TF_OPS = {
    "clip_by_value", "concat", "reshape", "transpose", "stack", "unstack", "split", "pad",
    "squeeze", "expand_dims", "tile", "identity", "cast", "add", "subtract", "multiply",
    "maximum", "minimum", "abs", "sigmoid", "tanh", "where", "gather", "slice", "shape",
    "repeat", "reverse", "depth_to_space", "space_to_depth", "round", "sqrt", "exp",
    "reduce_mean", "reduce_sum", "reduce_max", "reduce_min", "ones_like", "zeros_like",
    "strided_slice", "broadcast_to", "roll", "clip",
}  # fmt: skip
# Layers edgekit cannot run in an image-to-image pipeline (sequence/text/lookup layers).
_UNSUPPORTED = {
    "LSTM", "GRU", "SimpleRNN", "RNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "Bidirectional",
    "TimeDistributed", "Embedding", "StringLookup", "IntegerLookup", "TextVectorization",
    "Hashing", "HashedCrossing", "CategoryEncoding", "DenseFeatures", "Masking",
    "MultiHeadAttention", "Attention", "AdditiveAttention",
}  # fmt: skip
_MODEL_CLASSES = {"Functional", "Sequential", "Model"}


def _tf():
    from ..tfcompat import import_tf

    return import_tf()


@cache
def _keras_layer_names() -> frozenset[str]:
    """Class names of tf_keras' built-in layers (safe to rebuild from a config)."""
    import inspect

    _, keras = _tf()
    names = {
        n
        for n, o in vars(keras.layers).items()
        if inspect.isclass(o) and issubclass(o, keras.layers.Layer)
    }
    return frozenset(names - _CODE_LAYERS)


def _trusted_class(class_name: str) -> bool:
    from .layers import EDGEKIT_LAYERS

    base = class_name.split(">", 1)[1] if class_name.startswith("edgekit>") else class_name
    if base in EDGEKIT_LAYERS and base != "SavedModelSignature":
        return True
    return ">" not in class_name and (
        class_name in _keras_layer_names() or class_name in _MODEL_CLASSES
    )


def _tf_op_is_safe(config: dict) -> bool:
    fn = str(config.get("function", ""))
    if fn.startswith("compat.v1."):
        fn = fn[len("compat.v1.") :]
    return fn in _SAFE_TF_OPS or fn.startswith(_SAFE_TF_OP_NAMESPACES)


def _iter_layers(entry: dict):
    """Yield (class_name, layer name, config) for every layer of a stored model config, nested."""
    cls = entry.get("class_name", "")
    cfg = entry.get("config") or {}
    if not isinstance(cfg, dict):
        cfg = {}
    yield cls, str(cfg.get("name", "?")), cfg
    for sub in cfg.get("layers") or []:
        if isinstance(sub, dict):
            yield from _iter_layers(sub)
    inner = cfg.get("layer")
    if isinstance(inner, dict) and "class_name" in inner:
        yield from _iter_layers(inner)


def check_config(entries, path, allow_custom_code: bool) -> list[str]:
    """Refuse code-carrying or unsupported layers before deserialising. Returns notes (opt-in).

    entries: iterable of (class_name, layer_name, config).
    """
    code, unsupported = [], []
    for cls, name, cfg in entries:
        base = cls.split(">", 1)[-1]
        if base in _UNSUPPORTED:
            unsupported.append(f"'{name}' ({cls})")
        elif cls in _CODE_LAYERS:
            code.append(f"layer '{name}' is a Lambda (Python code stored in the file)")
        elif cls in _TF_OP_LAYERS:
            if not _tf_op_is_safe(cfg):
                code.append(
                    f"layer '{name}' ({cls}) calls tf.{cfg.get('function', '?')}, which is not a "
                    "pure math/image op"
                )
        elif not _trusted_class(cls):
            code.append(
                f"layer '{name}' has class '{cls}', which is neither a tf_keras nor an edgekit layer"
            )
    if unsupported:
        raise EdgekitError(
            f"{path}: layer {unsupported[0]} can't be handled by edgekit, which compresses "
            "convolutional image-to-image models"
            + (f" (also {', '.join(unsupported[1:4])})" if len(unsupported) > 1 else "")
            + "; remove it or export only the convolutional part"
        )
    if code and not allow_custom_code:
        more = f" (and {len(code) - 1} more)" if len(code) > 1 else ""
        raise EdgekitError(
            f"{path}: {code[0]}{more}; rebuilding it runs code from the file, which could do "
            f"anything on this machine if the file is not yours. Pass {OPT_IN} only if you trust "
            "the file, or rebuild the model from built-in layers"
        )
    return code


# ----------------------------------------------------------------------------- zoo


def _load_zoo(name: str) -> LoadedModel:
    from . import zoo

    entry = zoo.get(name)
    if not entry.trained:
        raise EdgekitError(
            f"zoo:{name}: no trained weights at {entry.weights_path}; run 'edgekit zoo train {name}'"
        )
    model = zoo.build(name)
    try:
        model.load_weights(str(entry.weights_path))
    except Exception as exc:  # noqa: BLE001 - any failure means the shipped file is unusable
        raise EdgekitError(
            f"{entry.weights_path}: cannot load the weights of zoo:{name} ({_short(exc)}); "
            f"retrain with 'edgekit zoo train {name}'"
        ) from None
    metrics = entry.metrics() or {}
    info = ModelInfo(
        name=name,
        task=entry.task,
        degradation=entry.degradation,
        scale=entry.scale,
        source=f"zoo:{name}",
        input_multiple=entry.input_multiple,
        extra={
            "weights": str(entry.weights_path),
            "psnr_db": metrics.get("psnr_db"),
            "degraded_psnr_db": metrics.get("degraded_psnr_db"),
            "input_note": _multiple_note(entry.input_multiple, entry.scale),
        },
    )
    return LoadedModel(model, info)


def _multiple_note(multiple: int, scale: int) -> str:
    parts = []
    if multiple > 1:
        parts.append(f"input height and width must be multiples of {multiple}")
    if scale > 1:
        parts.append(f"output is {scale}x the input size")
    return "; ".join(parts) or "any input height and width"


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{exc.__class__.__name__}: {text[:160]}"


# ----------------------------------------------------------------------------- files


def _read_h5_config(path: Path) -> dict:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
            weights_only = raw is None and ("layer_names" in f.attrs or "model_weights" in f)
            version = f.attrs.get("keras_version", b"")
    except OSError:
        raise EdgekitError(
            f"{path}: not a readable HDF5 model file (corrupted or truncated?); re-save it with "
            "model.save('model.h5')"
        ) from None
    version = version.decode() if isinstance(version, bytes) else str(version)
    if raw is None:
        what = "holds only weights" if weights_only else "has no model config"
        raise EdgekitError(
            f"{path}: {what}; edgekit needs a full model: save it with model.save('model.h5') "
            "(not save_weights)"
        )
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    try:
        return json.loads(raw)
    except ValueError:
        raise EdgekitError(
            f"{path}: the stored model config is not valid JSON (corrupted file?)"
        ) from None


def _load_h5(path: Path, allow_custom_code: bool):
    """(model, format, notes): tf_keras .h5 through tf_keras, a Keras 3 .h5 rebuilt (keras3.py)."""
    import h5py

    config = _read_h5_config(path)
    with h5py.File(path, "r") as f:
        version = f.attrs.get("keras_version", b"")
    version = version.decode() if isinstance(version, bytes) else str(version)
    if version.startswith("3"):
        from . import keras3

        model, notes = keras3.load_h5(path, config, allow_custom_code)
        return model, "keras3_h5", notes
    check_config(_iter_layers(config), path, allow_custom_code)
    return _keras_load(path, allow_custom_code), "h5", []


def _load_keras_zip(path: Path, allow_custom_code: bool):
    """(model, format, notes): a tf_keras v3 zip loads through tf_keras, a Keras 3 zip is rebuilt."""
    from . import keras3

    if not zipfile.is_zipfile(path):
        raise EdgekitError(
            f"{path}: not a valid .keras archive (corrupted, truncated or not a zip); re-save it "
            "with model.save('model.keras')"
        )
    config, metadata, weights = keras3.read_archive(path)
    if keras3.is_keras3(metadata):
        model, notes = keras3.load(path, config, weights, allow_custom_code)
        return model, "keras3", notes
    check_config(_iter_layers(config), path, allow_custom_code)
    return _keras_load(path, allow_custom_code), "keras", []


def _keras_load(path: Path, allow_custom_code: bool):
    from .layers import custom_objects

    _, keras = _tf()
    try:
        return keras.models.load_model(
            str(path),
            compile=False,
            custom_objects=custom_objects(),
            safe_mode=not allow_custom_code,
        )
    except EdgekitError:
        raise
    except Exception as exc:  # noqa: BLE001 - tf_keras raises many types; all mean "cannot load"
        text = str(exc)
        if "Unknown layer" in text or "Unknown" in text and "custom_objects" in text:
            raise EdgekitError(
                f"{path}: uses a custom class tf_keras cannot rebuild without its Python code "
                f"({_short(exc)}); import the module that registers it "
                "(tf_keras.utils.register_keras_serializable) before calling load_model(..., "
                "allow_custom_code=True), or re-save the model from built-in layers"
            ) from None
        raise EdgekitError(f"{path}: cannot load the model ({_short(exc)})") from None


def _saved_model_signatures(path: Path) -> dict:
    """{signature key: SignatureDef} read from saved_model.pb without loading anything."""
    from tensorflow.core.protobuf import saved_model_pb2

    pb = path / "saved_model.pb"
    if not pb.exists():
        raise EdgekitError(
            f"{path}: a folder but not a SavedModel (no saved_model.pb); pass a SavedModel "
            "directory, an .h5 or a .keras file"
        )
    input_file(pb, "saved_model.pb")  # a FIFO would block the read
    sm = saved_model_pb2.SavedModel()
    try:
        sm.ParseFromString(pb.read_bytes())
    except Exception:  # noqa: BLE001 - protobuf DecodeError and friends
        raise EdgekitError(
            f"{path}/saved_model.pb: not a readable SavedModel (corrupted?)"
        ) from None
    sigs = {}
    for mg in sm.meta_graphs:
        for key, sig in mg.signature_def.items():
            if not key.startswith("__"):
                sigs[key] = sig
    return sigs


def _pick_signature(path: Path, sigs: dict) -> str:
    if "serving_default" in sigs:
        return "serving_default"
    if len(sigs) == 1:
        return next(iter(sigs))
    if not sigs:
        raise EdgekitError(
            f"{path}: SavedModel has no serving signature; save it with "
            "tf.saved_model.save(obj, DIR, signatures=fn.get_concrete_function("
            "tf.TensorSpec([None, None, None, 3], tf.float32))) or model.export(DIR)"
        )
    raise EdgekitError(
        f"{path}: SavedModel has several signatures ({', '.join(sorted(sigs))}) and none is "
        "'serving_default'; re-save it with one serving_default signature"
    )


def _keras_metadata_layers(path: Path):
    """(class_name, name, config) of every layer node in keras_metadata.pb."""
    from tf_keras.protobuf import saved_metadata_pb2

    input_file(path / "keras_metadata.pb", "keras_metadata.pb")  # a FIFO would block the read
    md = saved_metadata_pb2.SavedMetadata()
    try:
        md.ParseFromString((path / "keras_metadata.pb").read_bytes())
    except Exception:  # noqa: BLE001
        raise EdgekitError(f"{path}/keras_metadata.pb: unreadable (corrupted?)") from None
    for node in md.nodes:
        if not any(k in node.identifier for k in ("layer", "network", "model", "sequential")):
            continue
        try:
            meta = json.loads(node.metadata)
        except ValueError:
            continue
        cfg = meta.get("config") if isinstance(meta.get("config"), dict) else {}
        yield str(meta.get("class_name", "")), str(meta.get("name", cfg.get("name", "?"))), cfg


def _load_saved_model(path: Path, allow_custom_code: bool):
    sigs = _saved_model_signatures(path)
    key = _pick_signature(path, sigs)
    if (path / "keras_metadata.pb").exists():
        _check_signature(path, sigs[key], key)
        check_config(_keras_metadata_layers(path), path, allow_custom_code)
        return _keras_load(path, allow_custom_code)
    return _wrap_signature(path, sigs[key], key)


def _check_signature(path: Path, sig, key: str) -> tuple[str, str]:
    ins, outs = dict(sig.inputs), dict(sig.outputs)
    if len(ins) != 1:
        raise EdgekitError(
            f"{path}: signature '{key}' has {len(ins)} inputs ({', '.join(sorted(ins))}); edgekit "
            "needs exactly one image input"
        )
    if len(outs) != 1:
        raise EdgekitError(
            f"{path}: signature '{key}' has {len(outs)} outputs ({', '.join(sorted(outs))}); "
            "edgekit needs exactly one image output"
        )
    (in_key, tin), (out_key, _) = next(iter(ins.items())), next(iter(outs.items()))
    dims = None if tin.tensor_shape.unknown_rank else [d.size for d in tin.tensor_shape.dim]
    _check_image_shape(path, f"input '{in_key}'", dims)
    return in_key, out_key


def _check_image_shape(path, what: str, dims) -> None:
    shown = (
        "unknown rank"
        if dims is None
        else "(" + ", ".join("None" if d is None or d < 0 else str(d) for d in dims) + ")"
    )
    if dims is None or len(dims) != 4:
        raise EdgekitError(
            f"{path}: {what} has shape {shown}; edgekit needs one image tensor (batch, height, "
            "width, channels) in NHWC"
        )
    c = dims[3]
    if c not in (1, 3):
        raise EdgekitError(
            f"{path}: {what} has shape {shown}; edgekit needs 3 (RGB) or 1 (grayscale) channels "
            "last (NHWC); for an NCHW model, transpose its input/output to NHWC and re-save"
        )


def _wrap_signature(path: Path, sig, key: str):
    from .layers import layer_classes

    in_key, out_key = _check_signature(path, sig, key)
    tf, keras = _tf()
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:  # noqa: BLE001
        raise EdgekitError(f"{path}: cannot load the SavedModel ({_short(exc)})") from None
    dims = [d.size for d in sig.inputs[in_key].tensor_shape.dim]
    shape = tuple(None if d is None or d < 0 else d for d in dims[1:])
    inp = keras.Input(shape=shape, name="image")
    out = layer_classes()["SavedModelSignature"](loaded, key, in_key, out_key, name="saved_model")(
        inp
    )
    return keras.Model(inp, out, name=path.name)


# ----------------------------------------------------------------------------- validation


def _validate(model, path) -> tuple[int, int]:
    """One rank-4 image input (1 or 3 channels), one rank-4 output. Returns (channels, scale)."""
    import numpy as np

    if len(model.inputs) != 1:
        names = ", ".join(t.name.split(":")[0] for t in model.inputs)
        raise EdgekitError(
            f"{path}: model has {len(model.inputs)} inputs ({names}); edgekit needs exactly one "
            "image input"
        )
    if len(model.outputs) != 1:
        raise EdgekitError(
            f"{path}: model has {len(model.outputs)} outputs; edgekit needs exactly one image output"
        )
    in_shape = model.inputs[0].shape
    _check_image_shape(path, "input", None if in_shape.rank is None else in_shape.as_list())
    if not model.inputs[0].dtype.is_floating:
        raise EdgekitError(
            f"{path}: input dtype is {model.inputs[0].dtype.name}; edgekit feeds float32 images"
        )
    channels = in_shape[-1]
    h = in_shape[1] or PROBE
    w = in_shape[2] or PROBE
    # A declared fixed input of, say, 100000x100000 would allocate tens of GB in the probe.
    check_input_size_bound(h, w, f"{path}: the model's fixed input")
    try:
        y = model(np.zeros((1, h, w, channels), np.float32), training=False)
    except Exception as exc:  # noqa: BLE001
        raise EdgekitError(
            f"{path}: the model fails on a {h}x{w}x{channels} probe image ({_short(exc)}); "
            "edgekit needs a fully convolutional image-to-image model"
        ) from None
    y_shape = tuple(np.shape(y))
    if len(y_shape) != 4 or y_shape[-1] != channels:
        raise EdgekitError(
            f"{path}: output has shape {y_shape} for a (1, {h}, {w}, {channels}) input; edgekit "
            f"needs an image output (batch, height, width, {channels})"
        )
    if y_shape[1] % h or y_shape[2] % w or y_shape[1] // h != y_shape[2] // w:
        raise EdgekitError(
            f"{path}: output {y_shape[1]}x{y_shape[2]} is not the {h}x{w} input times one integer "
            "scale factor; edgekit handles same-size restoration and integer super-resolution"
        )
    return channels, y_shape[1] // h


def _infer_multiple(model, scale: int, path) -> int:
    """Smallest m in 1, 2, 4, ..., 64 such that an input of size m * odd runs with the right output
    size (U-Nets need their input divisible by 2^levels)."""
    import numpy as np

    channels = model.inputs[0].shape[-1]
    for m in (1, 2, 4, 8, 16, 32, 64):
        size = m * (3 if m >= 16 else 1 + 2 * (48 // (2 * m)))  # m times an odd number, ~48
        try:
            y = model(np.zeros((1, size, size, channels), np.float32), training=False)
        except Exception:  # noqa: BLE001 - shape errors mean "not a valid size"
            continue
        if tuple(np.shape(y))[1:3] == (size * scale, size * scale):
            return m
    raise EdgekitError(
        f"{path}: the model runs on a {PROBE}x{PROBE} input but on no smaller size tried; edgekit "
        "needs a fully convolutional model whose input size is a multiple of at most 64"
    )


def _wrap_conventions(model, channels: int, value_range: tuple[float, float]):
    """Give the model the edgekit face: 3-channel [0, 1] in, 3-channel [0, 1] out."""
    _, keras = _tf()
    lo, hi = value_range
    inp = keras.Input(shape=(None, None, 3), name="image")
    x = inp
    if (lo, hi) != (0.0, 1.0):
        x = keras.layers.Rescaling(hi - lo, offset=lo, name="to_model_range")(x)
    if channels == 1:
        # A grayscale model restores each RGB channel separately (shared weights).
        planes = [model(x[..., c : c + 1]) for c in range(3)]
        y = keras.layers.Concatenate(name="rgb")(planes)
    else:
        y = model(x)
    if (lo, hi) != (0.0, 1.0):
        y = keras.layers.Rescaling(1.0 / (hi - lo), offset=-lo / (hi - lo), name="to_unit_range")(y)
    return keras.Model(inp, y, name=f"{model.name}_edgekit")


def load_model(
    spec: str,
    allow_custom_code: bool = False,
    *,
    value_range: tuple[float, float] | None = None,
    task: str | None = None,
    degradation: str | None = None,
) -> LoadedModel:
    """Load `zoo:NAME` or a model file (.h5, .keras, SavedModel directory).

    The returned LoadedModel.model is a tf_keras.Model on float32 NHWC RGB images in [0, 1]
    returning float32 NHWC images (scale x larger for super-resolution). A user model working in
    another `value_range` (e.g. (0, 255)) or on 1 channel is wrapped to that face; the original
    convention is recorded in info.extra. `task` and `degradation` override what edgekit infers
    (task "restore"; degradation `downscale:factor=S` for x2-x4 models, else none).
    """
    from ..data.degradations import parse

    if spec.startswith("zoo:"):
        if value_range is not None:
            raise EdgekitError(
                f"{spec}: zoo models work on [0, 1]; value_range can't be overridden"
            )
        loaded = _load_zoo(spec[4:])
        if task or degradation:
            if degradation:
                deg = parse(degradation)
                if deg.scale != loaded.info.scale:
                    raise EdgekitError(
                        f"{spec}: degradation '{degradation}' has scale {deg.scale}, the model "
                        f"{loaded.info.scale}"
                    )
            info = ModelInfo.from_dict(
                loaded.info.to_dict()
                | {
                    "task": task or loaded.info.task,
                    "degradation": degradation or loaded.info.degradation,
                }
            )
            loaded = LoadedModel(loaded.model, info)
        return loaded

    path = Path(spec)
    if path.suffix.lower() == ".onnx" and path.is_file():
        from . import onnx_source

        return onnx_source.load(path, value_range, task, degradation)
    if not path.exists():
        raise EdgekitError(
            f"{path}: model file not found; pass an .h5, a .keras, an .onnx, a SavedModel folder or "
            "zoo:NAME"
        )
    if not path.is_dir():
        input_file(path, "model file")  # a FIFO would block h5py/zipfile forever
    suffix = path.suffix.lower()
    notes: list[str] = []
    if path.is_dir():
        model = _load_saved_model(path, allow_custom_code)
        fmt = "saved_model"
    elif suffix in (".h5", ".hdf5"):
        model, fmt, notes = _load_h5(path, allow_custom_code)
    elif suffix == ".keras":
        model, fmt, notes = _load_keras_zip(path, allow_custom_code)
    else:
        raise EdgekitError(
            f"{path}: unsupported model file type '{suffix or '(none)'}'; expected .h5, .keras, .onnx "
            "or a SavedModel folder"
        )

    check_finite_weights(model, path)
    channels, scale = _validate(model, path)
    vr = (0.0, 1.0) if value_range is None else (float(value_range[0]), float(value_range[1]))
    if vr[1] <= vr[0]:
        raise EdgekitError(f"{path}: value_range {vr} must be (low, high) with low < high")
    extra = {"format": fmt}
    if notes:
        extra["conversion_notes"] = notes
    if channels == 1 or vr != (0.0, 1.0):
        model = _wrap_conventions(model, channels, vr)
        extra["native_value_range"] = list(vr)
        extra["native_channels"] = channels
        if channels == 1:
            extra["per_channel"] = True
    if allow_custom_code:
        extra["custom_code_allowed"] = True
    in_shape = model.inputs[0].shape
    multiple = 1
    if in_shape[1] is not None or in_shape[2] is not None:
        extra["fixed_input_hw"] = [in_shape[1], in_shape[2]]
    else:
        multiple = _infer_multiple(model, scale, path)
    extra["input_note"] = _multiple_note(multiple, scale)
    if degradation is not None:
        deg = parse(degradation)
        if deg.scale != scale:
            raise EdgekitError(
                f"{path}: degradation '{degradation}' has scale {deg.scale} but the model's output "
                f"is {scale}x its input; pass a matching --degradation"
            )
        degradation = deg.spec
    elif scale in (2, 3, 4):
        degradation = f"downscale:factor={scale}"
    info = ModelInfo(
        name=path.stem if not path.is_dir() else path.name,
        task=task or ("super-resolution" if scale > 1 else "restore"),
        degradation=degradation,
        scale=scale,
        value_range=(0.0, 1.0),
        channels=3,
        source=str(path),
        extra=extra,
        input_multiple=multiple,
    )
    return LoadedModel(model, info)


def check_finite_weights(model, path) -> None:
    """NaN/inf in a weight makes every output NaN; say which layer instead of blaming the export."""
    import numpy as np

    def leaves(m):
        for layer in getattr(m, "layers", []):
            if getattr(layer, "layers", None):  # a nested model: name its own layers
                yield from leaves(layer)
            else:
                yield layer

    for layer in leaves(model):
        for w in layer.weights:
            value = np.asarray(w.numpy())
            if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
                bad = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
                raise EdgekitError(
                    f"{path}: layer '{layer.name}' has {bad} NaN/inf value(s) in weight "
                    f"'{w.name.split('/')[-1].split(':')[0]}'; the model file is broken (training "
                    "diverged?): retrain or re-save it from a good checkpoint"
                )


def check_input_size(info: ModelInfo, h: int, w: int) -> None:
    """Raise a one-line EdgekitError if an H x W input does not suit the model (multiple, fixed size)."""
    m = max(1, int(info.input_multiple))
    fixed = info.extra.get("fixed_input_hw") if info.extra else None
    if fixed and any(f is not None and f != v for f, v in zip(fixed, (h, w), strict=True)):
        raise EdgekitError(
            f"model '{info.name}' ({info.source}) takes a fixed {fixed[0]}x{fixed[1]} input, got "
            f"{h}x{w}; use --shape {fixed[0]}x{fixed[1]}"
        )
    if h % m or w % m:
        raise EdgekitError(
            f"model '{info.name}' ({info.source}) needs input height and width that are multiples of "
            f"{m}, got {h}x{w}; use e.g. --shape {max(m, h - h % m)}x{max(m, w - w % m)}"
        )
