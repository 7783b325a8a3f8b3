"""Keras 3 models through edgekit (issue 15 must-show): parity, TFLite fp32/int8 quality, compress.

    PYTHONPATH=. TF_USE_LEGACY_KERAS=1 .venv/bin/python benchmarks/keras3_models.py \
        [--train-steps 300] [--compress-steps N] [--out DIR]

1. In a Keras 3 process (no TF_USE_LEGACY_KERAS), tests/keras3_build.py builds and briefly trains
   four architectures (channel-attention denoiser, U-Net, ESPCN-style x2 with
   keras.ops.depth_to_space, x2 with Conv2DTranspose) on crops of the training calibration photos
   and saves `.keras` files plus Keras 3's own outputs on held-out crops.
2. edgekit loads each file (rebuilt as tf_keras, no code run): parity dB vs Keras 3's outputs.
3. fp32 and full-int8 TFLite export at a 128x128 tile; `compare` runs Keras, both files on
   degraded held-out tiles: PSNR vs clean of each, and the int8 drop vs fp32.
4. The host-cpu default plan (prune a third of the filters, distil into the pruned model) on the
   U-Net (its own step counts, or --compress-steps each): MACs and held-out PSNR before/after.
Prints a markdown table for benchmarks/RESULTS.md. Quality numbers only (host CPU); no timing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODELS = {  # name -> degradation edgekit evaluates it with
    "ca_denoiser": "noise:sigma=25",
    "unet": "noise:sigma=25",
    "sr_shuffle": "downscale:factor=2",
    "sr_tconv": "downscale:factor=2",
}
TILE = (128, 128)


def _crops(images, size, per_image, rng):
    out = []
    for im in images:
        h, w = im.pixels.shape[:2]
        for _ in range(per_image):
            y, x = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
            out.append(im.pixels[y : y + size, x : x + size])
    return np.stack(out).astype(np.float32)


def build_keras3(folder: Path, steps: int) -> None:
    from edgekit.data.images import load_folder, split_holdout
    from edgekit.paths import calibration_dir

    train, held = split_holdout(load_folder(calibration_dir()))
    rng = np.random.default_rng(0)
    np.save(folder / "train.npy", _crops(train, 128, 8, rng))
    np.save(folder / "eval.npy", _crops(held, 128, 2, rng))
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    cmd = [
        sys.executable, str(ROOT / "tests" / "keras3_build.py"), str(folder),
        str(folder / "train.npy"), "--train", str(steps), "--only", ",".join(MODELS),
        "--eval", str(folder / "eval.npy"),
    ]  # fmt: skip
    print("Keras 3:", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, env=env | {"TF_CPP_MIN_LOG_LEVEL": "3"}, check=True)


def measure(folder: Path, name: str) -> dict:
    from edgekit import api
    from edgekit.bench.compare import compare
    from edgekit.metrics import psnr

    loaded = api.load(str(folder / f"{name}.keras"), degradation=MODELS[name])
    evals = np.load(folder / "eval.npy")
    parity = psnr(loaded.model(evals, training=False).numpy(), np.load(folder / f"{name}.out.npy"))
    arts = []
    for prec in ("fp32", "int8"):
        out = folder / f"{name}_{prec}.tflite"
        api.export(loaded, format="tflite", precision=prec, shape=TILE, out=out)
        arts.append(out)
    result = compare(loaded, arts, tile=TILE, per_image=2)
    clean = {o["precision"] if o["name"] != "keras" else "keras": o for o in result["outputs"]}
    row = {
        "model": name,
        "degradation": MODELS[name],
        "parity_db": round(float(parity), 2),
        "keras_db": clean["keras"]["psnr_vs_clean_db"],
        "fp32_db": clean["fp32"]["psnr_vs_clean_db"],
        "int8_db": clean["int8"]["psnr_vs_clean_db"],
        "tiles": result["tiles"],
        "measured_on": result["measured_on"],
    }
    row["fp32_drop_db"] = round(row["keras_db"] - row["fp32_db"], 3)
    row["int8_drop_db"] = round(row["fp32_db"] - row["int8_db"], 3)
    print(json.dumps(row), flush=True)
    return row


def compress_one(folder: Path, name: str, steps: int) -> dict:
    from edgekit import api
    from edgekit.compress import run_plan
    from edgekit.config import load_target, plan_from_dict
    from edgekit.data.images import load_folder
    from edgekit.paths import calibration_dir

    loaded = api.load(str(folder / f"{name}.keras"), degradation=MODELS[name])
    default = load_target("host-cpu").plan
    steps_of = {"steps": steps} if steps else {}
    plan = plan_from_dict(
        {
            "name": default.name + (f" ({steps} steps per step)" if steps else ""),
            "steps": [s.model_dump(exclude_none=True) | steps_of for s in default.steps],
        }
    )
    _, rows = run_plan(loaded, plan, calib_images=load_folder(calibration_dir()))
    keep = ("kind", "macs_per_pixel_before", "macs_per_pixel_after", "psnr_db_before",
            "psnr_db_after", "psnr_vs_float_db_after")  # fmt: skip
    out = [{k: r.get(k) for k in keep} for r in rows]
    print(json.dumps(out), flush=True)
    return {"model": name, "plan": plan.name, "rows": out}


def _db(value: float) -> str:
    return "bit-identical" if value == float("inf") else f"{value:.1f}"


def markdown(rows: list[dict], comp: dict | None) -> str:
    lines = [
        "| Keras 3 model | degradation | parity vs Keras 3 (dB) | Keras (dB) | TFLite fp32 (dB) "
        "| fp32 drop | TFLite int8 (dB) | int8 drop vs fp32 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['degradation']} | {_db(r['parity_db'])} | {r['keras_db']:.2f} | "
            f"{r['fp32_db']:.2f} | {r['fp32_drop_db']:+.3f} | {r['int8_db']:.2f} | "
            f"{r['int8_drop_db']:+.3f} |"
        )
    if comp:
        lines += ["", f"compress `{comp['model']}` with {comp['plan']}:", ""]
        lines += ["| step | MACs/px before | after | PSNR before (dB) | after | vs float after |"]
        lines += ["|---|---|---|---|---|---|"]
        for r in comp["rows"]:
            lines.append(
                f"| {r['kind']} | {r['macs_per_pixel_before']:.0f} | "
                f"{r['macs_per_pixel_after']:.0f} | {r['psnr_db_before']:.2f} | "
                f"{r['psnr_db_after']:.2f} | {r['psnr_vs_float_db_after']:.2f} |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-steps", type=int, default=300)
    ap.add_argument(
        "--compress-steps", type=int, default=0, help="steps per plan step (0: the plan's own)"
    )
    ap.add_argument("--compress-model", default="unet")
    ap.add_argument("--out", help="folder to keep the files in (default: a temporary one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.out or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        build_keras3(folder, args.train_steps)
        rows = [measure(folder, name) for name in MODELS]
        comp = compress_one(folder, args.compress_model, args.compress_steps)
        (folder / "keras3_models.json").write_text(json.dumps({"rows": rows, "compress": comp}))
        print(markdown(rows, comp))


if __name__ == "__main__":
    main()
