"""The report.json schema: version, the fields every report must fill, and a checker.

The full field list with meanings is in docs/report-schema.md. Field names required by the
command-line contract (issue 2) are never renamed; new fields may be added freely.
"""

from __future__ import annotations

import math

SCHEMA_VERSION = 1

# Dotted paths inside each artifacts[] row that must be present and non-null.
REQUIRED_ARTIFACT_FIELDS = (
    "format",
    "precision",
    "path",
    "size_bytes",
    "gzip_size_bytes",
    "latency_ms.mean",
    "latency_ms.p50",
    "latency_ms.p90",
    "latency_ms.p99",
    "latency_ms.n",
    "peak_rss_mb",
    "psnr_db",
    "ssim",
    "psnr_vs_reference_db",
    "measured_on",
)
# Dotted paths at the top level that must be present and non-null.
REQUIRED_TOP_FIELDS = (
    "schema_version",
    "edgekit_version",
    "created",
    "measured_on",
    "target.name",
    "model.name",
    "eval_set.count",
    "eval_set.degradation",
    "reference.psnr_db",
    "reference.ssim",
    "degraded_input.psnr_db",
)


def _get(obj, dotted: str):
    for key in dotted.split("."):
        if not isinstance(obj, dict) or key not in obj:
            return None
        obj = obj[key]
    return obj


def missing_fields(report: dict) -> list[str]:
    """Required fields that are absent, null or not finite, as 'key' or 'artifacts[i].key'."""
    missing = []

    def bad(v) -> bool:
        return v is None or (isinstance(v, float) and not math.isfinite(v))

    for key in REQUIRED_TOP_FIELDS:
        if bad(_get(report, key)):
            missing.append(key)
    arts = report.get("artifacts")
    if not arts:
        missing.append("artifacts")
    for i, row in enumerate(arts or []):
        for key in REQUIRED_ARTIFACT_FIELDS:
            if bad(_get(row, key)):
                missing.append(f"artifacts[{i}].{key}")
    if not isinstance(report.get("steps"), list):
        missing.append("steps")
    if not isinstance(report.get("notes"), list):
        missing.append("notes")
    return missing


def json_safe(obj):
    """A copy with non-finite floats replaced by None and numpy scalars/arrays made plain."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy array or scalar
        return json_safe(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
