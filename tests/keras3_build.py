"""Build Keras 3 test models and save them with Keras 3's own outputs (run in a Keras 3 process).

Usage: python tests/keras3_build.py OUT_DIR INPUTS.npy [--train STEPS] [--only a,b] [--eval X.npy]

Must run WITHOUT TF_USE_LEGACY_KERAS (that is the point: these are Keras 3 files, as a user of
TensorFlow 2.16+ saves them). For every model NAME it writes OUT_DIR/NAME.keras and
OUT_DIR/NAME.out.npy (Keras 3's predictions on INPUTS.npy, float32 NHWC in [0, 1]). Weights are
random but deterministic, with biases, BatchNorm statistics and PReLU slopes made non-trivial so
that a weight loaded in the wrong slot changes the output. `--train STEPS` instead trains each
model briefly in Keras 3 (denoising sigma 25, or x2 super-resolution) on INPUTS.npy patches;
`--eval X.npy` then gives the images the saved outputs are predicted on (default INPUTS.npy).
"""

from __future__ import annotations

import os
import sys

if os.environ.get("TF_USE_LEGACY_KERAS"):
    sys.exit("keras3_build.py must run without TF_USE_LEGACY_KERAS (it builds Keras 3 models)")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers as L  # noqa: E402


def ca_denoiser():
    """Channel-attention residual denoiser: global pool (keepdims), 1x1 convs, sigmoid, Multiply."""
    inp = keras.Input((None, None, 3), name="noisy")
    x = L.Conv2D(16, 3, padding="same", activation="relu", name="head")(inp)
    for i in range(2):
        y = L.Conv2D(16, 3, padding="same", activation="relu", name=f"b{i}_c1")(x)
        y = L.Conv2D(16, 3, padding="same", name=f"b{i}_c2")(y)
        a = L.GlobalAveragePooling2D(keepdims=True, name=f"b{i}_gap")(y)
        a = L.Conv2D(4, 1, activation="relu", name=f"b{i}_squeeze")(a)
        a = L.Conv2D(16, 1, activation="sigmoid", name=f"b{i}_excite")(a)
        y = L.Multiply(name=f"b{i}_scale")([y, a])
        x = L.Add(name=f"b{i}_res")([x, y])
    noise = L.Conv2D(3, 3, padding="same", name="noise")(x)
    out = L.Subtract(name="clean")([inp, noise])
    return keras.Model(inp, out, name="ca_denoiser")


def unet():
    """Two-level U-Net: MaxPooling2D down, UpSampling2D (bilinear) up, Concatenate skips."""
    inp = keras.Input((None, None, 3))
    e1 = L.Conv2D(16, 3, padding="same", activation="relu")(inp)
    d = L.MaxPooling2D(2)(e1)
    e2 = L.Conv2D(24, 3, padding="same", activation="relu")(d)
    d = L.MaxPooling2D(2)(e2)
    m = L.Conv2D(32, 3, padding="same", activation="relu")(d)
    u = L.UpSampling2D(2, interpolation="bilinear")(m)
    u = L.Concatenate()([u, e2])
    u = L.Conv2D(24, 3, padding="same", activation="relu")(u)
    u = L.UpSampling2D(2, interpolation="bilinear")(u)
    u = L.Concatenate()([u, e1])
    u = L.Conv2D(16, 3, padding="same", activation="relu")(u)
    out = L.Add()([inp, L.Conv2D(3, 3, padding="same")(u)])
    return keras.Model(inp, out, name="unet")


def sr_shuffle():
    """ESPCN-style x2: convs, then keras.ops.depth_to_space and keras.ops.clip."""
    inp = keras.Input((None, None, 3))
    x = L.Conv2D(32, 5, padding="same", activation="tanh")(inp)
    x = L.Conv2D(16, 3, padding="same", activation="tanh")(x)
    x = L.Conv2D(12, 3, padding="same")(x)
    x = keras.ops.depth_to_space(x, 2)
    return keras.Model(inp, keras.ops.clip(x, 0.0, 1.0), name="sr_shuffle")


def sr_tconv():
    """x2 with a transposed conv, added to a bilinear upsampling of the input."""
    inp = keras.Input((None, None, 3))
    x = L.Conv2D(24, 3, padding="same")(inp)
    x = L.PReLU(shared_axes=[1, 2])(x)
    x = L.Conv2DTranspose(3, 4, strides=2, padding="same")(x)
    up = L.UpSampling2D(2, interpolation="bilinear")(inp)
    return keras.Model(inp, L.Add()([up, x]), name="sr_tconv")


def layer_zoo():
    """One wide model touching every layer kind edgekit translates."""
    inp = keras.Input((None, None, 3))
    x = L.Rescaling(2.0, offset=-1.0)(inp)
    x = L.ZeroPadding2D(((1, 1), (2, 2)))(x)
    x = L.Conv2D(8, 3, padding="valid", activation="relu")(x)  # back to H x (W + 2)
    x = L.Cropping2D(((0, 0), (1, 1)))(x)
    x = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU(max_value=6.0)(x)
    x = L.SeparableConv2D(8, 3, padding="same")(x)
    x = L.LayerNormalization()(x)
    x = L.LeakyReLU(negative_slope=0.1)(x)
    x = L.PReLU(shared_axes=[1, 2])(x)
    acts = [L.Activation(a)(x) for a in ("gelu", "silu", "hard_sigmoid", "softplus", "tanh")]
    acts += [L.Activation("sigmoid")(x), L.Activation("relu")(x)]
    s = L.Add()(acts[:2])
    s = L.Subtract()([s, acts[2]])
    s = L.Multiply()([s, acts[3]])
    s = L.Average()([s, acts[4], acts[5]])
    s = L.Maximum()([s, acts[6]])
    s = L.Dense(8, activation="swish")(s)  # per pixel, on the channel axis
    s = L.Dropout(0.3)(s)
    s = L.Identity()(s)
    p = L.AveragePooling2D(2)(s)
    p = L.Conv2D(8, 3, padding="same", activation="hard_sigmoid")(p)
    p = L.UpSampling2D(2)(p)
    q = L.MaxPooling2D(2, strides=2)(s)
    q = L.Conv2DTranspose(8, 3, strides=2, padding="same", activation="gelu")(q)
    g = L.GlobalAveragePooling2D(keepdims=True)(s)
    s = L.Concatenate()([s, p, q, L.Multiply()([s, g])])
    s = L.Conv2D(3, 1)(s)
    s = s * 0.1 + 0.02  # keras.ops arithmetic with numbers
    return keras.Model(inp, L.Add()([inp, s]), name="layer_zoo")


def nested():
    """A functional block shared twice, and a Sequential, inside a functional model."""
    bi = keras.Input((None, None, 8))
    b = L.Conv2D(8, 3, padding="same")(bi)
    b = L.BatchNormalization()(b)
    b = L.Activation("relu")(b)
    block = keras.Model(bi, L.Add()([bi, b]), name="block")
    seq = keras.Sequential(
        [keras.Input((None, None, 8)), L.Conv2D(8, 1), L.BatchNormalization(), L.ReLU()],
        name="seq",
    )
    inp = keras.Input((None, None, 3))
    x = L.Conv2D(8, 3, padding="same")(inp)
    x = block(x)
    x = seq(x)
    x = block(x)  # the same block again: node index 1
    out = L.Add()([inp, L.Conv2D(3, 3, padding="same")(x)])
    return keras.Model(inp, out, name="nested")


def sequential():
    """A Sequential model with a fixed 64x64 input and rank-4 Reshapes."""
    return keras.Sequential(
        [
            keras.Input((64, 64, 3)),
            L.Conv2D(6, 3, padding="same"),
            L.BatchNormalization(),
            L.Reshape((64, 32, 12)),
            L.Conv2D(12, 1, activation="relu"),
            L.Reshape((64, 64, 6)),
            L.Conv2D(3, 3, padding="same"),
        ],
        name="sequential_fixed",
    )


def with_lambda():
    """Refused by edgekit: a Lambda stores Python code."""
    inp = keras.Input((None, None, 3))
    x = L.Conv2D(3, 3, padding="same", name="conv")(inp)
    return keras.Model(inp, L.Lambda(lambda t: t * 0.5, name="halve")(x), name="with_lambda")


@keras.saving.register_keras_serializable(package="acme")
class Gain(L.Layer):
    """A user's registered layer: its code lives in the user's package, not in the file."""

    def call(self, x):
        return x * 2.0


def with_custom():
    inp = keras.Input((None, None, 3))
    x = L.Conv2D(3, 3, padding="same", name="conv")(inp)
    return keras.Model(inp, Gain(name="gain")(x), name="with_custom")


BAD = {"with_lambda": with_lambda, "with_custom": with_custom}

BUILDERS = {
    "ca_denoiser": ca_denoiser, "unet": unet, "sr_shuffle": sr_shuffle, "sr_tconv": sr_tconv,
    "layer_zoo": layer_zoo, "nested": nested, "sequential": sequential,
}  # fmt: skip


def _roughen(model, rng) -> None:
    """Non-trivial biases, norm parameters, BN statistics and PReLU slopes."""
    for layer in _all_layers(model):
        for v in layer.weights:
            short = v.path.rsplit("/", 1)[-1]
            shape = tuple(v.shape)
            if short in ("bias", "beta", "moving_mean"):
                v.assign(rng.normal(0.0, 0.05, shape).astype("float32"))
            elif short == "gamma":
                v.assign(rng.uniform(0.8, 1.2, shape).astype("float32"))
            elif short == "moving_variance":
                v.assign(rng.uniform(0.5, 1.5, shape).astype("float32"))
            elif short == "alpha":
                v.assign(rng.uniform(0.0, 0.4, shape).astype("float32"))


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def _train(model, name, x, steps, rng) -> None:
    """A short Keras 3 training: denoise sigma 25 (or x2 SR for sr_*), L1, Adam."""
    size = 48
    scale = 2 if name.startswith("sr_") else 1
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mae")
    for _ in range(steps):
        idx = rng.integers(0, len(x), 8)
        hh = rng.integers(0, x.shape[1] - size * scale + 1, 8)
        ww = rng.integers(0, x.shape[2] - size * scale + 1, 8)
        clean = np.stack(
            [
                x[i, h : h + size * scale, w : w + size * scale]
                for i, h, w in zip(idx, hh, ww, strict=True)
            ]
        )
        if scale > 1:
            small = clean.reshape(8, size, scale, size, scale, 3).mean(axis=(2, 4))
            inp, target = small, clean
        else:
            inp = clean + rng.normal(0, 25 / 255, clean.shape).astype("float32")
            target = clean
        model.train_on_batch(inp, target)


def main(argv: list[str]) -> None:
    out_dir, inputs = argv[0], np.load(argv[1]).astype("float32")
    steps = int(argv[argv.index("--train") + 1]) if "--train" in argv else 0
    only = argv[argv.index("--only") + 1].split(",") if "--only" in argv else [*BUILDERS, *BAD]
    evals = (
        np.load(argv[argv.index("--eval") + 1]).astype("float32") if "--eval" in argv else inputs
    )
    os.makedirs(out_dir, exist_ok=True)
    for name in only:
        keras.utils.set_random_seed(7)
        if name in BAD:  # saved as-is, no outputs needed
            BAD[name]().save(os.path.join(out_dir, f"{name}.keras"))
            continue
        rng = np.random.default_rng(7)
        model = BUILDERS[name]()
        _roughen(model, rng)
        if steps:
            _train(model, name, inputs, steps, rng)
        model.save(os.path.join(out_dir, f"{name}.keras"))
        if name == "ca_denoiser":  # the SavedModel route users take today must keep working
            model.export(os.path.join(out_dir, f"{name}_savedmodel"), verbose=False)
        if name in ("ca_denoiser", "nested"):  # Keras 3's legacy .h5 format
            model.save(os.path.join(out_dir, f"{name}.h5"))
        x = evals[:, :64, :64] if name == "sequential" else evals
        np.save(os.path.join(out_dir, f"{name}.out.npy"), model.predict(x, verbose=0))
        print(name, "saved", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
