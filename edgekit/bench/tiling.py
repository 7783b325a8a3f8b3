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


def default_overlap(tile: int) -> int:
    """Overlap used when none is given: a quarter of the tile (64 px for a 256 tile), at least 8."""
    return max(8, tile // 4)


def default_margin(overlap: int) -> int:
    """Pixels discarded next to interior tile edges: a quarter of the overlap."""
    return overlap // 4


def _positions(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    stride = tile - overlap
    n = int(np.ceil((length - tile) / stride)) + 1
    return [int(round(v)) for v in np.linspace(0, length - tile, n)]


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
    if not 0 <= overlap < min(th, tw):
        raise EdgekitError(
            f"tile overlap {overlap}: expected 0 <= overlap < tile size {min(th, tw)}"
        )
    if margin < 0 or (overlap > 0 and 2 * margin + 2 > overlap) or (overlap == 0 and margin):
        raise EdgekitError(
            f"tile margin {margin}: expected 0 <= margin and 2*margin+2 <= overlap ({overlap}) "
            "so every pixel keeps a positive blend weight"
        )
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


def _axis_weights(pos: int, tile: int, total: int, margin: int, overlap: int) -> np.ndarray:
    """1-D blend weights for one tile along one axis (all sizes at output resolution)."""
    i = np.arange(tile, dtype=np.float64)
    inf = np.full(tile, np.inf)
    d_start = i if pos > 0 else inf
    d_end = (tile - 1 - i) if pos + tile < total else inf
    d = np.minimum(d_start, d_end)
    ramp = max(1, overlap - 2 * margin)
    return np.clip((d - margin + 1) / ramp, 0.0, 1.0)


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
