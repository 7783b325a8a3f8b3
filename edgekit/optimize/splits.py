"""The photos split three ways: calibration, validation (every choice) and test (reported only)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import EdgekitError

DEFAULT_MAX_SIDE = 512  # eval photos are centre-cropped to this (a search scores many candidates)


@dataclass
class Splits:
    folder: Path
    calib: list  # edgekit.data.images.Image
    val: list
    test: list
    max_side: int | None
    too_small: list = None  # names of photos smaller than one tile (left out)

    def describe(self) -> dict:
        return {
            "source": str(self.folder),
            "left_out_smaller_than_a_tile": list(self.too_small or []),
            "calibration": [im.name for im in self.calib],
            "validation": [im.name for im in self.val],
            "test": [im.name for im in self.test],
            "eval_crop": f"centre crop to at most {self.max_side}x{self.max_side}"
            if self.max_side
            else "whole images",
            "rule": "every 4th photo by name is held out; held-out photos alternate between "
            "validation (used for every choice) and test (scored once, for the chosen artifact)",
        }


def split_photos(
    folder: Path, max_side: int | None = DEFAULT_MAX_SIDE, need: tuple[int, int] = (1, 1)
) -> Splits:
    """Photos at least `need` (one tile at the model's input scale) split three ways; smaller
    photos are left out and named in the report."""
    from ..data.images import load_folder, split_holdout

    everything = load_folder(folder)
    images = [im for im in everything if im.shape[0] >= need[0] and im.shape[1] >= need[1]]
    kept = {im.name for im in images}
    small = [f"{im.name} ({im.shape[0]}x{im.shape[1]})" for im in everything if im.name not in kept]
    if len(images) < 3:
        raise EdgekitError(
            f"{folder}: {len(images)} photo(s) of at least {need[0]}x{need[1]} (one tile)"
            + (f"; too small: {', '.join(small)}" if small else "")
            + "; optimize needs at least 3 (calibration, validation and test): add photos to "
            "the --calib folder or use a target with a smaller tile"
        )
    calib, held = split_holdout(images)
    if len(held) < 2:
        ordered = sorted(images, key=lambda im: im.name)
        calib, held = ordered[:-2], ordered[-2:]
    return Splits(Path(folder), calib, held[0::2], held[1::2], max_side, small)


def crop(images: list, side: int | None) -> list:
    from ..bench.evalset import centre_crop

    return [centre_crop(im, side) for im in images] if side else list(images)


def link_folder(images: list, source: Path, folder: Path) -> Path:
    """A folder of links to these photos in `source`, for the harness (which reads a folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    for im in images:
        os.symlink((Path(source) / im.name).resolve(), folder / im.name)
    return folder
