"""Aggregates over the rows of a group, for grouped values and summaries."""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from custan.expressions import sql
from custan.expressions.calls import (
    GROUP,
    Call,
    Function,
    Typed,
    require_numbers,
)
from custan.expressions.types import Type


def _aggregate(sql_name: str, result: Callable[[Type], Type]):
    def compile_call(args: list[Typed], call: Call) -> Typed:
        node = exp.Anonymous(this=sql_name, expressions=[args[0].node])
        return Typed(node, result(args[0].type), aggregate=True)

    return compile_call


def count(args: list[Typed], call: Call) -> Typed:
    target = args[0].node if args else exp.Star()
    return Typed(exp.Anonymous(this="count", expressions=[target]), Type.INTEGER, True)


def total(args: list[Typed], call: Call) -> Typed:
    require_numbers(args, call)
    node = exp.Coalesce(
        this=exp.Anonymous(this="sum", expressions=[args[0].node]),
        expressions=[sql.number(0)],
    )
    return Typed(node, args[0].type, aggregate=True)


def average(args: list[Typed], call: Call) -> Typed:
    require_numbers(args, call)
    sum_node = exp.Anonymous(this="sum", expressions=[args[0].node])
    count_node = exp.Anonymous(this="count", expressions=[args[0].node.copy()])
    result = Type.MONEY if args[0].type is Type.MONEY else Type.DECIMAL
    return Typed(sql.exact_divide(sum_node, count_node), result, aggregate=True)


def median(args: list[Typed], call: Call) -> Typed:
    require_numbers(args, call)
    # DuckDB's median of decimals is the exact mean of the two middle values.
    node = exp.Anonymous(this="median", expressions=[args[0].node])
    result = Type.MONEY if args[0].type is Type.MONEY else Type.DECIMAL
    return Typed(node, result, aggregate=True)


def stddev(args: list[Typed], call: Call) -> Typed:
    require_numbers(args, call)
    # A square root is rarely exact, so this one value is binary floating point.
    node = exp.Anonymous(this="stddev_samp", expressions=[args[0].node])
    return Typed(node, Type.DECIMAL, aggregate=True)


def share(args: list[Typed], call: Call) -> Typed:
    """Divide each group's aggregate by the total, such as share(count(*))."""
    require_numbers(args, call)
    whole = sql.window(exp.Anonymous(this="sum", expressions=[args[0].node.copy()]))
    return Typed(sql.exact_divide(args[0].node, whole), Type.DECIMAL, aggregate=True)


def _value_by(extreme: str):
    """Build min_by or max_by: the value on the row with the smallest or largest key.

    Rows whose key is null are skipped. Rows that tie on the key resolve to the
    smallest value for min_by and the largest for max_by, so the result never
    depends on row order.
    """

    def compile_call(args: list[Typed], call: Call) -> Typed:
        value, key = args
        pair = exp.Struct(
            expressions=[
                exp.PropertyEQ(this=exp.to_identifier("k"), expression=key.node),
                exp.PropertyEQ(this=exp.to_identifier("v"), expression=value.node),
            ]
        )
        known = exp.Not(this=exp.Is(this=key.node.copy(), expression=exp.Null()))
        picked = exp.Filter(
            this=exp.Anonymous(this=extreme, expressions=[pair]),
            expression=exp.Where(this=known),
        )
        node = exp.Bracket(this=picked, expressions=[exp.Literal.string("v")])
        return Typed(node, value.type, aggregate=True)

    return compile_call


def _same(value_type: Type) -> Type:
    return value_type


GROUP_FUNCTIONS = [
    Function(
        "count",
        count,
        0,
        1,
        frozenset({GROUP}),
        aggregate=True,
        summary="rows in the group",
    ),
    Function("sum", total, 1, 1, frozenset({GROUP}), aggregate=True, summary="sum"),
    Function(
        "avg",
        average,
        1,
        1,
        frozenset({GROUP}),
        aggregate=True,
        summary="exact decimal mean",
    ),
    Function(
        "min",
        _aggregate("min", _same),
        1,
        1,
        frozenset({GROUP}),
        aggregate=True,
        summary="smallest value",
    ),
    Function(
        "max",
        _aggregate("max", _same),
        1,
        1,
        frozenset({GROUP}),
        aggregate=True,
        summary="largest value",
    ),
    Function(
        "median",
        median,
        1,
        1,
        frozenset({GROUP}),
        aggregate=True,
        summary="middle value; the mean of the two middle values for an even count",
    ),
    Function(
        "stddev",
        stddev,
        1,
        1,
        frozenset({GROUP}),
        aggregate=True,
        summary="sample standard deviation (n - 1 in the denominator)",
    ),
    Function(
        "min_by",
        _value_by("min"),
        2,
        2,
        frozenset({GROUP}),
        aggregate=True,
        summary="value on the row with the smallest key; ties to the smallest value",
    ),
    Function(
        "max_by",
        _value_by("max"),
        2,
        2,
        frozenset({GROUP}),
        aggregate=True,
        summary="value on the row with the largest key; ties to the largest value",
    ),
    Function(
        "share",
        share,
        1,
        1,
        frozenset({GROUP}),
        summary="a group's aggregate divided by the sum over all groups",
    ),
]
