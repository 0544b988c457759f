"""Stage one: filters and per-customer aggregates over the transactions.

Builds the common table expressions that turn the ``transactions`` relation
into one record per customer, or per customer and ``per`` key values. They are
``evaluation`` (the as_of instant), ``purchases`` (the filtered rows), one
``metrics_N`` per dependency level and one subquery per ``mode`` metric. All are
joined into ``customer_metrics``, together with the account's signup instant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlglot import exp

from custan.compiler.aggregates import MODE, Aggregate, call
from custan.compiler.fields import (
    AS_OF_COLUMN,
    CUSTOMER_COLUMN,
    TRANSACTION_FIELDS,
)
from custan.compiler.graph import assign_levels, referenced_names
from custan.compiler.params import param_bindings
from custan.errors import RulesError
from custan.expressions.checker import Binding, Scope, compile_expression
from custan.expressions.functions import TRANSACTION, FunctionTable, Typed
from custan.expressions.types import Type
from custan.model.ruleset import Metric, RuleSet

TRANSACTIONS = "transactions"
ACCOUNTS = "accounts"
EVALUATION = "evaluation"
PURCHASES = "purchases"
SIGNUPS = "signups"
CUSTOMER_ROWS = "customer_rows"
CUSTOMER_METRICS = "customer_metrics"
# The signup instant of the customer's account, when the rules file has accounts.
ACCOUNT_CREATED_AT = "account_created_at"


def column(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table=table, quoted=True)


def interval(span: timedelta) -> exp.Interval:
    hours = int(span.total_seconds() // 3600)
    if hours % 24 == 0:
        return exp.Interval(
            this=exp.Literal.string(str(hours // 24)), unit=exp.var("DAY")
        )
    return exp.Interval(this=exp.Literal.string(str(hours)), unit=exp.var("HOUR"))


def window_condition(span: timedelta) -> exp.Expr:
    """created_at >= as_of - span; the upper bound as_of applies to every row."""
    start = exp.Sub(this=column(AS_OF_COLUMN), expression=interval(span))
    return exp.GTE(this=column("created_at"), expression=start)


@dataclass
class CompiledMetric:
    """A metric's SQL, its type and its dependency level."""

    metric: Metric
    type: Type
    level: int
    value: exp.Expr | None
    condition: exp.Expr | None
    aggregate: Aggregate | None


@dataclass
class MetricsStage:
    """The CTEs of stage one and the type of every column it adds per customer.

    ``types`` lists the ``per`` keys first, then the metrics, then
    ``account_created_at`` when the rules file reads accounts.
    """

    ctes: list[tuple[str, exp.Query]]
    types: dict[str, Type]
    metrics: dict[str, CompiledMetric] = field(default_factory=dict)
    keys: dict[str, Type] = field(default_factory=dict)


def transaction_scope(
    functions: FunctionTable,
    time_zone: str,
    metrics: dict[str, Type] | None = None,
    params: dict[str, Any] | None = None,
) -> Scope:
    names = param_bindings(params or {})
    for name, transaction_field in TRANSACTION_FIELDS.items():
        names[name] = Binding(transaction_field.type, column(transaction_field.column))
    names[AS_OF_COLUMN] = Binding(Type.INSTANT, column(AS_OF_COLUMN))
    for name, value_type in (metrics or {}).items():
        names[name] = Binding(value_type, column(name))
    return Scope(TRANSACTION, names, functions, column(AS_OF_COLUMN), time_zone)


def build_metrics_stage(
    rules: RuleSet,
    aggregates: dict[str, Aggregate],
    functions: FunctionTable,
    as_of: exp.Expr,
) -> MetricsStage:
    """Compile the filters and metrics of ``rules`` into stage-one CTEs."""
    _check_names(rules)
    keys = _compile_keys(rules, functions)
    key_types = {name: typed.type for name, typed in keys.items()}

    # A metric may read only keys and metrics of lower levels.
    levels = _metric_levels(rules)
    compiled: dict[str, CompiledMetric] = {}
    for name in sorted(rules.metrics, key=lambda n: levels[n]):
        known = {
            done: item.type
            for done, item in compiled.items()
            if item.level < levels[name]
        }
        compiled[name] = _compile_metric(
            rules,
            rules.metrics[name],
            levels[name],
            {**key_types, **known},
            aggregates,
            functions,
        )

    grain = list(keys)
    ctes: list[tuple[str, exp.Query]] = [
        (EVALUATION, _evaluation(as_of)),
        (PURCHASES, _purchases(rules, functions, keys)),
    ]
    ctes += _level_ctes(compiled, grain)
    accounts = rules.accounts is not None
    if accounts:
        ctes.append((SIGNUPS, _signups()))
    include_all = rules.accounts is not None and rules.accounts.include_all
    if include_all:
        ctes.append((CUSTOMER_ROWS, _customer_rows(grain)))
    ctes.append(
        (CUSTOMER_METRICS, _customer_metrics(compiled, grain, accounts, include_all))
    )

    types = {**key_types, **{name: item.type for name, item in compiled.items()}}
    if accounts:
        types[ACCOUNT_CREATED_AT] = Type.INSTANT
    return MetricsStage(ctes, types, compiled, key_types)


def _check_names(rules: RuleSet) -> None:
    reserved = {field.column for field in TRANSACTION_FIELDS.values()} | {AS_OF_COLUMN}
    reserved |= {"segment", "action", ACCOUNT_CREATED_AT}
    for name, metric in rules.metrics.items():
        if name in reserved:
            raise RulesError(
                f"'{name}' is reserved; choose another metric name", metric.location
            )
    for name, expr in rules.per.items():
        if name in reserved:
            raise RulesError(
                f"'{name}' is reserved; choose another key name", expr.location
            )
        if name in rules.metrics:
            raise RulesError(
                f"'{name}' is declared twice, as a per key and a metric", expr.location
            )


def _compile_keys(rules: RuleSet, functions: FunctionTable) -> dict[str, Typed]:
    """Compile the per keys, which each purchase computes from its own fields."""
    scope = transaction_scope(functions, rules.time_zone, params=rules.params)
    return {name: compile_expression(expr, scope) for name, expr in rules.per.items()}


def _metric_levels(rules: RuleSet) -> dict[str, int]:
    dependencies = {
        name: referenced_names([e for e in (metric.of, metric.where) if e is not None])
        & set(rules.metrics)
        for name, metric in rules.metrics.items()
    }
    locations = {name: metric.location for name, metric in rules.metrics.items()}
    return assign_levels(dependencies, locations)


def _compile_metric(
    rules: RuleSet,
    metric: Metric,
    level: int,
    known: dict[str, Type],
    aggregates: dict[str, Aggregate],
    functions: FunctionTable,
) -> CompiledMetric:
    scope = transaction_scope(functions, rules.time_zone, known, rules.params)
    value = compile_expression(metric.of, scope) if metric.of else None
    conditions = []
    if metric.where is not None:
        conditions.append(compile_expression(metric.where, scope, Type.BOOLEAN).node)
    if metric.window is not None:
        conditions.append(window_condition(metric.window))
    condition = exp.and_(*conditions) if conditions else None
    if metric.agg == MODE:
        if value is None:
            raise RulesError(
                "mode needs 'of': the field or expression to count", metric.location
            )
        return CompiledMetric(metric, value.type, level, value.node, condition, None)
    aggregate = aggregates.get(metric.agg)
    if aggregate is None:
        names = ", ".join(sorted([*aggregates, MODE]))
        raise RulesError(
            f"unknown aggregate '{metric.agg}'; available: {names}", metric.location
        )
    _check_value(metric, aggregate, value.type if value else None)
    value_type = aggregate.result_type(value.type if value else Type.INTEGER)
    return CompiledMetric(
        metric, value_type, level, value.node if value else None, condition, aggregate
    )


def _check_value(metric: Metric, aggregate: Aggregate, value_type: Type | None) -> None:
    if aggregate.needs_value and value_type is None:
        raise RulesError(
            f"{aggregate.name} needs 'of': the field or expression to aggregate",
            metric.location,
        )
    accepted = aggregate.accepts
    if value_type not in (None, Type.NULL) and accepted and value_type not in accepted:
        raise RulesError(
            f"{aggregate.name} cannot aggregate {value_type} values",
            metric.location,
        )


def _evaluation(as_of: exp.Expr) -> exp.Select:
    return exp.select(exp.alias_(as_of, AS_OF_COLUMN, quoted=True))


def latest_instant() -> exp.Expr:
    """Build the newest created_at among all rows of the source, before filters."""
    subquery = exp.select(call("max", column("created_at"))).from_(TRANSACTIONS)
    return exp.Subquery(this=subquery)


def _purchases(
    rules: RuleSet, functions: FunctionTable, keys: dict[str, Typed]
) -> exp.Select:
    scope = transaction_scope(functions, rules.time_zone, params=rules.params)
    conditions: list[exp.Expr] = [
        exp.LTE(this=column("created_at"), expression=column(AS_OF_COLUMN)),
        exp.Not(this=exp.Is(this=column(CUSTOMER_COLUMN), expression=exp.Null())),
    ]
    for expr in rules.filters:
        conditions.append(compile_expression(expr, scope, Type.BOOLEAN).node)
    for span in rules.windows:
        conditions.append(window_condition(span))
    key_values = [
        exp.alias_(typed.node, name, quoted=True) for name, typed in keys.items()
    ]
    return (
        exp.select(
            exp.Column(this=exp.Star(), table=exp.to_identifier(TRANSACTIONS)),
            column(AS_OF_COLUMN, EVALUATION),
            *key_values,
        )
        .from_(TRANSACTIONS)
        .join(EVALUATION, join_type="cross")
        .where(exp.and_(*conditions))
    )


def _level_ctes(
    compiled: dict[str, CompiledMetric], grain: list[str]
) -> list[tuple[str, exp.Select]]:
    ctes = []
    top = max((item.level for item in compiled.values()), default=1)
    for level in range(1, top + 1):
        simple = [
            item
            for item in compiled.values()
            if item.level == level and item.aggregate is not None
        ]
        ctes.append((f"metrics_{level}", _level_select(level, simple, compiled, grain)))
        for item in compiled.values():
            if item.level == level and item.aggregate is None:
                ctes.append(
                    (f"mode_{item.metric.name}", _mode_select(item, compiled, grain))
                )
    return ctes


def _table_of(item: CompiledMetric) -> str:
    """Return the name of the CTE that contains a metric's column."""
    if item.aggregate is None:
        return f"mode_{item.metric.name}"
    return f"metrics_{item.level}"


def _grain_columns(grain: list[str], table: str | None = None) -> list[exp.Column]:
    """Return the columns that identify a metrics row: customer, then per keys."""
    return [column(CUSTOMER_COLUMN, table)] + [column(key, table) for key in grain]


def _same_row(left: str, right: str, grain: list[str]) -> exp.Expr:
    """Build the join condition on the grain; a null per key matches a null key."""
    conditions: list[exp.Expr] = [
        exp.EQ(
            this=column(CUSTOMER_COLUMN, left),
            expression=column(CUSTOMER_COLUMN, right),
        )
    ]
    conditions += [
        exp.NullSafeEQ(this=column(key, left), expression=column(key, right))
        for key in grain
    ]
    return exp.and_(*conditions)


def _lower_tables(level: int, compiled: dict[str, CompiledMetric]) -> list[str]:
    tables = [f"metrics_{lower}" for lower in range(1, level)]
    tables += [
        _table_of(item)
        for item in compiled.values()
        if item.level < level and item.aggregate is None
    ]
    return tables


def _rows_for_level(
    level: int, compiled: dict[str, CompiledMetric], grain: list[str]
) -> exp.Select:
    """Join the purchases with the metrics of the lower levels this level reads."""
    lower = [item for item in compiled.values() if item.level < level]
    projections: list[exp.Expr] = [
        exp.Column(this=exp.Star(), table=exp.to_identifier(PURCHASES))
    ]
    projections += [column(item.metric.name, _table_of(item)) for item in lower]
    rows = exp.select(*projections).from_(PURCHASES)
    for table in _lower_tables(level, compiled):
        rows = rows.join(table, on=_same_row(PURCHASES, table, grain), join_type="left")
    return rows


def _level_select(
    level: int,
    items: list[CompiledMetric],
    compiled: dict[str, CompiledMetric],
    grain: list[str],
) -> exp.Select:
    projections: list[exp.Expr] = list(_grain_columns(grain))
    for item in items:
        assert item.aggregate is not None
        node = item.aggregate.build(item.value, item.condition)
        projections.append(exp.alias_(node, item.metric.name, quoted=True))
    source = _rows_for_level(level, compiled, grain).subquery("rows")
    return exp.select(*projections).from_(source).group_by(*_grain_columns(grain))


def _mode_select(
    item: CompiledMetric, compiled: dict[str, CompiledMetric], grain: list[str]
) -> exp.Select:
    """Select the most frequent non-null value per metrics row, ties to the smallest."""
    name = item.metric.name
    assert item.value is not None
    conditions: list[exp.Expr] = [
        exp.Not(this=exp.Is(this=item.value.copy(), expression=exp.Null()))
    ]
    if item.condition is not None:
        conditions.append(item.condition)
    values = (
        exp.select(*_grain_columns(grain), exp.alias_(item.value, "value", quoted=True))
        .from_(_rows_for_level(item.level, compiled, grain).subquery("rows"))
        .where(exp.and_(*conditions))
    )
    position = exp.Window(
        this=exp.Anonymous(this="row_number"),
        partition_by=_grain_columns(grain),
        order=exp.Order(
            expressions=[
                exp.Ordered(this=call("count", exp.Star()), desc=True),
                exp.Ordered(this=column("value"), desc=False),
            ]
        ),
        over="OVER",
    )
    counted = (
        exp.select(
            *_grain_columns(grain),
            column("value"),
            exp.alias_(position, "position", quoted=True),
        )
        .from_(values.subquery("candidate_values"))
        .group_by(*_grain_columns(grain), column("value"))
    )
    return (
        exp.select(
            *_grain_columns(grain), exp.alias_(column("value"), name, quoted=True)
        )
        .from_(counted.subquery("ranked_values"))
        .where(exp.EQ(this=column("position"), expression=exp.Literal.number(1)))
    )


def _signups() -> exp.Select:
    """Select one signup instant per account id; a repeated id keeps its earliest."""
    created = exp.alias_(call("min", column("created_at")), "created_at", quoted=True)
    return exp.select(column("id"), created).from_(ACCOUNTS).group_by(column("id"))


def _customer_rows(grain: list[str]) -> exp.Query:
    """Select the metrics rows and a null-key row for each account with no purchase."""
    active = exp.select(*_grain_columns(grain)).from_("metrics_1")
    bought = (
        exp.select(exp.Literal.number(1))
        .from_(PURCHASES)
        .where(
            exp.EQ(
                this=column(CUSTOMER_COLUMN, PURCHASES),
                expression=column("id", SIGNUPS),
            )
        )
    )
    idle = (
        exp.select(
            exp.alias_(column("id", SIGNUPS), CUSTOMER_COLUMN, quoted=True),
            *[exp.alias_(exp.Null(), key, quoted=True) for key in grain],
        )
        .from_(SIGNUPS)
        .where(exp.Not(this=exp.Exists(this=bought)))
    )
    return exp.union(active, idle, distinct=False)


def _metric_column(item: CompiledMetric, include_all: bool) -> exp.Expr:
    value: exp.Expr = column(item.metric.name, _table_of(item))
    empty = item.aggregate.empty if item.aggregate is not None else None
    if include_all and empty is not None:
        # An account with no purchase has spent 0 and bought 0 times, not NULL.
        value = exp.Coalesce(this=value, expressions=[exp.Literal.number(empty)])
    return exp.alias_(value, item.metric.name, quoted=True)


def _customer_metrics(
    compiled: dict[str, CompiledMetric],
    grain: list[str],
    accounts: bool,
    include_all: bool,
) -> exp.Select:
    base = CUSTOMER_ROWS if include_all else "metrics_1"
    projections: list[exp.Expr] = list(_grain_columns(grain, base))
    projections += [_metric_column(item, include_all) for item in compiled.values()]
    projections.append(column(AS_OF_COLUMN, EVALUATION))
    if accounts:
        projections.append(
            exp.alias_(column("created_at", SIGNUPS), ACCOUNT_CREATED_AT, quoted=True)
        )
    query = exp.select(*projections).from_(base)
    top = max((item.level for item in compiled.values()), default=1)
    tables = [f"metrics_{level}" for level in range(1 if include_all else 2, top + 1)]
    tables += [_table_of(item) for item in compiled.values() if item.aggregate is None]
    for table in tables:
        query = query.join(table, on=_same_row(base, table, grain), join_type="left")
    query = query.join(EVALUATION, join_type="cross")
    if accounts:
        matches = exp.EQ(
            this=column(CUSTOMER_COLUMN, base), expression=column("id", SIGNUPS)
        )
        query = query.join(SIGNUPS, on=matches, join_type="left")
    return query
