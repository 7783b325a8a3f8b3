"""TensorRT exporter: ONNX artifact -> serialized engine, through `tensorrt` or `tensorrt_rtx`.

One code path drives both Python modules (their builder APIs are nearly the same). Precision comes
from the ONNX graph, built as a strongly typed network: fp32 from the fp32 ONNX, fp16 from the
float16 ONNX, int8 from the Q/DQ ONNX (explicit quantization; no calibration cache, which would be
tied to a TensorRT version and GPU). TensorRT-RTX has no FP16/INT8 builder flags at all, and the
full TensorRT deprecates them in favour of strong typing, so nothing depends on them.

Differences handled here:
  * tensorrt_rtx builds ahead of time without a GPU for a compute capability set on the builder
    config (`compute_capability: SM89`); `tensorrt` builds for the GPU it runs on.
  * A timing cache (kept next to the artifacts, `timing.cache`) is used with `tensorrt`; with
    `tensorrt_rtx` any timing cache makes the builder query for a GPU, which breaks CPU-only AOT
    builds, and has no effect on its engines (TensorRT-RTX 1.1 release notes), so none is used.
  * `build_on: device` (Jetson): engines are not portable across GPUs and TensorRT versions, so
    nothing is built here; the ONNX is emitted with the exact trtexec command and config for it.

Options (request.tensorrt, the target's `tensorrt:` block, then the export's own options win):
    module ("tensorrt" | "tensorrt_rtx"), compute_capability ("SM89"), build_on ("host" | "device"),
    workspace_mb, profile_min (H, W), profile_max (H, W), onnx (an existing ONNX to build from).
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path

from .. import atomic
from ..errors import EdgekitError, require
from ..models.info import LoadedModel
from ..runtimes.manifest import read_manifest
from ..terminal import spinner_progress
from .base import Artifact, Exporter, ExportRequest, manifest_path, register_exporter
from .manifest import sha256_file

MODULES = {"tensorrt": "tensorrt", "tensorrt_rtx": "tensorrt-rtx"}  # module -> pip extra
_OPTION_KEYS = (
    "module",
    "compute_capability",
    "build_on",
    "workspace_mb",
    "profile_min",
    "profile_max",
    "onnx",
)
TIMING_CACHE = "timing.cache"
LOG_TAIL = 30


def import_trt(module: str, purpose: str = "building TensorRT engines"):
    if module not in MODULES:
        raise EdgekitError(
            f"tensorrt option module='{module}': expected one of {', '.join(MODULES)}"
        )
    return require(module, MODULES[module], purpose)


def _default_module() -> str:
    import importlib.util

    for name in MODULES:
        try:
            if importlib.util.find_spec(name) is not None:
                return name
        except (ImportError, ValueError, AttributeError):  # e.g. a module blocked in sys.modules
            continue
    return "tensorrt"


def trt_options(request: ExportRequest) -> dict:
    """Merge the target's `tensorrt:` block with the export's typed options (the latter win).

    Without a target naming the module, the installed one is used (`tensorrt` first)."""
    opts = {
        "module": _default_module(),
        "compute_capability": None,
        "build_on": "host",
        "workspace_mb": 1024,
    }
    opts.update({k: v for k, v in (request.tensorrt or {}).items() if v is not None})
    own = {k: getattr(request.opts, k) for k in _OPTION_KEYS}
    opts.update({k: v for k, v in own.items() if v is not None})
    return opts


def _profile(onnx_input: dict, tile, profile_min, profile_max, layout: str) -> dict:
    """min/opt/max shapes of the engine input (layout of the ONNX input), opt = the tile."""

    def shape(hw):
        h, w = (int(v) for v in hw)
        return [1, 3, h, w] if layout == "NCHW" else [1, h, w, 3]

    opt = tuple(tile)
    lo = tuple(profile_min) if profile_min else opt
    hi = tuple(profile_max) if profile_max else opt
    if not (lo[0] <= opt[0] <= hi[0] and lo[1] <= opt[1] <= hi[1]):
        raise EdgekitError(
            f"tensorrt profile: min {lo} <= tile {opt} <= max {hi} does not hold; fix "
            "tensorrt.profile_min / profile_max in the target"
        )
    return {"input": onnx_input["name"], "min": shape(lo), "opt": shape(opt), "max": shape(hi)}


def _dims(shape) -> str:
    return "x".join(str(v) for v in shape)


def trtexec_command(onnx_path: Path, engine_path: Path, record: dict) -> list[str]:
    """The trtexec command line that builds the same engine on a device."""
    prof = record["profile"]
    cmd = [
        "trtexec",
        f"--onnx={onnx_path.name}",
        f"--saveEngine={engine_path.name}",
        "--stronglyTyped",
        f"--memPoolSize=workspace:{int(record['workspace_mb'])}M",
        f"--timingCacheFile={TIMING_CACHE}",
        "--skipInference",
    ]
    if record.get("dynamic_shapes"):
        name = prof["input"]
        cmd[4:4] = [
            f"--minShapes={name}:{_dims(prof['min'])}",
            f"--optShapes={name}:{_dims(prof['opt'])}",
            f"--maxShapes={name}:{_dims(prof['max'])}",
        ]
    return cmd


class _Log:
    """Collects the builder's log lines (ILogger subclass made per module)."""

    @staticmethod
    def make(trt):
        class Logger(trt.ILogger):
            def __init__(self):
                trt.ILogger.__init__(self)
                self.lines: list[tuple[int, str]] = []

            def log(self, severity, msg):
                self.lines.append((int(severity), str(msg)))

            def text(self, max_severity: int = 3) -> list[str]:
                names = {0: "INTERNAL_ERROR", 1: "ERROR", 2: "WARNING", 3: "INFO", 4: "VERBOSE"}
                return [f"[{names.get(s, s)}] {m}" for s, m in self.lines if s <= max_severity]

            def errors(self) -> list[str]:
                return [m for s, m in self.lines if s <= 1]

        return Logger()


def _monitor(trt, progress):
    """A TensorRT IProgressMonitor driving rich progress bars (None if the module has none)."""
    if not hasattr(trt, "IProgressMonitor"):
        return None

    class Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self.tasks = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            indent = "  " if parent_phase else ""
            self.tasks[phase_name] = progress.add_task(
                f"{indent}TensorRT: {phase_name}", total=max(1, num_steps)
            )

        def step_complete(self, phase_name, step):
            if phase_name in self.tasks:
                progress.update(self.tasks[phase_name], completed=step + 1)
            return True

        def phase_finish(self, phase_name):
            task = self.tasks.pop(phase_name, None)
            if task is not None:
                progress.remove_task(task)

    return Monitor()


def _parser_error_text(err) -> str:
    node_name = getattr(err, "node_name", lambda: "")()
    op = getattr(err, "node_operator", lambda: "")()
    where = f"node '{node_name}' (op {op})" if node_name or op else f"node #{err.node()}"
    desc = " ".join(str(err.desc()).split())
    return f"{where}: {desc}"


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    *,
    module: str = "tensorrt",
    precision: str = "fp32",
    tile: tuple[int, int] | None = None,
    profile_min: tuple[int, int] | None = None,
    profile_max: tuple[int, int] | None = None,
    compute_capability: str | None = None,
    workspace_mb: int = 1024,
    timing_cache: str | Path | None = None,
    log_path: str | Path | None = None,
) -> dict:
    """Build a serialized engine from an ONNX file; write it atomically; return the build record.

    The record is what `<engine>.json` stores (without the model/manifest fields). Nothing is
    written under `engine_path` unless the build succeeds. Errors name the ONNX node and op that
    TensorRT rejected, or the builder's last error line; the full log goes to `<engine>.log`.
    """
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    trt = import_trt(module)
    if not onnx_path.is_file():
        raise EdgekitError(f"{onnx_path}: ONNX file not found; export it first (--format onnx)")
    logger = _Log.make(trt)
    log_path = Path(log_path) if log_path else engine_path.with_name(engine_path.name + ".log")
    t0 = time.perf_counter()

    def fail(msg: str):
        atomic.write_text(log_path, "\n".join(logger.text(4)) + "\n")
        raise EdgekitError(f"{msg}; full builder log: {log_path}")

    builder = trt.Builder(logger)
    flag = trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED
    network = builder.create_network(1 << int(flag))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes(), str(onnx_path)):
        errs = [_parser_error_text(parser.get_error(i)) for i in range(parser.num_errors)]
        fail(
            f"{onnx_path}: {module} {trt.__version__} cannot parse the ONNX graph: "
            + "; ".join(errs[:3])
        )
    if network.num_inputs != 1 or network.num_outputs != 1:
        raise EdgekitError(
            f"{onnx_path}: expected one input and one output, the network has "
            f"{network.num_inputs} inputs and {network.num_outputs} outputs"
        )
    inp, outp = network.get_input(0), network.get_output(0)
    in_shape = list(inp.shape)
    layout = "NCHW" if len(in_shape) == 4 and in_shape[1] == 3 else "NHWC"
    dynamic = any(int(d) < 0 for d in in_shape)
    if tile is None:
        if dynamic:
            raise EdgekitError(
                f"{onnx_path}: input '{inp.name}' has dynamic H/W; give the tile for the profile"
            )
        tile = tuple(in_shape[2:4]) if layout == "NCHW" else tuple(in_shape[1:3])
    profile = _profile({"name": inp.name}, tile, profile_min, profile_max, layout)
    if not dynamic and (
        profile["min"] != profile["max"] or profile["opt"] != [int(d) for d in in_shape]
    ):
        raise EdgekitError(
            f"{onnx_path}: input '{inp.name}' is fixed at {in_shape} but the profile asks for "
            f"{profile['min']}..{profile['max']}; export the ONNX with dynamic H/W (option dynamic_hw)"
        )

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    if precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # TF32 is on by default: fp32 means fp32
    if dynamic:
        prof = builder.create_optimization_profile()
        prof.set_shape(inp.name, profile["min"], profile["opt"], profile["max"])
        config.add_optimization_profile(prof)
    cc_label = "the GPU of the build machine"
    if hasattr(config, "set_compute_capability"):  # tensorrt_rtx: ahead-of-time for a chosen GPU
        if compute_capability:
            cc = getattr(trt.ComputeCapability, str(compute_capability).upper(), None)
            if cc is None:
                known = [n for n in trt.ComputeCapability.__members__ if n.startswith("SM")]
                raise EdgekitError(
                    f"tensorrt option compute_capability='{compute_capability}': {module} "
                    f"{trt.__version__} knows {', '.join(known)}"
                )
            config.num_compute_capabilities = 1
            config.set_compute_capability(cc, 0)
            cc_label = str(compute_capability).upper()
        else:
            cc_label = "default portable set (SM80/86/89/120)"
    elif compute_capability:
        raise EdgekitError(
            f"tensorrt option compute_capability='{compute_capability}': module '{module}' builds for "
            "the GPU it runs on; drop compute_capability or use module tensorrt_rtx"
        )

    cache_note = None
    cache = None
    if module == "tensorrt_rtx":
        cache_note = "not used: TensorRT-RTX ignores it and it would need a GPU at build time"
    elif timing_cache is not None:
        timing_cache = Path(timing_cache)
        blob = timing_cache.read_bytes() if timing_cache.is_file() else b""
        cache = config.create_timing_cache(blob)
        config.set_timing_cache(cache, ignore_mismatch=False)
        cache_note = str(timing_cache.name)

    with spinner_progress(bar=False) as progress:
        top = progress.add_task(
            f"{module}: building {precision} engine {engine_path.name}", total=None
        )
        monitor = _monitor(trt, progress)
        if monitor is not None:
            config.progress_monitor = monitor
        serialized = builder.build_serialized_network(network, config)
        progress.remove_task(top)
    if serialized is None:
        errors = logger.errors() or ["the builder returned no engine"]
        fail(
            f"{onnx_path}: {module} {trt.__version__} failed to build the {precision} engine: {errors[-1]}"
        )
    atomic.write_bytes(engine_path, bytes(serialized))
    if cache is not None:
        atomic.write_bytes(timing_cache, bytes(config.get_timing_cache().serialize()))
    log_path.unlink(missing_ok=True)
    dtype = {v: k for k, v in {"float32": trt.float32, "float16": trt.float16}.items()}
    return {
        "format": "tensorrt",
        "precision": precision,
        "module": module,
        "tensorrt_version": trt.__version__,
        "compute_capability": cc_label,
        "layout": layout,
        "profile": profile,
        "dynamic_shapes": dynamic,
        "input": {
            "name": inp.name,
            "dtype": dtype.get(inp.dtype, str(inp.dtype)),
            "shape": in_shape,
        },
        "output": {
            "name": outp.name,
            "dtype": dtype.get(outp.dtype, str(outp.dtype)),
            "shape": list(outp.shape),
        },
        "strongly_typed": True,
        "workspace_mb": int(workspace_mb),
        "timing_cache": cache_note,
        "onnx": onnx_path.name,
        "onnx_sha256": sha256_file(onnx_path),
        "engine_bytes": engine_path.stat().st_size,
        "build_seconds": round(time.perf_counter() - t0, 3),
        "builder_log_tail": logger.text(3)[-LOG_TAIL:],
    }


@register_exporter
class TensorRTExporter(Exporter):
    format = "tensorrt"
    precisions = ("fp32", "fp16", "int8")

    def _export(self, loaded: LoadedModel, request: ExportRequest, out: Path) -> Artifact:
        from ..config import Format
        from .base import ExportRequest as Req
        from .onnx import OnnxExporter

        opts = trt_options(request)
        module, build_on = opts["module"], opts["build_on"]  # both typed (config.TensorRTOptions)
        if build_on == "host":
            import_trt(module)  # fail before the (slower) ONNX export when the module is missing
        if request.shape is None:
            raise EdgekitError(
                "tensorrt export needs a fixed tile (--shape or the target's tile) for the profile"
            )
        tile = tuple(request.shape)
        dynamic = bool(opts.get("profile_min") or opts.get("profile_max")) and (
            tuple(opts.get("profile_min") or tile) != tile
            or tuple(opts.get("profile_max") or tile) != tile
        )
        if opts.get("onnx"):
            onnx_path = Path(opts["onnx"])
            onnx_manifest = read_manifest(onnx_path) or {}
        else:
            onnx_path = out.with_suffix(".onnx")
            layout = request.opts.layout or "NCHW"
            sub = Req(
                format=Format.onnx,
                precision=request.precision,
                shape=tile,
                calib_inputs=request.calib_inputs,
                val_inputs=request.val_inputs,
                options={
                    "layout": layout,
                    "dynamic_hw": dynamic,
                    "keep_io_types": True,
                    "quantize_bias": False,  # TensorRT rejects int32 DequantizeLinear
                    "activations": "symmetric",  # TensorRT explicit quantization: zero points 0
                    "rewrite": False,  # TensorRT runs PReLU and deconvolution in int8 itself
                    **{
                        k: getattr(request.opts, k)
                        for k in ("opset", "calib_method", "min_psnr_db")
                        if getattr(request.opts, k) is not None
                    },
                },
                plan=request.plan,
                threads=request.threads,
            )
            onnx_manifest = OnnxExporter().export(loaded, sub, onnx_path).manifest
        base = {
            "target": request.target,
            "model_name": loaded.info.name,
            # The engine itself can only be run where a GPU is; its ONNX source was validated.
            "onnx_validation": onnx_manifest.get("validation"),
        }
        if build_on == "device":
            return self._emit_device_build(onnx_path, out, onnx_manifest, opts, tile, request, base)
        from ..config import host_label
        from .manifest import build_manifest, write_manifest

        # The engine and its manifest are renamed into place together, or neither is.
        with atomic.atomic_paths(out, manifest_path(out)) as (tmp, tmp_manifest):
            record = build_engine(
                onnx_path,
                tmp,
                module=module,
                precision=request.precision.value,
                tile=tile,
                profile_min=opts.get("profile_min"),
                profile_max=opts.get("profile_max"),
                compute_capability=opts.get("compute_capability"),
                workspace_mb=int(opts.get("workspace_mb", 1024)),
                timing_cache=out.parent / TIMING_CACHE,
                log_path=out.with_name(out.name + ".log"),
            )
            # Refuse a broken engine before it gets its final name, where it can run at all.
            validation = _validate_engine(tmp, record, loaded, request, out)
            extra = {**base, **record, "validation": validation, "built_on": host_label()}
            extra["versions"] = {module: record["tensorrt_version"]}
            manifest = build_manifest(loaded, request, out, extra, written=tmp)
            write_manifest(out, manifest, tmp=tmp_manifest)
        return Artifact(out, manifest)

    def _emit_device_build(
        self, onnx_path, out, onnx_manifest, opts, tile, request, base
    ) -> Artifact:
        """Jetson-style targets: ONNX + the exact build command and config; no engine here."""
        layout = onnx_manifest.get("layout", "NCHW")
        inp = onnx_manifest.get("input") or {"name": "input"}
        record = {
            "format": "tensorrt",
            "precision": request.precision.value,
            "module": opts["module"],
            "build_on": "device",
            "layout": layout,
            "profile": _profile(
                inp, tile, opts.get("profile_min"), opts.get("profile_max"), layout
            ),
            "dynamic_shapes": any(not isinstance(d, int) for d in inp.get("shape", [1])),
            "strongly_typed": True,
            "workspace_mb": int(opts.get("workspace_mb", 1024)),
            "onnx": onnx_path.name,
            "onnx_sha256": sha256_file(onnx_path),
            "reason": "TensorRT engines are tied to the GPU and TensorRT version; build on the device",
        }
        cmd = trtexec_command(onnx_path, out, record)
        script = out.with_name(out.name + ".build.sh")
        record["build_command"] = shlex.join(cmd)
        record["build_script"] = script.name
        config = {
            **base,
            **record,
            "engine": out.name,
            "engine_built": False,
        }
        manifest = {**onnx_manifest, "tensorrt_build": config}
        build_json, mp = out.with_name(out.name + ".build.json"), manifest_path(onnx_path)
        # the build script, its config and the updated ONNX manifest appear together or not at all
        with atomic.atomic_paths(script, build_json, mp) as (t_script, t_json, t_manifest):
            t_script.write_text(
                "#!/bin/sh\n# Build the engine on the target device (run in this folder).\n"
                f"set -e\n{shlex.join(cmd)}\n"
            )
            t_json.write_text(atomic.json_text(config, build_json))
            t_manifest.write_text(atomic.json_text(manifest, mp))
        script.chmod(0o755)
        return Artifact(onnx_path, manifest)


def _validate_engine(engine: Path, record: dict, loaded, request, out: Path) -> dict:
    """PSNR of the engine against Keras at its precision's floor when this machine can run it
    (GPU + runtime); otherwise why not (CPU-only ahead-of-time builds: the ONNX source was
    validated instead, see onnx_validation)."""
    from ..models.predict import predict
    from ..runtimes.base import RunnerError
    from ..runtimes.tensorrt import TensorRTRunner
    from .validate import validate_outputs

    xs = request.val_inputs if request.val_inputs is not None else request.calib_inputs
    if xs is None or len(xs) == 0:
        return {"skipped": "no validation tiles given"}
    try:
        runner = TensorRTRunner(str(engine), manifest=record)
    except RunnerError as exc:
        return {"skipped": f"engine not run on this machine: {exc}"}
    return validate_outputs(
        runner.run,
        xs,
        predict(loaded.model, xs),
        precision=request.precision.value,
        label=str(out),
        options=request.options,
        value_range=loaded.info.value_range,
    )
