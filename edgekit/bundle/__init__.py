"""`edgekit bundle ARTIFACT --out DIR`: what an app or a device embeds.

DIR gets:
- model.tflite / model.onnx with a FIXED input (the tile): a dynamic-shape export is fixed with
  bundle/fixshape.py, so LiteRT (and Google's benchmark_litert_model) allocate the real size;
- bundle.json, the I/O contract: layout, dtype, value range, int8 quantization parameters,
  tile, overlap, margin, scale, input multiple, task, degradation, and the measured PSNR and
  latency with where each was measured;
- restore.py, the single-file reference runner (numpy + pillow + LiteRT or ONNX Runtime): the
  tiling code of `edgekit run` (runtimes/tiled.py) inlined verbatim, so it reproduces
  `edgekit run` bit for bit. docs/mobile.md shows an Android and an iOS app using the contract.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from ..errors import EdgekitError

SCHEMA = "edgekit.bundle/1"
DEFAULT_TILE = (256, 256)
_MARK = "from edgekit.runtimes.tiled import from_float, restore"


def runner_source() -> str:
    """restore.py: bundle/runner.py with its edgekit import replaced by runtimes/tiled.py."""
    here = Path(__file__).resolve().parent
    runner = (here / "runner.py").read_text(encoding="utf-8")
    tiled = (here.parent / "runtimes" / "tiled.py").read_text(encoding="utf-8")
    body = tiled.split("from __future__ import annotations\n", 1)[1]
    lines = runner.splitlines(keepends=True)
    (i,) = [k for k, ln in enumerate(lines) if ln.startswith(_MARK)]
    inlined = (
        "# ---- edgekit/runtimes/tiled.py, inlined verbatim (the tiling of `edgekit run`) ----\n"
        + body.strip("\n")
        + "\n# ---- end of edgekit/runtimes/tiled.py ----\n"
    )
    return "".join(lines[:i]) + inlined + "".join(lines[i + 1 :])


def _manifest(path: Path) -> dict:
    from ..runtimes.manifest import ManifestError, read_manifest

    try:
        m = read_manifest(path, strict=True)
    except ManifestError as exc:
        raise EdgekitError(str(exc)) from None
    if m is None:
        raise EdgekitError(
            f"{path}: no manifest {path.name}.json beside it, so the task, scale and value range "
            "are unknown; bundle an artifact written by `edgekit export`"
        )
    return m


def _tflite_io(model: bytes) -> tuple[dict, dict]:
    from ai_edge_litert.interpreter import Interpreter

    from ..quiet import capture_stderr

    with capture_stderr():
        it = Interpreter(model_content=model)
    it.allocate_tensors()

    def face(d):
        scale, zero = d["quantization"]
        kind = np.dtype(d["dtype"])
        return {
            "name": d["name"],
            "shape": [int(v) for v in d["shape"]],
            "dtype": kind.name,
            "quantization": None
            if kind.kind == "f"
            else {"scale": float(scale), "zero_point": int(zero)},
        }

    return face(it.get_input_details()[0]), face(it.get_output_details()[0])


def _onnx_io(path: Path) -> tuple[dict, dict]:
    from ..runtimes.onnxruntime import OnnxRuntimeRunner

    r = OnnxRuntimeRunner(str(path), threads=1)
    shape = list(r.input_shape)
    if any(d is None for d in shape[1:3]):
        raise EdgekitError(
            f"{path}: the ONNX model has a dynamic input {shape}; re-export it with --shape HxW "
            "(the bundle needs a fixed tile)"
        )
    out = list(r.output_shape)
    return (
        {"name": "input", "shape": shape, "dtype": "float32", "quantization": None},
        {"name": "output", "shape": out, "dtype": "float32", "quantization": None},
    )


def _latency(model_path: Path, manifest: dict, shape, threads: int) -> dict:
    """Median of timed runs on the tile, here, with edgekit's runner (labelled host)."""
    from ..config import host_label
    from ..runtimes.base import runner_for
    from ..runtimes.measure import latency_stats

    runner = runner_for(str(model_path), threads=threads, manifest=manifest)
    x = np.random.default_rng(0).random(shape).astype(np.float32)
    for _ in range(2):
        runner.run(x)
    samples = []
    for _ in range(10):
        t0 = time.perf_counter()
        runner.run(x)
        samples.append((time.perf_counter() - t0) * 1e3)
    s = latency_stats(samples)
    return {
        "p50_ms": round(s["p50"], 3),
        "n": s["n"],
        "threads": threads,
        "measured_on": f"{host_label()} (edgekit bundle, {runner.runtime}, {threads} threads)",
    }


def make_bundle(
    artifact: str | Path,
    out_dir: str | Path,
    *,
    tile: tuple[int, int] | None = None,
    threads: int | None = None,
) -> Path:
    """Write the bundle folder (atomically: a temporary folder renamed when complete)."""
    from ..atomic import atomic_path
    from ..runtimes import tiled

    artifact = Path(artifact)
    if not artifact.is_file():
        raise EdgekitError(f"{artifact}: artifact not found")
    suffix = artifact.suffix.lower()
    if suffix not in (".tflite", ".onnx"):
        raise EdgekitError(
            f"{artifact}: only .tflite and .onnx artifacts can be bundled (a TensorRT engine "
            "is tied to one GPU and TensorRT version: bundle its ONNX and build on the device)"
        )
    manifest = _manifest(artifact)
    info = manifest.get("model") or {}
    threads = threads or min(4, os.cpu_count() or 1)
    data = artifact.read_bytes()
    fixed_from = None
    if suffix == ".tflite":
        from .fixshape import fix_input_shape, is_dynamic

        if is_dynamic(data):
            want = tuple(tile) if tile else DEFAULT_TILE
            m = int(info.get("input_multiple") or 1)
            if want[0] % m or want[1] % m:
                raise EdgekitError(f"--tile {want[0]}x{want[1]}: the model needs multiples of {m}")
            data = fix_input_shape(data, want, name=str(artifact))
            fixed_from = "dynamic input [1, -1, -1, C] fixed to the tile by edgekit bundle"
        elif tile:
            raise EdgekitError(
                f"{artifact}: the model already has a fixed input; --tile cannot change it "
                "(re-export with --shape HxW)"
            )
    out_dir = Path(out_dir)
    name = "model" + suffix
    with atomic_path(out_dir, directory=True) as tmp:
        (tmp / name).write_bytes(data)
        if suffix == ".tflite":
            inp, outp = _tflite_io(data)
        else:
            inp, outp = _onnx_io(tmp / name)
        th, tw = inp["shape"][1], inp["shape"][2]
        overlap = tiled.default_overlap(min(th, tw))
        scale = int(info.get("scale") or 1)
        lo, hi = (float(v) for v in (info.get("value_range") or (0.0, 1.0)))
        layout = (manifest.get("options") or {}).get("layout") or "NHWC"
        for face in (inp, outp):
            face.update({"layout": layout, "value_range": [lo, hi], "color": "RGB"})
        validation = manifest.get("validation") or {}
        spec = {
            "schema": SCHEMA,
            "model": {
                "file": name,
                "format": suffix[1:],
                "precision": manifest.get("precision"),
                "io": manifest.get("io"),
                "sha256": hashlib.sha256(data).hexdigest(),
                "size_bytes": len(data),
                "source_artifact": str(artifact),
                "fixed_shape": fixed_from,
            },
            "task": info.get("task"),
            "degradation": info.get("degradation"),
            "source_model": info.get("source"),
            "input": inp,
            "output": outp,
            "pixels": (
                "float pixel p in [0, 1] (8-bit: v / 255) -> model value lo + p * (hi - lo); "
                "int8 tensors: q = clip(round(value / scale + zero_point), -128, 127); outputs: "
                "value = (q - zero_point) * scale, p = (value - lo) / (hi - lo), clipped to [0, 1]"
            ),
            "tiling": {
                "tile": [th, tw],
                "overlap": overlap,
                "margin": tiled.default_margin(overlap),
                "scale": scale,
                "input_multiple": int(info.get("input_multiple") or 1),
                "rule": (
                    "restore.py / edgekit runtimes/tiled.py: origins spread evenly with at least "
                    "`overlap` px shared, last tile flush with the edge; weight 0 for `margin` px "
                    "next to interior tile edges, then a linear ramp to 1; weighted mean; images "
                    "smaller than the tile mirrored out to it and cropped back"
                ),
            },
            "measured": {
                "psnr_vs_float_db": validation.get("psnr_vs_keras_db"),
                "psnr_measured_on": (
                    f"host CPU at export: {validation.get('n_images', '?')} held-out tiles vs the "
                    "float Keras model (manifest validation)"
                    if validation
                    else None
                ),
                "latency": _latency(tmp / name, manifest, inp["shape"], threads),
            },
        }
        (tmp / "bundle.json").write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
        (tmp / "restore.py").write_text(runner_source(), encoding="utf-8")
    return out_dir
