"""Degradations: seeded, measurable, shape-preserving, validated; parse() errors are one line."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.data import degradations as D
from edgekit.data.degradations import available, parse
from edgekit.errors import EdgekitError
from edgekit.metrics import psnr


def _photo_like(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """Smooth gradients, edges and some texture, like a small photo (values in [0.05, 0.95])."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack(
        [0.5 + 0.3 * np.sin(6 * x + 1), 0.5 + 0.3 * np.cos(5 * y), 0.4 + 0.3 * x * y], -1
    )
    img[h // 4 : h // 2, w // 3 : 2 * w // 3] += 0.2  # a bright block: sharp edges
    img += 0.03 * rng.standard_normal((h, w, 3))  # fine texture
    return np.clip(img, 0.05, 0.95).astype(np.float32)


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    return _photo_like()


# spec -> (PSNR upper bound in dB vs clean, PSNR lower bound: the change is not absurd)
CASES = {
    "noise:sigma=25": (21.0, 19.5),
    "noise:sigma=5": (35.0, 33.0),
    "blur:sigma=2": (31.0, 26.0),
    "motion_blur:length=9": (31.5, 27.0),
    "motion_blur:length=15,angle=30": (30.5, 26.0),
    "jpeg:quality=10": (30.0, 24.0),
    "shadow": (24.0, 12.0),
    "moire": (24.0, 17.0),
}


@pytest.mark.parametrize("spec", sorted(CASES))
def test_same_size_degradation_is_seeded_measurable_and_keeps_shape(spec, clean):
    deg = parse(spec)
    x1, c1 = deg(clean, seed=3)
    x2, _ = deg(clean, seed=3)
    x3, _ = deg(clean, seed=4)
    assert x1.shape == clean.shape and x1.dtype == np.float32
    assert np.array_equal(c1, clean)  # the clean ground truth is returned untouched
    assert np.array_equal(x1, x2)  # same seed -> same result
    assert 0.0 <= x1.min() and x1.max() <= 1.0
    hi, lo = CASES[spec]
    value = psnr(x1, clean)
    assert lo < value < hi, f"{spec}: PSNR {value:.2f} dB outside ({lo}, {hi})"
    random_angle = deg.name == "motion_blur" and deg.p("angle") == "random"
    if deg.name in ("noise", "shadow", "moire") or random_angle:
        assert not np.array_equal(x1, x3)  # a random degradation differs for another seed
    assert deg.scale == 1


def test_noise_sigma_25_is_about_20_db():
    flat = np.full((128, 128, 3), 0.5, np.float32)
    x, _ = parse("noise:sigma=25")(flat, seed=0)
    assert psnr(x, flat) == pytest.approx(20.17, abs=0.15)  # 20*log10(255/25)


def test_strength_orders_psnr(clean):
    """A stronger setting of the same degradation damages the image more (same seed)."""
    for weak, strong in [
        ("blur:sigma=0.8", "blur:sigma=3"),
        ("motion_blur:length=3,angle=0", "motion_blur:length=21,angle=0"),
        ("jpeg:quality=90", "jpeg:quality=5"),
        ("shadow:strength=0.2", "shadow:strength=0.8"),
        ("moire:strength=0.05", "moire:strength=0.5"),
    ]:
        assert (
            psnr(parse(weak)(clean, 1)[0], clean) > psnr(parse(strong)(clean, 1)[0], clean) + 2
        ), (weak, strong)


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_downscale_divides_shape_and_crops_clean(factor):
    img = _photo_like(101, 130)
    x, c = parse(f"downscale:factor={factor}")(img, seed=0)
    assert c.shape == (101 - 101 % factor, 130 - 130 % factor, 3)
    assert x.shape == (c.shape[0] // factor, c.shape[1] // factor, 3)
    assert parse(f"downscale:factor={factor}").scale == factor
    # bicubic back up is close to, but not the same as, the clean image
    up = D.resize_bicubic(x, c.shape[:2])
    assert 18.0 < psnr(np.clip(up, 0, 1), c) < 40.0


def test_gaussian_blur_matches_direct_convolution():
    rng = np.random.default_rng(0)
    img = rng.random((20, 23, 3)).astype(np.float32)
    sigma = 1.3
    k1 = D.gaussian_kernel(sigma)
    assert k1.size == 2 * 4 + 1 and k1.sum() == pytest.approx(1.0, abs=1e-6)
    k2 = np.outer(k1, k1)
    r = k1.size // 2
    pad = np.pad(img, ((r, r), (r, r), (0, 0)), mode="reflect")
    ref = np.zeros_like(img)
    for i in range(img.shape[0]):
        for j in range(img.shape[1]):
            ref[i, j] = np.tensordot(
                k2, pad[i : i + k1.size, j : j + k1.size], axes=([0, 1], [0, 1])
            )
    np.testing.assert_allclose(D.gaussian_blur(img, sigma), ref, atol=1e-5)
    # a blur preserves the mean of a periodic-free smooth image and lowers the variance
    out = D.gaussian_blur(img, 2.0)
    assert out.std() < 0.5 * img.std()


def test_motion_kernel_is_a_normalised_line_at_the_angle():
    k = D.motion_kernel(9, 0)
    assert k.sum() == pytest.approx(1.0, abs=1e-6)
    c = k.shape[0] // 2
    assert k[c].sum() == pytest.approx(1.0, abs=1e-6)  # horizontal: all weight on the centre row
    assert np.count_nonzero(k[c]) == 9
    kv = D.motion_kernel(9, 90)
    assert kv[:, c].sum() == pytest.approx(1.0, abs=1e-6)  # vertical: the centre column
    kd = D.motion_kernel(11, 45)
    c = kd.shape[0] // 2
    assert np.allclose(kd, kd.T[::-1, ::-1])  # 45 deg: symmetric about the anti-diagonal
    # counter-clockwise from the x axis: up-right / down-left (rows grow downwards)
    assert kd[c - 3, c + 3] > 0 and kd[c + 3, c - 3] > 0 and kd[c - 3, c - 3] == 0


def test_motion_blur_smears_only_along_its_direction():
    img = np.zeros((41, 41, 3), np.float32)
    img[20, 20] = 1.0  # a point light
    x, _ = parse("motion_blur:length=11,angle=0")(img, seed=0)
    assert np.count_nonzero(x[20, :, 0]) == 11
    assert np.count_nonzero(x[:, 20, 0]) == 1
    # energy preserved (3 channels), up to rounding each of the 33 taps to 8 bits
    assert x.sum() == pytest.approx(3.0, abs=33 * 0.5 / 255)
    assert np.allclose(x * 255, np.round(x * 255), atol=1e-4)  # 8-bit output, as a saved photo


def test_random_angle_comes_from_the_seed():
    deg = parse("motion_blur:length=15")
    k = [deg.kernel(np.random.default_rng(s)) for s in (0, 0, 1)]
    assert np.array_equal(k[0], k[1]) and not np.array_equal(k[0], k[2])


def test_jpeg_is_8_bit_and_quality_matters(clean):
    x, _ = parse("jpeg:quality=50")(clean, seed=0)
    assert np.allclose(x * 255, np.round(x * 255), atol=1e-4)  # decoded JPEG values
    q95 = psnr(parse("jpeg:quality=95")(clean, 0)[0], clean)
    q5 = psnr(parse("jpeg:quality=5")(clean, 0)[0], clean)
    assert q95 > q5 + 5


def test_shadow_darkens_soft_irregular_regions_with_a_blue_tint():
    flat = np.full((128, 160, 3), 0.6, np.float32)
    x, _ = parse("shadow:strength=0.6,softness=6,tint=0.2")(flat, seed=7)
    assert np.all(x <= flat + 1e-6)  # shadows only remove light
    ratio = x / flat
    dark = ratio[..., 1] < 0.6  # umbra
    lit = ratio[..., 1] > 0.999
    assert 0.05 < dark.mean() and 0.1 < lit.mean()  # part in shadow, part lit
    penumbra = (ratio[..., 1] > 0.5) & (ratio[..., 1] < 0.95)
    assert penumbra.mean() > 0.01  # soft edges, not a hard cut
    r, g, b = (ratio[..., i][dark].mean() for i in range(3))
    assert r < g < b  # bluish: red darkened most
    assert 0.25 < g < 0.55  # strength 0.6 (+-15 %) leaves 0.4 of the light


def test_moire_is_coloured_band_pattern():
    flat = np.full((96, 96, 3), 0.5, np.float32)
    x, _ = parse("moire:strength=0.3,freq=0.4")(flat, seed=2)
    diff = x - flat
    assert diff.std() > 0.05
    # coloured: the channels do not move together
    assert np.abs(diff[..., 0] - diff[..., 2]).mean() > 0.02
    # dominant energy at low frequency (broad bands), not only at the fine grating
    spec = np.abs(np.fft.fft2(diff[..., 1])) ** 2
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(96), np.fft.fftfreq(96), indexing="ij"))
    assert spec[(f > 0) & (f < 0.15)].sum() > spec[f >= 0.15].sum()


def test_every_registered_degradation_has_help_and_a_round_trip_spec():
    names = available()
    for name in ("noise", "downscale", "blur", "motion_blur", "jpeg", "shadow", "moire"):
        assert names[name], f"{name} has no help"
        deg = parse(name)
        again = parse(deg.spec)
        assert again.spec == deg.spec and type(again) is type(deg)


@pytest.mark.parametrize(
    ("spec", "needles"),
    [
        ("sharpen:amount=2", ["'sharpen'", "sharpen:amount=2", "motion_blur", "moire"]),
        ("blur:radius=3", ["blur:radius=3", "radius=3", "sigma="]),
        ("jpeg:quality", ["jpeg:quality", "quality="]),
        ("jpeg:quality=0", ["jpeg:quality=0", "quality", "1 to 100"]),
        ("jpeg:quality=55.5", ["quality", "integer"]),
        ("blur:sigma=abc", ["blur:sigma=abc", "sigma", "number"]),
        ("motion_blur:length=1", ["length", "2 to 64"]),
        ("motion_blur:angle=up", ["angle", "up"]),
        ("shadow:strength=1.5", ["strength", "0 to 0.95"]),
        ("moire:freq=0.9", ["freq", "0.05 to 0.5"]),
        ("noise:sigma=-1", ["sigma"]),
        ("downscale:factor=5", ["downscale:factor=5", "2, 3 or 4"]),
        ("noise:sigma=5,sigma=6", ["sigma", "twice"]),
    ],
)
def test_parse_errors_are_one_line_and_name_the_spec(spec, needles):
    with pytest.raises(EdgekitError) as err:
        parse(spec)
    msg = str(err.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"


def test_parse_reads_numbers_and_keeps_defaults():
    deg = parse(" motion_blur : length = 12 , angle=30 ")
    assert deg.p("length") == 12 and deg.p("angle") == 30
    assert deg.spec == "motion_blur:length=12,angle=30"
    assert parse("shadow:strength=0.4").spec == "shadow:strength=0.4,softness=8,tint=0.15,shapes=2"


@pytest.mark.parametrize("spec", ["blur:sigma=2", "motion_blur:length=9", "shadow", "moire"])
def test_degraded_photos_are_8_bit(spec, clean):
    """Saved photos are 8-bit; a model trained on unrounded floats loses that detail in int8."""
    x, _ = parse(spec)(clean, seed=0)
    assert np.array_equal(x * 255, np.round(x * 255).astype(np.float32))
