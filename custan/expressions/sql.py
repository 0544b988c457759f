"""SQLGlot builders for the arithmetic and time rules custan guarantees.

DuckDB returns DOUBLE for DECIMAL division, so quotients are built from integer
division instead; elapsed time is counted in microseconds, never in calendar
boundaries crossed.
"""

from __future__ import annotations

from sqlglot import exp

MICROSECONDS_PER_DAY = 86_400_000_000
# Operands of a division are taken to OPERAND_SCALE places and the quotient is
# truncated to QUOTIENT_SCALE places. Averages of cents over fewer than 10^9
# rows cannot sit closer than 5e-12 to a half cent, so rounding the written
# value to cents afterwards matches rounding the exact quotient.
OPERAND_SCALE = 9
QUOTIENT_SCALE = 12


def cast(node: exp.Expr, type_text: str) -> exp.Cast:
    return exp.Cast(this=node, to=exp.DataType.build(type_text, dialect="duckdb"))


def number(value: int | str) -> exp.Expr:
    return exp.Literal.number(value)


def scaled_integer(node: exp.Expr, scale: int) -> exp.Expr:
    """Return ``node * 10^scale`` as an exact HUGEINT (rounded at that scale)."""
    decimal = cast(node, f"DECIMAL(38,{scale})")
    product = exp.Mul(this=decimal, expression=number(10**scale))
    return cast(exp.Paren(this=product), "HUGEINT")


def exact_divide(numerator: exp.Expr, denominator: exp.Expr) -> exp.Expr:
    """Build ``numerator / denominator`` as DECIMAL(38,12); NULL when dividing by 0."""
    top = exp.Mul(
        this=scaled_integer(numerator, OPERAND_SCALE),
        expression=cast(number(10**QUOTIENT_SCALE), "HUGEINT"),
    )
    bottom = scaled_integer(denominator, OPERAND_SCALE)
    quotient = exp.IntDiv(this=exp.Paren(this=top), expression=bottom)
    unit = cast(exp.Literal.string("1e-12"), f"DECIMAL(38,{QUOTIENT_SCALE})")
    value = exp.Mul(this=cast(quotient, "DECIMAL(38,0)"), expression=unit)
    zero = exp.EQ(this=denominator.copy(), expression=number(0))
    return exp.Case(ifs=[exp.If(this=zero, true=exp.Null())], default=value)


def remainder(numerator: exp.Expr, denominator: exp.Expr) -> exp.Expr:
    """Build ``numerator % denominator``; NULL when dividing by 0, as ``/`` is."""
    zero = exp.EQ(this=denominator.copy(), expression=number(0))
    value = exp.Mod(
        this=exp.Paren(this=numerator), expression=exp.Paren(this=denominator)
    )
    return exp.Case(ifs=[exp.If(this=zero, true=exp.Null())], default=value)


def elapsed_microseconds(start: exp.Expr, end: exp.Expr) -> exp.Expr:
    """Microseconds of elapsed time from ``start`` to ``end`` (exact BIGINT)."""
    return exp.Anonymous(
        this="date_diff",
        expressions=[exp.Literal.string("microsecond"), start, end],
    )


def whole_days(start: exp.Expr, end: exp.Expr) -> exp.Expr:
    """Whole days of elapsed time: floor(elapsed seconds / 86400), as BIGINT."""
    days = exp.Div(
        this=elapsed_microseconds(start, end),
        expression=cast(number(MICROSECONDS_PER_DAY), "DOUBLE"),
    )
    return cast(exp.Floor(this=days), "BIGINT")


def fractional_days(start: exp.Expr, end: exp.Expr) -> exp.Expr:
    """Exact elapsed days from ``start`` to ``end`` as DECIMAL(38,12)."""
    return exact_divide(elapsed_microseconds(start, end), number(MICROSECONDS_PER_DAY))


def local_time(instant: exp.Expr, time_zone: str) -> exp.Expr:
    """Convert ``instant`` to wall-clock time in ``time_zone`` (a naive TIMESTAMP)."""
    return exp.Anonymous(
        this="timezone", expressions=[exp.Literal.string(time_zone), instant]
    )


def window(function: exp.Expr, order: list[exp.Ordered] | None = None) -> exp.Window:
    """``function OVER (ORDER BY ...)`` across all rows."""
    spec = exp.Order(expressions=order) if order else None
    return exp.Window(this=function, order=spec, over="OVER")


def ordered(node: exp.Expr, descending: bool, nulls_first: bool) -> exp.Ordered:
    return exp.Ordered(this=node, desc=descending, nulls_first=nulls_first)


def tie_safe_ntile(buckets: int, node: exp.Expr, descending: bool) -> exp.Expr:
    """Bucket 1..n by rank, so that tied values always share a bucket.

    bucket = 1 + floor(n * (rank - 1) / row count). SQL NTILE splits ties
    across buckets by arrival order, which would make scores depend on it.
    """
    # Nulls come first, so a missing value lands in the worst bucket.
    rank = window(exp.Anonymous(this="rank"), [ordered(node, descending, True)])
    rows = window(exp.Anonymous(this="count", expressions=[exp.Star()]))
    spread = exp.Mul(
        this=number(buckets),
        expression=exp.Paren(this=exp.Sub(this=rank, expression=number(1))),
    )
    bucket = exp.IntDiv(this=exp.Paren(this=spread), expression=rows)
    return exp.Add(this=number(1), expression=bucket)
