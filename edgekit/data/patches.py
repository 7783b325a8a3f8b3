"""Training pairs and calibration tiles cut from clean images."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..errors import EdgekitError
from .degradations import Degradation
from .images import Image


def random_crops(
    images: list[Image], size: int, count: int, seed: int, augment: bool = True
) -> np.ndarray:
    """`count` random (size, size, 3) crops over all images (each image weighted equally)."""
    usable = [im for im in images if min(im.shape) >= size]
    if not usable:
        raise EdgekitError(
            f"no image is at least {size}x{size} pixels; use larger images or smaller patches"
        )
    rng = np.random.default_rng(seed)
    out = np.empty((count, size, size, 3), np.float32)
    for i in range(count):
        im = usable[rng.integers(len(usable))].pixels
        y = rng.integers(im.shape[0] - size + 1)
        x = rng.integers(im.shape[1] - size + 1)
        crop = im[y : y + size, x : x + size]
        if augment:
            crop = np.rot90(crop, k=int(rng.integers(4)))
            if rng.integers(2):
                crop = crop[:, ::-1]
        out[i] = crop
    return out


def make_pairs(
    images: list[Image], degradation: Degradation, patch: int, count: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(degraded inputs, clean targets): inputs are (patch, patch), targets (patch*scale)^2."""
    s = degradation.scale
    clean = random_crops(images, patch * s, count, seed)
    xs = np.empty((count, patch, patch, 3), np.float32)
    for i in range(count):
        xs[i], _ = degradation(clean[i], seed=seed * 1_000_003 + i)
    return xs, clean


def degraded_tiles(
    images: list[Image],
    degradation: Degradation,
    tile: tuple[int, int],
    per_image: int = 1,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Centre-weighted deterministic tiles for calibration/validation: inputs of size `tile`.

    Image-scale degradations (degradation.image_scale) are applied to the whole photo first and
    the tiles cut from the result, so a tile shows the pattern at the scale a full photo has."""
    s = degradation.scale
    th, tw = tile[0] * s, tile[1] * s
    xs, ys = [], []
    for k, im in enumerate(images):
        h, w = im.shape
        whole = (
            degradation(im.pixels, seed=seed * 7919 + k * 31)[0]
            if degradation.image_scale
            else None
        )
        if h < th or w < tw:
            raise EdgekitError(
                f"image '{im.name}' ({h}x{w}) is smaller than the {th}x{tw} tile needed; "
                "use larger images or a smaller tile (--shape)"
            )
        ys_grid = (
            np.linspace(0, h - th, num=per_image + 2)[1:-1] if per_image > 1 else [(h - th) / 2]
        )
        for j, y0 in enumerate(ys_grid):
            y0 = int(y0)
            x0 = int((w - tw) / 2) if per_image == 1 else int((w - tw) * (j + 1) / (per_image + 1))
            clean = im.pixels[y0 : y0 + th, x0 : x0 + tw]
            if whole is not None:  # same-size: the degraded tile sits where the clean one does
                x, c = whole[y0 : y0 + th, x0 : x0 + tw], clean
            else:
                x, c = degradation(clean, seed=seed * 7919 + k * 31 + j)
            xs.append(x)
            ys.append(c)
    return np.stack(xs), np.stack(ys)


def representative_dataset(inputs: np.ndarray) -> Iterator[list[np.ndarray]]:
    """Generator for the TFLite converter: one float32 batch-of-1 sample per step."""
    for x in inputs:
        yield [x[None].astype(np.float32)]
