"""`edgekit run`: restore whole photos with a Keras model or an artifact, streamed tile by tile.

Every photo, whatever its size, goes through runtimes/tiled.py (the same code the bundle's
reference runner embeds): memory is bounded by one row of tiles, the model and the photo's own
pixels, never by a whole-image float activation. Fixed-shape artifacts run at their tile; models
that take any size run at `--tile` (default: the target's tile, else 512x512, rounded up to the
model's input multiple).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data.images import IMAGE_SUFFIXES
from .errors import EdgekitError
from .runtimes import tiled

DEFAULT_DYNAMIC_TILE = (512, 512)
ARTIFACT_SUFFIXES = (".tflite", ".onnx", ".engine", ".plan")


@dataclass
class Engine:
    """One loaded model behind a batch-of-1 `infer` in the model's value range."""

    infer: Callable[[np.ndarray], np.ndarray]
    tile: tuple[int, int]
    scale: int
    channels: int
    value_range: tuple[float, float]
    describe: str
    fixed: bool
    info: dict = field(default_factory=dict)


# ---------------------------------------------------------------- inputs and outputs


def collect_inputs(inputs: list[str | Path]) -> list[Path]:
    """Files as given and the images of each folder (sorted by name); errors name the path."""
    if not inputs:
        raise EdgekitError("run: no inputs given; pass image files or folders of images")
    files: list[Path] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            found = sorted(
                q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES
            )
            if not found:
                raise EdgekitError(
                    f"{p}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
                )
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise EdgekitError(f"{p}: no such image file or folder")
    return files


def output_paths(files: list[Path], out_dir: Path) -> list[Path]:
    """`out_dir/<stem>.png` per input (names with spaces and unicode kept); clashes are an error."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise EdgekitError(f"--out {out_dir}: is a file; expected a folder for the restored PNGs")
    outs, seen = [], {}
    for f in files:
        o = out_dir / (f.stem + ".png")
        if o in seen:
            raise EdgekitError(
                f"{f} and {seen[o]} would both be written to {o}; rename one or run them separately"
            )
        if o.resolve() == f.resolve():
            raise EdgekitError(f"{f}: the output {o} would overwrite the input; pick another --out")
        seen[o] = f
        outs.append(o)
    return outs


# ---------------------------------------------------------------- engines


def _round_up(v: int, m: int) -> int:
    return -(-int(v) // m) * m


def _dynamic_tile(tile, target, multiple: int) -> tuple[int, int]:
    t = (
        tuple(tile)
        if tile
        else (tuple(target.tile) if target is not None else DEFAULT_DYNAMIC_TILE)
    )
    return _round_up(t[0], multiple), _round_up(t[1], multiple)


def _read_manifest(path: Path) -> dict | None:
    from .runtimes.manifest import ManifestError, read_manifest

    try:
        return read_manifest(path, strict=True)
    except ManifestError as exc:
        raise EdgekitError(str(exc)) from None


def _settings(target) -> tuple[int, str]:
    cores = os.cpu_count() or 1
    if target is None:
        return cores, "xnnpack"
    if not target.is_local:
        raise EdgekitError(
            f"target '{target.name}' connects by {target.connection.kind}: `edgekit run` runs on "
            "this machine only; copy the bundle (`edgekit bundle`) and its restore.py to the device"
        )
    return min(target.threads, cores), target.delegate


def _artifact_engine(path: Path, tile, target) -> Engine:
    from .runtimes.base import RunnerError, runner_for

    manifest = _read_manifest(path)
    threads, delegate = _settings(target)
    from .quiet import capture_stderr

    try:
        with capture_stderr():  # LiteRT announces its XNNPACK delegate on stderr
            runner = runner_for(str(path), threads=threads, delegate=delegate, manifest=manifest)
    except RunnerError as exc:
        raise EdgekitError(str(exc)) from None
    shape = tuple(runner.input_shape)
    model = (manifest or {}).get("model") or {}
    multiple = int(model.get("input_multiple") or 1)
    fixed = shape[1] is not None and shape[2] is not None
    if fixed:
        t = (int(shape[1]), int(shape[2]))
        if tile and tuple(tile) != t:
            raise EdgekitError(
                f"{path}: the artifact has a fixed {t[0]}x{t[1]} input; --tile {tile[0]}x{tile[1]} "
                f"cannot be used (drop --tile or re-export with --shape {tile[0]}x{tile[1]})"
            )
    else:
        t = _dynamic_tile(tile, target, multiple)
    channels = int(shape[3]) if shape[3] is not None else 3

    def infer(x: np.ndarray) -> np.ndarray:
        try:
            return runner.run(x)
        except RunnerError as exc:
            raise EdgekitError(str(exc)) from None

    scale = model.get("scale")
    if scale is None:  # no manifest: find the scale from one probe run
        y = infer(np.zeros((1, t[0], t[1], channels), np.float32))
        scale = max(1, int(round(y.shape[1] / t[0])))
    vr = tuple(float(v) for v in (model.get("value_range") or (0.0, 1.0)))
    precision = (manifest or {}).get("precision") or "unknown precision"
    where = getattr(runner, "delegate_used", delegate)
    return Engine(
        infer,
        t,
        int(scale),
        channels,
        vr,
        f"{path.name} ({runner.runtime}, {precision}, {where}, {threads} threads, host CPU)",
        fixed,
        {"manifest": manifest, "runtime": runner.runtime},
    )


def _keras_engine(spec: str, tile, target, allow_custom_code: bool, overrides: dict) -> Engine:
    from .models.loading import load_model

    loaded = load_model(spec, allow_custom_code=allow_custom_code, **(overrides or {}))
    model, info = loaded.model, loaded.info
    shape = tuple(model.inputs[0].shape)
    if shape[1] is not None and shape[2] is not None:
        t = (int(shape[1]), int(shape[2]))
        fixed = True
    else:
        t = _dynamic_tile(tile, target, max(1, int(info.input_multiple)))
        fixed = False

    def infer(x: np.ndarray) -> np.ndarray:
        return np.asarray(model(x, training=False), dtype=np.float32)

    # load_model wraps models to float RGB in [0, 1] (info.value_range is the original face)
    return Engine(
        infer,
        t,
        int(info.scale),
        3,
        (0.0, 1.0),
        f"{spec} (Keras, float32, host CPU)",
        fixed,
        {"model": info.to_dict()},
    )


def open_engine(
    spec: str,
    *,
    tile: tuple[int, int] | None = None,
    target=None,
    allow_custom_code: bool = False,
    overrides: dict | None = None,
) -> Engine:
    """A Keras model (file or zoo:NAME) or an artifact (.tflite, .onnx, .engine) ready to run."""
    if Path(spec).suffix.lower() in ARTIFACT_SUFFIXES:
        if not Path(spec).is_file():
            raise EdgekitError(f"{spec}: artifact not found")
        return _artifact_engine(Path(spec), tile, target)
    return _keras_engine(spec, tile, target, allow_custom_code, overrides or {})


# ---------------------------------------------------------------- one photo


def restore_pixels(
    engine: Engine,
    pixels: np.ndarray,
    *,
    overlap: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """(H, W, 3|1) uint8/uint16/float pixels -> the restored pixels in the same dtype and
    channel count, (H*scale, W*scale)."""
    h, w, c = pixels.shape
    s = engine.scale
    kw = {"scale": s, "overlap": overlap, "value_range": engine.value_range}
    try:
        if c == engine.channels:
            out = np.empty((h * s, w * s, c), pixels.dtype)
            return tiled.restore(
                pixels, engine.infer, engine.tile, out=out, progress=progress, **kw
            )
        if c == 1 and engine.channels == 3:  # grey photo, RGB model: run grey on all channels
            rgb = np.repeat(pixels, 3, axis=2)
            y = tiled.restore(rgb, engine.infer, engine.tile, progress=progress, **kw)
            return tiled.from_float(y.mean(axis=2, keepdims=True), pixels.dtype)
        if c == 3 and engine.channels == 1:  # grey model: each colour channel on its own
            out = np.empty((h * s, w * s, 3), pixels.dtype)
            for k in range(3):
                tiled.restore(
                    pixels[..., k : k + 1],
                    engine.infer,
                    engine.tile,
                    out=out[..., k : k + 1],
                    progress=progress,
                    **kw,
                )
            return out
    except ValueError as exc:  # tiling problems (overlap, output shape) are the user's to fix
        raise EdgekitError(f"{engine.describe}: {exc}") from None
    raise EdgekitError(
        f"{engine.describe}: the model takes {engine.channels} channels; photos have {c}"
    )


def restore_file(
    engine: Engine, src: Path, dst: Path, *, overlap: int | None = None, progress=None
) -> dict:
    from .data.photo import read_photo, resize_alpha, write_png

    t0 = time.perf_counter()
    photo = read_photo(src)
    out = restore_pixels(engine, photo.pixels, overlap=overlap, progress=progress)
    alpha = None if photo.alpha is None else resize_alpha(photo.alpha, out.shape[:2])
    write_png(dst, out, alpha)
    return {
        "input": str(src),
        "output": str(dst),
        "input_size": list(photo.shape),
        "output_size": list(out.shape[:2]),
        "mode": photo.mode,
        "seconds": round(time.perf_counter() - t0, 3),
    }


# ---------------------------------------------------------------- the command


def run(
    spec: str,
    inputs: list[str | Path],
    out_dir: Path,
    *,
    tile: tuple[int, int] | None = None,
    overlap: int | None = None,
    target=None,
    allow_custom_code: bool = False,
    overrides: dict | None = None,
    progress: bool = True,
) -> list[dict]:
    """Restore every input photo into `out_dir` (one PNG each). Inputs are checked before the
    model is loaded, and each PNG is written under a temporary name and renamed when complete."""
    from .config import Target, load_target
    from .data.photo import check_readable

    files = collect_inputs(inputs)
    outs = output_paths(files, Path(out_dir))
    for f in files:
        check_readable(f)
    if overlap is not None and overlap < 0:
        raise EdgekitError(f"--overlap {overlap}: expected a number of pixels >= 0")
    if target is not None and not isinstance(target, Target):
        target = load_target(target)
    engine = open_engine(
        spec, tile=tile, target=target, allow_custom_code=allow_custom_code, overrides=overrides
    )
    ov = overlap if overlap is not None else tiled.default_overlap(min(engine.tile))
    problem = tiled.check_tiling(engine.tile, ov, tiled.default_margin(ov))
    if problem:
        raise EdgekitError(f"--overlap: {problem}")
    results = []
    with _bar(progress) as bar:
        for k, (src, dst) in enumerate(zip(files, outs, strict=True)):
            label = f"[{k + 1}/{len(files)}] {src.name}"
            results.append(restore_file(engine, src, dst, overlap=ov, progress=bar.callback(label)))
    return results


class _bar:
    """A rich progress bar per photo (tiles done / total), or nothing."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._p = None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import MofNCompleteColumn, Progress

            columns = (*Progress.get_default_columns(), MofNCompleteColumn())
            self._p = Progress(*columns, console=Console(stderr=True))
            self._p.__enter__()
        return self

    def __exit__(self, *exc):
        if self._p is not None:
            self._p.__exit__(*exc)

    def callback(self, label: str):
        if self._p is None:
            return None
        task = self._p.add_task(label, total=None)
        return lambda done, total: self._p.update(task, completed=done, total=total)
