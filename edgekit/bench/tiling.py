"""Tiled inference: run a fixed-tile model over a full-size photo.

Fixed input tiles are the robust way to ship restoration nets (int8 TFLite with dynamic H x W
fails, TensorRT profiles over wide ranges are slow), so a full photo is cut into overlapping
tiles of the model's input size, each tile goes through the model as a batch of one, and the
outputs are blended back:

- Tile origins are spread evenly over the image so every pair of neighbours overlaps by at least
  `overlap` pixels and the last tile ends exactly at the image edge. No padding is needed for any
  image at least as large as the tile, so no invented (reflected) content enters the result;
  an image smaller than the tile is refused with an error naming it.
- Near an edge that lies *inside* the image, a tile's output is wrong: the model's zero padding
  reaches into it. Each tile therefore gets a weight of 0 for the `margin` pixels next to an
  interior edge, then a linear ramp up to 1 across the rest of the overlap. Edges on the image
  border keep full weight (there the whole-image run pads the same way).
- Super-resolution: output tiles are `tile * scale`; positions, overlap and margin scale with it.

`tile_image` + `blend_tiles` split the work so the tiles can be run elsewhere (a device) and the
outputs blended on the host; `tiled_apply` does both around a batch-of-1 callable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import EdgekitError
from ..runtimes import tiled as _tiled

# The layout and weight arithmetic lives in runtimes/tiled.py (numpy only), which `edgekit run`
# and the bundle's reference runner use too: one tiling everywhere.
default_overlap = _tiled.default_overlap
default_margin = _tiled.default_margin
_positions = _tiled.positions


@dataclass(frozen=True)
class TileLayout:
    """Where the tiles of one image lie (input resolution)."""

    height: int
    width: int
    tile: tuple[int, int]
    overlap: int
    margin: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]

    @property
    def origins(self) -> list[tuple[int, int]]:
        """Tile origins (y, x) in row-major order: the order of `tile_image`'s tiles."""
        return [(y, x) for y in self.ys for x in self.xs]

    def __len__(self) -> int:
        return len(self.ys) * len(self.xs)


def plan_tiles(
    shape_hw: tuple[int, int],
    tile: tuple[int, int],
    *,
    overlap: int | None = None,
    margin: int | None = None,
    name: str = "image",
) -> TileLayout:
    """Tile layout for an (H, W) image. Errors name the image when it is smaller than the tile."""
    h, w = int(shape_hw[0]), int(shape_hw[1])
    th, tw = int(tile[0]), int(tile[1])
    if th <= 0 or tw <= 0:
        raise EdgekitError(f"tile {th}x{tw}: expected positive tile sizes")
    if h < th or w < tw:
        raise EdgekitError(
            f"{name}: image is {h}x{w}, smaller than the model's {th}x{tw} input tile; "
            "use a larger image or export the model with a smaller tile (--shape)"
        )
    if overlap is None:
        overlap = default_overlap(min(th, tw))
    if margin is None:
        margin = default_margin(overlap)
    problem = _tiled.check_tiling((th, tw), overlap, margin)
    if problem:
        raise EdgekitError(problem)
    return TileLayout(
        h,
        w,
        (th, tw),
        overlap,
        margin,
        tuple(_positions(h, th, overlap)),
        tuple(_positions(w, tw, overlap)),
    )


def tile_image(
    image: np.ndarray,
    tile: tuple[int, int],
    *,
    overlap: int | None = None,
    margin: int | None = None,
    name: str = "image",
) -> tuple[np.ndarray, TileLayout]:
    """Cut an (H, W, C) image into (N, th, tw, C) overlapping tiles plus their layout."""
    image = np.asarray(image)
    if image.ndim != 3:
        raise EdgekitError(f"{name}: expected an (H, W, C) image, got shape {image.shape}")
    layout = plan_tiles(image.shape[:2], tile, overlap=overlap, margin=margin, name=name)
    th, tw = layout.tile
    tiles = np.stack([image[y : y + th, x : x + tw] for y, x in layout.origins])
    return np.ascontiguousarray(tiles), layout


_axis_weights = _tiled.axis_weights


def blend_tiles(outputs: np.ndarray, layout: TileLayout, scale: int = 1) -> np.ndarray:
    """Blend (N, th*scale, tw*scale, C) tile outputs back into one (H*scale, W*scale, C) image."""
    outputs = np.asarray(outputs)
    th, tw = layout.tile[0] * scale, layout.tile[1] * scale
    if outputs.ndim != 4 or outputs.shape[0] != len(layout) or outputs.shape[1:3] != (th, tw):
        raise EdgekitError(
            f"tile outputs have shape {outputs.shape}; expected ({len(layout)}, {th}, {tw}, C) "
            f"for a {layout.tile[0]}x{layout.tile[1]} tile at scale {scale} - is the scale right?"
        )
    H, W, C = layout.height * scale, layout.width * scale, outputs.shape[3]
    m, ov = layout.margin * scale, layout.overlap * scale
    acc = np.zeros((H, W, C), np.float64)
    wsum = np.zeros((H, W, 1), np.float64)
    wy = {y: _axis_weights(y * scale, th, H, m, ov) for y in layout.ys}
    wx = {x: _axis_weights(x * scale, tw, W, m, ov) for x in layout.xs}
    for out, (y, x) in zip(outputs, layout.origins, strict=True):
        w = (wy[y][:, None] * wx[x][None, :])[..., None]
        ys, xs = y * scale, x * scale
        acc[ys : ys + th, xs : xs + tw] += w * out
        wsum[ys : ys + th, xs : xs + tw] += w
    if np.any(wsum <= 0):  # cannot happen with a valid layout; guard against silent holes
        raise EdgekitError("tiling: some output pixels got no tile weight; increase the overlap")
    return (acc / wsum).astype(np.float32)


def tiled_apply(
    image: np.ndarray,
    fn: Callable[[np.ndarray], np.ndarray],
    tile: tuple[int, int],
    *,
    scale: int = 1,
    overlap: int | None = None,
    margin: int | None = None,
    name: str = "image",
) -> np.ndarray:
    """Run a batch-of-1 callable `fn((1, th, tw, C)) -> (1, th*scale, tw*scale, C)` over a whole
    (H, W, C) image tile by tile and return the blended (H*scale, W*scale, C) result."""
    tiles, layout = tile_image(image, tile, overlap=overlap, margin=margin, name=name)
    outs = []
    for t in tiles:
        y = np.asarray(fn(t[None]))
        if y.ndim == 4:
            y = y[0]
        outs.append(y)
    return blend_tiles(np.stack(outs), layout, scale=scale)
