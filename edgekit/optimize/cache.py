"""Candidate results cached under DIR by content hash; only complete entries count.

key = sha256(model fingerprint, candidate recipe, calibration + validation data, edgekit version,
a hash of edgekit's own source and the converter/runtime versions): a dev checkout whose exporter
changed, or a new TensorFlow, rebuilds instead of reusing artifacts the old code made.
An entry is a folder written under a temporary name and renamed when the artifact, its manifest
and result.json are all in it, so a Ctrl-C or a crash mid-build leaves nothing that counts.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from functools import cache
from importlib import metadata
from pathlib import Path

import numpy as np

from .. import __version__
from ..atomic import atomic_path


def fingerprint_model(model) -> str:
    """Graph + weights: identical for the same model however it was loaded."""
    h = hashlib.sha256(model.to_json().encode())
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


def fingerprint_arrays(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(repr((a.shape, str(a.dtype))).encode())
        h.update(a.tobytes())
    return h.hexdigest()


# Distributions whose version changes what an export or a measurement produces.
_TOOLCHAIN = (
    "tensorflow",
    "tf-keras",
    "tensorflow-model-optimization",
    "ai-edge-litert",
    "tf2onnx",
)
_TOOLCHAIN += ("onnx", "onnxruntime")


@cache
def code_fingerprint() -> str:
    """sha256 of every .py file of the edgekit package plus the toolchain's versions."""
    h = hashlib.sha256()
    pkg = Path(__file__).resolve().parents[1]
    for path in sorted(pkg.rglob("*.py")):
        h.update(str(path.relative_to(pkg)).encode())
        h.update(path.read_bytes())
    for dist in _TOOLCHAIN:
        try:
            h.update(f"{dist}={metadata.version(dist)}".encode())
        except metadata.PackageNotFoundError:
            h.update(f"{dist}=-".encode())
    return h.hexdigest()


class Cache:
    def __init__(self, root: Path, model_fp: str, data_fp: str):
        self.root = Path(root)
        self.base = {
            "model": model_fp,
            "data": data_fp,
            "edgekit": __version__,
            "code": code_fingerprint(),
        }

    def key(self, candidate) -> str:
        blob = json.dumps({**self.base, "recipe": candidate.recipe()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    def folder(self, candidate) -> Path:
        return self.root / self.key(candidate)

    def get(self, candidate) -> dict | None:
        """The stored result (with `artifact` as a path when one was kept), or None."""
        d = self.folder(candidate)
        try:
            result = json.loads((d / "result.json").read_text())
        except (OSError, ValueError):
            return None
        if result.get("artifact"):
            art = d / result["artifact"]
            if not art.is_file():
                return None
            result["artifact"] = str(art)
        return result

    def put(self, candidate, result: dict) -> dict:
        """Store a build result: artifact bytes and manifest (if any) and the numbers."""
        result = dict(result)
        data = result.pop("artifact_bytes", None)
        manifest = result.pop("manifest", None)
        final = self.folder(candidate)
        if final.exists():
            shutil.rmtree(final)
        with atomic_path(final, directory=True) as tmp:
            if data is not None:
                name = "artifact" + candidate.suffix
                (tmp / name).write_bytes(data)
                (tmp / (name + ".json")).write_text(json.dumps(manifest, indent=1))
                result["artifact"] = name
            else:
                result["artifact"] = None
            result["recipe"] = candidate.recipe()
            (tmp / "result.json").write_text(json.dumps(result, indent=1))
        return self.get(candidate)
