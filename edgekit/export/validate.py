"""Format-agnostic validation of a fresh artifact against the Keras model.

An exporter converts to a temporary file, runs it on real (degraded) images through its
runner, and calls `validate_outputs` with the Keras model's outputs on the same images. If the
artifact's PSNR against the Keras output is below the floor for its precision the export fails
with an EdgekitError and the artifact is never written under its final name.

Floors (dB, PSNR of the artifact's output vs the float Keras output over all validation images,
data range = the model's value range). They catch broken artifacts (wrong scales, saturated
activations, a collapsed skip branch), not small quantization losses:

    fp32     60   same math, different kernels: anything lower is a conversion bug
    fp16     45   float16 weights (and possibly activations on a GPU delegate)
    dynamic  35   int8 weights, float activations
    int16x8  38   int16 activations recover nearly all of int8's loss
    int8     30   full-integer; below this the image visibly degrades

Override per export with options["min_psnr_db"] (CLI: --min-psnr 25 for an aggressive
model).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import EdgekitError
from ..metrics import psnr_capped

PSNR_FLOORS_DB: dict[str, float] = {
    "fp32": 60.0,
    "fp16": 45.0,
    "dynamic": 35.0,
    "int16x8": 38.0,
    "int8": 30.0,
}
# What to try when a precision fails its floor.
_HINTS = {
    "fp32": "this is a conversion bug; report it with the model file",
    "fp16": "try fp32, or check for activations beyond the float16 range (65504)",
    "dynamic": "try fp16, or keep sensitive layers in float",
    "int16x8": "try fp16, or quantization-aware training",
    "int8": "try int16x8 or quantization-aware training (QAT), clip the output in-graph, "
    "or calibrate with more representative images",
}


class ValidationFailed(EdgekitError):
    """A fresh artifact disagrees with the Keras model; callers match on the fields, not the text.

    kind: "shape" (output shape differs), "non-finite" (NaN/inf in the output) or "below-floor"
    (PSNR vs Keras under the floor); psnr_db and floor_db are set for "below-floor".
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        label: str,
        precision: str,
        psnr_db: float | None = None,
        floor_db: float | None = None,
    ):
        super().__init__(message)
        self.kind, self.label, self.precision = kind, label, precision
        self.psnr_db, self.floor_db = psnr_db, floor_db


def floor_for(precision: str, options: dict | None = None) -> float:
    """The PSNR floor for a precision; options["min_psnr_db"] overrides it."""
    options = options or {}
    if options.get("min_psnr_db") is not None:
        from ..checks import number

        # NaN would compare False with every PSNR and switch validation off; refuse it.
        return number(options["min_psnr_db"], "option 'min_psnr_db' (dB)", minimum=0.0)
    if precision not in PSNR_FLOORS_DB:
        raise EdgekitError(
            f"no validation floor for precision '{precision}'; expected one of {', '.join(PSNR_FLOORS_DB)}"
        )
    return PSNR_FLOORS_DB[precision]


def validate_outputs(
    run: Callable[[np.ndarray], np.ndarray],
    inputs: np.ndarray,
    reference: np.ndarray,
    *,
    precision: str,
    label: str,
    options: dict | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> dict:
    """Run `run` on `inputs` and compare with `reference` (the Keras outputs).

    label names the artifact in messages (usually its final file name). Returns the manifest's
    `validation` block: {"psnr_vs_keras_db", "min_image_psnr_db", "floor_db", "n_images"}.
    Raises ValidationFailed (an EdgekitError) when an output has the wrong shape, is not finite, or
    is below the floor.
    """
    if inputs is None or len(inputs) == 0:
        raise EdgekitError(
            f"{label}: no validation images; every export is checked against the Keras model "
            "on real images: pass --calib DIR (a folder of photos) or request.val_inputs"
        )
    floor = floor_for(precision, options)
    got = np.asarray(run(np.asarray(inputs, np.float32)), np.float32)
    reference = np.asarray(reference, np.float32)
    if got.shape != reference.shape:
        raise ValidationFailed(
            f"{label}: {precision} output has shape {got.shape} but the Keras model gives "
            f"{reference.shape}; the conversion changed the model's layout or scale",
            kind="shape",
            label=label,
            precision=precision,
        )
    if not np.all(np.isfinite(got)):
        raise ValidationFailed(
            f"{label}: {precision} output is broken: it contains NaN/inf values; {_HINTS.get(precision, '')}",
            kind="non-finite",
            label=label,
            precision=precision,
            floor_db=floor,
        )
    data_range = float(value_range[1] - value_range[0]) or 1.0
    overall = psnr_capped(got, reference, data_range)
    per_image = [psnr_capped(g, r, data_range) for g, r in zip(got, reference, strict=True)]
    if overall < floor:
        raise ValidationFailed(
            f"{label}: {precision} output is broken: {overall:.1f} dB vs the Keras model, floor "
            f"{floor:g} dB; {_HINTS.get(precision, 'try a higher precision')} "
            "(or lower the floor: --min-psnr, option min_psnr_db)",
            kind="below-floor",
            label=label,
            precision=precision,
            psnr_db=overall,
            floor_db=floor,
        )
    return {
        "psnr_vs_keras_db": round(overall, 3),
        "min_image_psnr_db": round(min(per_image), 3),
        "floor_db": floor,
        "n_images": int(len(inputs)),
        "max_abs_diff": float(np.max(np.abs(got - reference))),
    }
