"""TensorRT on the device: trtexec's output parser and the on-device engine build.

trtexec output (TensorRT 8.6/10.x, `samples/trtexec`, lines prefixed `[MM/DD/YYYY-HH:MM:SS] [I] `):

    &&&& RUNNING TensorRT.trtexec [TensorRT v100300] [b17] # trtexec --onnx=... --saveEngine=...
    [I] TensorRT version: 10.3.0
    [I] Selected Device: Orin
    [I] Compute Capability: 8.7
    [I] === Performance summary ===
    [I] Throughput: 476.66 qps
    [I] Latency: min = 2.05 ms, max = 2.59 ms, mean = 2.09 ms, median = 2.08 ms,
        percentile(90%) = 2.1 ms, percentile(95%) = 2.2 ms, percentile(99%) = 2.58 ms
    [I] GPU Compute Time: min = ..., median = ..., percentile(99%) = ... ms
    &&&& PASSED TensorRT.trtexec [TensorRT v100300] # trtexec ...

(TensorRT 8.x prints only percentile(99%) by default; missing percentiles stay None.)

Engines are built on the device because they are tied to its GPU and TensorRT version: the ONNX
goes to a fresh remote dir, `trtexec` (or, without it, the device's `tensorrt` module via the
runner .pyz) builds it there, and the engine comes back next to the ONNX, written atomically,
with a build record (`<engine>.json`: TensorRT/JetPack/L4T versions, device, command, timings).
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import tempfile
from pathlib import Path

from .. import atomic
from ..runtimes.manifest import manifest_path, read_manifest
from .base import STAND_IN_MARK, DeviceError, last_line

_NUM = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_STAT_KEYS = {"min": "min", "max": "max", "mean": "mean", "median": "p50"}


def _stat_line(text: str, label: str) -> dict | None:
    # The line starts (after the "[date] [I] " prefix) with the label, so "Latency:" does not
    # match "H2D Latency:" or "End-to-End Host Latency:".
    m = re.search(rf"(?:^|\]\s)\s*{re.escape(label)}:\s*(min = .*)$", text, re.M)
    if not m:
        return None
    out: dict = {
        "min": None,
        "max": None,
        "mean": None,
        "p50": None,
        "p90": None,
        "p95": None,
        "p99": None,
    }
    for key, val in re.findall(
        rf"(min|max|mean|median|percentile\(\d+(?:\.\d+)?%\))\s*=\s*({_NUM})\s*ms", m.group(1)
    ):
        if key.startswith("percentile"):
            pct = key[len("percentile(") : -2]
            out[f"p{pct.replace('.', '_')}"] = float(val)
        else:
            out[_STAT_KEYS[key]] = float(val)
    return out


def _version_from_banner(n: int) -> str:
    # [TensorRT v100300] -> 10.3.0 (10.x: MMmmpp); [TensorRT v8601] -> 8.6.1 (8.x: Mmpp)
    if n >= 10000:
        return f"{n // 10000}.{(n // 100) % 100}.{n % 100}"
    return f"{n // 1000}.{(n // 100) % 10}.{n % 100}"


def parse_trtexec(text: str) -> dict:
    out: dict = {
        "tensorrt_version": None,
        "latency_ms": _stat_line(text, "Latency"),
        "gpu_compute_ms": _stat_line(text, "GPU Compute Time"),
        "throughput_qps": None,
        "passed": None,
    }
    if m := re.search(r"TensorRT version:\s*([\d.]+)", text):
        out["tensorrt_version"] = m.group(1)
    elif m := re.search(r"\[TensorRT v(\d+)\]", text):
        out["tensorrt_version"] = _version_from_banner(int(m.group(1)))
    if m := re.search(rf"Throughput:\s*({_NUM})\s*qps", text):
        out["throughput_qps"] = float(m.group(1))
    if m := re.search(r"Selected Device:\s*(.+)$", text, re.M):
        out["gpu"] = m.group(1).strip()
    if m := re.search(r"Compute Capability:\s*([\d.]+)", text):
        out["compute_capability"] = m.group(1)
    out["stand_in"] = STAND_IN_MARK in text  # a test stand-in's replay, not a measurement
    if "&&&& PASSED" in text:
        out["passed"] = True
    elif "&&&& FAILED" in text:
        out["passed"] = False
    errors = [ln.split("] [E] ", 1)[-1].strip() for ln in text.splitlines() if "[E]" in ln]
    if errors:
        out["errors"] = errors[-5:]
    return out


# ---------------------------------------------------------------- building on the device


def _dims(shape) -> str:
    return "x".join(str(int(v)) for v in shape)


def build_flags(record: dict) -> list[str]:
    """Precision and profile flags from the exporter's device build record (or a plain one).

    The exporter makes the precision part of the ONNX graph (fp16 weights, Q/DQ int8), so the
    engine is built `--stronglyTyped` (TensorRT 10); a record with strongly_typed False falls back
    to the builder flags (--fp16; --int8 --fp16 for a Q/DQ graph on TensorRT 8.x).
    """
    flags = []
    if record.get("strongly_typed", True):
        flags.append("--stronglyTyped")
    else:
        prec = record.get("precision", "fp32")
        flags += {"fp16": ["--fp16"], "int8": ["--int8", "--fp16"]}.get(prec, [])
    prof = record.get("profile")
    if prof and record.get("dynamic_shapes"):
        name = prof["input"]
        flags += [
            f"--minShapes={name}:{_dims(prof['min'])}",
            f"--optShapes={name}:{_dims(prof['opt'])}",
            f"--maxShapes={name}:{_dims(prof['max'])}",
        ]
    flags.append(f"--memPoolSize=workspace:{int(record.get('workspace_mb', 1024))}M")
    return flags


def trtexec_argv(trtexec: str, record: dict, *, warmup_ms: int, iterations: int) -> list[str]:
    return [
        trtexec,
        "--onnx=model.onnx",
        "--saveEngine=model.engine",
        *build_flags(record),
        "--timingCacheFile=timing.cache",
        f"--warmUp={int(warmup_ms)}",
        f"--iterations={int(iterations)}",
        "--duration=0",
        "--avgRuns=1",
    ]


def _record_from_manifest(onnx: Path) -> dict:
    manifest = read_manifest(onnx) or {}
    rec = dict(manifest.get("tensorrt_build") or {})
    if not rec:
        rec = {
            "precision": manifest.get("precision", "fp32"),
            "strongly_typed": True,
            "workspace_mb": 1024,
        }
    return rec


def engine_path_for(onnx: Path, record: dict, device: str) -> Path:
    """Where the engine built on `device` is kept: the exporter's engine name, else <onnx>.<device>.engine."""
    if record.get("engine"):
        return onnx.with_name(record["engine"])
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", device)
    return onnx.with_name(f"{onnx.stem}.{safe}.engine")


def build_engine_on_device(
    executor,
    onnx: str | Path,
    *,
    out: str | Path | None = None,
    warmup_ms: int = 200,
    iterations: int = 50,
    record: dict | None = None,
    stage=None,
) -> dict:
    """Build a TensorRT engine from `onnx` ON the ssh device, bring it back next to the ONNX
    (atomically) with `<engine>.json`, and return that build record (including trtexec's timings
    when trtexec was used)."""
    from .package import RUNNER_NAME, build_runner
    from .progress import stages

    onnx = Path(onnx)
    if not onnx.is_file():
        raise DeviceError(
            f"{onnx}: ONNX file not found; export it with `edgekit export ... --format onnx`",
            "config",
        )
    rec = dict(record or _record_from_manifest(onnx))
    out = Path(out) if out else engine_path_for(onnx, rec, executor.host)
    cache_local = onnx.with_name(f"timing.{re.sub(r'[^A-Za-z0-9_.-]+', '-', executor.host)}.cache")
    facts = executor.facts()
    trtexec = (facts.get("tools") or {}).get("trtexec")
    has_module = bool((facts.get("modules") or {}).get("tensorrt"))
    if not trtexec and not has_module:
        raise DeviceError(
            f"{executor.where}: neither trtexec nor the tensorrt Python module is on the device; on a Jetson "
            "install JetPack's TensorRT (`sudo apt install nvidia-jetpack`, trtexec is then "
            "/usr/src/tensorrt/bin/trtexec) or set connection.trtexec to its path",
            "runtime-missing",
        )
    with tempfile.TemporaryDirectory(prefix="edgekit-trt-") as tmp:
        up, down = Path(tmp) / "up", Path(tmp) / "down"
        up.mkdir()
        down.mkdir()
        (up / "model.onnx").write_bytes(onnx.read_bytes())
        files = [up / "model.onnx"]
        if cache_local.is_file():
            (up / "timing.cache").write_bytes(cache_local.read_bytes())
            files.append(up / "timing.cache")
        if trtexec:
            argv = trtexec_argv(trtexec, rec, warmup_ms=warmup_ms, iterations=iterations)
            builder = "trtexec"
        else:
            files.append(build_runner(up / RUNNER_NAME))
            argv = None
            builder = "tensorrt-python"
        with (
            stages(executor.label) if stage is None else contextlib.nullcontext(stage) as say,
            executor.workdir() as wd,
        ):
            say(f"building a TensorRT engine from {onnx.name} on the device ({builder})")
            executor.put(files, wd)
            if argv:
                cmd = f"cd -- {shlex.quote(wd)} && {shlex.join(argv)}"
                res = executor.run(cmd, what="building the engine")
            else:
                args = [
                    "build-engine",
                    "model.onnx",
                    "model.engine",
                    "--precision",
                    rec.get("precision", "fp32"),
                    "--workspace-mb",
                    str(int(rec.get("workspace_mb", 1024))),
                    "--timing-cache",
                    "timing.cache",
                ]
                if rec.get("strongly_typed", True):
                    args.append("--strongly-typed")
                prof = rec.get("profile")
                if prof and rec.get("dynamic_shapes"):
                    args += [
                        "--input",
                        prof["input"],
                        "--shapes",
                        _dims(prof["min"]),
                        _dims(prof["opt"]),
                        _dims(prof["max"]),
                    ]
                res = executor.run(
                    executor.python_command(wd, args, executor.timeout_s),
                    what="building the engine",
                )
            log = res.stdout + res.stderr
            if res.rc != 0:
                if argv is None:
                    raise executor.device_failure(res, "building the engine")
                parsed = parse_trtexec(log)
                why = "; ".join(parsed.get("errors", [])[-2:]) or last_line(log)
                raise DeviceError(
                    f"{executor.where}: trtexec could not build an engine from {onnx.name} ({why})",
                    "engine-build",
                )
            executor.get([f"{wd}/model.engine"], down)
            try:  # the timing cache is a speed-up for the next build, not a requirement
                executor.get([f"{wd}/timing.cache"], down)
            except DeviceError:
                pass
        parsed = parse_trtexec(log) if argv else {}
        if not argv:
            lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
            parsed = json.loads(lines[-1]) if lines else {}
            parsed["tensorrt_version"] = parsed.pop("tensorrt", None)
        # a stand-in trtexec (tests) built nothing real and measured nothing: say so in the labels
        where = executor.label + (" (stand-in)" if STAND_IN_MARK in log else "")
        record_out = {
            **rec,
            "engine": out.name,
            "engine_built": True,
            "built_on": where,
            "builder": builder,
            "build_command": shlex.join(argv) if argv else None,
            "tensorrt_version": parsed.get("tensorrt_version")
            or (facts.get("modules") or {}).get("tensorrt"),
            "jetpack": facts.get("jetpack"),
            "l4t": facts.get("l4t"),
            "gpu": facts.get("gpu_model") or parsed.get("gpu"),
            "compute_capability": parsed.get("compute_capability"),
            "device": {
                k: facts.get(k)
                for k in ("hostname", "kernel", "machine", "board_model")
                if facts.get(k)
            },
            "trtexec": {
                k: parsed.get(k) for k in ("latency_ms", "gpu_compute_ms", "throughput_qps")
            }
            if argv
            else None,
            "measured_on": where,
        }
        if (down / "timing.cache").is_file():
            atomic.write_bytes(cache_local, (down / "timing.cache").read_bytes())
        # the engine and its manifest appear together or not at all
        mp = manifest_path(out)
        with atomic.atomic_paths(out, mp) as (tmp, tmp_manifest):
            tmp.write_bytes((down / "model.engine").read_bytes())
            tmp_manifest.write_text(atomic.json_text(record_out, mp))
    return record_out
