"""Clamps in an fp32 ONNX graph as single Clip nodes, so ONNX Runtime's int8 quantizer folds them.

tf2onnx lowers a Keras ReLU(max_value=m) to Relu + Min + Max. ONNX Runtime has no int8 Min or
Max: quantize_static leaves them in float between Q/DQ pairs, and quantizes the tensor before
the Relu with the range of the unclamped values. One Clip(lo, hi) computes the same function
(exact in float), and with asymmetric activations quantize_static removes it and gives the tensor
before it the Clip's range, so the clamp is done by the QuantizeLinear's saturation.

The graph output's clamp is also moved above ops that only move data (DepthToSpace, Transpose,
Reshape: an element-wise clamp commutes with them), so it folds into the Conv/Add that computes
the values; its range is known exactly (the model's [lo, hi]), and fuse_clamps' record names the
tensor and the range so the caller can quantize it with exactly that range (uint8 [0, 1]: scale
1/255, zero point 0) instead of a calibrated one.
"""

from __future__ import annotations

import math

import numpy as np

_CLAMPS = ("Relu", "Min", "Max", "Clip")
# element-wise ops commute with these: a clamp after them equals the clamp before them
_MOVES_DATA = ("DepthToSpace", "SpaceToDepth", "Transpose", "Reshape", "Identity", "Flatten")


def _constants(graph) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    out = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            out[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return out


def _bounds(node, consts) -> tuple[float, float] | None:
    """(lo, hi) of a clamp node (infinite where open), None when it is not a constant clamp."""
    if node.op_type == "Relu":
        return 0.0, math.inf
    values = []
    for name in node.input[1:]:
        v = consts.get(name) if name else None
        if name and (v is None or v.size != 1 or v.dtype.kind != "f"):
            return None  # a tensor bound or a per-channel one: not a scalar clamp
        values.append(None if v is None else float(v.reshape(-1)[0]))
    if node.op_type == "Clip":
        if any(a.name in ("min", "max") for a in node.attribute):
            return None  # opset < 11 Clip with attributes: left alone
        lo = values[0] if len(values) > 0 and values[0] is not None else -math.inf
        hi = values[1] if len(values) > 1 and values[1] is not None else math.inf
        return lo, hi
    if len(node.input) != 2 or values[0] is None:
        return None  # Min/Max of two tensors (or of more than two inputs)
    c = values[0]
    return (-math.inf, c) if node.op_type == "Min" else (c, math.inf)


def _compose(first: tuple[float, float], then: tuple[float, float]) -> tuple[float, float]:
    """Bounds of clamp(clamp(x, *first), *then) as one clamp."""
    lo, hi = then
    return min(max(first[0], lo), hi), min(max(first[1], lo), hi)


def fuse_clamps(proto):
    """(copy of proto with every chain of constant clamps as one Clip, record) — exact in float.

    A chain is Relu/Min/Max/Clip nodes with scalar constant bounds, each feeding only the next.
    A lone Relu stays (ONNX Runtime folds it); a lone Min or Max becomes a Clip. The graph
    output's clamp is moved above data-movement ops. record: {"fused": [{"nodes", "range"}],
    "output_clamp": {"tensor", "range", "moved_above"} or None}."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    graph = model.graph
    record: dict = {"fused": [], "output_clamp": None}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 11:  # Clip takes its bounds as inputs from opset 11
        return model, record
    consts = _constants(graph)
    outputs = {o.name for o in graph.output}
    consumers: dict[str, list] = {}
    for n in graph.node:
        for name in n.input:
            consumers.setdefault(name, []).append(n)
    producer = {o: n for n in graph.node for o in n.output}

    # chains, found from their last node backwards
    def is_clamp(n) -> bool:
        return n.op_type in _CLAMPS and _bounds(n, consts) is not None

    chains = []
    taken: set[int] = set()
    for n in reversed(list(graph.node)):
        if id(n) in taken or not is_clamp(n):
            continue
        chain = [n]
        while True:
            p = producer.get(chain[0].input[0])
            if (
                p is None
                or not is_clamp(p)
                or id(p) in taken
                or len(consumers.get(p.output[0], [])) != 1
                or p.output[0] in outputs
            ):
                break
            chain.insert(0, p)
        if len(chain) == 1 and n.op_type in ("Relu", "Clip"):
            continue
        taken.update(id(c) for c in chain)
        chains.append(chain)

    replace: dict[int, object] = {}  # id(last node of a chain) -> its Clip
    drop: set[int] = set()
    for i, chain in enumerate(chains):
        lo, hi = -math.inf, math.inf
        for c in chain:
            lo, hi = _compose((lo, hi), _bounds(c, consts))
        names = []
        for bound, tag in ((lo, "lo"), (hi, "hi")):
            if math.isinf(bound):
                names.append("")
                continue
            name = f"edgekit_clamp{i}_{tag}"
            graph.initializer.append(numpy_helper.from_array(np.array(bound, np.float32), name))
            names.append(name)
        clip = helper.make_node(
            "Clip",
            [chain[0].input[0], *names],
            [chain[-1].output[0]],
            name=f"edgekit_clamp{i}",
        )
        replace[id(chain[-1])] = clip
        drop.update(id(c) for c in chain[:-1])
        record["fused"].append({"nodes": [c.name for c in chain], "range": [lo, hi]})
    bounds_of_old = {name for c in chains for n in c for name in n.input[1:] if name}
    nodes = [replace.get(id(n), n) for n in graph.node if id(n) not in drop]
    del graph.node[:]
    graph.node.extend(nodes)
    _drop_unused(graph, bounds_of_old)
    record["output_clamp"] = _hoist_output_clamp(graph)
    onnx.checker.check_model(model)
    return model, record


def _drop_unused(graph, names: set[str]) -> None:
    """Remove the constants in `names` (the fused nodes' bounds) that nothing reads any more."""
    used = {name for n in graph.node for name in n.input}
    dead = names - used
    keep = [t for t in graph.initializer if t.name not in dead]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = [n for n in graph.node if not (n.op_type == "Constant" and n.output[0] in dead)]
    del graph.node[:]
    graph.node.extend(nodes)


def _hoist_output_clamp(graph) -> dict | None:
    """Move the Clip that produces the (single) graph output above data-movement ops before it;
    returns {"tensor": the Clip's output, "range", "moved_above": [op types]} or None."""
    if len(graph.output) != 1:
        return None
    out = graph.output[0].name
    producer = {o: n for n in graph.node for o in n.output}
    clip = producer.get(out)
    if clip is None or clip.op_type != "Clip":
        return None
    consts = _constants(graph)
    bounds = _bounds(clip, consts)
    if bounds is None or not all(math.isfinite(b) for b in bounds) or not bounds[0] < bounds[1]:
        return None
    uses: dict[str, int] = {}
    for n in graph.node:
        for name in n.input:
            uses[name] = uses.get(name, 0) + 1
    moved = []  # data-movement nodes between the values and the clamp, last first
    tensor = clip.input[0]
    while tensor in producer and producer[tensor].op_type in _MOVES_DATA and uses.get(tensor) == 1:
        moved.append(producer[tensor])
        tensor = producer[tensor].input[0]
    if moved:
        # values -> Clip -> moved[-1] -> ... -> moved[0] -> output
        clamped = f"{tensor}_clamped"
        clip.input[0], clip.output[0] = tensor, clamped
        moved[-1].input[0] = clamped
        moved[0].output[0] = out
        nodes = [n for n in graph.node if n is not clip]
        at = max(i for i, n in enumerate(nodes) if n is moved[-1])
        nodes.insert(at, clip)  # right before the first moved node (its producer comes earlier)
        del graph.node[:]
        graph.node.extend(nodes)
    return {
        "tensor": clip.output[0],
        "range": [float(bounds[0]), float(bounds[1])],
        "moved_above": [n.op_type for n in reversed(moved)],
    }
