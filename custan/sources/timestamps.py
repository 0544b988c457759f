"""Turn timestamp text into UTC instants inside the query.

Text with an offset (2026-11-30T19:00:00-05:00) keeps its offset. Text without
one (2024-08-21 13:35:03, or a bare date meaning midnight) is read as wall-clock
time in the input's time zone.
"""

from __future__ import annotations

from sqlglot import exp

from custan.expressions import sql

# A trailing Z or +hh, +hhmm, +hh:mm offset after a time of day. The time is
# part of the pattern because a bare date such as 2026-07-01 ends in "-01".
OFFSET_PATTERN = (
    r"[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?\s*(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$"
)


def _convert(node: exp.Expr, type_text: str, strict: bool) -> exp.Expr:
    to = exp.DataType.build(type_text, dialect="duckdb")
    return exp.Cast(this=node, to=to) if strict else exp.TryCast(this=node, to=to)


def _in_zone(naive: exp.Expr, time_zone: str) -> exp.Expr:
    if time_zone.upper() == "UTC":
        return sql.cast(naive, "TIMESTAMPTZ")
    return exp.Anonymous(
        this="timezone", expressions=[exp.Literal.string(time_zone), naive]
    )


def parse_instant_sql(
    raw: exp.Expr, date_format: str | None, time_zone: str, strict: bool = True
) -> exp.Expr:
    """SQL that parses ``raw`` text into a TIMESTAMPTZ."""
    text = exp.Anonymous(this="trim", expressions=[raw])
    if date_format is not None:
        name = "strptime" if strict else "try_strptime"
        naive = exp.Anonymous(
            this=name, expressions=[text, exp.Literal.string(date_format)]
        )
        return _in_zone(naive, time_zone)
    if time_zone.upper() == "UTC":
        # The session zone is UTC, so text without an offset is already UTC.
        return _convert(text, "TIMESTAMPTZ", strict)
    has_offset = exp.Anonymous(
        this="regexp_matches",
        expressions=[text.copy(), exp.Literal.string(OFFSET_PATTERN)],
    )
    return exp.Case(
        ifs=[
            exp.If(this=has_offset, true=_convert(text.copy(), "TIMESTAMPTZ", strict))
        ],
        default=_in_zone(_convert(text.copy(), "TIMESTAMP", strict), time_zone),
    )
