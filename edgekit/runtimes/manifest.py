"""The one manifest reader: `<artifact>.json` beside an artifact (standard library only; ships to devices)."""

from __future__ import annotations

import json
from pathlib import Path


class ManifestError(ValueError):
    """A manifest exists but is not a readable JSON object; the message names the file."""


def manifest_path(artifact: str | Path) -> Path:
    """Where an artifact's manifest lives: the artifact's name plus '.json'."""
    p = Path(artifact)
    return p.with_name(p.name + ".json")


def read_manifest(artifact: str | Path, *, strict: bool = False) -> dict | None:
    """The artifact's manifest, or None when there is none. A manifest that is unreadable or not
    a JSON object raises ManifestError when `strict`, else counts as none (runners only read
    layout hints from it)."""
    mp = manifest_path(artifact)
    if mp.exists() and not mp.is_file():  # a FIFO would block the read, a device never ends
        if strict:
            raise ManifestError(f"{mp}: the manifest is not a regular file; re-export the artifact")
        return None
    try:
        data = json.loads(mp.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        if strict:
            raise ManifestError(
                f"{mp}: unreadable manifest ({exc.__class__.__name__}); re-export the artifact "
                "with `edgekit export`"
            ) from None
        return None
    if not isinstance(data, dict):
        if strict:
            raise ManifestError(f"{mp}: a manifest must be a JSON object; re-export the artifact")
        return None
    return data
