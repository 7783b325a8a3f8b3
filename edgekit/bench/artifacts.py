"""Artifacts to benchmark, from their manifests: format, precision, model, tile and label."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import Target
from ..errors import EdgekitError
from ..models.info import ModelInfo
from ..runtimes.manifest import ManifestError, manifest_path
from ..runtimes.manifest import read_manifest as _read_manifest

SUFFIX_FORMAT = {".tflite": "tflite", ".onnx": "onnx", ".engine": "tensorrt", ".plan": "tensorrt"}


@dataclass
class BenchArtifact:
    """One artifact to benchmark: its file, manifest, model description and the tile it takes."""

    id: str
    path: Path
    manifest: dict
    has_manifest: bool
    info: ModelInfo
    tile: tuple[int, int]
    label: str
    notes: list[str] = field(default_factory=list)


def read_manifest(path: Path) -> dict | None:
    """The artifact's `<artifact>.json` manifest, or None if there is none; an unreadable one is
    an EdgekitError naming the file."""
    from ..checks import input_file
    from ..export.manifest_check import check_manifest

    mp = manifest_path(path)
    if mp.exists() or mp.is_symlink():
        input_file(mp, "manifest")  # a FIFO would block the read
    try:
        data = _read_manifest(path, strict=True)
    except ManifestError as exc:
        raise EdgekitError(str(exc)) from None
    return None if data is None else check_manifest(data, mp)  # field types, in one line


def tile_from(shape) -> tuple[int, int] | None:
    """(H, W) from a manifest input_shape ([H, W], [H, W, C] or NHWC); None when dynamic."""
    if not shape:
        return None
    dims = list(shape)
    hw = dims[1:3] if len(dims) == 4 else dims[0:2]
    if len(hw) != 2 or any(d is None or int(d) <= 0 for d in hw):
        return None
    return int(hw[0]), int(hw[1])


def load_artifacts(
    paths: list[Path], target: Target, degradation: str | None
) -> list[BenchArtifact]:
    if not paths:
        raise EdgekitError(
            "bench: no artifacts given; pass one or more .tflite/.onnx/.engine files"
        )
    out, seen = [], {}
    for p in paths:
        p = Path(p)
        if not p.is_file():
            raise EdgekitError(f"{p}: artifact not found")
        if p.suffix.lower() not in SUFFIX_FORMAT:
            raise EdgekitError(
                f"{p}: unknown artifact type '{p.suffix}'; expected one of {', '.join(SUFFIX_FORMAT)}"
            )
        manifest = read_manifest(p)
        notes = []
        if manifest is None:
            if not degradation:
                raise EdgekitError(
                    f"{p}: no manifest {manifest_path(p).name} beside it, so edgekit does not know the "
                    "model's task or tile; re-export with `edgekit export`, or pass --degradation "
                    "(e.g. noise:sigma=25) to benchmark the bare file"
                )
            from ..data.degradations import parse

            deg = parse(degradation)
            manifest = {
                "format": SUFFIX_FORMAT[p.suffix.lower()],
                "precision": None,
                "io": None,
                "input_shape": list(target.tile),
                "model": ModelInfo(
                    name=p.stem,
                    task="restore",
                    degradation=deg.spec,
                    scale=deg.scale,
                    source=str(p),
                ).to_dict(),
            }
            notes.append(
                f"{p.name}: no manifest; precision unknown, tile taken from the target ({target.tile[0]}x{target.tile[1]})"
            )
            has_manifest = False
        else:
            has_manifest = True
        try:
            info = ModelInfo.from_dict(manifest.get("model") or {})
        except TypeError as exc:
            raise EdgekitError(
                f"{p}.json: key 'model' is not a valid model description ({exc}); re-export"
            ) from None
        tile = tile_from(manifest.get("input_shape"))
        if tile is None:
            tile = tuple(target.tile)
            notes.append(
                f"{p.name}: dynamic input shape; benchmarked at the target's tile {tile[0]}x{tile[1]}"
            )
        label = manifest.get("label") or "-".join(
            str(v) for v in (manifest.get("format"), manifest.get("precision")) if v
        )
        ident = label or p.stem
        if ident in seen:
            seen[ident] += 1
            ident = f"{ident}#{seen[ident]}"
        else:
            seen[ident] = 1
        out.append(
            BenchArtifact(
                ident,
                p,
                manifest,
                has_manifest,
                info,
                (int(tile[0]), int(tile[1])),
                label or p.stem,
                notes,
            )
        )
    return out
