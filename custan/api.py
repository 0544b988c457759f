"""The library entry points the command line is built on."""

from __future__ import annotations

import dataclasses
import os
from datetime import datetime
from typing import Any

import duckdb
from sqlglot import exp
from sqlglot.dialects import Dialect, Dialects

from custan import plugins
from custan.compiler.metrics_stage import ACCOUNTS
from custan.compiler.plan import Plan, compile_rules
from custan.engine import Result, connect, execute, interruptible
from custan.errors import Location, RulesError, UsageError
from custan.model import RuleSet, load_rules
from custan.model.ruleset import Input
from custan.sources.files import AccountReader


def make_source(
    rules: RuleSet,
    data: str | None = None,
    *,
    kind: str | None = None,
    progress: bool = False,
):
    """Build the source a rules file names, or a source of ``kind`` in its place.

    ``data`` replaces a file source's path. ``progress`` lets a remote source
    show the rows it fetches on standard error.
    """
    spec = source_spec(rules, kind, progress)
    registry = plugins.sources()
    factory = registry.entries.get(spec.kind)
    if factory is None:
        kinds = ", ".join(sorted(registry.entries))
        message = f"unknown source kind '{spec.kind}'; available: {kinds}"
        raise RulesError(message + _failure_note(), spec.location)
    return factory(spec, data)


def source_spec(rules: RuleSet, kind: str | None, progress: bool) -> Input:
    """Return the file's source section, or a bare one of ``kind`` (from --source)."""
    spec = rules.source
    if kind is not None and kind != spec.kind:
        # A file's path and column mapping mean nothing to another kind of source,
        # so it starts from defaults, which the payload source fills from PAYLOAD_API_*.
        spec = Input(kind=kind, base_dir=spec.base_dir, location=spec.location)
    if progress:
        spec = dataclasses.replace(spec, options={**spec.options, "progress": True})
    return spec


def compile_with_plugins(
    rules: RuleSet,
    *,
    as_of: str | None = None,
    limit: int | None = None,
    now: datetime | None = None,
    params: dict[str, Any] | None = None,
) -> Plan:
    """Check the file's ``requires``, then compile it with the plugins' registries."""
    check_requirements(rules)
    try:
        return compile_rules(
            rules,
            as_of=as_of,
            limit=limit,
            now=now,
            params=params,
            functions=plugins.function_table(),
            aggregates=plugins.aggregates(),
        )
    except RulesError as error:
        note = _failure_note()
        if not note or not error.message.startswith("unknown"):
            raise
        raise RulesError(error.message + note, error.location) from None


def check_requirements(rules: RuleSet) -> None:
    """Raise RulesError when a distribution in ``requires`` is missing or broken."""
    location = Location(rules.file, field="requires")
    missing = plugins.missing_requirements(rules.requires)
    if missing:
        names = ", ".join(f"'{name}'" for name in missing)
        raise RulesError(
            f"missing required distributions: {names}; install them with "
            f"'pip install {' '.join(missing)}'",
            location,
        )
    broken = plugins.broken_requirements(rules.requires)
    if broken:
        raise RulesError("; ".join(str(problem) for problem in broken), location)
    if rules.requires and not plugins.entry_points_enabled():
        names = ", ".join(f"'{name}'" for name in rules.requires)
        raise RulesError(
            f"the file requires {names}, but plugins are turned off by "
            f"--no-plugins or {plugins.DISABLE_VARIABLE}",
            location,
        )


def _failure_note() -> str:
    """Name the plugins that failed to import, since one may provide a missing name."""
    failures = plugins.import_failures()
    if not failures:
        return ""
    names = ", ".join(f"'{problem.plugin}'" for problem in failures)
    return f" (plugins that failed to import: {names}; see 'custan plugins')"


def run(
    rules: RuleSet | str | os.PathLike[str],
    *,
    data: str | None = None,
    as_of: str | None = None,
    limit: int | None = None,
    now: datetime | None = None,
    source=None,
    accounts: str | None = None,
    params: dict[str, Any] | None = None,
    source_kind: str | None = None,
    progress: bool = False,
) -> Result:
    """Load (if given a path), compile and run a rules file.

    ``accounts`` replaces the path of the file's accounts input and ``params``
    replaces values of its params. ``source_kind`` reads the transactions from
    another kind of source, such as ``payload``, in place of the file's.
    Plugins' ``before_run`` hooks run before any data is read and their
    ``after_run`` hooks once the result is ready, before a sink writes it.

    Example:
        >>> result = run("rules/rfm.yaml")          # doctest: +SKIP
        >>> [row for batch in result.batches() for row in batch]  # doctest: +SKIP
    """
    if not isinstance(rules, RuleSet):
        rules = load_rules(rules)
    plan = compile_with_plugins(rules, as_of=as_of, limit=limit, now=now, params=params)
    if source is None:
        source = make_source(rules, data, kind=source_kind, progress=progress)
    plugins.call_lifecycle("before_run", rules=rules)
    connection = connect()
    try:
        with interruptible():
            load_accounts(rules, connection, accounts)
    except BaseException:
        connection.close()
        raise
    result = execute(plan, source, connection)
    try:
        plugins.call_lifecycle(
            "after_run", rules=rules, result_summary=summarize(result)
        )
    except BaseException:
        result.close()
        raise
    return result


def load_accounts(
    rules: RuleSet, connection: duckdb.DuckDBPyConnection, path: str | None = None
) -> None:
    """Read the file's accounts input into a temporary ``accounts`` table.

    Reading them up front means a bad signup date is reported against the
    accounts file, not the transactions. Does nothing without an accounts input.
    """
    if rules.accounts is None:
        if path is not None:
            raise UsageError(
                f"--accounts was given, but {rules.file} has no accounts input"
            )
        return
    reader = AccountReader(rules.accounts, path)
    statement = exp.Create(
        this=exp.to_table(ACCOUNTS),
        kind="TABLE",
        properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
        expression=reader.relation(connection),
    )
    try:
        connection.execute(statement.sql("duckdb"))
    except duckdb.Error as error:
        raise reader.read_error(error) from None


def summarize(result: Result) -> dict:
    """Build the ``result_summary`` that ``after_run`` hooks receive."""
    return {
        "file": result.plan.rules.file,
        "rows": result.row_count,
        "as_of": result.as_of.isoformat() if result.as_of is not None else None,
        "values": {item.name: item.value for item in result.summary},
    }


def compiled_sql(
    rules: RuleSet,
    *,
    data: str | None = None,
    as_of: str | None = None,
    limit: int | None = None,
    dialect: str = "duckdb",
    accounts: str | None = None,
    params: dict[str, Any] | None = None,
    source_kind: str | None = None,
) -> str:
    """Print the query a run would execute, in ``dialect``.

    Raises DataError, as a run would, when the data cannot be described, so
    the printed query is always one that runs.
    """
    check_dialect(dialect)
    plan: Plan = compile_with_plugins(rules, as_of=as_of, limit=limit, params=params)
    query: exp.Select = make_source(rules, data, kind=source_kind).describe(plan)
    if rules.accounts is not None:
        query = _with_accounts(query, rules.accounts, accounts)
    return query.sql(dialect=dialect, pretty=True)


def check_dialect(name: str) -> None:
    """Raise UsageError unless SQLGlot can print SQL in the dialect ``name``."""
    try:
        if not name.strip():
            raise ValueError("empty dialect name")
        Dialect.get_or_raise(name)
    except ValueError:
        known = ", ".join(sorted(d.value for d in Dialects if d.value))
        raise UsageError(
            f"unknown SQL dialect {name!r}; choose one of {known}"
        ) from None


def _with_accounts(query: exp.Select, spec, path: str | None) -> exp.Select:
    """Put the accounts relation first among the query's CTEs."""
    connection = duckdb.connect()
    try:
        relation = AccountReader(spec, path).relation(connection)
    finally:
        connection.close()
    query = query.copy()
    ctes = query.args["with_"].expressions
    ctes.insert(
        0,
        exp.CTE(this=relation, alias=exp.TableAlias(this=exp.to_identifier(ACCOUNTS))),
    )
    return query


__all__ = ["compile_rules", "compile_with_plugins", "compiled_sql", "load_rules", "run"]
