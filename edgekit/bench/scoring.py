"""Scoring: per-image PSNR/SSIM of whole outputs against the clean photos and the float reference.

With edgekit.metrics: the one implementation, the one cap. Clipping happens band by band inside
the metrics, so scoring a 12-megapixel output makes no full-size copy of it.
"""

from __future__ import annotations

import numpy as np

from ..metrics import capped, psnr, psnr_per_image, ssim


def scores(outs: list[np.ndarray], cleans: list[np.ndarray]) -> tuple[list[float], list[float]]:
    """(PSNR per image, SSIM per image), outputs clipped to [0, 1] as a saved image would be."""
    ss = [float(ssim(y, c, clip=True)) for y, c in zip(outs, cleans, strict=True)]
    return psnr_per_image(outs, cleans), ss


def psnr_vs(outs: list[np.ndarray], refs: list[np.ndarray]) -> list[float]:
    """PSNR per image of outputs against reference outputs, both clipped to [0, 1]."""
    return [capped(psnr(y, r, clip=True, clip_b=True)) for y, r in zip(outs, refs, strict=True)]
