"""Small crops of the held-out photos for report.html: clean / degraded / float / artifact / error.

One box per photo, chosen from the clean photo alone (the window with the most edge energy, so
seams, ringing and int8 banding next to edges show), the same for every artifact and target.
Pixels are uint8 arrays kept in the report dict under `pixels` / `crop_pixels`; report.json
keeps only the boxes (edgekit.report.render strips the pixels).
"""

from __future__ import annotations

import numpy as np

CROP = 96  # output pixels per side
PHOTOS = 2  # held-out photos shown
ERROR_GAIN = (
    32.0  # |artifact - float| is multiplied by this in the error map (int8 at 45 dB: ~45/255 grey)
)


def _u8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def choose_box(clean: np.ndarray, size: int = CROP, stride: int = 16) -> tuple[int, int, int, int]:
    """(y, x, h, w) of the size x size window of `clean` with the most gradient energy.

    Big photos are searched on every f-th pixel (at most ~2 megapixels), so choosing a box never
    costs full-size float copies of a 12-megapixel photo."""
    h, w = clean.shape[:2]
    s = min(size, h, w)
    f = max(1, int(np.ceil(np.sqrt(h * w / 2e6))))
    g = clean[::f, ::f]
    g = g.mean(axis=2, dtype=np.float32) if g.ndim == 3 else g.astype(np.float32)
    energy = np.abs(np.diff(g, axis=0))[:, :-1] + np.abs(np.diff(g, axis=1))[:-1, :]
    integral = np.pad(energy.astype(np.float64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    e = max(1, s // f - 1)
    step = max(1, stride // f)
    best, box = -1.0, (0, 0)
    for y in range(0, max(1, integral.shape[0] - e), step):
        for x in range(0, max(1, integral.shape[1] - e), step):
            v = integral[y + e, x + e] - integral[y, x + e] - integral[y + e, x] + integral[y, x]
            if v > best:
                best, box = v, (y, x)
    y, x = min(box[0] * f, h - s), min(box[1] * f, w - s)
    return y, x, s, s


def _cut(img: np.ndarray, box) -> np.ndarray:
    y, x, h, w = box
    return img[y : y + h, x : x + w]


def context(images, cleans, degraded, reference, scale: int) -> dict:
    """Boxes and the clean / degraded / float crops of the first PHOTOS photos."""
    photos = []
    for k in range(min(PHOTOS, len(cleans))):
        box = choose_box(cleans[k])
        y, x, h, w = box
        small = (y // scale, x // scale, max(1, h // scale), max(1, w // scale))
        deg = _cut(degraded[k], small)
        if scale > 1:  # shown at the output size, pixels repeated (what the model was given)
            deg = np.repeat(np.repeat(deg, scale, axis=0), scale, axis=1)[:h, :w]
        pixels = {"clean": _u8(_cut(cleans[k], box)), "degraded": _u8(deg)}
        if reference is not None:
            pixels["float"] = _u8(_cut(reference[k], box))
        photos.append({"name": images[k].name, "box": list(box), "pixels": pixels})
    return {"size": CROP, "error_gain": ERROR_GAIN, "photos": photos}


def artifact_crops(outputs, ctx: dict, reference=None) -> list[dict]:
    """Per shown photo: the artifact's crop and its amplified error map (against the float
    output, or against the clean photo without a reference)."""
    return [
        photo_crops(outputs[k], ctx, k, None if reference is None else reference[k])
        for k in range(len(ctx["photos"]))
    ]


def photo_crops(output, ctx: dict, k: int, reference=None) -> dict:
    """artifact_crops for photo k alone (`output` and `reference`: that photo's whole images), so
    an output can be cropped as soon as it is made and then dropped."""
    ph = ctx["photos"][k]
    mine = np.clip(_cut(output, ph["box"]), 0.0, 1.0)
    if reference is not None:
        against, base = "float", np.clip(_cut(reference, ph["box"]), 0.0, 1.0)
    else:
        against, base = "clean", ph["pixels"]["clean"].astype(np.float32) / 255.0
    err = np.abs(mine - base).mean(axis=2) * ctx["error_gain"]
    return {"artifact": _u8(mine), "error": _u8(err), "error_against": against}
