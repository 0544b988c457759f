"""Functions over instants: elapsed days, calendar months, and calendar parts
in the rules file's time zone."""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from custan.expressions import sql
from custan.expressions.calls import (
    Call,
    Function,
    Typed,
    require_instants,
)
from custan.expressions.types import Type, is_numeric


def days_between(args: list[Typed], call: Call) -> Typed:
    require_instants(args, call)
    return Typed(sql.whole_days(args[0].node, args[1].node), Type.INTEGER)


def days_since(args: list[Typed], call: Call) -> Typed:
    require_instants(args, call)
    return Typed(sql.whole_days(args[0].node, call.as_of.copy()), Type.INTEGER)


def elapsed_days(args: list[Typed], call: Call) -> Typed:
    require_instants(args, call)
    return Typed(sql.fractional_days(args[0].node, args[1].node), Type.DECIMAL)


def months_between(args: list[Typed], call: Call) -> Typed:
    """Count calendar months from the first instant's month to the second's.

    Only the months matter, not the days: Jan 31 to Feb 1 is 1 month.
    """
    require_instants(args, call)
    start = sql.local_time(args[0].node, call.time_zone)
    end = sql.local_time(args[1].node, call.time_zone)
    node = exp.Anonymous(
        this="date_diff", expressions=[exp.Literal.string("month"), start, end]
    )
    return Typed(node, Type.INTEGER)


def _start_of(unit: str) -> Callable[[list[Typed], Call], Typed]:
    def compile_call(args: list[Typed], call: Call) -> Typed:
        require_instants(args, call)
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


def _calendar(extract: Callable[[exp.Expr], exp.Expr], result: Type):
    def compile_call(args: list[Typed], call: Call) -> Typed:
        require_instants(args, call)
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


TIME_FUNCTIONS = [
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
]
