"""The local executor: the measurement core in this process (memory in a child process), on this machine."""

from __future__ import annotations

from ..config import host_label
from .base import Executor, register_executor


@register_executor
class LocalExecutor(Executor):
    """Runs edgekit.runtimes.measure here; facts are re-read each time (load average changes)."""

    kind = "local"

    def measured_on(self) -> str:
        return host_label()

    def probe(self) -> dict:
        from ..runtimes.measure import device_facts

        return device_facts()

    def facts(self) -> dict:
        return self.probe()

    def measure(
        self, jobs, inputs, *, threads, delegate, warmup, repeats, progress=None, outputs=True
    ) -> dict:
        from ..runtimes.measure import measure

        return measure(
            jobs,
            inputs,
            threads=threads,
            delegate=delegate,
            warmup=warmup,
            repeats=repeats,
            progress=progress,
            outputs=outputs,
        )

    def peak_rss(self, path, *, threads, delegate, input_shape, manifest=None) -> dict:
        from ..runtimes.measure import peak_rss_mb

        return peak_rss_mb(str(path), threads, delegate, input_shape, manifest=manifest)
