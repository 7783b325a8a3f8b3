"""Tiled, streamed inference over a full-size image (numpy only; bundles embed this file verbatim).

`restore(image, infer, tile)` runs a fixed-tile model over an image of any size and returns the
blended output, holding only one row of tiles in memory besides the input and the output:

- Tile origins are spread evenly so neighbours overlap by at least `overlap` pixels and the last
  tile ends exactly at the image edge (no invented border content). An image smaller than the
  tile is mirrored out to the tile first and the result cropped back.
- Near an edge that lies *inside* the image a tile's output is wrong (the model's zero padding
  reaches in), so each tile has weight 0 for the `margin` pixels next to an interior edge, then
  a linear ramp to 1 across the rest of the overlap; edges on the image border keep weight 1.
- Super-resolution: output tiles are `tile * scale`; positions, overlap and margin scale too.
- Streaming: tiles are run one tile row at a time and accumulated (float64) into a band as tall
  as a tile; rows that no later tile touches are finished, converted and written into `out`.
  Summation order is the same as blending all tiles at once, so the result is identical.

This module imports nothing but numpy and nothing from edgekit: `edgekit bundle` copies its text
into the bundle's reference runner, so the app's executable spec and `edgekit run` are one code.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def default_overlap(tile: int) -> int:
    """Overlap used when none is given: a quarter of the tile (64 px for a 256 tile), at least 8."""
    return max(8, tile // 4)


def default_margin(overlap: int) -> int:
    """Pixels discarded next to interior tile edges: a quarter of the overlap."""
    return overlap // 4


def positions(length: int, tile: int, overlap: int) -> list[int]:
    """Tile origins along one axis: evenly spread, first at 0, last ending at `length`."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    n = int(np.ceil((length - tile) / stride)) + 1
    return [int(round(v)) for v in np.linspace(0, length - tile, n)]


def axis_weights(pos: int, tile: int, total: int, margin: int, overlap: int) -> np.ndarray:
    """1-D blend weights for one tile along one axis (all sizes at output resolution)."""
    i = np.arange(tile, dtype=np.float64)
    inf = np.full(tile, np.inf)
    d_start = i if pos > 0 else inf
    d_end = (tile - 1 - i) if pos + tile < total else inf
    d = np.minimum(d_start, d_end)
    ramp = max(1, overlap - 2 * margin)
    return np.clip((d - margin + 1) / ramp, 0.0, 1.0)


def check_tiling(tile: tuple[int, int], overlap: int, margin: int) -> str | None:
    """Why (tile, overlap, margin) is unusable, or None when it is fine."""
    th, tw = int(tile[0]), int(tile[1])
    if th <= 0 or tw <= 0:
        return f"tile {th}x{tw}: expected positive tile sizes"
    if not 0 <= overlap < min(th, tw):
        return f"tile overlap {overlap}: expected 0 <= overlap < tile size {min(th, tw)}"
    if margin < 0 or (overlap > 0 and 2 * margin + 2 > overlap) or (overlap == 0 and margin):
        return (
            f"tile margin {margin}: expected 0 <= margin and 2*margin+2 <= overlap ({overlap}) "
            "so every pixel keeps a positive blend weight"
        )
    return None


def to_float(pixels: np.ndarray) -> np.ndarray:
    """uint8 / uint16 pixels -> float32 in [0, 1]; float input is passed through as float32."""
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / np.float32(255.0)
    if pixels.dtype == np.uint16:
        return pixels.astype(np.float32) / np.float32(65535.0)
    return pixels.astype(np.float32, copy=False)


def from_float(values: np.ndarray, dtype) -> np.ndarray:
    """float in [0, 1] -> `dtype` pixels (rounded to nearest, clipped); float dtypes unchanged."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return values.astype(dtype, copy=False)
    top = 255.0 if dtype == np.uint8 else 65535.0
    return np.round(np.clip(values, 0.0, 1.0) * top).astype(dtype)


def _mirror_to(image: np.ndarray, h: int, w: int) -> np.ndarray:
    ph, pw = max(0, h - image.shape[0]), max(0, w - image.shape[1])
    if not (ph or pw):
        return image
    # mirror (without repeating the edge pixel) where possible; a 1-pixel side can only repeat
    mode = "reflect" if min(image.shape[:2]) > 1 else "edge"
    return np.pad(image, ((0, ph), (0, pw), (0, 0)), mode=mode)


def restore(
    image: np.ndarray,
    infer: Callable[[np.ndarray], np.ndarray],
    tile: tuple[int, int],
    *,
    scale: int = 1,
    overlap: int | None = None,
    margin: int | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
    out: np.ndarray | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Run `infer` tile by tile over an (H, W, C) image and return the (H*scale, W*scale, C')
    output (float32 in [0, 1] unless `out`, a preallocated uint8/uint16/float array, is given).

    image: uint8, uint16 or float in [0, 1]. infer: takes a float32 (1, th, tw, C) batch in the
    model's `value_range` and returns (1, th*scale, tw*scale, C') (or without the batch axis).
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"expected an (H, W, C) image, got shape {image.shape}")
    th, tw = int(tile[0]), int(tile[1])
    if overlap is None:
        overlap = default_overlap(min(th, tw))
    if margin is None:
        margin = default_margin(overlap)
    problem = check_tiling((th, tw), overlap, margin)
    if problem:
        raise ValueError(problem)
    h0, w0 = image.shape[:2]
    image = _mirror_to(image, th, tw)
    h, w = image.shape[:2]
    ys, xs = positions(h, th, overlap), positions(w, tw, overlap)
    s = int(scale)
    H, W, TH, TW = h * s, w * s, th * s, tw * s
    m, ov = margin * s, overlap * s
    wy = {y: axis_weights(y * s, TH, H, m, ov) for y in ys}
    wx = {x: axis_weights(x * s, TW, W, m, ov) for x in xs}
    lo, hi = float(value_range[0]), float(value_range[1])
    identity = (lo, hi) == (0.0, 1.0)
    total, done = len(ys) * len(xs), 0
    carry = None  # (acc, wsum) rows of the previous tile row that this row also covers
    for i, y in enumerate(ys):
        Y = y * s
        acc = wsum = None
        for x in xs:
            t = to_float(image[y : y + th, x : x + tw])[None]
            if not identity:
                t = (lo + t * (hi - lo)).astype(np.float32)
            o = np.asarray(infer(t), dtype=np.float32)
            if o.ndim == 4:
                o = o[0]
            if o.shape[:2] != (TH, TW):
                raise ValueError(
                    f"the model returned a {o.shape[0]}x{o.shape[1]} tile for a {th}x{tw} input; "
                    f"expected {TH}x{TW} (scale {s})"
                )
            if not identity:
                o = ((o - lo) / (hi - lo)).astype(np.float32)
            if acc is None:
                acc = np.zeros((TH, W, o.shape[2]), np.float64)
                wsum = np.zeros((TH, W, 1), np.float64)
                if carry is not None:
                    acc[: len(carry[0])] += carry[0]
                    wsum[: len(carry[1])] += carry[1]
                if out is None:
                    out = np.empty((h0 * s, w0 * s, o.shape[2]), np.float32)
            wgt = (wy[y][:, None] * wx[x][None, :])[..., None]
            X = x * s
            acc[:, X : X + TW] += wgt * o
            wsum[:, X : X + TW] += wgt
            done += 1
            if progress is not None:
                progress(done, total)
        end = ys[i + 1] * s if i + 1 < len(ys) else H  # rows above `end` are final now
        n = end - Y
        if np.any(wsum[:n] <= 0):  # cannot happen with a valid layout; never leave a hole
            raise ValueError("tiling: some output pixels got no tile weight; increase the overlap")
        rows = (acc[:n] / wsum[:n]).astype(np.float32)
        keep = max(0, min(end, h0 * s) - Y)
        if keep:
            out[Y : Y + keep] = from_float(rows[:keep, : w0 * s], out.dtype)
        carry = (acc[n:], wsum[n:])
    return out
