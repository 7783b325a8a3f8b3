"""Issue 3 table: every zoo model x {fp32, fp16, dynamic, int8, int16x8} TFLite, one run per model.

    .venv/bin/python benchmarks/bench_zoo_precisions.py [--models a,b] [--repeats 10] [--out DIR]

For each model: export the five precisions at a fixed tile (256x256; SR models 128x128 input,
espcn_x3 96x96 because two calibration photos are smaller than 3 x 128 px), calibrated and
validated like `edgekit export`, then one harness run over the five (latency interleaved, LiteRT
XNNPACK, 2 threads; quality on the held-out photos centre-cropped to 512 px, tiled, against the
float Keras model on the same degraded photos). Prints a markdown table; every number is host-CPU.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

PRECISIONS = ("fp32", "fp16", "dynamic", "int8", "int16x8")
TILES = {"espcn_x2": (128, 128), "espcn_x3": (96, 96)}


def run_model(name: str, out: Path, repeats: int) -> list[str]:
    from edgekit import api
    from edgekit.config import load_target

    loaded = api.load(f"zoo:{name}")
    tile = TILES.get(name, (256, 256))
    target = load_target("host-cpu").model_copy(update={"tile": tile, "repeats": repeats})
    calib = api.calibration_sets(loaded, tile)
    paths, failed = [], []
    for p in PRECISIONS:
        t0 = time.perf_counter()
        try:
            art = api.export(
                loaded,
                format="tflite",
                precision=p,
                target=target,
                shape=tile,
                out=out / f"{name}-{p}.tflite",
                calib=calib,
            )
        except Exception as exc:  # a refused export is a result too: record why
            failed.append(f"| {name} | {p} | export refused: {str(exc)[:160]} |")
            continue
        print(f"{name} {p}: exported in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        paths.append(Path(art.path))
    report = api.bench(
        paths, target=target, reference=loaded, out_dir=out / name, max_side=512, write=False
    )
    ref = report["reference"]["psnr_db"]
    rows = {r["precision"]: r for r in report["artifacts"]}
    fp32 = rows.get("fp32")
    lines = []
    for p in PRECISIONS:
        r = rows.get(p)
        if r is None:
            continue
        speed = fp32["latency_ms"]["p50"] / r["latency_ms"]["p50"] if fp32 else float("nan")
        off = (r.get("int8_report") or {}).get("ops") or []
        off_names = sorted({o.get("op", "?") for o in off})
        lines.append(
            f"| {name} | {p} | {r['psnr_db']:.2f} | {ref - r['psnr_db']:+.2f} | "
            f"{r['size_bytes'] / 1e3:.0f} kB | {r['latency_ms']['p50']:.1f} | {speed:.2f}x | "
            f"{', '.join(off_names) or '-'} |"
        )
    return lines + failed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--models", default="dncnn,espcn_x2,espcn_x3,unet_deblur,unet_deshadow,unet_demoire"
    )
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="zoo-precisions-"))
    print(
        "| model | precision | PSNR dB | drop vs float dB | size | p50 ms | speed-up vs fp32 | ops off the int8/XNNPACK path |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        for line in run_model(name, out, args.repeats):
            print(line, flush=True)


if __name__ == "__main__":
    main()
