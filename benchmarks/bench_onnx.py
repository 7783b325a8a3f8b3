"""Must-show benchmark (issue 4): ONNX Runtime int8 (Q/DQ) vs fp32 on the zoo denoiser, with the
same model's LiteRT fp32/int8 beside it, all in one interleaved run.

    .venv/bin/python benchmarks/bench_onnx.py [--tile 256] [--threads 2] [--repeats 15] [--out DIR]

Exports the zoo DnCNN (trained weights when shipped, otherwise its architecture seeded: latency
is the same, quality columns are then meaningless and marked so) as ONNX fp32, ONNX int8 Q/DQ with
symmetric activations (TensorRT-compatible default) and with asymmetric activations (ONNX Runtime
can fold ReLUs then), all NCHW with transposes folded, and as TFLite fp32 and full int8, calibrated and validated like
`edgekit export`. Then times the four artifacts interleaved (A B C D A B C D ...) through
edgekit.runtimes.measure on this host's CPU with the given threads, and scores every output on
the same held-out degraded tiles: PSNR vs clean and vs the Keras model. Prints a Markdown section
for benchmarks/RESULTS.md. Every number is a host-CPU number.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = (  # id, format, precision, options
    ("onnx-fp32", "onnx", "fp32", {"layout": "NCHW"}),
    ("onnx-int8", "onnx", "int8", {"layout": "NCHW"}),
    ("onnx-int8-asym", "onnx", "int8", {"layout": "NCHW", "activations": "asymmetric"}),
    ("tflite-fp32", "tflite", "fp32", {}),
    ("tflite-int8", "tflite", "int8", {}),
)
TARGET_SPEEDUP = 2.0


def load_denoiser():
    from edgekit.models import zoo
    from edgekit.models.info import LoadedModel, ModelInfo
    from edgekit.models.loading import load_model

    if zoo.get("dncnn").trained:
        return load_model("zoo:dncnn"), True
    from edgekit.tfcompat import import_tf

    import_tf()[1].utils.set_random_seed(0)
    info = ModelInfo("dncnn", "denoise", "noise:sigma=25", source="zoo:dncnn (untrained)")
    return LoadedModel(zoo.build("dncnn"), info), False


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--out", help="keep the artifacts here (default: a temporary folder)")
    args = ap.parse_args(argv)

    from edgekit import api
    from edgekit.config import host_label
    from edgekit.data.degradations import parse
    from edgekit.data.images import load_folder, split_holdout
    from edgekit.data.patches import degraded_tiles
    from edgekit.metrics import psnr_capped as psnr_db
    from edgekit.models.predict import predict as keras_outputs
    from edgekit.paths import calibration_dir
    from edgekit.runtimes.measure import measure

    tile = (args.tile, args.tile)
    loaded, trained = load_denoiser()
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="edgekit-bench-onnx-"))
    calib = api.calibration_sets(loaded, tile)
    jobs = []
    for ident, fmt, prec, opts in VARIANTS:
        t0 = time.perf_counter()
        suffix = ".onnx" if fmt == "onnx" else ".tflite"
        art = api.export(
            loaded, format=fmt, precision=prec, shape=tile,
            out=out / f"dncnn-{ident}{suffix}", calib=calib, options=opts,
        )  # fmt: skip
        print(f"exported {ident:12s} in {time.perf_counter() - t0:5.1f} s", file=sys.stderr)
        jobs.append({"id": ident, "path": str(art.path), "manifest": art.manifest})

    _, held = split_holdout(load_folder(calibration_dir()))
    xs, clean = degraded_tiles(held, parse(loaded.info.degradation), tile, per_image=1, seed=7)
    ref = keras_outputs(loaded.model, xs)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    res = measure(
        jobs, xs, threads=args.threads, delegate="xnnpack", warmup=args.warmup, repeats=args.repeats
    )
    wall = time.perf_counter() - t0
    load_after = os.getloadavg()

    p50 = {j["id"]: res["results"][j["id"]]["latency_ms"]["p50"] for j in jobs}
    rows = []
    for ident, fmt, _prec, _ in VARIANTS:
        r = res["results"][ident]
        y = res["outputs"][ident]
        fp32_id = f"{fmt}-fp32"  # ratio against the same runtime's fp32
        rows.append(
            f"| {ident} | {r['versions'].get('onnxruntime') or r['versions'].get('litert')} | "
            f"{os.path.getsize(r['path']) / 1e6:.2f} | {p50[ident]:.1f} | "
            f"{r['latency_ms']['min']:.1f}-{r['latency_ms']['max']:.1f} | "
            f"{p50[fp32_id] / p50[ident]:.2f}x | {psnr_db(y, clean):.2f} | {psnr_db(y, ref):.1f} |"
        )
    speedup = p50["onnx-fp32"] / p50["onnx-int8"]
    speedup_asym = p50["onnx-fp32"] / p50["onnx-int8-asym"]
    quality_note = "" if trained else " (UNTRAINED weights: PSNR columns are not meaningful)"
    lines = [
        f"## ONNX / TensorRT: ONNX Runtime int8 vs fp32 on the zoo DnCNN (issue 4 must-show){quality_note}",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_onnx.py --tile {args.tile} --threads {args.threads} "
        f"--repeats {args.repeats}`  ",
        f"Measured on: {host_label()}, {res['device'].get('cpu_model') or ''}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; timing run {wall:.0f} s.  ",
        f"Model: {loaded.info.source}{' (shipped weights)' if trained else ''}, {tile[0]}x{tile[1]} tile, "
        f"batch 1, {args.threads} threads, {args.warmup} warm-up + {args.repeats} interleaved rounds over "
        f"{len(xs)} held-out degraded tiles ({loaded.info.degradation}); ONNX in NCHW, int8 = per-channel "
        "symmetric int8 weights, int8 activations (S8S8 Q/DQ) on the CPU execution provider; TFLite "
        "through LiteRT/XNNPACK.",
        "",
        "| artifact | runtime version | MB | p50 ms | min-max ms | speed-up vs same-runtime fp32 | PSNR vs clean (dB) | PSNR vs Keras (dB) |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"ONNX Runtime int8 vs fp32 median latency ratio: **{speedup:.2f}x** with symmetric "
        f"activations (the TensorRT-compatible default), **{speedup_asym:.2f}x** with asymmetric "
        f"activations (`activations: asymmetric`, ONNX Runtime only) (target >= {TARGET_SPEEDUP:g}x: "
        f"{'PASS' if max(speedup, speedup_asym) >= TARGET_SPEEDUP else 'FAIL'}); "
        f"LiteRT int8 vs fp32 in the same run: {p50['tflite-fp32'] / p50['tflite-int8']:.2f}x. "
        f"Keras float PSNR vs clean: {psnr_db(ref, clean):.2f} dB; degraded input: {psnr_db(xs, clean):.2f} dB.",
        "",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
