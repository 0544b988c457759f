"""Stage one: filters and per-customer aggregates over the transactions.

Builds the common table expressions that turn the ``transactions`` relation
into one record per customer: ``evaluation`` (the as_of instant),
``purchases`` (the filtered rows), one ``metrics_N`` per dependency level and
one subquery per ``mode`` metric, joined into ``customer_metrics``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlglot import exp

from custan.compiler.aggregates import MODE, Aggregate, call
from custan.compiler.fields import (
    AS_OF_COLUMN,
    CUSTOMER_COLUMN,
    TRANSACTION_FIELDS,
)
from custan.compiler.graph import assign_levels, referenced_names
from custan.errors import RulesError
from custan.expressions.checker import Binding, Scope, compile_expression
from custan.expressions.functions import TRANSACTION, FunctionTable
from custan.expressions.types import Type
from custan.model.ruleset import Metric, RuleSet

TRANSACTIONS = "transactions"
EVALUATION = "evaluation"
PURCHASES = "purchases"
CUSTOMER_METRICS = "customer_metrics"


def column(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table=table, quoted=True)


def interval(span: timedelta) -> exp.Interval:
    hours = int(span.total_seconds() // 3600)
    if hours % 24 == 0:
        return exp.Interval(this=exp.Literal.string(str(hours // 24)), unit=exp.var("DAY"))
    return exp.Interval(this=exp.Literal.string(str(hours)), unit=exp.var("HOUR"))


def window_condition(span: timedelta) -> exp.Expression:
    """created_at >= as_of - span; the upper bound as_of applies to every row."""
    start = exp.Sub(this=column(AS_OF_COLUMN), expression=interval(span))
    return exp.GTE(this=column("created_at"), expression=start)


@dataclass
class CompiledMetric:
    """A metric's SQL, its type and its dependency level."""

    metric: Metric
    type: Type
    level: int
    value: exp.Expression | None
    condition: exp.Expression | None
    aggregate: Aggregate | None


@dataclass
class MetricsStage:
    """The CTEs of stage one and the type of every metric column."""

    ctes: list[tuple[str, exp.Select]]
    types: dict[str, Type]
    metrics: dict[str, CompiledMetric] = field(default_factory=dict)


def transaction_scope(functions: FunctionTable, time_zone: str,
                      metrics: dict[str, Type] | None = None) -> Scope:
    names = {
        name: Binding(field.type, column(field.column))
        for name, field in TRANSACTION_FIELDS.items()
    }
    names[AS_OF_COLUMN] = Binding(Type.INSTANT, column(AS_OF_COLUMN))
    for name, value_type in (metrics or {}).items():
        names[name] = Binding(value_type, column(name))
    return Scope(TRANSACTION, names, functions, column(AS_OF_COLUMN), time_zone)


def build_metrics_stage(
    rules: RuleSet,
    aggregates: dict[str, Aggregate],
    functions: FunctionTable,
    as_of: exp.Expression,
) -> MetricsStage:
    """Compile the filters and metrics of ``rules`` into stage-one CTEs."""
    _check_names(rules)
    levels = _metric_levels(rules)
    compiled: dict[str, CompiledMetric] = {}
    for name in sorted(rules.metrics, key=lambda n: levels[n]):
        known = {done: item.type for done, item in compiled.items()
                 if item.level < levels[name]}
        compiled[name] = _compile_metric(rules, rules.metrics[name], levels[name],
                                         known, aggregates, functions)
    ctes = [
        (EVALUATION, _evaluation(as_of)),
        (PURCHASES, _purchases(rules, functions)),
    ]
    ctes += _level_ctes(compiled)
    ctes.append((CUSTOMER_METRICS, _customer_metrics(compiled)))
    types = {name: item.type for name, item in compiled.items()}
    return MetricsStage(ctes, types, compiled)


def _check_names(rules: RuleSet) -> None:
    taken = {field.column for field in TRANSACTION_FIELDS.values()} | {AS_OF_COLUMN}
    for name, metric in rules.metrics.items():
        if name in taken or name in ("segment", "action"):
            raise RulesError(f"'{name}' is reserved; choose another metric name",
                             metric.location)


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
    scope = transaction_scope(functions, rules.time_zone, known)
    value = compile_expression(metric.of, scope) if metric.of else None
    conditions = []
    if metric.where is not None:
        conditions.append(compile_expression(metric.where, scope, Type.BOOLEAN).node)
    if metric.window is not None:
        conditions.append(window_condition(metric.window))
    condition = exp.and_(*conditions) if conditions else None
    if metric.agg == MODE:
        if value is None:
            raise RulesError("mode needs 'of': the field or expression to count",
                             metric.location)
        return CompiledMetric(metric, value.type, level, value.node, condition, None)
    aggregate = aggregates.get(metric.agg)
    if aggregate is None:
        names = ", ".join(sorted([*aggregates, MODE]))
        raise RulesError(f"unknown aggregate '{metric.agg}'; available: {names}",
                         metric.location)
    _check_value(metric, aggregate, value.type if value else None)
    value_type = aggregate.result_type(value.type if value else Type.INTEGER)
    return CompiledMetric(metric, value_type, level, value.node if value else None,
                          condition, aggregate)


def _check_value(metric: Metric, aggregate: Aggregate, value_type: Type | None) -> None:
    if aggregate.needs_value and value_type is None:
        raise RulesError(f"{aggregate.name} needs 'of': the field or expression to aggregate",
                         metric.location)
    if value_type is not None and aggregate.accepts is not None:
        if value_type not in aggregate.accepts and value_type is not Type.NULL:
            raise RulesError(
                f"{aggregate.name} cannot aggregate {value_type} values", metric.location
            )


def _evaluation(as_of: exp.Expression) -> exp.Select:
    return exp.select(exp.alias_(as_of, AS_OF_COLUMN, quoted=True))


def latest_instant() -> exp.Expression:
    """The newest created_at among all rows of the source, before any filter."""
    subquery = exp.select(call("max", column("created_at"))).from_(TRANSACTIONS)
    return exp.Subquery(this=subquery)


def _purchases(rules: RuleSet, functions: FunctionTable) -> exp.Select:
    scope = transaction_scope(functions, rules.time_zone)
    conditions: list[exp.Expression] = [
        exp.LTE(this=column("created_at"), expression=column(AS_OF_COLUMN)),
        exp.Not(this=exp.Is(this=column(CUSTOMER_COLUMN), expression=exp.Null())),
    ]
    for expr in rules.filters:
        conditions.append(compile_expression(expr, scope, Type.BOOLEAN).node)
    for span in rules.windows:
        conditions.append(window_condition(span))
    return (
        exp.select(exp.Column(this=exp.Star(), table=exp.to_identifier(TRANSACTIONS)),
                   column(AS_OF_COLUMN, EVALUATION))
        .from_(TRANSACTIONS)
        .join(EVALUATION, join_type="cross")
        .where(exp.and_(*conditions))
    )


def _level_ctes(compiled: dict[str, CompiledMetric]) -> list[tuple[str, exp.Select]]:
    ctes = []
    top = max((item.level for item in compiled.values()), default=1)
    for level in range(1, top + 1):
        simple = [item for item in compiled.values()
                  if item.level == level and item.aggregate is not None]
        ctes.append((f"metrics_{level}", _level_select(level, simple, compiled)))
        for item in compiled.values():
            if item.level == level and item.aggregate is None:
                ctes.append((f"mode_{item.metric.name}", _mode_select(item, compiled)))
    return ctes


def _rows_for_level(level: int, compiled: dict[str, CompiledMetric]) -> exp.Select:
    """The purchases, joined with the metrics of lower levels that this level reads."""
    rows = exp.select(exp.Star()).from_(PURCHASES)
    for lower in range(1, level):
        rows = rows.join(f"metrics_{lower}", using=[CUSTOMER_COLUMN], join_type="left")
        for item in compiled.values():
            if item.level == lower and item.aggregate is None:
                rows = rows.join(f"mode_{item.metric.name}", using=[CUSTOMER_COLUMN],
                                 join_type="left")
    return rows


def _level_select(level: int, items: list[CompiledMetric],
                  compiled: dict[str, CompiledMetric]) -> exp.Select:
    projections: list[exp.Expression] = [column(CUSTOMER_COLUMN)]
    for item in items:
        assert item.aggregate is not None
        node = item.aggregate.build(item.value, item.condition)
        projections.append(exp.alias_(node, item.metric.name, quoted=True))
    source = _rows_for_level(level, compiled).subquery("rows")
    return exp.select(*projections).from_(source).group_by(column(CUSTOMER_COLUMN))


def _mode_select(item: CompiledMetric, compiled: dict[str, CompiledMetric]) -> exp.Select:
    """The most frequent non-null value per customer; ties go to the smallest value."""
    name = item.metric.name
    assert item.value is not None
    conditions = [exp.Not(this=exp.Is(this=item.value.copy(), expression=exp.Null()))]
    if item.condition is not None:
        conditions.append(item.condition)
    values = (
        exp.select(column(CUSTOMER_COLUMN), exp.alias_(item.value, "value", quoted=True))
        .from_(_rows_for_level(item.level, compiled).subquery("rows"))
        .where(exp.and_(*conditions))
    )
    position = exp.Window(
        this=exp.Anonymous(this="row_number"),
        partition_by=[column(CUSTOMER_COLUMN)],
        order=exp.Order(expressions=[
            exp.Ordered(this=call("count", exp.Star()), desc=True),
            exp.Ordered(this=column("value"), desc=False),
        ]),
        over="OVER",
    )
    counted = (
        exp.select(column(CUSTOMER_COLUMN), column("value"),
                   exp.alias_(position, "position", quoted=True))
        .from_(values.subquery("candidate_values"))
        .group_by(column(CUSTOMER_COLUMN), column("value"))
    )
    return (
        exp.select(column(CUSTOMER_COLUMN), exp.alias_(column("value"), name, quoted=True))
        .from_(counted.subquery("ranked_values"))
        .where(exp.EQ(this=column("position"), expression=exp.Literal.number(1)))
    )


def _customer_metrics(compiled: dict[str, CompiledMetric]) -> exp.Select:
    projections: list[exp.Expression] = [column(CUSTOMER_COLUMN, "metrics_1")]
    projections += [column(name) for name in compiled]
    projections.append(column(AS_OF_COLUMN, EVALUATION))
    query = exp.select(*projections).from_("metrics_1")
    top = max((item.level for item in compiled.values()), default=1)
    for level in range(2, top + 1):
        query = query.join(f"metrics_{level}", using=[CUSTOMER_COLUMN], join_type="left")
    for item in compiled.values():
        if item.aggregate is None:
            query = query.join(f"mode_{item.metric.name}", using=[CUSTOMER_COLUMN],
                               join_type="left")
    return query.join(EVALUATION, join_type="cross")
