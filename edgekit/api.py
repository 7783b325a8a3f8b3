"""The typed verbs of edgekit: export, bench, compress, compare, optimize, demo, targets, zoo.

cli.py and benchmarks/ call these. Thin: each checks and converts its arguments, then runs
edgekit.pipeline (edgekit.optimize for optimize).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Precision, Target
    from .export.base import Artifact
    from .models.info import LoadedModel


def load(
    model: str,
    *,
    degradation: str | None = None,
    allow_custom_code: bool = False,
    value_range: tuple[float, float] | None = None,
    task: str | None = None,
) -> LoadedModel:
    """A model file or zoo:NAME, checked and described (its task must be known)."""
    from .pipeline import load_checked

    return load_checked(model, allow_custom_code, degradation, _overrides(value_range, task))


def export(
    model: str | LoadedModel,
    *,
    format: str,
    precision: str | Precision,
    out: str | Path,
    target: str | Target | None = None,
    shape: tuple[int, int] | None = None,
    calib_dir: str | Path | None = None,
    calib: tuple | None = None,
    degradation: str | None = None,
    io: str = "float",
    options: dict | None = None,
    plan: list | None = None,
    allow_custom_code: bool = False,
    value_range: tuple[float, float] | None = None,
    task: str | None = None,
) -> Artifact:
    """One artifact of one model, validated against the float model before it is written.
    `calib` (calibration, validation) tiles replace the calibration folder when given."""
    from . import pipeline
    from .config import parse_precision

    prec = parse_precision(precision) if isinstance(precision, str) else precision
    common = {
        "fmt": format,
        "precision": prec,
        "shape": tuple(shape) if shape else None,
        "io": io,
        "out": Path(out),
        "options": dict(options or {}),
        "calib_dir": Path(calib_dir) if calib_dir else None,
    }
    if isinstance(model, str):
        return pipeline.export_model(
            model,
            target=target,
            degradation=degradation,
            allow_custom_code=allow_custom_code,
            overrides=_overrides(value_range, task),
            **common,
        )
    return pipeline.export_loaded(
        model, target=pipeline.resolve_target(target), calib=calib, plan=plan, **common
    )


def bench(
    artifacts: list[str | Path],
    *,
    out_dir: str | Path,
    target: str | Target = "host-cpu",
    reference: str | LoadedModel | None = None,
    images_dir: str | Path | None = None,
    degradation: str | None = None,
    benchmark_model: str | None = None,
    max_side: int | None = None,
    seed: int | None = None,
    memory: bool = True,
    progress: bool = True,
    write: bool = True,
    allow_custom_code: bool = False,
    value_range: tuple[float, float] | None = None,
    task: str | None = None,
    whole_image: bool = False,
) -> dict:
    """Latency, size, memory and quality of artifacts on a target -> the report dict; with
    `write`, report.json/report.md in out_dir and the table on the terminal. `reference`: the
    float model (file, zoo:NAME or loaded; default: the one the first manifest names)."""
    from . import pipeline

    return pipeline.bench_artifacts(
        [Path(a) for a in artifacts],
        target=target,
        images_dir=Path(images_dir) if images_dir else None,
        degradation=degradation,
        reference=reference,
        out_dir=Path(out_dir),
        allow_custom_code=allow_custom_code,
        benchmark_model=benchmark_model,
        overrides=_overrides(value_range, task),
        max_side=max_side,
        seed=seed,
        memory=memory,
        progress=progress,
        write=write,
        whole_image=whole_image,
    )


def compress(
    model: str,
    *,
    target: str | Target,
    out_dir: str | Path,
    plan: str | Path | None = None,
    calib_dir: str | Path | None = None,
    degradation: str | None = None,
    allow_custom_code: bool = False,
    value_range: tuple[float, float] | None = None,
    task: str | None = None,
) -> dict:
    """Run a compression plan (default: the target's), export what the target wants, benchmark
    against the uncompressed model -> the report dict (also written to out_dir)."""
    from . import pipeline

    return pipeline.compress(
        model,
        target=target,
        plan_path=Path(plan) if plan else None,
        calib_dir=Path(calib_dir) if calib_dir else None,
        degradation=degradation,
        out_dir=Path(out_dir),
        allow_custom_code=allow_custom_code,
        overrides=_overrides(value_range, task),
    )


def compare(
    model: str,
    artifacts: list[str | Path],
    *,
    images_dir: str | Path | None = None,
    degradation: str | None = None,
    threshold_db: float | None = None,
    out_dir: str | Path | None = None,
    allow_custom_code: bool = False,
    value_range: tuple[float, float] | None = None,
    task: str | None = None,
    int_threshold_db: float | None = None,
) -> dict:
    """Parity: PSNR between the Keras model's outputs and every artifact's, pair by pair.
    threshold_db holds for every pair (default 40 dB float, 30/35 dB quantized) unless
    int_threshold_db sets pairs with a quantized member; see bench.compare.exit_code."""
    from . import pipeline

    return pipeline.compare_artifacts(
        model,
        [Path(a) for a in artifacts],
        images_dir=Path(images_dir) if images_dir else None,
        degradation=degradation,
        threshold_db=threshold_db,
        int_threshold_db=int_threshold_db,
        out_dir=Path(out_dir) if out_dir else None,
        allow_custom_code=allow_custom_code,
        overrides=_overrides(value_range, task),
    )


def optimize(
    model: str,
    *,
    target: str | Target,
    max_drop: float,
    out_dir: str | Path,
    metric: str = "psnr",
    calib_dir: str | Path | None = None,
    degradation: str | None = None,
    time_budget: float | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    allow_custom_code: bool = False,
    value_range: tuple[float, float] | None = None,
    task: str | None = None,
) -> dict:
    """The fastest artifact for a target within a quality budget (edgekit.optimize) -> the report
    dict; DIR/best.<ext>, report.json and report.html written. Nothing within budget: raises
    edgekit.optimize.search.BudgetNotMet (exit code 3) after writing the report."""
    from .optimize import optimize as run

    return run(
        model,
        target=target,
        max_drop=max_drop,
        out_dir=Path(out_dir),
        metric=metric,
        calib_dir=Path(calib_dir) if calib_dir else None,
        degradation=degradation,
        time_budget=time_budget,
        executor=executor,
        ray_address=ray_address,
        allow_custom_code=allow_custom_code,
        overrides=_overrides(value_range, task),
    )


def demo(out_dir: str | Path) -> dict:
    """The bundled DnCNN through every artifact of the demo targets -> one combined report."""
    from . import pipeline

    return pipeline.demo(Path(out_dir))


def targets(check: str | None = None) -> dict | None:
    """List the target profiles (and whether each runs here), or check one target's device."""
    from . import pipeline

    if check:
        return pipeline.check_target(check)
    pipeline.show_targets()
    return None


def zoo_list() -> None:
    from . import pipeline

    pipeline.zoo_list()


def zoo_train(
    name: str, *, steps: int | None = None, seed: int = 0, out_dir: str | Path | None = None
) -> dict:
    from . import pipeline

    return pipeline.zoo_train(
        name, steps=steps, seed=seed, out_dir=Path(out_dir) if out_dir else None
    )


def inspect(
    model: str,
    *,
    target: str | Target,
    format: str | None = None,
    precision: str = "int8",
    rewrite: bool = True,
    allow_custom_code: bool = False,
    value_range: tuple[float, float] | None = None,
    task: str | None = None,
) -> dict:
    """Before any conversion: per layer, the ops it becomes on the target's runtime, whether they
    stay on its fast path, the rewrite that applies and its share of MACs; prints a verdict."""
    from . import pipeline

    return pipeline.inspect_fast_path(
        model,
        target=target,
        fmt=format,
        precision=precision,
        rewrite=rewrite,
        allow_custom_code=allow_custom_code,
        overrides=_overrides(value_range, task),
    )


def calibration_sets(loaded: LoadedModel, tile: tuple[int, int], calib_dir=None):
    """(calibration, validation) degraded tiles of the model's input size from the calibration photos."""
    from . import pipeline

    return pipeline.calibration_sets(loaded, tuple(tile), Path(calib_dir) if calib_dir else None)


def _overrides(value_range, task) -> dict:
    out = {}
    if value_range is not None:
        out["value_range"] = (float(value_range[0]), float(value_range[1]))
    if task:
        out["task"] = task
    return out
