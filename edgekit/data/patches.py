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


def photometric_jitter(
    img: np.ndarray,
    rng: np.random.Generator,
    gain: tuple[float, float] = (0.75, 1.15),
    exposure: tuple[float, float] = (0.7, 1.2),
    ramp: tuple[float, float] | None = None,
) -> np.ndarray:
    """A clean photo re-lit and re-coloured at random: per-channel gain (default 0.75-1.15),
    overall exposure (0.7-1.2), gamma 0.8-1.25, clipped to [0, 1].

    With 12 training photos a model can learn which regions of *these* photos are dark; jitter
    makes "dark" mean nothing on its own, so it has to find the degradation's own cues (a shadow's
    soft edge and blue shift) and generalises to held-out photos.

    ramp: (lo, hi) turns on, for half the photos, a smooth illumination gradient across the whole
    frame (a dusk sky, vignetting, light falling off across a room): per channel, the light falls
    from 1 at one side to a factor drawn from lo-hi at the other, along a random direction. Such a
    gradient spans the frame, a cast shadow's penumbra a few pixels, so a model shown ramps without
    shadows learns to leave large-scale darkening alone.
    """
    gain = rng.uniform(*gain, 3) * rng.uniform(*exposure)
    gamma = rng.uniform(0.8, 1.25)
    out = np.clip(img, 0.0, 1.0) ** gamma * gain
    if ramp is not None and rng.random() < 0.5:
        out = out * illumination_ramp(rng, img.shape[0], img.shape[1], ramp)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def illumination_ramp(
    rng: np.random.Generator, h: int, w: int, low: tuple[float, float]
) -> np.ndarray:
    """(H, W, 3) smooth multiplicative light field: 1 at one side of the frame, a per-channel
    factor in `low` at the other, along a random direction, falling off geometrically."""
    theta = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    t = x * np.cos(theta) + y * np.sin(theta)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)  # 0 .. 1 across the frame
    ends = rng.uniform(*low, 3).astype(np.float32)
    return np.exp(t[..., None] * np.log(ends)).astype(np.float32)


def image_scale_pairs(
    images,
    degradation,
    patch: int,
    count: int,
    seed: int,
    per_chunk: int = 8,
    augment: bool | dict = False,
    clean_share: float = 0.0,
):
    """(degraded, clean) patches cut from whole degraded images, deterministic for a seed.

    For degradations whose structure scales with the image (shadow polygons, moire bands and
    perspective): degrading a whole photo and then cutting patches gives training pairs that look
    like the whole-image evaluation, which degrading each small patch on its own does not.
    `per_chunk` whole images (drawn with replacement) are degraded per call. Same-size only.
    augment: photometric_jitter on each clean photo before it is degraded (a dict gives its
    gain/exposure ranges).
    clean_share: the share of whole images left undegraded (input = target). A restoration net
    that never sees a clean input learns that every input is degraded somewhere; these pairs
    make "leave it alone" the answer wherever the degradation's own cues are missing.
    """
    if degradation.scale != 1:
        raise EdgekitError(
            f"image-scale pairs need a same-size degradation, got '{degradation.spec}'"
        )
    usable = [im for im in images if min(im.shape) >= patch]
    if not usable:
        raise EdgekitError(f"no training image is at least {patch}x{patch} pixels")
    rng = np.random.default_rng(seed)
    xs = np.empty((count, patch, patch, 3), np.float32)
    ys = np.empty_like(xs)
    picks = rng.integers(len(usable), size=per_chunk)
    for j, idx in enumerate(picks):
        clean = usable[idx].pixels
        if augment:
            ranges = augment if isinstance(augment, dict) else {}
            clean = photometric_jitter(clean, rng, **{k: tuple(v) for k, v in ranges.items()})
        x, y = degradation(clean, seed=seed * 1_000_003 + j)
        if clean_share > 0 and rng.random() < clean_share:  # no draw at 0: old recipes unchanged
            x = y
        for n in range(j, count, per_chunk):
            r = rng.integers(y.shape[0] - patch + 1)
            c = rng.integers(y.shape[1] - patch + 1)
            k, flip = int(rng.integers(4)), bool(rng.integers(2))
            for dst, src in ((xs, x), (ys, y)):
                crop = np.rot90(src[r : r + patch, c : c + patch], k)
                dst[n] = crop[:, ::-1] if flip else crop
    return xs, ys


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
