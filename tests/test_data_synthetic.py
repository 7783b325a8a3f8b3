"""Dead-leaves training images: deterministic, covered, photo-like statistics."""

from __future__ import annotations

import numpy as np

from edgekit.data.synthetic import dead_leaves, dead_leaves_images


def test_deterministic_for_a_seed_and_different_across_seeds():
    a, b, c = dead_leaves(3, 96, 128), dead_leaves(3, 96, 128), dead_leaves(4, 96, 128)
    assert a.shape == (96, 128, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 0.05


def test_looks_like_a_saved_photo():
    img = dead_leaves(0, 128, 128)
    assert 0.0 <= img.min() and img.max() <= 1.0
    np.testing.assert_allclose(img * 255.0, np.round(img * 255.0), atol=1e-3)  # 8-bit values
    # edges at many scales: strong local gradients somewhere, flat regions elsewhere
    grad = np.abs(np.diff(img.mean(-1), axis=1))
    assert np.quantile(grad, 0.99) > 0.1 and np.quantile(grad, 0.3) < 0.02
    # colour, not grey
    assert np.abs(img - img.mean(-1, keepdims=True)).mean() > 0.02


def test_image_list_names_say_synthetic():
    ims = dead_leaves_images(2, seed=1, size=64)
    assert [im.name for im in ims] == ["synthetic_dead_leaves_1_000", "synthetic_dead_leaves_1_001"]
    assert ims[0].shape == (64, 64)


def test_open_sky_has_a_large_smooth_region_at_many_brightnesses():
    from edgekit.data.synthetic import open_sky, open_sky_images

    a, b = open_sky(2, 128, 96), open_sky(2, 128, 96)
    assert a.shape == (128, 96, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a * 255.0, np.round(a * 255.0), atol=1e-3)  # 8-bit values
    means, smooth = [], []
    for seed in range(12):
        img = open_sky(seed, 128, 128)
        grey = img.mean(-1)
        flat = (np.abs(np.diff(grey, axis=0))[:, :-1] < 0.02) & (
            np.abs(np.diff(grey, axis=1))[:-1, :] < 0.02
        )
        smooth.append(flat.mean())
        means.append(float(np.median(grey[:-1, :-1][flat])))
    assert min(smooth) > 0.6  # the sky (dead leaves alone: 0.3-0.5 of the frame is this smooth)
    assert min(means) < 0.12 and max(means) > 0.4  # dusk-dark and daylight skies both occur
    ims = open_sky_images(2, seed=1, size=64)
    assert ims[0].name == "synthetic_open_sky_1_000" and ims[1].shape == (64, 64)
