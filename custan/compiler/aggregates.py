"""Per-customer aggregates that metrics may use, and how each compiles.

Each aggregate builds one SQL aggregate expression evaluated in a GROUP BY
over a customer's transactions. ``mode`` is the exception: the metrics stage
compiles it as a ranked subquery.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlglot import exp

from custan.expressions import sql
from custan.expressions.types import NUMERIC, Type

Builder = Callable[[exp.Expr | None, exp.Expr | None], exp.Expr]


@dataclass(frozen=True)
class Aggregate:
    """A metric aggregate: what it accepts, what it returns, how it compiles.

    ``build(value, condition)`` receives the SQL of the metric's ``of``
    (None when the aggregate takes no value) and of its filter (None when
    there is none) and returns an aggregate expression.
    """

    name: str
    build: Builder
    result_type: Callable[[Type], Type]
    needs_value: bool = True
    accepts: frozenset[Type] | None = None
    summary: str = ""
    payload_function: str | None = None
    # The value for a customer row with no transactions at all, if it has one.
    empty: int | None = None


def call(name: str, *args: exp.Expr) -> exp.Anonymous:
    return exp.Anonymous(this=name, expressions=list(args))


def filtered(aggregate: exp.Expr, condition: exp.Expr | None) -> exp.Expr:
    """Attach ``FILTER (WHERE condition)`` to an aggregate when there is a condition."""
    if condition is None:
        return aggregate
    return exp.Filter(this=aggregate, expression=exp.Where(this=condition))


def _sum(value, condition):
    # A customer with no matching rows has spent 0, not NULL.
    return exp.Coalesce(
        this=filtered(call("sum", value), condition), expressions=[sql.number(0)]
    )


def _count(value, condition):
    target = value if value is not None else exp.Star()
    return filtered(call("count", target), condition)


def _count_distinct(value, condition):
    return filtered(
        exp.Anonymous(this="count", expressions=[exp.Distinct(expressions=[value])]),
        condition,
    )


def _avg(value, condition):
    assert value is not None, "avg needs a value"
    total = filtered(call("sum", value), condition)
    rows = filtered(
        call("count", value.copy()), condition.copy() if condition else None
    )
    return sql.exact_divide(total, rows)


def _extreme(name: str) -> Builder:
    def build(value: exp.Expr | None, condition: exp.Expr | None) -> exp.Expr:
        assert value is not None, f"{name} needs a value"
        return filtered(call(name, value), condition)

    return build


def _struct(**parts: exp.Expr) -> exp.Struct:
    return exp.Struct(
        expressions=[
            exp.PropertyEQ(this=exp.to_identifier(key), expression=node)
            for key, node in parts.items()
        ]
    )


def _picked(latest: bool) -> Builder:
    """Pick the value at the earliest (or latest) instant, ties to the smallest."""

    def build(value, condition):
        instant = exp.column("created_at", quoted=True)
        when: exp.Expr = call("epoch_us", instant)
        if latest:
            when = exp.Neg(this=when)
        smallest = filtered(call("min", _struct(t=when, v=value)), condition)
        return exp.Bracket(this=smallest, expressions=[exp.Literal.string("v")])

    return build


def _same(value_type: Type) -> Type:
    return value_type


def _money_or_decimal(value_type: Type) -> Type:
    return Type.MONEY if value_type is Type.MONEY else Type.DECIMAL


def _integer(value_type: Type) -> Type:
    return Type.INTEGER


BUILTIN_AGGREGATES = [
    Aggregate(
        "sum",
        _sum,
        _same,
        accepts=NUMERIC,
        summary="total; 0 with no rows",
        payload_function="sum",
        empty=0,
    ),
    Aggregate(
        "avg",
        _avg,
        _money_or_decimal,
        accepts=NUMERIC,
        summary="exact decimal mean (sum / count)",
    ),
    Aggregate(
        "count",
        _count,
        _integer,
        needs_value=False,
        summary="number of transactions",
        payload_function="count",
        empty=0,
    ),
    Aggregate(
        "count_distinct",
        _count_distinct,
        _integer,
        summary="number of distinct values",
        empty=0,
    ),
    Aggregate(
        "min", _extreme("min"), _same, summary="smallest value", payload_function="min"
    ),
    Aggregate(
        "max", _extreme("max"), _same, summary="largest value", payload_function="max"
    ),
    Aggregate(
        "first",
        _picked(latest=False),
        _same,
        summary="value of the earliest transaction; ties to the smallest value",
    ),
    Aggregate(
        "last",
        _picked(latest=True),
        _same,
        summary="value of the latest transaction; ties to the smallest value",
    ),
]

# Compiled by the metrics stage as a ranked subquery, not as one aggregate.
MODE = "mode"
