"""Per-node sensitivity: how much error each quantized node brings on its own, measured.

One probe per node: the model with only that node in int8 and every other node in float,
exported and validated like any artifact; the mean squared error of its output against the float
Keras model on the validation tiles is that node's own quantization error. Ranking by it (rather
than by reverting one node at a time from full int8) also finds chains, e.g. ADD -> MINIMUM ->
RELU at the output, where keeping any single node float changes nothing. The TFLite quantization
debugger's RMSE/scale per node rides along. Probes are candidates (kind "probe") in the cache,
so a rerun measures nothing twice.
"""

from __future__ import annotations


def probe_nodes(base_result: dict) -> list[dict]:
    """The quantized nodes of a mixed-precision base export (its manifest lists them)."""
    mixed = base_result.get("mixed_precision") or {}
    return [n for n in mixed.get("nodes", []) if n.get("op") not in ("QUANTIZE", "DEQUANTIZE")]


def _vs_keras(result: dict | None) -> float | None:
    v = (result or {}).get("validation") or {}
    return v.get("psnr_vs_keras_db")


def rank(base_result: dict, probes: dict[str, dict]) -> list[dict]:
    """Nodes, most sensitive first: [{node, op, layer, rmse_over_scale, psnr_alone_db, mse,
    share}]. probes: node name -> result of the probe where only that node is int8."""
    rows = []
    for n in probe_nodes(base_result):
        got = _vs_keras(probes.get(n["node"]))
        mse = 10 ** (-got / 10) if got is not None else None
        rows.append({**n, "psnr_alone_db": got, "mse": mse})
    total = sum(r["mse"] for r in rows if r["mse"]) or 1.0
    for r in rows:
        r["share"] = round(r["mse"] / total, 4) if r["mse"] is not None else None
    # A failed probe ranks first (unknown is treated as sensitive); ties by the debugger's error.
    rows.sort(
        key=lambda r: (-(r["mse"] if r["mse"] is not None else float("inf")),
                       -(r.get("rmse_over_scale") or 0.0))
    )  # fmt: skip
    return rows
