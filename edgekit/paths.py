"""Where edgekit finds its bundled files (targets, calibration images, zoo weights)."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def project_root() -> Path:
    """The checkout that holds targets/ and calibration_data/ (EDGEKIT_HOME overrides)."""
    env = os.environ.get("EDGEKIT_HOME")
    return Path(env).resolve() if env else PACKAGE_DIR.parent


def targets_dir() -> Path:
    return project_root() / "targets"


def calibration_dir() -> Path:
    return project_root() / "calibration_data"


def weights_dir() -> Path:
    return PACKAGE_DIR / "models" / "weights"
