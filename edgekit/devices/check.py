"""What can run where: this machine (`edgekit targets`) or a target's device (`--check`).

`edgekit targets --check T` connects to the device and lists its Python, runtimes and tools.
"""

from __future__ import annotations

import importlib.util
import os

from .base import executor_for


def check_target(target) -> dict:
    """Connect and list what the device has. {"target", "measured_on", "reachable", "facts",
    "runtimes": {name: version|None}, "tools": {...}, "can_run": {runtime: bool}, "problems": [...]}"""
    ex = executor_for(target)
    facts = ex.probe()
    mods = facts.get("modules", {})
    tools = facts.get("tools", {})
    problems = []
    if not facts.get("python_ok", True):
        problems.append(f"Python {facts.get('python')} is older than 3.10")
    if not mods.get("numpy") and target.connection.kind != "adb":
        problems.append("numpy is missing")
    can = {
        "litert": bool(mods.get("ai_edge_litert") or mods.get("tflite_runtime")),
        "onnxruntime": bool(mods.get("onnxruntime")),
        "tensorrt": bool(mods.get("tensorrt") or tools.get("trtexec")),
    }
    if target.connection.kind == "adb":
        can["litert"] = bool(tools.get("benchmark_model"))
    if not can.get(target.runtime):
        problems.append(f"the target's runtime '{target.runtime}' is not available on the device")
    return {
        "target": target.name,
        "measured_on": ex.measured_on(),
        "reachable": True,
        "facts": {k: v for k, v in facts.items() if k not in ("modules", "tools")},
        "runtimes": mods,
        "tools": tools,
        "can_run": can,
        "problems": problems,
    }


def runs_here(t) -> tuple[bool, str]:
    """Whether this target's artifacts can run here, and why (not)."""
    if not t.is_local:
        return False, f"remote ({t.connection.kind}): run `edgekit targets --check {t.name}`"
    if t.runtime == "litert":
        ok = importlib.util.find_spec("ai_edge_litert") or importlib.util.find_spec(
            "tflite_runtime"
        )
        if not ok:
            return False, "LiteRT missing: pip install ai-edge-litert"
        if t.delegate in ("gpu", "nnapi"):
            return (
                True,
                f"on the host CPU only ({t.delegate} delegate needs the phone); numbers labelled host",
            )
        if t.device and "host" not in t.name:
            return True, "on the host CPU; numbers are labelled host-CPU, not the device's"
        return True, "yes"
    if t.runtime == "onnxruntime":
        ok = importlib.util.find_spec("onnxruntime")
        return (bool(ok), "yes" if ok else "pip install 'edgekit[onnx]'")
    # TensorRT: engines may build here (tensorrt_rtx), running needs an NVIDIA GPU.
    module = t.tensorrt.module if t.tensorrt else "tensorrt"
    has_module = importlib.util.find_spec(module) is not None
    has_gpu = os.path.exists("/dev/nvidia0") or os.path.exists("/dev/nvhost-ctrl")
    build_on = t.tensorrt.build_on if t.tensorrt else "host"
    if build_on == "device":
        return False, "engine must be built on the device; edgekit emits ONNX + the build command"
    if has_module and has_gpu:
        return True, "yes"
    if has_module:
        return False, f"engines build here ({module}); running them needs an NVIDIA GPU"
    return False, f"no {module} module: pip install 'edgekit[tensorrt-rtx]' (or JetPack's tensorrt)"
