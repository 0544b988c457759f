"""A progress display on standard error for rows fetched from Payload."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


@contextmanager
def fetch_progress(enabled: bool) -> Iterator[Callable[[str, int], None]]:
    """Yield ``report(label, rows)``, which adds fetched rows to a live display.

    The display is shown only when ``enabled`` and standard error is a
    terminal, and it is removed when the block ends.
    """
    if not enabled or not sys.stderr.isatty():
        yield lambda label, rows: None
        return
    console = Console(file=sys.stderr)
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,.0f} rows"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        tasks: dict[str, TaskID] = {}

        def report(label: str, rows: int) -> None:
            if label not in tasks:
                tasks[label] = progress.add_task(label, total=None)
            progress.advance(tasks[label], rows)

        yield report
