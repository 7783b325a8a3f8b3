"""Look inside a .tflite file: its ops, which leave the integer path, which XNNPACK does not take.

(XNNPACK is LiteRT's default CPU delegate.)

Used for the manifest's `ops` histogram and its `int8_report`. For an int8/int16x8 model an
op is reported when
  - it computes in float (float activations in and out),
  - it is hybrid (float activations with int8 weights: dynamic-range kernels),
  - it is a QUANTIZE/DEQUANTIZE in the middle of the graph (a float island around it), or a
    requantization between two integer types,
  - XNNPACK did not take it (it then runs on LiteRT's built-in kernels, found by loading the
    model with the default delegate and walking back from each delegate partition's outputs),
  - it is known to leave XNNPACK's fastest int8 path even when delegated (PRELU,
    TRANSPOSE_CONV: measured on our machine, see USERS.md).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

# Ops that XNNPACK takes in int8 but runs far slower than the conv fast path. Measured: a residual
# U-Net with PReLU and a transposed conv ran int8 only 1.5x faster than fp32 vs 4.2x for DnCNN.
SLOW_INT8_OPS = {
    "PRELU": "int8 PReLU leaves XNNPACK's fastest path (measured: U-Net with PReLU int8 only 1.5x fp32); "
    "use ReLU or LeakyReLU(alpha) if the model allows",
    "TRANSPOSE_CONV": "int8 TRANSPOSE_CONV is much slower than CONV_2D in XNNPACK; resize + conv or "
    "DEPTH_TO_SPACE upsampling stays on the fast path",
}
_FLOAT = ("float32", "float16", "float64")
_INT = ("int8", "uint8", "int16")


def _dtype(t) -> str:
    return np.dtype(t).name


def _load(path: str | Path, with_default_delegate: bool, threads: int = 1):
    from ..runtimes.litert import import_litert

    mod = import_litert()[0]
    kwargs = {"model_path": str(path), "num_threads": threads}
    if not with_default_delegate:
        kwargs["experimental_op_resolver_type"] = (
            mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
    interp = mod.Interpreter(**kwargs)
    interp.allocate_tensors()
    return interp


def _not_delegated(path: str | Path, n_nodes: int) -> set[int] | None:
    """Indices of original nodes that XNNPACK left to the built-in kernels (None if unknown)."""
    try:
        ops = _load(path, with_default_delegate=True)._get_ops_details()
    except Exception:  # noqa: BLE001 - inspection must never break an export
        return None
    original = ops[:n_nodes]
    partitions = [op for op in ops[n_nodes:] if op["op_name"] == "DELEGATE"]
    producer = {}
    for op in original:
        for t in op["outputs"]:
            producer[int(t)] = op["index"]
    delegated: set[int] = set()
    for part in partitions:
        boundary = {int(t) for t in part["inputs"]}
        stack = [int(t) for t in part["outputs"]]
        seen: set[int] = set()
        while stack:
            t = stack.pop()
            if t in seen or t in boundary or t not in producer:
                continue
            seen.add(t)
            node = producer[t]
            delegated.add(node)
            stack.extend(int(i) for i in original[node]["inputs"] if int(i) >= 0)
    return set(range(n_nodes)) - delegated


def inspect_tflite(path: str | Path, precision: str | None = None) -> dict:
    """Op histogram and integer-path report for a .tflite file.

    Returns {"histogram": {op: count}, "n_ops": int, "xnnpack_delegated": bool|None,
             "not_delegated": [...], "int8_report": {"on_integer_path": bool, "ops": [...]}}
    where every reported op is {"op", "index", "kind", "reason"}. The int8 report is filled only for
    int8/int16x8 precision (for float precisions float ops are expected).
    """
    interp = _load(path, with_default_delegate=False)
    ops = interp._get_ops_details()
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    model_inputs = {int(d["index"]) for d in interp.get_input_details()}
    model_outputs = {int(d["index"]) for d in interp.get_output_details()}
    produced = {int(o) for op in ops for o in op["outputs"]}
    # Weights and biases are constants: no op produces them and they are not model inputs.
    used = {int(i) for op in ops for i in op["inputs"] if int(i) >= 0}
    constant = used - produced - model_inputs
    hist = Counter(op["op_name"] for op in ops)
    not_deleg = _not_delegated(path, len(ops))
    report: list[dict] = []
    act_types: dict[int, set[str]] = {}
    quantized = precision in ("int8", "int16x8")

    for op in ops:
        name, idx = op["op_name"], op["index"]
        ins = [int(i) for i in op["inputs"] if int(i) >= 0]
        outs = [int(o) for o in op["outputs"]]
        in_types = _types(ins, op.get("operand_types"), tensors)
        out_t = list(_types(outs, op.get("result_types"), tensors).values())
        act_in = [d for i, d in in_types.items() if i not in constant]
        w_in = [d for i, d in in_types.items() if i in constant]
        act_types[idx] = set(act_in + out_t)
        if not quantized:
            continue
        if name == "QUANTIZE":
            at_input = all(i in model_inputs for i in ins)
            src, dst = (act_in or ["?"])[0], (out_t or ["?"])[0]
            if src in _INT and dst in _INT:
                report.append(
                    _entry(
                        name,
                        idx,
                        "requant",
                        f"requantizes {src} -> {dst} (extra pass over the tensor)",
                    )
                )
            elif not at_input:
                report.append(
                    _entry(
                        name,
                        idx,
                        "float_island",
                        "float -> int in the middle of the graph: a float op runs before it",
                    )
                )
            continue
        if name == "DEQUANTIZE":
            if any(i in constant for i in ins):
                continue  # fp16/int8 weights dequantized once; not an activation path
            if not all(o in model_outputs for o in outs):
                report.append(
                    _entry(
                        name,
                        idx,
                        "float_island",
                        "int -> float in the middle of the graph: the next op runs in float",
                    )
                )
            continue
        float_act = any(d in _FLOAT for d in act_in + out_t)
        int_w = any(d in _INT for d in w_in)
        if float_act and int_w:
            report.append(
                _entry(
                    name,
                    idx,
                    "hybrid",
                    "float activations with int8 weights (dynamic-range kernel)",
                )
            )
        elif float_act:
            report.append(
                _entry(
                    name,
                    idx,
                    "float",
                    f"computes in float ({', '.join(sorted(set(act_in + out_t)))}): no integer kernel was used",
                )
            )
        if name in SLOW_INT8_OPS:
            report.append(_entry(name, idx, "slow_path", SLOW_INT8_OPS[name]))

    not_delegated = []
    if not_deleg is not None:
        for i in sorted(not_deleg):
            reason = "XNNPACK did not take this op: it runs on LiteRT's built-in kernels"
            if "int16" in act_types.get(i, ()):
                reason = (
                    "XNNPACK has no int16-activation kernels: this op runs on LiteRT's built-in "
                    "kernels (slow on CPU; int16x8 is for accuracy or NPUs that support 16x8)"
                )
            not_delegated.append(_entry(ops[i]["op_name"], i, "not_delegated", reason))
    result = {
        "histogram": dict(sorted(hist.items())),
        "n_ops": len(ops),
        "xnnpack_delegated": None if not_deleg is None else len(not_deleg) < len(ops),
        "not_delegated": not_delegated,
    }
    if quantized:
        off_xnnpack = {e["index"] for e in not_delegated}
        # an op XNNPACK does not take at all is reported as such, not as "slow on XNNPACK"
        report = [e for e in report if not (e["kind"] == "slow_path" and e["index"] in off_xnnpack)]
        ops_report = report + not_delegated
        result["int8_report"] = {
            "on_integer_path": not any(
                e["kind"] in ("float", "hybrid", "float_island") for e in ops_report
            ),
            "ops": ops_report,
        }
    return result


def _types(ids: list[int], reported, tensors: dict) -> dict[int, str]:
    """dtype name per tensor id: from the tensor table, else from the op's own type list."""
    out = {}
    for pos, i in enumerate(ids):
        if i in tensors:
            out[i] = _dtype(tensors[i]["dtype"])
        elif reported is not None and pos < len(reported) and len(reported) == len(ids):
            out[i] = _dtype(reported[pos])
    return out


def _entry(op: str, index: int, kind: str, reason: str) -> dict:
    return {"op": op, "index": int(index), "kind": kind, "reason": reason}


def summarize(report: dict) -> str:
    """One line for the terminal, e.g. 'int8 path: 2 ops off it (NEG float, MUL not delegated)'."""
    ops = report.get("int8_report", {}).get("ops", [])
    if not ops:
        return (
            "all ops on the integer path" if "int8_report" in report else f"{report['n_ops']} ops"
        )
    parts = Counter(f"{e['op']} {e['kind']}" for e in ops)
    return f"{len(ops)} op(s) off the fast integer path: " + ", ".join(
        f"{k}" + (f" x{n}" if n > 1 else "") for k, n in parts.items()
    )
