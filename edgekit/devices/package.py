"""Package the device runner as ONE self-contained file (a zipapp, .pyz).

It holds edgekit/runtimes/ (numpy + runtime only), the device facts module and the entry point.

The device needs nothing of edgekit installed: `python3 edgekit-runner.pyz measure JOB OUT`.
"""

from __future__ import annotations

import shutil
import tempfile
import zipapp
from pathlib import Path

from .. import atomic

RUNNER_NAME = "edgekit-runner.pyz"
_HERE = Path(__file__).resolve().parent
_RUNTIMES = _HERE.parent / "runtimes"

_STUB_INIT = '''"""Device-side subset of edgekit: only edgekit.runtimes (numpy + the runtime)."""
'''


def runner_sources() -> dict[str, Path]:
    """Archive name -> source file for everything that goes into the runner."""
    files = {"__main__.py": _HERE / "device_main.py", "edgekit_facts.py": _HERE / "facts.py"}
    for src in sorted(_RUNTIMES.glob("*.py")):
        files[f"edgekit/runtimes/{src.name}"] = src
    return files


def build_runner(dest: str | Path) -> Path:
    """Write the runner zipapp to `dest` (atomically) and return its path."""
    dest = Path(dest)
    with tempfile.TemporaryDirectory(prefix="edgekit-runner-") as tmp:
        stage = Path(tmp) / "app"
        (stage / "edgekit" / "runtimes").mkdir(parents=True)
        (stage / "edgekit" / "__init__.py").write_text(_STUB_INIT)
        for name, src in runner_sources().items():
            shutil.copyfile(src, stage / name)
        with atomic.atomic_path(dest) as out:
            zipapp.create_archive(stage, target=out, interpreter=None, compressed=True)
    return dest
