"""The functions rule expressions may call, and how each compiles to SQL.

Plugins add entries through the ``register_functions`` hook; nothing outside
this table can be called from a rules file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlglot import exp

from custan.compiler.fields import CUSTOMER_COLUMN
from custan.expressions import sql
from custan.expressions.types import NUMERIC, Type, is_numeric, unify

TRANSACTION = "transaction"
CUSTOMER = "customer"
GROUP = "group"
ALL_SCOPES = frozenset({TRANSACTION, CUSTOMER, GROUP})


@dataclass(frozen=True)
class Typed:
    """A compiled SQL node, its type, and whether it aggregates rows."""

    node: exp.Expr
    type: Type
    aggregate: bool = False


@dataclass
class Call:
    """What a function's compiler receives besides its arguments."""

    name: str
    as_of: exp.Expr
    time_zone: str
    literal_args: list[exp.Expr]

    def fail(self, message: str) -> None:
        raise FunctionError(f"{self.name}(): {message}")


class FunctionError(Exception):
    """A call has the wrong number or types of arguments."""


@dataclass(frozen=True)
class Function:
    """An allowed function: its arity, the scopes it works in, its compiler."""

    name: str
    compile: Callable[[list[Typed], Call], Typed]
    min_args: int
    max_args: int
    scopes: frozenset[str] = ALL_SCOPES
    summary: str = ""
    aggregate: bool = False


@dataclass
class FunctionTable:
    """Function name to definition; built-ins first, then plugins."""

    functions: dict[str, Function] = field(default_factory=dict)

    def add(self, function: Function) -> None:
        if function.name in self.functions:
            raise ValueError(f"function {function.name!r} is already registered")
        self.functions[function.name] = function

    def get(self, name: str) -> Function | None:
        return self.functions.get(name)


def _require(
    call: Call, args: list[Typed], allowed: frozenset[Type] | set[Type], what: str
) -> None:
    for index, arg in enumerate(args, start=1):
        if arg.type not in allowed and arg.type is not Type.NULL:
            call.fail(f"argument {index} must be {what}, not {arg.type}")


def _instants(args: list[Typed], call: Call) -> None:
    _require(call, args, {Type.INSTANT}, "an instant")


def _numbers(args: list[Typed], call: Call) -> None:
    _require(call, args, NUMERIC, "a number")


def days_between(args: list[Typed], call: Call) -> Typed:
    _instants(args, call)
    return Typed(sql.whole_days(args[0].node, args[1].node), Type.INTEGER)


def days_since(args: list[Typed], call: Call) -> Typed:
    _instants(args, call)
    return Typed(sql.whole_days(args[0].node, call.as_of.copy()), Type.INTEGER)


def elapsed_days(args: list[Typed], call: Call) -> Typed:
    _instants(args, call)
    return Typed(sql.fractional_days(args[0].node, args[1].node), Type.DECIMAL)


def months_between(args: list[Typed], call: Call) -> Typed:
    """Count calendar months from the first instant's month to the second's.

    Only the months matter, not the days: Jan 31 to Feb 1 is 1 month.
    """
    _instants(args, call)
    start = sql.local_time(args[0].node, call.time_zone)
    end = sql.local_time(args[1].node, call.time_zone)
    node = exp.Anonymous(
        this="date_diff", expressions=[exp.Literal.string("month"), start, end]
    )
    return Typed(node, Type.INTEGER)


def _start_of(unit: str) -> Callable[[list[Typed], Call], Typed]:
    def compile_call(args: list[Typed], call: Call) -> Typed:
        _instants(args, call)
        local = sql.local_time(args[0].node, call.time_zone)
        start = exp.Anonymous(
            this="date_trunc", expressions=[exp.Literal.string(unit), local]
        )
        # timezone(zone, naive) reads the wall-clock start back as an instant.
        node = exp.Anonymous(
            this="timezone", expressions=[exp.Literal.string(call.time_zone), start]
        )
        return Typed(node, Type.INSTANT)

    return compile_call


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
        _numbers(args, call)
        node = sql_class(this=args[0].node)
        return Typed(node, result or args[0].type)

    return compile_call


def round_number(args: list[Typed], call: Call) -> Typed:
    _numbers(args[:1], call)
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


def _calendar(extract: Callable[[exp.Expr], exp.Expr], result: Type):
    def compile_call(args: list[Typed], call: Call) -> Typed:
        _instants(args, call)
        local = sql.local_time(args[0].node, call.time_zone)
        return Typed(extract(local), result)

    return compile_call


def _iso_day(local: exp.Expr) -> exp.Expr:
    return exp.Anonymous(this="isodow", expressions=[local])


def day_name(args: list[Typed], call: Call) -> Typed:
    """Mon … Sun of an instant in the file's zone, or of an ISO day number 1-7.

    A number lets a day chosen by an aggregate be named, as in
    day_name(floor(peak_slot / 100)); one outside 1-7 has no name (null).
    """
    value = args[0]
    if value.type is Type.INSTANT:
        number = _iso_day(sql.local_time(value.node, call.time_zone))
    elif is_numeric(value.type):
        number = value.node
    else:
        call.fail(
            f"argument 1 must be an instant or a day number 1-7, not {value.type}"
        )
    names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    cases = [
        exp.If(this=sql.number(day), true=exp.Literal.string(name))
        for day, name in enumerate(names, start=1)
    ]
    return Typed(exp.Case(this=number, ifs=cases), Type.TEXT)


def _strftime(pattern: str) -> Callable[[exp.Expr], exp.Expr]:
    return lambda local: exp.Anonymous(
        this="strftime", expressions=[local, exp.Literal.string(pattern)]
    )


def _hour(local: exp.Expr) -> exp.Expr:
    return exp.Anonymous(this="hour", expressions=[local])


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


def _aggregate(sql_name: str, result: Callable[[Type], Type]):
    def compile_call(args: list[Typed], call: Call) -> Typed:
        node = exp.Anonymous(this=sql_name, expressions=[args[0].node])
        return Typed(node, result(args[0].type), aggregate=True)

    return compile_call


def count(args: list[Typed], call: Call) -> Typed:
    target = args[0].node if args else exp.Star()
    return Typed(exp.Anonymous(this="count", expressions=[target]), Type.INTEGER, True)


def total(args: list[Typed], call: Call) -> Typed:
    _numbers(args, call)
    node = exp.Coalesce(
        this=exp.Anonymous(this="sum", expressions=[args[0].node]),
        expressions=[sql.number(0)],
    )
    return Typed(node, args[0].type, aggregate=True)


def average(args: list[Typed], call: Call) -> Typed:
    _numbers(args, call)
    sum_node = exp.Anonymous(this="sum", expressions=[args[0].node])
    count_node = exp.Anonymous(this="count", expressions=[args[0].node.copy()])
    result = Type.MONEY if args[0].type is Type.MONEY else Type.DECIMAL
    return Typed(sql.exact_divide(sum_node, count_node), result, aggregate=True)


def median(args: list[Typed], call: Call) -> Typed:
    _numbers(args, call)
    # DuckDB's median of decimals is the exact mean of the two middle values.
    node = exp.Anonymous(this="median", expressions=[args[0].node])
    result = Type.MONEY if args[0].type is Type.MONEY else Type.DECIMAL
    return Typed(node, result, aggregate=True)


def stddev(args: list[Typed], call: Call) -> Typed:
    _numbers(args, call)
    # A square root is rarely exact, so this one value is binary floating point.
    node = exp.Anonymous(this="stddev_samp", expressions=[args[0].node])
    return Typed(node, Type.DECIMAL, aggregate=True)


def share(args: list[Typed], call: Call) -> Typed:
    """Each group's part of the whole, such as share(count(*))."""
    _numbers(args, call)
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


BUILTIN_FUNCTIONS = [
    Function(
        "days_between",
        days_between,
        2,
        2,
        summary="whole days of elapsed time from the first instant to the second",
    ),
    Function(
        "days_since",
        days_since,
        1,
        1,
        summary="whole days of elapsed time from an instant to as_of",
    ),
    Function(
        "elapsed_days",
        elapsed_days,
        2,
        2,
        summary="exact elapsed days, with the fraction, between two instants",
    ),
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
    Function(
        "hour",
        _calendar(_hour, Type.INTEGER),
        1,
        1,
        summary="hour 0-23 in the rules file's time zone",
    ),
    Function(
        "day_of_week",
        _calendar(_iso_day, Type.INTEGER),
        1,
        1,
        summary="ISO day of week, 1 = Monday … 7 = Sunday, in the file's time zone",
    ),
    Function(
        "day_name",
        day_name,
        1,
        1,
        summary="Mon … Sun of an instant in the file's time zone, or of a day 1-7",
    ),
    Function(
        "month_of",
        _calendar(_strftime("%Y-%m"), Type.TEXT),
        1,
        1,
        summary="calendar month as YYYY-MM in the rules file's time zone",
    ),
    Function(
        "date_of",
        _calendar(_strftime("%Y-%m-%d"), Type.TEXT),
        1,
        1,
        summary="calendar date as YYYY-MM-DD in the rules file's time zone",
    ),
    Function(
        "months_between",
        months_between,
        2,
        2,
        summary="calendar months from the first instant's month to the second's, "
        "in the file's time zone",
    ),
    Function(
        "start_of_day",
        _start_of("day"),
        1,
        1,
        summary="the instant the day began, in the rules file's time zone",
    ),
    Function(
        "start_of_month",
        _start_of("month"),
        1,
        1,
        summary="the instant the month began, in the rules file's time zone",
    ),
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


def builtin_table() -> FunctionTable:
    table = FunctionTable()
    for function in BUILTIN_FUNCTIONS:
        table.add(function)
    return table


__all__ = [
    "Call",
    "Function",
    "FunctionError",
    "FunctionTable",
    "Typed",
    "builtin_table",
    "is_numeric",
]
