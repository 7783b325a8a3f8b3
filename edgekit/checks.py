"""Checks on user-given paths and values, made before any work starts (hostile inputs).

Every check raises a one-line EdgekitError naming the path or the option, what was expected and
what to do. Nothing here imports anything heavy.
"""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path

from .errors import EdgekitError

# The largest input tile / fixed model input edgekit accepts: one float32 activation of 64
# channels at 4096x4096 is already 4 GiB, and larger declared inputs are almost always a
# mistake (a bogus fixed shape) that would exhaust memory before any message.
MAX_SIDE = 4096

# Artifact file suffixes per export format (the runners pick the runtime by suffix).
SUFFIXES = {"tflite": (".tflite",), "onnx": (".onnx",), "tensorrt": (".engine", ".plan")}


def kind_of(path: str | os.PathLike) -> str:
    """'regular file', 'folder', 'FIFO', 'character device' ... of an existing path."""
    mode = os.stat(path).st_mode
    for test, name in (
        (stat.S_ISREG, "regular file"),
        (stat.S_ISDIR, "folder"),
        (stat.S_ISFIFO, "FIFO (named pipe)"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return name
    return "special file"


def _exists(path: Path) -> bool:
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):  # the caller finds the file in the way
        return False
    except OSError as exc:  # e.g. a component is a file (ENOTDIR), a dangling symlink loop
        raise EdgekitError(f"{path}: cannot use this path ({exc.strerror})") from None
    return True


def _writable_parent(path: Path, what: str) -> None:
    """The nearest existing ancestor of `path` must be a writable folder (mkdir -p will follow)."""
    parent = path.parent
    while not _exists(parent) and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise EdgekitError(
            f"{path}: {what} lies under {parent}, which is a {kind_of(parent)}, not a folder; "
            "choose another location"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise EdgekitError(
            f"{path}: cannot write under {parent} (read-only filesystem or no permission); "
            f"choose a writable location for {what}"
        )


def output_file(path: str | os.PathLike, what: str = "--out") -> Path:
    """An output file must be a regular file or not exist yet, in a writable folder."""
    path = Path(path)
    if _exists(path):
        kind = kind_of(path)
        if kind != "regular file":
            raise EdgekitError(
                f"{path}: {what} exists and is a {kind}, not a regular file; edgekit writes only "
                "new files or replaces regular ones: give another file name"
            )
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise EdgekitError(
                f"{path}: cannot replace it (read-only filesystem or no permission on "
                f"{path.parent}); choose a writable location for {what}"
            )
        return path
    _writable_parent(path, what)
    return path


def output_dir(path: str | os.PathLike, what: str = "--out", files: tuple[str, ...] = ()) -> Path:
    """An output folder must be a folder or not exist yet, under a writable folder; `files`
    (names it will receive) must be regular files or not exist."""
    path = Path(path)
    for name in files:
        if _exists(path / name):
            output_file(path / name, f"{what} file {name}")
    if _exists(path):
        if not path.is_dir():
            raise EdgekitError(
                f"{path}: {what} exists and is a {kind_of(path)}, not a folder; this command "
                "writes several files into a folder: give a folder name"
            )
        if not os.access(path, os.W_OK | os.X_OK):
            raise EdgekitError(
                f"{path}: cannot write into this folder (read-only filesystem or no permission); "
                f"choose a writable folder for {what}"
            )
        return path
    _writable_parent(path, what)
    return path


def artifact_output(path: str | os.PathLike, fmt: str) -> Path:
    """--out for one export: the suffix matches the format; artifact and manifest are writable."""
    path = Path(path)
    wanted = SUFFIXES.get(fmt)
    if wanted and path.suffix.lower() not in wanted:
        raise EdgekitError(
            f"{path}: --out must end in {' or '.join(wanted)} for --format {fmt} (got "
            f"'{path.suffix or '(no suffix)'}'); bench and the runners pick the runtime by suffix"
        )
    output_file(path)
    output_file(path.with_name(path.name + ".json"), "its manifest")  # export.base.manifest_path
    return path


def input_file(path: str | os.PathLike, what: str) -> Path:
    """A file to read must be a regular file: reading a FIFO would block, a device never ends."""
    path = Path(path)
    if not _exists(path):
        raise EdgekitError(f"{path}: {what} not found")
    kind = kind_of(path)
    if kind != "regular file":
        raise EdgekitError(
            f"{path}: {what} is a {kind}, not a regular file; pass a file saved on disk"
        )
    return path


def number(value, key: str, *, minimum: float | None = None) -> float:
    """A finite number (NaN or infinity would switch a check off silently), >= minimum."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise EdgekitError(f"{key}: expected a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(v):
        raise EdgekitError(f"{key}: expected a finite number, got {value!r}")
    if minimum is not None and v < minimum:
        raise EdgekitError(f"{key}: expected a number >= {minimum:g}, got {value!r}")
    return v


def seed(value, key: str = "--seed") -> int:
    """A degradation / training seed: a whole number >= 0 (numpy refuses negative seeds)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value >= 2**32:
        raise EdgekitError(f"{key}: expected a whole number from 0 to 2**32-1, got {value!r}")
    return value


def input_size(h, w, where: str) -> None:
    """An input tile or a model's fixed input: at most MAX_SIDE x MAX_SIDE pixels."""
    if max(int(h), int(w)) > MAX_SIDE:
        raise EdgekitError(
            f"{where}: input of {h}x{w} pixels is larger than edgekit accepts ({MAX_SIDE}x"
            f"{MAX_SIDE}); one float32 activation of 64 channels at that size needs "
            f"{int(h) * int(w) * 64 * 4 / 2**30:.0f} GiB. Use a smaller tile (edgekit tiles "
            "whole photos), or re-save the model with a dynamic (None, None, C) input"
        )
