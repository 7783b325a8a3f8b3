"""Train and evaluate zoo models on the calibration images (`edgekit zoo train NAME`).

Training is deterministic for a seed (seeded numpy pairs, tf_keras.utils.set_random_seed and
TensorFlow op determinism). Patches come from the calibration images' train split; evaluation
runs on the held-out split, whole images (fully convolutional), and on a small fixed set
(centre crops of the first held-out images) that the tests re-run to check shipped weights.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from pathlib import Path

import numpy as np

from ..atomic import atomic_path, write_json
from ..data.patches import image_scale_pairs
from ..errors import EdgekitError
from ..terminal import loss_progress

FIXED_SET_IMAGES = 3  # first N held-out images (sorted by name) ...
FIXED_SET_CROP = 256  # ... centre-cropped to this many clean pixels per side
EVAL_SEED = 0  # degradation seed of the evaluation (per image: EVAL_SEED * 7919 + index)
EVAL_DRAWS = 5  # degradation draws per held-out image in the recorded figures (seeds 0-4)
PAIRS_PER_CHUNK = 64  # batches of training pairs generated at a time


def machine() -> str:
    """A short description of the host (CPU model, cores, TensorFlow version)."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    from ..tfcompat import import_tf

    tf, _ = import_tf()
    return f"{cpu}, {os.cpu_count()} cores, TensorFlow {tf.__version__} (host)"


def save_weights(model, path: Path) -> Path:
    """model.save_weights to `path` (`.weights.h5`, tf_keras v3 weights format), atomically."""
    with atomic_path(path) as tmp:
        # tf_keras picks the weights format from the suffix, so stage under a '.weights.h5' name.
        staged = tmp.with_name(tmp.name + ".weights.h5")
        try:
            model.save_weights(str(staged))
            os.replace(staged, tmp)
        finally:
            with contextlib.suppress(FileNotFoundError):
                staged.unlink()
    return path


def _crop_for(img: np.ndarray, multiple: int, crop: int | None) -> np.ndarray:
    """Centre crop to at most crop x crop, then down to a multiple of `multiple` (clean pixels)."""
    h, w = img.shape[:2]
    if crop is not None:
        ch, cw = min(h, crop), min(w, crop)
        y, x = (h - ch) // 2, (w - cw) // 2
        img = img[y : y + ch, x : x + cw]
        h, w = ch, cw
    return img[: h - h % multiple, : w - w % multiple]


def _score(loaded, deg, clean: np.ndarray, seed: int) -> dict:
    """One degradation draw of one clean image through the model: PSNR/SSIM of output and input."""
    from ..data.degradations import resize_bicubic
    from ..metrics import psnr, ssim

    info = loaded.info
    x, clean = deg(clean, seed=seed)
    y = np.asarray(loaded.model(x[None], training=False))[0]
    if y.shape != clean.shape:
        raise EdgekitError(
            f"model '{info.name}': output {y.shape} for input {x.shape}, expected {clean.shape}"
        )
    base = np.clip(resize_bicubic(x, clean.shape[:2]), 0.0, 1.0) if deg.scale > 1 else x
    y = np.clip(y, 0.0, 1.0)
    return {
        "psnr_db": psnr(y, clean),
        "ssim": ssim(y, clean),
        "degraded_psnr_db": psnr(base, clean),
        "degraded_ssim": ssim(base, clean),
    }


def evaluate(
    loaded_or_name,
    images,
    degradation: str | None = None,
    *,
    seed: int = EVAL_SEED,
    crop: int | None = None,
    draws: int = 1,
) -> dict:
    """PSNR/SSIM of a model's output and of the degraded input against the clean images.

    loaded_or_name: a LoadedModel, or a zoo name (loads its shipped weights).
    images: edgekit.data.images.Image list (whole images; each cropped so the model input is a
    multiple of the model's input_multiple, optionally centre-cropped to `crop` clean pixels).
    For super-resolution the degraded figure is bicubic upscaling of the low-resolution input.
    draws: degradations drawn per image (seeds seed, seed + 1, ...); each image's figures are
    the mean over its draws, so one lucky or unlucky shadow or noise draw does not decide them.
    """
    from ..data.degradations import parse
    from .info import LoadedModel

    if isinstance(loaded_or_name, str):
        from .loading import load_model

        loaded_or_name = load_model(f"zoo:{loaded_or_name}")
    if not isinstance(loaded_or_name, LoadedModel):
        raise TypeError("evaluate() takes a LoadedModel or a zoo name")
    info = loaded_or_name.info
    deg = parse(degradation or info.degradation or "")
    if deg.scale != info.scale:
        raise EdgekitError(
            f"degradation '{deg.spec}' has scale {deg.scale} but model '{info.name}' upscales by "
            f"{info.scale}; pass a matching --degradation"
        )
    multiple = deg.scale * max(1, int(getattr(info, "input_multiple", 1)))
    if draws < 1:
        raise EdgekitError(f"evaluate: draws must be at least 1, got {draws}")
    per_image = []
    for k, im in enumerate(images):
        clean = _crop_for(im.pixels, multiple, crop)
        rows = [_score(loaded_or_name, deg, clean, (seed + d) * 7919 + k) for d in range(draws)]
        entry = {"image": im.name, "shape": list(clean.shape[:2])}
        for key in ("psnr_db", "ssim", "degraded_psnr_db", "degraded_ssim"):
            entry[key] = float(np.mean([r[key] for r in rows]))
        if draws > 1:
            entry["draws"] = [
                {
                    "seed": seed + d,
                    "psnr_db": r["psnr_db"],
                    "degraded_psnr_db": r["degraded_psnr_db"],
                }
                for d, r in enumerate(rows)
            ]
        per_image.append(entry)
    if not per_image:
        raise EdgekitError("evaluate: no images given")

    def mean(key):
        return round(float(np.mean([r[key] for r in per_image])), 4)

    return {
        "degradation": deg.spec,
        "n_images": len(per_image),
        "crop": crop,
        "seed": seed,
        "draws": draws,
        "psnr_db": mean("psnr_db"),
        "ssim": mean("ssim"),
        "degraded_psnr_db": mean("degraded_psnr_db"),
        "degraded_ssim": mean("degraded_ssim"),
        "per_image": per_image,
    }


def fixed_set(held_out):
    """The small fixed evaluation set: the first FIXED_SET_IMAGES held-out images."""
    return sorted(held_out, key=lambda im: im.name)[:FIXED_SET_IMAGES]


def calibration_split():
    """(train, held_out) images from the calibration folder."""
    from ..data.images import load_folder, split_holdout
    from ..paths import calibration_dir

    return split_holdout(load_folder(calibration_dir()))


def train(
    name: str,
    *,
    steps: int | None = None,
    seed: int = 0,
    out_dir: Path | None = None,
    progress: bool = True,
    images: tuple | None = None,
) -> dict:
    """Train zoo model `name` from scratch, evaluate it, write weights + metrics JSON.

    images: optional (train, held_out) Image lists; default: the calibration folder's split.
    Returns the metrics dict that is written to `<out_dir>/<name>.json`.
    """
    from ..paths import weights_dir
    from ..tfcompat import import_tf
    from . import zoo

    entry = zoo.get(name)
    cfg = dict(entry.train_config)
    steps = int(steps if steps is not None else cfg["steps"])
    if steps < 1:
        raise EdgekitError(f"zoo train {name}: steps must be at least 1, got {steps}")
    out_dir = Path(out_dir) if out_dir is not None else weights_dir()
    train_images, held_out = images if images is not None else calibration_split()
    if not held_out:
        raise EdgekitError(
            "zoo train: no held-out images (every 4th calibration image is held out); "
            "put at least 4 images in the calibration folder"
        )
    from ..data.degradations import parse

    parse(entry.degradation)  # an unknown degradation fails before any training

    tf, keras = import_tf()
    from tensorflow.python.framework import config as tf_config

    was_deterministic = tf_config.is_op_determinism_enabled()
    try:
        tf.config.experimental.enable_op_determinism()
        return _train(entry, cfg, steps, seed, out_dir, progress, train_images, held_out)
    finally:
        if not was_deterministic:  # don't leave the whole process deterministic (slower ops)
            tf_config.disable_op_determinism()


def _train(entry, cfg, steps, seed, out_dir, progress, train_images, held_out) -> dict:
    from ..data.degradations import parse
    from ..data.patches import make_pairs
    from ..tfcompat import import_tf
    from . import zoo
    from .info import LoadedModel

    name = entry.name
    deg = parse(entry.degradation)
    patch, batch = int(cfg["patch"]), int(cfg["batch"])
    if cfg.get("synthetic"):  # procedural dead-leaves images beside the photos (data/synthetic.py)
        from ..data.synthetic import dead_leaves_images

        train_images = list(train_images) + dead_leaves_images(int(cfg["synthetic"]), seed=seed)
    if cfg.get("synthetic_sky"):  # smooth skies at every brightness, clutter below (same module)
        from ..data.synthetic import open_sky_images

        train_images = list(train_images) + open_sky_images(int(cfg["synthetic_sky"]), seed=seed)
    tf, keras = import_tf()
    keras.utils.set_random_seed(seed)
    model = zoo.build(name)
    schedule = keras.optimizers.schedules.CosineDecay(
        float(cfg["lr"]), decay_steps=steps, alpha=0.02
    )
    optimizer = keras.optimizers.Adam(learning_rate=schedule)
    l1 = cfg.get("loss", "l1") == "l1"

    @tf.function(reduce_retracing=True)
    def step_fn(x, y):
        with tf.GradientTape() as tape:
            pred = model(x, training=True)
            err = pred - y
            loss = tf.reduce_mean(tf.abs(err)) if l1 else tf.reduce_mean(tf.square(err))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    start = time.perf_counter()
    losses, curve = [], []
    curve_every = max(1, steps // 20)
    with loss_progress(progress) as bar:
        task = bar.add_task(f"train {name}", total=steps, loss="-")
        xs = ys = None
        for step in range(steps):
            chunk, i = divmod(step, PAIRS_PER_CHUNK)
            if i == 0:
                count = PAIRS_PER_CHUNK * batch
                pair_seed = seed * 100_003 + chunk
                if cfg.get("pairs") == "image":
                    xs, ys = image_scale_pairs(
                        train_images,
                        deg,
                        patch,
                        count,
                        seed=pair_seed,
                        per_chunk=int(cfg.get("images_per_chunk", 8)),
                        augment=cfg.get("augment", False),
                        clean_share=float(cfg.get("clean_share", 0.0)),
                    )
                else:
                    xs, ys = make_pairs(train_images, deg, patch, count, seed=pair_seed)
            loss = float(step_fn(xs[i * batch : (i + 1) * batch], ys[i * batch : (i + 1) * batch]))
            losses.append(loss)
            if (step + 1) % curve_every == 0:
                curve.append([step + 1, round(float(np.mean(losses[-curve_every:])), 5)])
            if step % 10 == 0 or step == steps - 1:
                bar.update(task, completed=step + 1, loss=f"{np.mean(losses[-50:]):.4f}")
    train_seconds = time.perf_counter() - start

    loaded = LoadedModel(model, _zoo_info(entry))
    from .stats import count_params, macs_per_pixel

    metrics = {
        "name": name,
        "task": entry.task,
        "degradation": deg.spec,
        "scale": entry.scale,
        "params": count_params(model),
        "macs_per_pixel": macs_per_pixel(model),
        **_evaluation_record(loaded, held_out),
        "steps": steps,
        "seed": seed,
        "train_config": cfg | {"steps": steps},
        "final_loss": round(float(np.mean(losses[-50:])), 5),
        "loss_curve": curve,
        "train_seconds": round(train_seconds, 1),
        "machine": machine(),
        "command": f"edgekit zoo train {name}"
        + (f" --steps {steps}" if steps != cfg["steps"] else ""),
    }
    save_weights(model, out_dir / f"{name}.weights.h5")
    write_json(out_dir / f"{name}.json", metrics)
    return metrics


def _evaluation_record(loaded, held_out) -> dict:
    """The evaluation fields of a zoo metrics JSON: whole held-out photos, EVAL_DRAWS draws each,
    and the one-draw fixed set the tests re-run."""
    full = evaluate(loaded, held_out, draws=EVAL_DRAWS)
    fixed = evaluate(loaded, fixed_set(held_out), crop=FIXED_SET_CROP)
    return {
        "psnr_db": full["psnr_db"],
        "ssim": full["ssim"],
        "degraded_psnr_db": full["degraded_psnr_db"],
        "degraded_ssim": full["degraded_ssim"],
        "eval_draws": full["draws"],
        "held_out": [r["image"] for r in full["per_image"]],
        "per_image": full["per_image"],
        "fixed_set": {k: fixed[k] for k in ("crop", "seed", "psnr_db", "ssim", "degraded_psnr_db")}
        | {"images": [r["image"] for r in fixed["per_image"]]},
    }


def reevaluate(name: str, out_dir: Path | None = None) -> dict:
    """Re-run the recorded evaluation of zoo model `name`'s shipped weights (after a change to
    the evaluation, not to the model) and rewrite the evaluation fields of its metrics JSON;
    the training fields stay as they were. Returns the updated metrics."""
    from ..paths import weights_dir
    from . import zoo
    from .loading import load_model

    entry = zoo.get(name)
    recorded = entry.metrics()
    if recorded is None:
        raise EdgekitError(
            f"zoo:{name}: no recorded metrics at {entry.metrics_path}; train it first"
        )
    loaded = load_model(f"zoo:{name}")
    metrics = recorded | _evaluation_record(loaded, calibration_split()[1])
    metrics["evaluated"] = f"re-evaluated {time.strftime('%Y-%m-%d', time.gmtime())} on {machine()}"
    out_dir = Path(out_dir) if out_dir is not None else weights_dir()
    write_json(out_dir / f"{name}.json", metrics)
    return metrics


def _zoo_info(entry):
    from .info import ModelInfo

    return ModelInfo(
        name=entry.name,
        task=entry.task,
        degradation=entry.degradation,
        scale=entry.scale,
        source=f"zoo:{entry.name}",
        input_multiple=entry.input_multiple,
    )
