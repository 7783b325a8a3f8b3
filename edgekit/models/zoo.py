"""The restoration zoo: named tf_keras architectures, their task and degradation, shipped weights.

Every model takes float32 NHWC images in [0, 1] and returns float32 NHWC images in [0, 1]. The
output is clipped with ReLU(max_value=1) (one clamp op in TFLite, no Lambda), which keeps the
int8 output range fixed at [0, 1] (USERS.md pain 4). All are fully convolutional; same-size models
keep a global residual in image space (Add, not Subtract: tfmot QAT rejects Subtract).

    dncnn          denoise           noise:sigma=25        12 conv x 48 ch, ReLU, residual
    espcn_x2       super-resolution  downscale:factor=2    ESPCN with PReLU, pixel shuffle
    espcn_x3       super-resolution  downscale:factor=3    ESPCN with PReLU, pixel shuffle
    unet_deblur    deblur            blur:sigma=2          2-level U-Net (strided conv, transpose conv,
                                                           concat skips), input a multiple of 4
    unet_deshadow  deshadow          shadow                gain U-Net: a 4-level U-Net on the image
                                                           pooled by 4 predicts a smooth light gain
                                                           (bilinear upsample, multiply), input a
                                                           multiple of 64
    unet_demoire   demoire           moire                 5-level U-Net (receptive field ~400 px),
                                                           input a multiple of 32

Hidden channel counts are multiples of 16 (int8 kernels and TensorRT want them).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EdgekitError
from ..paths import weights_dir


@dataclass(frozen=True)
class ZooEntry:
    name: str
    task: str
    degradation: str  # default degradation spec (training and evaluation)
    scale: int  # output size / input size
    builder: Callable  # builder(**kwargs) -> fresh tf_keras.Model
    train_config: dict  # patch (input px), batch, steps, lr, loss
    description: str = ""
    input_multiple: int = 1  # input H and W must be multiples of this
    builder_kwargs: dict = field(default_factory=dict)

    @property
    def weights_path(self) -> Path:
        return weights_dir() / f"{self.name}.weights.h5"

    @property
    def metrics_path(self) -> Path:
        return weights_dir() / f"{self.name}.json"

    def metrics(self) -> dict | None:
        """The recorded training/evaluation JSON, or None if the model was never trained."""
        p = self.metrics_path
        if not p.exists():
            return None
        try:
            return json.loads(p.read_text())
        except (OSError, ValueError) as exc:
            raise EdgekitError(
                f"{p}: unreadable zoo metrics ({exc.__class__.__name__}); retrain with "
                f"'edgekit zoo train {self.name}'"
            ) from None

    @property
    def trained(self) -> bool:
        return self.weights_path.exists()


def _keras():
    from ..tfcompat import import_tf

    return import_tf()[1]


def _clip01(keras, x, name="clip01"):
    # min(max(x, 0), 1) as one fused TFLite op (RELU_0_TO_1 / RELU6-like); int8-safe output range.
    return keras.layers.ReLU(max_value=1.0, name=name)(x)


def build_dncnn(width: int = 48, depth: int = 12, channels: int = 3):
    """DnCNN-style residual denoiser: output = clip(x + g(x), 0, 1), g predicts minus the noise.

    Mathematically x - f(x) of the DnCNN paper with f = -g; an Add instead of a Subtract because
    tfmot QAT rejects Subtract (USERS.md pain 2). `depth` counts all conv layers; no BatchNorm
    (nothing to fold, nothing to go wrong in int8). Any H x W.
    """
    keras = _keras()
    inp = keras.Input(shape=(None, None, channels), name="image")
    x = inp
    for i in range(depth - 1):
        x = keras.layers.Conv2D(
            width,
            3,
            padding="same",
            activation="relu",
            kernel_initializer="he_normal",
            name=f"conv{i + 1}",
        )(x)
    residual = keras.layers.Conv2D(channels, 3, padding="same", name=f"conv{depth}")(x)
    out = keras.layers.Add(name="residual")([inp, residual])
    return keras.Model(inp, _clip01(keras, out), name="dncnn")


def build_espcn(scale: int, width: int = 64, mid: int = 32, prelu: bool = False, channels: int = 3):
    """ESPCN-style super-resolution with a pixel shuffle (edgekit DepthToSpace layer).

    conv5x5(width) -> conv3x3(mid) -> conv3x3(channels*scale^2) -> + input repeated scale^2 times
    along channels -> DepthToSpace(scale) -> clip. Adding the repeated input before the shuffle is
    a nearest-neighbour-upsampled global residual without any resize op. Any H x W; output is
    scale times larger.
    """
    from .layers import layer_classes

    keras = _keras()
    depth_to_space = layer_classes()["DepthToSpace"]

    def act(name):
        if prelu:
            return keras.layers.PReLU(shared_axes=[1, 2], name=name)
        return keras.layers.ReLU(name=name)

    inp = keras.Input(shape=(None, None, channels), name="image")
    x = keras.layers.Conv2D(width, 5, padding="same", name="conv1")(inp)
    x = act("act1")(x)
    x = keras.layers.Conv2D(mid, 3, padding="same", name="conv2")(x)
    x = act("act2")(x)
    x = keras.layers.Conv2D(channels * scale * scale, 3, padding="same", name="conv3")(x)
    repeated = keras.layers.Concatenate(name="repeat_input")([inp] * (scale * scale))
    x = keras.layers.Add(name="residual")([x, repeated])
    x = depth_to_space(scale, name="pixel_shuffle")(x)
    return keras.Model(inp, _clip01(keras, x), name=f"espcn_x{scale}")


def _unet_features(keras, inp, widths: tuple[int, ...]):
    """The U-Net trunk shared by the builders below: len(widths) - 1 strided-conv downsamplings,
    Conv2DTranspose upsamplings, Concatenate skips; returns the widths[0]-channel decoder output."""
    levels = len(widths) - 1
    if levels < 1:
        raise ValueError("a U-Net needs at least two widths (one downsampling)")

    def conv(x, w, name, stride=1):
        return keras.layers.Conv2D(
            w,
            3,
            strides=stride,
            padding="same",
            activation="relu",
            kernel_initializer="he_normal",  # keeps deep ReLU stacks alive at the start
            name=name,
        )(x)

    skips = [conv(conv(inp, widths[0], "enc1a"), widths[0], "enc1b")]
    x = skips[0]
    for lvl in range(1, levels):
        x = conv(conv(x, widths[lvl], f"down{lvl}", stride=2), widths[lvl], f"enc{lvl + 1}")
        skips.append(x)
    x = conv(conv(x, widths[levels], f"down{levels}", stride=2), widths[levels], "mid1")
    x = conv(x, widths[levels], "mid2")
    for lvl in range(levels, 0, -1):
        w = widths[lvl - 1]
        up = keras.layers.Conv2DTranspose(w, 2, strides=2, padding="same", name=f"up{lvl}")(x)
        x = keras.layers.Concatenate(name=f"skip{lvl}")([up, skips[lvl - 1]])
        x = conv(x, w, f"dec{lvl}")
    return x


def build_unet(widths: tuple[int, ...] = (16, 32, 64), channels: int = 3, name: str = "unet"):
    """Small residual U-Net: len(widths) - 1 strided-conv downsamplings, Conv2DTranspose
    upsamplings, Concatenate skips, global residual Add, clip. widths[0] is the full-resolution
    width, widths[-1] the bottleneck's. Input H and W must be multiples of 2 ** (len(widths) - 1).
    """
    keras = _keras()
    inp = keras.Input(shape=(None, None, channels), name="image")
    x = _unet_features(keras, inp, widths)
    residual = keras.layers.Conv2D(channels, 3, padding="same", name="out")(x)
    out = keras.layers.Add(name="residual")([inp, residual])
    return keras.Model(inp, _clip01(keras, out), name=name)


def build_gain_unet(
    widths: tuple[int, ...] = (32, 64, 64, 64, 64),
    factor: int = 4,
    channels: int = 3,
    name: str = "gain_unet",
):
    """U-Net that predicts a smooth per-channel light gain at 1/factor resolution and relights
    the full-resolution input with it: out = clip(x * (1 + up(g(pool(x))))).

    For multiplicative degradations (cast shadows, uneven light) the answer is a gain field that
    is smooth except at penumbrae a few pixels wide: pooled by 4 and upsampled bilinearly, the
    true gain of the held-out shadows still gives 53-58 dB. Running the U-Net on 1/16 of the
    pixels lets it see a whole shadow and its edges (the evidence that a dark region is a shadow)
    for the cost of a small patch, and the multiply cannot blur or invent texture. Input H and W
    must be multiples of factor * 2 ** (len(widths) - 1).
    """
    keras = _keras()
    inp = keras.Input(shape=(None, None, channels), name="image")
    low = keras.layers.AveragePooling2D(factor, name="pool")(inp)
    x = _unet_features(keras, low, widths)
    gain = keras.layers.Conv2D(channels, 3, padding="same", name="gain")(x)  # gain - 1
    gain = keras.layers.UpSampling2D(factor, interpolation="bilinear", name="upsample")(gain)
    lift = keras.layers.Multiply(name="relight")([inp, gain])
    out = keras.layers.Add(name="residual")([inp, lift])
    return keras.Model(inp, _clip01(keras, out), name=name)


# Shadows and moire bands are hundreds of pixels across: a 3-level U-Net (receptive field ~100 px)
# trained on 64 px patches cannot tell a shadowed wall from a dark one and gained 0.02 dB. Five
# levels (stride 32) see ~400 px; the extra levels run on 1/256 and 1/1024 of the pixels, so they
# add parameters but almost no MACs. Trained on 256 px patches cut from whole degraded photos.
_WIDE_CONTEXT = (16, 32, 64, 64, 64, 64)

_UNET_TRAIN = {"patch": 64, "batch": 16, "steps": 2000, "lr": 1e-3, "loss": "l1"}

_ENTRIES: dict[str, ZooEntry] = {
    e.name: e
    for e in [
        ZooEntry(
            "dncnn",
            "denoise",
            "noise:sigma=25",
            1,
            build_dncnn,
            {"patch": 40, "batch": 16, "steps": 1500, "lr": 1e-3, "loss": "l1"},
            "DnCNN-style residual denoiser, 12 conv x 48 ch, ReLU",
        ),
        ZooEntry(
            "espcn_x2",
            "super-resolution",
            "downscale:factor=2",
            2,
            lambda **kw: build_espcn(2, prelu=True, **kw),
            {"patch": 32, "batch": 16, "steps": 3000, "lr": 1e-3, "loss": "l1"},
            "ESPCN x2 with PReLU and pixel shuffle (DepthToSpace)",
        ),
        ZooEntry(
            "espcn_x3",
            "super-resolution",
            "downscale:factor=3",
            3,
            lambda **kw: build_espcn(3, prelu=True, **kw),
            {"patch": 24, "batch": 16, "steps": 3000, "lr": 1e-3, "loss": "l1"},
            "ESPCN x3 with PReLU and pixel shuffle (DepthToSpace)",
        ),
        ZooEntry(
            "unet_deblur",
            "deblur",
            "blur:sigma=2",
            1,
            lambda **kw: build_unet(name="unet_deblur", **kw),
            dict(_UNET_TRAIN),
            "2-level residual U-Net (strided conv, Conv2DTranspose, concat skips)",
            input_multiple=4,
        ),
        ZooEntry(
            "unet_deshadow",
            "deshadow",
            "shadow",
            1,
            lambda **kw: build_gain_unet(name="unet_deshadow", **kw),
            _UNET_TRAIN
            | {
                "pairs": "image",
                "patch": 384,
                "batch": 8,
                "steps": 3000,
                "loss": "l2",
                "augment": True,
                "images_per_chunk": 64,
                "synthetic": 24,
            },
            "gain U-Net: 4-level U-Net on the 1/4-pooled image predicts a smooth light gain "
            "(AveragePooling, bilinear UpSampling, Multiply) trained on synthetic cast shadows",
            input_multiple=64,
            builder_kwargs={"widths": (32, 64, 64, 64, 64), "factor": 4},
        ),
        ZooEntry(
            "unet_demoire",
            "demoire",
            "moire",
            1,
            lambda **kw: build_unet(name="unet_demoire", **kw),
            _UNET_TRAIN
            | {
                "pairs": "image",
                "patch": 256,
                "batch": 4,
                "steps": 2500,
                "lr": 5e-4,
                "augment": True,
                "images_per_chunk": 64,
            },
            "5-level residual U-Net trained on synthetic moire (receptive field ~400 px)",
            input_multiple=32,
            builder_kwargs={"widths": _WIDE_CONTEXT},
        ),
    ]
}


def names() -> list[str]:
    return list(_ENTRIES)


def get(name: str) -> ZooEntry:
    entry = _ENTRIES.get(name)
    if entry is None:
        raise EdgekitError(f"unknown zoo model '{name}': expected one of {', '.join(_ENTRIES)}")
    return entry


def build(name: str, **kwargs):
    """A fresh, untrained tf_keras model for a zoo entry (builder kwargs, e.g. width, override)."""
    entry = get(name)
    return entry.builder(**{**entry.builder_kwargs, **kwargs})


def table() -> list[dict]:
    """One row per zoo model for `edgekit zoo list`.

    macs_per_pixel counts multiply-accumulates per OUTPUT pixel (for SR: per high-resolution
    pixel). psnr_db/ssim/degraded_psnr_db are the recorded held-out evaluation (for SR the degraded
    figure is bicubic upscaling's); None when the model was never trained.
    """
    from .stats import count_params, macs_per_pixel

    rows = []
    for name in names():
        entry = get(name)
        model = build(name)
        m = entry.metrics() or {}
        rows.append(
            {
                "name": name,
                "task": entry.task,
                "degradation": entry.degradation,
                "scale": entry.scale,
                "params": count_params(model),
                "macs_per_pixel": macs_per_pixel(model),
                "psnr_db": m.get("psnr_db"),
                "ssim": m.get("ssim"),
                "degraded_psnr_db": m.get("degraded_psnr_db"),
                "trained": entry.trained,
                "train_seconds": m.get("train_seconds"),
            }
        )
    return rows


def results_markdown() -> str:
    """The benchmarks/RESULTS.md "Zoo" table, rendered from the recorded metrics JSONs."""
    lines = [
        "| model | task (degradation) | params | MACs/px (output) | PSNR dB | degraded PSNR dB "
        "| gain dB | SSIM (degraded) | steps | train s | command |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name in names():
        entry = get(name)
        m = entry.metrics()
        if not m:
            lines.append(
                f"| {name} | {entry.task} ({entry.degradation}) | | | not trained | | | | | | |"
            )
            continue
        lines.append(
            f"| {name} | {m['task']} (`{m['degradation']}`) | {m['params']:,} | "
            f"{m['macs_per_pixel']:,.0f} | {m['psnr_db']:.2f} | {m['degraded_psnr_db']:.2f} | "
            f"{m['psnr_db'] - m['degraded_psnr_db']:+.2f} | {m['ssim']:.4f} ({m['degraded_ssim']:.4f}) | "
            f"{m['steps']} | {m['train_seconds']:.0f} | `{m['command']}` |"
        )
    return "\n".join(lines)
