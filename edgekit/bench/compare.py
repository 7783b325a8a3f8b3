"""Parity check: the same degraded tiles through Keras and every artifact, PSNR between all pairs.

A Polygraphy-style cross-check with restoration metrics: does the TFLite int8 file, the ONNX
Q/DQ graph and the TensorRT engine compute the same function as the Keras model? Every output is
compared with every other one (PSNR, dB, over all tiles) and with the clean images; a pair below
its threshold is flagged. Thresholds depend on the precisions in the pair: two float outputs
must agree to `threshold_db` (default 40 dB), a pair with an integer-quantized member to the
lower `INT_THRESHOLD_DB` (quantization noise alone costs that much; a broken int8 artifact falls
far below). Artifacts whose runtime cannot run here (a TensorRT engine without a GPU) are listed
as skipped with the reason, never silently dropped.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from ..errors import EdgekitError
from ..models.info import LoadedModel
from .artifacts import read_manifest

DEFAULT_THRESHOLD_DB = 40.0
INT_THRESHOLD_DB = {"int8": 30.0, "dynamic": 35.0, "int16x8": 35.0}
DEFAULT_TILE = (128, 128)


def pair_threshold(
    prec_a: str,
    prec_b: str,
    threshold_db: float | None = None,
    int_threshold_db: float | None = None,
) -> float:
    """The threshold for a pair. Two float members: threshold_db (default 40 dB). A pair with an
    integer-quantized member: int_threshold_db if given, else threshold_db if given (a threshold
    the user asked for holds for every pair), else the lowest INT_THRESHOLD_DB of its members."""
    quantized = [INT_THRESHOLD_DB[p] for p in (prec_a, prec_b) if p in INT_THRESHOLD_DB]
    if not quantized:
        return DEFAULT_THRESHOLD_DB if threshold_db is None else threshold_db
    if int_threshold_db is not None:
        return int_threshold_db
    return min(quantized) if threshold_db is None else threshold_db


def exit_code(result: dict) -> int:
    """What `edgekit compare` exits with, for CI gates: 0 when every artifact ran and every pair
    reached its threshold; 1 when a pair is below its threshold or an artifact was skipped
    (it could not run here, so nothing was checked). Bad input exits 2 before this."""
    skipped = [o for o in result["outputs"] if o.get("status") != "ok"]
    return 1 if result["flagged"] or skipped else 0


def _tile_from(manifests: list[dict], tile) -> tuple[int, int]:
    if tile:
        return tuple(int(v) for v in tile)
    # input_shape is [1, H, W, C] (runner convention) or [H, W] (the export tile); a None
    # dimension is dynamic
    shapes = [
        m["input_shape"] for m in manifests if m.get("input_shape") and not m.get("dynamic_shape")
    ]
    fixed = {tuple(s[1:3] if len(s) == 4 else s[:2]) for s in shapes}
    fixed = {hw for hw in fixed if None not in hw}
    if len(fixed) > 1:
        raise EdgekitError(
            f"artifacts have different fixed input tiles {sorted(fixed)}; compare artifacts exported "
            "with the same --shape, or pass tile"
        )
    return fixed.pop() if fixed else DEFAULT_TILE


def _inputs(loaded: LoadedModel, images, images_dir, degradation, tile, per_image):
    from ..data.degradations import parse
    from ..data.images import Image, load_folder, split_holdout
    from ..data.patches import degraded_tiles
    from ..paths import calibration_dir

    spec = degradation or loaded.info.degradation
    if not spec:
        raise EdgekitError(
            f"{loaded.info.source or loaded.info.name}: no degradation known for this model; pass "
            "--degradation (e.g. noise:sigma=25)"
        )
    deg = parse(spec)
    if images is None:
        folder = Path(images_dir) if images_dir else calibration_dir()
        found = load_folder(folder)
        images = split_holdout(found)[1] if images_dir is None and len(found) >= 4 else found
    images = [
        im if isinstance(im, Image) else Image(f"image{i}", np.asarray(im, np.float32))
        for i, im in enumerate(images)
    ]
    xs, clean = degraded_tiles(images, deg, tile, per_image=per_image, seed=3)
    return xs, clean, deg.spec, [im.name for im in images]


def compare(
    loaded: LoadedModel,
    artifacts: list,
    *,
    images: list | None = None,
    images_dir: str | Path | None = None,
    degradation: str | None = None,
    threshold_db: float | None = None,
    int_threshold_db: float | None = None,
    tile: tuple[int, int] | None = None,
    threads: int = 2,
    per_image: int = 1,
) -> dict:
    """Run Keras and every artifact on the same degraded tiles; PSNR between every pair.

    images: Image objects or float32 (H, W, 3) arrays; default the held-out calibration images
    (or every image in images_dir). tile: input tile (default: the artifacts' fixed tile).
    threshold_db / int_threshold_db: see pair_threshold.
    Returns plain data (see README "compare"): outputs, pairs (flagged ones have ok=False) and
    `flagged`, the labels of the failing pairs.
    """
    from ..checks import number

    for key, v in (("--threshold", threshold_db), ("--int8-threshold", int_threshold_db)):
        if v is not None:
            number(v, key, minimum=0.0)  # NaN would pass every pair
    from ..config import host_label
    from ..metrics import psnr_capped
    from ..models.predict import predict
    from ..runtimes.base import RunnerError, runner_for

    paths = [Path(a) for a in artifacts]
    for p in paths:
        if not p.is_file():
            raise EdgekitError(f"{p}: artifact not found")
    manifests = [read_manifest(p) or {} for p in paths]
    tile = _tile_from(manifests, tile)
    xs, clean, spec, names = _inputs(loaded, images, images_dir, degradation, tile, per_image)
    lo, hi = loaded.info.value_range
    data_range = float(hi - lo) or 1.0

    # the float reference: the Keras model, or an ONNX model run by ONNX Runtime
    ref = "source.onnx" if loaded.info.extra.get("format") == "onnx" else "keras"
    outputs = [
        {
            "name": ref,
            "path": None,
            "format": "onnx" if ref == "source.onnx" else "keras",
            "precision": "fp32",
            "runtime": "onnxruntime" if ref == "source.onnx" else "tf_keras",
        }
    ]
    results = {ref: predict(loaded.model, xs)}
    for p, m in zip(paths, manifests, strict=True):
        entry = {
            "name": p.name,
            "path": str(p),
            "format": m.get("format", p.suffix.lstrip(".")),
            "precision": m.get("precision", "unknown"),
        }
        try:
            runner = runner_for(str(p), threads=threads, delegate="xnnpack", manifest=m or None)
            entry["runtime"] = runner.runtime
            results[p.name] = np.asarray(runner.run(xs), np.float32)
        except RunnerError as exc:
            entry.update(status="skipped", reason=str(exc))
            outputs.append(entry)
            continue
        if results[p.name].shape != results[ref].shape:
            raise EdgekitError(
                f"{p}: output shape {results[p.name].shape} differs from the reference model's "
                f"{results[ref].shape}; is this artifact exported from {loaded.info.name}?"
            )
        outputs.append(entry)
    for o in outputs:
        if o["name"] in results:
            o["status"] = "ok"
            o["psnr_vs_clean_db"] = round(psnr_capped(results[o["name"]], clean, data_range), 3)
    ran = [o for o in outputs if o["status"] == "ok"]
    pairs = []
    for a, b in itertools.combinations(ran, 2):
        value = psnr_capped(results[a["name"]], results[b["name"]], data_range)
        limit = pair_threshold(a["precision"], b["precision"], threshold_db, int_threshold_db)
        pairs.append(
            {
                "a": a["name"],
                "b": b["name"],
                "psnr_db": round(value, 3),
                "max_abs_diff": float(np.max(np.abs(results[a["name"]] - results[b["name"]]))),
                "threshold_db": limit,
                "ok": bool(value >= limit),
            }
        )
    return {
        "model": loaded.info.name,
        "degradation": spec,
        "tile": list(tile),
        "tiles": int(len(xs)),
        "images": names,
        "threshold_db": DEFAULT_THRESHOLD_DB if threshold_db is None else threshold_db,
        "int_threshold_db": (
            int_threshold_db
            if int_threshold_db is not None
            else threshold_db
            if threshold_db is not None
            else dict(INT_THRESHOLD_DB)
        ),
        "outputs": outputs,
        "pairs": pairs,
        "flagged": [f"{p['a']} vs {p['b']}" for p in pairs if not p["ok"]],
        "measured_on": host_label(),
        # first tile of every output for compare.html (uint8; compare.json leaves it out)
        "pixels": _first_tile_pixels(xs, clean, results, lo, hi),
    }


def _first_tile_pixels(xs, clean, results: dict, lo: float, hi: float) -> dict:
    def u8(a):
        return np.round(np.clip((np.asarray(a) - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)

    out = {name: u8(y[0]) for name, y in results.items()}
    reference = next(iter(out))  # the float model ("keras", or "source.onnx" for an ONNX model)
    s = max(1, out[reference].shape[0] // xs.shape[1])
    deg = np.repeat(np.repeat(xs[0], s, axis=0), s, axis=1)  # shown at the output size
    return {"clean": u8(clean[0]), "degraded": u8(deg), "outputs": out, "reference": reference}


def markdown(result: dict) -> str:
    """The comparison as Markdown: outputs (PSNR vs clean) and the pair matrix."""
    lines = [
        f"# Parity: {result['model']} ({result['degradation']}, {result['tiles']} tiles of "
        f"{result['tile'][0]}x{result['tile'][1]}, {result['measured_on']})",
        "",
        "| output | format | precision | status | PSNR vs clean (dB) |",
        "|---|---|---|---|---|",
    ]
    for o in result["outputs"]:
        status = o["status"] if o["status"] == "ok" else f"skipped: {o.get('reason', '')}"
        clean = f"{o['psnr_vs_clean_db']:.2f}" if "psnr_vs_clean_db" in o else "-"
        lines.append(f"| {o['name']} | {o['format']} | {o['precision']} | {status} | {clean} |")
    lines += ["", "| A | B | PSNR A vs B (dB) | threshold (dB) | result |", "|---|---|---|---|---|"]
    for p in result["pairs"]:
        lines.append(
            f"| {p['a']} | {p['b']} | {p['psnr_db']:.2f} | {p['threshold_db']:g} | "
            f"{'ok' if p['ok'] else '**BELOW**'} |"
        )
    lines += ["", f"Flagged: {', '.join(result['flagged']) or 'none'}"]
    skipped = [o["name"] for o in result["outputs"] if o.get("status") != "ok"]
    lines += [f"Skipped (not checked): {', '.join(skipped) or 'none'}", ""]
    return "\n".join(lines)


def write_compare(result: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """compare.json, compare.md and compare.html in out_dir (atomically)."""
    from ..atomic import write_bytes, write_json, write_text
    from ..report.compare_page import render_compare

    out_dir = Path(out_dir)
    page = render_compare(result)  # rendered first: a failure leaves no file behind
    plain = {k: v for k, v in result.items() if k != "pixels"}
    paths = (
        write_json(out_dir / "compare.json", plain),
        write_text(out_dir / "compare.md", markdown(plain)),
    )
    write_bytes(out_dir / "compare.html", page.encode("utf-8"))
    return paths
