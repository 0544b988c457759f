"""Stage two: derived values, scores, tiers and segments over customer records.

Each definition becomes a column of a select over ``customer_metrics``. The
definitions are ordered by what they read, and each dependency level becomes
one CTE, so a score may read a derived value and a segment may read a score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from custan.compiler.fields import AS_OF_COLUMN, CUSTOMER_COLUMN, RESERVED_NAMES
from custan.compiler.graph import assign_levels, referenced_names
from custan.compiler.metrics_stage import CUSTOMER_METRICS, column
from custan.compiler.params import param_bindings
from custan.errors import Location, RulesError
from custan.expressions import sql
from custan.expressions.checker import Binding, Scope, compile_expression
from custan.expressions.functions import CUSTOMER, FunctionTable
from custan.expressions.types import NUMERIC, Type
from custan.model.ruleset import Band, Expr, RuleSet

SEGMENT = "segment"
ACTION = "action"


@dataclass
class Definition:
    """A customer-level name: what it reads and how to compile it."""

    name: str
    reads: list[Expr]
    location: Location | None


@dataclass
class RulesStage:
    """The CTEs of stage two, the last CTE's name and each column's type."""

    ctes: list[tuple[str, exp.Select]]
    final: str
    types: dict[str, Type]
    declared: list[str]


def customer_scope(
    types: dict[str, Type],
    functions: FunctionTable,
    time_zone: str,
    kind: str = CUSTOMER,
    params: dict[str, Any] | None = None,
) -> Scope:
    names = param_bindings(params or {})
    for name, value_type in types.items():
        names[name] = Binding(value_type, column(name))
    return Scope(kind, names, functions, column(AS_OF_COLUMN), time_zone)


def build_rules_stage(
    rules: RuleSet, metric_types: dict[str, Type], functions: FunctionTable
) -> RulesStage:
    """Compile derived values, scores, tiers and segments into stage-two CTEs."""
    definitions = _definitions(rules, metric_types)
    levels = assign_levels(
        {d.name: referenced_names(d.reads) for d in definitions.values()},
        {d.name: d.location for d in definitions.values()},
    )
    types = {CUSTOMER_COLUMN: Type.TEXT, AS_OF_COLUMN: Type.INSTANT, **metric_types}
    ctes: list[tuple[str, exp.Select]] = []
    previous = CUSTOMER_METRICS
    for level in sorted(set(levels.values())):
        names = [name for name in definitions if levels[name] == level]
        projections: list[exp.Expr] = [exp.Star()]
        for name in names:
            node, types[name] = _compile(rules, name, types, functions)
            projections.append(exp.alias_(node, name, quoted=True))
        cte_name = f"rules_{level}"
        ctes.append((cte_name, exp.select(*projections).from_(previous)))
        previous = cte_name
    declared = [*metric_types, *rules.derived, *rules.scores, *rules.tiers]
    return RulesStage(ctes, previous, types, declared)


def _definitions(
    rules: RuleSet, metric_types: dict[str, Type]
) -> dict[str, Definition]:
    definitions: dict[str, Definition] = {}

    def add(name: str, reads: list[Expr], location: Location | None) -> None:
        if name in RESERVED_NAMES and name not in (SEGMENT, ACTION):
            raise RulesError(f"'{name}' is reserved; choose another name", location)
        if name in definitions or name in metric_types:
            raise RulesError(f"'{name}' is declared twice", location)
        definitions[name] = Definition(name, reads, location)

    for name, expr in rules.derived.items():
        add(name, [expr], expr.location)
    for name, score in rules.scores.items():
        add(name, [score.of], score.location)
    for name, tier in rules.tiers.items():
        add(name, [tier.of], tier.location)
    if rules.segments:
        conditions = [s.when for s in rules.segments if s.when is not None]
        add(SEGMENT, conditions, rules.segments[0].location)
        add(
            ACTION,
            [Expr(SEGMENT, rules.segments[0].location)],
            rules.segments[0].location,
        )
    return definitions


def _compile(
    rules: RuleSet, name: str, types: dict[str, Type], functions: FunctionTable
) -> tuple[exp.Expr, Type]:
    scope = customer_scope(types, functions, rules.time_zone, params=rules.params)
    if name in rules.derived:
        typed = compile_expression(rules.derived[name], scope)
        return typed.node, typed.type
    if name in rules.scores:
        return _score(rules, name, scope), Type.INTEGER
    if name in rules.tiers:
        tier = rules.tiers[name]
        value = _numeric(tier.of, scope)
        return _bands(value, tier.levels, exp.Literal.string(tier.default)), Type.TEXT
    if name == SEGMENT:
        return _segment_case(rules, scope), Type.TEXT
    return _action_case(rules), Type.TEXT


def _numeric(expr: Expr, scope: Scope) -> exp.Expr:
    typed = compile_expression(expr, scope)
    if typed.type not in NUMERIC and typed.type is not Type.NULL:
        raise RulesError(
            f"bands need a number, but this is {typed.type}", expr.location
        )
    return typed.node


def _score(rules: RuleSet, name: str, scope: Scope) -> exp.Expr:
    score = rules.scores[name]
    value = _numeric(score.of, scope)
    if score.quantiles is not None:
        return sql.tie_safe_ntile(
            score.quantiles, value, descending=score.better == "lower"
        )
    return _bands(value, score.bands, exp.Literal.number(score.default))


_OPERATORS = {"<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE}


def _bands(value: exp.Expr, bands: list[Band], default: exp.Expr) -> exp.Case:
    """CASE over the bands in order; the first that matches wins."""
    branches = []
    for band in bands:
        test = _OPERATORS[band.operator](
            this=value.copy(), expression=exp.Literal.number(str(band.bound))
        )
        result = (
            exp.Literal.string(band.result)
            if isinstance(band.result, str)
            else exp.Literal.number(band.result)
        )
        branches.append(exp.If(this=test, true=result))
    return exp.Case(ifs=branches, default=default)


def _segment_case(rules: RuleSet, scope: Scope) -> exp.Case:
    """Pick the first segment whose condition is true, else the default."""
    branches = []
    for segment in rules.segments[:-1]:
        assert segment.when is not None
        condition = compile_expression(segment.when, scope, Type.BOOLEAN).node
        branches.append(exp.If(this=condition, true=exp.Literal.string(segment.name)))
    return exp.Case(ifs=branches, default=exp.Literal.string(rules.segments[-1].name))


def _action_case(rules: RuleSet) -> exp.Expr:
    """Look up the action of the chosen segment by the segment's name."""
    branches = [
        exp.If(
            this=exp.EQ(this=column(SEGMENT), expression=exp.Literal.string(s.name)),
            true=exp.Literal.string(s.action),
        )
        for s in rules.segments
        if s.action is not None
    ]
    if not branches:
        return sql.cast(exp.Null(), "VARCHAR")
    return exp.Case(ifs=branches)
