"""Streamed full-image outputs for the benchmark: memory bounded by a row of tiles, not the photo.

The harness used to cut every eval photo into tiles up front, run the float Keras model on all
of them (and on the whole image, for a tiling check) and keep every artifact's tile outputs
before blending: a 12-megapixel photo took 16 GB. Here each image goes through
runtimes/tiled.py one tile row at a time, for the Keras reference and for each artifact (run
locally), and each artifact output is handed over one photo at a time, to be scored and dropped
(bench/perphoto.py); only the timing tiles are cut up front. The whole-image float run is opt-in and
refused when its activations would not fit in memory.
"""

from __future__ import annotations

import numpy as np

from ..errors import EdgekitError
from ..runtimes import tiled
from . import tiling


def _layouts(evalset, tile, overlap, margin) -> list:
    """Each image's tile layout; refuses images smaller than the tile, naming them."""
    out = []
    for im, x in zip(evalset.images, evalset.degraded, strict=True):
        scale = evalset.scale
        name = im.name if scale == 1 else f"{im.name} (after x{scale} downscale)"
        out.append(tiling.plan_tiles(x.shape[:2], tile, overlap=overlap, margin=margin, name=name))
    return out


def check_and_count(evalset, tile, overlap, margin) -> int:
    """The number of tiles of the eval set (images smaller than the tile are refused)."""
    return sum(len(lay) for lay in _layouts(evalset, tile, overlap, margin))


def timing_tiles(degraded, tile, overlap, margin, need: int) -> np.ndarray:
    """The first `need` tiles in the order the harness always used (image by image, row-major):
    the latency runs use tile r % N, so these are exactly the tiles they used before. Only those
    tiles are cut (cutting all of a 12-megapixel photo's tiles is nearly 2 photos of float32)."""
    out = []
    for x in degraded:
        lay = tiling.plan_tiles(x.shape[:2], tile, overlap=overlap, margin=margin)
        th, tw = lay.tile
        for y0, x0 in lay.origins[: need - len(out)]:
            out.append(x[y0 : y0 + th, x0 : x0 + tw])
        if len(out) >= need:
            break
    return np.stack(out).astype(np.float32)


def _outputs(infer, evalset, tile, overlap, margin, value_range, progress):
    """Every eval image through `infer`, streamed, yielded one whole output at a time (the caller
    scores it and drops it before the next is made); progress(done, total) over all tiles."""
    layouts = _layouts(evalset, tile, overlap, margin)
    total, base = sum(len(lay) for lay in layouts), 0
    for x, lay in zip(evalset.degraded, layouts, strict=True):
        cb = None
        if progress is not None:
            cb = lambda d, _t, base=base: progress(base + d, total)  # noqa: E731
        yield tiled.restore(
            x, infer, tile, scale=evalset.scale, overlap=lay.overlap, margin=lay.margin,
            value_range=value_range, progress=cb,
        )  # fmt: skip
        base += len(lay)


def keras_outputs(reference, evalset, tile, overlap, margin, progress=None):
    """The float Keras model on every image through the artifacts' tiling, streamed."""
    model = reference.model

    def infer(t):
        return np.asarray(model(t, training=False), dtype=np.float32)

    return list(
        _outputs(infer, evalset, tile, overlap, margin, reference.info.value_range, progress)
    )


def artifact_outputs(artifact, evalset, tile, overlap, margin, settings, progress=None):
    """One artifact on every image through the tiling, in this process, streamed: an iterator
    of whole outputs, one image at a time (one runner for all of them)."""
    from ..runtimes.base import runner_for

    path, scale = artifact.path, evalset.scale
    runner = runner_for(
        str(path),
        threads=settings["threads"],
        delegate=settings["delegate"],
        manifest=artifact.manifest,
    )
    expect = (tile[0] * scale, tile[1] * scale)

    def infer(t):
        y = runner.run(t)
        if y.shape[1:3] != expect:
            raise EdgekitError(
                f"{path}: output tiles are {y.shape[1]}x{y.shape[2]}, expected "
                f"{expect[0]}x{expect[1]} (tile x scale {scale}); check the manifest's model scale"
            )
        return y

    return _outputs(infer, evalset, tile, overlap, margin, artifact.info.value_range, progress)


# ---------------------------------------------------------------- the opt-in whole-image check


def _available_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def whole_image_bytes(model, shapes_hw, scale: int = 1) -> int:
    """A lower bound of the float activations a whole-image Keras run holds for the largest
    image: the two widest consecutive layer outputs at full resolution, float32."""
    widths = []
    for layer in model.layers:
        try:
            shape = layer.output_shape
        except (AttributeError, RuntimeError):  # e.g. a layer used at several places
            continue
        if isinstance(shape, tuple) and len(shape) == 4 and shape[-1]:
            widths.append(int(shape[-1]))
    widths = sorted(widths or [3])[-2:]
    h, w = max(shapes_hw, key=lambda s: s[0] * s[1])
    return int(sum(widths) * h * w * scale * scale * 4)


def check_whole_image_fits(model, shapes_hw, scale: int = 1) -> None:
    """Raise a one-line EdgekitError when a whole-image float run would not fit in memory."""
    need = whole_image_bytes(model, shapes_hw, scale)
    have = _available_bytes()
    if have is not None and need > have // 2:
        h, w = max(shapes_hw, key=lambda s: s[0] * s[1])
        raise EdgekitError(
            f"--whole-image-check: the float model on the whole {h}x{w} photo needs at least "
            f"{need / 2**30:.1f} GB of activations, more than half of the {have / 2**30:.1f} GB "
            "available; drop --whole-image-check (the tiled reference is always measured) or "
            "use --max-side to crop the photos"
        )
