"""The table sink: a rich table for people, with summary lines under it."""

from __future__ import annotations

import os
import re
from decimal import Decimal
from typing import TextIO

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from custan.engine import Result, SummaryValue
from custan.expressions.types import NUMERIC, Type
from custan.model.ruleset import Matrix
from custan.sinks.formatting import (
    format_instant,
    plain_decimal,
    to_decimal,
    to_text,
)
from custan.sinks.text_formats import formatted_rows

# {name} inserts a summary value; {{ and }} stand for literal braces.
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([a-z_][a-z0-9_]*)\}")
# Rows beyond this many are left out of the table; other formats write them all.
MAX_TABLE_ROWS = 1000
PIPED_WIDTH = 160


def format_summary_value(item: SummaryValue) -> str:
    """Money with thousands separators and cents; other numbers plainly."""
    value = item.value
    if value is None:
        return "n/a"
    if item.type is Type.MONEY:
        return f"{to_decimal(value, 2):,}"
    if item.type is Type.INTEGER:
        return f"{int(value):,}"
    if isinstance(value, (Decimal, float)):
        return plain_decimal(to_decimal(value, 2))
    if hasattr(value, "isoformat"):
        return format_instant(value)
    return str(value)


def render_summary(summary: list[SummaryValue], lines: list[str]) -> list[str]:
    """Fill each line's {name} placeholders with the summary values."""
    values = {item.name: format_summary_value(item) for item in summary}

    def fill(match: re.Match[str]) -> str:
        if match.group(1) is None:
            return match.group(0)[0]
        return values.get(match.group(1), match.group(0))

    return [_PLACEHOLDER.sub(fill, line) for line in lines]


class PipeConsole(Console):
    """A rich console that raises BrokenPipeError when its reader has gone.

    rich (15.0) exits with status 1 on a closed pipe, but custan ends quietly with
    status 0 instead, as it does for its other formats.
    """

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


class TableSink:
    name = "table"

    def write(self, result: Result, stream: TextIO) -> None:
        console = PipeConsole(file=stream, highlight=False)
        if not console.is_terminal:
            # Piped or redirected tables keep whole rows instead of wrapping at 80.
            console = PipeConsole(file=stream, highlight=False, width=PIPED_WIDTH)
        if result.plan.rules.output.matrix:
            for table in self._matrix(result, console.width):
                console.print(table)
        else:
            console.print(self._rows(result))
        lines = result.plan.rules.output.summary.lines
        for line in render_summary(result.summary, lines):
            console.print(printable(line))

    def _title(self, result: Result) -> str:
        rules = result.plan.rules
        return printable(rules.name or os.path.basename(rules.file))

    def _caption(self, result: Result, shown: int) -> str:
        caption = f"{result.row_count} {'row' if result.row_count == 1 else 'rows'}"
        if result.row_count > shown:
            caption = (
                f"{shown} of {result.row_count} rows shown; "
                "use --format csv or --output for all"
            )
        if result.as_of is not None:
            caption += f", as of {format_instant(result.as_of)}"
        return caption

    def _rows(self, result: Result) -> Table:
        table = Table(title=self._title(result))
        for column in result.columns:
            if column.type in NUMERIC:
                table.add_column(column.name, justify="right")
            else:
                table.add_column(column.name, justify="left")
        shown = 0
        for row in formatted_rows(result):
            if shown == MAX_TABLE_ROWS:
                break
            table.add_row(*[_cell(v) for v in row])
            shown += 1
        table.caption = self._caption(result, shown)
        return table

    def _matrix(self, result: Result, width: int) -> list[Table]:
        """Lay out the matrix as tables of whole columns, each fitting ``width``.

        A matrix wider than the console is split into several tables that each
        repeat the row labels, because shrinking cells would cut them to "…".
        """
        matrix = result.plan.rules.output.matrix
        assert matrix is not None
        cells, row_keys, column_keys = _matrix_cells(result, matrix)
        corner = f"{matrix.rows} \\ {matrix.columns}"
        widths = {
            key: max([len(key)] + [len(cells.get((r, key), "")) for r in row_keys])
            for key in column_keys
        }
        label_width = max([len(corner)] + [len(key) for key in row_keys])
        groups = _fit_columns(column_keys, widths, width - _cell_width(label_width) - 1)
        tables = []
        for group in groups:
            table = Table()
            table.add_column(corner, no_wrap=True, min_width=label_width)
            for key in group:
                table.add_column(
                    key, justify="right", no_wrap=True, min_width=widths[key]
                )
            for row_key in row_keys:
                table.add_row(
                    row_key, *[cells.get((row_key, key), "") for key in group]
                )
            tables.append(table)
        tables[0].title = f"{self._title(result)}: {matrix.value}"
        tables[-1].caption = self._caption(result, result.row_count)
        return tables


def _matrix_cells(
    result: Result, matrix: Matrix
) -> tuple[dict[tuple[str, str], str], list[str], list[str]]:
    """Collect the matrix cells by (row, column) key, with both keys in order."""
    names = [c.name for c in result.columns]
    cells: dict[tuple[str, str], str] = {}
    row_keys: list[str] = []
    column_keys: list[str] = []
    for row in formatted_rows(result):
        record = dict(zip(names, row, strict=True))
        row_key = _cell(record[matrix.rows])
        column_key = _cell(record[matrix.columns])
        cells[(row_key, column_key)] = _cell(record[matrix.value])
        if row_key not in row_keys:
            row_keys.append(row_key)
        if column_key not in column_keys:
            column_keys.append(column_key)
    column_keys.sort(key=_natural)
    return cells, row_keys, column_keys


def _cell_width(text_width: int) -> int:
    """Return the columns a table cell takes: its text, one space each side, a rule."""
    return text_width + 3


def _fit_columns(keys: list[str], widths: dict[str, int], room: int) -> list[list[str]]:
    """Split ``keys`` in order into groups whose cells fit in ``room`` columns.

    Every group contains at least one key, even one wider than ``room``.
    """
    groups: list[list[str]] = [[]]
    used = 0
    for key in keys:
        needed = _cell_width(widths[key])
        if groups[-1] and used + needed > room:
            groups.append([])
            used = 0
        groups[-1].append(key)
        used += needed
    return groups


def _natural(key: str):
    return (0, int(key), "") if key.lstrip("-").isdigit() else (1, 0, key)


def _cell(value) -> str:
    if isinstance(value, Decimal):
        return f"{value:,}" if abs(value) >= 1000 else format(value, "f")
    return printable(to_text(value))


# Control characters, shown as \xNN so data cannot move the cursor or recolour.
_CONTROLS = {code: f"\\x{code:02x}" for code in [*range(32), 127]}


def printable(text: str) -> str:
    """``text`` as rich prints it literally: markup escaped, controls shown."""
    return escape(text.translate(_CONTROLS))
