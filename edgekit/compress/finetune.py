"""The one training loop every compression step uses (L1 on degraded/clean pairs).

Held-out PSNR is tracked every `eval_every` steps, with optional early stopping (best weights
restored), an optional distillation target and a progress bar.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..metrics import mean_psnr
from ..models.predict import predict
from ..terminal import training_progress


@dataclass
class TrainResult:
    steps_run: int
    evals: list[tuple[int, float]] = field(default_factory=list)  # (step, held-out PSNR dB)
    best_step: int | None = None
    best_psnr_db: float | None = None
    stopped_early: bool = False
    feature_pairs: list | None = None  # distillation: (student layer, teacher layer) matched

    def to_dict(self) -> dict:
        out = {
            "steps_run": self.steps_run,
            "evals": [[s, round(p, 4)] for s, p in self.evals],
            "best_step": self.best_step,
            "best_psnr_db": None if self.best_psnr_db is None else round(self.best_psnr_db, 4),
            "stopped_early": self.stopped_early,
        }
        if self.feature_pairs:
            out["feature_pairs"] = self.feature_pairs
        return out


def l1_loss(tf):
    def loss(y_true, y_pred):
        return tf.reduce_mean(tf.abs(y_true - y_pred))

    return loss


def distill_loss(tf, alpha: float):
    """y_true carries [clean, teacher output] on the channel axis: L1 to clean + alpha * L1 to teacher."""

    def loss(y_true, y_pred):
        c = tf.shape(y_pred)[-1]
        clean, teacher = y_true[..., :c], y_true[..., c:]
        return tf.reduce_mean(tf.abs(clean - y_pred)) + alpha * tf.reduce_mean(
            tf.abs(teacher - y_pred)
        )

    return loss


def fit_pairs(
    model,
    xs: np.ndarray,
    ys: np.ndarray,
    *,
    steps: int,
    lr: float,
    batch: int,
    val: tuple[np.ndarray, np.ndarray] | None = None,
    eval_every: int | None = None,
    patience: int | None = None,
    restore_best: bool = True,
    teacher_ys: np.ndarray | None = None,
    alpha: float = 0.0,
    seed: int = 0,
    callbacks: tuple = (),
    progress: bool = True,
    description: str = "fine-tune",
    cosine: bool = False,
) -> TrainResult:
    """Train `model` in place with Adam on L1 (plus alpha * L1 to `teacher_ys` when given).

    Runs `steps` optimiser steps rounded up to a multiple of `eval_every` (default: steps / 10).
    With `val`, held-out PSNR is measured before training and every `eval_every` steps; with
    `restore_best` the best weights seen are put back at the end (never worse than the start);
    `patience` stops after that many evaluations without improvement. `cosine` decays the
    learning rate to 5 % of `lr` over the run (better end points for from-scratch training).
    """
    from ..tfcompat import import_tf

    tf, keras = import_tf()
    keras.utils.set_random_seed(seed)
    eval_every = eval_every or max(1, math.ceil(steps / 10))
    epochs = max(1, math.ceil(steps / eval_every))
    target = ys if teacher_ys is None else np.concatenate([ys, teacher_ys], axis=-1)
    ds = (
        tf.data.Dataset.from_tensor_slices((xs, target))
        .shuffle(len(xs), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch, drop_remainder=True)
    )
    loss = l1_loss(tf) if teacher_ys is None else distill_loss(tf, alpha)
    if cosine:
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=epochs * eval_every, alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr), loss=loss)
    result = TrainResult(steps_run=0)
    state = {"best": -np.inf, "weights": None, "bad": 0}

    def evaluate(step: int) -> float | None:
        if val is None:
            return None
        p = mean_psnr(predict(model, val[0]), val[1])
        result.evals.append((step, p))
        if p > state["best"]:
            state.update(best=p, bad=0)
            result.best_step, result.best_psnr_db = step, p
            if restore_best:
                state["weights"] = [w.copy() for w in model.get_weights()]
        else:
            state["bad"] += 1
        return p

    with training_progress(progress) as bar:
        first = evaluate(0)
        task = bar.add_task(description, total=epochs * eval_every, info=_info(first, first))

        class _Track(keras.callbacks.Callback):
            def on_train_batch_end(self, batch_idx, logs=None):
                result.steps_run += 1
                bar.advance(task)

            def on_epoch_end(self, epoch, logs=None):
                p = evaluate(result.steps_run)
                bar.update(task, info=_info(p, state["best"], (logs or {}).get("loss")))
                if patience is not None and state["bad"] >= patience:
                    result.stopped_early = True
                    self.model.stop_training = True

        model.fit(
            ds,
            epochs=epochs,
            steps_per_epoch=eval_every,
            verbose=0,
            callbacks=[_Track(), *callbacks],
        )
    if restore_best and state["weights"] is not None:
        model.set_weights(state["weights"])
    return result


def _info(p, best, loss=None) -> str:
    parts = []
    if loss is not None:
        parts.append(f"loss {loss:.4f}")
    if p is not None:
        parts.append(f"PSNR {p:.2f} dB (best {best:.2f})")
    return "  ".join(parts)
