"""Latency of candidates through edgekit's harness, interleaved, where the target runs.

Every call times its artifacts together (A B C A B C ...) with the current best among them, on
the target's device when it has a connection and on this host otherwise (bench's executor), so
each comparison the search makes is inside one run on one machine. Never called in a Ray task.
"""

from __future__ import annotations

from pathlib import Path


def measure(paths: list[str], target, photos: Path, out_dir: Path) -> dict[str, dict]:
    """path -> {latency_ms: {p50, mean, ...}, measured_on} from one interleaved harness run.

    Photos are cropped to one tile each (latency is per tile; quality comes from the builds)."""
    from ..bench.harness import bench

    if not paths:
        return {}
    unique = list(dict.fromkeys(paths))
    side = max(target.tile)
    report = bench(
        [Path(p) for p in unique],
        target=target,
        images_dir=photos,
        out_dir=out_dir,
        progress=False,
        memory=False,
        max_side=side * _scale_of(unique[0]),
    )
    out = {}
    for row in report["artifacts"]:
        out[row["path"]] = {
            "latency_ms": row["latency_ms"],
            "measured_on": row["measured_on"],
            "delegate_used": (row.get("runtime") or {}).get("delegate_used"),
        }
    return out


def _scale_of(path: str) -> int:
    from ..runtimes.manifest import read_manifest

    m = read_manifest(Path(path)) or {}
    return int((m.get("model") or {}).get("scale") or 1)
