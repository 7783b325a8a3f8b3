"""Tiny restoration models and images shared by the compression tests (same layer patterns as the
zoo: residual DnCNN, ESPCN with PReLU + pixel shuffle, U-Net with strided conv, transpose conv,
concatenate), plus a check that they build with the expected shapes."""

from __future__ import annotations

import numpy as np

from edgekit.data.images import Image


def keras():
    from edgekit.tfcompat import import_tf

    return import_tf()[1]


def images(n: int = 5, size: int = 96, seed: int = 0) -> list[Image]:
    """Smooth synthetic photos (sums of oriented sinusoids + edges): learnable, not noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    out = []
    for i in range(n):
        a = rng.random(8)
        chans = [np.sin(7 * a[0] * x + 5 * a[1] * y + 2 * k + a[2]) * 0.3 + 0.5 for k in range(3)]
        img = np.stack(chans, -1)
        img += 0.15 * ((x * np.cos(a[3] * 6) + y * np.sin(a[3] * 6)) > a[4])[..., None]
        out.append(Image(f"im{i}.png", np.clip(img, 0, 1).astype(np.float32)))
    return out


def dncnn(width: int = 16, depth: int = 4, seed: int = 0):
    k = keras()
    k.utils.set_random_seed(seed)
    L = k.layers
    inp = k.Input((None, None, 3), name="image")
    x = inp
    for i in range(depth - 1):
        x = L.Conv2D(width, 3, padding="same", activation="relu", name=f"conv{i + 1}")(x)
    r = L.Conv2D(3, 3, padding="same", name=f"conv{depth}")(x)
    out = L.ReLU(max_value=1.0, name="clip01")(L.Add(name="residual")([inp, r]))
    return k.Model(inp, out, name="dncnn")


def espcn(scale: int = 2, width: int = 16, mid: int = 8, seed: int = 0):
    from edgekit.models.layers import layer_classes

    k = keras()
    k.utils.set_random_seed(seed)
    L = k.layers
    inp = k.Input((None, None, 3), name="image")
    x = L.PReLU(shared_axes=[1, 2], name="act1")(
        L.Conv2D(width, 5, padding="same", name="conv1")(inp)
    )
    x = L.PReLU(shared_axes=[1, 2], name="act2")(L.Conv2D(mid, 3, padding="same", name="conv2")(x))
    x = L.Conv2D(3 * scale * scale, 3, padding="same", name="conv3")(x)
    rep = L.Concatenate(name="repeat_input")([inp] * (scale * scale))
    x = L.Add(name="residual")([x, rep])
    x = layer_classes()["DepthToSpace"](scale, name="pixel_shuffle")(x)
    return k.Model(inp, L.ReLU(max_value=1.0, name="clip01")(x), name=f"espcn_x{scale}")


def unet(widths=(8, 16, 16), seed: int = 0):
    k = keras()
    k.utils.set_random_seed(seed)
    L = k.layers
    w1, w2, w3 = widths

    def conv(x, w, name, stride=1):
        return L.Conv2D(w, 3, strides=stride, padding="same", activation="relu", name=name)(x)

    inp = k.Input((None, None, 3), name="image")
    e1 = conv(inp, w1, "enc1")
    e2 = conv(e1, w2, "down1", 2)
    b = conv(e2, w3, "down2", 2)
    u2 = L.Conv2DTranspose(w2, 2, strides=2, padding="same", name="up2")(b)
    d2 = conv(L.Concatenate(name="skip2")([u2, e2]), w2, "dec2")
    u1 = L.Conv2DTranspose(w1, 2, strides=2, padding="same", name="up1")(d2)
    d1 = conv(L.Concatenate(name="skip1")([u1, e1]), w1, "dec1")
    r = L.Conv2D(3, 3, padding="same", name="out")(d1)
    out = L.ReLU(max_value=1.0, name="clip01")(L.Add(name="residual")([inp, r]))
    return k.Model(inp, out, name="unet")


def test_helpers_build():
    x = np.zeros((1, 16, 16, 3), np.float32)
    assert dncnn()(x).shape == (1, 16, 16, 3)
    assert espcn(2)(x).shape == (1, 32, 32, 3)
    assert espcn(3)(x).shape == (1, 48, 48, 3)
    assert unet()(x).shape == (1, 16, 16, 3)
    ims = images(3)
    assert len(ims) == 3 and ims[0].pixels.shape == (96, 96, 3) and ims[0].pixels.std() > 0.05
