"""Write artifacts under a temporary name and rename them when complete.

A crash, a Ctrl-C, a SIGTERM, a full disk or a failed validation therefore never leaves a
half-written file with the final name behind, and an artifact and its manifest appear together
(`atomic_paths`) or not at all.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import EdgekitError

# OS errors that mean "this location cannot take the file": reported in one line naming the path.
WRITE_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EROFS,
    errno.EFBIG,
    errno.EACCES,
    errno.EPERM,
    errno.EIO,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EEXIST,
}


def write_error(final: str | os.PathLike, exc: OSError) -> EdgekitError:
    """One line for an OSError met while writing `final` (disk full, read-only filesystem ...)."""
    reason = exc.strerror or str(exc)
    hint = {
        errno.ENOSPC: "free some space or write elsewhere",
        errno.EDQUOT: "free some space or write elsewhere",
        errno.EROFS: "the filesystem is read-only: write elsewhere",
    }.get(exc.errno, "choose another location")
    return EdgekitError(f"{final}: cannot write ({reason}); {hint}; nothing was written there")


def _remove(tmp: Path) -> None:
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_paths(*finals: str | os.PathLike) -> Iterator[list[Path]]:
    """Yield one temporary path beside each final path; rename them all onto their final names
    only if the block succeeds, otherwise remove them all (existing files stay untouched).

    The renames come last and in order; if a later one fails the files already renamed by this
    call are removed again, so an artifact never stands without its manifest.
    """
    finals = [Path(f) for f in finals]
    tmps: list[Path] = []
    try:
        for final in finals:
            try:
                final.parent.mkdir(parents=True, exist_ok=True)
                fd, name = tempfile.mkstemp(prefix=f".{final.name}.tmp-", dir=final.parent)
            except OSError as exc:
                raise write_error(final, exc) from None
            os.close(fd)
            tmps.append(Path(name))
        try:
            yield list(tmps)
        except OSError as exc:
            if exc.errno in WRITE_ERRNOS and (exc.filename is None or _is_one_of(exc, tmps)):
                raise write_error(finals[0], exc) from None
            raise
        done: list[Path] = []
        for tmp, final in zip(tmps, finals, strict=True):
            try:
                # mkstemp creates owner-only (0600) files; give the result the permissions a
                # plain open() would have, so artifacts stay readable by the app build or CI.
                tmp.chmod(0o666 & ~_umask())
                os.replace(tmp, final)
            except OSError as exc:
                for d in done:
                    with contextlib.suppress(OSError):
                        d.unlink()
                raise write_error(final, exc) from None
            done.append(final)
    finally:
        for tmp in tmps:
            if tmp.exists():
                _remove(tmp)


def _is_one_of(exc: OSError, paths: list[Path]) -> bool:
    return any(str(p) == str(exc.filename) for p in paths)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `final`; rename it onto `final` only if the block succeeds."""
    if not directory:
        with atomic_paths(final) as (tmp,):
            yield tmp
        return
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    except OSError as exc:
        raise write_error(final, exc) from None
    try:
        yield tmp
        tmp.chmod(0o777 & ~_umask())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        _remove(tmp)
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


def json_text(obj, where: str | os.PathLike) -> str:
    """JSON for a file edgekit writes; NaN/Infinity (not JSON) are refused, naming the key."""
    try:
        return json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n"
    except ValueError:
        key = _nonfinite_key(obj) or "?"
        raise EdgekitError(
            f"{where}: refusing to write a non-finite number (NaN/Infinity) at key '{key}'; JSON "
            "has no such values (please report this with the command that produced it)"
        ) from None


def _nonfinite_key(obj, prefix: str = "") -> str | None:
    if isinstance(obj, float) and not math.isfinite(obj):
        return prefix or "<top level>"
    items = (
        obj.items()
        if isinstance(obj, dict)
        else enumerate(obj)
        if isinstance(obj, (list, tuple))
        else ()
    )
    for k, v in items:
        found = _nonfinite_key(v, f"{prefix}.{k}" if prefix else str(k))
        if found:
            return found
    return None


def write_json(final: str | os.PathLike, obj) -> Path:
    return write_text(final, json_text(obj, final))


class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP) turned into an exception, so temporary files are removed like on
    Ctrl-C; `signum` gives the exit code 128 + signum."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum


@contextlib.contextmanager
def terminate_as_interrupt(signums=(signal.SIGTERM, signal.SIGHUP)) -> Iterator[None]:
    """Within the block, the given signals raise Terminated (main thread only)."""

    def handler(signum, frame):
        raise Terminated(signum)

    old = {}
    try:
        for s in signums:
            old[s] = signal.signal(s, handler)
    except ValueError:  # not the main thread: leave the signals alone
        pass
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
