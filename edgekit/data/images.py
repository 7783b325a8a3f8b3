"""Read image files and folders into float32 RGB arrays in [0, 1], shape (H, W, 3)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checks import input_file
from ..errors import EdgekitError, EdgekitWarning

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif"}


@dataclass(frozen=True)
class Image:
    name: str
    pixels: np.ndarray  # float32 (H, W, 3) in [0, 1]

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels.shape[:2]


def _to_rgb_float(im, path: Path) -> np.ndarray:
    from PIL import Image as PILImage

    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if arr.max() > 255 or mode.startswith("I;16") else 255.0
        arr = (arr / peak).astype(np.float32)
        return np.repeat(arr[..., None], 3, axis=2)
    if mode == "F":
        arr = np.asarray(im, dtype=np.float32)
        arr = arr / max(1.0, float(arr.max()))
        return np.repeat(arr[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        # Composite on white so transparent areas don't become arbitrary colours.
        rgba = im.convert("RGBA")
        if rgba.getchannel("A").getextrema()[1] == 0:
            # Fully transparent: compositing would give a blank white image. Use the colour
            # values stored under the alpha instead, and say so.
            warnings.warn(
                f"{path}: fully transparent image (alpha 0 everywhere); using its RGB values and "
                "ignoring alpha (compositing would give a blank white image); save it without "
                "alpha if that is not what you meant",
                EdgekitWarning,
                stacklevel=4,
            )
            return np.asarray(rgba.convert("RGB"), dtype=np.float32) / 255.0
        background = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = PILImage.alpha_composite(background, rgba)
    arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return arr


def load_image(path: str | Path) -> Image:
    """Load one image (grey, RGB, RGBA, palette, 16-bit) as float32 RGB in [0, 1], turned
    upright by its EXIF orientation (as photo viewers show it)."""
    from PIL import Image as PILImage
    from PIL import ImageOps, UnidentifiedImageError

    path = Path(path)
    if path.exists() or path.is_symlink():
        input_file(path, "image")  # a FIFO would block the read, a device never ends
    try:
        with PILImage.open(path) as im:
            im.load()
            try:
                upright = ImageOps.exif_transpose(im)
            except Exception:  # noqa: BLE001 - a malformed EXIF block: keep the stored orientation
                upright = im
            pixels = _to_rgb_float(upright, path)
    except FileNotFoundError:
        raise EdgekitError(f"{path}: image file not found") from None
    except PILImage.DecompressionBombError as exc:
        raise EdgekitError(
            f"{path}: image too large to open safely ({exc}); downscale or crop it first"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise EdgekitError(
            f"{path}: not a readable image ({exc.__class__.__name__}); remove it or replace it "
            "with a PNG/JPEG file"
        ) from None
    return Image(path.name, np.ascontiguousarray(np.clip(pixels, 0.0, 1.0), dtype=np.float32))


def load_folder(folder: str | Path, *, min_size: tuple[int, int] | None = None) -> list[Image]:
    """All images in a folder, sorted by name. Errors name the folder or the bad file.

    min_size: (H, W) every image must reach (e.g. the input tile); smaller ones are an error.
    """
    folder = Path(folder)
    if not folder.exists():
        raise EdgekitError(f"{folder}: image folder not found")
    if not folder.is_dir():
        raise EdgekitError(f"{folder}: expected a folder of images, got a file")
    # Everything with an image suffix that is not a folder: a FIFO or device named x.png is
    # refused by load_image in one line instead of being skipped silently.
    files = sorted(
        p for p in folder.iterdir() if not p.is_dir() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise EdgekitError(
            f"{folder}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))}); "
            "put PNG/JPEG photos there"
        )
    images = [load_image(p) for p in files]
    if min_size is not None:
        small = [
            f"{im.name} ({im.shape[0]}x{im.shape[1]})"
            for im in images
            if im.shape[0] < min_size[0] or im.shape[1] < min_size[1]
        ]
        if small:
            raise EdgekitError(
                f"{folder}: images smaller than the {min_size[0]}x{min_size[1]} tile: "
                f"{', '.join(small)}; use larger images or a smaller tile (--shape)"
            )
    return images


def split_holdout(images: list[Image], every: int = 4) -> tuple[list[Image], list[Image]]:
    """Deterministic train / held-out split: every `every`-th image (by sorted name) is held out."""
    ordered = sorted(images, key=lambda im: im.name)
    held = [im for i, im in enumerate(ordered) if i % every == every - 1]
    train = [im for i, im in enumerate(ordered) if i % every != every - 1]
    return train, held


def save_image(path: str | Path, pixels: np.ndarray) -> None:
    from PIL import Image as PILImage

    arr = np.clip(np.round(np.asarray(pixels) * 255.0), 0, 255).astype(np.uint8)
    PILImage.fromarray(arr).save(path)
