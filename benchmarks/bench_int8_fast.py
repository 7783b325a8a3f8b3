"""Must-show benchmark (issue 17): int8 that is actually fast, per model, all variants interleaved.

    .venv/bin/python benchmarks/bench_int8_fast.py [--models dncnn,espcn_x2,...,user_unet,user_unet_compressed]
        [--tile 256] [--threads 2] [--warmup 3] [--repeats 20] [--out DIR] [--smoke]

Per model (the 6 zoo models with their shipped weights, the user-like residual U-Net of
tests/user_unet.py, and that U-Net after host-cpu's default compress plan), exports
    tflite-fp32, tflite-int8 (rewrites on, the default), tflite-int8-host (--target host-cpu's
    int8 options: block_convs auto, on where this CPU has AMX int8 tiles), tflite-int8-raw
    (--no-rewrite),
    onnx-fp32, onnx-int8 (no target), onnx-int8-host (--target host-cpu's options),
    onnx-int8-qs (onnxruntime.quantization.quantize_static with its defaults, on the same fp32
    ONNX graph and the same calibration tiles)
all calibrated on the same tiles, then times them INTERLEAVED in one run per model through
edgekit.runtimes.measure on this host's CPU (the compressed U-Net's artifacts join the U-Net's
run, so "compressed int8 vs unpruned fp32" is one run), and scores every output on held-out
degraded photos. Prints a table (speed vs the same runtime's fp32, PSNR drop vs that fp32, ops
off the fast path) and PASS/FAIL for each threshold of the issue. Host-CPU numbers only.
--smoke: 2 models, 64 px tiles, 3 repeats: checks the script, measures nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

ZOO = ("dncnn", "espcn_x2", "espcn_x3", "unet_deblur", "unet_deshadow", "unet_demoire")
USER = ("user_unet", "user_unet_compressed")
THRESHOLDS = {
    "tflite_int8_zoo": 2.5,
    "tflite_int8_dncnn": 5.0,
    "psnr_drop_db": 0.3,
    "tflite_int8_user": 2.5,
    "ort_int8_user": 1.5,
    "ort_int8_dncnn": 2.5,
    "vs_qs_speed": 0.9,  # edgekit no slower than quantize_static defaults, 10 % noise allowance
    "vs_qs_db": 0.02,
    "compressed_vs_fp32": 3.0,
}


def _load(name: str):
    from edgekit.models import zoo
    from edgekit.models.info import LoadedModel, ModelInfo
    from edgekit.models.loading import load_model

    if name == "user_unet":
        from user_unet import build_user_unet

        info = ModelInfo("user_unet", "denoise", "noise:sigma=15", source="tests/user_unet.py")
        return LoadedModel(build_user_unet(), info)
    if zoo.get(name).trained:
        return load_model(f"zoo:{name}")
    e = zoo.get(name)
    info = ModelInfo(name, e.task, e.degradation, scale=e.scale, source=f"zoo:{name} (untrained)")
    return LoadedModel(zoo.build(name), info)


def _compress(loaded, steps_scale: float):
    from edgekit.compress.plan import run_plan
    from edgekit.config import load_target
    from edgekit.data.images import load_folder
    from edgekit.paths import calibration_dir

    plan = load_target("host-cpu").plan
    if steps_scale != 1.0:
        steps = [
            s.model_copy(update={"steps": max(10, int(s.steps * steps_scale))}) for s in plan.steps
        ]
        plan = plan.model_copy(update={"steps": steps})
    out, _ = run_plan(loaded, plan, calib_images=load_folder(calibration_dir()), progress=False)
    return out


def _tile(loaded, tile: int) -> tuple[int, int]:
    """The largest tile <= `tile` the model takes whose degraded source fits the photos."""
    scale = max(1, loaded.info.scale)
    multiple = max(16, loaded.info.input_multiple or 1)
    side = min(tile, 300 // scale)  # the smallest calibration photo is 300 px
    side = max(multiple, side // multiple * multiple)
    return side, side


def _quantize_static_defaults(fp32_path: Path, calib, out: Path) -> Path:
    import numpy as np
    import onnxruntime.quantization as q

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self.i = 0

        def get_next(self):
            if self.i >= len(calib):
                return None
            x = np.ascontiguousarray(calib[self.i][None].transpose(0, 3, 1, 2))
            self.i += 1
            return {"input": x}

    q.quantize_static(str(fp32_path), str(out), Reader())  # every option at its default
    return out


def _ort_float_ops(path: str) -> str:
    """Compute ops ONNX Runtime's CPU provider leaves in float in an int8 graph."""
    import collections

    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        so.log_severity_level = 3
        ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        ops = collections.Counter(
            n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node
        )
    heavy = ("Conv", "ConvTranspose", "Neg", "Mul", "Relu", "PRelu", "AveragePool", "Min", "Clip")
    return ", ".join(f"{k} x{ops[k]}" for k in heavy if ops.get(k)) or "-"


def _tflite_off(manifest) -> str:
    ops = (manifest.get("int8_report") or {}).get("ops") or []
    if not ops:
        return "-"
    seen: dict[str, int] = {}
    for e in ops:
        seen[e["op"]] = seen.get(e["op"], 0) + 1
    return ", ".join(f"{k} x{n}" for k, n in seen.items())


def _variants(host_opts: dict):
    return [  # id, format, precision, options
        ("tflite-fp32", "tflite", "fp32", {}),
        ("tflite-int8", "tflite", "int8", {}),
        ("tflite-int8-host", "tflite", "int8", dict(host_opts["tflite"])),
        ("tflite-int8-raw", "tflite", "int8", {"rewrite": False}),
        ("onnx-fp32", "onnx", "fp32", {"layout": "NCHW"}),
        ("onnx-int8", "onnx", "int8", {"layout": "NCHW"}),
        ("onnx-int8-host", "onnx", "int8", dict(host_opts["onnx"])),
    ]


def run_model(name, loaded, extra, args, out: Path, host_opts) -> list[dict]:
    """Export every variant of `loaded` (and of `extra`, the compressed model, if any), time them
    in one interleaved run, return one row per artifact."""
    from edgekit import api
    from edgekit.data.degradations import parse
    from edgekit.data.images import load_folder, split_holdout
    from edgekit.data.patches import degraded_tiles
    from edgekit.metrics import psnr_capped as psnr_db
    from edgekit.models.predict import predict as keras_outputs
    from edgekit.paths import calibration_dir
    from edgekit.runtimes.measure import measure

    tile = _tile(loaded, args.tile)
    calib = api.calibration_sets(loaded, tile)
    jobs = []
    members = [(name, loaded)] + ([(f"{name}_compressed", extra)] if extra is not None else [])
    for label, model in members:
        variants = _variants(host_opts)
        if label != name:  # the compressed model: only what its threshold needs
            variants = [
                v for v in variants if v[0] in ("tflite-fp32", "tflite-int8", "tflite-int8-host")
            ]
        for ident, fmt, prec, opts in variants:
            t0 = time.perf_counter()
            suffix = ".onnx" if fmt == "onnx" else ".tflite"
            art = api.export(
                model, format=fmt, precision=prec, shape=tile,
                out=out / f"{label}-{ident}{suffix}", calib=calib, options=opts,
            )  # fmt: skip
            print(
                f"  {label} {ident}: exported in {time.perf_counter() - t0:.0f} s", file=sys.stderr
            )
            jobs.append({"id": f"{label}:{ident}", "path": str(art.path), "manifest": art.manifest})
        if label == name:
            fp32 = next(j for j in jobs if j["id"] == f"{name}:onnx-fp32")
            qs = _quantize_static_defaults(Path(fp32["path"]), calib[0], out / f"{name}-qs.onnx")
            jobs.append(
                {"id": f"{name}:onnx-int8-qs", "path": str(qs), "manifest": fp32["manifest"]}
            )

    _, held = split_holdout(load_folder(calibration_dir()))
    deg = parse(loaded.info.degradation)
    xs, clean = degraded_tiles(held, deg, tile, per_image=1, seed=7)
    ref = keras_outputs(loaded.model, xs)
    load0 = os.getloadavg()[0]
    res = measure(
        jobs, xs, threads=args.threads, delegate="xnnpack", warmup=args.warmup, repeats=args.repeats
    )
    load1 = os.getloadavg()[0]
    p50 = {j["id"]: res["results"][j["id"]]["latency_ms"]["p50"] for j in jobs}
    fastest = {j["id"]: res["results"][j["id"]]["latency_ms"]["min"] for j in jobs}
    quality = {j["id"]: psnr_db(res["outputs"][j["id"]], clean) for j in jobs}
    rows = []
    for j in jobs:
        label, ident = j["id"].split(":")
        runtime_fp32 = f"{label}:{'tflite' if ident.startswith('tflite') else 'onnx'}-fp32"
        if not ident.startswith("tflite") and runtime_fp32 not in p50:
            runtime_fp32 = f"{name}:onnx-fp32"
        off = (
            _tflite_off(j["manifest"])
            if ident.startswith("tflite")
            else (_ort_float_ops(j["path"]) if "int8" in ident else "")
        )
        rows.append(
            {
                "model": label,
                "variant": ident,
                "p50_ms": p50[j["id"]],
                "min_ms": fastest[j["id"]],
                "speedup": p50[runtime_fp32] / p50[j["id"]],
                "psnr_db": quality[j["id"]],
                "drop_db": quality[runtime_fp32] - quality[j["id"]],
                "vs_keras_db": psnr_db(res["outputs"][j["id"]], ref),
                "off": off,
                "tile": tile,
                "load": (load0, load1),
                "ratio_to": p50,
            }
        )
    return rows


def checks(rows: list[dict]) -> list[str]:
    """PASS/FAIL lines for the issue's thresholds present in `rows`."""
    t = THRESHOLDS
    by = {(r["model"], r["variant"]): r for r in rows}
    out = []

    def line(ok, text):
        out.append(f"{'PASS' if ok else 'FAIL'}  {text}")

    tflite_int8 = ("tflite-int8", "tflite-int8-host")  # no target; --target host-cpu's options
    for model in ZOO:
        for variant in tflite_int8:
            r = by.get((model, variant))
            if r:
                need = t["tflite_int8_dncnn"] if model == "dncnn" else t["tflite_int8_zoo"]
                line(
                    r["speedup"] >= need and r["drop_db"] <= t["psnr_drop_db"],
                    f"{model} {variant}: {r['speedup']:.2f}x tflite-fp32 (>= {need}x), "
                    f"drop {r['drop_db']:.2f} dB (<= {t['psnr_drop_db']}), off path: {r['off']}",
                )
    for variant in tflite_int8:
        r = by.get(("user_unet", variant))
        if r:
            line(
                r["speedup"] >= t["tflite_int8_user"],
                f"user U-Net {variant}: {r['speedup']:.2f}x tflite-fp32 (>= {t['tflite_int8_user']}x)",
            )
    for model, key in (("user_unet", "ort_int8_user"), ("dncnn", "ort_int8_dncnn")):
        r = by.get((model, "onnx-int8"))
        if r:
            line(
                r["speedup"] >= t[key],
                f"{model}: ORT int8 {r['speedup']:.2f}x ORT fp32 (>= {t[key]}x)",
            )
    for (model, variant), r in by.items():
        if variant in ("onnx-int8", "onnx-int8-host"):
            qs = by.get((model, "onnx-int8-qs"))
            if qs:
                speed = qs["p50_ms"] / r["p50_ms"]
                line(
                    speed >= t["vs_qs_speed"] and r["psnr_db"] >= qs["psnr_db"] - t["vs_qs_db"],
                    f"{model} {variant}: {speed:.2f}x the speed of quantize_static defaults "
                    f"(>= {t['vs_qs_speed']}), {r['psnr_db'] - qs['psnr_db']:+.3f} dB (>= -{t['vs_qs_db']})",
                )
    f = by.get(("user_unet", "tflite-fp32"))
    for variant in tflite_int8:
        c = by.get(("user_unet_compressed", variant))
        if c and f:
            ratio = f["p50_ms"] / c["p50_ms"]
            line(
                ratio >= t["compressed_vs_fp32"],
                f"compressed U-Net {variant} {ratio:.2f}x the unpruned tflite-fp32 "
                f"(>= {t['compressed_vs_fp32']}x)",
            )
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(ZOO + USER))
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--compress-steps", type=float, default=1.0, help="scale the plan's steps")
    ap.add_argument("--out", help="keep the artifacts here (default: a temporary folder)")
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args(argv)
    if args.smoke:
        args.models, args.tile, args.repeats, args.warmup = (
            "espcn_x2,user_unet,user_unet_compressed",
            64,
            3,
            1,
        )
        args.compress_steps = 0.02

    from edgekit.config import host_label, load_target

    host = load_target("host-cpu")
    host_opts = {
        e.format.value: e.options
        for e in host.exports
        if e.format.value in ("tflite", "onnx") and e.precision.value == "int8"
    }
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="edgekit-bench-int8-"))
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    t_start = time.perf_counter()
    for name in names:
        if name == "user_unet_compressed":
            continue  # measured inside the user_unet run
        print(f"{name}: exporting", file=sys.stderr)
        loaded = _load(name)
        extra = None
        if name == "user_unet" and "user_unet_compressed" in names:
            t0 = time.perf_counter()
            extra = _compress(loaded, args.compress_steps)
            print(f"  compressed in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        rows += run_model(name, loaded, extra, args, out, host_opts)

    print("## Int8 fast path per model (issue 17)\n")
    print(
        f"Command: `.venv/bin/python benchmarks/bench_int8_fast.py --models {args.models} --tile {args.tile} "
        f"--threads {args.threads} --repeats {args.repeats}`  "
    )
    print(
        f"Measured on: {host_label()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{args.threads} threads, {args.warmup} warm-up + {args.repeats} interleaved rounds per model; "
        f"total {time.perf_counter() - t_start:.0f} s. Speed-up and PSNR drop are against the same "
        "runtime's fp32 of the same model (held-out degraded photos, PSNR vs clean).\n"
    )
    print(
        "| model | tile | variant | p50 ms | min ms | speed-up | PSNR dB | drop dB | vs Keras dB | off the fast path | load |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['tile'][0]} | {r['variant']} | {r['p50_ms']:.1f} | {r['min_ms']:.1f} | "
            f"{r['speedup']:.2f}x | "
            f"{r['psnr_db']:.2f} | {r['drop_db']:+.2f} | {r['vs_keras_db']:.1f} | {r['off']} | "
            f"{r['load'][0]:.1f}/{r['load'][1]:.1f} |"
        )
    print()
    for text in checks(rows):
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
