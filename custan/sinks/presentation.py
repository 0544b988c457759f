"""Format result columns as text inside DuckDB, with no Python work per cell.

Money is rounded half-even to cents, other decimals to the output's places with
trailing zeros removed, instants become ISO 8601 in UTC. The same text feeds
CSV cells and JSON values, so both formats always agree.
"""

from __future__ import annotations

from sqlglot import exp

from custan.compiler.output_stage import RESULT_TABLE, OutputColumn
from custan.expressions import sql
from custan.expressions.types import Type

# Types written as bare JSON numbers or booleans; the rest become JSON strings.
_BARE_JSON = frozenset({Type.MONEY, Type.DECIMAL, Type.INTEGER, Type.BOOLEAN})


def _call(name: str, *args: exp.Expr) -> exp.Anonymous:
    return exp.Anonymous(this=name, expressions=list(args))


def _strip_zeros(text: exp.Expr) -> exp.Expr:
    """'2.500000' becomes '2.5' and '3.000' becomes '3'; integers stay as they are."""
    trimmed = _call(
        "rtrim", _call("rtrim", text, exp.Literal.string("0")), exp.Literal.string(".")
    )
    has_point = _call("contains", text.copy(), exp.Literal.string("."))
    return exp.Case(ifs=[exp.If(this=has_point, true=trimmed)], default=text.copy())


def _instant_text(value: exp.Expr) -> exp.Expr:
    # Fractional seconds are written only when present, like datetime.isoformat.
    whole = _call("strftime", value, exp.Literal.string("%Y-%m-%dT%H:%M:%SZ"))
    fraction = _call(
        "strftime", value.copy(), exp.Literal.string("%Y-%m-%dT%H:%M:%S.%fZ")
    )
    micros = _call("microsecond", value.copy())
    seconds = _call("second", value.copy())
    has_fraction = exp.NEQ(
        this=micros,
        expression=exp.Mul(this=seconds, expression=exp.Literal.number(1_000_000)),
    )
    return exp.Case(ifs=[exp.If(this=has_fraction, true=fraction)], default=whole)


def column_text(column: OutputColumn, decimals: int) -> exp.Expr:
    """SQL that renders one result column as its written text (NULL stays NULL)."""
    value = exp.column(column.name, quoted=True)
    if column.type is Type.MONEY:
        return sql.cast(_call("round_even", value, exp.Literal.number(2)), "VARCHAR")
    if column.type is Type.DECIMAL:
        rounded = _call("round_even", value, exp.Literal.number(decimals))
        return _strip_zeros(sql.cast(rounded, "VARCHAR"))
    if column.type is Type.INSTANT:
        return _instant_text(value)
    if column.type is Type.BOOLEAN:
        return exp.Case(
            ifs=[exp.If(this=value, true=exp.Literal.string("true"))],
            default=exp.Literal.string("false"),
        )
    return sql.cast(value, "VARCHAR")


def text_query(columns: list[OutputColumn], decimals: int) -> exp.Select:
    """Select every result column as text, in output order."""
    projections = [
        exp.alias_(column_text(column, decimals), column.name, quoted=True)
        for column in columns
    ]
    return exp.select(*projections).from_(RESULT_TABLE)


def _json_fragment(column: OutputColumn, decimals: int) -> exp.Expr:
    text = column_text(column, decimals)
    if column.type not in _BARE_JSON:
        text = sql.cast(_call("to_json", text), "VARCHAR")
    return exp.Coalesce(this=text, expressions=[exp.Literal.string("null")])


def json_lines_query(columns: list[OutputColumn], decimals: int) -> exp.Select:
    """Select each result row as JSON object text, with numbers written exactly."""
    parts: list[exp.Expr] = [exp.Literal.string("{")]
    for index, column in enumerate(columns):
        key = ("" if index == 0 else ", ") + f'"{column.name}": '
        parts += [exp.Literal.string(key), _json_fragment(column, decimals)]
    parts.append(exp.Literal.string("}"))
    return exp.select(exp.alias_(exp.Concat(expressions=parts), "line")).from_(
        RESULT_TABLE
    )
