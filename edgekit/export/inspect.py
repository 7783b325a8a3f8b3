"""Before any conversion: which layers of a model will leave a target runtime's fast path.

Per layer: the ops it becomes (after the rewrite edgekit would apply, if any), whether the runtime
runs them on its fast path (edgekit.export.fastpath's table), and its share of the model's MACs;
plus a one-line verdict. The TFLite op report after conversion (edgekit.export.tflite_ops) is the
check on these predictions (tests/test_export_rewrites.py compares the two).
"""

from __future__ import annotations

from . import fastpath, rewrites


def _producers(layer) -> list:
    try:
        inbound = layer.inbound_nodes[0].inbound_layers
    except (AttributeError, IndexError):
        return []
    return list(inbound) if isinstance(inbound, (list, tuple)) else [inbound]


def _layer_macs(model, tile) -> dict[str, int]:
    """MACs of every layer at a fixed tile (the model rebuilt at that size)."""
    from ..models.layers import custom_objects
    from ..models.stats import _layer_macs as macs
    from ..tfcompat import import_tf

    _, keras = import_tf()
    shape = model.inputs[0].shape
    try:
        with keras.utils.custom_object_scope(custom_objects()):
            clone = keras.models.clone_model(
                model, input_tensors=keras.Input(batch_shape=(1, tile[0], tile[1], shape[-1]))
            )
    except Exception:  # noqa: BLE001 - a model we cannot rebuild gets no MAC shares
        return {}
    return {layer.name: macs(layer) for layer in rewrites._flat_layers(clone)}


def inspect_model(
    model,
    *,
    fmt: str,
    precision: str,
    rewrite: bool = True,
    tile: tuple[int, int] = (256, 256),
    block_convs: str = "off",
) -> dict:
    """{"runtime", "format", "precision", "rows": [...], "off_ops": [op...], "verdict": str}.
    block_convs: the TFLite option of that name (auto | on | off; int8 only).

    Each row: {"layer", "class", "ops", "fast", "reasons", "rewrite", "mac_share"}."""
    runtime = fastpath.RUNTIME_OF_FORMAT[fmt]
    integer = precision in rewrites.INTEGER_PRECISIONS
    rw_runtime = fastpath.REWRITE_RUNTIME.get(runtime) if (rewrite and integer) else None
    if fmt == "tensorrt":
        rw_runtime = None  # the TensorRT exporter converts the model as it is
    enable = ()
    blocks_on, blocks_why = fastpath.block_convs_on(block_convs)
    if fmt == "tflite" and precision == "int8" and blocks_on:
        enable = ("block_conv",)
    if fmt == "onnx" and precision == "int8":
        enable = ("pad_channels",)  # the ORT CPU recipe (asymmetric activations, the default)
    macs = _layer_macs(model, tile)
    total = sum(macs.values()) or 1
    rows, off_ops = [], []
    for layer in rewrites._flat_layers(model):
        cls = type(layer).__name__
        applied = None
        shown = layer
        if rw_runtime:
            found = rewrites.match(layer, rw_runtime, enable)
            if found is not None and found[1] is not None and not isinstance(found[1], str):
                applied, shown = found[0].name, found[1]
        ops = fastpath.layer_ops(shown, fmt)
        if (
            cls == "ReLU"
            and applied is None
            and getattr(layer, "max_value", None) is None
            and any(type(p).__name__ in fastpath.FUSES_ACTIVATION[fmt] for p in _producers(layer))
        ):
            ops = ()  # fused into the op before it
        reasons = []
        if ops is None:
            ops = ()
            reasons.append(f"layer class {cls} is not in edgekit's table")
        for op in ops:
            why = fastpath.op_verdict(op, runtime, precision)
            if why:
                reasons.append(f"{op}: {why}")
                off_ops.append(op)
        n_in = len(layer.input_shape) if isinstance(layer.input_shape, list) else 1
        if (
            runtime == "xnnpack"
            and "CONCATENATION" in ops
            and applied is None
            and n_in > rewrites.MAX_CONCAT_INPUTS
        ):
            reasons.append(
                f"CONCATENATION: {n_in} inputs; XNNPACK takes at most {rewrites.MAX_CONCAT_INPUTS}"
            )
            off_ops.append("CONCATENATION")
        rows.append(
            {
                "layer": layer.name,
                "class": cls,
                "ops": list(ops),
                "fast": not reasons,
                "reasons": reasons,
                "rewrite": applied,
                "mac_share": macs.get(layer.name, 0) / total,
            }
        )
    slow = [r for r in rows if not r["fast"]]
    share = sum(r["mac_share"] for r in slow)
    where = f"{runtime} {precision}"
    if slow:
        kinds: dict[str, int] = {}
        for r in slow:
            kinds[r["class"]] = kinds.get(r["class"], 0) + 1
        names = ", ".join(f"{k} x{n}" if n > 1 else k for k, n in kinds.items())
        verdict = f"{len(slow)} layer(s) ({100 * share:.0f} % of MACs) leave the {where} fast path: {names}"
    else:
        verdict = f"all {len(rows)} layers stay on the {where} fast path"
    n_rw = sum(1 for r in rows if r["rewrite"])
    if n_rw:
        verdict += f" ({n_rw} layer(s) rewritten; --no-rewrite to see the model as it is)"
    if fmt == "tflite" and precision == "int8" and block_convs != "off":
        verdict += f"; {blocks_why}"
    return {
        "runtime": runtime,
        "format": fmt,
        "precision": precision,
        "rows": rows,
        "off_ops": sorted(set(off_ops)),
        "verdict": verdict,
    }
