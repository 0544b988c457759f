"""The library entry points the command line is built on."""

from __future__ import annotations

import os
from datetime import datetime

from sqlglot import exp

from custan.compiler.plan import Plan, compile_rules
from custan.engine import Result, connect, execute
from custan.model import RuleSet, load_rules
from custan.sources.file_source import FileSource


def make_source(rules: RuleSet, data: str | None = None):
    """The source a rules file names; ``data`` replaces a file source's path."""
    if rules.source.kind != "files":
        from custan.errors import RulesError

        raise RulesError(f"unknown source kind '{rules.source.kind}'", rules.source.location)
    return FileSource(rules.source, data)


def run(
    rules: RuleSet | str | os.PathLike[str],
    *,
    data: str | None = None,
    as_of: str | None = None,
    limit: int | None = None,
    now: datetime | None = None,
    source=None,
) -> Result:
    """Load (if given a path), compile and run a rules file.

    Example:
        >>> result = run("rules/rfm.yaml")          # doctest: +SKIP
        >>> [row for batch in result.batches() for row in batch]  # doctest: +SKIP
    """
    if not isinstance(rules, RuleSet):
        rules = load_rules(rules)
    plan = compile_rules(rules, as_of=as_of, limit=limit, now=now)
    source = source or make_source(rules, data)
    return execute(plan, source, connect())


def compiled_sql(rules: RuleSet, *, data: str | None = None, as_of: str | None = None,
                 limit: int | None = None, dialect: str = "duckdb") -> str:
    """The query a run would execute, pretty-printed in ``dialect``."""
    plan: Plan = compile_rules(rules, as_of=as_of, limit=limit)
    try:
        query: exp.Select = make_source(rules, data).describe(plan)
    except Exception:
        query = plan.query()
    return query.sql(dialect=dialect, pretty=True)


__all__ = ["compile_rules", "compiled_sql", "load_rules", "run"]
