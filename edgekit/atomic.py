"""Write artifacts under a temporary name and rename them when complete.

A crash, a Ctrl-C or a failed validation therefore never leaves a half-written file with the
final name behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `final`; rename it onto `final` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{final.name}.tmp-"
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=final.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, dir=final.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        # mkstemp/mkdtemp create owner-only (0600/0700) paths; give the result the permissions
        # a plain open()/mkdir() would have, so artifacts stay readable by the app build or CI.
        if tmp.exists():
            tmp.chmod((0o777 if tmp.is_dir() else 0o666) & ~_umask())
        if directory and final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(final: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)
    return Path(final)


def write_text(final: str | os.PathLike, text: str) -> Path:
    with atomic_path(final) as tmp:
        tmp.write_text(text)
    return Path(final)


def write_json(final: str | os.PathLike, obj) -> Path:
    return write_text(final, json.dumps(obj, indent=2, sort_keys=False) + "\n")
