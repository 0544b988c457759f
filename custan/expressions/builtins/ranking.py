"""Window functions over all customers: ranks, buckets and counts of peers."""

from __future__ import annotations

from sqlglot import exp

from custan.compiler.fields import CUSTOMER_COLUMN
from custan.expressions import sql
from custan.expressions.calls import (
    CUSTOMER,
    Call,
    Function,
    Typed,
)
from custan.expressions.types import Type


def _direction(call: Call, args: list[Typed], position: int) -> bool:
    """Read an optional 'asc' or 'desc' argument; return True for descending."""
    if len(args) <= position:
        return False
    literal = call.literal_args[position]
    if not (
        isinstance(literal, exp.Literal)
        and literal.is_string
        and literal.this.lower() in ("asc", "desc")
    ):
        call.fail("the order must be the text 'asc' or 'desc'")
    return literal.this.lower() == "desc"


def _ranking(function_name: str, result: Type):
    def compile_call(args: list[Typed], call: Call) -> Typed:
        descending = _direction(call, args, 1)
        # Missing values rank last in either direction.
        order = [sql.ordered(args[0].node, descending, nulls_first=False)]
        node = sql.window(exp.Anonymous(this=function_name), order)
        return Typed(node, result)

    return compile_call


def ntile(args: list[Typed], call: Call) -> Typed:
    buckets = call.literal_args[0]
    if not (
        isinstance(buckets, exp.Literal) and buckets.is_int and int(buckets.this) > 0
    ):
        call.fail("the first argument must be a positive whole number of buckets")
    descending = _direction(call, args, 2)
    return Typed(
        sql.tie_safe_ntile(int(buckets.this), args[1].node, descending), Type.INTEGER
    )


def customers_sharing(args: list[Typed], call: Call) -> Typed:
    """Count distinct customers among rows whose argument values equal this row's."""
    customers = exp.Anonymous(
        this="count",
        expressions=[
            exp.Distinct(expressions=[exp.column(CUSTOMER_COLUMN, quoted=True)])
        ],
    )
    node = exp.Window(
        this=customers, partition_by=[arg.node for arg in args], over="OVER"
    )
    return Typed(node, Type.INTEGER)


RANKING_FUNCTIONS = [
    Function(
        "rank",
        _ranking("rank", Type.INTEGER),
        1,
        2,
        frozenset({CUSTOMER}),
        summary="rank among all customers, 1 = smallest ('desc': largest)",
    ),
    Function(
        "dense_rank",
        _ranking("dense_rank", Type.INTEGER),
        1,
        2,
        frozenset({CUSTOMER}),
        summary="rank without gaps among all customers",
    ),
    Function(
        "percent_rank",
        _ranking("percent_rank", Type.DECIMAL),
        1,
        2,
        frozenset({CUSTOMER}),
        summary="(rank - 1) / (customers - 1)",
    ),
    Function(
        "cume_dist",
        _ranking("cume_dist", Type.DECIMAL),
        1,
        2,
        frozenset({CUSTOMER}),
        summary="share of customers with a value at most this one",
    ),
    Function(
        "ntile",
        ntile,
        2,
        3,
        frozenset({CUSTOMER}),
        summary="bucket 1..n by rank; tied values share a bucket",
    ),
    Function(
        "customers_sharing",
        customers_sharing,
        0,
        16,
        frozenset({CUSTOMER}),
        summary="distinct customers among rows with the same values of the arguments",
    ),
]
