"""Size and cost of a Keras model: parameters and multiply-accumulates per output pixel."""

from __future__ import annotations

import math


def count_params(model) -> int:
    """Number of weights (trainable and not, e.g. BatchNorm statistics) in a tf_keras model."""
    return int(sum(int(math.prod(w.shape)) for w in model.weights))


def _layer_macs(layer) -> int:
    """MACs of one layer at the static shapes it was built with (0 for element-wise layers)."""
    name = type(layer).__name__
    if not hasattr(layer, "output_shape"):
        return 0
    try:
        out = layer.output_shape
        inp = layer.input_shape
    except (AttributeError, RuntimeError):
        return 0
    if isinstance(out, list) or isinstance(inp, list):
        return 0
    if name == "Conv2D":
        kh, kw = layer.kernel_size
        cin = inp[-1] // max(1, getattr(layer, "groups", 1))
        return kh * kw * cin * out[-1] * out[1] * out[2]
    if name == "Conv2DTranspose":
        kh, kw = layer.kernel_size
        return kh * kw * inp[-1] * out[-1] * inp[1] * inp[2]
    if name == "DepthwiseConv2D":
        kh, kw = layer.kernel_size
        return kh * kw * out[-1] * out[1] * out[2]
    if name == "SeparableConv2D":
        kh, kw = layer.kernel_size
        depth = kh * kw * inp[-1] * layer.depth_multiplier * out[1] * out[2]
        return depth + inp[-1] * layer.depth_multiplier * out[-1] * out[1] * out[2]
    if name == "Dense":
        spatial = math.prod(d for d in out[1:-1] if d) if len(out) > 2 else 1
        return inp[-1] * out[-1] * spatial
    return 0


def _walk(model):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from _walk(layer)
        else:
            yield layer


def macs_per_pixel(model, probe: int = 48) -> float:
    """Multiply-accumulates per OUTPUT pixel (per spatial position of the output, all channels).

    Counts Conv2D, Conv2DTranspose, depthwise/separable convs and Dense; element-wise layers
    (activations, Add, BatchNorm, PReLU) are not MACs. The model is rebuilt at a fixed
    probe x probe input (a multiple of 4 and of 16, so U-Nets and pixel shuffles divide evenly;
    twice or four times that for deeper U-Nets) and the total divided by the output's H*W. For SR models that makes the figure per high-resolution
    pixel. Returns nan for a model that cannot be rebuilt at a fixed size (e.g. a wrapped
    SavedModel).
    """
    from ..tfcompat import import_tf
    from .layers import custom_objects

    _, keras = import_tf()
    shape = model.inputs[0].shape
    clone = None
    # a deeper U-Net needs a multiple of 32 (or more): try 1x, 2x, 4x the probe
    for size in (probe, 2 * probe, 4 * probe):
        hw = [d if d is not None else size for d in shape[1:3]]
        try:
            with keras.utils.custom_object_scope(custom_objects()):
                clone = keras.models.clone_model(
                    model, input_tensors=keras.Input(batch_shape=(1, hw[0], hw[1], shape[-1]))
                )
            break
        except Exception:  # noqa: BLE001 - any model we cannot rebuild simply has no MAC figure
            continue
    if clone is None:
        return float("nan")
    total = sum(_layer_macs(layer) for layer in _walk(clone))
    out = clone.outputs[0].shape
    return float(total) / float(out[1] * out[2])


KERNEL_LAYERS = ("Conv2D", "Conv2DTranspose", "DepthwiseConv2D", "Dense")


def kernel_zero_fraction(model) -> float:
    """Fraction of exactly-zero weights over every conv/dense kernel (what magnitude pruning left)."""
    import numpy as np

    total = zeros = 0
    for layer in model.layers:
        if type(layer).__name__ in KERNEL_LAYERS and layer.get_weights():
            k = np.asarray(layer.get_weights()[0])
            total += k.size
            zeros += int(np.count_nonzero(k == 0.0))
    return zeros / total if total else 0.0
