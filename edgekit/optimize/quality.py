"""Quality of one artifact on the validation photos, in any process (a Ray worker included).

The harness' own pieces (edgekit.bench.evalset tiling and blending, edgekit.bench.scoring): each
clean photo degraded with seed `seed * 1_000_003 + k`, cut into tiles of the artifact's input size
with the default overlap, run, blended back and scored against the clean photo (PSNR/SSIM,
outputs clipped to [0, 1]). Photos travel as arrays, so nothing here reads the user's disk.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from ..bench.evalset import TiledSet
from ..bench.scoring import scores as harness_scores
from ..models.info import ModelInfo
from ..models.predict import from_model_range, predict, to_model_range


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
    info = ModelInfo(name="", task="", degradation=None, value_range=tuple(value_range))
    names = [SimpleNamespace(name=f"photo {k}") for k in range(len(degraded))]
    ts = TiledSet.cut(names, degraded, tuple(tile), scale, None, None)
    y = np.asarray(run(to_model_range(ts.tiles, info)), np.float32)
    return ts.blend(from_model_range(y, info))


def scores(outs: list, cleans: list) -> dict:
    ps, ss = harness_scores(outs, cleans)
    return {"psnr_db": float(np.mean(ps)), "ssim": float(np.mean(ss)), "psnr_per_image": ps}


def score_artifact(path: str, degraded, cleans, tile, scale, value_range, threads=2) -> dict:
    """Run a .tflite/.onnx artifact through its runtime on the photos and score it."""
    from ..runtimes.base import runner_for

    runner = runner_for(str(path), threads=threads)
    return scores(run_tiled(runner.run, degraded, tile, scale, value_range), cleans)


def score_keras(model, degraded, cleans, tile, scale, value_range) -> dict:
    """The float Keras model through the same tiling: the reference every drop is measured from."""
    return scores(
        run_tiled(lambda b: predict(model, b), degraded, tile, scale, value_range), cleans
    )
