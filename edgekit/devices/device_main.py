"""Entry point of the device runner (`__main__.py` inside edgekit-runner.pyz).

Runs on the device with the device's Python; needs numpy and a runtime only for `measure`:

    python edgekit-runner.pyz probe [--trtexec PATH]          # JSON facts on stdout
    python edgekit-runner.pyz measure JOB.json OUT.json        # edgekit.runtimes.measure job file
    python edgekit-runner.pyz build-engine ONNX ENGINE --precision fp16 [--shapes MIN OPT MAX]

Failures the user must fix on the device are reported as one stderr line
`EDGEKIT_DEVICE_ERROR {"kind": ..., "message": ...}` and exit status 3; the host turns that line
into an error naming the device and the remedy. Standard library only at the top, and syntax old
Pythons can parse, so a too-old Python still gets the message across.
"""

from __future__ import annotations

import errno
import json
import os
import sys

ERROR_MARK = "EDGEKIT_DEVICE_ERROR "
PROGRESS_MARK = "EDGEKIT_PROGRESS "
MIN_PYTHON = (3, 10)  # edgekit/runtimes uses zip(strict=True) and PEP 604 annotations


class DeviceFailure(Exception):
    def __init__(self, kind, message, **details):
        super().__init__(message)
        self.kind = kind
        self.details = details


def _fail(kind, message, **details):
    payload = {"kind": kind, "message": message}
    payload.update(details)
    sys.stderr.write(ERROR_MARK + json.dumps(payload) + "\n")
    sys.stderr.flush()
    return 3


def _progress_line(stage, done, total):
    sys.stderr.write(PROGRESS_MARK + json.dumps([stage, done, total]) + "\n")
    sys.stderr.flush()


def _check_python():
    if sys.version_info < MIN_PYTHON:
        raise DeviceFailure(
            "python-too-old",
            f"Python {sys.version.split()[0]} is too old; edgekit's runner needs Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer",
            python=sys.version.split()[0],
            executable=sys.executable,
        )


def _check_numpy():
    try:
        import numpy  # noqa: F401
    except ImportError as exc:
        raise DeviceFailure(
            "numpy-missing",
            f"numpy is not importable by {sys.executable} ({exc})",
            executable=sys.executable,
        ) from None


def _check_runtimes(spec):
    import edgekit_facts as facts

    for job in spec.get("jobs", []):
        suffix = os.path.splitext(job.get("path", ""))[1].lower()
        modules = facts.RUNTIME_MODULES.get(suffix, ())
        if modules and not any(
            facts.module_version(m) not in (None, "unimportable") for m in modules
        ):
            raise DeviceFailure(
                "runtime-missing",
                "no runtime for {} files: none of {} is importable by {}".format(
                    suffix, ", ".join(modules), sys.executable
                ),
                suffix=suffix,
                modules=list(modules),
                executable=sys.executable,
            )


def _check_loads(spec, base):
    """Load every artifact once so that 'this runtime cannot read this file' is told apart."""
    import edgekit_facts as facts

    from edgekit.runtimes.base import RunnerError, runner_for

    for job in spec.get("jobs", []):
        path = job["path"] if os.path.isabs(job["path"]) else os.path.join(base, job["path"])
        try:
            runner = runner_for(
                path,
                threads=int(spec.get("threads", 1)),
                delegate=spec.get("delegate", "xnnpack"),
                manifest=job.get("manifest"),
            )
            del runner
        except RunnerError as exc:
            suffix = os.path.splitext(path)[1].lower()
            versions = {m: facts.module_version(m) for m in facts.RUNTIME_MODULES.get(suffix, ())}
            raise DeviceFailure(
                "artifact-load",
                str(exc),
                artifact=job.get("id"),
                versions={k: v for k, v in versions.items() if v},
            ) from None


def _measure(job_path, out_path):
    _check_python()
    _check_numpy()
    with open(job_path) as f:
        spec = json.load(f)
    _check_runtimes(spec)
    base = os.path.dirname(os.path.abspath(job_path))
    _check_loads(spec, base)

    import edgekit_facts as facts

    from edgekit.runtimes import measure as m
    from edgekit.runtimes.base import RunnerError

    # Stream progress to the host: each stage becomes a stderr line the host turns into its
    # progress bar.
    try:
        res = m.run_job_file(job_path, out_path, progress=_progress_line)
    except RunnerError as exc:
        raise DeviceFailure("runner", str(exc)) from None
    res.setdefault("device", {}).update(facts.extra_facts())
    tmp = out_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(res, f, indent=2)
    os.replace(tmp, out_path)


def _probe(argv):
    import edgekit_facts as facts

    trtexec = argv[argv.index("--trtexec") + 1] if "--trtexec" in argv else None
    out = facts.probe(trtexec=trtexec)
    out["python_ok"] = sys.version_info >= MIN_PYTHON
    sys.stdout.write(json.dumps(out) + "\n")


def _parse_shape(text):
    return tuple(int(v) for v in text.lower().split("x"))


def _build_engine(argv):
    """Build a serialized engine with the device's `tensorrt` module (when trtexec is absent)."""
    import argparse

    ap = argparse.ArgumentParser(prog="edgekit-runner build-engine")
    ap.add_argument("onnx")
    ap.add_argument("engine")
    ap.add_argument("--precision", default="fp16", choices=("fp32", "fp16", "int8"))
    ap.add_argument("--strongly-typed", action="store_true")
    ap.add_argument("--input", default=None)
    ap.add_argument("--shapes", nargs=3, metavar=("MIN", "OPT", "MAX"), default=None)
    ap.add_argument("--workspace-mb", type=int, default=1024)
    ap.add_argument("--timing-cache", default=None)
    args = ap.parse_args(argv)
    try:
        import tensorrt as trt
    except ImportError:
        raise DeviceFailure(
            "runtime-missing",
            f"neither trtexec nor the tensorrt Python module is available to {sys.executable}",
            modules=["tensorrt"],
        ) from None
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if args.strongly_typed and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # TensorRT < 10
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    with open(args.onnx, "rb") as f:
        ok = parser.parse(f.read())
    if not ok:
        errs = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise DeviceFailure(
            "engine-build", "TensorRT's ONNX parser rejected the model: " + "; ".join(errs)
        )
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, args.workspace_mb << 20)
    if not args.strongly_typed:
        if args.precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)
        if args.precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
    cache = None
    if args.timing_cache:
        blob = b""
        if os.path.exists(args.timing_cache):
            with open(args.timing_cache, "rb") as f:
                blob = f.read()
        cache = config.create_timing_cache(blob)
        config.set_timing_cache(cache, ignore_mismatch=False)
    if args.shapes:
        profile = builder.create_optimization_profile()
        name = args.input or network.get_input(0).name
        profile.set_shape(name, *(_parse_shape(s) for s in args.shapes))
        config.add_optimization_profile(profile)
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise DeviceFailure(
            "engine-build", "TensorRT could not build an engine (see the builder log above)"
        )
    with open(args.engine + ".tmp", "wb") as f:
        f.write(blob)
    os.replace(args.engine + ".tmp", args.engine)
    if cache is not None:
        with open(args.timing_cache, "wb") as f:
            f.write(cache.serialize())
    sys.stdout.write(json.dumps({"tensorrt": trt.__version__, "builder": "tensorrt-python"}) + "\n")


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        sys.stderr.write(__doc__)
        return 2
    cmd, rest = argv[0], argv[1:]
    try:
        if cmd == "probe":
            _probe(rest)
        elif cmd == "measure" and len(rest) == 2:
            _measure(rest[0], rest[1])
        elif cmd == "build-engine":
            _check_python()
            _build_engine(rest)
        else:
            sys.stderr.write(__doc__)
            return 2
    except DeviceFailure as exc:
        return _fail(exc.kind, str(exc), **exc.details)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return _fail("disk-full", f"no space left on the device ({exc})")
        return _fail("remote", f"{type(exc).__name__}: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
