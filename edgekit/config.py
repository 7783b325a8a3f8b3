"""Configs: target profiles, exporter options and compression plans, frozen and strictly validated.

A target or plan YAML with an unknown key (an exporter option included) or a wrong type is an
error naming the file and the key; nothing is silently defaulted from a typo.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .checks import MAX_SIDE, input_file
from .errors import EdgekitError
from .paths import targets_dir

# One side of an input tile: at least 1 pixel, at most checks.MAX_SIDE (memory).
Side = Annotated[int, Field(ge=1, le=MAX_SIDE)]


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


class ExporterOptions(BaseModel):
    """Options every exporter takes. Subclasses add their format's own; an unknown key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_psnr_db: float | None = None  # overrides the precision's validation floor


class TFLiteOptions(ExporterOptions):
    """edgekit.export.tflite (see its docstring for what each does)."""

    int8_fallback: str = "auto"  # auto | never | allow
    clip_output: bool | None = (
        None  # None: clip int8/int16x8 only when the model's outputs leave range
    )
    calib_samples: int | None = None
    sparse_weights: str = "auto"  # auto | on | off
    rewrite: bool | None = None  # None: exact fast-path rewrites for int8/int16x8 (export.rewrites)
    float_nodes: list[str] | None = None  # int8 mixed precision: TFLite nodes kept in float
    # int8: narrow convs on 2x2 blocks (rewrites.block_conv): auto = on when this host's CPU has
    # AMX int8 tiles (for targets that run on this host), on, off (the default: phones)
    block_convs: Literal["auto", "on", "off"] = "off"


class OnnxOptions(ExporterOptions):
    """edgekit.export.onnx (see its docstring for what each does)."""

    layout: str = "NHWC"  # NHWC | NCHW
    activations: str = "asymmetric"  # asymmetric (uint8, ORT CPU) | symmetric (int8, TensorRT)
    per_channel: bool = True  # int8: per-channel weight scales
    rewrite: bool | None = None  # None: exact fast-path rewrites for int8 (export.rewrites)
    opset: int | None = None  # None: edgekit.export.onnx.DEFAULT_OPSET
    keep_io_types: bool = True
    dynamic_hw: bool = False
    calib_method: str = "minmax"
    quantize_bias: bool = True
    float_nodes: list[str] | None = None  # int8 mixed precision: ONNX nodes left out of Q/DQ


class TensorRTExportOptions(ExporterOptions):
    """edgekit.export.tensorrt: per-export keys that win over the target's `tensorrt:` block."""

    module: Literal["tensorrt", "tensorrt_rtx"] | None = None
    compute_capability: str | None = None
    build_on: Literal["host", "device"] | None = None
    workspace_mb: int | None = None
    profile_min: tuple[int, int] | None = None
    profile_max: tuple[int, int] | None = None
    onnx: str | None = None  # build from this existing ONNX instead of exporting one
    layout: str | None = None  # of the intermediate ONNX (default NCHW)
    opset: int | None = None
    calib_method: str | None = None


EXPORTER_OPTIONS: dict[str, type[ExporterOptions]] = {
    "tflite": TFLiteOptions,
    "onnx": OnnxOptions,
    "tensorrt": TensorRTExportOptions,
}


def exporter_options(fmt: str, options: dict | None, where: str) -> ExporterOptions:
    """`options` checked against the format's options model; `where` names their source in errors
    (a target file's `exports[i].options`, or the command line)."""
    model = EXPORTER_OPTIONS[fmt]
    try:
        return model.model_validate(dict(options or {}))
    except ValidationError as err:
        raise EdgekitError(_format_option_error(where, fmt, model, err)) from None


def _format_option_error(where: str, fmt: str, model, err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            parts.append(
                f"unknown {fmt} option '{key}' (check the spelling; {fmt} options are: "
                f"{', '.join(model.model_fields)})"
            )
        else:
            parts.append(f"{fmt} option '{key}': {e['msg']} (got {e.get('input')!r})")
    return f"{where}: " + "; ".join(parts)


class ExportSpec(_Strict):
    """One artifact a target wants: a format at a precision."""

    format: Format
    precision: Precision
    io: Literal["float", "int8"] = "float"  # int8 I/O only for tflite int8
    # Format-specific exporter options, e.g. {layout: NCHW, activations: asymmetric} for ONNX.
    options: dict[str, str | int | float | bool] = Field(default_factory=dict)

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

    @model_validator(mode="after")
    def _typed_options(self):
        model = EXPORTER_OPTIONS[self.format.value]
        try:
            model.model_validate(self.options)
        except ValidationError as err:
            bad = [e for e in err.errors() if e["type"] == "extra_forbidden"]
            if bad:
                key = ".".join(str(p) for p in bad[0]["loc"])
                raise PydanticCustomError(
                    "unknown_option",
                    "unknown {fmt} option (check the spelling; {fmt} options are: {known})",
                    {
                        "option": key,
                        "fmt": self.format.value,
                        "known": ", ".join(model.model_fields),
                    },
                ) from None
            e = err.errors()[0]
            raise PydanticCustomError(
                "bad_option",
                "{fmt} option: {msg}",
                {
                    "option": ".".join(str(p) for p in e["loc"]),
                    "fmt": self.format.value,
                    "msg": e["msg"],
                },
            ) from None
        return self

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
    python: str = "python3"  # the device's Python (numpy + the runtime installed there)
    workdir: str = "/tmp/edgekit"  # each run makes and removes a mktemp dir under it
    timeout_s: int = 600
    ssh_config: str | None = None  # an ssh config file passed as `ssh -F` (default: ~/.ssh/config)
    connect_timeout_s: int = 10
    trtexec: str | None = (
        None  # path of trtexec on the device (default: PATH, /usr/src/tensorrt/bin)
    )


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
    profile_min: tuple[Side, Side] | None = None  # defaults to the tile
    profile_max: tuple[Side, Side] | None = None


class Target(_Strict):
    name: str
    description: str
    device: str  # the hardware the profile is meant for, in words
    runtime: Literal["litert", "onnxruntime", "tensorrt"]
    exports: list[ExportSpec] = Field(min_length=1)
    tile: tuple[Side, Side] = (256, 256)  # H, W of the fixed input tile
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
    plan: Plan | None = None  # default compression plan for `edgekit compress` (no --plan)
    source: str | None = Field(default=None, exclude=True)  # file it was read from

    @model_validator(mode="after")
    def _plan_fits_exports(self):
        if self.plan is not None:
            problem = plan_target_problem(self.plan, self)
            if problem:
                raise ValueError(problem)
        return self

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
        if e["type"] in ("unknown_option", "bad_option"):
            parts.append(f"key '{key}.options.{e['ctx']['option']}': {msg}")
            continue
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see targets/host-cpu.yaml for the schema)"
        elif e["type"] == "missing":
            msg = "required key is missing"
        elif e["type"] == "value_error":
            msg = str(e.get("ctx", {}).get("error", msg))
            if not e["loc"]:  # a whole-target check (e.g. the plan vs the exports) names its keys
                parts.append(msg)
                continue
        else:
            msg = f"{msg} (got {e.get('input')!r})"
        parts.append(f"key '{key}': {msg}")
    return f"{src}: invalid target: " + "; ".join(parts)


def _yaml_file(path: Path, what: str):
    """The parsed YAML of a target or plan file; unreadable or malformed -> one-line EdgekitError."""
    input_file(path, f"{what} file")  # a FIFO would block the read
    try:
        return yaml.safe_load(path.read_text())
    except OSError as exc:
        raise EdgekitError(f"{path}: cannot read {what} file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        raise EdgekitError(f"{path}: malformed YAML{line}; fix the file syntax") from None


def _read_yaml(path: Path) -> dict:
    data = _yaml_file(path, "target")
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
    if max(h, w) > MAX_SIDE:
        raise EdgekitError(
            f"--shape '{text}': at most {MAX_SIDE}x{MAX_SIDE} (edgekit tiles larger photos); "
            "use e.g. 256x256"
        )
    return h, w


def parse_precision(text: str) -> Precision:
    try:
        return Precision(text)
    except ValueError:
        raise EdgekitError(
            f"unknown precision '{text}': expected one of {', '.join(PRECISIONS)}"
        ) from None


# --------------------------------------------------------------------------------------------
# Compression plans: an ordered list of steps, each a strict config with a `kind`.
# --------------------------------------------------------------------------------------------

PLAN_SCHEMA_HINT = "see edgekit/config.py (Plan) or targets/host-cpu.yaml for the plan schema"


def _float_from_yaml(v):
    # PyYAML reads `1e-4` (no dot) as a string; accept any numeric string for float fields.
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v


class _Step(_Strict):
    """Base of every plan step. Subclasses set `kind` and declare their contract:

    needs:        what run_plan must provide ("training_pairs": degraded/clean pairs cut from
                  the calibration images; "calibration_images": raw degraded inputs).
    not_followed_by: {kind: reason} steps that may not come anywhere after this one.
    """

    needs: ClassVar[tuple[str, ...]] = ("training_pairs",)
    not_followed_by: ClassVar[dict[str, str]] = {}

    def order_problem(self, index: int, before: list[_Step]) -> str | None:
        """Why this step may not stand at `index` after the steps `before` it (None: it may)."""
        for j, earlier in enumerate(before):
            reason = earlier.not_followed_by.get(self.kind)
            if reason:
                return f"step {index} ({self.kind}) may not come after step {j} ({earlier.kind}): {reason}"
        return None

    steps: int = Field(default=300, ge=1, le=1_000_000)  # optimiser steps (fine-tuning budget)
    lr: float = Field(default=1e-4, gt=0, le=1.0)
    batch: int = Field(default=16, ge=1, le=4096)
    patch: int = Field(default=48, ge=8, le=1024)  # training patch size in input pixels

    @field_validator("lr", mode="before")
    @classmethod
    def _lr_float(cls, v):
        return _float_from_yaml(v)


class PruneMagnitudeStep(_Step):
    """tfmot magnitude pruning: zero the smallest weights of every conv/dense kernel while
    fine-tuning (PolynomialDecay from 0 to `sparsity` over the first 70% of `steps`, then hold),
    optionally with m:n structured sparsity ("2:4") or in blocks of `block` consecutive input
    channels, then strip the wrappers. Gives a smaller (sparse-encoded, compressed) file, not a
    faster dense model."""

    kind: Literal["prune_magnitude"]
    sparsity: float = Field(default=0.5, ge=0.0, lt=1.0)
    schedule: Literal["polynomial", "constant"] = "polynomial"
    m_by_n: str | None = None  # "2:4": in every block of 4 weights along the input channels keep 2
    # prune runs of `block` consecutive input-channel weights together (ranked by mean |w|):
    # fewer, longer zero runs compress better; tfmot's own block_size takes only 2-D kernels
    block: int = Field(default=1, ge=1, le=64)

    not_followed_by: ClassVar[dict[str, str]] = {
        "prune_magnitude": "magnitude pruning is applied once; set the final sparsity in one step",
        "prune_channels": "rebuilding channels drops the sparsity masks; put prune_channels first",
        "distill": "distillation retrains every weight and refills the pruned zeros; distill first",
        "qat": "tfmot QAT retrains every weight and refills the pruned zeros; the target's int8 "
        "export (PTQ) keeps the zeros instead",
    }

    @field_validator("sparsity", mode="before")
    @classmethod
    def _sparsity_float(cls, v):
        return _float_from_yaml(v)

    @field_validator("m_by_n")
    @classmethod
    def _check_m_by_n(cls, v):
        if v is None:
            return v
        try:
            m, n = (int(s) for s in v.split(":"))
        except ValueError:
            raise ValueError(f"m_by_n must look like '2:4', got '{v}'") from None
        if not (0 < m < n <= 32):
            raise ValueError(f"m_by_n '{v}': need 0 < m < n <= 32, e.g. '2:4'")
        return v

    @model_validator(mode="after")
    def _block_or_m_by_n(self):
        if self.block > 1 and self.m_by_n is not None:
            raise ValueError(
                f"block {self.block} and m_by_n '{self.m_by_n}' both set: choose one sparsity pattern"
            )
        return self

    @property
    def m_n(self) -> tuple[int, int] | None:
        if self.m_by_n is None:
            return None
        m, n = (int(s) for s in self.m_by_n.split(":"))
        return m, n

    @property
    def effective_sparsity(self) -> float:
        """The sparsity the kernels end with (1 - m/n for structured sparsity)."""
        mn = self.m_n
        return 1.0 - mn[0] / mn[1] if mn else self.sparsity


class PruneChannelsStep(_Step):
    """Filter pruning that rebuilds a narrower model (edgekit.compress.channels), then fine-tunes.

    ratio: fraction of the filters removed from every prunable layer (one number), or
    {layer name: fraction} for chosen layers only. Kept counts are rounded to a multiple of
    `round_to` (ties keep more) and never fall below `min_channels`.
    """

    kind: Literal["prune_channels"]
    ratio: float | dict[str, float] = 0.33
    criterion: Literal["l1", "l2", "activation"] = "l1"
    min_channels: int = Field(default=8, ge=1)
    round_to: int = Field(default=8, ge=1)

    @field_validator("ratio", mode="before")
    @classmethod
    def _ratio(cls, v):
        if isinstance(v, dict):
            v = {k: _float_from_yaml(x) for k, x in v.items()}
            for k, x in v.items():
                if not isinstance(x, (int, float)) or isinstance(x, bool) or not 0.0 <= x < 1.0:
                    raise ValueError(f"ratio for layer '{k}' must be a number in [0, 1), got {x!r}")
            return {k: float(x) for k, x in v.items()}
        v = _float_from_yaml(v)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if not 0.0 <= v < 1.0:
                raise ValueError(
                    f"ratio must be in [0, 1) (the fraction of filters removed), got {v}"
                )
            return float(v)
        return v

    @property
    def needs_activations(self) -> bool:
        return self.criterion == "activation"


class DistillStep(_Step):
    """Knowledge distillation: teacher = the model entering the plan (the user's float model);
    student = `student` ("pruned": the model produced by the preceding steps, or a zoo builder
    name such as "dncnn" with `width`/`depth` overrides). Loss = L1(student, clean) +
    alpha * L1(student, teacher) + feature_weight * normalised L1 between 1x1-adapted student
    features and teacher features at `feature_layers` ([[student_layer, teacher_layer], ...];
    default: hidden convolutions at 1/3 and 2/3 depth). `schedule: cosine` decays the learning
    rate to 5 % (better for long from-scratch students; constant suits short fine-tunes). Early stopping on held-out PSNR with `patience` evaluations."""

    kind: Literal["distill"]
    student: str = "pruned"
    width: int | None = Field(default=None, ge=1)
    depth: int | None = Field(default=None, ge=2)
    alpha: float = Field(default=1.0, ge=0.0)
    feature_weight: float = Field(default=0.0, ge=0.0)
    feature_layers: list[tuple[str, str]] | None = None
    schedule: Literal["constant", "cosine"] = "constant"
    lr: float = Field(default=1e-3, gt=0, le=1.0)
    eval_every: int = Field(default=50, ge=1)
    patience: int | None = Field(default=4, ge=1)  # evaluations without improvement; None = off
    seed: int | None = Field(default=None, ge=0, lt=2**32)  # student init; None = the plan's

    @field_validator("alpha", "feature_weight", mode="before")
    @classmethod
    def _alpha_float(cls, v):
        return _float_from_yaml(v)

    def order_problem(self, index: int, before: list[_Step]) -> str | None:
        if self.student == "pruned" and not any(s.kind == "prune_channels" for s in before):
            return (
                f"step {index} (distill) uses student 'pruned' but no prune_channels step comes "
                "before it; add one or name a zoo builder as student (e.g. student: dncnn)"
            )
        return super().order_problem(index, before)


class QatStep(_Step):
    """Quantization-aware training with tfmot (edgekit.compress.quantize): fake-quantises weights
    and activations, including restoration layers tfmot refuses by default, fine-tunes on pairs.
    The target's int8 export then converts the result. Must be the last step."""

    kind: Literal["qat"]
    lr: float = Field(default=2e-5, gt=0, le=1.0)
    # "ema": tfmot's moving averages of per-batch min/max, started at the calibration;
    # "frozen": activation ranges held at their calibration (min/max over the float model's
    # outputs) while the weights train. Neither wins on every zoo model (benchmarks/RESULTS.md)
    ranges: Literal["frozen", "ema"] = "ema"
    # "float": fine-tune towards the float model's own outputs and keep the checkpoint closest to
    # them (QAT should undo quantization error, not re-learn the task); "clean": L1 to the clean
    # images and keep the best held-out PSNR, like the other steps
    target: Literal["float", "clean"] = "float"

    not_followed_by: ClassVar[dict[str, str]] = {
        "prune_magnitude": "pruning after quantization would move weights off the int8 grid",
        "prune_channels": "pruning after quantization would discard the learned quantizer ranges",
        "distill": "training after QAT without fake-quant would undo it; put distill before qat",
        "qat": "QAT is applied once",
    }


Step = Annotated[
    PruneMagnitudeStep | PruneChannelsStep | DistillStep | QatStep, Field(discriminator="kind")
]
STEP_KINDS = ("prune_magnitude", "prune_channels", "distill", "qat")


class Plan(_Strict):
    """An ordered list of compression steps; the target's exports run after the last one."""

    name: str = "custom"
    description: str = ""
    seed: int = Field(default=0, ge=0, lt=2**32)
    steps: list[Step] = Field(default_factory=list)
    source: str | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _check_order(self):
        for i, step in enumerate(self.steps):
            problem = step.order_problem(i, self.steps[:i])
            if problem:
                raise ValueError(problem)
        return self

    def needs(self) -> set[str]:
        return {n for s in self.steps for n in s.needs}

    def to_dict(self) -> dict:
        """Plain JSON-able dict (what goes into manifests; round-trips through plan_from_dict)."""
        d = self.model_dump(mode="json", exclude={"source"})
        d["steps"] = [
            {"kind": s["kind"], **{k: v for k, v in s.items() if k != "kind"}} for s in d["steps"]
        ]
        return d

    def to_manifest(self) -> list[dict]:
        """The steps as plain dicts (each re-validates with plan_from_dict), for ExportRequest.plan
        and so every artifact's manifest; the full plan with its seed is in info.extra["plan"]."""
        return self.to_dict()["steps"]

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _format_plan_error(src: str, err: ValidationError, data: dict) -> str:
    parts = []
    steps = data.get("steps") if isinstance(data, dict) else None
    for e in err.errors():
        loc = list(e["loc"])
        where = "plan"
        if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
            idx = loc[1]
            kind = None
            if isinstance(steps, list) and idx < len(steps) and isinstance(steps[idx], dict):
                kind = steps[idx].get("kind")
            where = f"step {idx}" + (f" ({kind})" if kind else "")
            loc = [p for p in loc[2:] if p not in STEP_KINDS]
        key = ".".join(str(p) for p in loc)
        msg = e["msg"]
        if e["type"] == "union_tag_invalid":
            kind = e.get("input", {}).get("kind") if isinstance(e.get("input"), dict) else None
            msg = f"unknown step kind '{kind}'; expected one of {', '.join(STEP_KINDS)}"
            key = "kind"
        elif e["type"] == "union_tag_not_found":
            msg = f"missing 'kind'; expected one of {', '.join(STEP_KINDS)}"
            key = "kind"
        elif e["type"] == "extra_forbidden":
            msg = f"unknown key ({PLAN_SCHEMA_HINT})"
        elif e["type"] == "missing":
            msg = "required key is missing"
        elif e["type"] == "value_error":
            msg = str(e.get("ctx", {}).get("error", msg))
        else:
            msg = f"{msg} (got {e.get('input')!r})"
        if not loc and where == "plan":  # a whole-plan check (order, dependencies): msg names steps
            parts.append(msg)
            continue
        parts.append(f"{where}" + (f" key '{key}'" if key else "") + f": {msg}")
    return f"{src}: invalid plan: " + "; ".join(parts)


def plan_from_dict(data, source: str = "<dict>") -> Plan:
    if isinstance(data, list):  # a bare list of steps
        data = {"steps": data}
    if not isinstance(data, dict):
        raise EdgekitError(
            f"{source}: a plan must be a YAML mapping with 'steps', got {type(data).__name__}"
        )
    try:
        return Plan.model_validate({**data, "source": source})
    except ValidationError as err:
        raise EdgekitError(_format_plan_error(source, err, data)) from None


def plan_target_problem(plan: Plan, target: Target) -> str | None:
    """Why `plan` cannot feed `target`'s exports (None when it can): QAT trains a model for int8
    and its fake-quant graph converts only to int8, so every export must be int8."""
    for i, step in enumerate(plan.steps):
        if isinstance(step, QatStep):
            other = [e.label for e in target.exports if e.precision != Precision.int8]
            if other:
                return (
                    f"plan step {i} (qat) trains for int8, but the target also exports "
                    f"{', '.join(other)}; QAT is only for targets whose every export is int8: "
                    "remove the qat step or use an int8-only target"
                )
    return None


def check_plan_for_target(plan: Plan, target: Target) -> None:
    """One-line EdgekitError naming the plan file, the step and the target when they clash."""
    problem = plan_target_problem(plan, target)
    if problem:
        raise EdgekitError(
            f"{plan.source or 'plan'}: {problem} (target '{target.name}', {target.source})"
        )


def load_plan(path: str | Path) -> Plan:
    """A plan from a YAML file (a mapping with `steps:`, or a bare list of steps)."""
    path = Path(path)
    if not path.exists():
        raise EdgekitError(f"{path}: plan file not found")
    return plan_from_dict(_yaml_file(path, "plan"), source=str(path))


Target.model_rebuild()  # resolve the forward reference to Plan
