"""Run a compiled plan on DuckDB and keep the result for the sinks.

The result lands in a temporary table, so sinks stream it in batches and the
summary lines aggregate it without running the rules a second time.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
from sqlglot import exp

from custan.compiler.fields import AS_OF_COLUMN
from custan.compiler.output_stage import RESULT_TABLE, OutputColumn, summary_query
from custan.compiler.plan import Plan
from custan.errors import CustanError, DataError, RunError
from custan.expressions.types import Type
from custan.sinks.presentation import json_lines_query, text_query

logger = logging.getLogger("custan.engine")

BATCH_SIZE = 10_000


def connect() -> duckdb.DuckDBPyConnection:
    """Open a DuckDB connection with the session time zone pinned to UTC.

    DuckDB truncates instants to days and months in the session zone, so a
    machine's local zone would otherwise leak into cohort months.
    """
    connection = duckdb.connect(":memory:")
    connection.execute("SET TimeZone = 'UTC'")
    # Progress belongs to the command line, not to DuckDB's own bar.
    connection.execute("SET enable_progress_bar = false")
    return connection


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Raise KeyboardInterrupt when Ctrl-C stops a DuckDB query inside the block.

    DuckDB's Python client (2.0) handles SIGINT during a query itself and
    raises RuntimeError("Query interrupted") instead of KeyboardInterrupt.
    """
    try:
        yield
    except duckdb.InterruptException:
        raise KeyboardInterrupt from None
    except RuntimeError as error:
        if not str(error).startswith("Query interrupted"):
            raise
        raise KeyboardInterrupt from None


@dataclass
class SummaryValue:
    """A computed summary value and its type, which decides its format."""

    name: str
    value: Any
    type: Type


@dataclass
class Result:
    """The rows of a finished run, still inside DuckDB, and its summary."""

    plan: Plan
    connection: duckdb.DuckDBPyConnection
    as_of: datetime | None
    row_count: int
    summary: list[SummaryValue]

    @property
    def columns(self) -> list[OutputColumn]:
        return self.plan.columns

    def batches(self, size: int = BATCH_SIZE) -> Iterator[list[tuple]]:
        """Yield the rows in output order, ``size`` at a time."""
        names = [exp.column(c.name, quoted=True) for c in self.columns]
        query = exp.select(*names).from_(RESULT_TABLE).sql("duckdb")
        yield from self._fetch(query, size)

    def text_batches(self, size: int = BATCH_SIZE) -> Iterator[list[tuple]]:
        """Yield the rows as written text (see sinks.presentation), in batches."""
        query = text_query(self.columns, self.plan.rules.output.decimals)
        yield from self._fetch(query.sql("duckdb"), size)

    def json_batches(self, size: int = BATCH_SIZE) -> Iterator[list[tuple]]:
        """Yield each row as a one-element tuple holding its JSON object text."""
        query = json_lines_query(self.columns, self.plan.rules.output.decimals)
        yield from self._fetch(query.sql("duckdb"), size)

    def _fetch(self, query: str, size: int) -> Iterator[list[tuple]]:
        with interruptible():
            cursor = self.connection.execute(query)
        while True:
            with interruptible():
                rows = cursor.fetchmany(size)
            if not rows:
                return
            yield rows

    def close(self) -> None:
        self.connection.close()


def execute(
    plan: Plan, source, connection: duckdb.DuckDBPyConnection | None = None
) -> Result:
    """Run ``plan`` with data from ``source`` and return the materialized result."""
    connection = connection or connect()
    with interruptible():
        return _materialize(plan, source, connection)


def _materialize(plan: Plan, source, connection: duckdb.DuckDBPyConnection) -> Result:
    query = source.prepare(plan, connection)
    statement = exp.Create(
        this=exp.to_table(RESULT_TABLE),
        kind="TABLE",
        properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
        expression=query,
    )
    text = statement.sql("duckdb")
    logger.debug("running query:\n%s", text)
    try:
        connection.execute(text)
    except (
        duckdb.ConversionException,
        duckdb.InvalidInputException,
        duckdb.OutOfRangeException,
    ) as error:
        raise _explain(source, connection, error) from None
    except duckdb.IOException as error:
        raise DataError(f"cannot read the data: {_first_line(error)}") from None
    except duckdb.Error as error:
        raise RunError(f"the query failed: {_first_line(error)}") from None
    return Result(
        plan,
        connection,
        _as_of(connection),
        _count(connection),
        _summary(plan, connection),
    )


def _explain(
    source, connection: duckdb.DuckDBPyConnection, error: duckdb.Error
) -> CustanError:
    explain = getattr(source, "explain_failure", None)
    found = explain(connection, error) if explain is not None else None
    if found is not None:
        return found
    if isinstance(error, duckdb.OutOfRangeException):
        # Every input value converted, so a sum or an expression overflowed.
        return RunError(
            f"a computed value is out of range, such as a sum or a product too "
            f"large for its type: {_first_line(error)}"
        )
    return DataError(f"a value could not be converted: {_first_line(error)}")


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0]


def _as_of(connection: duckdb.DuckDBPyConnection) -> datetime | None:
    query = (
        exp.select(exp.column(AS_OF_COLUMN, quoted=True)).from_(RESULT_TABLE).limit(1)
    )
    try:
        row = connection.execute(query.sql("duckdb")).fetchone()
    except duckdb.BinderException:
        return None
    return row[0] if row else None


def _count(connection: duckdb.DuckDBPyConnection) -> int:
    query = exp.select(exp.Count(this=exp.Star())).from_(RESULT_TABLE)
    row = connection.execute(query.sql("duckdb")).fetchone()
    return row[0] if row else 0


def _summary(plan: Plan, connection: duckdb.DuckDBPyConnection) -> list[SummaryValue]:
    if not plan.summaries:
        return []
    row = connection.execute(summary_query(plan.summaries).sql("duckdb")).fetchone()
    assert row is not None, "an aggregate query always returns one row"
    return [
        SummaryValue(s.name, value, s.type)
        for s, value in zip(plan.summaries, row, strict=True)
    ]
