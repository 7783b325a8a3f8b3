"""Tiny models, artifacts and images shared by the benchmark tests (no tests in this file).

The tiny denoiser is a fixed 3x3 box filter per channel: it really removes noise (so the
reference beats the noisy input), it is deterministic, and it converts to TFLite in well under
a second. Artifacts get hand-written manifests shaped like the exporters' ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgekit.data.images import save_image
from edgekit.models.info import LoadedModel, ModelInfo

TILE = 16
DEGRADATION = "noise:sigma=25"


def box_denoiser(channels: int = 3, width: int = 1):
    """(keras model with any H x W, fixed-tile model sharing its weights) of a box-filter denoiser.

    width > 1 inserts two wide hidden layers (weights ~ 9*width*width*4 bytes) whose result is
    multiplied by zero, so the output is unchanged: used to make an artifact with more weights.
    """
    from edgekit.tfcompat import import_tf

    _, keras = import_tf()
    inp = keras.Input((None, None, channels))
    box = np.zeros((3, 3, channels, channels), np.float32)
    for c in range(channels):
        box[:, :, c, c] = 1.0 / 9.0
    if width > 1:
        h = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name="wide")(inp)
        h = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name="wide2")(h)
        zero = keras.layers.Conv2D(channels, 1, padding="same", use_bias=False, name="zero")(h)
        x = keras.layers.Add()([inp, zero])
    else:
        x = inp
    blur = keras.layers.Conv2D(channels, 3, padding="same", use_bias=True, name="box")
    out = keras.layers.ReLU(max_value=1.0)(blur(x))
    model = keras.Model(inp, out)
    blur.set_weights([box, np.zeros(channels, np.float32)])
    if width > 1:
        rng = np.random.default_rng(0)
        model.get_layer("wide").set_weights(
            [rng.normal(0, 0.1, (3, 3, channels, width)).astype(np.float32)]
        )
        model.get_layer("wide2").set_weights(
            [rng.normal(0, 0.1, (3, 3, width, width)).astype(np.float32)]
        )
        model.get_layer("zero").set_weights([np.zeros((1, 1, width, channels), np.float32)])
    fin = keras.Input((TILE, TILE, channels), batch_size=1)
    fixed = keras.Model(fin, model(fin))
    return model, fixed


def info(name: str = "box", scale: int = 1, degradation: str = DEGRADATION) -> ModelInfo:
    return ModelInfo(
        name=name,
        task="denoise" if scale == 1 else "super-resolution",
        degradation=degradation,
        scale=scale,
        source=f"test:{name}",
    )


def convert(
    fixed_model, out: Path, precision: str, model_info: ModelInfo, manifest: bool = True
) -> Path:
    """Convert with TFLiteConverter (fp32 or dynamic) and write a manifest like the exporter's."""
    from edgekit.tfcompat import import_tf

    tf, _ = import_tf()
    conv = tf.lite.TFLiteConverter.from_keras_model(fixed_model)
    if precision == "dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    elif precision != "fp32":
        raise ValueError(precision)
    out.write_bytes(conv.convert())
    if manifest:
        shape = fixed_model.input_shape
        Path(str(out) + ".json").write_text(
            json.dumps(
                {
                    "format": "tflite",
                    "precision": precision,
                    "io": "float",
                    "label": f"tflite-{precision}",
                    "input_shape": [shape[1], shape[2]],
                    "model": model_info.to_dict(),
                    "validation": {"psnr_db": 99.0, "floor_db": 60.0, "passed": True},
                    "int8_report": None,
                }
            )
        )
    return out


def write_images(folder: Path, sizes=((40, 52), (33, 48))) -> Path:
    """Smooth synthetic photos (so a box filter helps) of the given sizes."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, (h, w) in enumerate(sizes):
        yy, xx = np.mgrid[0:h, 0:w] / 9.0
        im = np.stack([np.sin(yy + i), np.cos(xx), np.sin(0.3 * xx * yy)], -1) * 0.35 + 0.5
        save_image(folder / f"img{i}.png", im)
    return folder


def loaded(model, model_info: ModelInfo) -> LoadedModel:
    return LoadedModel(model=model, info=model_info)


def upscaler(factor: int = 2):
    """(any-size model, fixed-tile model) of a x`factor` super-resolver: bilinear upsampling."""
    from edgekit.tfcompat import import_tf

    _, keras = import_tf()
    inp = keras.Input((None, None, 3))
    out = keras.layers.UpSampling2D(factor, interpolation="bilinear")(inp)
    model = keras.Model(inp, out)
    fin = keras.Input((TILE, TILE, 3), batch_size=1)
    return model, keras.Model(fin, model(fin))
