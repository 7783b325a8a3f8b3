"""Wires the stages together: load -> (compress) -> export -> run -> measure -> report.

This is the only module that knows the order of the stages; each stage lives in its own package.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from .config import Format, Precision, Target, load_target
from .errors import EdgekitError
from .paths import calibration_dir

DEFAULT_TILE = (256, 256)
# Tiles cut from each calibration image for int8 calibration, and held-out tiles for validation.
CALIB_TILES_PER_IMAGE = 1
VAL_TILES_PER_IMAGE = 1


def _console():
    import sys

    from rich.console import Console

    # Piped output (CI logs, files) gets a wide fixed width so tables don't wrap names.
    return Console(width=None if sys.stdout.isatty() else 160)


def _resolve_target(target: str | Target | None) -> Target | None:
    if target is None or isinstance(target, Target):
        return target
    return load_target(target)


def _load(
    model_spec: str,
    allow_custom_code: bool = False,
    degradation: str | None = None,
    overrides: dict | None = None,
):
    from .models.loading import load_model

    # load_model validates the spec and checks its scale against the model's. overrides:
    # value_range / task from the command line (--value-range, --task).
    loaded = load_model(
        model_spec,
        allow_custom_code=allow_custom_code,
        degradation=degradation,
        **(overrides or {}),
    )
    if not loaded.info.degradation:
        raise EdgekitError(
            f"{model_spec}: edgekit does not know how this model's inputs are degraded; "
            "pass --degradation, e.g. noise:sigma=25 or downscale:factor=2"
        )
    return loaded


def calibration_sets(loaded, tile: tuple[int, int], calib_dir: Path | None = None):
    """(calibration inputs, validation inputs) as degraded tiles of the model's input size."""
    from .data.degradations import parse
    from .data.images import load_folder, split_holdout
    from .data.patches import degraded_tiles

    folder = Path(calib_dir) if calib_dir else calibration_dir()
    deg = parse(loaded.info.degradation)
    need = (tile[0] * deg.scale, tile[1] * deg.scale)
    images = load_folder(folder, min_size=need)
    train, held = split_holdout(images) if len(images) >= 4 else (images, images)
    calib, _ = degraded_tiles(train, deg, tile, per_image=CALIB_TILES_PER_IMAGE, seed=1)
    val, _ = degraded_tiles(held, deg, tile, per_image=VAL_TILES_PER_IMAGE, seed=2)
    return calib, val


def _tile_for(
    target: Target | None, shape, precision: Precision
) -> tuple[tuple[int, int] | None, tuple[int, int]]:
    """(export shape or None for dynamic, tile used for calibration/validation)."""
    if shape:
        return tuple(shape), tuple(shape)
    if target is not None:
        return tuple(target.tile), tuple(target.tile)
    if precision in (Precision.int8, Precision.int16x8):
        return DEFAULT_TILE, DEFAULT_TILE  # integer models need a fixed tile (dynamic H, W fails)
    return None, DEFAULT_TILE


def export_loaded(
    loaded,
    fmt: str,
    precision: Precision,
    *,
    target: Target | None,
    shape,
    io: str,
    out: Path,
    calib=None,
    options: dict | None = None,
    plan: list | None = None,
    calib_dir: Path | None = None,
    options_source: str = "export options",
):
    from .export.base import ExportRequest, get_exporter

    fmt_enum = Format(fmt) if fmt in [f.value for f in Format] else None
    if fmt_enum is None:
        raise EdgekitError(
            f"unknown format '{fmt}': expected one of {', '.join(f.value for f in Format)}"
        )
    export_shape, tile = _tile_for(target, shape, precision)
    if calib is None:
        calib = calibration_sets(loaded, tile, calib_dir)
    request = ExportRequest(
        format=fmt_enum,
        precision=precision,
        shape=export_shape,
        io=io,
        calib_inputs=calib[0],
        val_inputs=calib[1],
        options=dict(options or {}),
        plan=list(plan or []),
        threads=target.threads if target is not None else 2,  # validate with the target's threads
        target=target.name if target is not None and target.tensorrt is not None else None,
        tensorrt=target.tensorrt.model_dump() if target is not None and target.tensorrt else None,
        options_source=options_source,
    )
    return get_exporter(fmt_enum).export(loaded, request, out)


def export_one(
    model_spec: str,
    *,
    fmt: str,
    precision: Precision,
    target=None,
    shape=None,
    calib_dir: Path | None = None,
    degradation: str | None = None,
    io: str = "float",
    out: Path,
    allow_custom_code: bool = False,
    options: dict | None = None,
    overrides: dict | None = None,
):
    target = _resolve_target(target)
    if io == "int8" and not (fmt == "tflite" and precision == Precision.int8):
        raise EdgekitError("--io int8 is only available for --format tflite --precision int8")
    options = dict(options or {})
    if target is not None:
        listed = [e for e in target.exports if e.format.value == fmt and e.precision == precision]
        if not listed:
            offered = ", ".join(e.label for e in target.exports)
            raise EdgekitError(
                f"target '{target.name}' ({target.source}) does not support {fmt} {precision.value}; "
                f"it lists: {offered}. Pick one of those or another target"
            )
        options = {**listed[0].options, **options}
    loaded = _load(model_spec, allow_custom_code, degradation, overrides)
    return export_loaded(
        loaded,
        fmt,
        precision,
        target=target,
        shape=shape,
        io=io,
        out=out,
        options=options,
        calib_dir=calib_dir,
        options_source="export options (command line or API)",
    )


def bench_artifacts(
    artifacts: list[Path],
    *,
    target="host-cpu",
    images_dir: Path | None = None,
    degradation: str | None = None,
    reference: str | None = None,
    out_dir: Path,
    allow_custom_code: bool = False,
    benchmark_model: str | None = None,
    overrides: dict | None = None,
    max_side: int | None = None,
    seed: int | None = None,
    memory: bool = True,
) -> dict:
    """Benchmark existing artifacts. max_side centre-crops the eval photos (a quick run), seed
    picks the degradation draw, memory=False skips the peak-memory child processes."""
    target = _resolve_target(target)
    for a in artifacts:
        if not Path(a).exists():
            raise EdgekitError(f"{a}: artifact not found")
    ref = None
    ref_spec = reference or _reference_from_manifest(artifacts[0])
    if ref_spec:
        ref = (
            _load(ref_spec, allow_custom_code, degradation, overrides)
            if degradation
            else _load_plain(ref_spec, allow_custom_code, overrides)
        )
    executor = None
    if benchmark_model:
        if target.connection.kind != "adb":
            raise EdgekitError(
                f"--benchmark-model is for adb targets; target '{target.name}' connects by "
                f"{target.connection.kind}"
            )
        from .devices import executor_for

        conn = target.connection.model_copy(update={"benchmark_model": benchmark_model})
        executor = executor_for(target.model_copy(update={"connection": conn}))
    return _bench_with_reference(
        artifacts,
        target,
        ref,
        out_dir,
        images_dir=images_dir,
        degradation=degradation,
        executor=executor,
        bench_options={
            k: v
            for k, v in (("max_side", max_side), ("seed", seed), ("memory", memory))
            if v is not None
        },
    )


def _load_plain(spec: str, allow_custom_code: bool, overrides: dict | None = None):
    from .models.loading import load_model

    return load_model(spec, allow_custom_code=allow_custom_code, **(overrides or {}))


def _reference_from_manifest(artifact: Path) -> str | None:
    from .runtimes.manifest import read_manifest

    src = ((read_manifest(artifact) or {}).get("model") or {}).get("source")
    if src and (src.startswith("zoo:") or Path(src).exists()):
        return src
    return None


# ---------------------------------------------------------------- targets


def _runtime_status(t: Target) -> tuple[bool, str]:
    """Whether this target's artifacts can run here, and why (not)."""
    if not t.is_local:
        return False, f"remote ({t.connection.kind}): run `edgekit targets --check {t.name}`"
    if t.runtime == "litert":
        ok = importlib.util.find_spec("ai_edge_litert") or importlib.util.find_spec(
            "tflite_runtime"
        )
        if not ok:
            return False, "LiteRT missing: pip install ai-edge-litert"
        if t.delegate in ("gpu", "nnapi"):
            return (
                True,
                f"on the host CPU only ({t.delegate} delegate needs the phone); numbers labelled host",
            )
        if t.device and "host" not in t.name:
            return True, "on the host CPU; numbers are labelled host-CPU, not the device's"
        return True, "yes"
    if t.runtime == "onnxruntime":
        ok = importlib.util.find_spec("onnxruntime")
        return (bool(ok), "yes" if ok else "pip install 'edgekit[onnx]'")
    # TensorRT: engines may build here (tensorrt_rtx), running needs an NVIDIA GPU.
    module = t.tensorrt.module if t.tensorrt else "tensorrt"
    has_module = importlib.util.find_spec(module) is not None
    has_gpu = os.path.exists("/dev/nvidia0") or os.path.exists("/dev/nvhost-ctrl")
    build_on = t.tensorrt.build_on if t.tensorrt else "host"
    if build_on == "device":
        return False, "engine must be built on the device; edgekit emits ONNX + the build command"
    if has_module and has_gpu:
        return True, "yes"
    if has_module:
        return False, f"engines build here ({module}); running them needs an NVIDIA GPU"
    return False, f"no {module} module: pip install 'edgekit[tensorrt-rtx]' (or JetPack's tensorrt)"


def show_targets() -> None:
    from rich.table import Table

    from .config import list_targets

    table = Table(title="edgekit targets")
    for col in ("name", "runtime", "exports", "tile", "threads", "device", "runs here"):
        table.add_column(col, no_wrap=col == "name")
    for t in list_targets():
        ok, why = _runtime_status(t)
        exports = ", ".join(e.label for e in t.exports)
        table.add_row(
            t.name,
            t.runtime,
            exports,
            f"{t.tile[0]}x{t.tile[1]}",
            str(t.threads),
            t.device,
            ("yes" if ok else "no") + ("" if why == "yes" else f": {why}"),
        )
    _console().print(table)


def check_target(name: str) -> dict:
    target = load_target(name)
    if target.is_local:
        ok, why = _runtime_status(target)
        _console().print(f"{target.name}: local target; runs here: {'yes' if ok else 'no'} ({why})")
        return {"target": target.name, "local": True, "runs_here": bool(ok), "why": why}
    from .devices import check_target as device_check
    from .terminal import check_table

    info = device_check(target)
    _console().print(check_table(info))
    return info


# ---------------------------------------------------------------- zoo


def zoo_list() -> None:
    from rich.table import Table

    from .models import zoo
    from .models.train import EVAL_DRAWS

    table = Table(
        title="edgekit zoo (PSNR/SSIM on held-out calibration images, mean of "
        f"{EVAL_DRAWS} degradation draws each, host CPU)"
    )
    for col in (
        "name",
        "task",
        "degradation",
        "params",
        "MACs/px",
        "PSNR dB",
        "input PSNR dB",
        "SSIM",
        "trained",
    ):
        table.add_column(col)
    for row in zoo.table():

        def f(key, fmt="{:.2f}", row=row):
            v = row.get(key)
            return "-" if v is None else fmt.format(v)

        table.add_row(
            row["name"],
            row["task"],
            row.get("degradation") or "-",
            f"{row['params']:,}",
            f("macs_per_pixel", "{:,.0f}"),
            f("psnr_db"),
            f("degraded_psnr_db"),
            f("ssim", "{:.4f}"),
            "yes" if row.get("trained") else "no",
        )
    _console().print(table)


def zoo_train(
    name: str, *, steps: int | None = None, seed: int = 0, out_dir: Path | None = None
) -> dict:
    from .models.train import train

    result = train(name, steps=steps, seed=seed, out_dir=out_dir)
    _console().print(
        f"{name}: PSNR {result.get('psnr_db', float('nan')):.2f} dB "
        f"(input {result.get('degraded_psnr_db', float('nan')):.2f} dB) on held-out calibration images"
    )
    return result


# ---------------------------------------------------------------- compress / compare / demo


def compress(
    model_spec: str,
    *,
    target,
    plan_path: Path | None,
    calib_dir: Path | None,
    degradation: str | None,
    out_dir: Path,
    allow_custom_code: bool = False,
    overrides: dict | None = None,
) -> dict:
    """load -> run the plan's steps -> export every artifact the target wants -> bench -> report."""
    from .compress import run_plan
    from .compress.plan import load_plan
    from .data.images import load_folder

    target = _resolve_target(target)
    loaded = _load(model_spec, allow_custom_code, degradation, overrides)
    plan = load_plan(plan_path) if plan_path else getattr(target, "plan", None)
    if plan is None:
        raise EdgekitError(f"target '{target.name}' has no default plan; pass --plan PLAN.yaml")
    images = load_folder(Path(calib_dir) if calib_dir else calibration_dir())
    compressed, step_rows = run_plan(
        loaded, plan, calib_images=images, degradation=loaded.info.degradation
    )
    out_dir = Path(out_dir)
    artifacts = _export_target(
        compressed,
        target,
        out_dir / "artifacts",
        calib_dir=calib_dir,
        plan=plan.to_manifest() if hasattr(plan, "to_manifest") else [],
    )
    # The reference is the uncompressed float model: PSNR drops are measured against it.
    return _bench_with_reference(artifacts, target, loaded, out_dir, steps=step_rows)


def _bench_with_reference(
    artifacts,
    target: Target,
    reference,
    out_dir: Path,
    *,
    steps=None,
    images_dir: Path | None = None,
    degradation: str | None = None,
    executor=None,
    bench_options: dict | None = None,
) -> dict:
    from .bench.harness import bench
    from .report.render import print_table, write_report

    report = bench(
        artifacts,
        target=target,
        images_dir=images_dir,
        degradation=degradation,
        reference=reference,
        out_dir=out_dir,
        executor=executor,
        **(bench_options or {}),
    )
    if steps:
        report["steps"] = steps
    json_path, md_path = write_report(report, out_dir)
    print_table(report, console=_console())
    _console().print(f"report: {json_path}  {md_path}")
    return report


def _export_target(
    loaded,
    target: Target,
    folder: Path,
    *,
    calib_dir: Path | None = None,
    plan: list | None = None,
    calib=None,
    reuse: dict | None = None,
) -> list[Path]:
    """Export every artifact a target asks for; returns their paths.

    reuse: artifacts already exported in this run, keyed by what determines their bytes; an
    identical export for a second target is copied (with its manifest) instead of re-converted.
    """
    import shutil

    from .export.base import manifest_path

    suffix = {"tflite": ".tflite", "onnx": ".onnx", "tensorrt": ".engine"}
    tile = tuple(target.tile)
    if calib is None:
        calib = calibration_sets(loaded, tile, calib_dir)
    paths = []
    for spec in target.exports:
        out = folder / f"{loaded.info.name}-{spec.label}{suffix[spec.format.value]}"
        key = (
            spec.format.value,
            spec.precision.value,
            spec.io,
            tile,
            tuple(sorted(spec.options.items())),
        )
        if spec.format.value != "tensorrt" and reuse is not None and key in reuse:
            done = reuse[key]
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(done, out)
            shutil.copyfile(manifest_path(done), manifest_path(out))
            paths.append(out)
            continue
        artifact = export_loaded(
            loaded,
            spec.format.value,
            spec.precision,
            target=target,
            shape=tile,
            io=spec.io,
            out=out,
            calib=calib,
            plan=plan,
            options=dict(spec.options),
            options_source=f"{target.source}: exports[{spec.label}].options",
        )
        # A device-built engine comes back as its ONNX (the engine is built on the device).
        paths.append(Path(artifact.path))
        if reuse is not None:
            reuse[key] = Path(artifact.path)
    return paths


def compare_artifacts(
    model_spec: str,
    artifacts: list[Path],
    *,
    images_dir: Path | None,
    degradation: str | None,
    threshold_db: float | None,
    out_dir: Path | None,
    allow_custom_code: bool = False,
    overrides: dict | None = None,
) -> dict:
    from .bench.compare import compare, print_compare, write_compare

    loaded = _load(model_spec, allow_custom_code, degradation, overrides)
    for a in artifacts:
        if not Path(a).exists():
            raise EdgekitError(f"{a}: artifact not found")
    kwargs = {} if threshold_db is None else {"threshold_db": threshold_db}
    result = compare(
        loaded, artifacts, images_dir=images_dir, degradation=loaded.info.degradation, **kwargs
    )
    print_compare(result)
    if out_dir:
        write_compare(result, out_dir)
    return result


DEMO_TARGETS = ("host-cpu", "android-cpu-int8")
# The demo scores the held-out photos cropped to at most 512 px a side (fewer tiles, same photos)
# so that it stays within a few minutes on 2 cores; `edgekit bench` scores whole photos.
DEMO_MAX_SIDE = 512


def demo(out_dir: Path) -> dict:
    """Bundled DnCNN -> every artifact of the demo targets -> benchmark -> one combined report."""
    import time

    from .report.render import print_table, write_report

    console = _console()
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    loaded = _load("zoo:dncnn")
    reports = []
    calib_cache: dict = {}
    reuse: dict = {}
    reference_cache: dict = {}  # the float model runs once over the eval photos, not per target
    skipped = []
    for name in DEMO_TARGETS:
        target = load_target(name)
        # int16x8 runs on LiteRT's reference kernels (no XNNPACK int16): minutes to convert and
        # validate, so the demo leaves it to `edgekit export --precision int16x8`.
        keep = [e for e in target.exports if e.precision != Precision.int16x8]
        skipped += [f"{name}/{e.label}" for e in target.exports if e not in keep]
        target = target.model_copy(update={"exports": keep})
        tile = tuple(target.tile)
        if tile not in calib_cache:
            calib_cache[tile] = calibration_sets(loaded, tile)
        console.rule(f"[bold]{target.name}[/]: {target.description}")
        paths = _export_target(
            loaded,
            target,
            out_dir / "artifacts" / target.name,
            calib=calib_cache[tile],
            reuse=reuse,
        )
        from .bench.harness import bench

        reports.append(
            bench(
                paths,
                target=target,
                reference=loaded,
                out_dir=out_dir / target.name,
                reference_cache=reference_cache,
                max_side=DEMO_MAX_SIDE,
            )
        )
    report = merge_reports(reports)
    if skipped:
        report.setdefault("notes", []).append(
            f"left out of the demo for time: {', '.join(skipped)} (export them with edgekit export)"
        )
    report.setdefault("notes", []).append(
        f"edgekit demo: zoo:dncnn on targets {', '.join(DEMO_TARGETS)}; total time {time.perf_counter() - t0:.0f} s"
    )
    write_report(report, out_dir)
    print_table(report, console=_console())
    console.print(f"report: {out_dir / 'report.md'}  {out_dir / 'report.json'}")
    return report


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
