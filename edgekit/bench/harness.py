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

bench() runs the parts in order: artifacts (from manifests) -> evaluation set (crop, degrade) ->
per tile size: tiles, float reference, measurement on the executor, scores -> report assembly.
Where things run is one seam: an executor (edgekit.devices: local, ssh, adb); scoring stays on
the host.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..config import Target
from ..data.degradations import parse
from ..devices import executor_for
from ..errors import EdgekitError
from ..models.info import LoadedModel
from ..models.predict import from_model_range, to_model_range
from ..terminal import ProgressBars
from . import crops as _crops
from . import stream as _stream
from .artifacts import BenchArtifact, load_artifacts
from .assemble import (
    artifact_row,
    degraded_block,
    eval_set_block,
    reference_block,
    relative,
    report_dict,
    target_block,
)
from .evalset import build_eval_set
from .perphoto import score_outputs
from .reference import ReferenceRuns

DEFAULT_SEED = 0


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
    whole_image: bool = False,
) -> dict:
    """Benchmark artifacts on a target and return the report dict (see docs/report-schema.md).

    out_dir is recorded in the report (write it with edgekit.report.render.write_report).
    `executor` replaces where measure() runs (default: executor_for(target)). `max_side` centre-
    crops each clean eval image to at most max_side x max_side pixels (fewer tiles: a quick run);
    None scores whole images. `memory=False` skips the peak-RSS child processes.
    `reference_cache`: pass the same dict to several bench() calls with the same reference model
    and images, e.g. one per target in the demo, to run the float model once (keyed by the
    model's weights and the eval inputs).
    Local runs stream each photo through runtimes/tiled.py (bench/stream.py): memory is bounded
    by the tile, not the photo. `whole_image=True` also runs the float model on each whole photo
    (reference.tiling_psnr_db); refused up front when it would not fit in memory.
    """
    notes: list[str] = []
    arts = load_artifacts([Path(a) for a in artifacts], target, degradation)
    for a in arts:
        notes.extend(a.notes)
    deg = parse(_degradation_spec(arts, degradation, reference))
    _check_scales(arts, deg, reference)
    if len({(a.info.scale, a.info.degradation) for a in arts}) > 1 and not degradation:
        notes.append(f"artifacts name different degradations; all were evaluated with '{deg.spec}'")
    executor = executor or executor_for(target)
    settings, snotes = _settings(target, executor)
    notes.extend(snotes)
    host_note = _host_vs_target_note(target, executor)
    if host_note:
        notes.append(host_note)
    largest = (max(a.tile[0] for a in arts), max(a.tile[1] for a in arts))
    evalset = build_eval_set(
        images_dir, deg, seed=seed, max_side=max_side, note=notes.append, tile=largest
    )
    if whole_image and reference is not None:
        shapes = [x.shape[:2] for x in evalset.degraded]
        _stream.check_whole_image_fits(reference.model, shapes, evalset.scale)
    refs = ReferenceRuns(reference, reference_cache) if reference is not None else None

    # group artifacts by tile: one interleaved measurement per tile size
    groups: dict[tuple[int, int], list[BenchArtifact]] = {}
    for a in arts:
        groups.setdefault(a.tile, []).append(a)
    measured_on = executor.measured_on()
    rows: dict[str, dict] = {}
    reference_by_tile: dict[tuple[int, int], list[np.ndarray]] = {}
    device = None
    tiles_count = {}
    crop_ctx = None  # crops of held-out photos for report.html (bench/crops.py)
    with ProgressBars(progress) as prog:
        for tile, members in groups.items():
            # Local runs stream each photo tile row by tile row; remote executors get every tile
            # in one job and the outputs are blended here.
            streamed = getattr(executor, "kind", "local") == "local"
            if streamed:
                ts = None
                n_tiles = _stream.check_and_count(evalset, tile, overlap, margin)
                need = min(n_tiles, max(settings["repeats"], settings["warmup"], 1))
                timing = _stream.timing_tiles(evalset.degraded, tile, overlap, margin, need)
            else:
                ts = evalset.tiled(tile, overlap, margin)
                n_tiles, timing = len(ts.tiles), ts.tiles
            tiles_count[f"{tile[0]}x{tile[1]}"] = int(n_tiles)
            if refs is not None:
                stage = f"reference (Keras, {tile[0]}x{tile[1]} tiles)"
                reference_by_tile[tile] = refs.tiled(
                    evalset, ts, tile, overlap, margin,
                    progress=lambda d, t, stage=stage: prog.update(stage, d, t),
                )  # fmt: skip
            if crop_ctx is None:
                crop_ctx = _crops.context(
                    evalset.images, evalset.cleans, evalset.degraded,
                    reference_by_tile.get(tile), evalset.scale,
                )  # fmt: skip
            tag = f"{tile[0]}x{tile[1]} " if len(groups) > 1 else ""
            res = _measure(executor, members, to_model_range(timing, members[0].info),
                           {**settings, **({"outputs": False} if streamed else {})},
                           prog.callback(tag))  # fmt: skip
            device = device or res.get("device")
            for a in members:
                # whole outputs one photo at a time, each scored and cropped, then dropped
                if streamed:
                    stage = f"{tag}outputs {a.path.name}"
                    outs = _stream.artifact_outputs(
                        a, evalset, tile, overlap, margin, settings,
                        progress=lambda d, t, stage=stage: prog.update(stage, d, t),
                    )  # fmt: skip
                else:
                    outs = ts.blend_each(_outputs(a, res, tile, evalset.scale))
                sc = score_outputs(outs, evalset.cleans, reference_by_tile.get(tile), crop_ctx)
                del outs
                row = artifact_row(
                    a, res["results"][a.id], sc["psnr"], sc["ssim"], measured_on,
                    res.get("settings", {}),
                )  # fmt: skip
                row["crop_pixels"] = sc["crops"]
                if refs is not None:
                    vs = sc["psnr_vs_reference"]
                    row["psnr_vs_reference_db"] = float(np.mean(vs))
                    row["psnr_vs_reference_per_image"] = vs
                _delegate_note(res["results"][a.id], settings, notes)
                rows[a.id] = row
            if memory:
                _memory(executor, members, tile, settings, rows, notes, prog, tag)

    first_tile = arts[0].tile
    ref_block = reference_block(
        reference,
        reference_by_tile.get(first_tile),
        refs.whole(evalset) if refs is not None and whole_image else None,
        evalset,
        first_tile,
    )
    if reference is None:
        notes.append(
            "no reference model given: psnr_vs_reference_db and reference scores are empty; "
            "pass --reference MODEL (the float Keras model the artifacts came from)"
        )
    ordered = [rows[a.id] for a in arts]
    relative(ordered, target)
    notes.extend(_run_notes(device, ordered, settings))
    return report_dict(
        out_dir=out_dir,
        measured_on=measured_on,
        target_info=target_block(target, settings),
        device=device,
        model=(reference.info if reference is not None else arts[0].info).to_dict(),
        eval_set=eval_set_block(evalset, tiles_count, overlap, margin, first_tile),
        reference=ref_block,
        degraded=degraded_block(evalset),
        artifacts=ordered,
        notes=notes,
    ) | {"crops": crop_ctx}


def _degradation_spec(arts, degradation, reference) -> str:
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
    return spec


def _check_scales(arts, deg, reference) -> None:
    scales = {a.info.scale for a in arts} | {deg.scale}
    if len(scales) != 1:
        raise EdgekitError(
            f"bench: artifacts and degradation disagree on the output scale ({sorted(scales)}): "
            f"degradation '{deg.spec}' has scale {deg.scale}; benchmark models of one task together"
        )
    if reference is not None and reference.info.scale != deg.scale:
        raise EdgekitError(
            f"reference model '{reference.info.name}' has scale {reference.info.scale}, the artifacts "
            f"{deg.scale}; pass the float model these artifacts were exported from (--reference)"
        )


def _measure(executor, members, inputs, settings, progress) -> dict:
    """One interleaved measurement of the artifacts of one tile size on the executor."""
    jobs = [{"id": a.id, "path": str(a.path), "manifest": a.manifest} for a in members]
    try:
        return executor.measure(jobs, inputs, progress=progress, **settings)
    except EdgekitError:
        raise
    except Exception as exc:  # RunnerError and runtime failures: name the artifact set
        raise EdgekitError(
            f"bench: measuring {', '.join(a.path.name for a in members)} failed: {exc}"
        ) from None


def _outputs(a: BenchArtifact, res: dict, tile, scale: int) -> np.ndarray:
    """The artifact's output tiles in [0, 1], checked against tile x scale."""
    outs = from_model_range(np.asarray(res["outputs"][a.id]), a.info)
    expect = (tile[0] * scale, tile[1] * scale)
    if outs.shape[1:3] != expect:
        raise EdgekitError(
            f"{a.path}: output tiles are {outs.shape[1]}x{outs.shape[2]}, expected "
            f"{expect[0]}x{expect[1]} (tile x scale {scale}); check the manifest's model scale"
        )
    return outs


def _delegate_note(r: dict, settings: dict, notes: list[str]) -> None:
    used = r.get("delegate_used")
    if r.get("runtime") == "litert" and used and not str(used).startswith(settings["delegate"]):
        msg = f"delegate '{settings['delegate']}' requested, used: {used}"
        if msg not in notes:
            notes.append(msg)


def _run_notes(device: dict | None, rows: list[dict], settings: dict) -> list[str]:
    """What the reader must know to read the numbers: a busy machine, fp16 on a CPU."""
    notes = []
    load = (device or {}).get("load_avg")
    cores = (device or {}).get("cpu_count") or 1
    if load and load[0] > 0.5 * cores:
        notes.append(
            f"machine was busy (1-min load average {load[0]} on {cores} cores): absolute "
            "latencies are inflated; ratios between artifacts stay fair because runs were interleaved"
        )
    if (
        any(r["format"] == "tflite" and r["precision"] == "fp16" for r in rows)
        and "gpu" not in settings["delegate"]
    ):
        notes.append(
            "fp16 TFLite on a CPU computes in float32 (weights are dequantized at load): expect "
            "no speed-up over fp32 on x86; fp16 pays off on a phone GPU delegate"
        )
    return notes


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
