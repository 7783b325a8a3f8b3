"""The exporter contract and its registry (@register_exporter, keyed by the class's `format`).

An exporter turns a LoadedModel into one artifact file for one precision, validates the artifact
against the Keras model on real images (refusing to write a broken file), and writes a JSON
manifest beside it (`<artifact>.json`) that runners and the report read. Exporters never time
anything: that is the harness's job.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import ExporterOptions, Format, Precision, exporter_options
from ..errors import EdgekitError
from ..models.info import LoadedModel
from ..runtimes.manifest import manifest_path

# format -> exporter class; the exporter modules import their backend (tensorflow, tf2onnx,
# tensorrt) inside functions, so a missing backend only disables its format.
_EXPORTERS: dict[str, type] = {}


@dataclass
class ExportRequest:
    format: Format
    precision: Precision
    shape: tuple[int, int] | None  # fixed input tile (H, W); None = dynamic H, W where allowed
    io: str = "float"  # "float" or "int8" (int8 I/O: tflite int8 only)
    calib_inputs: np.ndarray | None = None  # (N, H, W, 3) degraded tiles for calibration
    val_inputs: np.ndarray | None = None  # (N, H, W, 3) degraded tiles for validation
    options: dict = field(default_factory=dict)  # the user's format-specific options (typed below)
    plan: list = field(default_factory=list)  # compression steps applied, for the manifest
    threads: int = 2  # runtime threads for validating the fresh artifact (the target's)
    target: str | None = None  # target name, recorded in device-build manifests
    tensorrt: dict | None = None  # the target's `tensorrt:` block (TensorRT exports)
    options_source: str = "export options"  # where `options` came from, for error messages
    opts: ExporterOptions | None = None  # `options` validated by Exporter.export


@dataclass
class Artifact:
    path: Path
    manifest: dict

    @property
    def manifest_path(self) -> Path:
        return manifest_path(self.path)


class Exporter:
    format: str = ""
    precisions: tuple[str, ...] = ()

    def export(self, loaded: LoadedModel, request: ExportRequest, out: str | Path) -> Artifact:
        """Check the request, then `_export`. `out` is the final artifact path."""
        if request.precision.value not in self.precisions:
            raise EdgekitError(
                f"format '{self.format}' cannot export precision '{request.precision.value}'; "
                f"supported: {', '.join(self.precisions)}"
            )
        if request.shape is not None:  # a tile the model cannot take fails here, in one line
            from ..models.loading import check_input_size

            check_input_size(loaded.info, *request.shape)
        from ..checks import artifact_output

        opts = exporter_options(self.format, request.options, request.options_source)
        # suffix matches the format; artifact and manifest paths are new or regular files
        out = artifact_output(out, self.format)
        return self._export(loaded, dataclasses.replace(request, opts=opts), out)

    def _export(self, loaded: LoadedModel, request: ExportRequest, out: Path) -> Artifact:
        raise NotImplementedError


def register_exporter(cls):
    """Class decorator: `cls` exports its `format`."""
    _EXPORTERS[cls.format] = cls
    return cls


def get_exporter(fmt: str | Format) -> Exporter:
    name = fmt.value if isinstance(fmt, Format) else str(fmt)
    cls = _EXPORTERS.get(name)
    if cls is None:
        raise EdgekitError(f"unknown format '{name}': expected one of {', '.join(_EXPORTERS)}")
    return cls()
