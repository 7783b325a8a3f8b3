"""Progress of device work, one way for every executor: `say(text, done=0, total=1)`.

A caller that owns a live display (the bench harness) passes `progress(stage, done, total)`;
without one, a status line of our own is shown (edgekit.terminal).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

# progress(stage, done, total): how every long-running part of edgekit reports
ProgressFn = Callable[[str, int, int], None]


@contextlib.contextmanager
def stages(label: str, progress: ProgressFn | None = None) -> Iterator[Callable[..., None]]:
    """Yield `say(text, done=0, total=1)` that reports '<label>: <text>'."""
    if progress is not None:

        def say(text: str, done: int = 0, total: int = 1) -> None:
            progress(f"{label}: {text}", done, total)

        yield say
        return
    from ..terminal import status_line

    with status_line(label) as say:
        yield say
