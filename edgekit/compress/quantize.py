"""Quantization-aware training with tfmot, covering the layers restoration nets use.

tfmot's default 8-bit registry quantizes Conv2D, Conv2DTranspose, Dense, DepthwiseConv2D, Add,
Concatenate, ReLU (also ReLU(max_value), the zoo's output clip), pooling and nearest upsampling,
but refuses Subtract, PReLU, Multiply, standalone BatchNormalization and custom layers such as
edgekit's DepthToSpace (USERS.md pain 2). Each gets a QuantizeConfig here, chosen to match what
the TFLite int8 kernels do:

    Subtract, Multiply, Maximum, Minimum, Average, BatchNormalization, ELU
                 -> output fake-quant (8-bit asymmetric moving-average range), no weights
    PReLU        -> alpha fake-quantized (8-bit per-tensor, like TFLite's int8 PRELU) + output
    DepthToSpace, ZeroPadding2D, Cropping2D, MaxPooling2D
                 -> no fake-quant: the int8 kernel reuses the input's scale, so a separate range
                    would only add a requantize step

A layer neither list covers (e.g. a Lambda) is refused with its name and class.
"""

from __future__ import annotations

from functools import cache

from ..config import QatStep
from ..errors import EdgekitError
from .steps import step_handler

OUTPUT_QUANTIZED = (
    "Subtract",
    "Multiply",
    "Maximum",
    "Minimum",
    "Average",
    "BatchNormalization",
    "ELU",
)
PASS_THROUGH = ("DepthToSpace", "ZeroPadding2D", "Cropping2D", "MaxPooling2D", "Dropout")


def _tfmot():
    from ..tfcompat import import_tf

    import_tf()
    import tensorflow_model_optimization as tfmot

    return tfmot


@cache
def quantize_configs() -> dict[str, type]:
    """The QuantizeConfig classes (built lazily so importing this module needs no TensorFlow)."""
    tfmot = _tfmot()
    qk = tfmot.quantization.keras
    quantizers = qk.quantizers

    def act_quantizer():
        return quantizers.MovingAverageQuantizer(
            num_bits=8, per_axis=False, symmetric=False, narrow_range=False
        )

    class OutputQuantizeConfig(qk.QuantizeConfig):
        """No weights; fake-quantize the layer's output (what TFLite's int8 kernel produces)."""

        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [act_quantizer()]

        def get_config(self):
            return {}

    class PassThroughQuantizeConfig(OutputQuantizeConfig):
        """Nothing fake-quantized: the int8 kernel keeps its input's scale and zero point."""

        def get_output_quantizers(self, layer):
            return []

    class PReLUQuantizeConfig(OutputQuantizeConfig):
        """PReLU: alpha as 8-bit per-tensor weights, output fake-quantized."""

        def get_weights_and_quantizers(self, layer):
            return [
                (
                    layer.alpha,
                    quantizers.LastValueQuantizer(
                        num_bits=8, per_axis=False, symmetric=True, narrow_range=False
                    ),
                )
            ]

        def set_quantize_weights(self, layer, quantize_weights):
            layer.alpha = quantize_weights[0]

    return {
        "OutputQuantizeConfig": OutputQuantizeConfig,
        "PassThroughQuantizeConfig": PassThroughQuantizeConfig,
        "PReLUQuantizeConfig": PReLUQuantizeConfig,
    }


def _scope_objects() -> dict:
    from ..models.layers import custom_objects

    return {**quantize_configs(), **custom_objects()}


def config_for(layer):
    """The QuantizeConfig edgekit uses for `layer`, None for tfmot's default, or raise."""
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as reg,
    )

    cls = type(layer).__name__
    configs = quantize_configs()
    if cls == "PReLU":
        return configs["PReLUQuantizeConfig"]()
    if cls in OUTPUT_QUANTIZED:
        return configs["OutputQuantizeConfig"]()
    if cls in PASS_THROUGH:
        return configs["PassThroughQuantizeConfig"]()
    if reg.Default8BitQuantizeRegistry().supports(layer):
        return None
    raise EdgekitError(
        f"qat: layer '{layer.name}' ({cls}) cannot be quantized: neither tfmot nor edgekit has an int8 "
        "scheme for it; replace it with built-in layers (Conv2D, Add, Subtract, Concatenate, PReLU, "
        "ReLU, DepthToSpace ...) or drop the qat step (the int8 export then uses PTQ)"
    )


def quantize_model(model):
    """Annotate every layer (tfmot default or an edgekit QuantizeConfig) and apply: returns the
    fake-quant tf_keras model, ready to train. The input model is not modified."""
    from ..tfcompat import import_tf

    _, keras = import_tf()
    qk = _tfmot().quantization.keras

    for layer in model.layers:  # refuse early, naming the first unsupported layer
        if type(layer).__name__ != "InputLayer":
            config_for(layer)

    def annotate(layer):
        return qk.quantize_annotate_layer(layer, quantize_config=config_for(layer))

    with qk.quantize_scope(_scope_objects()):
        annotated = keras.models.clone_model(model, clone_function=annotate)
        annotated.set_weights(model.get_weights())
        try:
            return qk.quantize_apply(annotated)
        except (ValueError, TypeError, RuntimeError) as exc:
            raise EdgekitError(
                f"qat: tfmot could not quantize model '{model.name}': {exc}"
            ) from None


def calibrate_ranges(qmodel, float_model, inputs, batch: int = 4) -> list:
    """Start every activation/output range of a fresh QAT model at what the float model produces.

    tfmot's moving-average quantizers start at [-6, 6] and move with decay 0.999, so a short
    fine-tune would train (and export) with an int8 step 10x too coarse for [0, 1] images, and
    the input quantizer starts at [0, 0] (everything is 0 until the first training batch); a
    calibration pass fixes both. Returns the range variables it set (see freeze_ranges).
    """
    import numpy as np

    from ..tfcompat import import_tf

    _, keras = import_tf()
    layers = [layer for layer in float_model.layers if type(layer).__name__ != "InputLayer"]
    probe = keras.Model(float_model.inputs, [layer.output for layer in layers])
    lo = {layer.name: np.inf for layer in layers}
    hi = {layer.name: -np.inf for layer in layers}
    for i in range(0, len(inputs), batch):
        outs = probe(inputs[i : i + batch], training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for layer, o in zip(layers, outs, strict=True):
            o = np.asarray(o)
            lo[layer.name] = min(lo[layer.name], float(o.min()))
            hi[layer.name] = max(hi[layer.name], float(o.max()))
    ranges = []
    in_lo, in_hi = float(np.min(inputs)), float(np.max(inputs))
    for wrapper in qmodel.layers:
        if type(wrapper).__name__ == "QuantizeLayer":  # the model input: starts at [0, 0]
            for var in wrapper.weights:
                base = var.name.split("/")[-1].split(":")[0]
                if base.endswith("_min"):
                    var.assign(min(in_lo, 0.0))
                    ranges.append(var)
                elif base.endswith("_max"):
                    var.assign(max(in_hi, 1e-3))
                    ranges.append(var)
        inner = getattr(wrapper, "layer", None)
        if inner is None or inner.name not in lo:
            continue
        for var in wrapper.weights:
            base = var.name.split("/")[-1].split(":")[0]
            if base in ("post_activation_min", "output_min"):
                var.assign(min(lo[inner.name], 0.0))
                ranges.append(var)
            elif base in ("post_activation_max", "output_max"):
                var.assign(max(hi[inner.name], 1e-3))
                ranges.append(var)
    return ranges


def freeze_batchnorm(qmodel) -> list[str]:
    """Run every BatchNormalization of a QAT model in inference mode (moving statistics, gamma
    and beta fixed), the usual QAT practice: in training mode BN normalises with each batch's
    statistics, so the weights learn to fit a normalisation the int8 model never applies
    (a tiny Conv-BN-PReLU-Subtract net lost 0.22 dB in int8 that way). Returns their names."""
    names = []
    for wrapper in qmodel.layers:
        inner = getattr(wrapper, "layer", None)
        if inner is not None and type(inner).__name__ == "BatchNormalization":
            inner.trainable = False  # tf_keras: a non-trainable BN runs in inference mode
            names.append(inner.name)
    return names


def freeze_ranges(range_vars):
    """A Keras callback that puts the calibrated activation ranges back after every training
    batch (the qat step's `ranges: frozen`): the weights train against fixed ranges.

    tfmot's moving-average quantizers drift towards an EMA of *per-batch* min/max, narrower than
    the calibrated range over many tiles. Holding the ranges was meant to keep the outliers PTQ
    keeps; measured on the zoo U-Nets it helps some and hurts others (unet_deblur 0.22 vs 0.15 dB
    int8 drop, unet_demoire 0.04 vs 0.07 dB; benchmarks/RESULTS.md), so it is an option, not
    the default. Weight ranges (per-channel kernel min/max) always follow the weights.
    """
    from ..tfcompat import import_tf

    _, keras = import_tf()
    saved = [(var, var.numpy()) for var in range_vars]

    class _FreezeRanges(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            for var, value in saved:
                var.assign(value)

    return _FreezeRanges()


@step_handler(QatStep)
def run_qat(step, model, ctx):
    """Plan step: fake-quantize and fine-tune on training pairs, keeping the best checkpoint.

    target "float" (default) trains towards the float model's outputs and keeps the checkpoint
    whose held-out outputs are closest to the float model's, starting with the calibrated,
    untrained one: QAT is there to undo quantization error. Fine-tuning towards the clean images
    instead re-learns the task, and on models that generalise weakly (the first unet_deshadow,
    whose float gain was +0.02 dB) that moved the int8 result by up to 1 dB either way.
    """
    from ..models.predict import predict

    xs, ys = ctx.pairs(step.patch, step.steps * step.batch)
    qmodel = quantize_model(model)
    frozen_bn = freeze_batchnorm(qmodel)
    ranges = calibrate_ranges(qmodel, model, xs[:64])
    callbacks = (freeze_ranges(ranges),) if step.ranges == "frozen" else ()
    if step.target == "float":
        ys = predict(model, xs, batch=16)
        val = (ctx.val_x, predict(model, ctx.val_x))
    else:
        val = (ctx.val_x, ctx.val_y)
    result = ctx.fit(step, qmodel, xs, ys, "QAT", val=val, callbacks=callbacks)
    configs = {
        layer.name: type(config_for(layer)).__name__
        if config_for(layer) is not None
        else "tfmot default"
        for layer in model.layers
        if type(layer).__name__ != "InputLayer"
    }
    # params/MACs/size rows describe the float graph under the fake-quant wrappers
    detail = {
        "quantize_configs": configs,
        "ranges": step.ranges,
        "activation_ranges": len(ranges),
        "target": step.target,  # train.evals are PSNR vs this target on the held-out tiles
        "batchnorm_frozen": frozen_bn,
    }
    detail.update(train=result.to_dict(), _stats_model=model)
    return qmodel, detail
