"""Runtimes of known duration for the latency tests (registered for a test under a file suffix).

`CLOCK` is a fake perf_counter: edgekit.runtimes.measure reads it when a test puts it in place of
`time`, and the runners below advance it by exactly the milliseconds their manifest lists, one
entry per call (load first, then every run in call order). So the true duration of every timed
run is known and the harness's statistics can be checked against it.
"""

from __future__ import annotations

import time

import numpy as np

from edgekit.runtimes.base import Runner
from edgekit.runtimes.litert import LiteRTRunner


class FakeClock:
    def __init__(self):
        self.now = 1000.0  # seconds, as perf_counter returns

    def perf_counter(self) -> float:
        return self.now

    def advance_ms(self, ms: float) -> None:
        self.now += ms / 1e3


CLOCK = FakeClock()
AFTER_LIST_MS = 1000.0  # calls beyond the manifest's list


class _Ticks:
    def _start_ticks(self) -> None:
        self._ticks = list(self.manifest.get("clock_ms", []))
        self.calls = 0
        self._tick()  # the load

    def _tick(self) -> None:
        ms = self._ticks.pop(0) if self._ticks else AFTER_LIST_MS
        CLOCK.advance_ms(ms)
        sleep = self.manifest.get("sleep_ms")
        if sleep:
            time.sleep(sleep / 1e3)


class ClockRunner(_Ticks, Runner):
    """Output = input * manifest["gain"]; each call takes the next manifest["clock_ms"] entry."""

    runtime = "clock"

    def _load(self) -> None:
        self._start_ticks()

    @property
    def input_shape(self) -> tuple:
        return (1, None, None, 3)

    def _infer(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        self._tick()
        return x * np.float32(self.manifest.get("gain", 1.0))


class ClockLiteRTRunner(_Ticks, LiteRTRunner):
    """The real LiteRT runner (real outputs), taking a known time on the fake clock per call."""

    def _load(self) -> None:
        LiteRTRunner._load(self)
        self._start_ticks()

    def _infer(self, x: np.ndarray) -> np.ndarray:
        y = LiteRTRunner._infer(self, x)
        self._tick()
        return y
