"""The final select: which rows and columns a run writes, in what order.

Per-customer output selects columns from the last rules CTE; grouped output
aggregates them per group. Summary lines are aggregates over the written rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from custan.compiler.fields import AS_OF_COLUMN, CUSTOMER_COLUMN
from custan.compiler.metrics_stage import column
from custan.compiler.rules_stage import ACTION, SEGMENT, RulesStage, customer_scope
from custan.errors import RulesError
from custan.expressions.checker import Binding, compile_expression
from custan.expressions.functions import GROUP, FunctionTable
from custan.expressions.types import Type
from custan.model.ruleset import RuleSet

RESULT_TABLE = "custan_result"


@dataclass(frozen=True)
class OutputColumn:
    """A written column and its type, which decides how it is formatted."""

    name: str
    type: Type


@dataclass(frozen=True)
class Summary:
    """A named summary value: its aggregate over the result table and its type."""

    name: str
    node: exp.Expr
    type: Type


@dataclass
class OutputStage:
    final: exp.Select
    columns: list[OutputColumn]
    grouped: bool
    summaries: list[Summary]


def build_output_stage(
    rules: RuleSet, stage: RulesStage, functions: FunctionTable, limit: int | None
) -> OutputStage:
    output = rules.output
    grouped = output.group_by is not None or bool(output.values)
    if grouped:
        final, columns = _grouped(rules, stage, functions)
    else:
        final, columns = _per_customer(rules, stage, functions)
    limit = limit if limit is not None else output.limit
    if limit is not None:
        final = final.limit(limit)
    summaries = _summaries(rules, columns, functions)
    return OutputStage(final, columns, grouped, summaries)


def _where(
    rules: RuleSet, stage: RulesStage, functions: FunctionTable
) -> exp.Expr | None:
    if rules.output.where is None:
        return None
    scope = customer_scope(stage.types, functions, rules.time_zone, params=rules.params)
    return compile_expression(rules.output.where, scope, Type.BOOLEAN).node


def _per_customer(
    rules: RuleSet, stage: RulesStage, functions: FunctionTable
) -> tuple[exp.Select, list[OutputColumn]]:
    output = rules.output
    names = output.columns if output.columns is not None else list(stage.declared)
    if output.columns is None and rules.segments:
        names += [SEGMENT, ACTION]
    for name in names:
        _require_name(rules, name, stage.types, "output.columns")
    columns = [OutputColumn(CUSTOMER_COLUMN, Type.TEXT)]
    columns += [
        OutputColumn(name, stage.types[name])
        for name in names
        if name != CUSTOMER_COLUMN
    ]
    projections = [column(c.name) for c in columns] + [column(AS_OF_COLUMN)]
    query = exp.select(*projections).from_(stage.final)
    where = _where(rules, stage, functions)
    if where is not None:
        query = query.where(where)
    order = _order(rules, stage.types, [CUSTOMER_COLUMN, *rules.per])
    return query.order_by(*order), columns


def _grouped(
    rules: RuleSet, stage: RulesStage, functions: FunctionTable
) -> tuple[exp.Select, list[OutputColumn]]:
    output = rules.output
    keys = output.group_by or []
    for key in keys:
        _require_name(rules, key, stage.types, "output.group_by")
    scope = customer_scope(
        stage.types, functions, rules.time_zone, kind=GROUP, params=rules.params
    )
    scope.allow_aggregates = True
    # as_of is one instant for every row, so a group may read it like a grouped key.
    same_instant = exp.Anonymous(this="any_value", expressions=[column(AS_OF_COLUMN)])
    scope.names[AS_OF_COLUMN] = Binding(Type.INSTANT, same_instant)

    columns = [OutputColumn(key, stage.types[key]) for key in keys]
    projections: list[exp.Expr] = [column(key) for key in keys]
    value_types: dict[str, Type] = {}
    for name, expr in output.values.items():
        if name == AS_OF_COLUMN:
            raise RulesError(
                f"'{name}' is reserved; choose another name", expr.location
            )
        typed = compile_expression(expr, scope)
        if not typed.aggregate:
            raise RulesError(
                "a grouped value must aggregate the group, "
                "such as count(*) or sum(total)",
                expr.location,
            )
        projections.append(exp.alias_(typed.node, name, quoted=True))
        columns.append(OutputColumn(name, typed.type))
        value_types[name] = typed.type

    # Kept but not written, as in per-customer output, so the caption shows as_of.
    projections.append(exp.alias_(same_instant.copy(), AS_OF_COLUMN, quoted=True))

    query = exp.select(*projections).from_(stage.final)
    where = _where(rules, stage, functions)
    if where is not None:
        query = query.where(where)
    if keys:
        query = query.group_by(*[column(key) for key in keys])
    order = _order(rules, {**{k: stage.types[k] for k in keys}, **value_types}, keys)
    return (query.order_by(*order) if order else query), columns


def _require_name(
    rules: RuleSet, name: str, types: dict[str, Type], field: str
) -> None:
    if name not in types:
        known = ", ".join(sorted(types))
        raise RulesError(
            f"unknown name '{name}' in {field}; declared names: {known}",
            rules.output.location,
        )


def _order(
    rules: RuleSet, types: dict[str, Type], tie_breakers: list[str]
) -> list[exp.Ordered]:
    """Order by the declared keys, then tie-breakers, so input order never shows."""
    keys = []
    for name, descending in rules.output.sort:
        _require_name(rules, name, types, "output.sort")
        keys.append(exp.Ordered(this=column(name), desc=descending, nulls_first=False))
    used = {name for name, _ in rules.output.sort}
    for name in tie_breakers:
        if name not in used:
            keys.append(exp.Ordered(this=column(name), desc=False, nulls_first=False))
    return keys


def _summaries(
    rules: RuleSet, columns: list[OutputColumn], functions: FunctionTable
) -> list[Summary]:
    types = {c.name: c.type for c in columns}
    scope = customer_scope(
        types, functions, rules.time_zone, kind=GROUP, params=rules.params
    )
    scope.allow_aggregates = True
    summaries = []
    for name, expr in rules.output.summary.values.items():
        typed = compile_expression(expr, scope)
        summaries.append(Summary(name, typed.node, typed.type))
    return summaries


def summary_query(summaries: list[Summary]) -> exp.Select:
    """Select every summary value as one row computed over the result table."""
    projections = [
        exp.alias_(summary.node.copy(), summary.name, quoted=True)
        for summary in summaries
    ]
    return exp.select(*projections).from_(RESULT_TABLE)
