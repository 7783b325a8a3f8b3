"""Inputs for the end-to-end CLI tests: tiny tf_keras model files and small folders of real photos.

Nothing here imitates an edgekit stage: these are the files a user would hand the command line.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "calibration_data"
NOISE = "noise:sigma=25"


def crop_photos(folder: Path, side: int, count: int, start: int = 0) -> Path:
    """`count` of the bundled photos (sorted by name, from `start`), centre-cropped to side x side."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    files = sorted(PHOTOS.glob("*.png"))[start : start + count]
    assert len(files) == count, f"calibration_data/ has fewer than {start + count} photos"
    for f in files:
        im = Image.open(f).convert("RGB")
        w, h = im.size
        x0, y0 = (w - side) // 2, (h - side) // 2
        im.crop((x0, y0, x0 + side, y0 + side)).save(folder / f.name)
    return folder


def home_with_photos(folder: Path, side: int, count: int = 8) -> Path:
    """An EDGEKIT_HOME: the bundled targets/ and `count` photos cropped to `side` as calibration_data/."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "targets", folder / "targets")
    crop_photos(folder / "calibration_data", side, count)
    return folder


def tiny_denoiser(with_lambda: bool = False):
    """x - conv(relu(conv(x))), clipped by ReLU(max_value=1); optionally with a Lambda layer."""
    from edgekit.tfcompat import import_tf

    _, keras = import_tf()
    keras.utils.set_random_seed(7)
    L = keras.layers
    inp = keras.Input((None, None, 3), name="noisy")
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="c1")(inp)
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="c2")(x)
    if with_lambda:
        x = L.Lambda(lambda t: t * 0.5, name="scale_lambda")(x)
    noise = L.Conv2D(3, 3, padding="same", name="c3")(x)
    out = L.ReLU(max_value=1.0, name="clip")(L.Subtract(name="residual")([inp, noise]))
    model = keras.Model(inp, out, name="tiny_lambda" if with_lambda else "tiny")
    # small last-layer weights: the untrained net stays close to the identity, as a denoiser does
    k, b = model.get_layer("c3").get_weights()
    model.get_layer("c3").set_weights([k * 0.1, b])
    return model


def embedding_model():
    """A model with a layer class edgekit refuses outright (Embedding)."""
    from edgekit.tfcompat import import_tf

    _, keras = import_tf()
    inp = keras.Input((8,), dtype="int32")
    out = keras.layers.Embedding(16, 4, name="tokens")(inp)
    return keras.Model(inp, out)


def keras_run(model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model(x, training=False), np.float32)
