"""Report assembly: artifact rows, fp32 ratios, budget checks, the report's blocks and dict.

Ratios compare rows of the same run; the schema is edgekit.report.schema. merge_reports joins
several targets' reports (the demo).
"""

from __future__ import annotations

import gzip
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .. import __version__
from ..config import Target, host_label
from ..report.schema import SCHEMA_VERSION
from . import tiling
from .artifacts import BenchArtifact
from .evalset import EvalSet
from .scoring import psnr_vs, scores


def artifact_row(
    a: BenchArtifact, r: dict, p: list[float], s: list[float], measured_on: str, settings: dict
) -> dict:
    """The report row of one artifact from its measurement `r` and its scores."""
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


def _gzip_size(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=9, mtime=0))


def relative(rows: list[dict], target: Target) -> None:
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


def reference_block(reference, tiled: list | None, whole: list | None, evalset, tile) -> dict:
    """The report's `reference` block: the float model through the artifacts' tiling (and on whole
    images when it takes any size); all None without a reference model."""
    block = {
        "psnr_db": None,
        "ssim": None,
        "model": None,
        "mode": None,
        "whole_image_psnr_db": None,
        "tiling_psnr_db": None,
        "measured_on": None,
    }
    if reference is None:
        return block
    rp, rs = scores(tiled, evalset.cleans)
    block.update(
        {
            "psnr_db": float(np.mean(rp)),
            "ssim": float(np.mean(rs)),
            "psnr_per_image": rp,
            "model": reference.info.to_dict(),
            "mode": f"float Keras model run through the same {tile[0]}x{tile[1]} tiling as the artifacts",
            "measured_on": host_label() + " (TensorFlow, float32)",
        }
    )
    if whole is not None:
        wp, _ = scores(whole, evalset.cleans)
        block["whole_image_psnr_db"] = float(np.mean(wp))
        block["tiling_psnr_db"] = float(np.mean(psnr_vs(whole, tiled)))
    return block


def eval_set_block(
    evalset: EvalSet, tiles_count: dict, overlap: int | None, margin: int | None, tile
) -> dict:
    """The report's `eval_set` block: what was scored and how it was tiled."""
    overlap_used = overlap if overlap is not None else tiling.default_overlap(min(tile))
    return {
        **evalset.meta,
        "images": [
            {"name": im.name, "height": int(c.shape[0]), "width": int(c.shape[1])}
            for im, c in zip(evalset.images, evalset.cleans, strict=True)
        ],
        "count": len(evalset.images),
        "degradation": evalset.degradation.spec,
        "scale": evalset.scale,
        "seed": evalset.seed,
        "tiles": tiles_count,
        "overlap": overlap_used,
        "margin": margin if margin is not None else tiling.default_margin(overlap_used),
        "scoring": "mean over images of per-image PSNR/SSIM, outputs clipped to [0, 1], whole images after tiling",
    }


def target_block(target: Target, settings: dict) -> dict:
    """The report's `target` block: the profile, what it asked for and what was used."""
    return {
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
    }


def degraded_block(evalset: EvalSet) -> dict:
    """The report's `degraded_input` block: the input itself scored as an output."""
    p, s = [], []
    for k, clean in enumerate(evalset.cleans):  # one upscaled photo at a time
        pk, sk = scores([evalset.baseline_of(k)], [clean])
        p.extend(pk)
        s.extend(sk)
    return {
        "psnr_db": float(np.mean(p)),
        "ssim": float(np.mean(s)),
        "description": "the noisy/degraded input itself"
        if evalset.scale == 1
        else f"bicubic x{evalset.scale} upscale of the input",
    }


def report_dict(*, out_dir, measured_on, target_info, device, model, eval_set, reference,
                degraded, artifacts, notes) -> dict:  # fmt: skip
    """The report in its schema's key order."""
    from ..runtimes.measure import device_facts

    return {
        "schema_version": SCHEMA_VERSION,
        "edgekit_version": __version__,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "out_dir": str(out_dir),
        "measured_on": measured_on,
        "target": target_info,
        "host": device_facts(),
        "device": device,
        "model": model,
        "eval_set": eval_set,
        "reference": reference,
        "degraded_input": degraded,
        "artifacts": artifacts,
        "steps": [],
        "notes": notes,
    }


def merge_reports(reports: list[dict]) -> dict:
    """One report from several targets' reports on the same model and evaluation set."""
    if len(reports) == 1:
        return reports[0]
    merged = dict(reports[0])
    merged["artifacts"] = []
    merged["targets"] = []
    merged["notes"] = []
    for r in reports:
        tname = (r.get("target") or {}).get("name")
        merged["targets"].append(r.get("target"))
        for a in r.get("artifacts", []):
            merged["artifacts"].append({**a, "target": a.get("target", tname)})
        for n in r.get("notes", []):
            if n not in merged["notes"]:
                merged["notes"].append(n)
    return merged
