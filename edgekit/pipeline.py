"""Wires the stages together: load -> (compress) -> export -> run -> measure -> report.

This is the only module that knows the order of the stages; each stage lives in its own package.
"""

from __future__ import annotations

from pathlib import Path

from .config import Format, Precision, Target, load_target
from .errors import EdgekitError
from .paths import calibration_dir
from .terminal import stdout_console

DEFAULT_TILE = (256, 256)
REPORT_FILES = ("report.json", "report.md", "report.html")  # what write_report puts in --out
# Tiles cut from each calibration image for int8 calibration, and held-out tiles for validation.
CALIB_TILES_PER_IMAGE = 1
VAL_TILES_PER_IMAGE = 1


def resolve_target(target: str | Target | None) -> Target | None:
    if target is None or isinstance(target, Target):
        return target
    return load_target(target)


def load_checked(
    model_spec: str,
    allow_custom_code: bool = False,
    degradation: str | None = None,
    overrides: dict | None = None,
    *,
    need_task: bool = True,
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
    if need_task and not loaded.info.degradation:
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


def export_model(
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
    from .checks import artifact_output

    target = resolve_target(target)
    if io == "int8" and not (fmt == "tflite" and precision == Precision.int8):
        raise EdgekitError("--io int8 is only available for --format tflite --precision int8")
    options = dict(options or {})
    artifact_output(out, fmt)  # before the model loads: a bad --out fails in one line, at once
    if target is not None:
        listed = [e for e in target.exports if e.format.value == fmt and e.precision == precision]
        if not listed:
            offered = ", ".join(e.label for e in target.exports)
            raise EdgekitError(
                f"target '{target.name}' ({target.source}) does not support {fmt} {precision.value}; "
                f"it lists: {offered}. Pick one of those or another target"
            )
        options = {**listed[0].options, **options}
    _check_export_options(fmt, options)
    loaded = load_checked(model_spec, allow_custom_code, degradation, overrides)
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


def inspect_fast_path(
    model_spec: str,
    *,
    target,
    fmt: str | None = None,
    precision: str = "int8",
    rewrite: bool = True,
    allow_custom_code: bool = False,
    overrides: dict | None = None,
) -> dict:
    """`edgekit inspect`: predict, before converting, which layers leave the fast path."""
    from .config import parse_precision
    from .export.fastpath import FORMAT_OF_TARGET_RUNTIME, LAYER_OPS
    from .export.inspect import inspect_model
    from .terminal import print_inspection

    target = resolve_target(target)
    fmt = fmt or FORMAT_OF_TARGET_RUNTIME[target.runtime]
    if fmt not in LAYER_OPS:
        raise EdgekitError(f"--format '{fmt}': expected one of {', '.join(LAYER_OPS)}")
    precision = parse_precision(precision).value
    loaded = load_checked(model_spec, allow_custom_code, None, overrides, need_task=False)
    blocks = next(
        (
            (e.options or {}).get("block_convs", "off")
            for e in target.exports
            if e.format.value == "tflite" and e.precision.value == precision
        ),
        "off",
    )  # the target's own TFLite export settles whether convs run on 2x2 blocks
    result = inspect_model(
        loaded.model,
        fmt=fmt,
        precision=precision,
        rewrite=rewrite,
        tile=tuple(target.tile),
        block_convs=blocks if fmt == "tflite" else "off",
    )
    print_inspection(result, loaded.info.source or loaded.info.name)
    return result


def _check_export_options(fmt: str, options: dict) -> None:
    """Options that would be ignored or switch a check off are refused, not recorded."""
    from .checks import number

    if options.get("layout") is not None and fmt == "tflite":
        raise EdgekitError(
            f"--layout {options['layout']}: TFLite artifacts are always NHWC; --layout applies to "
            "--format onnx and tensorrt only"
        )
    if options.get("min_psnr_db") is not None:
        number(options["min_psnr_db"], "--min-psnr (min_psnr_db)", minimum=0.0)


def bench_artifacts(
    artifacts: list[Path],
    *,
    target="host-cpu",
    images_dir: Path | None = None,
    degradation: str | None = None,
    reference=None,
    out_dir: Path,
    allow_custom_code: bool = False,
    benchmark_model: str | None = None,
    overrides: dict | None = None,
    max_side: int | None = None,
    seed: int | None = None,
    memory: bool = True,
    progress: bool = True,
    write: bool = True,
    whole_image: bool = False,
) -> dict:
    """Benchmark existing artifacts. max_side centre-crops the eval photos (a quick run), seed
    picks the degradation draw, memory=False skips the peak-memory child processes,
    whole_image=True adds the (opt-in) whole-photo float run."""
    from .checks import output_dir
    from .checks import seed as check_seed

    if write:
        output_dir(out_dir, files=REPORT_FILES)  # before anything loads or runs
    if seed is not None:
        check_seed(seed)
    target = resolve_target(target)
    for a in artifacts:
        if not Path(a).exists():
            raise EdgekitError(f"{a}: artifact not found")
    ref = None if reference is None or isinstance(reference, str) else reference  # a LoadedModel
    ref_spec = None if ref is not None else reference or _reference_from_manifest(artifacts[0])
    if ref_spec:
        # without --degradation the reference may leave its task to the artifacts' manifests
        ref = load_checked(
            ref_spec, allow_custom_code, degradation, overrides, need_task=bool(degradation)
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
    return bench_with_reference(
        artifacts,
        target,
        ref,
        out_dir,
        images_dir=images_dir,
        degradation=degradation,
        executor=executor,
        bench_options={
            k: v
            for k, v in (
                ("max_side", max_side),
                ("seed", seed),
                ("memory", memory),
                ("whole_image", whole_image or None),
            )
            if v is not None
        },
        progress=progress,
        write=write,
    )


def _reference_from_manifest(artifact: Path) -> str | None:
    from .bench.artifacts import read_manifest  # checked: a wrong field type is one line

    src = ((read_manifest(Path(artifact)) or {}).get("model") or {}).get("source")
    if src and (src.startswith("zoo:") or Path(src).exists()):
        return src
    return None


# ---------------------------------------------------------------- targets


def show_targets() -> None:
    from .config import list_targets
    from .devices.check import runs_here
    from .terminal import targets_table

    rows = []
    for t in list_targets():
        ok, why = runs_here(t)
        rows.append(
            {
                "name": t.name,
                "runtime": t.runtime,
                "exports": ", ".join(e.label for e in t.exports),
                "tile": f"{t.tile[0]}x{t.tile[1]}",
                "threads": t.threads,
                "device": t.device,
                "runs here": ("yes" if ok else "no") + ("" if why == "yes" else f": {why}"),
            }
        )
    stdout_console().print(targets_table(rows))


def check_target(name: str) -> dict:
    target = load_target(name)
    if target.is_local:
        from .devices.check import runs_here

        ok, why = runs_here(target)
        stdout_console().print(
            f"{target.name}: local target; runs here: {'yes' if ok else 'no'} ({why})"
        )
        return {"target": target.name, "local": True, "runs_here": bool(ok), "why": why}
    from .devices import check_target as device_check
    from .terminal import check_table

    info = device_check(target)
    stdout_console().print(check_table(info))
    return info


# ---------------------------------------------------------------- zoo


def zoo_list() -> None:
    from .models import zoo
    from .models.train import EVAL_DRAWS
    from .terminal import zoo_table

    stdout_console().print(zoo_table(zoo.table(), EVAL_DRAWS))


def zoo_train(
    name: str, *, steps: int | None = None, seed: int = 0, out_dir: Path | None = None
) -> dict:
    from .checks import output_dir
    from .checks import seed as check_seed
    from .models.train import train

    check_seed(seed)
    if out_dir is not None:
        output_dir(out_dir)
    result = train(name, steps=steps, seed=seed, out_dir=out_dir)
    stdout_console().print(
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
    from .checks import output_dir
    from .compress import run_plan
    from .compress.plan import load_plan
    from .config import check_plan_for_target
    from .data.images import load_folder
    from .models.onnx_source import refuse

    # Everything that can be checked is checked before the plan trains (which takes minutes).
    output_dir(out_dir, files=REPORT_FILES)
    output_dir(Path(out_dir) / "artifacts", "--out artifacts folder")
    target = resolve_target(target)
    plan = load_plan(plan_path) if plan_path else getattr(target, "plan", None)
    if plan is None:
        raise EdgekitError(f"target '{target.name}' has no default plan; pass --plan PLAN.yaml")
    check_plan_for_target(plan, target)
    loaded = load_checked(model_spec, allow_custom_code, degradation, overrides)
    refuse(loaded, "compress")
    images = load_folder(Path(calib_dir) if calib_dir else calibration_dir())
    compressed, step_rows = run_plan(
        loaded, plan, calib_images=images, degradation=loaded.info.degradation
    )
    out_dir = Path(out_dir)
    calib = calibration_sets(loaded, tuple(target.tile), calib_dir)
    artifacts = export_for_target(
        compressed,
        target,
        out_dir / "artifacts",
        calib=calib,
        plan=plan.to_manifest() if hasattr(plan, "to_manifest") else [],
    )
    # The model the user brought, exported as fp32 in the target's first format, is the first
    # row: every speed-up of that format is then against it, not the compressed model's fp32.
    baseline = _export_baseline(loaded, target, out_dir / "artifacts", calib)
    # The reference is the uncompressed float model: PSNR drops are measured against it.
    return bench_with_reference(
        [baseline, *artifacts], target, loaded, out_dir, steps=step_rows, baseline=baseline
    )


def _export_baseline(loaded, target: Target, folder: Path, calib) -> Path:
    fmt = target.exports[0].format.value
    if fmt == "tensorrt":  # no fp32 engine for every target: ONNX fp32 is the portable baseline
        fmt = "onnx"
    suffix = {"tflite": ".tflite", "onnx": ".onnx"}[fmt]
    out = folder / f"{loaded.info.name}-baseline-{fmt}-fp32{suffix}"
    artifact = export_loaded(
        loaded, fmt, Precision.fp32, target=target, shape=tuple(target.tile), io="float",
        out=out, calib=calib,
    )  # fmt: skip
    return Path(artifact.path)


def _mark_baseline(report: dict, baseline: Path, name: str) -> None:
    """Label the baseline row and say in the report what speed-up and ΔPSNR are against."""
    for row in report.get("artifacts", []):
        if row.get("path") == str(baseline):
            row["label"] = f"baseline: your model {row.get('format')}-fp32"
            row["baseline"] = True
            report["relative_to"] = {
                "speed-up": f"baseline: {name} as given, exported as {row.get('format')} fp32 "
                "(other formats: their own fp32 row)",
                "ΔPSNR": "the uncompressed float Keras model",
            }


def bench_with_reference(
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
    progress: bool = True,
    write: bool = True,
    baseline: Path | None = None,
) -> dict:
    """Benchmark artifacts against a float reference; with `write`, report.json/md go to out_dir
    and the table to the terminal. `baseline`: the artifact that is the user's own model."""
    from .bench.harness import bench

    report = bench(
        artifacts,
        target=target,
        images_dir=images_dir,
        degradation=degradation,
        reference=reference,
        out_dir=out_dir,
        executor=executor,
        progress=progress,
        **(bench_options or {}),
    )
    if steps:
        report["steps"] = steps
    if baseline is not None:
        _mark_baseline(report, baseline, reference.info.name)
    if write:
        json_path, md_path = _write_and_show(report, out_dir)
        stdout_console().print(f"report: {json_path}  {md_path}  {Path(out_dir) / 'report.html'}")
    return report


def _write_and_show(report: dict, out_dir: Path) -> tuple[Path, Path]:
    from .report.render import write_report
    from .terminal import print_report

    paths = write_report(report, out_dir)
    print_report(report, console=stdout_console())
    return paths


def export_for_target(
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

    from .atomic import atomic_paths
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
            with atomic_paths(out, manifest_path(out)) as (tmp, tmp_manifest):
                shutil.copyfile(done, tmp)
                shutil.copyfile(manifest_path(done), tmp_manifest)
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
    int_threshold_db: float | None = None,
) -> dict:
    from .bench.compare import compare, write_compare
    from .checks import number, output_dir
    from .terminal import print_compare

    if out_dir:
        output_dir(out_dir, files=("compare.json", "compare.md"))
    for key, v in (("--threshold", threshold_db), ("--int8-threshold", int_threshold_db)):
        if v is not None:
            number(v, key, minimum=0.0)  # NaN would pass every pair; checked before loading
    loaded = load_checked(model_spec, allow_custom_code, degradation, overrides)
    for a in artifacts:
        if not Path(a).exists():
            raise EdgekitError(f"{a}: artifact not found")
    result = compare(
        loaded,
        artifacts,
        images_dir=images_dir,
        degradation=loaded.info.degradation,
        threshold_db=threshold_db,
        int_threshold_db=int_threshold_db,
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

    from .bench.assemble import merge_reports
    from .checks import output_dir

    console = stdout_console()
    t0 = time.perf_counter()
    out_dir = output_dir(out_dir, files=REPORT_FILES)
    loaded = load_checked("zoo:dncnn")
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
        paths = export_for_target(
            loaded,
            target,
            out_dir / "artifacts" / target.name,
            calib=calib_cache[tile],
            reuse=reuse,
        )
        options = {"reference_cache": reference_cache, "max_side": DEMO_MAX_SIDE}
        reports.append(
            bench_with_reference(
                paths, target, loaded, out_dir / target.name, bench_options=options, write=False
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
    _write_and_show(report, out_dir)
    console.print(
        f"report: {out_dir / 'report.md'}  {out_dir / 'report.json'}  {out_dir / 'report.html'}"
    )
    return report
