"""Degradations that turn a clean image into a model input, each seeded and documented.

A degradation is named by a spec string, `name:key=value,key=value`, e.g. `noise:sigma=25` or
`downscale:factor=3`. `scale` is how much larger the clean target is than the degraded input
(1 for same-size restoration, the factor for super-resolution). New degradations register
themselves with @register and slot into the CLI, the data loader and the harness unchanged.

Calling a degradation, `deg(clean, seed)`, returns `(degraded, clean)` as float32 (H, W, 3) arrays
in [0, 1]; the same seed always gives the same result, and everything random (noise, shapes,
angles, phases) is drawn from `numpy.random.default_rng(seed)`. Only numpy and Pillow are used
(convolutions are done here, separable or tap by tap, with reflected borders).

blur, motion_blur, jpeg, shadow and moire return 8-bit values (multiples of 1/255), as a saved or
decoded photo has. This matters for int8: a model trained on unrounded blurred floats learns to
use differences finer than one 8-bit step, and then loses about 0.8 dB on real 8-bit input and
in an int8 input tensor (measured on unet_deblur, benchmarks/RESULTS.md). noise and downscale
keep float values (noise:clip=0 is meant to be unclipped; their zoo models lose <= 0.13 dB in int8).

noise:sigma=25,clip=1
    Additive white Gaussian noise; sigma on the 0-255 scale. clip=1 clips to [0, 1] like a saved
    8-bit photo, clip=0 leaves the values unclipped.
downscale:factor=2
    Bicubic downscaling by 2, 3 or 4 (Pillow, per channel, antialiased); the clean image is
    cropped to a multiple of the factor. This is the super-resolution input.
blur:sigma=2
    Gaussian blur (out-of-focus / lens softness); sigma in pixels of the image (0.2-20), kernel
    radius ceil(3 sigma).
motion_blur:length=9,angle=random
    Linear camera-shake blur: the image averaged along a straight segment `length` pixels long
    (2-64) at `angle` degrees (counter-clockwise from the x axis). angle=random draws the angle
    uniformly in [0, 180) from the seed. The segment is rendered with sub-pixel (bilinear)
    weights, so non-axis angles and fractional lengths give smooth kernels that sum to 1.
jpeg:quality=30,subsampling=2
    JPEG compression round trip through Pillow at `quality` 1-100 (blocking, ringing, colour
    bleeding); subsampling 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0 (what phone cameras use). The result is
    8-bit, as a decoded JPEG is.
shadow:strength=0.6,softness=8,tint=0.15,shapes=2
    Synthetic cast shadows: `shapes` irregular random polygons (some reaching in from the border,
    as shadows of objects outside the frame do) whose union covers about 10-60 % of the image,
    blurred with a Gaussian of about `softness` pixels (varied per seed) for a soft penumbra. Inside
    the shadow the light is multiplied per channel by (1 - strength) times a bluish tint (red
    darkened most, blue least: shadows are lit by the sky); per seed, strength varies by up to +-15 %
    and the tint by up to +-30 %. The clean image is the shadow-free ground truth.
moire:strength=0.3,freq=0.4
    Synthetic moire as in photos of screens: the interference of two sinusoidal gratings (the
    display's pixel grid and the sensor's sampling grid) with nearly the same frequency `freq`
    (cycles per pixel, 0.05-0.5) but slightly different scale (1-8 %) and rotation (1-6 deg),
    drawn from the seed. Their difference frequency gives the broad moire bands; each colour
    channel gets its own phase (the display's RGB sub-pixels sit at different places), so the
    bands are coloured; a gentle sinusoidal warp bends them as lens distortion does, and a faint
    trace of the fine grating stays. The pattern m in [-1, 1] modulates the image,
    clean * (1 + strength * m) + 0.25 * strength * m, clipped to [0, 1].
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ..errors import EdgekitError

_REGISTRY: dict[str, type[Degradation]] = {}


def register(cls):
    _REGISTRY[cls.name] = cls
    return cls


@dataclass(frozen=True)
class Degradation:
    name: ClassVar[str] = ""
    params: dict = field(default_factory=dict)
    defaults: ClassVar[dict] = {}
    help: ClassVar[str] = ""
    # True when the degradation's structure is laid out over the whole frame (shadow polygons,
    # moire bands): training and validation tiles are then cut from a degraded whole photo,
    # because degrading a small crop on its own gives a different, smaller-scale pattern.
    image_scale: ClassVar[bool] = False

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Check the parameters; raise EdgekitError naming the spec and the bad key."""

    @property
    def scale(self) -> int:
        return 1

    def p(self, key: str):
        return self.params.get(key, self.defaults[key])

    def number(self, key: str, low: float, high: float, *, integer: bool = False) -> float:
        """Parameter `key` as a number in [low, high], or a one-line EdgekitError naming the spec."""
        value = self.p(key)
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if ok and integer:
            ok = float(value).is_integer()
        if not ok or not low <= value <= high:
            kind = "an integer" if integer else "a number"
            raise EdgekitError(
                f"degradation '{self.spec}': {key} must be {kind} from {low:g} to {high:g}, got "
                f"'{value}'; e.g. '{self.name}:{key}={_fmt(self.defaults[key])}'"
            )
        return int(value) if integer else float(value)

    def crop_clean(self, clean: np.ndarray) -> np.ndarray:
        """Crop the clean image so the degradation is well defined (e.g. divisible by the factor)."""
        s = self.scale
        h, w = clean.shape[:2]
        return clean[: h - h % s, : w - w % s]

    def apply(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, clean: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(degraded, clean) for one float32 (H, W, 3) image, deterministic for a seed."""
        clean = self.crop_clean(np.asarray(clean, dtype=np.float32))
        degraded = self.apply(clean, np.random.default_rng(seed))
        return np.ascontiguousarray(degraded, dtype=np.float32), clean

    @property
    def spec(self) -> str:
        merged = {**self.defaults, **self.params}
        args = ",".join(f"{k}={_fmt(v)}" for k, v in merged.items())
        return f"{self.name}:{args}" if args else self.name


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


# ---------------------------------------------------------------------------------------------
# Filtering helpers (numpy only)


def to_8bit(img: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] and round to the nearest multiple of 1/255 (what saving as 8-bit does)."""
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.float32) / np.float32(255.0)


def gaussian_kernel(sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian, radius ceil(3 sigma) (at least 1)."""
    radius = max(1, int(np.ceil(3.0 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


def _filter_axis(img: np.ndarray, k: np.ndarray, axis: int) -> np.ndarray:
    """Correlate `img` with the odd 1-D kernel `k` along `axis`, reflected borders, same size."""
    r = k.size // 2
    pad = [(0, 0)] * img.ndim
    pad[axis] = (r, r)
    padded = np.pad(img, pad, mode="reflect")
    n = img.shape[axis]
    out = np.zeros_like(img, dtype=np.float32)
    for i, w in enumerate(k):
        out += w * np.take(padded, np.arange(i, i + n), axis=axis)
    return out


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of an (H, W) or (H, W, C) float image; sigma in pixels."""
    if sigma <= 0:
        return np.asarray(img, np.float32).copy()
    k = gaussian_kernel(sigma)
    return _filter_axis(_filter_axis(np.asarray(img, np.float32), k, 0), k, 1)


def convolve2d(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """2-D convolution of an (H, W, C) image with a small odd-sized kernel, reflected borders.

    Loops over the kernel's non-zero taps (a motion kernel has few), so it is fast for sparse
    kernels.
    """
    kh, kw = kernel.shape
    ry, rx = kh // 2, kw // 2
    h, w = img.shape[:2]
    padded = np.pad(img, ((ry, ry), (rx, rx)) + ((0, 0),) * (img.ndim - 2), mode="reflect")
    out = np.zeros_like(img, dtype=np.float32)
    for dy, dx in zip(*np.nonzero(kernel), strict=True):
        # convolution: out[y, x] += k[dy, dx] * img[y + ry - dy, x + rx - dx]
        y0, x0 = 2 * ry - dy, 2 * rx - dx
        out += kernel[dy, dx] * padded[y0 : y0 + h, x0 : x0 + w]
    return out


def motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    """Kernel of a straight segment `length` px long at `angle_deg` (counter-clockwise), sum 1."""
    half = (length - 1) / 2.0
    radius = int(np.ceil(half)) + 1
    size = 2 * radius + 1
    theta = np.deg2rad(angle_deg)
    samples = max(16, int(np.ceil(length * 8)))
    t = np.linspace(-half, half, samples)
    # Image rows grow downwards, so a counter-clockwise angle moves up (negative y).
    xs = radius + t * np.cos(theta)
    ys = radius - t * np.sin(theta)
    k = np.zeros((size, size), np.float64)
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    for dx, dy, wgt in (
        (0, 0, (1 - fx) * (1 - fy)),
        (1, 0, fx * (1 - fy)),
        (0, 1, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        np.add.at(k, (y0 + dy, x0 + dx), wgt)
    k[k < 1e-6 * k.max()] = 0.0
    return (k / k.sum()).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Degradations


@register
@dataclass(frozen=True)
class GaussianNoise(Degradation):
    name: ClassVar[str] = "noise"
    defaults: ClassVar[dict] = {"sigma": 25.0, "clip": 1}
    help: ClassVar[str] = (
        "additive white Gaussian noise; sigma on the 0-255 scale; clip=1 keeps [0,1] like a saved 8-bit photo"
    )

    def validate(self):
        self.number("sigma", 0, 255)
        self.number("clip", 0, 1, integer=True)

    def apply(self, clean, rng):
        sigma = float(self.p("sigma")) / 255.0
        clip = int(self.p("clip"))
        # a band of rows at a time: the same draws in the same order as one call (the generator
        # fills C order), without a float64 noise array twice the size of a 12-megapixel photo
        clean = np.asarray(clean)
        noisy = np.empty(clean.shape, np.result_type(clean.dtype, np.float32))
        step = max(1, (1 << 20) // max(1, int(np.prod(clean.shape[1:]))))
        for r in range(0, clean.shape[0], step):
            c = clean[r : r + step]
            band = c + rng.normal(0.0, sigma, c.shape).astype(np.float32)
            noisy[r : r + step] = np.clip(band, 0.0, 1.0) if clip else band
        return noisy


def resize_bicubic(img: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Bicubic resize of a float (H, W, C) image per channel, values not clipped."""
    from PIL import Image as PILImage

    h, w = size_hw
    chans = [
        np.asarray(
            PILImage.fromarray(img[..., c].astype(np.float32), mode="F").resize(
                (w, h), PILImage.BICUBIC
            )
        )
        for c in range(img.shape[2])
    ]
    return np.stack(chans, axis=-1).astype(np.float32)


@register
@dataclass(frozen=True)
class Downscale(Degradation):
    name: ClassVar[str] = "downscale"
    defaults: ClassVar[dict] = {"factor": 2}
    help: ClassVar[str] = "bicubic downscaling by factor 2, 3 or 4 (super-resolution input)"

    def validate(self):
        if self.p("factor") not in (2, 3, 4) or isinstance(self.p("factor"), bool):
            raise EdgekitError(
                f"degradation '{self.spec}': factor must be 2, 3 or 4, got '{self.p('factor')}'; "
                "e.g. 'downscale:factor=2'"
            )

    @property
    def scale(self) -> int:
        return int(self.p("factor"))

    def apply(self, clean, rng):
        h, w = clean.shape[:2]
        f = self.scale
        return np.clip(resize_bicubic(clean, (h // f, w // f)), 0.0, 1.0)


@register
@dataclass(frozen=True)
class GaussianBlur(Degradation):
    name: ClassVar[str] = "blur"
    defaults: ClassVar[dict] = {"sigma": 2.0}
    help: ClassVar[str] = "Gaussian blur (defocus); sigma in pixels, 0.2-20"

    def validate(self):
        self.number("sigma", 0.2, 20)

    def apply(self, clean, rng):
        return to_8bit(gaussian_blur(clean, float(self.p("sigma"))))


@register
@dataclass(frozen=True)
class MotionBlur(Degradation):
    name: ClassVar[str] = "motion_blur"
    defaults: ClassVar[dict] = {"length": 9, "angle": "random"}
    help: ClassVar[str] = (
        "linear motion blur: length in pixels (2-64), angle in degrees or 'random' (drawn from the seed)"
    )

    def validate(self):
        self.number("length", 2, 64)
        if self.p("angle") != "random":
            self.number("angle", -360, 360)

    def kernel(self, rng: np.random.Generator) -> np.ndarray:
        angle = self.p("angle")
        angle = float(rng.uniform(0.0, 180.0)) if angle == "random" else float(angle)
        return motion_kernel(float(self.p("length")), angle)

    def apply(self, clean, rng):
        return to_8bit(convolve2d(clean, self.kernel(rng)))


@register
@dataclass(frozen=True)
class Jpeg(Degradation):
    name: ClassVar[str] = "jpeg"
    defaults: ClassVar[dict] = {"quality": 30, "subsampling": 2}
    help: ClassVar[str] = (
        "JPEG round trip (Pillow): quality 1-100; subsampling 0=4:4:4, 1=4:2:2, 2=4:2:0"
    )

    def validate(self):
        self.number("quality", 1, 100, integer=True)
        self.number("subsampling", 0, 2, integer=True)

    def apply(self, clean, rng):
        import io

        from PIL import Image as PILImage

        arr = np.clip(np.round(clean * 255.0), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        PILImage.fromarray(arr, mode="RGB").save(
            buf,
            format="JPEG",
            quality=int(self.p("quality")),
            subsampling=int(self.p("subsampling")),
        )
        buf.seek(0)
        with PILImage.open(buf) as im:
            out = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
        return out


def _random_polygon(rng: np.random.Generator, h: int, w: int) -> list[tuple[float, float]]:
    """An irregular star-shaped polygon; about half reach in from a border of the image."""
    size = min(h, w)
    radius = rng.uniform(0.2, 0.5) * size
    if rng.random() < 0.5:
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    else:  # centred just outside one border, so the shadow enters from off-frame
        side = rng.integers(4)
        t = rng.uniform(0, 1)
        off = rng.uniform(0.0, 0.3) * radius
        cy, cx = [(-off, t * w), (h + off, t * w), (t * h, -off), (t * h, w + off)][side]
    n = int(rng.integers(5, 11))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = radius * rng.uniform(0.45, 1.0, n)
    # an elongated shape (shadows are often long) at a random orientation
    stretch, rot = rng.uniform(1.0, 2.5), rng.uniform(0, np.pi)
    px, py = radii * np.cos(angles) * stretch, radii * np.sin(angles)
    xs = cx + px * np.cos(rot) - py * np.sin(rot)
    ys = cy + px * np.sin(rot) + py * np.cos(rot)
    return list(zip(xs.tolist(), ys.tolist(), strict=True))


def shadow_mask(
    rng: np.random.Generator, h: int, w: int, shapes: int, softness: float
) -> np.ndarray:
    """Soft (H, W) mask in [0, 1] of `shapes` random polygons covering about 10-60 % of the image."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    best, best_err = None, np.inf
    for _ in range(12):
        canvas = PILImage.new("L", (w, h), 0)
        draw = ImageDraw.Draw(canvas)
        for _ in range(shapes):
            draw.polygon(_random_polygon(rng, h, w), fill=255)
        hard = np.asarray(canvas, np.float32) / 255.0
        cover = float(hard.mean())
        err = 0.0 if 0.1 <= cover <= 0.6 else min(abs(cover - 0.1), abs(cover - 0.6))
        if err < best_err:
            best, best_err = hard, err
        if err == 0.0:
            break
    sigma = softness * float(rng.uniform(0.5, 1.5))
    return np.clip(gaussian_blur(best, sigma), 0.0, 1.0)


@register
@dataclass(frozen=True)
class Shadow(Degradation):
    name: ClassVar[str] = "shadow"
    image_scale: ClassVar[bool] = True
    defaults: ClassVar[dict] = {"strength": 0.6, "softness": 8.0, "tint": 0.15, "shapes": 2}
    help: ClassVar[str] = (
        "synthetic cast shadows: soft irregular regions darkened by strength (0-0.95) with a bluish "
        "tint; softness = penumbra blur in px; shapes = polygons per image"
    )

    def validate(self):
        self.number("strength", 0, 0.95)
        self.number("softness", 0, 64)
        self.number("tint", 0, 0.5)
        self.number("shapes", 1, 8, integer=True)

    def apply(self, clean, rng):
        h, w = clean.shape[:2]
        mask = shadow_mask(rng, h, w, int(self.p("shapes")), float(self.p("softness")))
        strength = min(0.95, float(self.p("strength")) * float(rng.uniform(0.85, 1.15)))
        tint = float(self.p("tint")) * float(rng.uniform(0.7, 1.3))
        # light left in the umbra per channel: red least, blue most (skylight is bluish)
        gain = (1.0 - strength) * np.array([1.0 - tint, 1.0, 1.0 + tint], np.float32)
        gain = np.clip(gain, 0.0, 1.0)
        factor = 1.0 - mask[..., None] * (1.0 - gain)
        return to_8bit(clean * factor)


def moire_pattern(rng: np.random.Generator, h: int, w: int, freq: float) -> np.ndarray:
    """(H, W, 3) moire pattern in [-1, 1]: beat of two gratings, per-channel phase, warped."""
    theta1 = rng.uniform(0, np.pi)
    theta2 = theta1 + np.deg2rad(rng.uniform(1.0, 6.0)) * rng.choice([-1.0, 1.0])
    f2 = freq * (1.0 + rng.uniform(0.01, 0.08) * rng.choice([-1.0, 1.0]))
    k1 = freq * np.array([np.cos(theta1), np.sin(theta1)])
    k2 = f2 * np.array([np.cos(theta2), np.sin(theta2)])
    band = 1.0 / float(np.hypot(*(k1 - k2)))  # moire band period in pixels
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    # slight perspective (the screen is not parallel to the sensor): the local grating frequency
    # drifts across the frame, which fans the bands out
    persp = (
        1.0 + rng.uniform(-0.06, 0.06) * (x / w - 0.5) + rng.uniform(-0.06, 0.06) * (y / h - 0.5)
    )
    x, y = x / persp, y / persp
    # smooth warp of up to about one band period (lens distortion, screen curvature) bends the bands
    size = max(h, w)
    for _ in range(2):
        amp = rng.uniform(0.2, 0.8) * band
        wave = size * rng.uniform(0.6, 1.6)
        ang, ph = rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
        s = np.sin(2 * np.pi * (x * np.cos(ang) + y * np.sin(ang)) / wave + ph)
        x, y = x + amp * s * np.sin(ang), y - amp * s * np.cos(ang)
    phase1 = 2 * np.pi * (x * k1[0] + y * k1[1])
    phase2 = 2 * np.pi * (x * k2[0] + y * k2[1]) + rng.uniform(0, 2 * np.pi)
    beat = phase1 - phase2
    # the pattern's contrast varies slowly over the frame
    env = 0.7 + 0.3 * np.cos(2 * np.pi * (x / (w * rng.uniform(0.7, 1.5)) + rng.uniform(0, 1)))
    shift = rng.uniform(np.pi / 4, np.pi / 2)  # RGB sub-pixels sit at different places
    chans = [
        env
        * (0.4 * np.cos(beat) + 0.45 * np.cos(beat + c * shift) + 0.15 * np.cos(phase1 + c * shift))
        for c in (-1, 0, 1)
    ]
    return np.stack(chans, axis=-1).astype(np.float32)


@register
@dataclass(frozen=True)
class Moire(Degradation):
    name: ClassVar[str] = "moire"
    image_scale: ClassVar[bool] = True
    defaults: ClassVar[dict] = {"strength": 0.3, "freq": 0.4}
    help: ClassVar[str] = (
        "synthetic screen-photo moire: coloured interference bands of two gratings; strength 0-1, "
        "freq = grating frequency in cycles/px (0.05-0.5)"
    )

    def validate(self):
        self.number("strength", 0, 1)
        self.number("freq", 0.05, 0.5)

    def apply(self, clean, rng):
        h, w = clean.shape[:2]
        m = moire_pattern(rng, h, w, float(self.p("freq")))
        s = float(self.p("strength"))
        return to_8bit(clean * (1.0 + s * m) + 0.25 * s * m)


def _parse_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse(spec: str) -> Degradation:
    """'noise:sigma=25' -> GaussianNoise(sigma=25). Errors name the spec and the known keys."""
    name, _, rest = spec.strip().partition(":")
    name = name.strip()
    cls = _REGISTRY.get(name)
    if cls is None:
        raise EdgekitError(
            f"unknown degradation '{name}' in '{spec}': expected one of {', '.join(sorted(_REGISTRY))}"
        )
    params = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in cls.defaults:
            raise EdgekitError(
                f"degradation '{spec}': bad parameter '{item}'; '{name}' takes "
                f"{', '.join(f'{k}=' for k in cls.defaults) or 'no parameters'}"
            )
        if key in params:
            raise EdgekitError(f"degradation '{spec}': parameter '{key}' given twice; give it once")
        params[key] = _parse_value(value.strip())
    return cls(params=params)


def available() -> dict[str, str]:
    return {name: cls.help for name, cls in sorted(_REGISTRY.items())}
