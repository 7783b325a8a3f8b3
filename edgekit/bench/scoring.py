"""Scoring: per-image PSNR/SSIM of whole outputs against the clean photos and the float reference.

With edgekit.metrics: the one implementation, the one cap.
"""

from __future__ import annotations

import numpy as np

from ..metrics import psnr_per_image, ssim


def scores(outs: list[np.ndarray], cleans: list[np.ndarray]) -> tuple[list[float], list[float]]:
    """(PSNR per image, SSIM per image), outputs clipped to [0, 1] as a saved image would be."""
    ss = [float(ssim(np.clip(y, 0.0, 1.0), c)) for y, c in zip(outs, cleans, strict=True)]
    return psnr_per_image(outs, cleans), ss


def psnr_vs(outs: list[np.ndarray], refs: list[np.ndarray]) -> list[float]:
    """PSNR per image of outputs against reference outputs, both clipped to [0, 1]."""
    return psnr_per_image(outs, [np.clip(r, 0.0, 1.0) for r in refs])
