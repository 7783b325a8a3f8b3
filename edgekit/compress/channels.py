"""Channel (filter) pruning that rebuilds a narrower tf_keras functional model.

Pruning a filter only saves time if the tensor it produces really gets narrower, so this module
removes filters *and* every weight that reads the removed channels downstream, and rebuilds the
model with smaller `filters`/`units`.

How channels are tracked: every channel of every tensor in the graph gets an integer label.
A Conv2D/Conv2DTranspose/Dense creates fresh labels (one per filter, owned by that layer);
channel-preserving layers (activations, BatchNorm, PReLU, pooling, padding, depthwise convs)
pass their input's labels through; element-wise merges (Add, Subtract, Multiply, ...) unite
the labels at equal positions (union-find), so coupled channels are kept or removed together;
Concatenate appends its inputs' labels (channel offsets follow automatically); DepthToSpace(r)
unites each output channel with the r*r input channels that form it (whole groups go together).
Labels that reach the model input or output, or any layer this module cannot rewrite, are
pinned: those channels are never removed (the image output keeps its 3 channels, a residual
joined to the input image keeps 3). A pruning decision is then one keep/remove per union-find
class, and every layer's weights are sliced by the positions of kept labels in its tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..config import PruneChannelsStep
from ..errors import EdgekitError
from .steps import step_handler

# Layers whose output channel i depends only on input channel i (their per-channel weights, if
# any, are sliced along the last axis).
_PRESERVE = {
    "ReLU",
    "Activation",
    "LeakyReLU",
    "ELU",
    "PReLU",
    "ThresholdedReLU",
    "BatchNormalization",
    "Dropout",
    "SpatialDropout2D",
    "GaussianNoise",
    "GaussianDropout",
    "MaxPooling2D",
    "AveragePooling2D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "UpSampling2D",
    "ZeroPadding2D",
    "Cropping2D",
    "DepthwiseConv2D",
    "LayerNormalization",
    "InputLayer",
}
_MERGE = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}
_PRODUCERS = {"Conv2D", "Conv2DTranspose", "Dense"}


class _UnionFind:
    def __init__(self):
        self.parent: list[int] = []

    def new(self, n: int) -> np.ndarray:
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        return np.arange(start, start + n)

    def find(self, a: int) -> int:
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:
            self.parent[a], a = root, self.parent[a]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass
class ChannelPlan:
    """What prune_channels decided: per producer layer, kept filter indices (sorted)."""

    kept: dict[str, list[int]]
    original: dict[str, int]
    pinned: dict[str, str] = field(default_factory=dict)  # producer -> why it cannot be pruned

    def channels(self) -> dict[str, tuple[int, int]]:
        return {name: (self.original[name], len(k)) for name, k in self.kept.items()}


@dataclass
class _Graph:
    model: object
    nodes: list  # tf_keras Nodes in a valid execution order (inputs excluded)
    labels: dict[int, np.ndarray]  # id(KerasTensor) -> label per channel
    uf: _UnionFind
    owner: dict[int, tuple[str, int]]  # label -> (producer layer name, filter index)
    fixed: dict[int, str]  # label -> why it may not be removed
    producers: dict[str, object]  # name -> layer
    producer_labels: dict[str, np.ndarray]
    producer_out: dict[str, object]  # name -> output KerasTensor
    opaque: set[str] = field(default_factory=set)  # layers copied unchanged (channels pinned)
    removed_roots: set[int] = field(default_factory=set)


def _class_name(layer) -> str:
    return type(layer).__name__


def _ordered_nodes(model) -> list:
    if not getattr(model, "_is_graph_network", False):
        raise EdgekitError(
            f"model '{model.name}': channel pruning needs a functional or Sequential tf_keras model "
            "(a subclassed model's graph cannot be rewritten); rebuild it with the functional API"
        )
    out = []
    for depth in sorted(model._nodes_by_depth, reverse=True):
        out.extend(n for n in model._nodes_by_depth[depth] if not n.is_input)
    return out


def _channels_of(kt) -> int | None:
    shape = kt.shape
    if shape.rank is None or shape[-1] is None:
        return None
    return int(shape[-1])


def _analyse(model) -> _Graph:
    uf = _UnionFind()
    labels: dict[int, np.ndarray] = {}
    fixed: dict[int, str] = {}
    owner: dict[int, tuple[str, int]] = {}
    producers, producer_labels, producer_out = {}, {}, {}
    nodes = _ordered_nodes(model)
    opaque: set[str] = set()
    calls: dict[str, int] = {}
    for node in nodes:
        calls[node.layer.name] = calls.get(node.layer.name, 0) + 1

    def new_labels(n: int, reason: str | None = None) -> np.ndarray:
        lab = uf.new(n)
        if reason:
            for lb in lab:
                fixed[int(lb)] = reason
        return lab

    for kt in model.inputs:
        n = _channels_of(kt)
        if n is None:
            raise EdgekitError(
                f"model input '{kt.name}': unknown channel count; give the Input a fixed channel dimension"
            )
        labels[id(kt)] = new_labels(n, f"tied to the model input '{kt._keras_history.layer.name}'")

    for node in nodes:
        layer = node.layer
        cls = _class_name(layer)
        ins = [labels[id(kt)] for kt in node.keras_inputs]
        outs = [kt for kt in _flat(node.outputs)]

        why = _unsupported(layer, node, calls)
        if why:
            opaque.add(layer.name)
            what = f"layer '{layer.name}' ({cls}), which channel pruning cannot rewrite: {why}"
            for lab in ins:
                for lb in lab:
                    fixed.setdefault(int(lb), f"feeding {what}")
            for kt in outs:
                labels[id(kt)] = new_labels(_channels_of(kt) or 0, f"coming from {what}")
            continue
        if cls in _PRODUCERS:
            n = _channels_of(outs[0])
            lab = new_labels(n)
            for i, lb in enumerate(lab):
                owner[int(lb)] = (layer.name, i)
            labels[id(outs[0])] = lab
            producers[layer.name] = layer
            producer_labels[layer.name] = lab
            producer_out[layer.name] = outs[0]
        elif cls in _PRESERVE:
            labels[id(outs[0])] = ins[0]
        elif cls in _MERGE or (cls == "Concatenate" and not _concat_on_channels(layer, node)):
            for other in ins[1:]:
                for a, b in zip(ins[0], other, strict=True):
                    uf.union(int(a), int(b))
            labels[id(outs[0])] = ins[0]
        elif cls == "Concatenate":
            labels[id(outs[0])] = np.concatenate(ins)
        elif cls == "DepthToSpace":
            r2 = int(layer.block_size) ** 2
            c_out = len(ins[0]) // r2
            lab = new_labels(c_out)
            for c in range(c_out):
                for b in range(r2):
                    uf.union(int(lab[c]), int(ins[0][b * c_out + c]))
            labels[id(outs[0])] = lab
        else:  # pragma: no cover - _unsupported covers every other class
            raise AssertionError(cls)

    for kt in model.outputs:
        for lb in labels[id(kt)]:
            fixed.setdefault(int(lb), f"tied to the model output '{kt._keras_history.layer.name}'")
    return _Graph(
        model, nodes, labels, uf, owner, fixed, producers, producer_labels, producer_out, opaque
    )


def _flat(structure) -> list:
    from ..tfcompat import import_tf

    tf, _ = import_tf()
    return tf.nest.flatten(structure)


def _concat_on_channels(layer, node) -> bool:
    rank = node.outputs.shape.rank
    axis = layer.axis
    return axis == -1 or (rank is not None and axis == rank - 1)


def _unsupported(layer, node, calls) -> str | None:
    """Why this layer must be treated as opaque (its channels pinned), or None."""
    cls = _class_name(layer)
    if calls.get(layer.name, 0) > 1:
        return f"it is shared (called {calls[layer.name]} times)"
    known = _PRESERVE | _MERGE | _PRODUCERS | {"Concatenate", "DepthToSpace"}
    if cls not in known:
        return (
            "its effect on channels is unknown (only convolutions, Dense, element-wise, "
            "Concatenate, DepthToSpace and per-channel layers are understood)"
        )
    outs = _flat(node.outputs)
    ins = node.keras_inputs
    if len(outs) != 1 or any(_channels_of(t) is None for t in [*outs, *ins]):
        return "its channel count is not static"
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return "it is channels_first"
    if cls == "Conv2D" and getattr(layer, "groups", 1) != 1:
        return "it is a grouped convolution"
    if cls == "DepthwiseConv2D" and layer.depth_multiplier != 1:
        return "its depth_multiplier is not 1"
    if cls == "LayerNormalization" and list(layer.axis) not in ([-1], [outs[0].shape.rank - 1]):
        return "it normalises over more than the channel axis"
    if cls in _MERGE and len({_channels_of(t) for t in ins}) != 1:
        return "its inputs broadcast over channels"
    if cls == "Concatenate" and not _concat_on_channels(layer, node):
        if len({_channels_of(t) for t in ins}) != 1:
            return "it concatenates along a non-channel axis with unequal channels"
    if cls in ("Activation",) and getattr(layer.activation, "__name__", "") == "softmax":
        return "softmax mixes channels"
    if cls == "Dense" and ins[0].shape.rank is not None and ins[0].shape.rank < 2:
        return "its input has no channel axis"
    return None


# ------------------------------------------------------------------------------ ranking


def _filter_scores(layer, criterion: str) -> np.ndarray:
    kernel = layer.get_weights()[0]
    cls = _class_name(layer)
    out_axis = {"Conv2D": 3, "Conv2DTranspose": 2, "Dense": 1}[cls]
    axes = tuple(a for a in range(kernel.ndim) if a != out_axis)
    if criterion == "l2":
        return np.sqrt(np.sum(np.square(kernel), axis=axes))
    return np.sum(np.abs(kernel), axis=axes)


def _activation_scores(
    graph: _Graph, names: list[str], inputs: np.ndarray
) -> dict[str, np.ndarray]:
    from ..tfcompat import import_tf

    _, keras = import_tf()
    probe = keras.Model(graph.model.inputs, [graph.producer_out[n] for n in names])
    sums = [np.zeros(_channels_of(graph.producer_out[n])) for n in names]
    for i in range(0, len(inputs), 4):
        outs = probe(inputs[i : i + 4], training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for k, o in enumerate(outs):
            o = np.abs(np.asarray(o))
            sums[k] += o.reshape(-1, o.shape[-1]).mean(axis=0) * len(o)
    return {n: s / len(inputs) for n, s in zip(names, sums, strict=True)}


def _round_keep(n: int, ratio: float, round_to: int, floor: int) -> int:
    want = n * (1.0 - ratio)
    keep = int(np.floor(want / round_to + 0.5)) * round_to  # nearest multiple, ties keep more
    keep = max(keep, floor, 1)
    return min(keep, n)


def plan_channels(
    model,
    ratio: float | dict[str, float],
    *,
    criterion: str = "l1",
    min_channels: int = 8,
    round_to: int = 8,
    calib_inputs: np.ndarray | None = None,
) -> tuple[ChannelPlan, _Graph]:
    """Decide which filters of `model` to keep. Raises EdgekitError naming the layer when a
    requested layer cannot be pruned or nothing at all can be."""
    graph = _analyse(model)
    uf = graph.uf

    def reason_of(name: str) -> str | None:
        for lb in graph.producer_labels[name]:
            root = uf.find(int(lb))
            for other, why in graph.fixed.items():
                if uf.find(other) == root:
                    return why
        return None

    # class root -> why fixed (first reason found)
    fixed_roots: dict[int, str] = {}
    for lb, why in graph.fixed.items():
        fixed_roots.setdefault(uf.find(lb), why)

    # Couple producers that share a class (e.g. both sides of a residual Add).
    puf = _UnionFind()
    names = list(graph.producers)
    pid = {n: int(i) for n, i in zip(names, puf.new(len(names)), strict=True)}
    root_owner: dict[int, int] = {}
    for n in names:
        for lb in graph.producer_labels[n]:
            r = uf.find(int(lb))
            if r in root_owner:
                puf.union(root_owner[r], pid[n])
            else:
                root_owner[r] = pid[n]
    groups: dict[int, list[str]] = {}
    for n in names:
        groups.setdefault(puf.find(pid[n]), []).append(n)

    if isinstance(ratio, dict):
        for n in ratio:
            if n in graph.producers:
                continue
            layer_names = {layer.name: _class_name(layer) for layer in model.layers}
            if n in layer_names:
                raise EdgekitError(
                    f"prune_channels: layer '{n}' ({layer_names[n]}) has no filters to prune; name "
                    f"Conv2D/Conv2DTranspose/Dense layers, e.g. {', '.join(names[:4])}"
                )
            raise EdgekitError(
                f"prune_channels: model '{model.name}' has no layer '{n}'; prunable layers: {', '.join(names)}"
            )

    if criterion == "activation":
        if calib_inputs is None or len(calib_inputs) == 0:
            raise EdgekitError(
                "prune_channels: criterion 'activation' needs calibration inputs (--calib)"
            )
        scores = _activation_scores(graph, names, calib_inputs)
    elif criterion in ("l1", "l2"):
        scores = {n: _filter_scores(graph.producers[n], criterion) for n in names}
    else:
        raise EdgekitError(
            f"prune_channels: unknown criterion '{criterion}'; expected l1, l2 or activation"
        )

    removed_roots: set[int] = set()
    pinned: dict[str, str] = {}
    for members in groups.values():
        if isinstance(ratio, dict):
            asked = {n: ratio[n] for n in members if n in ratio}
            if not asked:
                continue
            if len(set(asked.values())) > 1:
                raise EdgekitError(
                    f"prune_channels: layers {', '.join(asked)} are coupled (an element-wise merge joins "
                    f"their outputs) and must share one ratio, got {asked}"
                )
            r = next(iter(asked.values()))
        else:
            r = float(ratio)
        roots: list[int] = []
        score: dict[int, float] = {}
        for n in members:
            s = scores[n] / max(float(np.mean(scores[n])), 1e-12)
            for lb, v in zip(graph.producer_labels[n], s, strict=True):
                root = uf.find(int(lb))
                if root not in score:
                    roots.append(root)
                    score[root] = 0.0
                score[root] += float(v)
        free = [rt for rt in roots if rt not in fixed_roots]
        if not free:
            why = fixed_roots[roots[0]] if roots else "no filters"
            for n in members:
                pinned[n] = why
            if isinstance(ratio, dict):
                n0 = next(n for n in members if n in ratio)
                raise EdgekitError(
                    f"prune_channels: layer '{n0}' ({_class_name(graph.producers[n0])}) cannot be pruned: its "
                    f"output channels are {why}; remove it from the ratio list"
                )
            continue
        n_fixed = len(roots) - len(free)
        keep = max(_round_keep(len(roots), r, round_to, min_channels), n_fixed)
        keep_free = keep - n_fixed
        order = sorted(free, key=lambda rt: -score[rt])
        removed_roots.update(order[keep_free:])

    if not isinstance(ratio, dict) and not any(
        uf.find(int(lb)) not in fixed_roots for n in names for lb in graph.producer_labels[n]
    ):
        detail = "; ".join(f"'{n}' is {w}" for n, w in list(pinned.items())[:3])
        raise EdgekitError(
            f"prune_channels: model '{model.name}' has no prunable filters ({detail or 'no Conv2D/Dense layers'})"
        )

    kept = {
        n: [
            i
            for i, lb in enumerate(graph.producer_labels[n])
            if uf.find(int(lb)) not in removed_roots
        ]
        for n in names
    }
    original = {n: len(graph.producer_labels[n]) for n in names}
    graph.removed_roots = removed_roots
    return ChannelPlan(kept, original, pinned), graph


# ------------------------------------------------------------------------------ rebuilding


def _slice_weights(
    cls: str, weights: list[np.ndarray], in_idx, out_idx, n_in: int
) -> list[np.ndarray]:
    if cls == "Conv2D":
        k = weights[0][:, :, in_idx][..., out_idx]
        return [k] + [b[out_idx] for b in weights[1:]]
    if cls == "Conv2DTranspose":  # kernel (kh, kw, out, in)
        k = weights[0][:, :, out_idx][..., in_idx]
        return [k] + [b[out_idx] for b in weights[1:]]
    if cls == "Dense":
        k = weights[0][in_idx][:, out_idx]
        return [k] + [b[out_idx] for b in weights[1:]]
    if cls == "DepthwiseConv2D":
        k = weights[0][:, :, in_idx]
        return [k] + [b[in_idx] for b in weights[1:]]
    # per-channel layers (BatchNorm, PReLU, LayerNorm): slice the last axis where it is the channels
    return [w[..., in_idx] if w.ndim and w.shape[-1] == n_in else w for w in weights]


def rebuild(graph: _Graph, plan: ChannelPlan):
    """A new tf_keras model with the pruned widths and sliced weights (the original is untouched)."""
    from ..tfcompat import import_tf

    tf, keras = import_tf()
    model = graph.model
    uf = graph.uf
    removed = graph.removed_roots

    def keep_idx(kt) -> np.ndarray:
        lab = graph.labels[id(kt)]
        return np.array(
            [i for i, lb in enumerate(lab) if uf.find(int(lb)) not in removed], dtype=np.int64
        )

    new: dict[int, object] = {}
    for kt in model.inputs:
        layer = kt._keras_history.layer
        new[id(kt)] = keras.Input(batch_shape=kt.shape, dtype=kt.dtype, name=layer.name)

    from tf_keras.src.engine.keras_tensor import KerasTensor

    def swap(x):
        return new[id(x)] if isinstance(x, KerasTensor) else x

    for node in graph.nodes:
        layer = node.layer
        cls = _class_name(layer)
        config = layer.get_config()
        outs = _flat(node.outputs)
        opaque = layer.name in graph.opaque
        if opaque:
            pass
        elif cls in ("Conv2D", "Conv2DTranspose"):
            config["filters"] = len(plan.kept[layer.name])
        elif cls == "Dense":
            config["units"] = len(plan.kept[layer.name])
        try:
            fresh = layer.__class__.from_config(config)
        except Exception:  # noqa: BLE001 - opaque layers that cannot be re-created are reused as-is
            fresh = layer
        args = tf.nest.map_structure(swap, node.call_args)
        kwargs = tf.nest.map_structure(swap, node.call_kwargs)
        result = fresh(*args, **kwargs)
        for old, kt in zip(outs, _flat(result), strict=True):
            new[id(old)] = kt
        if fresh is layer:
            continue
        weights = layer.get_weights()
        if weights:
            inp = node.keras_inputs[0] if node.keras_inputs else None
            in_idx = keep_idx(inp) if inp is not None else None
            out_idx = keep_idx(outs[0])
            n_in = _channels_of(inp) if inp is not None else 0
            if not opaque and cls in _PRODUCERS | _PRESERVE:
                weights = _slice_weights(cls, weights, in_idx, out_idx, n_in)
            fresh.set_weights(weights)
    outputs = [new[id(kt)] for kt in model.outputs]
    return keras.Model(
        [new[id(kt)] for kt in model.inputs] if len(model.inputs) > 1 else new[id(model.inputs[0])],
        outputs if len(outputs) > 1 else outputs[0],
        name=model.name,
    )


def prune_channels(
    model,
    ratio: float | dict[str, float],
    *,
    criterion: str = "l1",
    min_channels: int = 8,
    round_to: int = 8,
    calib_inputs: np.ndarray | None = None,
):
    """Remove filters from `model` and return (narrower tf_keras model, ChannelPlan).

    ratio: fraction of filters removed from every prunable layer, or {layer name: fraction}.
    Kept counts are rounded to the nearest multiple of `round_to` (ties keep more) and never go
    below `min_channels`. No fine-tuning here: see edgekit.compress.finetune.
    """
    plan, graph = plan_channels(
        model,
        ratio,
        criterion=criterion,
        min_channels=min_channels,
        round_to=round_to,
        calib_inputs=calib_inputs,
    )
    return rebuild(graph, plan), plan


@step_handler(PruneChannelsStep)
def run_prune_channels(step, model, ctx):
    """Plan step: prune filters, then fine-tune the narrower model on training pairs."""

    xs, ys = ctx.pairs(step.patch, step.steps * step.batch)
    calib = xs[:32] if step.criterion == "activation" else None
    narrow, plan = prune_channels(
        model,
        step.ratio,
        criterion=step.criterion,
        min_channels=step.min_channels,
        round_to=step.round_to,
        calib_inputs=calib,
    )
    result = ctx.fit(step, narrow, xs, ys, "fine-tune")
    detail = {
        "channels": {n: list(v) for n, v in plan.channels().items()},
        "pinned": plan.pinned,
        "train": result.to_dict(),
    }
    return narrow, detail
