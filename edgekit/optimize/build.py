"""Build one candidate: (train) -> export (validated against its floor) -> score on validation.

`build_candidate(ctx, candidate)` is what an executor runs, here or in a Ray task: it takes only
plain data (the context carries arrays, never a path to the user's photos) and returns plain data
(the artifact's bytes, its manifest, its validation-split scores). Latency is never measured here.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import EdgekitError

_MODELS: dict[str, object] = {}  # process-local: model key -> LoadedModel (one load per worker)


@dataclass
class BuildContext:
    model_key: str  # fingerprint of the float model
    model_spec: str  # zoo:NAME or a path
    model_bytes: bytes | None  # the file's bytes when the model is a single file (remote workers)
    load_kwargs: dict
    tile: tuple[int, int]
    scale: int
    value_range: tuple[float, float]
    threads: int
    calib_inputs: np.ndarray  # degraded calibration tiles
    check_inputs: np.ndarray  # degraded validation tiles for the exporter's floor check
    val_degraded: list
    val_cleans: list
    train_images: list = field(default_factory=list)  # whole calibration photos (training steps)
    degradation: str = ""


def remember(ctx: BuildContext, loaded) -> None:
    """Hand this process an already loaded model (the local executor skips a reload)."""
    _MODELS[ctx.model_key] = loaded


def _loaded(ctx: BuildContext):
    if ctx.model_key in _MODELS:
        return _MODELS[ctx.model_key]
    from ..models.loading import load_model

    spec = ctx.model_spec
    tmp = None
    if ctx.model_bytes is not None:
        tmp = tempfile.TemporaryDirectory(prefix="edgekit-optimize-model-")
        spec = str(Path(tmp.name) / Path(ctx.model_spec).name)
        Path(spec).write_bytes(ctx.model_bytes)
    try:
        loaded = load_model(spec, **ctx.load_kwargs)
    finally:
        if tmp is not None:
            tmp.cleanup()
    _MODELS.clear()
    _MODELS[ctx.model_key] = loaded
    return loaded


def _train(loaded, candidate, ctx: BuildContext):
    from ..compress.plan import run_plan
    from ..config import plan_from_dict

    plan = plan_from_dict({"steps": [json.loads(s) for s in candidate.plan]}, "optimize")
    compressed, rows = run_plan(
        loaded, plan, calib_images=ctx.train_images, degradation=ctx.degradation, progress=False
    )
    return compressed, plan.to_manifest(), rows


def build_candidate(ctx: BuildContext, candidate) -> dict:
    """Plain-data result: ok, error, seconds, artifact_bytes, manifest, psnr_db, ssim, ..."""
    from ..config import Format, Precision
    from ..export.base import ExportRequest, get_exporter

    t0 = time.perf_counter()
    loaded = _loaded(ctx)
    plan, steps = [], []
    try:
        if candidate.plan:
            loaded, plan, steps = _train(loaded, candidate, ctx)
        options = candidate.exporter_options()
        request = ExportRequest(
            format=Format(candidate.format),
            precision=Precision(candidate.precision),
            shape=tuple(ctx.tile),
            io=candidate.io,
            calib_inputs=ctx.calib_inputs,
            val_inputs=ctx.check_inputs,
            options=options,
            plan=plan,
            threads=ctx.threads,
            options_source=f"optimize candidate {candidate.label}",
        )
        with tempfile.TemporaryDirectory(prefix="edgekit-candidate-") as d:
            out = Path(d) / ("artifact" + candidate.suffix)
            artifact = get_exporter(candidate.format).export(loaded, request, out)
            result = {"ok": True, "error": None}
            if candidate.kind != "probe":  # probes only need the export's validation numbers
                from .quality import score_artifact

                result.update(
                    score_artifact(
                        str(out),
                        ctx.val_degraded,
                        ctx.val_cleans,
                        ctx.tile,
                        ctx.scale,
                        ctx.value_range,
                        ctx.threads,
                    )
                )
                result["artifact_bytes"] = out.read_bytes()
            result["manifest"] = artifact.manifest
    except EdgekitError as exc:  # the floor check or the converter refused it: a result too
        # the temporary file name means nothing to the user: name the candidate instead
        msg = str(exc).split(": ", 1)[1] if str(exc).startswith(tempfile.gettempdir()) else str(exc)
        result = {"ok": False, "error": f"{candidate.label}: {msg}"}
    result["seconds"] = round(time.perf_counter() - t0, 2)
    result["steps"] = steps
    man = result.get("manifest") or {}
    result["validation"] = man.get("validation")
    result["mixed_precision"] = (man.get("converter") or {}).get("mixed_precision")
    if candidate.kind == "probe":
        result.pop("manifest", None)  # a probe keeps its numbers, not its file
    return result
