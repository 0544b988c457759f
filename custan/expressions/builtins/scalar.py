"""Row-by-row functions on numbers and text, as in SQL."""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from custan.expressions import sql
from custan.expressions.calls import (
    Call,
    Function,
    Typed,
    require_numbers,
)
from custan.expressions.types import Type, unify


def _same_type(sql_class: type[exp.Func]) -> Callable[[list[Typed], Call], Typed]:
    def compile_call(args: list[Typed], call: Call) -> Typed:
        common = unify([arg.type for arg in args])
        if common is None:
            types = ", ".join(str(arg.type) for arg in args)
            call.fail(f"arguments must share a type, got {types}")
        nodes = [arg.node for arg in args]
        return Typed(
            sql_class(this=nodes[0], expressions=nodes[1:]), common or Type.NULL
        )

    return compile_call


def _numeric_unary(sql_class: type[exp.Func], result: Type | None = None):
    def compile_call(args: list[Typed], call: Call) -> Typed:
        require_numbers(args, call)
        node = sql_class(this=args[0].node)
        return Typed(node, result or args[0].type)

    return compile_call


def round_number(args: list[Typed], call: Call) -> Typed:
    require_numbers(args[:1], call)
    places = args[1].node if len(args) > 1 else sql.number(0)
    if len(args) > 1 and args[1].type is not Type.INTEGER:
        call.fail("the number of places must be an integer")
    result = (
        Type.INTEGER
        if len(args) == 1 and args[0].type is Type.INTEGER
        else args[0].type
    )
    return Typed(exp.Round(this=args[0].node, decimals=places), result)


def nullif(args: list[Typed], call: Call) -> Typed:
    if unify([args[0].type, args[1].type]) is None:
        call.fail("both arguments must have the same type")
    return Typed(exp.Nullif(this=args[0].node, expression=args[1].node), args[0].type)


def concat(args: list[Typed], call: Call) -> Typed:
    parts = [
        exp.Coalesce(
            this=sql.cast(arg.node, "VARCHAR"), expressions=[exp.Literal.string("")]
        )
        for arg in args
    ]
    return Typed(exp.Concat(expressions=parts), Type.TEXT)


SCALAR_FUNCTIONS = [
    Function(
        "coalesce", _same_type(exp.Coalesce), 1, 16, summary="the first non-null value"
    ),
    Function("least", _same_type(exp.Least), 2, 16, summary="the smallest argument"),
    Function(
        "greatest", _same_type(exp.Greatest), 2, 16, summary="the largest argument"
    ),
    Function(
        "round", round_number, 1, 2, summary="round half away from zero to n places"
    ),
    Function("abs", _numeric_unary(exp.Abs), 1, 1, summary="absolute value"),
    Function("floor", _numeric_unary(exp.Floor), 1, 1, summary="round down"),
    Function("ceil", _numeric_unary(exp.Ceil), 1, 1, summary="round up"),
    Function("nullif", nullif, 2, 2, summary="null when both arguments are equal"),
    Function("concat", concat, 1, 16, summary="join values as text"),
]
