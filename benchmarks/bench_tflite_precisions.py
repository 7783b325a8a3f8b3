"""Must-show benchmark (issue 2): zoo DnCNN as fp32 / fp16 / dynamic / int8 TFLite, one run.

    .venv/bin/python benchmarks/bench_tflite_precisions.py [--repeats 30] [--threads 2] [--out DIR]

Exports the four precisions of the trained zoo denoiser at a fixed 256x256 tile (calibrated and
validated like `edgekit export`), then runs the benchmark harness once over all four: latency is
timed interleaved (fp32 fp16 dynamic int8 fp32 ... so machine noise hits every variant alike) on
the host CPU through LiteRT/XNNPACK, and quality is PSNR vs clean on the held-out calibration
photos (whole photos, tiled) next to the float Keras model on the same degraded photos.

Prints a table with ratios against fp32, the issue's three targets with PASS/FAIL, and a
markdown block for benchmarks/RESULTS.md. Every number is a host-CPU number.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

PRECISIONS = ("fp32", "fp16", "dynamic", "int8")
TARGETS = {"speedup": 3.0, "psnr_drop_db": 0.3, "size_ratio": 0.3}


def export_all(loaded, tile, out: Path, target) -> list[Path]:
    from edgekit import api

    calib = api.calibration_sets(loaded, tile)
    paths = []
    for p in PRECISIONS:
        t0 = time.perf_counter()
        art = api.export(
            loaded,
            format="tflite",
            precision=p,
            target=target,
            shape=tile,
            out=out / f"dncnn-{p}.tflite",
            calib=calib,
        )
        print(
            f"exported {p:8s} in {time.perf_counter() - t0:5.1f} s -> {art.path}", file=sys.stderr
        )
        paths.append(Path(art.path))
    return paths


def summary(report: dict) -> tuple[list[list[str]], dict]:
    rows = {r["precision"]: r for r in report["artifacts"]}
    fp32 = rows["fp32"]
    ref = report["reference"]["psnr_db"]
    table = []
    for p in PRECISIONS:
        r = rows[p]
        lat = r["latency_ms"]
        table.append(
            [
                p,
                f"{r['size_bytes'] / 1e6:.3f}",
                f"{r['size_bytes'] / fp32['size_bytes']:.3f}",
                f"{lat['p50']:.1f}",
                f"{lat['min']:.1f}-{lat['max']:.1f}",
                f"{fp32['latency_ms']['p50'] / lat['p50']:.2f}x",
                f"{r['psnr_db']:.3f}",
                f"{r['psnr_db'] - ref:+.3f}",
                f"{r['psnr_vs_reference_db']:.1f}",
                f"{r['peak_rss_mb']:.0f}" if r.get("peak_rss_mb") is not None else "-",
            ]
        )
    int8 = rows["int8"]
    checks = {
        "int8 median latency >= 3x faster than fp32": (
            fp32["latency_ms"]["p50"] / int8["latency_ms"]["p50"],
            TARGETS["speedup"],
            ">=",
        ),
        "int8 PSNR within 0.3 dB of float Keras": (
            ref - int8["psnr_db"],
            TARGETS["psnr_drop_db"],
            "<=",
        ),
        "int8 file <= 0.3x fp32 file": (
            int8["size_bytes"] / fp32["size_bytes"],
            TARGETS["size_ratio"],
            "<=",
        ),
    }
    return table, checks


HEADER = [
    "precision",
    "size MB",
    "size / fp32",
    "p50 ms",
    "min-max ms",
    "speed-up vs fp32",
    "PSNR vs clean dB",
    "Δ vs float Keras dB",
    "PSNR vs float output dB",
    "peak RSS MB",
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30, help="timed runs per artifact (interleaved)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--out", type=Path, default=None, help="keep artifacts and report here")
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="re-measure the artifacts already exported to --out (no new export)",
    )
    args = ap.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    from edgekit import api
    from edgekit.config import load_target, target_from_dict
    from edgekit.report.render import write_report

    console = Console()
    base = load_target("host-cpu").model_dump(mode="json", exclude={"source"})
    base.update(
        threads=args.threads, warmup=args.warmup, repeats=args.repeats, tile=[args.tile, args.tile]
    )
    target = target_from_dict(base, source="benchmarks/bench_tflite_precisions.py")
    tile = (args.tile, args.tile)
    loaded = api.load("zoo:dncnn")
    out = args.out or Path(tempfile.mkdtemp(prefix="edgekit-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    if args.reuse:
        if args.out is None:
            ap.error("--reuse needs --out DIR with the exported artifacts")
        paths = [out / f"dncnn-{p}.tflite" for p in PRECISIONS]
    else:
        paths = export_all(loaded, tile, out, target)
    report = api.bench(paths, target=target, reference=loaded, out_dir=out, write=False)
    write_report(report, out)

    table, checks = summary(report)
    t = Table(
        title=f"zoo DnCNN, {tile[0]}x{tile[1]} tile, {args.threads} threads, LiteRT/XNNPACK — "
        f"measured on {report['measured_on']}"
    )
    for h in HEADER:
        t.add_column(h, justify="left" if h == "precision" else "right")
    for row in table:
        t.add_row(*row)
    console.print(t)
    ev = report["eval_set"]
    console.print(
        f"float Keras: PSNR {report['reference']['psnr_db']:.3f} dB; noisy input "
        f"{report['degraded_input']['psnr_db']:.3f} dB; eval: {ev['count']} held-out photos "
        f"({', '.join(i['name'] for i in ev['images'])}), {ev['degradation']}, seed {ev['seed']}, "
        f"{sum(ev['tiles'].values())} tiles; {args.repeats} interleaved repeats, median"
    )
    lows = {r["precision"]: r["latency_ms"]["min"] for r in report["artifacts"]}
    console.print(
        f"speed-up of the fastest runs (min, less noise-sensitive): int8 "
        f"{lows['fp32'] / lows['int8']:.2f}x, dynamic {lows['fp32'] / lows['dynamic']:.2f}x, "
        f"fp16 {lows['fp32'] / lows['fp16']:.2f}x"
    )
    ok_all = True
    for name, (value, limit, op) in checks.items():
        ok = value >= limit if op == ">=" else value <= limit
        ok_all &= ok
        console.print(f"{'PASS' if ok else 'FAIL'}  {name}: {value:.3f} (target {op} {limit})")
    for n in report["notes"]:
        console.print(f"note: {n}")

    print("\n<!-- markdown for benchmarks/RESULTS.md -->")
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "---|" * len(HEADER))
    for row in table:
        print("| " + " | ".join(row) + " |")
    print(f"\nreport: {out / 'report.json'}")
    return 0 if ok_all else 1


if __name__ == "__main__":
    from edgekit.errors import EdgekitError

    try:
        sys.exit(main())
    except EdgekitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
