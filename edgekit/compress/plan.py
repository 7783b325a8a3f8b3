"""run_plan: apply a Plan's steps to a model, measuring each step's effect.

Every step gets the same data: (degraded, clean) training pairs cut from the calibration images
that are not held out, and deterministic held-out tiles for PSNR. Each step produces one row:
parameters, MACs per output pixel, float32 size and gzip'd weight size, held-out PSNR vs clean
and vs the float model that entered the plan, before and after, plus step-specific detail
(channels per layer, sparsity per layer, training curve).
"""

from __future__ import annotations

import dataclasses
import gzip
import time
from dataclasses import dataclass, field

import numpy as np

from ..config import Plan, load_plan
from ..data.degradations import Degradation, parse
from ..data.images import Image, split_holdout
from ..data.patches import degraded_tiles, image_scale_pairs, make_pairs
from ..errors import EdgekitError
from ..metrics import mean_psnr
from ..models.info import LoadedModel
from ..models.predict import predict
from .steps import handler_for

__all__ = ["run_plan", "load_plan", "prepare", "StepContext"]

MAX_PAIRS = 2048  # training pairs held in memory per step (recycled when steps*batch exceeds it)


@dataclass
class StepContext:
    """What a step may use. `teacher` is the float model that entered the plan."""

    teacher: object
    info: object
    degradation: Degradation
    train_images: list[Image]
    val_x: np.ndarray
    val_y: np.ndarray
    teacher_val: np.ndarray
    seed: int
    progress: bool
    index: int = 0
    _pairs: dict = field(default_factory=dict)

    def pairs(self, patch: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        count = int(min(max(count, 64), MAX_PAIRS))
        key = (patch, count)
        if key not in self._pairs:
            self._pairs.clear()
            seed = self.seed * 101 + 17
            if self.degradation.image_scale:
                # shadows/moire: patches cut from whole degraded photos, as the model will see them
                self._pairs[key] = image_scale_pairs(
                    self.train_images,
                    self.degradation,
                    patch,
                    count,
                    seed,
                    per_chunk=min(64, count),
                )
            else:
                self._pairs[key] = make_pairs(
                    self.train_images, self.degradation, patch, count, seed=seed
                )
        return self._pairs[key]

    def label(self, step) -> str:
        return f"step {self.index} ({step.kind})"

    def fit(self, step, model, xs, ys, what: str, **kw):
        """edgekit.compress.finetune.fit_pairs with the step's budget (steps, lr, batch), the
        held-out tiles (unless `val` is given), this step's seed and the plan's progress setting."""
        from .finetune import fit_pairs

        kw.setdefault("val", (self.val_x, self.val_y))
        return fit_pairs(
            model,
            xs,
            ys,
            steps=step.steps,
            lr=step.lr,
            batch=step.batch,
            seed=self.seed + self.index,
            progress=self.progress,
            description=f"{self.label(step)}: {what}",
            **kw,
        )


def _model_stats(model) -> dict:
    from ..models.stats import count_params, macs_per_pixel

    weights = model.get_weights()
    raw = b"".join(np.asarray(w, np.float32).tobytes() for w in weights)
    return {
        "params": int(count_params(model)),
        "macs_per_pixel": float(macs_per_pixel(model)),
        "size_bytes": len(raw),  # float32 weights
        "gzip_bytes": len(gzip.compress(raw, 6)),  # what zeros buy once the artifact is compressed
    }


def _quality(model, ctx: StepContext) -> dict:
    out = predict(model, ctx.val_x)
    return {
        "psnr_db": round(mean_psnr(out, ctx.val_y), 4),
        "psnr_vs_float_db": round(mean_psnr(out, ctx.teacher_val), 4),
    }


def _val_tile(images: list[Image], scale: int, multiple: int) -> int:
    smallest = min(min(im.shape) for im in images) // scale
    tile = min(96, smallest)
    step = max(8, multiple)
    tile -= tile % step
    return tile


def prepare(
    loaded: LoadedModel, images: list[Image], degradation, *, seed: int, progress: bool
) -> StepContext:
    """Split the calibration images and build the held-out set; errors say what is missing."""
    if degradation is None:
        degradation = loaded.info.degradation
        if degradation is None:
            raise EdgekitError(
                f"model '{loaded.info.name}': no degradation known for training pairs; pass --degradation, "
                "e.g. noise:sigma=25"
            )
    deg = parse(degradation) if isinstance(degradation, str) else degradation
    if len(images) < 2:
        raise EdgekitError(
            f"too little training data: {len(images)} calibration image(s); compression steps need at "
            "least 2 (one is held out to measure PSNR); add photos to the --calib folder"
        )
    train, held = split_holdout(images)
    if not held:
        train, held = train[:-1], train[-1:]
    multiple = max(1, int(loaded.info.input_multiple))
    tile = _val_tile(held, deg.scale, multiple)
    if tile < 16:
        raise EdgekitError(
            f"too little training data: held-out image(s) {', '.join(im.name for im in held)} are too small "
            f"for a {16 * deg.scale}x{16 * deg.scale} evaluation tile; use larger calibration photos"
        )
    vx, vy = degraded_tiles(held, deg, (tile, tile), per_image=2, seed=seed + 7)
    teacher_val = predict(loaded.model, vx)
    return StepContext(loaded.model, loaded.info, deg, train, vx, vy, teacher_val, seed, progress)


def _check_pairs(step, ctx: StepContext) -> None:
    need = step.patch * ctx.degradation.scale
    if not any(min(im.shape) >= need for im in ctx.train_images):
        raise EdgekitError(
            f"{ctx.label(step)}: too little training data: no training image is at least {need}x{need} "
            f"pixels (patch {step.patch} x scale {ctx.degradation.scale}); use larger photos or a smaller "
            "'patch'"
        )


def run_plan(
    loaded: LoadedModel,
    plan: Plan,
    *,
    calib_images: list[Image],
    degradation: Degradation | str | None = None,
    progress: bool = True,
) -> tuple[LoadedModel, list[dict]]:
    """Apply `plan` to `loaded` (which is not modified) and return (compressed model, step rows).

    degradation: spec or Degradation for the training pairs; None = the model's own.
    Each row: step, kind, config, params/macs_per_pixel/size_bytes/gzip_bytes/psnr_db/
    psnr_vs_float_db with _before and _after suffixes, seconds, and step detail (channels,
    sparsity, train curve). The returned model's info.extra carries the plan (a QAT model's
    fake-quant ranges need nothing more: the int8 converter reads them from the graph).
    """
    if not plan.steps:
        return loaded, []
    ctx = prepare(loaded, calib_images, degradation, seed=plan.seed, progress=progress)
    model = _copy_model(loaded.model)
    rows = []
    before = {**_model_stats(model), **_quality(model, ctx)}
    for i, step in enumerate(plan.steps):
        ctx.index = i
        if "training_pairs" in step.needs:
            _check_pairs(step, ctx)
        t0 = time.perf_counter()
        model, detail = handler_for(step)(step, model, ctx)
        seconds = time.perf_counter() - t0
        stats_model = detail.pop("_stats_model", model)
        after = {**_model_stats(stats_model), **_quality(model, ctx)}
        config = {"kind": step.kind, **step.model_dump(mode="json", exclude={"kind"})}
        row = {"step": i, "kind": step.kind, "config": config}
        row.update({f"{k}_before": v for k, v in before.items()})
        row.update({f"{k}_after": v for k, v in after.items()})
        row["seconds"] = round(seconds, 2)
        row.update(detail)
        rows.append(row)
        before = after
    extra = dict(loaded.info.extra or {})
    extra["plan"] = plan.to_dict()
    info = dataclasses.replace(loaded.info, extra=extra)
    return LoadedModel(model=model, info=info), rows


def _copy_model(model):
    """An independent copy (same graph, same weights) so the caller's model stays untouched."""
    from ..models.layers import custom_objects
    from ..tfcompat import import_tf

    _, keras = import_tf()
    try:
        with keras.utils.custom_object_scope(custom_objects()):
            clone = keras.models.clone_model(model)
    except Exception as exc:  # noqa: BLE001 - any model Keras cannot re-create from its config
        raise EdgekitError(
            f"model '{model.name}': cannot be rebuilt for compression ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:160]}); compression needs a functional or Sequential tf_keras "
            "model (.keras/.h5), not a wrapped SavedModel or a subclassed model"
        ) from None
    clone.set_weights(model.get_weights())
    return clone
