"""`edgekit targets --check`: connect to a target's device and list what it can run."""

from __future__ import annotations

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
