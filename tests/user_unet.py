"""A user-like residual U-Net (not a zoo model) with deterministic weights, for tests and benchmarks.

Shared by tests/test_export_rewrites.py and benchmarks/bench_int8_fast.py. What users bring
(USERS.md): PReLU after every conv (per-channel alpha, some above 1), transposed convs with
kernel 3 and 4 at stride 2 (kernel not a multiple of the stride, padding 'same'),
Concatenate skips, a global residual Add and no output clamp. Weights are seeded; the last conv
is scaled down so the output is the input plus a small correction (like a trained residual net),
which keeps PSNR figures on real photos meaningful.
"""

from __future__ import annotations

import numpy as np


def build_user_unet(width: int = 16, seed: int = 0, alpha_above_one: bool = True):
    from edgekit.tfcompat import import_tf

    tf, keras = import_tf()
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)

    def conv(x, w, name, stride=1):
        x = keras.layers.Conv2D(w, 3, strides=stride, padding="same", name=name)(x)
        return keras.layers.PReLU(shared_axes=[1, 2], name=f"{name}_prelu")(x)

    inp = keras.Input((None, None, 3), name="image")
    e1 = conv(conv(inp, width, "e1a"), width, "e1b")
    e2 = conv(conv(e1, 2 * width, "down1", 2), 2 * width, "e2")
    mid = conv(conv(e2, 4 * width, "down2", 2), 4 * width, "mid")
    up2 = keras.layers.Conv2DTranspose(2 * width, 3, strides=2, padding="same", name="up2")(mid)
    d2 = conv(keras.layers.Concatenate(name="skip2")([up2, e2]), 2 * width, "d2")
    up1 = keras.layers.Conv2DTranspose(width, 4, strides=2, padding="same", name="up1")(d2)
    d1 = conv(keras.layers.Concatenate(name="skip1")([up1, e1]), width, "d1")
    res = keras.layers.Conv2D(3, 3, padding="same", name="out")(d1)
    out = keras.layers.Add(name="residual")([inp, res])
    model = keras.Model(inp, out, name="user_unet")
    for layer in model.layers:
        if isinstance(layer, keras.layers.PReLU):
            a = rng.uniform(0.05, 0.4, layer.alpha.shape).astype(np.float32)
            if alpha_above_one and layer.name == "d2_prelu":
                a[..., ::4] = 1.5  # a few channels with alpha > 1 (mixed form)
            layer.set_weights([a])
    k, b = model.get_layer("out").get_weights()
    model.get_layer("out").set_weights([k * 0.05, b * 0.0])
    return model
