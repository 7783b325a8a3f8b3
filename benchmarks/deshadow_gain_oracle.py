"""Upper bound of a low-resolution gain map for the shadow degradation (no model involved).

    .venv/bin/python benchmarks/deshadow_gain_oracle.py [--factors 2,4,8]

The gain U-Net (zoo.build_gain_unet) relights the input with a per-channel gain predicted at
1/factor resolution and upsampled bilinearly. This takes the *true* gain of each held-out
shadow (clean / shadowed), averages its log over factor x factor blocks, upsamples it the same way
and prints the PSNR that gain map gives: what the architecture could reach with a perfect
prediction. Host CPU, numpy + PIL; nothing is written.
"""

from __future__ import annotations

import argparse

import numpy as np


def _pool(a: np.ndarray, f: int) -> np.ndarray:
    h, w = a.shape[0] // f * f, a.shape[1] // f * f
    return a[:h, :w].reshape(h // f, f, w // f, f, a.shape[2]).mean((1, 3))


def _upsample(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from PIL import Image as PILImage

    chans = [
        np.asarray(
            PILImage.fromarray(a[..., c].astype(np.float32), mode="F").resize(
                (shape[1], shape[0]), PILImage.BILINEAR
            )
        )
        for c in range(a.shape[2])
    ]
    return np.stack(chans, -1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--factors", default="2,4,8")
    a = ap.parse_args(argv)

    from edgekit.data.degradations import parse
    from edgekit.metrics import psnr
    from edgekit.models import train as T

    _, held_out = T.calibration_split()
    deg = parse("shadow")
    print("| factor | " + " | ".join(im.name.split("_")[0] for im in held_out) + " |")
    print("|---:|" + "---:|" * len(held_out))
    for f in (int(v) for v in a.factors.split(",")):
        cells = []
        for k, im in enumerate(held_out):
            clean = T._crop_for(im.pixels, 64, None)
            x, clean = deg(clean, seed=T.EVAL_SEED * 7919 + k)
            log_gain = np.log(np.clip(clean / np.maximum(x, 1 / 255), 1.0, 6.0))
            gain = np.exp(_upsample(_pool(log_gain, f), clean.shape[:2]))
            cells.append(f"{psnr(np.clip(x * gain, 0, 1), clean):.1f} (input {psnr(x, clean):.1f})")
        print(f"| {f} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
