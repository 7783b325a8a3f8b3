"""Quality of one artifact on the validation photos, in any process (a Ray worker included).

The same procedure as the harness (edgekit.bench.harness): each clean photo degraded with seed
`seed * 1_000_003 + k`, cut into tiles of the artifact's input size with the default overlap,
run, blended back and scored against the clean photo (PSNR/SSIM, outputs clipped to [0, 1]).
Photos travel as arrays, so nothing here reads the user's disk.
"""

from __future__ import annotations

import numpy as np

from ..bench import tiling
from ..bench.metrics import psnr, ssim

CAP_DB = 200.0


def degrade(images: list, spec: str, seed: int = 0) -> tuple[list, list]:
    """(degraded inputs, clean targets) as the harness draws them."""
    from ..data.degradations import parse

    deg = parse(spec)
    xs, cs = [], []
    for k, im in enumerate(images):
        x, c = deg(im.pixels, seed=seed * 1_000_003 + k)
        xs.append(x)
        cs.append(c)
    return xs, cs


def run_tiled(run, degraded: list, tile: tuple[int, int], scale: int, value_range) -> list:
    """`run` (a batch -> batch callable in the model's value range) over every photo, blended."""
    lo, hi = value_range
    outs = []
    for x in degraded:
        tiles, layout = tiling.tile_image(x, tile)
        if (lo, hi) != (0.0, 1.0):
            tiles = (lo + tiles * (hi - lo)).astype(np.float32)
        y = np.asarray(run(np.asarray(tiles, np.float32)), np.float32)
        if (lo, hi) != (0.0, 1.0):
            y = ((y - lo) / (hi - lo)).astype(np.float32)
        outs.append(tiling.blend_tiles(y, layout, scale))
    return outs


def scores(outs: list, cleans: list) -> dict:
    ps, ss = [], []
    for y, c in zip(outs, cleans, strict=True):
        y = np.clip(y, 0.0, 1.0)
        p = psnr(y, c)
        ps.append(CAP_DB if not np.isfinite(p) else min(float(p), CAP_DB))
        ss.append(float(ssim(y, c)))
    return {
        "psnr_db": float(np.mean(ps)),
        "ssim": float(np.mean(ss)),
        "psnr_per_image": ps,
    }


def score_artifact(path: str, degraded, cleans, tile, scale, value_range, threads=2) -> dict:
    """Run a .tflite/.onnx artifact through its runtime on the photos and score it."""
    if str(path).endswith(".onnx"):
        from ..runtimes.onnxruntime import OnnxRuntimeRunner as Runner
    else:
        from ..runtimes.litert import LiteRTRunner as Runner
    runner = Runner(str(path), threads=threads)
    return scores(run_tiled(runner.run, degraded, tile, scale, value_range), cleans)


def score_keras(model, degraded, cleans, tile, scale, value_range) -> dict:
    """The float Keras model through the same tiling: the reference every drop is measured from."""
    from ..export.validate import keras_outputs

    return scores(
        run_tiled(lambda b: keras_outputs(model, b), degraded, tile, scale, value_range), cleans
    )
