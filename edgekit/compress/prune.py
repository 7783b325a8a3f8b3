"""Magnitude pruning with tfmot: zero the smallest weights while fine-tuning, then strip.

Zeros make the *compressed* artifact smaller (gzip, zip in an app bundle) but not faster on
dense kernels (USERS.md pain 5): report sparsity per layer and gzip'd size, not speed.
`m_by_n="2:4"` keeps 2 of every 4 consecutive weights along the input channels (the layout
sparse tensor cores and XNNPACK's sparse paths expect); tfmot counts the *zeros* instead, so
"m:n" here is passed to tfmot as (n - m, n).

`block=B` zeroes runs of B consecutive input-channel weights together, ranked by their mean
magnitude. tfmot's own `block_size` refuses 4-D conv kernels, so a small subclass of tfmot's
wrapper swaps in a mask rule that pools over input-channel groups; tfmot still owns the
schedule, the mask variables, UpdatePruningStep and strip_pruning. Why blocks: a fp32 kernel
with 50 % scattered zeros gzips only ~1.68x smaller, because the surviving float32 weights are
incompressible and every isolated zero costs gzip a match; runs of zeros are cheaper to code,
and TFLite's sparse weight encoding (export/tflite.py) stores fewer indices.
"""

from __future__ import annotations

import numpy as np

from ..config import PruneMagnitudeStep
from ..errors import EdgekitError
from ..models.stats import kernel_zero_fraction
from .steps import step_handler

PRUNABLE = ("Conv2D", "Conv2DTranspose", "Dense")
M_BY_N_LAYERS = ("Conv2D", "Dense")  # tfmot's m-by-n mask follows the [.., C_in, C_out] layout


def _tfmot():
    from ..tfcompat import import_tf

    import_tf()
    import tensorflow_model_optimization as tfmot

    return tfmot


def kernel_sparsity(model) -> dict[str, float]:
    """Fraction of exactly-zero kernel weights per conv/dense layer."""
    out = {}
    for layer in model.layers:
        if type(layer).__name__ in PRUNABLE + ("DepthwiseConv2D",):
            k = np.asarray(layer.get_weights()[0])
            out[layer.name] = round(float(np.mean(k == 0.0)), 4)
    return out


def m_by_n_ok(kernel: np.ndarray, m: int, n: int) -> bool:
    """True if every block of n consecutive input-channel weights has at most m non-zeros."""
    k = np.moveaxis(np.asarray(kernel), -1, 0)  # (C_out, ..., C_in) as TFLite stores it
    c_in = k.shape[-1]
    if c_in % n:
        return False
    blocks = k.reshape(-1, n)
    return bool(np.all(np.count_nonzero(blocks, axis=1) <= m))


def blocks_ok(kernel: np.ndarray, block: int) -> bool:
    """True if the zeros of `kernel` come in whole runs of `block` consecutive input channels
    (every run is all zero or has no zero at all)."""
    k = np.asarray(kernel)
    c_in = k.shape[-2]
    if c_in % block:
        return False
    runs = np.moveaxis(k, -1, 0).reshape(-1, block) == 0.0
    return bool(np.all(runs.all(axis=1) | ~runs.any(axis=1)))


def _block_wrapper_class(block: int):
    """PruneLowMagnitude whose mask pools |w| over `block` consecutive input channels."""
    from tensorflow_model_optimization.python.core.sparsity.keras import pruning_impl
    from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import (
        PruneLowMagnitude,
    )

    from ..tfcompat import import_tf

    tf, _ = import_tf()

    class _ChannelBlockPruning(pruning_impl.Pruning):
        def _maybe_update_block_mask(self, weights):
            shape = weights.shape.as_list()  # [..., C_in, C_out]
            grouped = shape[:-2] + [shape[-2] // block, block, shape[-1]]
            pooled = tf.reduce_mean(tf.abs(tf.reshape(weights, grouped)), axis=-2)
            threshold, mask = self._update_mask(pooled)
            return threshold, tf.repeat(mask, block, axis=-2)

    class ChannelBlockPrune(PruneLowMagnitude):
        def build(self, input_shape):
            super().build(input_shape)
            self.pruning_obj = _ChannelBlockPruning(
                training_step_fn=lambda: self.pruning_step,
                pruning_vars=self.pruning_vars,
                pruning_schedule=self.pruning_schedule,
                block_size=(1, 1),
                block_pooling_type="AVG",
            )

    return ChannelBlockPrune


def magnitude_prune(
    model,
    *,
    sparsity: float,
    steps: int,
    train_fn,
    schedule: str = "polynomial",
    m_by_n: tuple[int, int] | None = None,
    block: int = 1,
):
    """Wrap every conv/dense layer in tfmot's prune_low_magnitude, run `train_fn(wrapped,
    callbacks)` (which must call fit with the callbacks), strip the wrappers.

    Returns (stripped model, {layer: reason} for layers left dense, {layer: reason} for layers
    pruned weight by weight instead of in blocks). For 2:4, layers whose input channels are not a
    multiple of n (e.g. the first conv on RGB) stay dense; with `block`, such layers are pruned
    unstructured; both are listed.
    """
    from ..models.layers import custom_objects
    from ..tfcompat import import_tf

    _, keras = import_tf()
    tfmot = _tfmot()
    sk = tfmot.sparsity.keras
    freq = max(1, steps // 20)
    if m_by_n is not None or schedule == "constant":
        sched = sk.ConstantSparsity(
            sparsity if m_by_n is None else 0.5, begin_step=0, frequency=freq
        )
    else:
        end = max(freq, (int(0.7 * steps) // freq) * freq)  # last mask update lands on end_step
        sched = sk.PolynomialDecay(
            initial_sparsity=0.0,
            final_sparsity=sparsity,
            begin_step=0,
            end_step=end,
            frequency=freq,
        )
    skipped: dict[str, str] = {}
    unblocked: dict[str, str] = {}
    block_cls = _block_wrapper_class(block) if block > 1 else None

    def wrap(layer):
        cls = type(layer).__name__
        if cls not in PRUNABLE:
            return layer
        if block_cls is not None:
            c_in = layer.get_weights()[0].shape[-2]
            if cls == "Conv2DTranspose":  # its kernel is [.., C_out, C_in]: no runs along C_in
                unblocked[layer.name] = "Conv2DTranspose kernels are [.., C_out, C_in]"
            elif c_in % block:
                unblocked[layer.name] = f"{c_in} input channels, not a multiple of {block}"
            else:
                return block_cls(layer, pruning_schedule=sched)
        if m_by_n is not None:
            if cls not in M_BY_N_LAYERS:
                skipped[layer.name] = f"{cls} kernels have no m:n layout in tfmot"
                return layer
            c_in = layer.get_weights()[0].shape[-2]
            if c_in % m_by_n[1]:
                skipped[layer.name] = f"{c_in} input channels, not a multiple of {m_by_n[1]}"
                return layer
            keep, n = m_by_n
            return sk.prune_low_magnitude(
                layer, pruning_schedule=sched, sparsity_m_by_n=(n - keep, n)
            )
        return sk.prune_low_magnitude(layer, pruning_schedule=sched)

    try:
        with keras.utils.custom_object_scope(custom_objects()):
            wrapped = keras.models.clone_model(model, clone_function=wrap)
    except ValueError as exc:
        raise EdgekitError(
            f"prune_magnitude: tfmot cannot wrap model '{model.name}': {exc}"
        ) from None
    from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import (
        PruneLowMagnitude,
    )

    if not any(isinstance(layer, PruneLowMagnitude) for layer in wrapped.layers):
        raise EdgekitError(
            f"prune_magnitude: model '{model.name}' has no layer to prune "
            f"({', '.join(PRUNABLE)}){'; left dense: ' + str(skipped) if skipped else ''}"
        )
    train_fn(wrapped, [sk.UpdatePruningStep()])
    with keras.utils.custom_object_scope(custom_objects()):
        stripped = sk.strip_pruning(wrapped)
    return stripped, skipped, unblocked


@step_handler(PruneMagnitudeStep)
def run_prune_magnitude(step, model, ctx):
    """Plan step: tfmot magnitude (or m:n) pruning while fine-tuning on training pairs."""

    xs, ys = ctx.pairs(step.patch, step.steps * step.batch)
    result = {}

    def train(wrapped, callbacks):
        result["train"] = ctx.fit(
            step,
            wrapped,
            xs,
            ys,
            "prune",
            restore_best=False,  # an earlier checkpoint would be less sparse
            callbacks=tuple(callbacks),
        )

    pruned, skipped, unblocked = magnitude_prune(
        model,
        sparsity=step.sparsity,
        steps=step.steps,
        train_fn=train,
        schedule=step.schedule,
        m_by_n=step.m_n,
        block=step.block,
    )
    sp = kernel_sparsity(pruned)
    detail = {
        "sparsity": sp,
        "sparsity_target": step.effective_sparsity,
        "sparsity_overall": round(kernel_zero_fraction(pruned), 4),
        "dense_layers": skipped,
        "train": result["train"].to_dict(),
    }
    if step.block > 1:
        detail["block"] = step.block
        detail["unstructured_layers"] = unblocked
        detail["blocks_ok"] = {
            layer.name: blocks_ok(layer.get_weights()[0], step.block)
            for layer in pruned.layers
            if layer.name in sp and layer.name not in unblocked
        }
    if step.m_n:
        m, n = step.m_n
        detail["m_by_n_ok"] = {
            layer.name: m_by_n_ok(layer.get_weights()[0], m, n)
            for layer in pruned.layers
            if layer.name in sp and layer.name not in skipped
        }
    return pruned, detail
