"""A user-like U-Net (PReLU, Conv2DTranspose, Concatenate) and a short denoising fit for it.

Shared by benchmarks/bench_optimize.py and tests/test_optimize_*.py: the layers users bring that
fall off XNNPACK's int8 fast path, so int8 costs quality and speed where mixed precision helps.
"""

from __future__ import annotations

import numpy as np


def build_user_unet(width: int = 16, name: str = "user_unet", clip: bool = True, seed: int = 0):
    from edgekit.tfcompat import import_tf

    _, keras = import_tf()
    keras.utils.set_random_seed(seed)  # the same weights every time
    L = keras.layers
    inp = keras.Input((None, None, 3), name="input")
    e1 = L.PReLU(shared_axes=[1, 2], name="e1_act")(
        L.Conv2D(width, 3, padding="same", name="e1")(inp)
    )
    d1 = L.Conv2D(2 * width, 3, strides=2, padding="same", name="down1")(e1)
    d1 = L.PReLU(shared_axes=[1, 2], name="down1_act")(d1)
    e2 = L.PReLU(shared_axes=[1, 2], name="e2_act")(
        L.Conv2D(2 * width, 3, padding="same", name="e2")(d1)
    )
    u1 = L.Conv2DTranspose(width, 2, strides=2, name="up1")(e2)
    c1 = L.Concatenate(name="skip1")([e1, u1])
    x = L.PReLU(shared_axes=[1, 2], name="dec1_act")(
        L.Conv2D(width, 3, padding="same", name="dec1")(c1)
    )
    res = L.Conv2D(3, 3, padding="same", name="head")(x)
    out = L.Add(name="residual")([inp, res])
    if clip:  # a [0, 1] clamp at the output, as many users add (MINIMUM + RELU in TFLite)
        out = L.ReLU(max_value=1.0, name="clip01")(out)
    return keras.Model(inp, out, name=name)


def fit_denoiser(
    model,
    images: list[np.ndarray],
    *,
    steps: int = 300,
    patch: int = 32,
    sigma: float = 25.0,
    seed: int = 0,
    lr: float = 2e-3,
):
    """Fit `model` to remove Gaussian noise on random patches of `images` (float (H, W, 3))."""
    from edgekit.tfcompat import import_tf

    tf, keras = import_tf()
    tf.random.set_seed(seed)
    rng = np.random.default_rng(seed)
    n = steps * 8
    xs = np.empty((n, patch, patch, 3), np.float32)
    for i in range(n):
        im = images[rng.integers(len(images))]
        y0 = rng.integers(0, im.shape[0] - patch + 1)
        x0 = rng.integers(0, im.shape[1] - patch + 1)
        xs[i] = im[y0 : y0 + patch, x0 : x0 + patch]
    noisy = np.clip(xs + rng.normal(0, sigma / 255.0, xs.shape), 0, 1).astype(np.float32)
    model.compile(keras.optimizers.Adam(lr), "mae")
    model.fit(noisy, xs, batch_size=8, epochs=1, verbose=0, shuffle=False)
    return model
