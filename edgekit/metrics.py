"""Image quality metrics (PSNR, SSIM) in plain numpy: the one implementation, with the one cap.

A leaf module (numpy only, no TensorFlow, no scipy): models, compress, export and bench all score
with it, and it can run on a device.
"""

from __future__ import annotations

import numpy as np

# PSNR reported for bit-identical outputs (JSON has no infinity); every capped figure uses it.
PSNR_CAP_DB = 200.0


def psnr(
    a: np.ndarray,
    b: np.ndarray,
    data_range: float = 1.0,
    border: int = 0,
    clip: bool = False,
    clip_b: bool = False,
) -> float:
    """Peak signal-to-noise ratio in dB over all pixels and channels. Identical inputs -> inf.
    `clip` / `clip_b`: clip `a` / `b` to [0, data_range] first (band by band: no full-size copy)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"psnr: shapes differ {a.shape} vs {b.shape}")
    if border:
        a = a[..., border:-border, border:-border, :]
        b = b[..., border:-border, border:-border, :]
    if a.size == 0:
        raise ValueError("psnr: empty images")
    # in float64, a band of rows at a time: a 12-megapixel photo needs no full-size copies
    sq, rows = 0.0, a.reshape(-1, *a.shape[-2:]) if a.ndim >= 3 else a[None]
    brows = b.reshape(rows.shape)
    band = _band_rows(rows.shape[1:])
    for i in range(0, rows.shape[0], band):
        x = _f64(rows[i : i + band], clip, data_range)
        d = x - _f64(brows[i : i + band], clip_b, data_range)
        sq += float(np.vdot(d, d))
    mse = sq / a.size
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(data_range**2 / mse))


def capped(db: float) -> float:
    """A PSNR figure limited to PSNR_CAP_DB (inf, from identical images, becomes the cap)."""
    return PSNR_CAP_DB if not np.isfinite(db) else min(float(db), PSNR_CAP_DB)


def psnr_capped(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    """PSNR over all of `a` and `b` (a batch counts as one signal), capped at PSNR_CAP_DB."""
    return capped(psnr(a, b, data_range))


def psnr_per_image(outputs, cleans) -> list[float]:
    """Capped PSNR of each output (clipped to [0, 1], as a saved image would be) against its clean image."""
    return [capped(psnr(y, c, clip=True)) for y, c in zip(outputs, cleans, strict=True)]


def mean_psnr(outputs, cleans) -> float:
    """Mean over images of psnr_per_image."""
    return float(np.mean(psnr_per_image(outputs, cleans)))


_BAND = 256  # rows per band in the metrics (bounded memory on big photos) ...
_BAND_VALUES = 1 << 18  # ... and about this many values per band (wide photos: fewer rows)


def _band_rows(row_shape) -> int:
    """Rows per band: 256, fewer for rows of more than 1024 values (341 RGB pixels; at least 16),
    so the float64 band temporaries (SSIM's 11-tap windows copy a band 11 times, twice) stay
    a few tens of MB on any photo instead of growing with its width (4000 px wide: ~0.5 GB)."""
    return max(16, min(_BAND, _BAND_VALUES // max(1, int(np.prod(row_shape)))))


def _f64(x: np.ndarray, clip: bool, data_range: float) -> np.ndarray:
    """A band as float64, clipped to [0, data_range] when asked (clipping is exact either way)."""
    x = x.astype(np.float64)
    return np.clip(x, 0.0, data_range, out=x) if clip else x


def _gaussian_1d(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    k = np.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def _filter_valid(img: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of (H, W) or (H, W, C) with a 1-D kernel along H then W."""
    from numpy.lib.stride_tricks import sliding_window_view

    rows = np.tensordot(sliding_window_view(img, k.size, axis=0), k, axes=([-1], [0]))
    return np.tensordot(sliding_window_view(rows, k.size, axis=1), k, axes=([-1], [0]))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0, clip: bool = False) -> float:
    """Structural similarity (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5), mean over channels.

    Accepts (H, W), (H, W, C) or a batch (N, H, W, C), averaged over the batch. `clip`: clip `a`
    to [0, data_range] first (band by band: no full-size copy).
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"ssim: shapes differ {a.shape} vs {b.shape}")
    if a.ndim == 4:
        return float(np.mean([ssim(x, y, data_range, clip) for x, y in zip(a, b, strict=True)]))
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    k = _gaussian_1d()
    if min(a.shape[:2]) < k.size:
        raise ValueError(f"ssim: image {a.shape[:2]} is smaller than the 11x11 window")
    # The SSIM map over bands of output rows (each band reads k.size - 1 extra input rows): the
    # same values as one pass, without full-size float64 temporaries.
    out_rows = a.shape[0] - k.size + 1
    band = _band_rows(a.shape[1:])
    total, count = 0.0, 0
    for r in range(0, out_rows, band):
        n = min(band, out_rows - r)
        sl = slice(r, r + n + k.size - 1)
        m = _ssim_map(_f64(a[sl], clip, data_range), b[sl].astype(np.float64), k, data_range)
        total += float(m.sum())
        count += m.size
    return total / count


def _ssim_map(a: np.ndarray, b: np.ndarray, k: np.ndarray, data_range: float) -> np.ndarray:
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    mu_a, mu_b = _filter_valid(a, k), _filter_valid(b, k)
    saa = _filter_valid(a * a, k) - mu_a**2
    sbb = _filter_valid(b * b, k) - mu_b**2
    sab = _filter_valid(a * b, k) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * sab + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2)
    return num / den
