"""Everything edgekit draws on the terminal (rich): progress bars, status lines and tables.

Kept in one module so the library stays plain data; rich is imported inside each function.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def status_line(label: str) -> Iterator[Callable[..., None]]:
    """A rich status line on stderr; yields `say(text, done=0, total=1)` that updates it."""
    from rich.console import Console

    status = Console(stderr=True).status(f"[bold]{label}[/]")
    with status:

        def say(text: str, done: int = 0, total: int = 1) -> None:
            status.update(f"[bold]{label}[/]: {text}")

        yield say


class ProgressBars:
    """A rich progress display (or nothing when disabled) with one bar per stage name."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._p = None
        self._tasks: dict[str, int] = {}

    def __enter__(self):
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._p = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                transient=False,
            )
            self._p.__enter__()
        return self

    def __exit__(self, *exc):
        if self._p is not None:
            self._p.__exit__(*exc)

    def update(self, stage: str, done: int, total: int) -> None:
        if self._p is None:
            return
        if stage not in self._tasks:
            self._tasks[stage] = self._p.add_task(stage, total=total)
        self._p.update(self._tasks[stage], completed=done, total=total)

    def callback(self, prefix: str):
        """progress(stage, done, total) for a part of the work, its stages named '<prefix><stage>'."""
        return lambda stage, done, total: self.update(f"{prefix}{stage}", done, total)


def check_table(info: dict):
    """A rich Table for `edgekit targets --check T` (the dict from edgekit.devices.check_target)."""
    from rich.table import Table

    facts = info.get("facts", {})
    table = Table(title=f"{info['target']} — {info['measured_on']}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    for key in (
        "model",
        "board_model",
        "hostname",
        "kernel",
        "machine",
        "cpu_model",
        "gpu_model",
        "jetpack",
        "l4t",
        "android",
        "abi",
        "soc",
        "python",
        "python_executable",
    ):
        if facts.get(key):
            table.add_row(key, str(facts[key]))
    for name, ver in (info.get("runtimes") or {}).items():
        table.add_row(name, ver or "[red]missing[/]")
    for name, path in (info.get("tools") or {}).items():
        table.add_row(name, path or "[red]missing[/]")
    for runtime, ok in info.get("can_run", {}).items():
        table.add_row(f"can run {runtime}", "yes" if ok else "no")
    for problem in info.get("problems", []):
        table.add_row("[red]problem[/]", problem)
    return table
