"""One artifact's scores and report crops, taken photo by photo: each whole output is dropped once scored.

The harness used to keep every artifact's outputs of every photo until all were scored (144 MB
of float32 per output of a 12-megapixel photo); here the outputs come from an iterator, one photo
at a time, and only the numbers and the small crops are kept.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from . import crops as _crops
from .scoring import psnr_vs, scores


def score_outputs(
    outputs: Iterable[np.ndarray], cleans: list[np.ndarray], refs: list | None, crop_ctx: dict
) -> dict:
    """PSNR/SSIM per photo against the clean photos, PSNR per photo against the float reference
    (`refs`, None: not scored) and the report crops of the shown photos, from `outputs` (one
    whole output per clean photo, in order)."""
    p: list[float] = []
    s: list[float] = []
    vs: list[float] = []
    shown = []
    # no zip/enumerate over `outputs`: their reused result tuple would keep the previous photo's
    # output alive while the iterator makes the next one
    it = iter(outputs)
    for k, clean in enumerate(cleans):
        y = next(it, None)
        if y is None:
            raise ValueError(f"score_outputs: {k} outputs for {len(cleans)} photos")
        pk, sk = scores([y], [clean])
        p.extend(pk)
        s.extend(sk)
        ref = None if refs is None else refs[k]
        if ref is not None:
            vs.extend(psnr_vs([y], [ref]))
        if k < len(crop_ctx["photos"]):
            shown.append(_crops.photo_crops(y, crop_ctx, k, ref))
        del y  # before the iterator makes the next photo's output
    if next(it, None) is not None:
        raise ValueError(f"score_outputs: more outputs than the {len(cleans)} photos")
    return {
        "psnr": p,
        "ssim": s,
        "psnr_vs_reference": vs if refs is not None else None,
        "crops": shown,
    }
