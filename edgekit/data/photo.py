"""Read a user's photo as stored pixels (8 or 16 bits, alpha kept) and write the restored PNG.

What `edgekit run` does with each kind of input (README, "Run and bundle"):
- EXIF orientation is applied first, so the output is upright as every viewer shows the input.
- RGB, palette, CMYK, YCbCr: restored as 8-bit RGB.
- Grey (L, 1-bit): the grey is fed to an RGB model on all three channels; the output is saved
  grey (the mean of the three restored channels). 16-bit grey (I;16) stays 16-bit.
- With alpha (RGBA, LA, palette with transparency): the colour is restored, the alpha channel is
  kept unchanged (resized with the image for super-resolution) and saved.
- 32-bit integer and float grey (TIFF): scaled by the file's maximum into [0, 1], saved 16-bit.
Pillow reads 16-bit *colour* PNGs at 8 bits per channel, so those are restored at 8 bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import EdgekitError

_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


@dataclass
class Photo:
    path: Path
    pixels: np.ndarray  # (H, W, 3) uint8/uint16 RGB, or (H, W, 1) for grey
    alpha: np.ndarray | None  # (H, W) in the same dtype, or None
    mode: str  # the file's Pillow mode, for messages

    @property
    def grey(self) -> bool:
        return self.pixels.shape[2] == 1

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels.shape[:2]


def _open(path: Path, *, header_only: bool = False):
    """The EXIF-upright image (fully decoded), or with header_only just check it opens."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        if header_only:
            with Image.open(path) as im:
                im.verify()
            return None
        im = Image.open(path)
        im.load()
        return ImageOps.exif_transpose(im)
    except FileNotFoundError:
        raise EdgekitError(f"{path}: image file not found") from None
    except Image.DecompressionBombError as exc:
        raise EdgekitError(f"{path}: image too large to open safely ({exc})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise EdgekitError(
            f"{path}: not a readable image ({exc.__class__.__name__}: {exc}); remove it or "
            "replace it with a PNG/JPEG file"
        ) from None


def check_readable(path: Path) -> None:
    """Cheap check that `path` is an image Pillow can identify (header only)."""
    _open(path, header_only=True)


def read_photo(path: str | Path) -> Photo:
    """The photo's pixels as stored (see the module docstring for every mode)."""
    path = Path(path)
    im = _open(path)
    mode = im.mode
    alpha = None
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        grey = np.asarray(im, dtype=np.uint16)
        return Photo(path, grey[..., None].copy(), None, mode)
    if mode in ("I", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = max(1.0, float(a.max())) if mode == "F" else (65535.0 if a.max() > 255 else 255.0)
        a = np.round(np.clip(a / top, 0.0, 1.0) * 65535.0).astype(np.uint16)
        return Photo(path, a[..., None], None, mode)
    if mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    elif mode == "PA":
        im = im.convert("RGBA")
    if im.mode in _ALPHA_MODES:
        alpha = np.asarray(im.getchannel("A"), dtype=np.uint8).copy()
        im = im.convert("LA" if im.mode in ("LA", "La") else "RGBA")
        im = im.convert("L" if im.mode == "LA" else "RGB")
    if im.mode in ("1", "L"):
        grey = np.asarray(im.convert("L"), dtype=np.uint8)
        return Photo(path, grey[..., None].copy(), alpha, mode)
    rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return Photo(path, rgb.copy(), alpha, mode)


def resize_alpha(alpha: np.ndarray, shape_hw: tuple[int, int]) -> np.ndarray:
    """The alpha channel at another size (super-resolution), bicubic like the image viewers."""
    from PIL import Image

    if alpha.shape == tuple(shape_hw):
        return alpha
    im = Image.fromarray(alpha)
    return np.asarray(im.resize((shape_hw[1], shape_hw[0]), Image.Resampling.BICUBIC))


def write_png(path: str | Path, pixels: np.ndarray, alpha: np.ndarray | None = None) -> Path:
    """Write (H, W, 3|1) uint8/uint16 pixels (+ alpha) as a PNG, atomically."""
    from PIL import Image

    from ..atomic import atomic_path

    px = np.asarray(pixels)
    if px.shape[2] == 1:
        px = px[..., 0]
        if px.dtype == np.uint16:
            im = Image.fromarray(px.astype(np.uint16))  # mode I;16
        else:
            im = Image.fromarray(px.astype(np.uint8))  # mode L
        if alpha is not None:  # Pillow has no 16-bit LA: alpha goes with 8-bit grey
            im = Image.merge("LA", (im.convert("L"), Image.fromarray(alpha.astype(np.uint8))))
    else:
        if px.dtype == np.uint16:  # Pillow cannot write 48-bit PNGs: keep 8 bits per channel
            px = np.round(px / 257.0).astype(np.uint8)
        im = Image.fromarray(px.astype(np.uint8))  # mode RGB
        if alpha is not None:
            im.putalpha(Image.fromarray(alpha.astype(np.uint8)))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            im.save(f, format="PNG")
    return Path(path)
