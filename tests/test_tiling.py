import numpy as np
import pytest

from edgekit.bench import tiling
from edgekit.errors import EdgekitError
from edgekit.metrics import psnr


def _conv_same(img: np.ndarray, layers: int = 3) -> np.ndarray:
    """`layers` 3x3 box filters with zero padding ('same'), like a fully convolutional net."""
    x = img.astype(np.float64)
    for _ in range(layers):
        p = np.pad(x, ((1, 1), (1, 1), (0, 0)))
        x = (
            sum(p[dy : dy + x.shape[0], dx : dx + x.shape[1]] for dy in range(3) for dx in range(3))
            / 9.0
        )
        x = np.tanh(2.0 * x)  # a non-linearity so errors don't cancel
    return x.astype(np.float32)


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w, 3), dtype=np.float32)


def test_identity_tiling_reproduces_the_image_for_odd_sizes():
    img = _image(70, 101)
    out = tiling.tiled_apply(img, lambda x: x, (32, 32))
    assert out.shape == img.shape
    np.testing.assert_allclose(out, img, atol=1e-6)


def test_conv_model_tiled_equals_whole_image_when_margin_covers_receptive_field():
    img = _image(77, 90, seed=1)
    whole = _conv_same(img)
    # 3 layers of 3x3: receptive-field radius 3 <= margin 4
    tiled = tiling.tiled_apply(
        img, lambda x: _conv_same(x[0])[None], (32, 32), overlap=16, margin=4
    )
    assert tiled.shape == whole.shape
    assert psnr(tiled, whole) > 80.0


def test_without_margin_tile_borders_leak_padding_errors():
    # The same model with no discarded margin: zero padding at interior tile edges shows up.
    img = _image(77, 90, seed=1)
    whole = _conv_same(img)
    naive = tiling.tiled_apply(img, lambda x: _conv_same(x[0])[None], (32, 32), overlap=0, margin=0)
    good = tiling.tiled_apply(img, lambda x: _conv_same(x[0])[None], (32, 32), overlap=16, margin=4)
    assert psnr(naive, whole) < 40.0
    assert psnr(good, whole) > psnr(naive, whole) + 30.0


def test_scale_factor_output_tiles_are_tile_times_scale():
    img = _image(50, 61, seed=2)

    def upscale(x):
        assert x.shape == (1, 24, 24, 3)
        return np.repeat(np.repeat(x, 3, axis=1), 3, axis=2)

    out = tiling.tiled_apply(img, upscale, (24, 24), scale=3)
    assert out.shape == (150, 183, 3)
    np.testing.assert_allclose(out, np.repeat(np.repeat(img, 3, axis=0), 3, axis=1), atol=1e-6)


def test_layout_covers_the_image_with_at_least_the_overlap():
    lay = tiling.plan_tiles((300, 257), (128, 128), overlap=32, margin=8)
    assert lay.ys[0] == 0 and lay.ys[-1] == 300 - 128
    assert lay.xs[0] == 0 and lay.xs[-1] == 257 - 128
    for pos in (lay.ys, lay.xs):
        gaps = np.diff(pos)
        assert np.all(128 - gaps >= 32)
    assert len(lay) == len(lay.ys) * len(lay.xs) == len(lay.origins)
    # an image exactly the tile size is one tile
    assert len(tiling.plan_tiles((128, 128), (128, 128))) == 1


def test_tile_image_and_blend_round_trip_tile_count():
    img = _image(40, 40)
    tiles, lay = tiling.tile_image(img, (16, 16), overlap=8, margin=2)
    assert tiles.shape == (len(lay), 16, 16, 3)
    y, x = lay.origins[-1]
    np.testing.assert_array_equal(tiles[-1], img[y : y + 16, x : x + 16])


def test_image_smaller_than_tile_is_refused_by_name():
    with pytest.raises(
        EdgekitError, match=r"tiny\.png: image is 20x300, smaller than the model's 32x32"
    ):
        tiling.tile_image(_image(20, 300), (32, 32), name="tiny.png")


def test_bad_overlap_and_margin_are_errors():
    with pytest.raises(EdgekitError, match="overlap"):
        tiling.plan_tiles((64, 64), (32, 32), overlap=32)
    with pytest.raises(EdgekitError, match="margin"):
        tiling.plan_tiles((64, 64), (32, 32), overlap=8, margin=4)


def test_blend_with_wrong_scale_names_the_problem():
    tiles, lay = tiling.tile_image(_image(40, 40), (16, 16))
    with pytest.raises(EdgekitError, match="is the scale right"):
        tiling.blend_tiles(tiles, lay, scale=2)
