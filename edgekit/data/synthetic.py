"""Procedural training images ("dead leaves"): occluding shapes of power-law sizes.

Why: a restoration net trained on a dozen photos learns those photos (which regions are dark,
which textures are there) instead of the degradation. Dead-leaves images have the statistics
that matter for restoration -- edges at every scale, occlusions, a 1/f-like spectrum -- and no
content to memorise, and denoisers trained on them come close to ones trained on photos
(Achddou et al., "Synthetic images as a regularity prior for image restoration neural
networks", 2021). Mixed with the photos they make a degradation's own cues (a shadow's soft edge
and blue shift) the only thing worth learning. Numpy only, deterministic for a seed, nothing
downloaded, no licence to vet.

`open_sky` adds what dead leaves lack: large smooth regions (a dusk or overcast sky, a plain
wall) at every brightness, with objects in front. It was added because a deshadowing net doubled
the brightness of a whole dusk sky; training on it did not stop that (benchmarks/RESULTS.md, Zoo),
and it stays as an option for training recipes.
"""

from __future__ import annotations

import numpy as np

from .images import Image


def _radii(rng: np.random.Generator, n: int, r_min: float, r_max: float) -> np.ndarray:
    """n radii with density ~ 1/r^3 on [r_min, r_max] (scale invariance)."""
    u = rng.random(n)
    a, b = r_min**-2.0, r_max**-2.0
    return (a - u * (a - b)) ** -0.5


def _leaf_colour(rng: np.random.Generator) -> np.ndarray:
    """A colour with photo-like saturation: mostly muted, sometimes vivid."""
    grey = rng.uniform(0.05, 0.95)
    hue = rng.random(3)
    sat = rng.beta(1.2, 3.0)
    return np.clip(grey + sat * (hue - hue.mean()) * 1.5, 0.0, 1.0)


def dead_leaves(seed: int, h: int = 512, w: int = 512, max_leaves: int = 60_000) -> np.ndarray:
    """(h, w, 3) float32 image in [0, 1]: ellipses laid front to back (each paints only what no
    nearer leaf covers) until the frame is covered; each has its own colour, a shading gradient
    and sometimes stripes. Slight optical blur, sensor noise and 8-bit rounding, as a photo has."""
    from .degradations import gaussian_blur, to_8bit

    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.float32)
    img[:] = _leaf_colour(rng)  # whatever is still uncovered at the end
    filled = np.zeros((h, w), bool)
    radii = _radii(rng, max_leaves, 3.0, max(h, w) / 3.0)
    for n, r in enumerate(radii):
        if n % 1000 == 999 and filled.mean() > 0.998:
            break
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        rx, ang = r * rng.uniform(0.4, 1.0), rng.uniform(0, np.pi)
        ext = int(np.ceil(r)) + 1
        y0, y1 = max(0, int(cy) - ext), min(h, int(cy) + ext + 1)
        x0, x1 = max(0, int(cx) - ext), min(w, int(cx) + ext + 1)
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        dy, dx = yy - cy, xx - cx
        u = dx * np.cos(ang) + dy * np.sin(ang)
        v = -dx * np.sin(ang) + dy * np.cos(ang)
        paint = ((u / rx) ** 2 + (v / r) ** 2 <= 1.0) & ~filled[y0:y1, x0:x1]
        if not paint.any():
            continue
        colour = _leaf_colour(rng)
        # shading across the leaf (curved surfaces, uneven light) and, for some, a texture
        shade = 1.0 + rng.uniform(-0.25, 0.25) * (u / max(rx, 1.0))
        if r > 6 and rng.random() < 0.3:
            period = rng.uniform(3.0, max(4.0, r / 2))
            shade = shade + rng.uniform(0.05, 0.2) * np.sin(2 * np.pi * v / period)
        img[y0:y1, x0:x1][paint] = np.clip(colour[None, :] * shade[paint][:, None], 0.0, 1.0)
        filled[y0:y1, x0:x1] |= paint
    img = gaussian_blur(img, 0.7)
    img = img + rng.normal(0.0, 1.5 / 255.0, img.shape).astype(np.float32)
    return to_8bit(np.clip(img, 0.0, 1.0))


def dead_leaves_images(count: int, seed: int = 0, size: int = 512) -> list[Image]:
    """`count` dead-leaves images as Image objects (names say they are synthetic)."""
    return [
        Image(f"synthetic_dead_leaves_{seed}_{i:03d}", dead_leaves(seed * 10_007 + i, size, size))
        for i in range(count)
    ]


def open_sky(seed: int, h: int = 512, w: int = 512) -> np.ndarray:
    """(h, w, 3) float32 image in [0, 1]: a smooth sky (a colour gradient across the frame, dark
    to bright from image to image, with faint large-scale variation) above a horizon, with
    dead-leaves clutter below it and up to three thin bars of clutter rising into the sky
    (towers, poles). The frame is rotated at random so
    the sky is not always at the top. Sensor noise and 8-bit rounding, as a photo has."""
    from .degradations import gaussian_blur, to_8bit

    rng = np.random.default_rng(seed)
    # two sky colours with a shared brightness, log-uniform from night (0.03) to day (0.9)
    level = float(np.exp(rng.uniform(np.log(0.03), np.log(0.9))))
    ends = [
        np.clip(level * (1.0 + 1.2 * (rng.random(3) - 0.5)) * rng.uniform(0.4, 1.6), 0, 1)
        for _ in range(2)
    ]
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None] ** rng.uniform(0.5, 2.0)
    sky = ends[0] * (1.0 - t) + ends[1] * t
    wobble = gaussian_blur(rng.normal(0.0, 1.0, (h // 8 + 1, w // 8 + 1, 1)).astype(np.float32), 3)
    wobble = np.kron(wobble, np.ones((8, 8, 1), np.float32))[:h, :w]
    sky = np.clip(sky * (1.0 + 0.08 * wobble / max(float(np.abs(wobble).max()), 1e-6)), 0, 1)
    # a wavy horizon somewhere in the lower part of the frame; clutter (dead leaves) below it
    cols = np.arange(w, dtype=np.float32)
    horizon = h * rng.uniform(0.55, 1.0) + h * 0.05 * np.sin(
        2 * np.pi * cols / rng.uniform(0.5 * w, 3.0 * w) + rng.uniform(0, 2 * np.pi)
    )
    ground = np.arange(h, dtype=np.float32)[:, None] >= horizon[None, :]
    clutter = dead_leaves(int(rng.integers(2**31)), h, w)
    clutter = np.clip(clutter * rng.uniform(0.3, 1.2), 0, 1)  # lit like the sky, more or less
    img = np.where(ground[..., None], clutter, sky)
    # a few objects against the sky (towers, poles): thin vertical bars of clutter
    for _ in range(int(rng.integers(0, 4))):
        x0 = int(rng.integers(0, w))
        bw = int(rng.integers(2, max(3, w // 20)))
        top = int(rng.uniform(0.1, 0.8) * h)
        img[top:, x0 : x0 + bw] = clutter[top:, x0 : x0 + bw]
    img = np.rot90(img, int(rng.integers(4)))
    if img.shape[:2] != (h, w):  # a quarter turn of a non-square frame: one more turns it back
        img = np.rot90(img)
    img = img + rng.normal(0.0, 1.5 / 255.0, img.shape).astype(np.float32)
    return to_8bit(np.clip(img, 0.0, 1.0).astype(np.float32))


def open_sky_images(count: int, seed: int = 0, size: int = 512) -> list[Image]:
    """`count` open_sky images as Image objects (names say they are synthetic)."""
    return [
        Image(f"synthetic_open_sky_{seed}_{i:03d}", open_sky(seed * 10_009 + i, size, size))
        for i in range(count)
    ]
