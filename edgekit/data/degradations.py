"""Degradations that turn a clean image into a model input, each seeded and documented.

A degradation is named by a spec string, `name:key=value,key=value`, e.g. `noise:sigma=25` or
`downscale:factor=3`. `scale` is how much larger the clean target is than the degraded input
(1 for same-size restoration, the factor for super-resolution). New degradations register
themselves with @register and slot into the CLI, the data loader and the harness unchanged.
"""

from __future__ import annotations

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

    @property
    def scale(self) -> int:
        return 1

    def p(self, key: str):
        return self.params.get(key, self.defaults[key])

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


@register
@dataclass(frozen=True)
class GaussianNoise(Degradation):
    name: ClassVar[str] = "noise"
    defaults: ClassVar[dict] = {"sigma": 25.0, "clip": 1}
    help: ClassVar[str] = "additive white Gaussian noise; sigma on the 0-255 scale; clip=1 keeps [0,1] like a saved 8-bit photo"

    def apply(self, clean, rng):
        sigma = float(self.p("sigma")) / 255.0
        noisy = clean + rng.normal(0.0, sigma, clean.shape).astype(np.float32)
        return np.clip(noisy, 0.0, 1.0) if int(self.p("clip")) else noisy


def resize_bicubic(img: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Bicubic resize of a float (H, W, C) image per channel, values not clipped."""
    from PIL import Image as PILImage

    h, w = size_hw
    chans = [
        np.asarray(PILImage.fromarray(img[..., c].astype(np.float32), mode="F").resize((w, h), PILImage.BICUBIC))
        for c in range(img.shape[2])
    ]
    return np.stack(chans, axis=-1).astype(np.float32)


@register
@dataclass(frozen=True)
class Downscale(Degradation):
    name: ClassVar[str] = "downscale"
    defaults: ClassVar[dict] = {"factor": 2}
    help: ClassVar[str] = "bicubic downscaling by factor 2, 3 or 4 (super-resolution input)"

    def __post_init__(self):
        if int(self.p("factor")) not in (2, 3, 4):
            raise EdgekitError(f"degradation 'downscale': factor must be 2, 3 or 4, got {self.p('factor')}")

    @property
    def scale(self) -> int:
        return int(self.p("factor"))

    def apply(self, clean, rng):
        h, w = clean.shape[:2]
        f = self.scale
        return np.clip(resize_bicubic(clean, (h // f, w // f)), 0.0, 1.0)


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
    cls = _REGISTRY.get(name)
    if cls is None:
        raise EdgekitError(
            f"unknown degradation '{name}' in '{spec}': expected one of {', '.join(sorted(_REGISTRY))}"
        )
    params = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or key not in cls.defaults:
            raise EdgekitError(
                f"degradation '{spec}': bad parameter '{item}'; '{name}' takes "
                f"{', '.join(f'{k}=' for k in cls.defaults) or 'no parameters'}"
            )
        params[key] = _parse_value(value)
    return cls(params=params)


def available() -> dict[str, str]:
    return {name: cls.help for name, cls in sorted(_REGISTRY.items())}
