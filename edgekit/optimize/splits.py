"""The photos split three ways: calibration, validation (every choice) and test (reported only)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import EdgekitError

DEFAULT_MAX_SIDE = 512  # eval photos are centre-cropped to this (a search scores many candidates)


@dataclass
class Splits:
    folder: Path
    calib: list  # edgekit.data.images.Image
    val: list
    test: list
    max_side: int | None

    def describe(self) -> dict:
        return {
            "source": str(self.folder),
            "calibration": [im.name for im in self.calib],
            "validation": [im.name for im in self.val],
            "test": [im.name for im in self.test],
            "eval_crop": f"centre crop to at most {self.max_side}x{self.max_side}"
            if self.max_side
            else "whole images",
            "rule": "every 4th photo by name is held out; held-out photos alternate between "
            "validation (used for every choice) and test (scored once, for the chosen artifact)",
        }


def split_photos(folder: Path, max_side: int | None = DEFAULT_MAX_SIDE) -> Splits:
    from ..data.images import load_folder, split_holdout

    images = load_folder(folder)
    if len(images) < 3:
        raise EdgekitError(
            f"{folder}: {len(images)} photo(s); optimize needs at least 3 (calibration, "
            "validation and test); add photos to the --calib folder"
        )
    calib, held = split_holdout(images)
    if len(held) < 2:
        ordered = sorted(images, key=lambda im: im.name)
        calib, held = ordered[:-2], ordered[-2:]
    return Splits(Path(folder), calib, held[0::2], held[1::2], max_side)


def crop(images: list, side: int | None) -> list:
    from ..data.images import Image

    if not side:
        return list(images)
    out = []
    for im in images:
        h, w = im.shape
        y0, x0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
        px = np.ascontiguousarray(im.pixels[y0 : y0 + side, x0 : x0 + side])
        out.append(Image(im.name, px))
    return out


def link_folder(images: list, source: Path, folder: Path) -> Path:
    """A folder of links to these photos in `source`, for the harness (which reads a folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    for im in images:
        os.symlink((Path(source) / im.name).resolve(), folder / im.name)
    return folder
