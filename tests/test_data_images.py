"""Image loading (modes, bit depths, odd sizes, bad files), folders, splits and patches."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from edgekit.data.degradations import parse
from edgekit.data.images import Image, load_folder, load_image, save_image, split_holdout
from edgekit.data.patches import degraded_tiles, make_pairs, random_crops, representative_dataset
from edgekit.errors import EdgekitError

REPO = Path(__file__).resolve().parents[1]


def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _write_png16_rgb(path: Path, arr: np.ndarray) -> None:
    """A 16-bit-per-channel RGB PNG written by hand (Pillow cannot write one)."""
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


# ------------------------------------------------------------------------------------ one image


def test_rgb_png_round_trip_exact(tmp_path):
    arr = _rgb(37, 53)
    PILImage.fromarray(arr).save(tmp_path / "a.png")
    im = load_image(tmp_path / "a.png")
    assert isinstance(im, Image) and im.name == "a.png"
    assert im.pixels.dtype == np.float32 and im.pixels.shape == (37, 53, 3) and im.shape == (37, 53)
    np.testing.assert_array_equal(np.round(im.pixels * 255).astype(np.uint8), arr)


def test_grayscale_becomes_three_equal_channels(tmp_path):
    g = _rgb(20, 30)[..., 0]
    PILImage.fromarray(g, mode="L").save(tmp_path / "g.png")
    px = load_image(tmp_path / "g.png").pixels
    assert px.shape == (20, 30, 3)
    np.testing.assert_allclose(px[..., 0], g / 255.0, atol=1e-6)
    assert np.array_equal(px[..., 0], px[..., 1]) and np.array_equal(px[..., 1], px[..., 2])


def test_bilevel_image_loads_as_black_and_white(tmp_path):
    PILImage.fromarray(np.eye(16, dtype=bool)).save(tmp_path / "b.png")
    px = load_image(tmp_path / "b.png").pixels
    assert px.shape == (16, 16, 3) and set(np.unique(px)) == {0.0, 1.0}
    assert px[3, 3, 0] == 1.0 and px[3, 4, 0] == 0.0


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255  # red
    rgba[:4, :, 3] = 0  # top half transparent
    rgba[4:, :, 3] = 128  # bottom half half-transparent
    PILImage.fromarray(rgba, mode="RGBA").save(tmp_path / "t.png")
    px = load_image(tmp_path / "t.png").pixels
    np.testing.assert_allclose(
        px[0, 0], [1, 1, 1], atol=1e-6
    )  # transparent -> white, not red/black
    np.testing.assert_allclose(px[7, 7], [1, 127 / 255, 127 / 255], atol=2 / 255)


def test_palette_with_and_without_transparency(tmp_path):
    base = PILImage.fromarray(_rgb(12, 10, seed=1)).convert(
        "P", palette=PILImage.Palette.ADAPTIVE, colors=8
    )
    base.save(tmp_path / "p.png")
    px = load_image(tmp_path / "p.png").pixels
    np.testing.assert_allclose(px, np.asarray(base.convert("RGB")) / 255.0, atol=1e-6)
    idx = np.asarray(base)[0, 0]
    base.save(tmp_path / "pt.png", transparency=int(idx))
    pt = load_image(tmp_path / "pt.png").pixels
    assert np.all(pt[np.asarray(base) == idx] == 1.0)  # the transparent colour -> white


def test_16_bit_grayscale_uses_the_full_16_bit_range(tmp_path):
    g16 = np.array([[0, 257, 32768, 65535]] * 3, dtype=np.uint16)
    PILImage.fromarray(g16).save(tmp_path / "g16.png")
    with PILImage.open(tmp_path / "g16.png") as check:
        assert check.mode.startswith("I")  # really stored as 16 bit
    px = load_image(tmp_path / "g16.png").pixels
    np.testing.assert_allclose(px[0, :, 0], g16[0] / 65535.0, atol=1e-6)
    assert px.shape == (3, 4, 3)


def test_16_bit_rgb_png_is_scaled_to_0_1(tmp_path):
    arr = np.zeros((5, 7, 3), np.uint16)
    arr[..., 0], arr[..., 1], arr[..., 2] = 65535, 32768, 0
    _write_png16_rgb(tmp_path / "rgb16.png", arr)
    px = load_image(tmp_path / "rgb16.png").pixels
    assert px.shape == (5, 7, 3)
    np.testing.assert_allclose(px[2, 3], [1.0, 0.5, 0.0], atol=1 / 255)


@pytest.mark.parametrize("size_hw", [(1, 1), (257, 131), (33, 500)])
def test_odd_sizes_keep_their_shape(tmp_path, size_hw):
    PILImage.fromarray(_rgb(*size_hw)).save(tmp_path / "odd.png")
    assert load_image(tmp_path / "odd.png").shape == size_hw


def test_jpeg_and_cmyk(tmp_path):
    PILImage.fromarray(_rgb(16, 16)).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    px = load_image(tmp_path / "c.jpg").pixels
    assert px.shape == (16, 16, 3) and 0.0 <= px.min() and px.max() <= 1.0


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"this is not an image", "garbage"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00", "truncated"),
    ],
)
def test_unreadable_file_is_reported_by_name(tmp_path, content, why):
    bad = tmp_path / f"broken_{why}.png"
    bad.write_bytes(content)
    with pytest.raises(EdgekitError) as err:
        load_image(bad)
    msg = str(err.value)
    assert bad.name in msg and "\n" not in msg and "not a readable image" in msg


def test_truncated_png_data_is_reported(tmp_path):
    PILImage.fromarray(_rgb(64, 64)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(EdgekitError, match="cut.png"):
        load_image(tmp_path / "cut.png")


def test_decompression_bomb_is_a_clear_error(tmp_path, monkeypatch):
    PILImage.fromarray(_rgb(64, 64)).save(tmp_path / "huge.png")
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1000)  # 4096 px > 2x the limit
    with pytest.raises(EdgekitError, match="huge.png: image too large"):
        load_image(tmp_path / "huge.png")


def test_missing_file(tmp_path):
    with pytest.raises(EdgekitError, match="nope.png: image file not found"):
        load_image(tmp_path / "nope.png")


def test_save_image_round_trip(tmp_path):
    px = np.random.default_rng(0).random((9, 11, 3)).astype(np.float32)
    save_image(tmp_path / "s.png", px)
    back = load_image(tmp_path / "s.png").pixels
    assert np.abs(back - px).max() <= 0.5 / 255 + 1e-6


# ------------------------------------------------------------------------------------ folders


def test_empty_folder_and_folder_without_images(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EdgekitError, match="no images found") as err:
        load_folder(empty)
    assert str(empty) in str(err.value)
    other = tmp_path / "docs"
    other.mkdir()
    (other / "README.txt").write_text("hello")
    (other / "sub.png").mkdir()  # a folder named like an image is not an image
    with pytest.raises(EdgekitError, match="no images found"):
        load_folder(other)


def test_missing_folder_and_file_instead_of_folder(tmp_path):
    with pytest.raises(EdgekitError, match="image folder not found"):
        load_folder(tmp_path / "missing")
    f = tmp_path / "x.png"
    PILImage.fromarray(_rgb(4, 4)).save(f)
    with pytest.raises(EdgekitError, match="expected a folder"):
        load_folder(f)


def test_folder_with_one_bad_file_names_it(tmp_path):
    for i in range(3):
        PILImage.fromarray(_rgb(8, 8, i)).save(tmp_path / f"ok{i}.png")
    (tmp_path / "zz_bad.jpg").write_bytes(b"\xff\xd8 not really")
    with pytest.raises(EdgekitError, match="zz_bad.jpg"):
        load_folder(tmp_path)


def test_images_smaller_than_the_tile_are_listed(tmp_path):
    PILImage.fromarray(_rgb(300, 300)).save(tmp_path / "big.png")
    PILImage.fromarray(_rgb(100, 400)).save(tmp_path / "short.png")
    with pytest.raises(EdgekitError) as err:
        load_folder(tmp_path, min_size=(256, 256))
    msg = str(err.value)
    assert (
        "short.png (100x400)" in msg
        and "big.png" not in msg
        and "256x256" in msg
        and "\n" not in msg
    )
    assert len(load_folder(tmp_path, min_size=(100, 256))) == 2


def test_folder_sorted_and_split_every_fourth(tmp_path):
    names = [f"{c}.png" for c in "hgfedcba"]
    for i, n in enumerate(names):
        PILImage.fromarray(_rgb(4, 4, i)).save(tmp_path / n)
    (tmp_path / "notes.txt").write_text("ignored")
    images = load_folder(tmp_path)
    assert [im.name for im in images] == sorted(names)
    train, held = split_holdout(images)
    assert [im.name for im in held] == ["d.png", "h.png"]
    assert len(train) == 6 and not {im.name for im in train} & {im.name for im in held}


def test_shipped_calibration_data():
    """The committed calibration set: >= 12 RGB photos, all >= 256 px, a varied held-out set."""
    folder = REPO / "calibration_data"
    images = load_folder(folder, min_size=(256, 256))

    def coloured(
        px: np.ndarray,
    ) -> bool:  # not a grayscale image: >= 1 % of pixels visibly coloured
        spread = np.maximum(np.abs(px[..., 0] - px[..., 1]), np.abs(px[..., 1] - px[..., 2]))
        return float((spread > 0.05).mean()) > 0.01

    rgb = [im for im in images if coloured(im.pixels)]
    assert len(rgb) >= 12
    for p in folder.glob("*.png"):
        assert p.stat().st_size <= 1_500_000, p.name
    readme = (folder / "README.md").read_text()
    for im in images:
        assert im.name in readme, f"{im.name} has no provenance in calibration_data/README.md"
    _, held = split_holdout(images)
    assert [im.name for im in held] == [
        "04_raccoon_face.png",
        "08_grace_hopper_portrait.png",
        "12_rocket_launch.png",
        "16_coffee_cup.png",
    ]


# ------------------------------------------------------------------------------------ patches


def _images(sizes) -> list[Image]:
    return [
        Image(f"im{i}.png", np.random.default_rng(i).random((*hw, 3)).astype(np.float32))
        for i, hw in enumerate(sizes)
    ]


def test_random_crops_are_seeded_and_sized():
    ims = _images([(40, 50), (64, 33), (10, 10)])
    a = random_crops(ims, 32, 6, seed=1)
    assert a.shape == (6, 32, 32, 3)
    assert np.array_equal(a, random_crops(ims, 32, 6, seed=1))
    assert not np.array_equal(a, random_crops(ims, 32, 6, seed=2))
    with pytest.raises(EdgekitError, match="at least 100x100"):
        random_crops(ims, 100, 2, seed=0)


def test_make_pairs_for_super_resolution_and_denoising():
    ims = _images([(80, 90), (70, 100)])
    xs, ys = make_pairs(ims, parse("downscale:factor=3"), patch=16, count=5, seed=0)
    assert xs.shape == (5, 16, 16, 3) and ys.shape == (5, 48, 48, 3)
    xs2, ys2 = make_pairs(ims, parse("noise:sigma=25"), patch=16, count=5, seed=0)
    assert xs2.shape == ys2.shape == (5, 16, 16, 3)
    assert not np.array_equal(xs2[0] - ys2[0], xs2[1] - ys2[1])  # each pair gets its own noise


def test_degraded_tiles_and_too_small_images():
    ims = _images([(64, 80), (70, 70)])
    xs, ys = degraded_tiles(ims, parse("downscale:factor=2"), (24, 30), per_image=2)
    assert xs.shape == (4, 24, 30, 3) and ys.shape == (4, 48, 60, 3)
    again, _ = degraded_tiles(ims, parse("downscale:factor=2"), (24, 30), per_image=2)
    assert np.array_equal(xs, again)
    with pytest.raises(EdgekitError) as err:
        degraded_tiles(ims, parse("downscale:factor=4"), (20, 20))  # needs 80x80 clean
    assert "im0.png" in str(err.value) and "80x80" in str(err.value)
    samples = list(representative_dataset(xs))
    assert (
        len(samples) == 4
        and samples[0][0].shape == (1, 24, 30, 3)
        and samples[0][0].dtype == np.float32
    )
