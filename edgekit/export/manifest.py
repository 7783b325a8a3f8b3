"""The manifest written beside every artifact (`<artifact>.json`), common to all formats.

Runners, the benchmark harness and the report read it; it records everything needed to
reproduce the artifact: model and its I/O conventions, precision, converter settings, the plan
that was applied, the validation result and what is inside the file.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from .. import __version__
from ..atomic import json_text, write_json
from ..models.info import LoadedModel

MANIFEST_VERSION = 1


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def package_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _plain(obj):
    """Make plan steps / enums / tuples JSON-friendly."""
    if hasattr(obj, "model_dump"):
        return _plain(obj.model_dump(mode="json"))
    if hasattr(obj, "to_dict"):
        return _plain(obj.to_dict())
    if (
        hasattr(obj, "value")
        and obj.__class__.__module__ != "builtins"
        and isinstance(obj.value, str)
    ):
        return obj.value
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        return obj.item()
    return obj


def build_manifest(
    loaded: LoadedModel, request, artifact_path: str | Path, extra: dict, *, written=None
) -> dict:
    """Manifest for a finished artifact. `request` is an ExportRequest; `extra` carries the
    format-specific parts and may override any key: typically input_shape, output_shape,
    converter, validation, ops, int8_report, versions (merged into the common versions).
    `written`: where the artifact's bytes are now (its temporary name, see atomic_paths) when
    they are not yet at artifact_path."""
    path = Path(artifact_path)
    data = Path(written) if written is not None else path
    extra = dict(extra)
    versions = {
        "edgekit": __version__,
        "tensorflow": package_version("tensorflow"),
        "tf_keras": package_version("tf-keras"),
    }
    versions.update(extra.pop("versions", {}) or {})
    fmt = getattr(request.format, "value", request.format)
    precision = getattr(request.precision, "value", request.precision)
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "format": fmt,
        "precision": precision,
        "io": request.io,
        "label": f"{fmt}-{precision}" + ("-int8io" if request.io == "int8" else ""),
        "file": path.name,
        "input_shape": list(request.shape) if request.shape else None,
        "output_shape": None,
        "dynamic_shape": request.shape is None,
        "model": loaded.info.to_dict(),
        "versions": versions,
        "converter": {},
        "options": _plain(request.options),
        "plan": _plain(request.plan),
        "validation": None,
        "ops": None,
        "int8_report": None,
        "sha256": sha256_file(data),
        "size_bytes": data.stat().st_size,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    manifest.update(_plain(extra))
    return manifest


def write_manifest(artifact_path: str | Path, manifest: dict, *, tmp=None) -> Path:
    """Write `<artifact>.json`: into `tmp` (its temporary name from atomic_paths, renamed together
    with the artifact), or atomically on its own. NaN/Infinity are refused (not JSON)."""
    from .base import manifest_path

    final = manifest_path(artifact_path)
    if tmp is None:
        return write_json(final, manifest)
    Path(tmp).write_text(json_text(manifest, final))
    return final
