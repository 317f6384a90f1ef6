"""The sweep's progress line: drawn with rich on a terminal, a plain line in logs (stdout not a TTY)."""

from __future__ import annotations

import sys


def eta_text(seconds: float | None) -> str:
    if seconds is None:
        return "ETA after the first point"
    if seconds < 90:
        return f"ETA {seconds:.0f} s"
    if seconds < 5400:
        return f"ETA {seconds / 60:.0f} min"
    return f"ETA {seconds / 3600:.1f} h"


def plain_line(c) -> str:
    return f"[sweep] progress: {c.done}/{c.total} done, {c.running} running, {c.left} left; {eta_text(c.eta_s)}"


def progress_printer(stream=None):
    """A `show(counts)` for experiments.sweep.progress.ProgressWatcher."""
    stream = stream or sys.stdout
    if not stream.isatty():
        return lambda c: print(plain_line(c), file=stream, flush=True)
    from rich.console import Console
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    console = Console(file=stream)

    def show(c) -> None:
        # one printed line, not a live display: the training subprocesses write to the same terminal
        row = Table.grid(padding=(0, 1))
        row.add_row(
            Text("[sweep]", style="bold"),  # a Text: "[sweep]" in a markup string is read as a tag
            ProgressBar(total=c.total, completed=c.done, width=30),
            f"[green]{c.done}/{c.total} done[/green], [yellow]{c.running} running[/yellow], {c.left} left;",
            eta_text(c.eta_s),
        )
        console.print(row)

    return show
