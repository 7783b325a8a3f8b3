"""PSNR / SSIM (numpy only) against closed-form values and scikit-image's implementations."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.metrics import psnr, ssim


def _pair(shape, noise: float, seed: int):
    rng = np.random.default_rng(seed)
    a = rng.random(shape)
    # smooth the reference a little so SSIM sees structure, then add noise
    a = (a + np.roll(a, 1, 0) + np.roll(a, 1, 1)) / 3.0
    b = np.clip(a + noise * rng.standard_normal(shape), 0, 1)
    return a.astype(np.float32), b.astype(np.float32)


def test_psnr_closed_form():
    a = np.zeros((10, 10, 3))
    b = np.full((10, 10, 3), 0.1)
    assert psnr(a, b) == pytest.approx(20.0, abs=1e-9)  # mse 0.01
    assert psnr(a * 255, b * 255, data_range=255.0) == pytest.approx(20.0, abs=1e-9)
    assert psnr(a, a) == float("inf")


def test_psnr_border_ignores_the_edges():
    a = np.zeros((12, 12, 3))
    b = a.copy()
    b[0, :, :] = 1.0  # damage only the first row
    assert psnr(a, b) < 15
    assert psnr(a, b, border=1) == float("inf")


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))
    with pytest.raises(ValueError, match="shapes differ"):
        ssim(np.zeros((16, 16, 3)), np.zeros((16, 17, 3)))
    with pytest.raises(ValueError, match="smaller than the 11x11 window"):
        ssim(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)))


def test_ssim_identity_and_ordering():
    a, b_light = _pair((48, 40, 3), 0.02, 0)
    _, b_heavy = _pair((48, 40, 3), 0.2, 0)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-9)
    assert 1.0 > ssim(a, b_light) > ssim(a, b_heavy) > 0.0
    # a batch averages its members
    batch = ssim(np.stack([a, a]), np.stack([b_light, b_heavy]))
    assert batch == pytest.approx((ssim(a, b_light) + ssim(a, b_heavy)) / 2, abs=1e-12)


@pytest.fixture
def skimage_metrics():
    # scikit-image is a required dev dependency (pyproject.toml, extra "dev"): the independent
    # reference for PSNR/SSIM; a missing one fails here rather than hiding the comparison
    import skimage.metrics

    return skimage.metrics


@pytest.mark.parametrize(
    ("shape", "noise", "seed"), [((40, 52, 3), 0.05, 1), ((33, 29, 3), 0.2, 2), ((64, 64), 0.1, 3)]
)
def test_psnr_matches_scikit_image(shape, noise, seed, skimage_metrics):
    a, b = _pair(shape, noise, seed)
    ref = skimage_metrics.peak_signal_noise_ratio(
        a.astype(np.float64), b.astype(np.float64), data_range=1.0
    )
    assert psnr(a, b) == pytest.approx(ref, abs=1e-6)


@pytest.mark.parametrize(
    ("shape", "noise", "seed"), [((40, 52, 3), 0.05, 1), ((33, 29, 3), 0.2, 2), ((64, 64), 0.1, 3)]
)
def test_ssim_matches_scikit_image_gaussian_window(shape, noise, seed, skimage_metrics):
    a, b = _pair(shape, noise, seed)
    kwargs = dict(data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    if len(shape) == 3:
        kwargs["channel_axis"] = -1
    ref = skimage_metrics.structural_similarity(
        a.astype(np.float64), b.astype(np.float64), **kwargs
    )
    assert ssim(a, b) == pytest.approx(ref, abs=1e-5)


def test_one_cap_for_identical_outputs():
    from edgekit.metrics import PSNR_CAP_DB, mean_psnr, psnr_capped, psnr_per_image

    a = np.random.default_rng(0).random((2, 16, 16, 3)).astype(np.float32)
    assert PSNR_CAP_DB == 200.0
    assert psnr_capped(a, a) == PSNR_CAP_DB  # identical: the cap, not inf
    assert psnr_per_image(a, a) == [PSNR_CAP_DB, PSNR_CAP_DB]
    noisy = np.clip(a + 0.1, 0, 1)
    assert mean_psnr(noisy, a) == pytest.approx(
        np.mean([psnr(np.clip(y, 0, 1), c) for y, c in zip(noisy, a, strict=True)])
    )
    assert mean_psnr(a + 2.0, a) == pytest.approx(
        mean_psnr(np.ones_like(a), a)
    )  # outputs are clipped
