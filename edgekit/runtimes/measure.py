"""The measurement core: load artifacts, time them interleaved, return timings and outputs.

numpy plus the runtime only, and imports nothing outside this package, so the same code runs on
the host, or on a phone/board after this package is copied there:

    python -m edgekit.runtimes.measure JOB.json OUT.json     # OUT.npz holds the outputs
    python -m edgekit.runtimes.measure --memory ARTIFACT --shape 1,256,256,3 [--threads N]

Timing protocol (why: the same model measured 14.7 ms and 22.7 ms minutes apart on a shared
machine, so variants are only comparable when machine noise hits them alike):

1. load every artifact (load time recorded);
2. `warmup` untimed rounds, interleaved like the timed ones;
3. `repeats` rounds; each round runs every artifact once, in job order (A B C A B C ...), on
   input `r % N` (the inputs are real degraded tiles); each run is timed with perf_counter;
4. every artifact then runs once on every input (untimed) and the outputs are returned so the
   host can score them (PSNR/SSIM) and blend tiles.

Percentiles use numpy's linear interpolation over the `n` samples; with n = 20, p99 lies
between the two slowest runs, so read it with `n` in mind.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .base import RunnerError, runner_for
from .modules import IMPORT_FOR_BASELINE, RUNTIME_MODULES

MEASURE_SCHEMA = "edgekit.measure/1"

_DISTRIBUTIONS = (
    "numpy",
    "ai-edge-litert",
    "tflite-runtime",
    "onnxruntime",
    "onnxruntime-gpu",
    "tensorrt",
    "tensorrt-rtx-cu12",
    "tensorrt-cu12",
)

Progress = Callable[[str, int, int], None]


def latency_stats(samples_ms: list[float] | np.ndarray) -> dict:
    """{mean, p50, p90, p99, min, max, std, n} of timings in milliseconds."""
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        raise ValueError("latency_stats: no samples")
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {
        "mean": float(a.mean()),
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "min": float(a.min()),
        "max": float(a.max()),
        "std": float(a.std()),
        "n": int(a.size),
    }


def _cpu_model() -> str | None:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return platform.processor() or None
    for key in ("model name", "Hardware", "Model", "Processor", "cpu model"):
        for line in text.splitlines():
            k, sep, v = line.partition(":")
            if sep and k.strip() == key and v.strip():
                return v.strip()
    return platform.processor() or None


def _mem_total_mb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _versions() -> dict:
    from importlib import metadata

    out = {}
    for dist in _DISTRIBUTIONS:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def device_facts() -> dict:
    """Where this code is running: enough to tell a host from a phone or a Jetson."""
    load = None
    if hasattr(os, "getloadavg"):
        try:
            load = [round(v, 2) for v in os.getloadavg()]
        except OSError:
            pass
    return {
        "hostname": socket.gethostname(),
        "system": platform.system(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "mem_total_mb": _mem_total_mb(),
        "load_avg": load,
        "python": platform.python_version(),
        "versions": _versions(),
    }


def _check_jobs(jobs: list[dict], inputs: np.ndarray) -> None:
    if not jobs:
        raise RunnerError("measure: no artifacts given")
    ids = [j.get("id") for j in jobs]
    if len(set(ids)) != len(ids) or any(i is None for i in ids):
        raise RunnerError(f"measure: every job needs a unique 'id', got {ids}")
    for j in jobs:
        if not os.path.isfile(j.get("path", "")):
            raise RunnerError(f"{j.get('path')}: artifact file not found")
    if inputs.ndim != 4 or inputs.shape[0] < 1:
        raise RunnerError(
            f"measure: inputs must be a non-empty (N, H, W, C) array, got {inputs.shape}"
        )


def _timed_rounds(jobs, runners, batches, repeats, samples, report) -> None:
    """`repeats` rounds; each runs every artifact once, in job order, on input r % N."""
    for r in range(repeats):
        x = batches[r % len(batches)]
        for job in jobs:
            runner = runners[job["id"]]
            t0 = time.perf_counter()
            runner.run(x)
            samples[job["id"]].append((time.perf_counter() - t0) * 1e3)
        report("timing", r + 1, repeats)


def measure(
    jobs: list[dict],
    inputs: np.ndarray,
    *,
    threads: int,
    delegate: str,
    warmup: int,
    repeats: int,
    progress: Progress | None = None,
    outputs: bool = True,
) -> dict:
    """Time every artifact interleaved and run it on every input.

    jobs: [{"id": str, "path": str, "manifest": dict}]; inputs: float32 (N, H, W, C) tiles.
    Returns {"schema", "device", "settings", "results": {id: {...}}, "outputs": {id: ndarray}};
    everything but "outputs" is JSON-serialisable. progress(stage, done, total) is called as
    work advances (stage: "load", "warmup", "timing", "outputs"). outputs=False skips the
    output runs (the host streams full images itself) and returns "outputs": {}.
    """
    inputs = np.ascontiguousarray(inputs, dtype=np.float32)
    _check_jobs(jobs, inputs)
    if repeats < 1 or warmup < 0:
        raise RunnerError(f"measure: repeats must be >= 1 and warmup >= 0, got {repeats}, {warmup}")
    report = progress or (lambda stage, done, total: None)
    n_inputs = inputs.shape[0]
    batches = [inputs[i : i + 1] for i in range(n_inputs)]

    runners, results = {}, {}
    for k, job in enumerate(jobs):
        t0 = time.perf_counter()
        runner = runner_for(
            job["path"], threads=threads, delegate=delegate, manifest=job.get("manifest")
        )
        load_ms = (time.perf_counter() - t0) * 1e3
        runners[job["id"]] = runner
        results[job["id"]] = {
            "path": job["path"],
            "runtime": runner.runtime,
            "versions": runner.versions(),
            "delegate_used": getattr(runner, "delegate_used", delegate),
            "load_ms": load_ms,
        }
        report("load", k + 1, len(jobs))

    # Warm-up rounds are interleaved too, so every artifact is equally "warm" when timing starts.
    total, done = warmup * len(jobs), 0
    for w in range(warmup):
        for job in jobs:
            t0 = time.perf_counter()
            runners[job["id"]].run(batches[w % n_inputs])
            if w == 0:
                results[job["id"]]["first_run_ms"] = (time.perf_counter() - t0) * 1e3
            done += 1
            report("warmup", done, total)
    for job in jobs:
        results[job["id"]].setdefault("first_run_ms", None)

    samples: dict[str, list[float]] = {j["id"]: [] for j in jobs}
    gc_was_enabled = gc.isenabled()
    gc.disable()  # no collector pauses inside timed runs
    try:
        _timed_rounds(jobs, runners, batches, repeats, samples, report)
    finally:
        if gc_was_enabled:
            gc.enable()

    want_outputs = outputs
    outputs: dict[str, np.ndarray] = {}
    total, done = n_inputs * len(jobs), 0
    for job in jobs:
        runner = runners[job["id"]]
        res = results[job["id"]]
        res["latency_ms"] = latency_stats(samples[job["id"]])
        res["samples_ms"] = [round(v, 4) for v in samples[job["id"]]]
        if not want_outputs:
            continue
        outs = []
        for b in batches:
            outs.append(np.asarray(runner.run(b), dtype=np.float32)[0])
            done += 1
            report("outputs", done, total)
        outputs[job["id"]] = np.stack(outs)
        res["output_shape"] = list(outputs[job["id"]].shape)

    return {
        "schema": MEASURE_SCHEMA,
        "device": device_facts(),
        "settings": {
            "threads": threads,
            "delegate": delegate,
            "warmup": warmup,
            "repeats": repeats,
            "input_shape": list(inputs.shape[1:]),
            "n_inputs": n_inputs,
            "order": "interleaved",
        },
        "results": results,
        "outputs": outputs,
    }


# ---------------------------------------------------------------- peak resident memory


def _maxrss_mb() -> tuple[float, str]:
    """(peak resident set size of this process in MB, where it was read from).

    Linux/Android: VmHWM from /proc/self/status, the high-water mark of this process's own
    address space. ru_maxrss is only the fallback: on Linux it survives exec, so a child started
    from a big parent (a TensorFlow process) would report the parent's size.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0, "VmHWM"
    except (OSError, ValueError, IndexError):
        pass
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return (rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0), "ru_maxrss"


def _import_runtime(path: str) -> str | None:
    import importlib

    for name in RUNTIME_MODULES.get(os.path.splitext(path)[1].lower(), ()):
        mod = IMPORT_FOR_BASELINE.get(name, name)
        try:
            importlib.import_module(mod)
            return mod
        except ImportError:
            continue
    return None


def _memory_child(
    path: str, threads: int, delegate: str, shape: tuple[int, ...], manifest: dict | None
) -> dict:
    """Runs in a fresh process: baseline after importing the runtime, then peak after load + run."""
    module = _import_runtime(path)
    baseline, source = _maxrss_mb()
    runner = runner_for(path, threads=threads, delegate=delegate, manifest=manifest)
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    runner.run(x)
    peak, _ = _maxrss_mb()
    return {
        "baseline_rss_mb": round(baseline, 2),
        "peak_rss_mb": round(peak, 2),
        "runtime_module": module,
        "source": source,
    }


def _package_root() -> str:
    # .../<root>/edgekit/runtimes/measure.py -> <root>, so a child process can import the package.
    return str(Path(__file__).resolve().parents[len(__package__.split("."))])


def peak_rss_mb(
    path: str,
    threads: int,
    delegate: str,
    input_shape: tuple[int, ...] | list[int],
    *,
    manifest: dict | None = None,
    python: str | None = None,
    timeout_s: float = 300.0,
) -> dict:
    """Peak resident memory of loading `path` and running one inference, in a fresh child process.

    Returns {"peak_rss_mb": the child's peak RSS after load + one run, "baseline_rss_mb": its peak
    RSS after importing numpy and the runtime only, "delta_rss_mb": peak - baseline (what the artifact
    itself costs: weights, arena, delegate buffers)}.
    """
    shape = [int(v) for v in input_shape]
    if len(shape) == 3:
        shape = [1, *shape]
    cmd = [
        python or sys.executable,
        "-m",
        f"{__package__}.measure",
        "--memory",
        str(path),
        "--threads",
        str(threads),
        "--delegate",
        delegate,
        "--shape",
        ",".join(map(str, shape)),
    ]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_package_root(), env.get("PYTHONPATH")]))
    with _manifest_file(manifest) as mpath:
        if mpath:
            cmd += ["--manifest", mpath]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, env=env, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            raise RunnerError(
                f"{path}: memory measurement timed out after {timeout_s:.0f} s"
            ) from None
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RunnerError(f"{path}: memory measurement failed in the child process: {tail}")
    res = json.loads(lines[-1])
    res["delta_rss_mb"] = round(res["peak_rss_mb"] - res["baseline_rss_mb"], 2)
    return res


class _manifest_file:
    """Context manager: a temporary JSON file holding the manifest (or None)."""

    def __init__(self, manifest: dict | None):
        self.manifest = manifest
        self.path = None

    def __enter__(self) -> str | None:
        if not self.manifest:
            return None
        import tempfile

        fd, self.path = tempfile.mkstemp(suffix=".json", prefix="edgekit-manifest-")
        with os.fdopen(fd, "w") as f:
            json.dump(self.manifest, f)
        return self.path

    def __exit__(self, *exc) -> None:
        if self.path:
            try:
                os.unlink(self.path)
            except OSError:
                pass


# ---------------------------------------------------------------- command line


def run_job_file(job_path: str, out_path: str, progress: Progress | None = None) -> dict:
    """Run a job file and write OUT.json (+ OUT.npz with outputs keyed by job id).

    JOB.json: {"jobs": [{"id", "path", "manifest"}], "inputs": "inputs.npy",
    "threads", "delegate", "warmup", "repeats", "memory": bool}. Relative paths are relative to
    the job file's folder. Writes to temporary names and renames them when complete.
    """
    job_path = Path(job_path)
    spec = json.loads(job_path.read_text())
    base = job_path.parent
    jobs = []
    for j in spec["jobs"]:
        p = Path(j["path"])
        jobs.append({**j, "path": str(p if p.is_absolute() else base / p)})
    inp = Path(spec["inputs"])
    inputs = np.load(inp if inp.is_absolute() else base / inp)
    res = measure(
        jobs,
        inputs,
        threads=int(spec.get("threads", 1)),
        delegate=spec.get("delegate", "xnnpack"),
        warmup=int(spec.get("warmup", 3)),
        repeats=int(spec.get("repeats", 20)),
        progress=progress,
    )
    outputs = res.pop("outputs")
    if spec.get("memory"):
        for j in jobs:
            try:
                res["results"][j["id"]]["memory"] = peak_rss_mb(
                    j["path"],
                    int(spec.get("threads", 1)),
                    spec.get("delegate", "xnnpack"),
                    inputs.shape[1:],
                    manifest=j.get("manifest"),
                )
            except RunnerError as exc:
                res["results"][j["id"]]["memory"] = {"error": str(exc)}
    out_path = Path(out_path)
    npz = out_path.with_suffix(".npz")
    res["outputs_file"] = npz.name
    tmp_npz = npz.with_name(f".{npz.name}.tmp.npz")
    np.savez(tmp_npz, **outputs)
    os.replace(tmp_npz, npz)
    tmp_json = out_path.with_name(f".{out_path.name}.tmp")
    tmp_json.write_text(json.dumps(res, indent=2))
    os.replace(tmp_json, out_path)
    return res


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m edgekit.runtimes.measure", description=__doc__.splitlines()[0]
    )
    ap.add_argument("job", nargs="?", help="job JSON file")
    ap.add_argument(
        "out", nargs="?", help="result JSON file (outputs go to the same name with .npz)"
    )
    ap.add_argument(
        "--memory",
        metavar="ARTIFACT",
        help="print peak RSS of loading ARTIFACT and running it once",
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--delegate", default="xnnpack")
    ap.add_argument("--shape", default="1,256,256,3", help="input shape N,H,W,C for --memory")
    ap.add_argument("--manifest", help="manifest JSON for --memory")
    ap.add_argument("--facts", action="store_true", help="print device facts as JSON and exit")
    args = ap.parse_args(argv)
    try:
        if args.facts:
            print(json.dumps(device_facts()))
        elif args.memory:
            manifest = json.loads(Path(args.manifest).read_text()) if args.manifest else None
            shape = tuple(int(v) for v in args.shape.split(","))
            print(
                json.dumps(_memory_child(args.memory, args.threads, args.delegate, shape, manifest))
            )
        elif args.job and args.out:
            run_job_file(args.job, args.out)
        else:
            ap.error("give JOB.json OUT.json, --memory ARTIFACT or --facts")
    except (RunnerError, OSError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
