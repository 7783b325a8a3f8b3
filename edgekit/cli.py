"""Command line: one small function per subcommand; parsing only, then the library does the work.

Errors the user can fix (EdgekitError) print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__
from .errors import EdgekitError


def _cmd_demo(args) -> int:
    from . import api

    api.demo(args.out)
    return 0


def _cmd_export(args) -> int:
    from . import api
    from .config import parse_shape

    options = {}
    if args.layout:
        options["layout"] = args.layout
    if args.min_psnr is not None:
        options["min_psnr_db"] = args.min_psnr
    if args.no_rewrite:
        options["rewrite"] = False
    artifact = api.export(
        args.model,
        format=args.format,
        precision=args.precision,
        target=args.target,
        shape=parse_shape(args.shape) if args.shape else None,
        calib_dir=args.calib,
        degradation=args.degradation,
        io=args.io,
        out=args.out,
        allow_custom_code=args.allow_custom_code,
        options=options,
        **_model_flags(args),
    )
    m = artifact.manifest
    v = m.get("validation", {})
    if "skipped" in v:
        # e.g. a TensorRT engine built here for a GPU this machine doesn't have.
        onnx_v = m.get("onnx_validation", {}).get("psnr_vs_keras_db")
        quality = f"engine not run here ({v['skipped']})" + (
            f"; its ONNX: {onnx_v:.2f} dB vs Keras" if onnx_v is not None else ""
        )
    else:
        quality = (
            f"PSNR vs Keras {v.get('psnr_vs_keras_db', float('nan')):.2f} dB "
            f"(floor {v.get('floor_db', float('nan'))} dB)"
        )
    size = m.get("size_bytes") or (artifact.path.stat().st_size if artifact.path.exists() else 0)
    print(
        f"wrote {artifact.path} ({size / 1e6:.2f} MB); {quality}; manifest {artifact.manifest_path}"
    )
    return 0


def _cmd_inspect(args) -> int:
    from . import api

    api.inspect(
        args.model,
        target=args.target,
        format=args.format,
        precision=args.precision,
        rewrite=not args.no_rewrite,
        allow_custom_code=args.allow_custom_code,
        **_model_flags(args),
    )
    return 0


def _cmd_bench(args) -> int:
    from . import api

    api.bench(
        args.artifacts,
        target=args.target,
        images_dir=args.images,
        degradation=args.degradation,
        reference=args.reference,
        out_dir=args.out,
        allow_custom_code=args.allow_custom_code,
        benchmark_model=args.benchmark_model,
        max_side=args.max_side,
        seed=args.seed,
        memory=not args.no_memory,
        whole_image=args.whole_image_check,
        **_model_flags(args),
    )
    return 0


def _cmd_run(args) -> int:
    from .config import parse_shape
    from .restore import run

    done = run(
        args.model,
        args.inputs,
        Path(args.out),
        tile=parse_shape(args.tile) if args.tile else None,
        overlap=args.overlap,
        target=args.target,
        allow_custom_code=args.allow_custom_code,
        overrides={k: v for k, v in _model_flags(args).items() if v is not None},
    )
    for r in done:
        h, w = r["output_size"]
        print(f"wrote {r['output']} ({w}x{h}) in {r['seconds']:.1f} s")
    return 0


def _cmd_bundle(args) -> int:
    from .bundle import make_bundle
    from .config import parse_shape

    out = make_bundle(
        args.artifact, Path(args.out), tile=parse_shape(args.tile) if args.tile else None
    )
    print(f"wrote {out}/ (model, bundle.json, restore.py); see docs/mobile.md")
    return 0


def _cmd_targets(args) -> int:
    from . import api

    api.targets(check=args.check)
    return 0


def _cmd_zoo(args) -> int:
    from . import api

    if args.zoo_cmd == "list":
        api.zoo_list()
    else:
        api.zoo_train(args.name, steps=args.steps, seed=args.seed, out_dir=args.out)
    return 0


def _cmd_compress(args) -> int:
    from . import api

    api.compress(
        args.model,
        target=args.target,
        plan=args.plan,
        calib_dir=args.calib,
        degradation=args.degradation,
        out_dir=args.out,
        allow_custom_code=args.allow_custom_code,
        **_model_flags(args),
    )
    return 0


def _cmd_compare(args) -> int:
    from . import api
    from .bench.compare import exit_code

    result = api.compare(
        args.model,
        args.artifacts,
        images_dir=args.images,
        degradation=args.degradation,
        threshold_db=args.threshold,
        int_threshold_db=args.int8_threshold,
        out_dir=args.out,
        allow_custom_code=args.allow_custom_code,
        **_model_flags(args),
    )
    return exit_code(result)  # 1: a pair below its threshold or an artifact skipped


def _cmd_optimize(args) -> int:
    from . import api

    api.optimize(
        args.model,
        target=args.target,
        max_drop=args.max_drop,
        metric=args.metric,
        calib_dir=args.calib,
        degradation=args.degradation,
        time_budget=args.time_budget,
        executor=args.executor,
        ray_address=args.ray_address,
        out_dir=args.out,
        allow_custom_code=args.allow_custom_code,
        **_model_flags(args),
    )
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a positive whole number of pixels, got '{text}'"
        )
    return value


def _model_flags(args) -> dict:
    """--value-range / --task as the api's value_range / task."""
    vr = getattr(args, "value_range", None)
    return {
        "value_range": parse_value_range(vr) if vr else None,
        "task": getattr(args, "task", None),
    }


def parse_value_range(text: str) -> tuple[float, float]:
    """'0,255' -> (0.0, 255.0); a one-line EdgekitError otherwise."""
    parts = [p.strip() for p in text.split(",")]
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        lo = hi = None
    if lo is None or not hi > lo:
        raise EdgekitError(
            f"--value-range '{text}': expected LO,HI with LO < HI, e.g. 0,1 or 0,255 or -1,1"
        )
    return lo, hi


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgekit",
        description="Compress, export and benchmark image-restoration networks for edge targets.",
    )
    p.add_argument("--version", action="version", version=f"edgekit {__version__}")
    p.add_argument(
        "--verbose",
        action="store_true",
        help="show TensorFlow/absl start-up logs (oneDNN, CUDA) that edgekit hides by default",
    )
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def model_flags(sp):
        sp.add_argument(
            "--allow-custom-code",
            action="store_true",
            help="allow Lambda/custom layers in a user's model to be deserialized (runs code from the file)",
        )
        sp.add_argument(
            "--value-range",
            metavar="LO,HI",
            help="pixel range the model works in, e.g. 0,255 (default: inferred, else 0,1)",
        )
        sp.add_argument(
            "--task",
            help="what the model does, e.g. denoise, deblur, super-resolution (recorded in manifests)",
        )

    s = sub.add_parser(
        "demo", help="bundled DnCNN -> TFLite (and ONNX) at every precision -> benchmark -> report"
    )
    s.add_argument("--out", default="edgekit-out", help="output folder (default ./edgekit-out)")
    s.set_defaults(func=_cmd_demo)

    s = sub.add_parser("export", help="export one model to one artifact")
    s.add_argument("model", help="model file (.h5, .keras, SavedModel dir) or zoo:NAME")
    s.add_argument("--format", required=True, help="tflite | onnx | tensorrt")
    s.add_argument("--precision", required=True, help="fp32 | fp16 | dynamic | int8 | int16x8")
    s.add_argument("--target", help="target name or YAML path (gives the tile and options)")
    s.add_argument(
        "--shape", help="fixed input tile HxW, e.g. 256x256 (default: the target's tile)"
    )
    s.add_argument(
        "--calib",
        help="folder of clean images for calibration/validation (default: calibration_data/)",
    )
    s.add_argument(
        "--degradation", help="degradation spec, e.g. noise:sigma=25 (default: the model's)"
    )
    s.add_argument(
        "--io", choices=["float", "int8"], default="float", help="I/O type for tflite int8"
    )
    s.add_argument("--layout", choices=["NHWC", "NCHW"], help="ONNX input/output layout")
    s.add_argument(
        "--min-psnr", type=float, help="override the validation floor (dB vs the Keras model)"
    )
    s.add_argument("--out", required=True, help="artifact file to write")
    s.add_argument(
        "--no-rewrite",
        action="store_true",
        help="convert the model as it is (no exact rewrites onto the int8 fast path)",
    )
    model_flags(s)
    s.set_defaults(func=_cmd_export)

    s = sub.add_parser(
        "inspect", help="before converting: which layers will leave the target's fast path"
    )
    s.add_argument("model", help="model file or zoo:NAME")
    s.add_argument("--target", required=True, help="target name or YAML path")
    s.add_argument("--precision", default="int8", help="fp32 | fp16 | dynamic | int8 | int16x8")
    s.add_argument("--format", help="tflite | onnx | tensorrt (default: the target's runtime's)")
    s.add_argument("--no-rewrite", action="store_true", help="show the model without rewrites")
    model_flags(s)
    s.set_defaults(func=_cmd_inspect)

    s = sub.add_parser("bench", help="benchmark artifacts: latency, size, memory, PSNR/SSIM")
    s.add_argument("artifacts", nargs="+", help="artifact files (with their .json manifests)")
    s.add_argument(
        "--target", default="host-cpu", help="target name or YAML path (default host-cpu)"
    )
    s.add_argument("--images", help="folder of clean images (default: held-out calibration images)")
    s.add_argument("--degradation", help="degradation spec (default: from the manifest)")
    s.add_argument(
        "--reference",
        help="float model to compare with (file or zoo:NAME; default: the manifest's)",
    )
    s.add_argument("--out", default="edgekit-out", help="report folder (default ./edgekit-out)")
    s.add_argument(
        "--benchmark-model",
        help="adb targets: host path of TFLite's benchmark_model binary for the phone",
    )
    s.add_argument(
        "--max-side",
        type=_positive_int,
        help="centre-crop each eval photo to at most N x N pixels (a quicker, smaller run)",
    )
    s.add_argument("--seed", type=int, help="seed of the degradation draw (default 0)")
    s.add_argument(
        "--no-memory", action="store_true", help="skip peak-memory measurement (child processes)"
    )
    s.add_argument(
        "--whole-image-check",
        action="store_true",
        help="also run the float model on each whole photo (what tiling costs); refused if too big",
    )
    model_flags(s)
    s.set_defaults(func=_cmd_bench)

    s = sub.add_parser(
        "run", help="restore your own photos (any size) with a model or artifact -> PNGs"
    )
    s.add_argument("model", help="artifact (.tflite, .onnx, .engine), model file or zoo:NAME")
    s.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images")
    s.add_argument("--out", required=True, help="folder for the restored PNGs (one per input)")
    s.add_argument(
        "--tile",
        help="tile HxW for models that take any size (default: the target's tile, else 512x512)",
    )
    s.add_argument(
        "--overlap", type=int, help="pixels neighbouring tiles share (default: a quarter tile)"
    )
    s.add_argument("--target", help="target name or YAML (threads, delegate, tile)")
    model_flags(s)
    s.set_defaults(func=_cmd_run)

    s = sub.add_parser(
        "bundle", help="what an app embeds: fixed-shape model, bundle.json, restore.py runner"
    )
    s.add_argument("artifact", help=".tflite or .onnx artifact (with its .json manifest)")
    s.add_argument("--out", required=True, help="bundle folder to write")
    s.add_argument(
        "--tile",
        help="tile HxW for a dynamic-shape model (default 256x256); fixed models keep theirs",
    )
    s.set_defaults(func=_cmd_bundle)

    s = sub.add_parser("targets", help="list target profiles and whether each can run here")
    s.add_argument(
        "--check", metavar="T", help="connect to the target's device and list its runtimes"
    )
    s.set_defaults(func=_cmd_targets)

    s = sub.add_parser("zoo", help="the bundled restoration models")
    zsub = s.add_subparsers(dest="zoo_cmd", required=True, metavar="list|train")
    zsub.add_parser("list", help="models, tasks, parameters, MACs per pixel, measured PSNR")
    t = zsub.add_parser("train", help="train a zoo model on calibration_data/ and save its weights")
    t.add_argument("name")
    t.add_argument("--steps", type=int, help="training steps (default: the model's recipe)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write the weights and metrics JSON here instead of over the shipped ones",
    )
    s.set_defaults(func=_cmd_zoo)

    s = sub.add_parser("compress", help="run a compression plan, export per target, benchmark")
    s.add_argument("model", help="model file or zoo:NAME")
    s.add_argument("--target", required=True, help="target name or YAML path")
    s.add_argument("--plan", help="plan YAML (default: the target's plan)")
    s.add_argument("--calib", help="folder of clean images (default: calibration_data/)")
    s.add_argument("--degradation", help="degradation spec (default: the model's)")
    s.add_argument("--out", default="edgekit-out", help="output folder")
    model_flags(s)
    s.set_defaults(func=_cmd_compress)

    s = sub.add_parser("optimize", help="the fastest artifact for a target within a quality budget")
    s.add_argument("model", help="model file or zoo:NAME")
    s.add_argument("--target", required=True, help="target name or YAML path")
    s.add_argument(
        "--max-drop",
        required=True,
        type=float,
        help="quality the model may lose (dB; SSIM units with --metric ssim)",
    )
    s.add_argument("--metric", default="psnr", help="psnr (default) or ssim")
    s.add_argument("--calib", help="folder of clean photos (default: calibration_data/)")
    s.add_argument("--degradation", help="degradation spec (default: the model's)")
    s.add_argument(
        "--time-budget", type=float, metavar="MINUTES", help="stop the search after this"
    )
    s.add_argument("--executor", default="local", help="local (default) or ray")
    s.add_argument("--ray-address", help="HOST:PORT of a Ray head (default: a local Ray)")
    s.add_argument(
        "--out", required=True, help="output folder (best.<ext>, report.json/html, cache)"
    )
    model_flags(s)
    s.set_defaults(func=_cmd_optimize)

    s = sub.add_parser("compare", help="parity: PSNR between Keras and every artifact's outputs")
    s.add_argument("model", help="the float model (file or zoo:NAME)")
    s.add_argument("artifacts", nargs="+")
    s.add_argument("--images", help="folder of clean images (default: held-out calibration images)")
    s.add_argument("--degradation")
    s.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="flag pairs below this PSNR in dB (default 40 for float pairs; when given, it holds "
        "for pairs with an int8/dynamic/int16x8 member too, unless --int8-threshold is given)",
    )
    s.add_argument(
        "--int8-threshold",
        type=float,
        default=None,
        help="threshold for pairs with an integer-quantized member (default 30 dB int8, 35 dB "
        "dynamic/int16x8). Exit code: 0 all pairs pass, 1 a pair below or an artifact skipped, "
        "2 bad input",
    )
    s.add_argument("--out", help="folder for compare.json / compare.md")
    model_flags(s)
    s.set_defaults(func=_cmd_compare)
    return p


def main(argv: list[str] | None = None) -> int:
    import warnings

    from .atomic import terminate_as_interrupt
    from .errors import EdgekitWarning

    parser = build_parser()
    args = parser.parse_args(argv)
    from . import quiet

    quiet.configure(args.verbose)  # before any subcommand can import TensorFlow
    try:
        # SIGTERM/SIGHUP unwind like Ctrl-C, so every temporary file is removed on the way out.
        with terminate_as_interrupt(), warnings.catch_warnings():
            warnings.simplefilter("always", EdgekitWarning)
            warnings.showwarning = _show_warning(warnings.showwarning)
            return args.func(args)
    except EdgekitError as exc:
        print(f"edgekit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", 2)
        what = "interrupted" if signum == 2 else f"terminated by signal {signum}"
        print(f"edgekit: {what}; no partial artifacts were kept", file=sys.stderr)
        return 128 + signum
    except OSError as exc:  # disk full, read-only filesystem ... met outside edgekit's writers
        where = exc.filename or "edgekit"
        print(f"edgekit: error: {where}: {exc.strerror or exc}", file=sys.stderr)
        return 2


def _show_warning(default):
    """EdgekitWarnings as one 'edgekit: warning:' line; other warnings as Python shows them."""
    from .errors import EdgekitWarning

    def show(message, category, *args, **kwargs):
        if issubclass(category, EdgekitWarning):
            print(f"edgekit: warning: {message}", file=sys.stderr)
        else:
            default(message, category, *args, **kwargs)

    return show


if __name__ == "__main__":
    sys.exit(main())
