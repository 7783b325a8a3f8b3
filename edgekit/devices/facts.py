"""Device facts collected ON the device (runs inside the runner .pyz, and in `--probe`).

Standard library only, and syntax that old device Pythons can still parse, so that a device with
a too-old Python or without numpy still answers with a clear description of itself. It adds to
edgekit.runtimes.measure.device_facts() what that leaves out: the GPU (nvidia-smi, Jetson device
tree), the L4T/JetPack release, the TensorRT tools, and which runtimes are importable.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import socket
import subprocess
import sys

# Python modules edgekit can run artifacts with, by artifact suffix: the one table, shipped with
# the runner (device_main reads it from here).
from edgekit.runtimes.modules import RUNTIME_MODULES  # noqa: F401

# Distribution names to read versions from without importing the module.
_DISTS = {
    "numpy": ("numpy",),
    "ai_edge_litert": ("ai-edge-litert", "ai_edge_litert"),
    "tflite_runtime": ("tflite-runtime", "tflite_runtime"),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt_cu12"),
    "tensorrt_rtx": ("tensorrt-rtx", "tensorrt_rtx"),
}
# Where JetPack puts trtexec (it is not on PATH there).
TRTEXEC_CANDIDATES = ("/usr/src/tensorrt/bin/trtexec", "/usr/local/TensorRT/bin/trtexec")

# L4T release -> JetPack release (NVIDIA's JetPack archive); used only when the nvidia-jetpack
# package version cannot be read.
L4T_TO_JETPACK = {
    "36.4.4": "6.2.1",
    "36.4.3": "6.2",
    "36.4.0": "6.1",
    "36.3.0": "6.0",
    "36.2.0": "6.0 DP",
    "35.6.0": "5.1.4",
    "35.5.0": "5.1.3",
    "35.4.1": "5.1.2",
    "35.3.1": "5.1.1",
    "35.2.1": "5.1",
    "35.1.0": "5.0.2",
}


def _run(argv, timeout=10.0):
    """stdout of a command, or None when it is missing, fails or hangs."""
    try:
        proc = subprocess.run(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=timeout, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.decode("utf-8", "replace").strip()


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace").replace("\x00", "").strip()
    except OSError:
        return None


def module_version(name):
    """Version of an importable module, or None when it is not installed."""
    import importlib.util

    try:
        if importlib.util.find_spec(name) is None:
            return None
    except (ImportError, ValueError):
        return None
    try:
        from importlib import metadata

        for dist in _DISTS.get(name, (name,)):
            try:
                return metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
    except ImportError:
        pass
    try:  # e.g. JetPack's tensorrt from apt has no pip metadata
        mod = __import__(name)
        return str(getattr(mod, "__version__", "unknown"))
    except Exception:  # noqa: BLE001 - a broken install is reported as "unimportable"
        return "unimportable"


def find_trtexec(explicit=None):
    if explicit:
        return explicit if os.path.isfile(explicit) and os.access(explicit, os.X_OK) else None
    found = shutil.which("trtexec")
    if found:
        return found
    for cand in TRTEXEC_CANDIDATES:
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


def parse_l4t(text):
    """'# R36 (release), REVISION: 3.0, ...' -> '36.3.0'."""
    if not text:
        return None
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    if not m:
        return None
    rev = m.group(2)
    if rev.count(".") == 0:
        rev += ".0"
    return m.group(1) + "." + rev


def gpu_facts():
    """GPU model/driver (nvidia-smi), Jetson model (device tree), L4T and JetPack releases."""
    out = {}
    smi = shutil.which("nvidia-smi") and _run(
        ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"]
    )
    if smi:
        first = smi.splitlines()[0]
        name, _, driver = first.partition(",")
        out["gpu_model"] = name.strip()
        out["gpu_driver"] = driver.strip() or None
    model = _read("/proc/device-tree/model")
    if model:
        out["board_model"] = model
        if "jetson" in model.lower() and "gpu_model" not in out:
            out["gpu_model"] = model + " (integrated GPU)"
    l4t = parse_l4t(_read("/etc/nv_tegra_release"))
    if l4t:
        out["l4t"] = l4t
        jetpack = _run(["dpkg-query", "-W", "-f=${Version}", "nvidia-jetpack"])
        if jetpack:
            out["jetpack"] = jetpack.split("+")[0]
            out["jetpack_source"] = "dpkg nvidia-jetpack"
        elif l4t in L4T_TO_JETPACK:
            out["jetpack"] = L4T_TO_JETPACK[l4t]
            out["jetpack_source"] = "L4T " + l4t
    if shutil.which("tegrastats"):
        out["tegrastats"] = True
    return out


def runtimes(trtexec=None, benchmark_model=None):
    """Which of edgekit's runtimes and tools this device has, with versions (None = missing)."""
    mods = {name: module_version(name) for name in _DISTS}
    tools = {"trtexec": find_trtexec(trtexec)}
    if benchmark_model is not None:
        tools["benchmark_model"] = benchmark_model if os.path.isfile(benchmark_model) else None
    return {"modules": mods, "tools": tools}


def cpu_model():
    """CPU model from /proc/cpuinfo (x86 'model name', ARM 'Hardware'/'Model'); works without numpy."""
    text = _read("/proc/cpuinfo") or ""
    m = re.search(r"^(?:model name|Hardware|Model|cpu model)\s*:\s*(\S.*)$", text, re.M)
    return m.group(1).strip() if m else (platform.processor() or None)


def extra_facts():
    """What measure.device_facts() leaves out (merged into the result's `device`)."""
    facts = {"python_executable": sys.executable}
    facts.update(gpu_facts())
    return facts


def probe(trtexec=None):
    """Everything about this device, without needing numpy or a runtime."""
    facts = {
        "hostname": socket.gethostname(),
        "system": platform.system(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    facts.update(extra_facts())
    facts.update(runtimes(trtexec=trtexec))
    return facts
