"""Where artifacts run: one Executor base class and registry for local, ssh and adb targets.

ssh reaches Linux boards and Jetsons, adb Android phones. Light to import: ssh and adb are
driven as subprocesses, runtimes are imported where they measure.

    executor_for(target) -> LocalExecutor | SshExecutor | AdbExecutor
    check_target(target) -> dict      # what the device has: python, numpy, runtimes, trtexec
"""

from __future__ import annotations

from . import adb, local, ssh  # noqa: F401 - the built-in executors register themselves
from .base import DeviceError, Executor, executor_for, register_executor
from .check import check_target

__all__ = ["DeviceError", "Executor", "check_target", "executor_for", "register_executor"]
