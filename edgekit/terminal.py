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


# ---------------------------------------------------------------- consoles


def stdout_console():
    """stdout console; piped output (CI logs, files) gets a wide fixed width so tables don't wrap names."""
    import sys

    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 160)


def stderr_console(file=None):
    """A plain stderr console (or on `file`) for an exporter's running commentary."""
    from rich.console import Console

    if file is not None:
        return Console(file=file, highlight=False, soft_wrap=True)
    return Console(stderr=True, highlight=False, soft_wrap=True)


# ---------------------------------------------------------------- progress displays


def training_progress(enabled: bool):
    """Training steps with a free `info` column (held-out PSNR); transient; a no-op when disabled."""
    if not enabled:
        return _NoProgress()
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
        transient=True,
    )


def loss_progress(enabled: bool):
    """Training steps with the running loss (zoo training); kept on screen when done."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
    )


def spinner_progress(bar: bool = True):
    """A transient spinner (with a bar when `bar`) for a conversion or an engine build."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    columns += [BarColumn()] if bar else []
    return Progress(*columns, TimeElapsedColumn(), transient=True)


def count_progress(console, enabled: bool = True):
    """A transient 'n of N' bar on `console` (e.g. calibration samples)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
        disable=not enabled,
    )


class _NoProgress:
    """Stands in for a rich Progress when progress is off."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, *a, **k):
        return 0

    def update(self, *a, **k):
        pass

    def advance(self, *a, **k):
        pass


# ---------------------------------------------------------------- tables


def print_report(report: dict, console=None) -> None:
    """The report's summary table (one per target of a merged report), where it was measured,
    the reference and input PSNR, and the notes."""
    from .report.render import summary_line

    console = console or stdout_console()
    arts = report.get("artifacts", [])
    names = list(dict.fromkeys(r.get("target") for r in arts))
    if len(names) > 1:
        by_name = {x.get("name"): x for x in report.get("targets") or []}
        for name in names:
            part = {**report, "artifacts": [r for r in arts if r.get("target") == name]}
            part["target"] = by_name.get(name, {"name": name})
            _report_table(part, console)
    else:
        _report_table(report, console)
    places = sorted({r.get("measured_on") for r in arts if r.get("measured_on")})
    for place in places:
        console.print(f"measured on: {place}")
    console.print(summary_line(report))
    for n in report.get("notes") or []:
        console.print(f"[yellow]note:[/yellow] {n}")


def _report_table(report: dict, console) -> None:
    from rich.table import Table

    from .report.render import TABLE_HEADER, TERMINAL_COLUMNS, table_rows

    t = report.get("target", {})
    table = Table(
        title=f"{report.get('model', {}).get('name', '?')} on {t.get('name', '?')} "
        f"({t.get('used', {}).get('threads')} threads)"
    )
    cols = [TABLE_HEADER.index(h) for h in TERMINAL_COLUMNS]
    where = TABLE_HEADER.index("measured on")
    for h in TERMINAL_COLUMNS:
        table.add_column(
            h,
            justify="left" if h in ("artifact", "measured on") else "right",
            no_wrap=h == "artifact",
        )
    for row in table_rows(report):
        # the column keeps the kind of place (host-cpu, ssh:HOST); the full label is printed below
        row[where] = row[where].split(" (")[0]
        table.add_row(*(row[i] for i in cols))
    console.print(table)


def print_compare(result: dict, console=None) -> None:
    """`edgekit compare`: tables of the outputs and the pairs, flagged pairs in red."""
    from rich.table import Table

    console = console or stdout_console()
    t = Table(
        title=f"{result['model']}: {result['tiles']} tiles {result['tile'][0]}x{result['tile'][1]}, {result['degradation']}"
    )
    for col in ("output", "format", "precision", "status", "PSNR vs clean (dB)"):
        t.add_column(col)
    for o in result["outputs"]:
        status = "ok" if o["status"] == "ok" else "[yellow]skipped[/] (see below)"
        clean = f"{o['psnr_vs_clean_db']:.2f}" if "psnr_vs_clean_db" in o else "-"
        t.add_row(o["name"], o["format"], o["precision"], status, clean)
    console.print(t)
    for o in result["outputs"]:
        if o["status"] != "ok":
            console.print(f"[yellow]skipped[/] {o['name']}: {o.get('reason', '')}", soft_wrap=True)
    t = Table(title=f"pairwise PSNR (flag below threshold; measured on {result['measured_on']})")
    for col in ("A", "B", "PSNR (dB)", "threshold (dB)", "result"):
        t.add_column(col)
    for p in result["pairs"]:
        verdict = "[green]ok[/]" if p["ok"] else "[red]BELOW[/]"
        t.add_row(p["a"], p["b"], f"{p['psnr_db']:.2f}", f"{p['threshold_db']:g}", verdict)
    console.print(t)


def targets_table(rows: list[dict]):
    """`edgekit targets`: one row per profile (name, runtime, exports, tile, threads, device, runs here)."""
    from rich.table import Table

    table = Table(title="edgekit targets")
    for col in ("name", "runtime", "exports", "tile", "threads", "device", "runs here"):
        table.add_column(col, no_wrap=col == "name")
    for r in rows:
        table.add_row(
            *(
                str(r[k])
                for k in ("name", "runtime", "exports", "tile", "threads", "device", "runs here")
            )
        )
    return table


def zoo_table(rows: list[dict], draws: int):
    """`edgekit zoo list`: the bundled models and their recorded held-out scores."""
    from rich.table import Table

    table = Table(
        title="edgekit zoo (PSNR/SSIM on held-out calibration images, mean of "
        f"{draws} degradation draws each, host CPU)"
    )
    for col in (
        "name",
        "task",
        "degradation",
        "params",
        "MACs/px",
        "PSNR dB",
        "input PSNR dB",
        "SSIM",
        "trained",
    ):
        table.add_column(col)
    for row in rows:

        def f(key, fmt="{:.2f}", row=row):
            v = row.get(key)
            return "-" if v is None else fmt.format(v)

        table.add_row(
            row["name"],
            row["task"],
            row.get("degradation") or "-",
            f"{row['params']:,}",
            f("macs_per_pixel", "{:,.0f}"),
            f("psnr_db"),
            f("degraded_psnr_db"),
            f("ssim", "{:.4f}"),
            "yes" if row.get("trained") else "no",
        )
    return table


def print_inspection(result: dict, source: str, console=None) -> None:
    """`edgekit inspect`'s per-layer table and its verdict line."""
    from rich.table import Table

    console = console or stdout_console()
    table = Table(
        title=f"{source}: {result['format']} {result['precision']} on {result['runtime']} "
        "(predicted before conversion)"
    )
    for col in ("layer", "class", "becomes", "fast path", "rewrite", "MACs"):
        table.add_column(col)
    for r in result["rows"]:
        table.add_row(
            r["layer"],
            r["class"],
            " ".join(r["ops"]) or "-",
            "yes" if r["fast"] else "NO: " + "; ".join(r["reasons"]),
            r["rewrite"] or "",
            f"{100 * r['mac_share']:.1f} %" if r["mac_share"] else "",
        )
    console.print(table)
    console.print(result["verdict"])
