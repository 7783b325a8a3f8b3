"""Peak memory and wall time of `edgekit run` and `edgekit bench` on big photos (issue 19).

Makes a 4000x3000 photo and one with half its pixels (2828x2121) by upscaling a bundled
photo, exports zoo:dncnn as int8 TFLite (256x256 tile) once, then runs, each in a fresh process:

    edgekit run zoo:dncnn NOISY.png            (Keras float, streamed tiles)
    edgekit run dncnn-int8.tflite NOISY.png    (LiteRT int8, streamed tiles)
    edgekit bench dncnn-int8.tflite --images DIR --reference zoo:dncnn --no-memory
                                               (int8 + the float Keras reference, both tiled)

and prints each command's peak RSS (the child's own ru_maxrss from wait4) and wall time. The
issue asks: peak RSS <= 2 GB each on the 12-megapixel photo, and wall time for 2x the pixels
<= 2.2x (linear). Numbers are host-CPU numbers; run it on a quiet machine (`uptime` < 2):

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_run_memory.py --out /tmp/runmem
    (--quick: 1000x750 and 707x530, a smoke test of the script itself;
     --only bench: just the bench command, e.g. after a change to the harness)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "calibration_data" / "16_coffee_cup.png"
LIMIT_MB = 2048
LINEAR = 2.2


def _make_photos(folder: Path, sizes) -> dict:
    from PIL import Image

    src = Image.open(PHOTO).convert("RGB")
    rng = np.random.default_rng(0)
    out = {}
    for w, h in sizes:
        clean_dir = folder / f"clean-{w}x{h}"
        clean_dir.mkdir(parents=True, exist_ok=True)
        clean = src.resize((w, h), Image.Resampling.BICUBIC)
        clean.save(clean_dir / "photo.png")
        x = np.asarray(clean, np.float32) / 255.0
        x += rng.normal(0.0, 25.0 / 255.0, x.shape).astype(np.float32)
        noisy = folder / f"noisy-{w}x{h}.png"
        Image.fromarray(np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)).save(noisy)
        out[(w, h)] = (clean_dir, noisy)
    return out


def _measure(argv: list[str]) -> tuple[float, float, int]:
    """(peak RSS MB of that process, wall seconds, exit code)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace")
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        print(f"FAILED ({code}): {' '.join(argv)}\n{err[-2000:]}", file=sys.stderr)
    return usage.ru_maxrss / 1024.0, wall, code


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/edgekit-run-memory"))
    ap.add_argument("--quick", action="store_true", help="small photos: check the script works")
    ap.add_argument(
        "--only", choices=("run", "bench"), help="measure only the run or only the bench commands"
    )
    args = ap.parse_args()
    big, half = ((1000, 750), (707, 530)) if args.quick else ((4000, 3000), (2828, 2121))
    args.out.mkdir(parents=True, exist_ok=True)
    py = [sys.executable, "-m", "edgekit.cli"]
    int8 = args.out / "dncnn-int8.tflite"
    if not int8.exists():
        subprocess.run(
            [*py, "export", "zoo:dncnn", "--format", "tflite", "--precision", "int8",
             "--shape", "256x256", "--out", str(int8)],
            check=True, env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )  # fmt: skip
    photos = _make_photos(args.out, (half, big))
    rows = []
    for (w, h), (clean_dir, noisy) in photos.items():
        cmds = {
            "run keras": [*py, "run", "zoo:dncnn", str(noisy), "--out", str(args.out / "k")],
            "run int8": [*py, "run", str(int8), str(noisy), "--out", str(args.out / "i")],
            "bench int8+keras": [
                *py, "bench", str(int8), "--images", str(clean_dir), "--reference",
                "zoo:dncnn", "--no-memory", "--out", str(args.out / f"bench-{w}x{h}"),
            ],
        }  # fmt: skip
        for name, argv in cmds.items():
            if args.only and not name.startswith(args.only):
                continue
            rss, wall, code = _measure(argv)
            rows.append((name, w, h, rss, wall, code))
            print(f"{name:18s} {w}x{h}: peak RSS {rss:7.0f} MB, wall {wall:7.1f} s", flush=True)
    print(f"\nhost CPU, load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
    print("| command | photo | peak RSS MB | wall s | 2x pixels: time ratio | verdict |")
    print("|---|---|---:|---:|---:|---|")
    ok = True
    for name in ("run keras", "run int8", "bench int8+keras"):
        if args.only and not name.startswith(args.only):
            continue
        small = next(r for r in rows if r[0] == name and (r[1], r[2]) == half)
        large = next(r for r in rows if r[0] == name and (r[1], r[2]) == big)
        ratio = large[4] / small[4]
        good = large[3] <= LIMIT_MB and ratio <= LINEAR and large[5] == small[5] == 0
        ok &= good
        print(
            f"| {name} | {big[0]}x{big[1]} (vs {half[0]}x{half[1]}) | {large[3]:.0f} "
            f"({small[3]:.0f}) | {large[4]:.1f} ({small[4]:.1f}) | {ratio:.2f} | "
            f"{'ok' if good else 'FAIL'} (<= {LIMIT_MB} MB, <= {LINEAR}x) |"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
