"""TFLite (LiteRT) export at fp32, fp16, dynamic-range, int8 and int16x8.

The Keras model is traced into a tf.function with an explicit TensorSpec signature ([1, H, W, C]
for a fixed tile, [1, None, None, C] for a dynamic shape), so conversion never depends on Keras'
own export path (USERS.md pain 1). The converted bytes go to a temporary file, run through the
LiteRT runner on real validation tiles and are compared with the Keras model; only an artifact
that passes its PSNR floor (edgekit.export.validate.PSNR_FLOORS_DB) is renamed to its final
name, followed by its manifest.

Precisions
    fp32      plain conversion
    fp16      float16 weights (Optimize.DEFAULT + supported_types float16)
    dynamic   int8 weights, float activations (Optimize.DEFAULT, no calibration)
    int8      full integer, calibrated on request.calib_inputs; io="int8" makes input and output
              int8 too (the runner (de)quantizes); needs a fixed tile
    int16x8   int16 activations, int8 weights (EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8);
              needs a fixed tile and calibration data

Options (request.options)
    min_psnr_db      override the validation floor
    int8_fallback    "auto" (default: strict integer ops first; if the converter rejects an op, retry
                     allowing float kernels and record the ops and the reason), "never" (fail and
                     name the op), "allow" (float kernels allowed from the start)
    rewrite          exact-in-float graph rewrites onto XNNPACK's int8 fast path before converting
                     (edgekit.export.rewrites; default on for int8/int16x8, recorded in the
                     manifest's converter.rewrites); False (CLI --no-rewrite) converts the model as is
    block_convs      int8: "off" (default), "on", "auto" (on when this host's CPU has AMX int8
                     tiles; host-cpu's int8 export sets it): stride-1 convs with <= 32 channels in
                     and <= 16 out (or >= 5x5 over RGB) run on 2x2 blocks (edgekit.export.rewrites.block_conv), where a
                     tile-bound int8 engine pays per pixel, not per MAC
    clip_output      clip the output to the model's value range in-graph. Default for int8/int16x8:
                     only when the Keras outputs on the calibration tiles leave that range (a model
                     that clips itself, like the zoo's, gets no second clip), so the output
                     quantization spends its levels on the image range (USERS.md pain 4)
    calib_samples    calibrate on an evenly spaced subset of this many tiles (default: all given).
                     Each 256x256 tile costs about a second of float reference-kernel time for a
                     DnCNN-sized model; on zoo DnCNN 12 tiles gave the same int8 PSNR as 48
    threads          threads for the validation run (default 2)
    float_nodes      int8 only: TFLite node names kept in float, the rest full integer (mixed
                     precision, edgekit.export.tflite_mixed; [] = int8 through the same path,
                     whose manifest lists every node with its quantization error)
    sparse_weights   "auto" (default: fp32/fp16 only, when >= 30 % of the kernel weights are exactly
                     zero, as after magnitude pruning; XNNPACK cannot prepare sparse int8 kernels),
                     "on" or "off": store kernels in TFLite's sparse format
                     (Optimize.EXPERIMENTAL_SPARSITY: non-zeros + indices, expanded once by a
                     DENSIFY op when the interpreter is prepared, so inference speed is unchanged).
                     Makes a 50 %-pruned fp32 DnCNN 1.55x smaller on disk before any compression
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import numpy as np

from ..atomic import atomic_paths
from ..config import PRECISIONS
from ..errors import EdgekitError
from ..models.info import LoadedModel
from ..terminal import count_progress, stderr_console
from .base import Artifact, Exporter, ExportRequest, manifest_path, register_exporter
from .manifest import build_manifest, write_manifest

_FALLBACK_MODES = ("auto", "never", "allow")


@register_exporter
class TFLiteExporter(Exporter):
    format = "tflite"
    precisions = tuple(PRECISIONS)

    def _export(self, loaded: LoadedModel, request: ExportRequest, out: Path) -> Artifact:
        from ..models.onnx_source import refuse

        refuse(loaded, "TFLite export (no maintained ONNX -> TFLite converter is used)")
        precision = request.precision.value
        label = str(out)
        _check_request(loaded, request, label)
        console = stderr_console()
        tag = f"tflite {precision}" + (" int8-io" if request.io == "int8" else "")
        console.print(f"[bold]{tag}[/]: converting {loaded.info.name} -> {out}")
        from ..models.predict import predict
        from ..runtimes.litert import LiteRTRunner
        from .tflite_ops import inspect_tflite, summarize
        from .validate import validate_outputs

        t0 = time.perf_counter()
        val = np.asarray(request.val_inputs, np.float32)
        # The Keras outputs on the validation tiles serve twice: the clip decision and validation.
        reference = predict(loaded.model, val)
        data, settings = convert(loaded, request, label=label, console=console, reference=reference)
        settings["seconds"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        lo, hi = loaded.info.value_range
        # The artifact and its manifest are renamed into place together, or neither is.
        with atomic_paths(out, manifest_path(out)) as (tmp, tmp_manifest):
            tmp.write_bytes(data)
            with console.status(f"{tag}: validating against the Keras model"):
                runner = LiteRTRunner(str(tmp), threads=request.threads)
                if settings.get("clip_output"):
                    reference = np.clip(reference, lo, hi)
                validation = validate_outputs(
                    runner.run,
                    val,
                    reference,
                    precision=precision,
                    label=label,
                    options=request.options,
                    value_range=loaded.info.value_range,
                )
                ops = inspect_tflite(tmp, precision)
            validation["seconds"] = round(time.perf_counter() - t0, 2)
            input_shape = list(runner.input_shape)
            output_shape = list(runner.output_shape)
            io_dtypes = {"input": runner.input_dtype, "output": runner.output_dtype}
            versions = runner.versions()
            int8_report = ops.pop("int8_report", None)
            manifest = build_manifest(
                loaded,
                request,
                out,
                {
                    "input_shape": input_shape,
                    "output_shape": output_shape,
                    "io_dtypes": io_dtypes,
                    "converter": settings,
                    "validation": validation,
                    "ops": ops,
                    "int8_report": int8_report,
                    "versions": {"litert": versions.get("litert")},
                },
                written=tmp,
            )
            write_manifest(out, manifest, tmp=tmp_manifest)
        size_mb = manifest["size_bytes"] / 1e6
        console.print(
            f"[bold]{tag}[/]: wrote {out} ({size_mb:.2f} MB), "
            f"{validation['psnr_vs_keras_db']:.1f} dB vs Keras (floor {validation['floor_db']:g}), "
            + summarize({**ops, **({"int8_report": int8_report} if int8_report else {})})
        )
        return Artifact(path=out, manifest=manifest)


def _check_request(loaded: LoadedModel, request: ExportRequest, label: str) -> None:
    precision = request.precision.value
    model = loaded.model
    inputs = getattr(model, "inputs", None) or []
    outputs = getattr(model, "outputs", None) or []
    if len(inputs) != 1 or len(outputs) != 1:
        raise EdgekitError(
            f"{loaded.info.source or loaded.info.name}: expected a model with one image input and one "
            f"image output, got {len(inputs)} inputs and {len(outputs)} outputs"
        )
    in_shape = tuple(inputs[0].shape)
    if len(in_shape) != 4:
        raise EdgekitError(
            f"{loaded.info.source or loaded.info.name}: input '{inputs[0].name}' has shape {in_shape}; "
            "expected an NHWC image tensor (batch, height, width, channels)"
        )
    if request.io not in ("float", "int8"):
        raise EdgekitError(f"{label}: unknown io '{request.io}'; expected 'float' or 'int8'")
    if request.io == "int8" and precision != "int8":
        raise EdgekitError(
            f"{label}: int8 input/output needs precision int8, got {precision}; use io 'float'"
        )
    mode = request.opts.int8_fallback
    if mode not in _FALLBACK_MODES:
        raise EdgekitError(
            f"option 'int8_fallback': expected one of {', '.join(_FALLBACK_MODES)}, got {mode!r}"
        )
    if request.shape is not None:
        h, w = request.shape
        if in_shape[1] not in (None, h) or in_shape[2] not in (None, w):
            raise EdgekitError(
                f"{loaded.info.source or loaded.info.name}: the model has a fixed {in_shape[1]}x{in_shape[2]} "
                f"input, the requested tile is {h}x{w}; use --shape {in_shape[1]}x{in_shape[2]}"
            )
    if precision in ("int8", "int16x8"):
        if _tile(loaded, request) is None:
            raise EdgekitError(
                f"{label}: {precision} TFLite needs a fixed input tile (dynamic H x W breaks integer "
                "kernels); pass --shape HxW (e.g. 256x256) or a target with a tile; whole images are "
                "then processed tile by tile"
            )
        calib = request.calib_inputs
        if calib is None or len(calib) == 0:
            raise EdgekitError(
                f"{label}: {precision} needs calibration images to choose its quantization ranges; "
                "pass --calib DIR with real photos (e.g. calibration_data/)"
            )
        calib = np.asarray(calib)
        th, tw = _tile(loaded, request)
        if calib.ndim != 4 or calib.shape[1:3] != (th, tw) or calib.shape[3] != in_shape[3]:
            raise EdgekitError(
                f"{label}: calibration tiles have shape {calib.shape}; expected (N, {th}, {tw}, "
                f"{in_shape[3]}) to match the input tile"
            )
    if request.val_inputs is None or len(request.val_inputs) == 0:
        raise EdgekitError(
            f"{label}: no validation images; every export is checked against the Keras model on real "
            "images: pass --calib DIR (a folder of photos)"
        )
    val = np.asarray(request.val_inputs)
    tile = _tile(loaded, request)
    if (
        val.ndim != 4
        or val.shape[3] != in_shape[3]
        or (tile is not None and val.shape[1:3] != tuple(tile))
    ):
        want = f"(N, {tile[0]}, {tile[1]}, {in_shape[3]})" if tile else f"(N, H, W, {in_shape[3]})"
        raise EdgekitError(f"{label}: validation tiles have shape {val.shape}; expected {want}")


def _tile(loaded: LoadedModel, request: ExportRequest) -> tuple[int, int] | None:
    if request.shape is not None:
        return tuple(request.shape)
    shape = tuple(loaded.model.inputs[0].shape)
    if shape[1] is not None and shape[2] is not None:
        return int(shape[1]), int(shape[2])
    return None


def convert(
    loaded: LoadedModel,
    request: ExportRequest,
    *,
    label: str = "",
    console=None,
    reference: np.ndarray | None = None,
) -> tuple[bytes, dict]:
    """Convert to .tflite bytes. Returns (bytes, converter settings for the manifest).

    reference: the Keras outputs on request.val_inputs, if already computed (used to decide
    whether an integer model needs an in-graph output clip)."""
    from ..tfcompat import import_tf

    tf, _ = import_tf()
    precision = request.precision.value
    model = loaded.model
    channels = int(model.inputs[0].shape[-1])
    tile = _tile(loaded, request)
    h, w = tile if tile is not None else (None, None)
    lo, hi = (float(v) for v in loaded.info.value_range)
    clip = request.opts.clip_output
    overshoot = None
    if clip is None and precision in ("int8", "int16x8"):
        from ..models.predict import predict

        y = reference if reference is not None else predict(model, request.val_inputs)
        overshoot = [float(y.min()), float(y.max())]
        clip = bool(overshoot[0] < lo - 1e-6 or overshoot[1] > hi + 1e-6)
    clip = bool(clip)
    from .fastpath import block_convs_on
    from .rewrites import clamp, clamp_form, for_export, settle

    blocks, blocks_why = block_convs_on(request.opts.block_convs)
    enable = ("block_conv",) if blocks and precision == "int8" else ()
    model, rewritten = for_export(model, precision, request.opts.rewrite, "litert", enable)
    if rewritten["enabled"] and precision == "int8":
        rewritten["block_convs"] = blocks_why

    spec = tf.TensorSpec([1, h, w, channels], tf.float32, name="input")

    @tf.function(input_signature=[spec])
    def serve(x):
        y = model(x, training=False)
        if clip:
            y = (
                clamp(tf, y, lo, hi, clamp_form(type(model.layers[-1]).__name__))
                if rewritten["enabled"]
                else tf.clip_by_value(y, lo, hi)
            )
        return {"output": y}

    concrete = serve.get_concrete_function()
    if rewritten["enabled"]:
        rewritten = settle(model, rewritten)
    mode = request.opts.int8_fallback
    settings = {
        "api": "tf.lite.TFLiteConverter.from_concrete_functions",
        "signature": [1, h, w, channels],
        "clip_output": clip,
        "keras_output_range_on_validation": overshoot,
        "value_range": [lo, hi],
        "rewrites": rewritten,
    }

    sparse = _sparse_weights(model, precision, request.opts.sparse_weights, settings)

    def make(allow_float: bool):
        conv = tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)
        if precision == "fp32":
            if sparse:
                conv.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
                return conv, {"optimizations": ["EXPERIMENTAL_SPARSITY"]}
            return conv, {}
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        s: dict = {"optimizations": ["DEFAULT"]}
        if sparse:
            conv.optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
            s["optimizations"].append("EXPERIMENTAL_SPARSITY")
        if precision == "fp16":
            conv.target_spec.supported_types = [tf.float16]
            s["supported_types"] = ["float16"]
        elif precision in ("int8", "int16x8"):
            calib = _calibration_subset(request)
            conv.representative_dataset = _representative(
                calib, console, f"tflite {precision}: calibrating"
            )
            if precision == "int8":
                ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            else:
                ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
            if allow_float:
                ops.append(tf.lite.OpsSet.TFLITE_BUILTINS)
            conv.target_spec.supported_ops = ops
            s["supported_ops"] = [o.name for o in ops]
            s["calibration_samples"] = int(len(calib))
            s["calibration_samples_given"] = int(len(request.calib_inputs))
            if precision == "int8" and request.io == "int8":
                conv.inference_input_type = tf.int8
                conv.inference_output_type = tf.int8
            s["inference_input_type"] = "int8" if request.io == "int8" else "float32"
            s["inference_output_type"] = s["inference_input_type"]
        return conv, s

    float_nodes = getattr(request.opts, "float_nodes", None)
    if float_nodes is not None:  # mixed precision: these nodes stay float (edgekit.optimize)
        if precision != "int8" or request.io != "float":
            raise EdgekitError(f"{label}: option float_nodes needs precision int8 with float I/O")
        from .tflite_mixed import convert_mixed

        conv, extra = make(True)
        sig = (clip, settings["signature"], extra)
        data, extra["mixed_precision"] = convert_mixed(
            model, conv, _calibration_subset(request), list(float_nodes), sig
        )
        settings.update(extra)
        return data, settings
    allow_float = mode == "allow"
    conv, extra = make(allow_float)
    try:
        data = _run_converter(conv, console)
    except _ConversionFailed as exc:
        ops = exc.ops
        anywhere = any(k in str(exc) for k in _UNSUPPORTED_ANYWHERE)
        retry = (
            precision in ("int8", "int16x8") and mode == "auto" and not allow_float and not anywhere
        )
        if not retry:
            raise EdgekitError(_error_text(label, precision, exc)) from None
        if console is not None:
            console.print(
                f"tflite {precision}: the converter has no integer kernel for "
                f"{', '.join(ops) or 'some op'}; retrying with float kernels allowed (reported in the manifest)"
            )
        conv, extra = make(True)
        try:
            data = _run_converter(conv, console)
        except _ConversionFailed as exc2:
            raise EdgekitError(_error_text(label, precision, exc2)) from None
        extra["float_fallback"] = {"ops": ops, "reason": exc.first_line}
    settings.update(extra)
    return data, settings


# The converter itself leaves tensors below about 30 % zeros dense; below that the index arrays
# would cost more than the zeros save.
SPARSE_MIN_ZERO_FRACTION = 0.3


# Precisions whose kernels stay float. XNNPACK fails to prepare a CONV_2D whose int8 kernel comes
# from a DENSIFY op (measured with ai-edge-litert 2.3 on dynamic and int8 exports), and int8
# zeros compress well under gzip without it.
SPARSE_PRECISIONS = ("fp32", "fp16")


def _sparse_weights(model, precision: str, option, settings: dict) -> bool:
    """Whether to store pruned kernels in TFLite's sparse format (non-zeros + indices, with a
    DENSIFY op that expands them once when the interpreter is prepared: no per-inference cost).
    option: "auto" (float-weight precisions, when >= 30 % of the kernel weights are zero, i.e.
    after magnitude pruning), True/"on" or False/"off". Records the decision in the settings."""
    from ..models.stats import kernel_zero_fraction

    choice = str(option).lower()
    if choice not in ("auto", "on", "off", "true", "false"):
        raise EdgekitError(
            f"export option sparse_weights: expected auto, on or off, got '{option}'"
        )
    if choice in ("on", "true") and precision not in SPARSE_PRECISIONS:
        raise EdgekitError(
            f"export option sparse_weights: on works for {', '.join(SPARSE_PRECISIONS)} only, not "
            f"{precision} (LiteRT's XNNPACK cannot prepare sparse int8 kernels); use auto or off"
        )
    zeros = kernel_zero_fraction(model)
    sparse = choice in ("on", "true") or (
        choice == "auto" and precision in SPARSE_PRECISIONS and zeros >= SPARSE_MIN_ZERO_FRACTION
    )
    settings["kernel_zero_fraction"] = round(zeros, 4)
    settings["sparse_weights"] = bool(sparse)
    return bool(sparse)


def _calibration_subset(request: ExportRequest) -> np.ndarray:
    """The calibration tiles, or an evenly spaced subset of options["calib_samples"] of them."""
    calib = np.asarray(request.calib_inputs, np.float32)
    n = request.opts.calib_samples
    if n is None:
        return calib
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise EdgekitError(f"option 'calib_samples': expected a positive integer, got {n!r}")
    if n >= len(calib):
        return calib
    return calib[np.linspace(0, len(calib) - 1, num=n).round().astype(int)]


def _representative(calib: np.ndarray, console, description: str):
    def gen():
        with count_progress(
            _Redirected.console or console, enabled=console is not None
        ) as progress:
            task = progress.add_task(description, total=len(calib))
            for x in calib:
                yield [x[None].astype(np.float32)]
                progress.advance(task)

    return gen


class _ConversionFailed(Exception):
    def __init__(self, message: str, ops: list[str]):
        super().__init__(message)
        self.ops = ops
        self.first_line = next((ln.strip() for ln in message.splitlines() if ln.strip()), message)[
            :300
        ]


# Patterns that name ops in TFLiteConverter / MLIR error texts.
_OP_PATTERNS = (
    re.compile(r"'(tfl?\.[A-Za-z0-9_]+)' op"),
    re.compile(r"\b(tf\.[A-Z][A-Za-z0-9_]*)\("),
    re.compile(r"(?:TF Select ops|Flex ops|Custom ops):\s*([A-Za-z0-9_, .]+)"),
    re.compile(
        r"[Qq]uantization (?:not yet supported|is not supported) for op:?\s*'?([A-Za-z0-9_.]+)"
    ),
    re.compile(r"[Ff]ailed to quantize (?:op|operator):?\s*'?([A-Za-z0-9_.]+)"),
    re.compile(r"op '([A-Za-z0-9_.]+)' is neither a custom op nor a flex op"),
)


def ops_in_message(message: str) -> list[str]:
    """Op names mentioned in a converter error, in order of appearance, without duplicates."""
    found: list[tuple[int, str]] = []
    for pat in _OP_PATTERNS:
        for m in pat.finditer(message):
            for name in m.group(1).split(","):
                name = re.sub(r"^tfl?\.", "", name.strip().rstrip("."))
                if name:
                    found.append((m.start(), name))
    seen, out = set(), []
    for _, name in sorted(found):
        if name not in seen:
            seen.add(name)
            out.append(name)
    return out


_UNSUPPORTED_ANYWHERE = (
    "neither a custom op nor a flex op",
    "Custom ops:",
    "TF Select ops:",
    "Flex ops:",
)
_LAYER_LOC = re.compile(r'callsite\("([^"@]+)@__inference_serve')


class _Redirected:
    """The stream calibration progress is drawn on while fd 2 is captured."""

    console = None


def _run_converter(conv, console) -> bytes:
    """conv.convert() with the converter's C++ diagnostics (fd 2) captured for the error message."""
    import os
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as cap:
        os.dup2(cap.fileno(), 2)
        stream = os.fdopen(os.dup(saved), "w", buffering=1)
        try:
            if console is not None:
                _Redirected.console = stderr_console(file=stream)
            return conv.convert()
        except Exception as exc:  # noqa: BLE001 - ConverterError, ValueError, RuntimeError...
            sys.stderr.flush()
            cap.seek(0)
            diag = cap.read().decode("utf-8", "replace")
            message = f"{exc}\n{diag}"
            raise _ConversionFailed(message, ops_in_message(message)) from None
        finally:
            _Redirected.console = None
            stream.close()
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def layers_in_message(message: str) -> dict[str, str]:
    """op name -> Keras layer name, from the MLIR locations in a converter error."""
    out = {}
    for m in _LAYER_LOC.finditer(message):
        parts = m.group(1).split("/")
        if len(parts) >= 3:
            out.setdefault(parts[-1], parts[1])
    return out


def _error_text(label: str, precision: str, exc: _ConversionFailed) -> str:
    layers = layers_in_message(str(exc))
    named = [f"{op} (layer '{layers[op]}')" if op in layers else op for op in exc.ops]
    if named:
        what = f"TFLite cannot convert op(s) {', '.join(named)} at {precision}"
        if any(k in str(exc) for k in _UNSUPPORTED_ANYWHERE):
            todo = "they are not TFLite builtin ops at any precision: replace those layers with standard ones"
        else:
            todo = "replace those layers, or export a float precision (fp32/fp16/dynamic)"
    else:
        what = f"TFLite conversion at {precision} failed ({exc.first_line})"
        todo = "check the model's layers are standard Keras layers"
    return f"{label}: {what}; {todo}"
