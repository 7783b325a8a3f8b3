"""The search: cheap candidates first, mixed precision when int8 breaks the budget, training last.

1. PTQ: every searchable export the target lists, built (converted, validated against its floor,
   scored on the validation photos) by the executor, then timed together through the harness.
2. Mixed precision, when a full-int8 TFLite export misses the budget: per-node sensitivity
   probes (sensitivity.py), then the fewest most-sensitive nodes kept in float (mixed.py).
3. Training (channel pruning + distillation, QAT) only when every export is integer and a
   --time-budget is given, one candidate at a time while the budget lasts.
Each timing run is interleaved with the current best, so every choice compares numbers from one
run on one machine. The chosen artifact is re-scored on the test photos, never used for a choice,
in one harness run with plain PTQ int8 and fp32 beside it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EdgekitError
from . import space
from .space import Candidate

METRICS = ("psnr", "ssim")
CONFIRM_TOP = 4  # candidates in the final confirmation timing run
EPS = 1e-9


class BudgetNotMet(EdgekitError):
    """No candidate meets --max-drop: the report is written, the exit code is 3."""

    exit_code = 3


@dataclass(eq=False)
class Record:
    candidate: Candidate
    result: dict
    cached: bool
    index: int
    latency: dict | None = None  # {latency_ms: {...}, measured_on, run}
    drop: float | None = None  # in the search metric's unit, on the validation photos
    meets: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def p50(self) -> float | None:
        return (self.latency or {}).get("latency_ms", {}).get("p50")


def check_args(max_drop, metric: str, time_budget, executor: str, ray_address) -> None:
    """Bad input fails here, before any model is loaded."""
    from .executors import EXECUTORS, check_address

    if max_drop is None or not math.isfinite(float(max_drop)) or float(max_drop) < 0:
        raise EdgekitError(
            f"--max-drop {max_drop}: expected a non-negative number (dB of PSNR, or SSIM units "
            "with --metric ssim) the optimized model may lose against the float model"
        )
    if metric not in METRICS:
        raise EdgekitError(f"--metric '{metric}': expected one of {', '.join(METRICS)}")
    if time_budget is not None and not (float(time_budget) > 0):
        raise EdgekitError(f"--time-budget {time_budget}: expected a positive number of minutes")
    if executor not in EXECUTORS:
        raise EdgekitError(f"--executor '{executor}': expected one of {', '.join(EXECUTORS)}")
    if ray_address and executor != "ray":
        raise EdgekitError("--ray-address needs --executor ray")
    if ray_address:
        check_address(ray_address)


def _console():
    import sys

    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 160, highlight=False)


def _load(spec, allow_custom_code, degradation, overrides):
    from ..models.loading import load_model

    loaded = load_model(
        spec, allow_custom_code=allow_custom_code, degradation=degradation, **(overrides or {})
    )
    if not loaded.info.degradation:
        raise EdgekitError(
            f"{spec}: edgekit does not know how this model's inputs are degraded; pass "
            "--degradation, e.g. noise:sigma=25 or downscale:factor=2"
        )
    return loaded


def _model_bytes(spec: str) -> bytes | None:
    p = Path(spec)
    return p.read_bytes() if not spec.startswith("zoo:") and p.is_file() else None


class Search:
    def __init__(
        self, *, target, loaded, ctx, cache, executor, max_drop, metric, deadline, console
    ):
        self.target = target
        self.loaded = loaded
        self.ctx = ctx
        self.cache = cache
        self.exe = executor
        self.max_drop = float(max_drop)
        self.metric = metric
        self.deadline = deadline
        self.console = console
        self.records: dict[str, Record] = {}
        self.planned = 0
        self.built = 0
        self.reused = 0
        self.skipped: list[str] = []
        self.best: Record | None = None
        self.reference: dict = {}
        self.latency_runs = 0
        self.stopped_by_time = False

    # ------------------------------------------------------------ building

    def out_of_time(self) -> bool:
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.stopped_by_time = True
            return True
        return False

    def build(self, cands: list[Candidate]) -> list[Record]:
        """Build (or take from the cache) these candidates; returns their records in order."""
        from .build import build_candidate

        todo = []
        fresh = [c for c in dict.fromkeys(cands) if c.id not in self.records]
        self.planned += len(fresh)
        for c in fresh:
            hit = self.cache.get(c)
            if hit is not None:
                self.reused += 1
                self._record(c, hit, cached=True)
            else:
                todo.append(c)

        def done(c, result):
            self.built += 1
            if not result.get("transient"):
                result = self.cache.put(c, result)
            self._record(c, result, cached=False)

        if self.exe.name == "local":
            for c in todo:
                if self.out_of_time():
                    self.skipped.append(c.label)
                    continue
                self.exe.map(build_candidate, self.ctx, [c], done)
        elif todo:
            if self.out_of_time():
                self.skipped += [c.label for c in todo]
            else:
                self.exe.map(build_candidate, self.ctx, todo, done)
        return [self.records[c.id] for c in cands if c.id in self.records]

    def _record(self, c: Candidate, result: dict, cached: bool) -> None:
        rec = Record(c, result, cached, index=len(self.records) + 1)
        if result.get("ok") and c.kind != "probe":
            rec.drop = self.drop(result)
            rec.meets = rec.drop <= self.max_drop + EPS
        self.records[c.id] = rec
        if c.kind == "probe":
            return
        how = "cached" if cached else f"built in {result.get('seconds', 0):.1f} s"
        if result.get("ok"):
            what = (
                f"val PSNR {result['psnr_db']:.2f} dB, SSIM {result['ssim']:.4f}, drop "
                f"{rec.drop:+.3f}{' dB' if self.metric == 'psnr' else ''} "
                + ("[green]within budget[/]" if rec.meets else "[red]over budget[/]")
            )
        else:
            what = f"[red]failed[/]: {result.get('error')}"
        self.console.print(
            f"candidate {rec.index} of {self.planned}: [bold]{c.label}[/] ({how}): {what}; "
            f"best so far: {self.best_text()}"
        )

    def drop(self, result: dict) -> float:
        key = "psnr_db" if self.metric == "psnr" else "ssim"
        return float(self.reference[key] - result[key])

    def best_text(self) -> str:
        if self.best is None:
            return "none yet"
        return f"{self.best.candidate.label} ({self.best.p50:.2f} ms p50)"

    # ------------------------------------------------------------ timing and choosing

    def confirm(self, photos: Path, out_dir: Path, top: int = CONFIRM_TOP) -> None:
        """The fastest few within budget timed once more together, with 3x the repeats: the
        choice rests on one run, not on runs minutes apart (validation photos, as every choice)."""
        feasible = sorted(
            (r for r in self.records.values() if r.meets and r.p50 is not None),
            key=lambda r: r.p50,
        )[:top]
        if len(feasible) < 2:
            return
        self.console.print(
            "confirming the choice: " + ", ".join(r.candidate.label for r in feasible)
        )
        self.time_round(feasible, photos, out_dir, repeats=3)

    def time_round(self, recs: list[Record], photos: Path, out_dir: Path, repeats: int = 1) -> None:
        """Time these candidates interleaved with the current best; update the best.
        repeats: a multiple of the target's repeats (a confirmation run)."""
        from .latency import measure

        with_art = [r for r in recs if r.result.get("ok") and r.result.get("artifact")]
        if not with_art:
            return  # nothing new to time
        group = with_art + ([self.best] if self.best and self.best not in with_art else [])
        self.latency_runs += 1
        run = self.latency_runs
        self.console.print(
            f"timing {len(group)} artifact(s) interleaved on {self.target.name} (run {run})"
        )
        target = self.target
        if repeats > 1:
            target = target.model_copy(update={"repeats": target.repeats * repeats})
        got = measure([r.result["artifact"] for r in group], target, photos, out_dir / f"run{run}")
        for r in group:
            lat = got.get(str(Path(r.result["artifact"])))
            if lat is not None:
                r.latency = {**lat, "run": run}
        feasible = [r for r in group if r.meets and r.p50 is not None]
        if feasible:
            fastest = min(feasible, key=lambda r: r.p50)
            if fastest is not self.best:
                self.best = fastest
                self.console.print(f"best so far: [bold]{self.best_text()}[/]")


def optimize(
    model: str,
    *,
    target,
    max_drop: float,
    out_dir: Path,
    metric: str = "psnr",
    calib_dir: Path | None = None,
    degradation: str | None = None,
    time_budget: float | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    allow_custom_code: bool = False,
    overrides: dict | None = None,
    eval_max_side: int | None = None,
    console=None,
) -> dict:
    """Search, write DIR/best.<ext> (+ manifest), DIR/report.json and DIR/report.html.

    Returns the report; raises BudgetNotMet (exit 3) after writing it when nothing fits."""
    from ..config import Target, load_target
    from ..data.degradations import parse
    from ..data.patches import degraded_tiles
    from ..paths import calibration_dir
    from . import quality, sensitivity
    from .build import BuildContext, remember
    from .cache import Cache, fingerprint_arrays, fingerprint_model
    from .executors import make_executor
    from .splits import DEFAULT_MAX_SIDE, crop, link_folder, split_photos

    t_start = time.monotonic()
    console = console or _console()
    check_args(max_drop, metric, time_budget, executor, ray_address)
    target = target if isinstance(target, Target) else load_target(target)
    ptq, notes = space.ptq_candidates(target)
    if not ptq:
        raise EdgekitError(
            f"target '{target.name}' ({target.source}): none of its exports "
            f"({', '.join(e.label for e in target.exports)}) is a TFLite or ONNX artifact this "
            "machine can build and time; pick a target that lists tflite or onnx exports"
        )
    out_dir = Path(out_dir)
    loaded = _load(model, allow_custom_code, degradation, overrides)
    deg = parse(loaded.info.degradation)
    tile = tuple(target.tile)
    from ..models.loading import check_input_size

    check_input_size(loaded.info, *tile)
    max_side = DEFAULT_MAX_SIDE if eval_max_side is None else eval_max_side
    max_side = max(max_side, tile[0] * deg.scale, tile[1] * deg.scale) if max_side else None
    folder = Path(calib_dir) if calib_dir else calibration_dir()
    splits = split_photos(folder, max_side, (tile[0] * deg.scale, tile[1] * deg.scale))
    if splits.too_small:
        notes.append(f"photos smaller than one tile, left out: {', '.join(splits.too_small)}")

    console.print(
        f"[bold]edgekit optimize[/] {loaded.info.name} for {target.name}: max drop "
        f"{max_drop:g} {'dB PSNR' if metric == 'psnr' else 'SSIM'}; photos: "
        f"{len(splits.calib)} calibration, {len(splits.val)} validation, {len(splits.test)} test"
    )
    calib_tiles, _ = degraded_tiles(splits.calib, deg, tile, per_image=1, seed=1)
    check_tiles, _ = degraded_tiles(splits.val, deg, tile, per_image=2, seed=2)
    val_imgs = crop(splits.val, max_side)
    val_deg, val_clean = quality.degrade(val_imgs, deg.spec)
    model_fp = fingerprint_model(loaded.model)
    ctx = BuildContext(
        model_key=model_fp,
        model_spec=model,
        model_bytes=_model_bytes(model),
        load_kwargs={
            "allow_custom_code": allow_custom_code,
            "degradation": degradation,
            **(overrides or {}),
        },
        tile=tile,
        scale=deg.scale,
        value_range=tuple(loaded.info.value_range),
        threads=min(target.threads, 2),
        calib_inputs=calib_tiles,
        check_inputs=check_tiles,
        val_degraded=val_deg,
        val_cleans=val_clean,
        train_images=splits.calib,
        degradation=deg.spec,
    )
    remember(ctx, loaded)
    data_fp = fingerprint_arrays(calib_tiles, check_tiles, *val_deg, *val_clean)
    cache = Cache(out_dir / "cache", model_fp, data_fp)
    exe = make_executor(executor, ray_address)
    deadline = t_start + float(time_budget) * 60 if time_budget else None
    s = Search(
        target=target,
        loaded=loaded,
        ctx=ctx,
        cache=cache,
        executor=exe,
        max_drop=max_drop,
        metric=metric,
        deadline=deadline,
        console=console,
    )
    val_folder = link_folder(splits.val, splits.folder, out_dir / "splits" / "validation")
    test_folder = link_folder(splits.test, splits.folder, out_dir / "splits" / "test")
    s.reference = quality.score_keras(
        loaded.model, val_deg, val_clean, tile, deg.scale, loaded.info.value_range
    )
    console.print(
        f"float model on the validation photos: PSNR {s.reference['psnr_db']:.2f} dB, "
        f"SSIM {s.reference['ssim']:.4f} (host CPU, TensorFlow); builds run in {exe.where}"
    )
    ranking: list[dict] = []
    try:
        # 1. PTQ variants (slow precisions such as int16x8 come last in the list)
        recs = s.build(ptq)
        s.time_round(recs, val_folder, out_dir / "latency")
        # 2. mixed precision where full int8 misses the budget
        for base in [r for r in recs if space.mixed_base(r.candidate) and not r.meets]:
            ranking = _mixed_search(s, base.candidate, sensitivity)
            mixed = [r for r in s.records.values() if r.candidate.kind == "mixed"]
            s.time_round(mixed, val_folder, out_dir / "latency")
        # 3. training candidates, one at a time, while the time budget lasts
        if time_budget and space.training_allowed(target):
            # train before the recipe that won so far (its float nodes too), else plain int8
            won = s.best.candidate if s.best is not None else None
            base = (
                won
                if won is not None and won.precision == "int8" and not won.plan
                else next((c for c in ptq if c.precision == "int8"), None)
            )
            for c in space.training_candidates(target, base) if base else []:
                if s.out_of_time():
                    s.skipped.append(c.label)
                    continue
                s.time_round(s.build([c]), val_folder, out_dir / "latency")
        elif space.training_allowed(target):
            notes.append(
                "training candidates (channel pruning + distillation, QAT) were not tried: give "
                "--time-budget MINUTES to allow them"
            )
        else:
            notes.append(
                "training candidates are only tried when every export of the target is integer"
            )
        s.confirm(val_folder, out_dir / "latency")
    finally:
        exe.close()
    if s.skipped:
        notes.append(f"not built (time budget reached): {', '.join(s.skipped)}")

    from .report import finish

    report = finish(
        s,
        out_dir=out_dir,
        test_folder=test_folder,
        splits=splits,
        deg=deg,
        ranking=ranking,
        notes=notes,
        time_budget=time_budget,
        wall_s=time.monotonic() - t_start,
        executor=exe,
    )
    if report["best"] is None:
        close = report.get("closest")
        what = (
            f"closest: {close['label']} at {close['drop']:.3f} over the float model ({close['path']})"
            if close
            else "no candidate could be built"
        )
        raise BudgetNotMet(
            f"no candidate meets --max-drop {max_drop:g} on the validation photos; {what}; "
            f"report: {out_dir / 'report.json'}"
        )
    return report


def _probe_options(c: Candidate) -> tuple:
    # A probe measures, it does not ship: no floor, so even a broken int8 model gives numbers.
    return tuple(sorted({**dict(c.options), "min_psnr_db": 0.0}.items()))


def _mixed_search(s: Search, base: Candidate, sensitivity) -> list[dict]:
    from .mixed import smallest_k

    probe_base = space.Candidate(
        base.format, base.precision, base.io, _probe_options(base), (), base.plan, base.rewrite,
        "probe",
    )  # fmt: skip
    s.console.print(f"{base.label} misses the budget: measuring per-node sensitivity")
    (base_rec,) = s.build([probe_base]) or (None,)
    if base_rec is None or not base_rec.result.get("ok"):
        return []
    names = [n["node"] for n in sensitivity.probe_nodes(base_rec.result)]
    probes = {
        n: space.with_float_nodes(probe_base, [m for m in names if m != n], "probe") for n in names
    }
    built = {r.candidate.id: r.result for r in s.build(list(probes.values()))}
    got = {n: built[c.id] for n, c in probes.items() if c.id in built}
    ranking = sensitivity.rank(base_rec.result, got)
    s.console.print(
        "most sensitive (share of int8's error): "
        + ", ".join(
            f"{r['layer'] or r['node']} {r['op']} ({100 * (r['share'] or 0):.0f} %)"
            for r in ranking[:5]
        )
    )
    order = [r["node"] for r in ranking]

    def passes(k: int):
        cand = space.with_float_nodes(base, order[:k])
        recs = s.build([cand])
        if not recs:
            return None  # out of time
        return recs[0].meets

    smallest_k(len(order) - 1, passes)  # at least one node stays int8: else it is fp32
    return ranking
