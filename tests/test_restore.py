"""`edgekit run`: full-size photos of any size and kind, through Keras and int8 TFLite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgekit import restore
from edgekit.cli import main
from edgekit.metrics import psnr
from edgekit.paths import calibration_dir


def _clean_crop(h: int, w: int, name="04_raccoon_face.png") -> np.ndarray:
    im = np.asarray(Image.open(calibration_dir() / name).convert("RGB"), np.float32) / 255
    return im[40 : 40 + h, 60 : 60 + w]


def _save(path: Path, x: np.ndarray) -> Path:
    Image.fromarray(np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)).save(path)
    return path


def _load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path), np.float32) / 255


# ------------------------------------------------------------- real models (slow)


@pytest.fixture(scope="module")
def int8_dncnn(tmp_path_factory):
    from edgekit.api import export
    from edgekit.config import Precision

    out = tmp_path_factory.mktemp("int8") / "dncnn int8.tflite"
    export("zoo:dncnn", format="tflite", precision=Precision.int8, shape=(128, 128), out=out)
    return out


@pytest.mark.slow
def test_odd_size_noisy_photo_keras_and_int8_agree_without_seams(tmp_path, int8_dncnn):
    clean = _clean_crop(383, 509)
    rng = np.random.default_rng(0)
    noisy = np.clip(clean + rng.normal(0, 25 / 255, clean.shape), 0, 1)
    src = _save(tmp_path / "noisy photo é.png", noisy)
    assert main(["run", "zoo:dncnn", str(src), "--out", str(tmp_path / "keras")]) == 0
    assert main(["run", str(int8_dncnn), str(src), "--out", str(tmp_path / "int8")]) == 0
    keras = _load(tmp_path / "keras" / "noisy photo é.png")
    int8 = _load(tmp_path / "int8" / "noisy photo é.png")
    assert keras.shape == int8.shape == (383, 509, 3)
    # int8 ran as 20 overlapping 128x128 tiles, Keras as one 512x512 tile: no seams, ~ float
    assert psnr(int8, keras) >= 38.0
    noisy8 = np.round(noisy * 255) / 255
    assert psnr(keras, clean) > psnr(noisy8, clean) + 6.0  # it really denoised
    # Keras through 96x96 tiles equals Keras on the whole image (the tiling adds no seams)
    assert (
        main(["run", "zoo:dncnn", str(src), "--tile", "96x96", "--out", str(tmp_path / "t")]) == 0
    )
    assert psnr(_load(tmp_path / "t" / "noisy photo é.png"), keras) >= 45.0


@pytest.mark.slow
def test_super_resolution_doubles_an_odd_size_photo(tmp_path):
    clean = _clean_crop(154, 202, "08_grace_hopper_portrait.png")
    small = np.asarray(
        Image.fromarray(np.round(clean * 255).astype(np.uint8)).resize((101, 77), Image.BICUBIC)
    )
    src = tmp_path / "small.png"
    Image.fromarray(small).save(src)
    out = tmp_path / "out"
    assert main(["run", "zoo:espcn_x2", str(src), "--tile", "48x48", "--out", str(out)]) == 0
    y = _load(out / "small.png")
    assert y.shape == (154, 202, 3)
    bicubic = np.asarray(Image.fromarray(small).resize((202, 154), Image.BICUBIC), np.float32) / 255
    assert psnr(y, clean) > psnr(bicubic, clean)


# ------------------------------------------------------------- every input kind (fast: a fake model)


def _fake_engine(scale=1, channels=3, tile=(32, 32)):
    """A stand-in model: y = 1 - x, upscaled by repetition (the photo I/O is what is tested)."""

    def infer(x):
        y = 1.0 - x
        return np.repeat(np.repeat(y, scale, axis=1), scale, axis=2)

    return restore.Engine(infer, tile, scale, channels, (0.0, 1.0), "fake", True)


@pytest.fixture
def fake(monkeypatch):
    state = {"engine": _fake_engine()}
    monkeypatch.setattr(restore, "open_engine", lambda *a, **k: state["engine"])
    return state


def _run(*args) -> int:
    return main(["run", "fake-model", *map(str, args)])


def test_rgb_names_with_spaces_and_unicode_and_folders(tmp_path, fake):
    rng = np.random.default_rng(0)
    folder = tmp_path / "my photos"
    folder.mkdir()
    a = _save(folder / "été à la mer.png", rng.random((45, 70, 3)))
    _save(folder / "b.jpg", rng.random((33, 40, 3)))
    (folder / "notes.txt").write_text("not an image")
    assert _run(folder, "--out", tmp_path / "out") == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b.png", "été à la mer.png"]
    y = np.asarray(Image.open(tmp_path / "out" / "été à la mer.png"))
    np.testing.assert_array_equal(y, 255 - np.asarray(Image.open(a)))


def test_exif_orientation_is_honoured(tmp_path, fake):
    x = (np.random.default_rng(1).random((40, 64, 3)) * 255).astype(np.uint8)
    im = Image.fromarray(x)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    src = tmp_path / "rotated.jpg"
    im.save(src, exif=exif, quality=95)
    assert _run(src, "--out", tmp_path / "out") == 0
    assert Image.open(tmp_path / "out" / "rotated.png").size == (40, 64)  # upright: W=40, H=64


def test_grey_8_and_16_bit_stay_grey_at_their_depth(tmp_path, fake):
    g8 = (np.arange(50 * 60) % 256).astype(np.uint8).reshape(50, 60)
    g16 = (np.arange(50 * 60) * 21).astype(np.uint16).reshape(50, 60)
    Image.fromarray(g8).save(tmp_path / "g8.png")
    Image.fromarray(g16).save(tmp_path / "g16.png")
    assert _run(tmp_path / "g8.png", tmp_path / "g16.png", "--out", tmp_path / "out") == 0
    y8 = Image.open(tmp_path / "out" / "g8.png")
    y16 = Image.open(tmp_path / "out" / "g16.png")
    assert y8.mode == "L" and y16.mode.startswith("I")
    np.testing.assert_array_equal(np.asarray(y8), 255 - g8)
    assert np.abs(np.asarray(y16).astype(np.int64) - (65535 - g16.astype(np.int64))).max() <= 1


def test_rgba_keeps_its_alpha_and_sr_resizes_it(tmp_path, fake):
    fake["engine"] = _fake_engine(scale=2)
    rgba = (np.random.default_rng(2).random((30, 44, 4)) * 255).astype(np.uint8)
    rgba[..., 3] = 255
    rgba[:10, :, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "logo.png")
    Image.fromarray(rgba).convert("P").save(tmp_path / "pal.gif")
    assert _run(tmp_path / "logo.png", tmp_path / "pal.gif", "--out", tmp_path / "o") == 0
    y = Image.open(tmp_path / "o" / "logo.png")
    assert y.mode == "RGBA" and y.size == (88, 60)
    a = np.asarray(y)[..., 3]
    assert a[:18].max() == 0 and a[22:].min() == 255
    assert Image.open(tmp_path / "o" / "pal.png").size == (88, 60)


def test_a_grey_model_runs_each_colour_channel(tmp_path, fake):
    fake["engine"] = _fake_engine(channels=1)
    x = _save(tmp_path / "c.png", np.random.default_rng(3).random((20, 50, 3)))
    assert _run(x, "--out", tmp_path / "o") == 0
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / "o" / "c.png")), 255 - np.asarray(Image.open(x))
    )


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: (d / "broken.png").write_bytes(b"\x89PNG not really"), "not a readable image"),
        (lambda d: None, "no such image file or folder"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, fake, capsys, make, message):
    good = _save(tmp_path / "good.png", np.zeros((20, 20, 3)))
    make(tmp_path)
    assert _run(good, tmp_path / "broken.png", "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_two_inputs_with_one_output_name_are_refused(tmp_path, fake, capsys):
    _save(tmp_path / "a.png", np.zeros((20, 20, 3)))
    _save(tmp_path / "a.jpg", np.zeros((20, 20, 3)))
    assert _run(tmp_path / "a.png", tmp_path / "a.jpg", "--out", tmp_path / "o") == 2
    assert "would both be written to" in capsys.readouterr().err


def test_a_failure_mid_photo_leaves_no_partial_png(tmp_path, fake):
    calls = []

    def infer(x):
        calls.append(1)
        if len(calls) > 3:  # the second photo fails after some tiles were blended
            raise restore.EdgekitError("model failed on a tile")
        return x

    fake["engine"] = restore.Engine(infer, (16, 16), 1, 3, (0.0, 1.0), "fake", True)
    first = _save(tmp_path / "first.png", np.zeros((16, 16, 3)))
    second = _save(tmp_path / "second.png", np.zeros((40, 40, 3)))
    assert _run(first, second, "--out", tmp_path / "o") == 2
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["first.png"]  # no temp file left


@pytest.mark.slow
def test_onnx_artifact_runs_like_keras(tmp_path):
    pytest.importorskip("onnxruntime")
    from edgekit.api import export
    from edgekit.config import Precision

    onnx = export(
        "zoo:dncnn", format="onnx", precision=Precision.fp32, shape=(64, 64),
        out=tmp_path / "dncnn.onnx",
    ).path  # fmt: skip
    src = _save(tmp_path / "p.png", _clean_crop(70, 90))
    assert main(["run", str(onnx), str(src), "--out", str(tmp_path / "o")]) == 0
    assert (
        main(["run", "zoo:dncnn", str(src), "--tile", "64x64", "--out", str(tmp_path / "k")]) == 0
    )
    y, k = _load(tmp_path / "o" / "p.png"), _load(tmp_path / "k" / "p.png")
    assert y.shape == (70, 90, 3) and psnr(y, k) >= 50.0
