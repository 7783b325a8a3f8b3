"""runtimes/tiled.py: streamed tiling gives exactly the all-tiles-at-once blend, any size, SR."""

import numpy as np
import pytest

from edgekit.bench import tiling
from edgekit.runtimes import tiled


def _box_blur_with_zero_padding(t):
    """A model with a receptive field: 5x5 mean with zero padding (edges of a tile are wrong)."""
    x = t[0]
    p = np.pad(x, ((2, 2), (2, 2), (0, 0)))
    out = np.zeros_like(x)
    for dy in range(5):
        for dx in range(5):
            out += p[dy : dy + x.shape[0], dx : dx + x.shape[1]]
    return (out / 25.0)[None]


def _upscale2(t):
    return np.repeat(np.repeat(t, 2, axis=1), 2, axis=2) * 0.5 + 0.1


@pytest.mark.parametrize("shape", [(77, 101, 3), (64, 64, 3), (130, 65, 1)])
@pytest.mark.parametrize("overlap", [None, 40])
def test_streamed_equals_blending_all_tiles(shape, overlap):
    rng = np.random.default_rng(0)
    img = rng.random(shape).astype(np.float32)
    want = tiling.tiled_apply(img, _box_blur_with_zero_padding, (48, 64), overlap=overlap)
    got = tiled.restore(img, _box_blur_with_zero_padding, (48, 64), overlap=overlap)
    np.testing.assert_array_equal(got, want)
    # far from the border the tiled result equals the whole-image run (no seams)
    whole = _box_blur_with_zero_padding(img[None])[0]
    np.testing.assert_allclose(got[3:-3, 3:-3], whole[3:-3, 3:-3], atol=1e-5)


def test_super_resolution_scales_the_output_and_uint8_in_out():
    rng = np.random.default_rng(1)
    img = (rng.random((41, 57, 3)) * 255).astype(np.uint8)
    out = np.empty((82, 114, 3), np.uint8)
    tiled.restore(img, _upscale2, (32, 32), scale=2, out=out)
    want = np.round(np.clip(np.repeat(np.repeat(img / 255.0, 2, 0), 2, 1) * 0.5 + 0.1, 0, 1) * 255)
    assert np.abs(out.astype(int) - want).max() <= 1


def test_an_image_smaller_than_the_tile_is_mirrored_and_cropped_back():
    img = np.random.default_rng(2).random((10, 7, 3)).astype(np.float32)
    seen = []
    out = tiled.restore(img, lambda t: seen.append(t.shape) or t, (16, 16))
    assert seen == [(1, 16, 16, 3)]
    np.testing.assert_array_equal(out, img)


def test_value_range_is_mapped_both_ways_and_bad_outputs_are_named():
    img = np.full((20, 20, 3), 0.5, np.float32)
    out = tiled.restore(img, lambda t: t, (16, 16), value_range=(0, 255))
    np.testing.assert_allclose(out, 0.5, atol=1e-6)
    with pytest.raises(ValueError, match="returned a 8x8 tile for a 16x16 input"):
        tiled.restore(img, lambda t: t[:, :8, :8], (16, 16))
    with pytest.raises(ValueError, match="overlap 16"):
        tiled.restore(img, lambda t: t, (16, 16), overlap=16)
