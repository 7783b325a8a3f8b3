"""TFLite's `benchmark_model` tool: its command line and a parser for its output.

Output format (tensorflow/lite/tools/benchmark, benchmark_model.cc / benchmark_tflite_model.cc),
lines optionally prefixed by `INFO: ` (newer builds) or logcat-style `I tflite  : `:

    The input model file size (MB): 0.559
    Initialized session in 12.3ms.
    Running benchmark for at least 1 iterations and at least 0.5 seconds ...
    count=9 first=87112 curr=51629 min=51629 max=87112 avg=58147.4 std=11478 [p5=.. median=.. p95=..]
    Running benchmark for at least 50 iterations and at least 1 seconds ...
    count=50 first=52162 curr=49785 min=49088 max=686105 avg=63743.2 std=60716 [p5=.. median=.. p95=..]
    Inference timings in us: Init: 119515, First inference: 87112, Warmup (avg): 58147.4, Inference (avg): 63743.2
    Memory footprint delta from the start of the tool (MB): init=55.4961 overall=55.4961
    Overall peak memory footprint (MB) via periodic monitoring: 61.2
    (older builds: "Peak memory footprint (MB): init=4.92969 overall=138.809")

All timings in the output are microseconds (avg may be written 2.95034e+06); the parser returns
milliseconds. The tool reports p5/median/p95 (newer builds) but no p90/p99: those stay None
rather than being made up.
"""

from __future__ import annotations

import re

from .base import STAND_IN_MARK

_NUM = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_PREFIX = re.compile(
    r"^\s*(?:INFO:\s*|[IWE] tflite\s*:\s*|\d+-\d+ [\d:.]+\s+\d+\s+\d+ [IWE] tflite\s*:\s*)"
)
_STATS = re.compile(rf"count=(\d+)((?:\s+\w+={_NUM})*)")
_TIMINGS = re.compile(
    rf"Inference timings in us: Init: ({_NUM}), First inference: ({_NUM}), "
    rf"Warmup \(avg\): ({_NUM}), Inference \(avg\): ({_NUM})"
)
_DELTA = re.compile(
    rf"Memory footprint delta from the start of the tool \(MB\): init=({_NUM}) overall=({_NUM})"
)
_PEAK_OLD = re.compile(rf"Peak memory footprint \(MB\): init=({_NUM}) overall=({_NUM})")
_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: ({_NUM})")
_SIZE = re.compile(rf"The input model file size \(MB\): ({_NUM})")
_DELEGATED = re.compile(r"Replacing (\d+) out of (\d+) node\(s\) with delegate \((\w+)\)")


class BenchmarkModelParseError(ValueError):
    pass


def _stats_line(body: str) -> dict:
    out = {}
    for key, val in re.findall(rf"(\w+)=({_NUM})", body):
        out[key] = float(val)
    return out


def _ms(stats: dict) -> dict:
    """count/first/min/max/avg/std/p5/median/p95 in us -> edgekit's latency dict in ms."""

    def get(k):
        return stats[k] / 1000.0 if k in stats else None

    return {
        "n": int(stats["count"]),
        "mean": get("avg"),
        "p50": get("median"),
        "p90": None,
        "p95": get("p95"),
        "p99": None,
        "p5": get("p5"),
        "min": get("min"),
        "max": get("max"),
        "std": get("std"),
        "first": get("first"),
    }


def parse_benchmark_model(text: str) -> dict:
    """Parse benchmark_model's stdout+stderr. Raises BenchmarkModelParseError when the summary
    ("Inference timings in us: ...") is missing, i.e. the run failed."""
    lines = [_PREFIX.sub("", ln.rstrip("\r")) for ln in text.splitlines()]
    stats = []
    for ln in lines:
        m = _STATS.search(ln)
        if m and ln.lstrip().startswith("count="):
            d = _stats_line(ln)
            d["count"] = int(m.group(1))
            stats.append(d)
    summary = None
    for ln in lines:
        m = _TIMINGS.search(ln)
        if m:
            summary = [float(v) / 1000.0 for v in m.groups()]
    if summary is None:
        errors = [ln.strip() for ln in lines if re.search(r"ERROR|Error|error:|Failed|failed", ln)]
        last = next((ln for ln in reversed(lines) if ln.strip()), "no output")
        why = "; ".join(e.removeprefix("ERROR: ") for e in errors[:2]) if errors else last.strip()
        raise BenchmarkModelParseError(f"benchmark_model printed no timing summary ({why})")
    timed = [s for s in stats if "avg" in s]
    out: dict = {
        "init_ms": summary[0],
        "first_inference_ms": summary[1],
        "warmup_avg_ms": summary[2],
        "inference_avg_ms": summary[3],
        "latency_ms": _ms(timed[-1]) if timed else {"n": None, "mean": summary[3]},
        "warmup_latency_ms": _ms(timed[0]) if len(timed) > 1 else None,
    }
    out["latency_ms"]["mean"] = out["latency_ms"]["mean"] or summary[3]
    mem: dict = {}
    for ln in lines:
        if m := _DELTA.search(ln):
            mem["delta_init_mb"], mem["delta_overall_mb"] = float(m.group(1)), float(m.group(2))
        elif m := _PEAK_OLD.search(ln):
            mem["peak_init_mb"], mem["peak_overall_mb"] = float(m.group(1)), float(m.group(2))
        if m := _PEAK.search(ln):
            mem["peak_mb"] = float(m.group(1))
        if m := _SIZE.search(ln):
            out["model_size_mb"] = float(m.group(1))
        if m := _DELEGATED.search(ln):
            out["delegated"] = {
                "delegate": m.group(3),
                "nodes": int(m.group(1)),
                "of": int(m.group(2)),
            }
        if "will not be executed by the delegate" in ln or "Failed to apply" in ln:
            out.setdefault("delegate_warnings", []).append(ln.strip())
    out["memory_mb"] = mem
    out["stand_in"] = any(STAND_IN_MARK in ln for ln in lines)  # a test stand-in's replay
    return out


_DELEGATE_FLAGS = {
    "xnnpack": ["--use_xnnpack=true"],
    "none": ["--use_xnnpack=false"],
    "cpu": ["--use_xnnpack=false"],
    "gpu": ["--use_gpu=true"],
    "nnapi": ["--use_nnapi=true"],
}


def benchmark_args(
    graph: str, *, threads: int, delegate: str, warmup: int, repeats: int
) -> list[str]:
    """Flags for one run: fixed run counts (min_secs=0 so `count` equals `repeats`)."""
    if delegate not in _DELEGATE_FLAGS:
        raise ValueError(f"delegate '{delegate}': expected one of {', '.join(_DELEGATE_FLAGS)}")
    return [
        f"--graph={graph}",
        f"--num_threads={int(threads)}",
        *_DELEGATE_FLAGS[delegate],
        f"--warmup_runs={int(warmup)}",
        "--warmup_min_secs=0",
        f"--num_runs={int(repeats)}",
        "--min_secs=0",
        "--report_peak_memory_footprint=true",
    ]
