"""Target profiles: frozen, strictly validated descriptions of where an artifact will run.

A target YAML with an unknown key or a wrong type is an error naming the file and the key;
nothing is silently defaulted from a typo.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import EdgekitError
from .paths import targets_dir


class Precision(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    dynamic = "dynamic"  # int8 weights, float activations
    int8 = "int8"  # full integer, calibrated
    int16x8 = "int16x8"  # int8 weights, int16 activations


class Format(str, Enum):
    tflite = "tflite"
    onnx = "onnx"
    tensorrt = "tensorrt"


PRECISIONS = [p.value for p in Precision]
FORMATS = [f.value for f in Format]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ExportSpec(_Strict):
    """One artifact a target wants: a format at a precision."""

    format: Format
    precision: Precision
    io: Literal["float", "int8"] = "float"  # int8 I/O only for tflite int8

    @field_validator("format", "precision", mode="before")
    @classmethod
    def _enum_from_str(cls, v, info):
        enum = Format if info.field_name == "format" else Precision
        if isinstance(v, str):
            try:
                return enum(v)
            except ValueError:
                raise ValueError(
                    f"unknown {info.field_name} '{v}', expected one of {[e.value for e in enum]}"
                ) from None
        return v

    @property
    def label(self) -> str:
        return f"{self.format.value}-{self.precision.value}" + (
            "-int8io" if self.io == "int8" else ""
        )


class SshConnection(_Strict):
    kind: Literal["ssh"]
    host: str
    user: str | None = None
    port: int | None = None
    identity_file: str | None = None
    python: str = "python3"
    workdir: str = "/tmp/edgekit"
    timeout_s: int = 600


class AdbConnection(_Strict):
    kind: Literal["adb"]
    serial: str | None = None
    remote_dir: str = "/data/local/tmp/edgekit"
    benchmark_model: str | None = None  # host path of TFLite's benchmark_model binary for the phone
    timeout_s: int = 600


class LocalConnection(_Strict):
    kind: Literal["local"] = "local"


class TensorRTOptions(_Strict):
    module: Literal["tensorrt", "tensorrt_rtx"] = "tensorrt"
    compute_capability: str | None = None  # e.g. "SM89", only for tensorrt_rtx ahead-of-time builds
    build_on: Literal["host", "device"] = "host"
    workspace_mb: int = 1024
    profile_min: tuple[int, int] | None = None  # defaults to the tile
    profile_max: tuple[int, int] | None = None


class Target(_Strict):
    name: str
    description: str
    device: str  # the hardware the profile is meant for, in words
    runtime: Literal["litert", "onnxruntime", "tensorrt"]
    exports: list[ExportSpec] = Field(min_length=1)
    tile: tuple[int, int] = (256, 256)  # H, W of the fixed input tile
    threads: int = Field(default=2, ge=1, le=256)
    delegate: Literal["xnnpack", "gpu", "nnapi", "none"] = "xnnpack"
    warmup: int = Field(default=3, ge=0)
    repeats: int = Field(default=20, ge=1)
    latency_budget_ms: float | None = None
    quality_floor_db: float | None = None  # minimum PSNR vs the float model
    connection: LocalConnection | SshConnection | AdbConnection = Field(
        default_factory=LocalConnection, discriminator="kind"
    )
    tensorrt: TensorRTOptions | None = None
    source: str | None = Field(default=None, exclude=True)  # file it was read from

    @property
    def is_local(self) -> bool:
        return self.connection.kind == "local"

    def measured_on(self) -> str:
        """Label for numbers measured for this target from this machine."""
        if self.is_local:
            return host_label()
        return f"{self.connection.kind}:{getattr(self.connection, 'host', None) or getattr(self.connection, 'serial', None) or 'device'}"


def host_label() -> str:
    import os
    import platform

    return (
        f"host-cpu ({platform.node() or 'localhost'}, {platform.machine()}, {os.cpu_count()} cores)"
    )


def _format_validation_error(src: str, err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<top level>"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see targets/host-cpu.yaml for the schema)"
        elif e["type"] == "missing":
            msg = "required key is missing"
        else:
            msg = f"{msg} (got {e.get('input')!r})"
        parts.append(f"key '{key}': {msg}")
    return f"{src}: invalid target: " + "; ".join(parts)


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise EdgekitError(f"{path}: cannot read target file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        raise EdgekitError(f"{path}: malformed YAML{line}; fix the file syntax") from None
    if not isinstance(data, dict):
        raise EdgekitError(
            f"{path}: a target must be a YAML mapping of keys, got {type(data).__name__}"
        )
    return data


def _coerce_yaml(data: dict) -> dict:
    # YAML gives lists where the schema wants tuples; strict mode would reject them otherwise.
    out = dict(data)
    for key in ("tile",):
        if isinstance(out.get(key), list):
            out[key] = tuple(out[key])
    if isinstance(out.get("tensorrt"), dict):
        trt = dict(out["tensorrt"])
        for key in ("profile_min", "profile_max"):
            if isinstance(trt.get(key), list):
                trt[key] = tuple(trt[key])
        out["tensorrt"] = trt
    return out


def target_from_dict(data: dict, source: str = "<dict>") -> Target:
    try:
        return Target.model_validate({**_coerce_yaml(data), "source": source})
    except ValidationError as err:
        raise EdgekitError(_format_validation_error(source, err)) from None


def load_target(name_or_path: str | Path) -> Target:
    """A target by bundled name (`host-cpu`) or by YAML path."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        path = p
    else:
        path = targets_dir() / f"{name_or_path}.yaml"
        if not path.exists():
            known = ", ".join(sorted(t.stem for t in targets_dir().glob("*.yaml")))
            raise EdgekitError(
                f"unknown target '{name_or_path}': no file {path}; known targets: {known}, "
                "or pass a path to a YAML file"
            )
    if not path.exists():
        raise EdgekitError(f"{path}: target file not found")
    return target_from_dict(_read_yaml(path), source=str(path))


def list_targets() -> list[Target]:
    return [load_target(p) for p in sorted(targets_dir().glob("*.yaml"))]


def parse_shape(text: str) -> tuple[int, int]:
    """'256x256' -> (256, 256)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
        if h <= 0 or w <= 0:
            raise ValueError
    except ValueError:
        raise EdgekitError(
            f"--shape '{text}': expected HxW with positive integers, e.g. 256x256"
        ) from None
    return h, w


def parse_precision(text: str) -> Precision:
    try:
        return Precision(text)
    except ValueError:
        raise EdgekitError(
            f"unknown precision '{text}': expected one of {', '.join(PRECISIONS)}"
        ) from None
