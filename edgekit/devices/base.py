"""The executor contract and its one registry: where edgekit.runtimes.measure runs (here, ssh, adb).

    ex = executor_for(target)      # LocalExecutor | SshExecutor | AdbExecutor, by connection kind
    ex.measure(jobs, inputs, threads=, delegate=, warmup=, repeats=, progress=None) -> dict
    ex.measured_on() -> "host-cpu (...)" | "ssh:<host>" | "adb:<serial>";  ex.facts();  ex.peak_rss(...)

measure() returns edgekit.runtimes.measure's dict ({"schema", "device", "settings", "results",
"outputs"}), plus `measured_on` for a remote device. An executor registers itself with
`@register_executor` (keyed by its `kind`, the target's connection kind); it is built from the
target alone: `cls(target)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import EdgekitError

if TYPE_CHECKING:
    from ..config import Target


# Printed by the test stand-ins for device tools (tests/fixtures/devices): numbers from a run that
# shows it are replayed, not measured, and are labelled "(stand-in)" wherever they are reported.
STAND_IN_MARK = "EDGEKIT STAND-IN"


class DeviceError(EdgekitError):
    """A device could not do what was asked. `kind` classifies it for callers and tests:
    config, unreachable, refused, auth, host-key, timeout, python-missing, python-too-old,
    numpy-missing, runtime-missing, artifact-load, disk-full, tool-missing, engine-build, remote."""

    def __init__(self, message: str, kind: str = "remote"):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Result:
    """What one command on a device (ssh, adb) returned."""

    rc: int
    stdout: str
    stderr: str


def last_line(text: str) -> str:
    """The last non-blank line of a tool's output: usually the one that says what went wrong."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


class Executor:
    """Runs the measurement core somewhere. Subclasses set `kind` and implement measure() and
    probe(); remote ones record device memory during measure() for peak_rss()."""

    kind = "local"
    label = "device"

    def __init__(self, target: Target | None = None):
        self.target = target
        self._facts: dict | None = None
        self._memory: dict[str, dict] = {}  # local artifact path -> device memory numbers

    def measured_on(self) -> str:
        return self.label

    def facts(self) -> dict:
        """What the device is (probed once)."""
        if self._facts is None:
            self._facts = self.probe()
        return self._facts

    def probe(self) -> dict:
        raise NotImplementedError

    def measure(self, jobs, inputs, *, threads, delegate, warmup, repeats, progress=None) -> dict:
        raise NotImplementedError

    def peak_rss(self, path, *, threads, delegate, input_shape, manifest=None) -> dict:
        """Device memory is measured during measure() (one fresh device process per artifact);
        this returns that number for `path`, or raises when it was not measured."""
        mem = self._memory.get(str(path))
        if mem is None:
            raise DeviceError(f"{path}: no device memory measurement (measure it first)", "remote")
        if "error" in mem:
            raise DeviceError(f"{path}: device memory measurement failed: {mem['error']}", "remote")
        return mem


_EXECUTORS: dict[str, Callable[[Target], Executor]] = {}


def register_executor(cls):
    """Class decorator: targets with `connection: {kind: <cls.kind>}` are measured by `cls`."""
    _EXECUTORS[cls.kind] = cls
    return cls


def executor_for(target: Target) -> Executor:
    """The executor for a target's connection kind."""
    kind = target.connection.kind
    factory = _EXECUTORS.get(kind)
    if factory is None:
        raise EdgekitError(
            f"target '{target.name}' ({target.source or 'dict'}): connection kind '{kind}' has no "
            "executor in this edgekit build; use a target with `connection: {kind: local}` to "
            "measure on this machine"
        )
    return factory(target)
