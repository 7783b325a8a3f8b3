"""Benchmarks on real devices: Linux boards and Jetsons over the system OpenSSH client, Android
phones over adb. Importing this package is light (stdlib only); ssh/adb are run as subprocesses.

    executor_for(target) -> LocalExecutor | SshExecutor | AdbExecutor
    check_target(target) -> dict      # what the device has: python, numpy, runtimes, trtexec
"""

from __future__ import annotations

from ..errors import EdgekitError


class DeviceError(EdgekitError):
    """A remote device could not do what was asked. `kind` classifies it for callers and tests:
    unreachable, refused, auth, host-key, timeout, python-missing, python-too-old,
    numpy-missing, runtime-missing, artifact-load, disk-full, tool-missing, remote."""

    def __init__(self, message: str, kind: str = "remote"):
        super().__init__(message)
        self.kind = kind


def executor_for(target):
    from .executor import executor_for as _executor_for

    return _executor_for(target)


def check_target(target) -> dict:
    from .executor import check_target as _check_target

    return _check_target(target)
