"""The evaluation set: clean photos, centre-cropped, degraded with a seed, cut into tiles.

The photos are the held-out calibration images or a folder the user names; tiles have an
artifact's input size and blend back into whole images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.degradations import Degradation
from ..data.images import Image
from ..errors import EdgekitError
from . import tiling


@dataclass
class EvalSet:
    """Clean images, their degraded versions (seeded), and where they came from."""

    images: list[Image]
    degraded: list[np.ndarray]
    cleans: list[np.ndarray]
    degradation: Degradation
    seed: int
    max_side: int | None
    meta: dict  # source, split (and crop) for the report's eval_set block

    @property
    def scale(self) -> int:
        return self.degradation.scale

    @property
    def key(self) -> tuple:
        """What determines the inputs (for caching a reference model's outputs on them)."""
        shapes = tuple((im.name, im.shape) for im in self.images)
        return (self.degradation.spec, self.seed, self.max_side, shapes)

    def tiled(self, tile: tuple[int, int], overlap: int | None, margin: int | None) -> TiledSet:
        return TiledSet.cut(self.images, self.degraded, tile, self.scale, overlap, margin)

    def baseline(self) -> list[np.ndarray]:
        """The degraded input as an output (bicubic upscale for super-resolution)."""
        return [self.baseline_of(k) for k in range(len(self.degraded))]

    def baseline_of(self, k: int) -> np.ndarray:
        """baseline() of image k alone (a whole photo at the output size: score it, drop it)."""
        from ..data.degradations import resize_bicubic

        x, c = self.degraded[k], self.cleans[k]
        return x if self.scale == 1 else np.clip(resize_bicubic(x, c.shape[:2]), 0, 1)


@dataclass
class TiledSet:
    """All eval images cut into tiles of one size, and how to blend outputs back per image."""

    tiles: np.ndarray  # (N, th, tw, C), images one after another
    layouts: list[tiling.TileLayout]
    bounds: np.ndarray  # tiles of image i are tiles[bounds[i]:bounds[i + 1]]
    scale: int

    @classmethod
    def cut(cls, images, degraded, tile, scale, overlap, margin) -> TiledSet:
        parts, layouts = [], []
        for im, x in zip(images, degraded, strict=True):
            name = im.name if scale == 1 else f"{im.name} (after x{scale} downscale)"
            t, lay = tiling.tile_image(x, tile, overlap=overlap, margin=margin, name=name)
            parts.append(t)
            layouts.append(lay)
        bounds = np.cumsum([0] + [len(t) for t in parts])
        return cls(np.concatenate(parts), layouts, bounds, scale)

    def blend(self, outputs: np.ndarray) -> list[np.ndarray]:
        b = self.bounds
        return [
            tiling.blend_tiles(outputs[b[i] : b[i + 1]], lay, self.scale)
            for i, lay in enumerate(self.layouts)
        ]

    def blend_each(self, outputs: np.ndarray):
        """blend() one image at a time: an iterator of whole outputs (scored, then dropped)."""
        b = self.bounds
        for i, lay in enumerate(self.layouts):
            yield tiling.blend_tiles(outputs[b[i] : b[i + 1]], lay, self.scale)


def build_eval_set(
    images_dir: Path | None,
    degradation: Degradation,
    *,
    seed: int,
    max_side: int | None,
    note: Callable[[str], None],
    tile: tuple[int, int] | None = None,
) -> EvalSet:
    """Load the clean images, crop them to at most max_side (None: whole), degrade each with its
    own seed (seed * 1_000_003 + index). `tile`: the largest input tile of the artifacts; every
    image must hold one (times the scale), else scores are undefined."""
    from ..checks import seed as check_seed

    check_seed(seed, "seed (--seed)")
    images, meta = _eval_images(images_dir, note)
    if max_side is not None:
        images = [centre_crop(im, max_side) for im in images]
        meta["crop"] = f"centre crop to at most {max_side}x{max_side}"
    if tile is not None:
        _check_sizes(images, tile, degradation.scale, meta["source"], max_side)
    degraded, cleans = [], []
    for k, im in enumerate(images):
        x, c = degradation(im.pixels, seed=seed * 1_000_003 + k)
        degraded.append(x)
        cleans.append(c)
    return EvalSet(images, degraded, cleans, degradation, seed, max_side, meta)


def _check_sizes(images, tile, scale: int, source: str, max_side) -> None:
    th, tw = tile[0] * scale, tile[1] * scale
    bad = [im for im in images if im.shape[0] < th or im.shape[1] < tw]
    if bad:
        crop = f" after --max-side {max_side}" if max_side else ""
        times = f" (input tile x scale {scale})" if scale > 1 else " input tile"
        raise EdgekitError(
            f"{Path(source) / bad[0].name}: image is {bad[0].shape[0]}x{bad[0].shape[1]}{crop}, "
            f"smaller than the model's {th}x{tw}{times}"
            + (f" (and {len(bad) - 1} more image(s))" if len(bad) > 1 else "")
            + "; evaluate on larger images or export with a smaller tile (--shape)"
        )


def _eval_images(images_dir: Path | None, note: Callable[[str], None]):
    from ..data.images import load_folder, split_holdout
    from ..paths import calibration_dir

    if images_dir is not None:
        images = load_folder(images_dir)
        return images, {"source": str(images_dir), "split": "all images in the folder"}
    folder = calibration_dir()
    images = load_folder(folder)
    _, held = split_holdout(images)
    if not held:
        note(
            f"{folder}: fewer than 4 images, so no held-out split; evaluating on all of them "
            "(they were also used for calibration)"
        )
        return images, {"source": str(folder), "split": "all (too few images for a held-out split)"}
    return held, {
        "source": str(folder),
        "split": "held-out (every 4th image by name; never used for calibration)",
    }


def centre_crop(im: Image, side: int) -> Image:
    """The centre side x side pixels of an image (all of it along a shorter edge)."""
    h, w = im.shape
    y0, x0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return Image(im.name, np.ascontiguousarray(im.pixels[y0 : y0 + side, x0 : x0 + side]))
