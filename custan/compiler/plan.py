"""Compile a RuleSet into a Plan: the SQLGlot trees of both stages.

A Plan renders as one query over a ``transactions`` relation that a source
supplies, or as the rules stage alone over a ``customer_metrics`` table that
a source such as Payload fills with pushed-down aggregates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlglot import exp

from custan.compiler.aggregates import BUILTIN_AGGREGATES, Aggregate
from custan.compiler.fields import TRANSACTION_FIELDS
from custan.compiler.metrics_stage import (
    ACCOUNTS,
    TRANSACTIONS,
    MetricsStage,
    build_metrics_stage,
    latest_instant,
)
from custan.compiler.output_stage import (
    OutputColumn,
    OutputStage,
    Summary,
    build_output_stage,
)
from custan.compiler.params import check_param_names, with_overrides
from custan.compiler.rules_stage import RulesStage, build_rules_stage
from custan.errors import Location, RulesError
from custan.expressions import sql
from custan.expressions.functions import FunctionTable, builtin_table
from custan.model.ruleset import RuleSet


@dataclass
class Plan:
    """Both stages of a rules file, ready to render for an engine."""

    rules: RuleSet
    metrics: MetricsStage
    stage: RulesStage
    output: OutputStage
    as_of: exp.Expr

    @property
    def columns(self) -> list[OutputColumn]:
        return self.output.columns

    @property
    def summaries(self) -> list[Summary]:
        return self.output.summaries

    @property
    def grouped(self) -> bool:
        return self.output.grouped

    def query(
        self,
        transactions: exp.Expr | None = None,
        accounts: exp.Expr | None = None,
    ) -> exp.Select:
        """Render the whole rules file as one query over the transactions and accounts.

        Without an argument the query reads a table named ``transactions``, and
        a file with accounts reads a table named ``accounts`` (id, created_at).
        """
        ctes: list[tuple[str, exp.Expr]] = []
        if transactions is not None:
            ctes.append((TRANSACTIONS, transactions))
        if accounts is not None:
            ctes.append((ACCOUNTS, accounts))
        ctes += self.metrics.ctes
        ctes += self.stage.ctes
        return _with_ctes(self.output.final, ctes)

    def fields_read(self) -> set[str]:
        """Return the transaction fields stage one reads; a source may skip the rest.

        The customer and created_at are always read: every purchase needs a
        customer, and as_of bounds every row.
        """
        by_column = {field.column: name for name, field in TRANSACTION_FIELDS.items()}
        names = {"created_at", "sender.account_id"}
        for _, cte in self.metrics.ctes:
            for column in cte.find_all(exp.Column):
                if column.name in by_column:
                    names.add(by_column[column.name])
        return names

    def rules_query(self) -> exp.Select:
        """Stage two alone, reading a ``customer_metrics`` table."""
        return _with_ctes(self.output.final, list(self.stage.ctes))


def _with_ctes(final: exp.Select, ctes: list[tuple[str, exp.Expr]]) -> exp.Select:
    query = final.copy()
    for name, select in ctes:
        query = query.with_(name, as_=select.copy())
    return query


def default_aggregates() -> dict[str, Aggregate]:
    return {aggregate.name: aggregate for aggregate in BUILTIN_AGGREGATES}


def compile_rules(
    rules: RuleSet,
    *,
    as_of: str | None = None,
    limit: int | None = None,
    functions: FunctionTable | None = None,
    aggregates: dict[str, Aggregate] | None = None,
    now: datetime | None = None,
    params: dict[str, Any] | None = None,
) -> Plan:
    """Check every name and type in ``rules`` and build its Plan.

    Args:
        as_of: replaces the file's ``as_of`` (latest, now, or an ISO instant).
        limit: replaces the file's output limit.
        now: the instant ``now`` stands for; the current time by default.
        params: replace values of the file's ``params``; each must be declared.

    Raises RulesError for anything wrong in the rules, before any data is read.
    """
    rules = with_overrides(rules, params)
    check_param_names(rules)
    functions = functions or builtin_table()
    aggregates = aggregates or default_aggregates()
    location = rules.as_of_location if as_of is None else Location("--as-of")
    as_of_node = as_of_expression(
        rules.as_of if as_of is None else as_of, location, now
    )
    metrics = build_metrics_stage(rules, aggregates, functions, as_of_node)
    stage = build_rules_stage(rules, metrics.types, functions)
    output = build_output_stage(rules, stage, functions, limit)
    return Plan(rules, metrics, stage, output, as_of_node)


def parse_instant(text: str) -> datetime:
    """Parse an ISO 8601 instant or date; one without an offset is UTC."""
    value = datetime.fromisoformat(
        text.strip().replace(" ", "T", 1) if len(text) > 10 else text
    )
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def as_of_expression(
    text: str, location: Location, now: datetime | None = None
) -> exp.Expr:
    """Build the SQL of the evaluation instant: latest, now, or a fixed instant."""
    choice = text.strip().lower()
    if choice == "latest":
        return latest_instant()
    if choice == "now":
        instant = (now or datetime.now(UTC)).astimezone(UTC)
    else:
        try:
            instant = parse_instant(text)
        except ValueError:
            raise RulesError(
                f"invalid as_of {text!r}; use latest, now, or an ISO 8601 instant "
                "such as 2024-06-30 or 2024-06-30T12:00:00Z",
                location,
            ) from None
    literal = exp.Literal.string(instant.isoformat())
    return sql.cast(literal, "TIMESTAMPTZ")


__all__ = ["Plan", "compile_rules", "TRANSACTION_FIELDS"]
