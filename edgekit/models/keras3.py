"""Rebuild a Keras 3 model file as an equivalent tf_keras model, running no code from the file.

The `.keras` archive's config.json is read as plain JSON and every layer is translated, from a fixed
table (keras3_layers.py), into the tf_keras layer that computes the same function. Weights come
from model.weights.h5, read with h5py in Keras 3's layout: `layers/<snake_case class name>[_k]/
vars/<i>` per layer, nested models nesting. An `.h5` saved by Keras 3 goes the same way, with its
weights read by layer name from `model_weights/`. Nothing is imported or called by a name read from the file: a
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
from .keras3_layers import (
    EXPORT_HINT,
    LAMBDAS,
    MERGE,
    MODELS,
    OPS,
    TRANSLATORS,
    is_tensor,
    layer_name,
    op_layers,
)


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
            where = f"layer '{layer_name(entry)}' ({entry.get('class_name', '?')}): "
        return EdgekitError(f"{self.path}: {where}{what}")


# ----------------------------------------------------------------------------- safety check


def _kind(entry: dict) -> str:
    """'layer', 'model', 'op' for a class edgekit translates; raises nothing (see check)."""
    module = str(entry.get("module") or "")
    cls = entry.get("class_name")
    if module.startswith("keras.src.ops.") and cls in OPS:
        return "op"
    if cls in MODELS and module in ("keras", "keras.models", "keras.src.models.functional",
                                     "keras.src.models.sequential"):  # fmt: skip
        return "model"
    if module in ("keras.layers", "keras.src.layers") or module.startswith("keras.src.layers."):
        if cls in TRANSLATORS:
            return "layer"
        return "unsupported"
    return "custom"


def check(config: dict, ctx: _Ctx) -> None:
    """Refuse Lambda, custom and unknown classes anywhere in the config, before building anything."""
    for entry in _walk(config):
        cls = str(entry.get("class_name", "?"))
        kind = _kind(entry)
        if cls in LAMBDAS:
            raise ctx.fail(
                entry,
                "a Lambda layer is Python code stored in the file; edgekit never runs it "
                f"(--allow-custom-code can't help: tf_keras can't run Keras 3 code); {EXPORT_HINT}",
            )
        if kind == "custom":
            reg = entry.get("registered_name") or cls
            raise ctx.fail(
                entry,
                f"a custom class ('{reg}' from module '{entry.get('module')}') whose code is not "
                "in the file and which edgekit does not rebuild (--allow-custom-code can't help: "
                f"tf_keras can't run Keras 3 code); {EXPORT_HINT}",
            )
        if kind == "unsupported":
            raise ctx.fail(
                entry,
                "a Keras 3 layer edgekit's converter does not translate (supported: "
                f"{', '.join(sorted(TRANSLATORS))}); {EXPORT_HINT}",
            )


def _walk(entry: dict):
    yield entry
    cfg = entry.get("config")
    if entry.get("class_name") in MODELS and isinstance(cfg, dict):
        for sub in cfg.get("layers") or []:
            if isinstance(sub, dict):
                yield from _walk(sub)


# ----------------------------------------------------------------------------- graph


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
    return ctx.keras.Input(batch_shape=tuple(shape), name=layer_name(entry))


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
        name = layer_name(e)
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
            tensors[(layer_name(e), i)] = _call(e, node, tensors, made, ctx)
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
    model = ctx.keras.Model(ins, outs if len(outs) > 1 else outs[0], name=layer_name(entry))
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
    return ctx.keras.Model(inp, x, name=layer_name(entry)), made


def _ready(node, tensors) -> bool:
    return all((n, i) in tensors for n, i, _ in _node_inputs(node))


def _node_inputs(node) -> list:
    found = []

    def visit(v):
        if is_tensor(v):
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
        if is_tensor(v):
            n, i, t = _history(v)
            return tensors[(n, i)][t]
        if isinstance(v, list):
            return [resolve(x) for x in v]
        return v

    args = node.get("args") or []
    if _kind(e) == "op":
        if layer_name(e) not in made:
            made[layer_name(e)] = (op_layers(e, args, ctx), e)
        tensor_args = [resolve(a) for a in args if is_tensor(a)]
        x = tensor_args if len(tensor_args) > 1 else tensor_args[0]
        return [_chain(made[layer_name(e)][0], x)]
    if len(args) != 1:
        raise ctx.fail(e, f"called with {len(args)} positional arguments; expected one")
    return [_apply(e, resolve(args[0]), made, ctx)]


def _apply(e, x, made, ctx):
    """Create the tf_keras counterpart of entry `e` once (shared layers reuse it) and call it."""
    name = layer_name(e)
    if name not in made:
        kind = _kind(e)
        if kind == "model":
            sub, sub_made = _build(e, ctx)
            made[name] = ([sub], e, sub_made)
        elif kind == "layer" and e.get("class_name") != "InputLayer":
            made[name] = (TRANSLATORS[e["class_name"]](e.get("config") or {}, e, ctx), e)
        else:
            raise ctx.fail(e, "not translated here (an input layer inside a Sequential body?)")
    if isinstance(x, list) and len(x) == 1 and e.get("class_name") not in MERGE:
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
        name = layer_name(e)
        if name not in made:
            continue  # an InputLayer
        sub = layers_group.get(key) if layers_group is not None else None
        if _kind(e) == "model":
            _assign(e, made[name][2], sub, ctx)
            continue
        vars_group = sub.get("vars") if sub is not None else None
        stored = []
        if vars_group is not None:
            stored = [np.asarray(vars_group[str(i)]) for i in range(len(vars_group))]
        _set(e, made[name][0], stored, f"model.weights.h5 layers/{key}", ctx)


def _set(entry, tf_layers, stored: list, where: str, ctx: _Ctx) -> None:
    """Assign stored arrays to the tf_keras layers' weights, in order, if count and shapes match."""
    target = [w for layer in tf_layers for w in layer.weights]
    want = [tuple(w.shape) for w in target]
    have = [tuple(a.shape) for a in stored]
    if want != have:
        raise ctx.fail(
            entry,
            f"{where} holds {len(have)} arrays {have or ''} but the config needs {len(want)} "
            f"{want or ''}; the weights do not belong to this config; re-save the model",
        )
    for w, a in zip(target, stored, strict=True):
        w.assign(a.astype(np.float32))


def _legacy_arrays(model_weights) -> dict[str, dict[str, list]]:
    """{top-level layer: {owning layer name: arrays in stored order}} from the `model_weights`
    group of an .h5 saved by Keras 3 (a nested model's group holds all its layers' weights)."""
    out: dict[str, dict[str, list]] = {}
    for top in model_weights:
        group = model_weights[top]
        per = out.setdefault(str(top), {})
        for raw in group.attrs.get("weight_names", []):
            wn = raw.decode() if isinstance(raw, bytes) else str(raw)
            parts = wn.split("/")
            owner = parts[-2] if len(parts) >= 2 else str(top)
            per.setdefault(owner, []).append(np.asarray(group[wn]))
    return out


def _assign_legacy(made: dict, stored: dict, ctx: _Ctx, top: str | None = None) -> None:
    for name, item in made.items():
        if len(item) == 3:  # a nested model: its layers' weights sit in its top-level group
            _assign_legacy(item[2], stored, ctx, top or name)
            continue
        arrays = stored.get(top or name, {}).get(name, [])
        _set(item[1], item[0], arrays, f"model_weights/{top or name}", ctx)


def _mark_legacy_builtins(config: dict) -> None:
    """An .h5 saved by Keras 3 stores no 'module': classes in the table are Keras built-ins (a
    registered class keeps its 'package>Name' and stays refused)."""
    for e in _walk(config):
        if isinstance(e, dict) and "module" not in e:
            cls = e.get("class_name")
            if cls in MODELS:
                e["module"] = "keras.src.models.functional"
            elif cls in TRANSLATORS or cls in LAMBDAS:
                e["module"] = "keras.layers"


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


def _rebuild(path, config: dict, what: str, allow_custom_code: bool):
    """Check the config (before TensorFlow is even imported: a refused file costs nothing), then
    build the tf_keras graph. Returns (model, made, ctx)."""
    ctx = _Ctx(path, None, allow_custom_code)
    if config.get("class_name") not in MODELS:
        raise ctx.fail(
            None,
            f"the saved object is a {config.get('class_name')!r}, not a Functional or "
            f"Sequential model (a subclassed model's code is not in the file); {EXPORT_HINT}",
        )
    check(config, ctx)
    from ..tfcompat import import_tf

    ctx.keras = import_tf()[1]
    try:
        model, made = _build(config, ctx)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        text = " ".join(str(exc).split())[:200]
        raise EdgekitError(
            f"{path}: {what} does not describe a model edgekit can rebuild "
            f"({exc.__class__.__name__}: {text}); re-save the model with Keras 3"
        ) from None
    return model, made, ctx


def load(path: Path, config: dict, weights: bytes | None, allow_custom_code: bool = False):
    """tf_keras model rebuilt from a Keras 3 archive's config and weights. Returns (model, notes)."""
    import h5py

    if weights is None:
        raise EdgekitError(f"{path}: .keras archive without model.weights.h5; re-save the model")
    model, made, ctx = _rebuild(path, config, "config.json", allow_custom_code)
    try:
        h5 = h5py.File(io.BytesIO(weights), "r")
    except OSError:
        raise EdgekitError(
            f"{path}: model.weights.h5 inside the archive is unreadable (corrupted?); re-save"
        ) from None
    with h5:
        _assign(config, made, h5, ctx)
    return model, ctx.notes


def load_h5(path: Path, config: dict, allow_custom_code: bool = False):
    """tf_keras model rebuilt from an .h5 saved by Keras 3 (model.save('m.h5')): the same config
    translation, weights from `model_weights/<layer>` by name. Returns (model, notes)."""
    import h5py

    _mark_legacy_builtins(config)
    model, made, ctx = _rebuild(path, config, "the stored model config", allow_custom_code)
    with h5py.File(path, "r") as f:
        if "model_weights" not in f:
            raise EdgekitError(f"{path}: no model_weights group; re-save with model.save()")
        _assign_legacy(made, _legacy_arrays(f["model_weights"]), ctx)
    return model, ctx.notes
