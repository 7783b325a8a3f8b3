"""What edgekit knows about a model besides its graph: task, I/O conventions, provenance.

Plain data (no TensorFlow) so that manifests, reports and runners can read it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class ModelInfo:
    name: str  # zoo name or file stem
    task: str  # denoise | super-resolution | deblur | deshadow | demoire | restore
    degradation: str | None  # default degradation spec for evaluation, e.g. "noise:sigma=25"
    scale: int = 1  # output size / input size (super-resolution factor)
    value_range: tuple[float, float] = (0.0, 1.0)  # float input/output range
    channels: int = 3
    layout: str = "NHWC"
    source: str = ""  # "zoo:dncnn" or the file path
    extra: dict = field(default_factory=dict)
    input_multiple: int = 1  # input H and W must be multiples of this (U-Nets: 4)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["value_range"] = list(self.value_range)
        # manifests and reports have carried it in `extra` too; the field is the one source
        d["extra"] = {**d["extra"], "input_multiple": self.input_multiple}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelInfo:
        d = dict(d)
        if "value_range" in d:
            d["value_range"] = tuple(d["value_range"])
        return cls(**d)


@dataclass
class LoadedModel:
    """A Keras (tf_keras) model plus its ModelInfo. `model` is a tf_keras.Model."""

    model: object
    info: ModelInfo
