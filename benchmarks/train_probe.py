"""Probe a zoo U-Net training recipe: held-out PSNR at 1/4, 1/2, 3/4 and the end of a short run.

    .venv/bin/python benchmarks/train_probe.py unet_deshadow --loss l2 --lr 5e-4 --steps 800 \
        --patch 256 --batch 4 --widths 16,32,64,64,64,64 [--augment] [--per-chunk 64] [--synthetic 24] [--sky 16]

Used to choose the unet_demoire recipe and to record what did not work for unet_deshadow
(benchmarks/RESULTS.md, Zoo). Same split, pairs and evaluation as `edgekit zoo train`, nothing is
saved. Host CPU; the printed times are wall time.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", choices=["unet_deblur", "unet_deshadow", "unet_demoire"])
    ap.add_argument("--loss", choices=["l1", "l2"], default="l1")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--patch", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--widths", default="16,32,64,64,64,64")
    ap.add_argument("--augment", action="store_true", help="photometric jitter of clean photos")
    ap.add_argument("--per-chunk", type=int, default=8, help="degraded photos per 64 steps")
    ap.add_argument(
        "--synthetic", type=int, default=0, help="dead-leaves images added to the training photos"
    )
    ap.add_argument("--sky", type=int, default=0, help="open-sky images added (data/synthetic.py)")
    ap.add_argument(
        "--log-domain",
        action="store_true",
        help="the U-Net sees log(x) and corrects there (Lambda layers: a probe, not a zoo model)",
    )
    ap.add_argument(
        "--mask-head",
        type=float,
        default=0.0,
        help="deshadow only: weight of a shadow-mask loss on a second head that gates the "
        "residual (out = x + mask * residual); the mask target comes from each pair's ratio",
    )
    a = ap.parse_args(argv)

    from edgekit.data.degradations import parse
    from edgekit.data.patches import image_scale_pairs
    from edgekit.models import train as T
    from edgekit.models import zoo
    from edgekit.models.info import LoadedModel
    from edgekit.tfcompat import import_tf

    tf, keras = import_tf()
    widths = tuple(int(w) for w in a.widths.split(","))
    entry = zoo.get(a.name)
    deg = parse(entry.degradation)
    train_images, held_out = T.calibration_split()
    if a.synthetic:
        from edgekit.data.synthetic import dead_leaves_images

        train_images = list(train_images) + dead_leaves_images(a.synthetic, seed=0)
    if a.sky:
        from edgekit.data.synthetic import open_sky_images

        train_images = list(train_images) + open_sky_images(a.sky, seed=0)
    keras.utils.set_random_seed(0)
    model = zoo.build_unet(name=a.name, widths=widths)
    if a.log_domain:
        model = _log_domain(keras, tf, model)
    trainer = model
    if a.mask_head:
        model, trainer = _mask_gated(keras, model)
    schedule = keras.optimizers.schedules.CosineDecay(a.lr, a.steps, alpha=0.02)
    optimizer = keras.optimizers.Adam(schedule)

    @tf.function(reduce_retracing=True)
    def step_fn(x, y):
        with tf.GradientTape() as tape:
            if a.mask_head:
                pred, mask = trainer(x, training=True)
                # where the clean pixel is bright enough for its ratio to mean something, the
                # shadow mask is how far the pair's luminance ratio is below 1, over the
                # umbra's typical darkening (strength 0.6)
                lum_x, lum_y = tf.reduce_mean(x, -1, True), tf.reduce_mean(y, -1, True)
                target = tf.clip_by_value((1.0 - lum_x / tf.maximum(lum_y, 1e-3)) / 0.6, 0, 1)
                weight = tf.cast(lum_y > 0.05, tf.float32)
                bce = keras.losses.binary_crossentropy(target, mask)[..., None]
                mask_loss = tf.reduce_sum(bce * weight) / tf.maximum(tf.reduce_sum(weight), 1.0)
            else:
                pred, mask_loss = trainer(x, training=True), 0.0
            err = pred - y
            loss = tf.reduce_mean(tf.abs(err) if a.loss == "l1" else tf.square(err))
            loss = loss + a.mask_head * mask_loss
        grads = tape.gradient(loss, trainer.trainable_variables)
        optimizer.apply_gradients(zip(grads, trainer.trainable_variables, strict=True))
        return loss

    info = dataclasses.replace(T._zoo_info(entry), input_multiple=2 ** (len(widths) - 1))
    t0, losses = time.perf_counter(), []
    for step in range(a.steps):
        chunk, i = divmod(step, 64)
        if i == 0:
            xs, ys = image_scale_pairs(
                train_images,
                deg,
                a.patch,
                64 * a.batch,
                seed=chunk,
                per_chunk=a.per_chunk,
                augment=a.augment,
            )
        batch = slice(i * a.batch, (i + 1) * a.batch)
        losses.append(float(step_fn(xs[batch], ys[batch])))
        if (step + 1) % max(1, a.steps // 4) == 0:
            ev = T.evaluate(LoadedModel(model, info), held_out)
            gain = ev["psnr_db"] - ev["degraded_psnr_db"]
            per = ", ".join(
                f"{r['image'][:2]} {r['psnr_db'] - r['degraded_psnr_db']:+.2f}"
                for r in ev["per_image"]
            )
            print(
                f"step {step + 1}: train loss {np.mean(losses[-50:]):.4f}, held-out "
                f"{ev['psnr_db']:.2f} dB vs {ev['degraded_psnr_db']:.2f} degraded "
                f"({gain:+.2f} dB; per photo {per}), {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
    return 0


def _mask_gated(keras, unet):
    """(image model, training model): the U-Net's last decoder features also feed a sigmoid
    shadow-mask head, and the residual is multiplied by that mask, so the net can only brighten
    where it claims a shadow. The training model also returns the mask (for its own loss)."""
    feats = unet.get_layer("dec1").output
    residual = unet.get_layer("out").output
    mask = keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid", name="mask")(feats)
    gated = keras.layers.Multiply(name="gate")([residual, mask])
    out = keras.layers.Add(name="gated_residual")([unet.input, gated])
    out = keras.layers.ReLU(max_value=1.0, name="clip")(out)
    return keras.Model(unet.input, out, name=unet.name), keras.Model(unet.input, [out, mask])


def _log_domain(keras, tf, unet):
    """The same U-Net body on log(x + 1/255): a cast shadow is then an additive offset of the same
    size on every texture and brightness (x * gain -> log x + log gain), with a soft edge, instead
    of a step whose height depends on what it falls on. The body's residual is added in the log
    domain and exp() maps back; loss and evaluation stay on the linear image."""
    eps = 1.0 / 255.0
    body = keras.Model(unet.input, unet.get_layer("out").output)  # residual head, no Add/clip
    inp = keras.Input(shape=(None, None, 3), name="image")
    logx = keras.layers.Lambda(lambda x: tf.math.log(x + eps))(inp)
    res = body(keras.layers.Lambda(lambda t: t * 0.25)(logx))  # inputs ~[-1.4, 0]
    out = keras.layers.Lambda(lambda t: tf.exp(t[0] + t[1]) - eps)([logx, res])
    return keras.Model(inp, keras.layers.ReLU(max_value=1.0)(out), name=unet.name)


if __name__ == "__main__":
    raise SystemExit(main())
