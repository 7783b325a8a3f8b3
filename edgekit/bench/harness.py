"""The benchmark harness: artifacts + target + clean images -> the report dict.

For every artifact it measures, in one run and on the same inputs:
- quality: each clean eval image is degraded (seeded), the degraded image is cut into tiles of
  the artifact's fixed input size (edgekit.bench.tiling), the tiles run through the artifact, the
  outputs are blended back into a full image and scored against the clean image (PSNR/SSIM) and
  against the float Keras reference run through the same tiling (PSNR);
- latency: warm-up then timed repeats interleaved across all artifacts (A B C A B C ...) on the
  same real tiles, with the target's threads and delegate;
- size (raw and gzip-compressed: pruned weights only shrink when compressed), peak resident
  memory of a fresh process that loads the artifact and runs it once.

Where things run is one seam: an *executor* (edgekit.devices: local, ssh, adb) provides
`measure(...)` (edgekit.runtimes.measure's contract), `peak_rss(...)`, `measured_on()` and
`facts()`. A remote executor runs the same measurement core on the device and returns the same
dicts; scoring stays on the host.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .. import __version__
from ..config import Target, host_label
from ..devices import executor_for
from ..errors import EdgekitError
from ..metrics import capped as _capped
from ..metrics import psnr, psnr_per_image, ssim
from ..models.info import LoadedModel
from ..models.predict import from_model_range, predict, to_model_range
from ..report.schema import SCHEMA_VERSION
from ..terminal import ProgressBars
from . import tiling
from .artifacts import BenchArtifact, load_artifacts

DEFAULT_SEED = 0


# ---------------------------------------------------------------- eval images


def _eval_images(images_dir: Path | None, note: Callable[[str], None]):
    from ..data.images import load_folder, split_holdout
    from ..paths import calibration_dir

    if images_dir is not None:
        images = load_folder(images_dir)
        return images, {"source": str(images_dir), "split": "all images in the folder"}
    folder = calibration_dir()
    images = load_folder(folder)
    _, held = split_holdout(images)
    if not held:
        note(
            f"{folder}: fewer than 4 images, so no held-out split; evaluating on all of them "
            "(they were also used for calibration)"
        )
        return images, {"source": str(folder), "split": "all (too few images for a held-out split)"}
    return held, {
        "source": str(folder),
        "split": "held-out (every 4th image by name; never used for calibration)",
    }


def _centre_crop(im, side: int):
    from ..data.images import Image

    h, w = im.shape
    y0, x0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return Image(im.name, np.ascontiguousarray(im.pixels[y0 : y0 + side, x0 : x0 + side]))


def _scores(outs: list[np.ndarray], cleans: list[np.ndarray]) -> tuple[list[float], list[float]]:
    ss = [float(ssim(np.clip(y, 0.0, 1.0), c)) for y, c in zip(outs, cleans, strict=True)]
    return psnr_per_image(outs, cleans), ss


# ---------------------------------------------------------------- the harness


@dataclass
class _TiledSet:
    """All eval images cut into tiles of one size, and how to blend outputs back per image."""

    tiles: np.ndarray  # (N, th, tw, C), images one after another
    layouts: list[tiling.TileLayout]
    bounds: np.ndarray  # tiles of image i are tiles[bounds[i]:bounds[i + 1]]
    scale: int

    @classmethod
    def cut(cls, images, degraded, tile, scale, overlap, margin) -> _TiledSet:
        parts, layouts = [], []
        for im, x in zip(images, degraded, strict=True):
            name = im.name if scale == 1 else f"{im.name} (after x{scale} downscale)"
            t, lay = tiling.tile_image(x, tile, overlap=overlap, margin=margin, name=name)
            parts.append(t)
            layouts.append(lay)
        bounds = np.cumsum([0] + [len(t) for t in parts])
        return cls(np.concatenate(parts), layouts, bounds, scale)

    def blend(self, outputs: np.ndarray) -> list[np.ndarray]:
        b = self.bounds
        return [
            tiling.blend_tiles(outputs[b[i] : b[i + 1]], lay, self.scale)
            for i, lay in enumerate(self.layouts)
        ]


def _memory(executor, members, tile, settings, rows, notes, prog, tag) -> None:
    """Peak RSS per artifact (a fresh process each); a failure becomes a note, not an abort."""
    stage = f"{tag}memory (fresh process per artifact)"
    for k, a in enumerate(members):
        prog.update(stage, k, len(members))
        try:
            m = executor.peak_rss(
                a.path,
                threads=settings["threads"],
                delegate=settings["delegate"],
                input_shape=(1, tile[0], tile[1], a.info.channels),
                manifest=a.manifest,
            )
        except Exception as exc:  # noqa: BLE001 - memory is a secondary number: say why it is missing
            m = {}
            notes.append(f"{a.path.name}: peak memory not measured ({exc})")
        rows[a.id]["peak_rss_mb"] = m.get("peak_rss_mb")
        rows[a.id]["baseline_rss_mb"] = m.get("baseline_rss_mb")
        rows[a.id]["rss_delta_mb"] = m.get("delta_rss_mb")
        prog.update(stage, k + 1, len(members))


def _settings(target: Target, executor) -> tuple[dict, list[str]]:
    notes = []
    threads, delegate = target.threads, target.delegate
    if getattr(executor, "kind", "local") == "local":
        cores = os.cpu_count() or 1
        if threads > cores:
            notes.append(
                f"target asks for {target.threads} threads; this host has {cores} cores, "
                f"so {cores} threads were used"
            )
            threads = cores
    return {
        "threads": threads,
        "delegate": delegate,
        "warmup": target.warmup,
        "repeats": target.repeats,
    }, notes


def _host_vs_target_note(target: Target, executor) -> str | None:
    if getattr(executor, "kind", "local") != "local":
        return None
    dev = target.device.lower()
    if "host" in dev and "phone" not in dev and "jetson" not in dev:
        return None
    what = (
        "phone"
        if ("phone" in dev or "android" in dev)
        else "Jetson"
        if "jetson" in dev
        else "target-device"
    )
    return (
        f"no device attached: numbers are host-CPU numbers, not {what} numbers (target "
        f"'{target.name}' is meant for: {target.device}; set a ssh/adb connection to measure there)"
    )


def bench(
    artifacts: list[Path],
    *,
    target: Target,
    images_dir: Path | None = None,
    degradation: str | None = None,
    reference: LoadedModel | None = None,
    out_dir: Path,
    progress: bool = True,
    executor=None,
    seed: int = DEFAULT_SEED,
    overlap: int | None = None,
    margin: int | None = None,
    memory: bool = True,
    max_side: int | None = None,
    reference_cache: dict | None = None,
) -> dict:
    """Benchmark artifacts on a target and return the report dict (see docs/report-schema.md).

    out_dir is recorded in the report (write it with edgekit.report.render.write_report).
    `executor` replaces where measure() runs (default: executor_for(target)). `max_side` centre-
    crops each clean eval image to at most max_side x max_side pixels (fewer tiles: a quick run);
    None scores whole images. `memory=False` skips the peak-RSS child processes.
    `reference_cache`: pass the same dict to several bench() calls with the same (unchanged)
    reference model and images, e.g. one per target in the demo, to run the float model once.
    """
    from ..data.degradations import parse, resize_bicubic

    notes: list[str] = []
    arts = load_artifacts([Path(a) for a in artifacts], target, degradation)
    for a in arts:
        notes.extend(a.notes)
    infos = {(a.info.scale, a.info.degradation) for a in arts}
    spec = (
        degradation
        or arts[0].info.degradation
        or (reference.info.degradation if reference else None)
    )
    if not spec:
        raise EdgekitError(
            f"{arts[0].path}: the manifest names no degradation for evaluation; pass --degradation, "
            "e.g. noise:sigma=25 or downscale:factor=2"
        )
    deg = parse(spec)
    scales = {a.info.scale for a in arts} | {deg.scale}
    if len(scales) != 1:
        raise EdgekitError(
            f"bench: artifacts and degradation disagree on the output scale ({sorted(scales)}): "
            f"degradation '{deg.spec}' has scale {deg.scale}; benchmark models of one task together"
        )
    if len(infos) > 1 and not degradation:
        notes.append(f"artifacts name different degradations; all were evaluated with '{deg.spec}'")
    scale = deg.scale
    if reference is not None and reference.info.scale != scale:
        raise EdgekitError(
            f"reference model '{reference.info.name}' has scale {reference.info.scale}, the artifacts "
            f"{scale}; pass the float model these artifacts were exported from (--reference)"
        )
    executor = executor or executor_for(target)
    settings, snotes = _settings(target, executor)
    notes.extend(snotes)
    host_note = _host_vs_target_note(target, executor)
    if host_note:
        notes.append(host_note)

    images, eval_meta = _eval_images(images_dir, notes.append)
    if max_side is not None:
        images = [_centre_crop(im, max_side) for im in images]
        eval_meta["crop"] = f"centre crop to at most {max_side}x{max_side}"
    degraded, cleans = [], []
    for k, im in enumerate(images):
        x, c = deg(im.pixels, seed=seed * 1_000_003 + k)
        degraded.append(x)
        cleans.append(c)

    # degraded-input baseline (bicubic upscale for super-resolution)
    base_outs = [
        x if scale == 1 else np.clip(resize_bicubic(x, c.shape[:2]), 0, 1)
        for x, c in zip(degraded, cleans, strict=True)
    ]
    base_p, base_s = _scores(base_outs, cleans)

    # group artifacts by tile: one interleaved measurement per tile size
    groups: dict[tuple[int, int], list[BenchArtifact]] = {}
    for a in arts:
        groups.setdefault(a.tile, []).append(a)

    measured_on = executor.measured_on()
    rows: dict[str, dict] = {}
    reference_by_tile: dict[tuple[int, int], list[np.ndarray]] = {}
    device = None
    tiles_count = {}
    with ProgressBars(progress) as prog:
        for tile, members in groups.items():
            ts = _TiledSet.cut(images, degraded, tile, scale, overlap, margin)
            tiles_count[f"{tile[0]}x{tile[1]}"] = int(len(ts.tiles))
            info = members[0].info

            if reference is not None:
                key = (
                    id(reference.model), tile, deg.spec, seed, overlap, margin, max_side,
                    tuple((im.name, im.shape) for im in images),
                )  # fmt: skip
                if reference_cache is not None and key in reference_cache:
                    reference_by_tile[tile] = reference_cache[key]
                else:
                    stage = f"reference (Keras, {tile[0]}x{tile[1]} tiles)"
                    ref_tiles = predict(
                        reference.model,
                        to_model_range(ts.tiles, reference.info),
                        progress=lambda d, t, stage=stage: prog.update(stage, d, t),
                    )
                    reference_by_tile[tile] = ts.blend(from_model_range(ref_tiles, reference.info))
                    if reference_cache is not None:
                        reference_cache[key] = reference_by_tile[tile]

            jobs = [{"id": a.id, "path": str(a.path), "manifest": a.manifest} for a in members]
            tag = f"{tile[0]}x{tile[1]} " if len(groups) > 1 else ""
            try:
                res = executor.measure(
                    jobs, to_model_range(ts.tiles, info), progress=prog.callback(tag), **settings
                )
            except EdgekitError:
                raise
            except Exception as exc:  # RunnerError and runtime failures: name the artifact set
                raise EdgekitError(
                    f"bench: measuring {', '.join(a.path.name for a in members)} failed: {exc}"
                ) from None
            device = device or res.get("device")
            for a in members:
                r = res["results"][a.id]
                outs = from_model_range(np.asarray(res["outputs"][a.id]), a.info)
                expect = (tile[0] * scale, tile[1] * scale)
                if outs.shape[1:3] != expect:
                    raise EdgekitError(
                        f"{a.path}: output tiles are {outs.shape[1]}x{outs.shape[2]}, expected "
                        f"{expect[0]}x{expect[1]} (tile x scale {scale}); check the manifest's model scale"
                    )
                full = ts.blend(outs)
                p, s = _scores(full, cleans)
                row = _row(a, r, p, s, measured_on, res.get("settings", {}))
                if reference is not None:
                    vs = [
                        _capped(psnr(np.clip(y, 0, 1), np.clip(rf, 0, 1)))
                        for y, rf in zip(full, reference_by_tile[tile], strict=True)
                    ]
                    row["psnr_vs_reference_db"] = float(np.mean(vs))
                    row["psnr_vs_reference_per_image"] = vs
                delegate_used = r.get("delegate_used")
                if (
                    r.get("runtime") == "litert"
                    and delegate_used
                    and not str(delegate_used).startswith(settings["delegate"])
                ):
                    msg = f"delegate '{settings['delegate']}' requested, used: {delegate_used}"
                    if msg not in notes:
                        notes.append(msg)
                rows[a.id] = row
            if memory:
                _memory(executor, members, tile, settings, rows, notes, prog, tag)

    ref_block = {
        "psnr_db": None,
        "ssim": None,
        "model": None,
        "mode": None,
        "whole_image_psnr_db": None,
        "tiling_psnr_db": None,
        "measured_on": None,
    }
    if reference is not None:
        first_tile = arts[0].tile
        rp, rs = _scores(reference_by_tile[first_tile], cleans)
        ref_block.update(
            {
                "psnr_db": float(np.mean(rp)),
                "ssim": float(np.mean(rs)),
                "psnr_per_image": rp,
                "model": reference.info.to_dict(),
                "mode": f"float Keras model run through the same {first_tile[0]}x{first_tile[1]} tiling as the artifacts",
                "measured_on": host_label() + " (TensorFlow, float32)",
            }
        )
        wkey = (
            "whole",
            id(reference.model),
            deg.spec,
            seed,
            max_side,
            tuple(im.name for im in images),
        )
        if reference_cache is not None and wkey in reference_cache:
            whole = reference_cache[wkey]
        else:
            whole = _whole_image_reference(reference, degraded)
            if reference_cache is not None:
                reference_cache[wkey] = whole
        if whole is not None:
            wp, _ = _scores(whole, cleans)
            ref_block["whole_image_psnr_db"] = float(np.mean(wp))
            ref_block["tiling_psnr_db"] = float(
                np.mean(
                    [
                        _capped(psnr(np.clip(a, 0, 1), np.clip(b, 0, 1)))
                        for a, b in zip(whole, reference_by_tile[first_tile], strict=True)
                    ]
                )
            )
    else:
        notes.append(
            "no reference model given: psnr_vs_reference_db and reference scores are empty; "
            "pass --reference MODEL (the float Keras model the artifacts came from)"
        )

    ordered = [rows[a.id] for a in arts]
    _relative(ordered, target)
    model_info = (reference.info if reference is not None else arts[0].info).to_dict()
    load = (device or {}).get("load_avg")
    cores = (device or {}).get("cpu_count") or 1
    if load and load[0] > 0.5 * cores:
        notes.append(
            f"machine was busy (1-min load average {load[0]} on {cores} cores): absolute "
            "latencies are inflated; ratios between artifacts stay fair because runs were interleaved"
        )
    if (
        any(r["format"] == "tflite" and r["precision"] == "fp16" for r in ordered)
        and "gpu" not in settings["delegate"]
    ):
        notes.append(
            "fp16 TFLite on a CPU computes in float32 (weights are dequantized at load): expect "
            "no speed-up over fp32 on x86; fp16 pays off on a phone GPU delegate"
        )

    return {
        "schema_version": SCHEMA_VERSION,
        "edgekit_version": __version__,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "out_dir": str(out_dir),
        "measured_on": measured_on,
        "target": {
            "name": target.name,
            "description": target.description,
            "device": target.device,
            "runtime": target.runtime,
            "source": target.source,
            "connection": target.connection.kind,
            "tile": list(target.tile),
            "latency_budget_ms": target.latency_budget_ms,
            "quality_floor_db": target.quality_floor_db,
            "requested": {
                "threads": target.threads,
                "delegate": target.delegate,
                "warmup": target.warmup,
                "repeats": target.repeats,
            },
            "used": settings,
        },
        "host": _host_facts(),
        "device": device,
        "model": model_info,
        "eval_set": {
            **eval_meta,
            "images": [
                {"name": im.name, "height": int(c.shape[0]), "width": int(c.shape[1])}
                for im, c in zip(images, cleans, strict=True)
            ],
            "count": len(images),
            "degradation": deg.spec,
            "scale": scale,
            "seed": seed,
            "tiles": tiles_count,
            "overlap": overlap
            if overlap is not None
            else tiling.default_overlap(min(arts[0].tile)),
            "margin": margin
            if margin is not None
            else tiling.default_margin(
                overlap if overlap is not None else tiling.default_overlap(min(arts[0].tile))
            ),
            "scoring": "mean over images of per-image PSNR/SSIM, outputs clipped to [0, 1], whole images after tiling",
        },
        "reference": ref_block,
        "degraded_input": {
            "psnr_db": float(np.mean(base_p)),
            "ssim": float(np.mean(base_s)),
            "description": "the noisy/degraded input itself"
            if scale == 1
            else f"bicubic x{scale} upscale of the input",
        },
        "artifacts": ordered,
        "steps": [],
        "notes": notes,
    }


def _host_facts() -> dict:
    from ..runtimes.measure import device_facts

    return device_facts()


def _whole_image_reference(
    reference: LoadedModel, degraded: list[np.ndarray]
) -> list[np.ndarray] | None:
    """The float model on each whole image, when it accepts any H x W (else None)."""
    try:
        shape = reference.model.input_shape
        if isinstance(shape, list):
            return None
        if shape[1] is not None or shape[2] is not None:
            return None
        return [
            from_model_range(
                predict(reference.model, to_model_range(x[None], reference.info), 1)[0],
                reference.info,
            )
            for x in degraded
        ]
    except Exception:  # noqa: BLE001 - an extra diagnostic; never fail the benchmark for it
        return None


def _gzip_size(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=9, mtime=0))


def _row(
    a: BenchArtifact, r: dict, p: list[float], s: list[float], measured_on: str, settings: dict
) -> dict:
    m = a.manifest
    lat = r["latency_ms"]
    return {
        "id": a.id,
        "label": a.label,
        "format": m.get("format"),
        "precision": m.get("precision"),
        "io": m.get("io"),
        "path": str(a.path),
        "manifest": str(a.path) + ".json" if a.has_manifest else None,
        "size_bytes": a.path.stat().st_size,
        "gzip_size_bytes": _gzip_size(a.path),
        "input_shape": [1, a.tile[0], a.tile[1], a.info.channels],
        "latency_ms": {k: lat[k] for k in ("mean", "p50", "p90", "p99", "min", "max", "std", "n")},
        "load_ms": r.get("load_ms"),
        "first_run_ms": r.get("first_run_ms"),
        "peak_rss_mb": None,
        "baseline_rss_mb": None,
        "rss_delta_mb": None,
        "psnr_db": float(np.mean(p)),
        "ssim": float(np.mean(s)),
        "psnr_vs_reference_db": None,
        "psnr_per_image": p,
        "measured_on": measured_on,
        "runtime": {
            "name": r.get("runtime"),
            "versions": r.get("versions"),
            "delegate_used": r.get("delegate_used"),
            "threads": settings.get("threads"),
        },
        "speedup_vs_fp32": None,
        "size_ratio_vs_fp32": None,
        "meets_latency_budget": None,
        "meets_quality_floor": None,
        "validation": m.get("validation"),
        "int8_report": m.get("int8_report"),
        "ops": m.get("ops"),
        "plan": m.get("plan") or [],
    }


def _relative(rows: list[dict], target: Target) -> None:
    """Speed-up and size ratio against the fp32 row of the same format (same run), budget checks."""
    fp32: dict[str, dict] = {}
    for r in rows:
        if r["precision"] == "fp32":
            fp32.setdefault(r["format"], r)  # the first fp32 row of each format is the baseline
    for r in rows:
        base = fp32.get(r["format"])
        if base is not None:
            r["speedup_vs_fp32"] = base["latency_ms"]["p50"] / r["latency_ms"]["p50"]
            r["size_ratio_vs_fp32"] = r["size_bytes"] / base["size_bytes"]
        if target.latency_budget_ms is not None:
            r["meets_latency_budget"] = r["latency_ms"]["p50"] <= target.latency_budget_ms
        if target.quality_floor_db is not None and r["psnr_vs_reference_db"] is not None:
            r["meets_quality_floor"] = r["psnr_vs_reference_db"] >= target.quality_floor_db
