"""The interface every source implements, built-in or from a plugin."""

from __future__ import annotations

from typing import Protocol

import duckdb
from sqlglot import exp

from custan.compiler.plan import Plan


class Source(Protocol):
    """Supplies a run's data to the engine.

    ``prepare`` may load tables into the DuckDB connection (a remote source
    fetches pushed-down aggregates this way) and returns the query whose rows
    are the run's result. ``describe`` returns the same query without reading
    any data, for ``custan sql``.
    """

    def prepare(
        self, plan: Plan, connection: duckdb.DuckDBPyConnection
    ) -> exp.Select: ...

    def describe(self, plan: Plan) -> exp.Select: ...
