"""DuckDB tables built from Payload rows, and the customer_metrics select over them.

Values arrive as text and are cast by DuckDB, so amounts stay exact decimals
and timestamps with or without an offset become UTC instants.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
from sqlglot import exp

from custan.compiler.aggregates import MODE, call
from custan.compiler.fields import AS_OF_COLUMN, CUSTOMER_COLUMN, MONEY_SQL_TYPE
from custan.expressions import sql
from custan.sources.payload.pushdown import MetricRecipe

SUM_SQL_TYPE = "DECIMAL(38,4)"
# MySQL numbers days 1 (Sunday) to 7 (Saturday); custan's day_of_week is ISO,
# 1 (Monday) to 7 (Sunday).
ISO_DAY_FROM_MYSQL = "((g{position} + 5) % 7) + 1"


def sql_type_of(name: str, function: str | None = None) -> str:
    """Return the column type of a grouped field or of ``function(name)``."""
    if function == "count" or name.endswith("(created_at)"):
        return "BIGINT"
    if name == "created_at":
        return "TIMESTAMPTZ"
    if name == "amount":
        return SUM_SQL_TYPE if function == "sum" else MONEY_SQL_TYPE
    return "VARCHAR"


def insert_columns(
    connection: duckdb.DuckDBPyConnection,
    table: str,
    columns: list[tuple[str, str, str]],
    values: list[list[str | None]],
) -> None:
    """Append rows given column-wise as text, cast to each column's type."""
    if not values or not values[0]:
        return
    unnested = exp.select(
        *[
            exp.alias_(
                exp.Anonymous(this="unnest", expressions=[exp.Placeholder()]), f"c{i}"
            )
            for i in range(len(columns))
        ]
    )
    casts = [
        sql.cast(exp.column(f"c{i}", "page"), type_text)
        for i, (_, type_text, _) in enumerate(columns)
    ]
    select = exp.select(*casts).from_(unnested.subquery("page"))
    insert = exp.Insert(this=exp.to_table(table), expression=select)
    connection.execute(insert.sql("duckdb"), values)


def first_invalid_value(
    connection: duckdb.DuckDBPyConnection, type_text: str, values: list[str | None]
) -> int | None:
    """Return the index of the first value that does not cast to ``type_text``."""
    value = exp.to_identifier("value")
    try_cast = exp.TryCast(
        this=exp.column(value), to=exp.DataType.build(type_text, dialect="duckdb")
    )
    transform = exp.Anonymous(
        this="list_transform",
        expressions=[exp.Placeholder(), exp.Lambda(this=try_cast, expressions=[value])],
    )
    row = connection.execute(exp.select(transform).sql("duckdb"), [values]).fetchone()
    cast_values = row[0] if row else []
    for index, (text, cast_value) in enumerate(zip(values, cast_values, strict=True)):
        if text is not None and cast_value is None:
            return index
    return None


def _column(table: str, name: str) -> exp.Column:
    return exp.column(name, table, quoted=True)


def _metric_value(recipe: MetricRecipe, alias: str) -> exp.Expr:
    first = _column(alias, f"a{recipe.positions[0]}")
    if recipe.kind in ("sum", "count"):
        # Customers without a matching row have spent 0 and bought 0 times.
        return exp.Coalesce(this=first, expressions=[sql.number(0)])
    if recipe.kind == "avg":
        return sql.exact_divide(first, _column(alias, f"a{recipe.positions[1]}"))
    return first


def _mode_select(recipe: MetricRecipe, table: str) -> exp.Select:
    """Select the most frequent value per customer; ties go to the smallest value."""
    if recipe.calendar is None:
        value: exp.Expr = _column(table, "g1")
    elif recipe.calendar == "day_of_week":
        value = exp.maybe_parse(ISO_DAY_FROM_MYSQL.format(position=1), dialect="duckdb")
    else:
        value = _column(table, "g2")
    count = _column(table, f"a{recipe.positions[0]}")
    candidates = (
        exp.select(
            _column(table, CUSTOMER_COLUMN),
            exp.alias_(value, "value"),
            exp.alias_(count, "n"),
        )
        .from_(table)
        .where(exp.Not(this=exp.Is(this=value.copy(), expression=exp.Null())))
    )
    position = exp.Window(
        this=exp.Anonymous(this="row_number"),
        partition_by=[exp.column(CUSTOMER_COLUMN)],
        order=exp.Order(
            expressions=[
                exp.Ordered(this=call("sum", exp.column("n")), desc=True),
                exp.Ordered(this=exp.column("value"), desc=False),
            ]
        ),
        over="OVER",
    )
    ranked = (
        exp.select(
            exp.column(CUSTOMER_COLUMN),
            exp.column("value"),
            exp.alias_(position, "position"),
        )
        .from_(candidates.subquery("candidates"))
        .group_by(exp.column(CUSTOMER_COLUMN), exp.column("value"))
    )
    return (
        exp.select(exp.column(CUSTOMER_COLUMN), exp.column("value"))
        .from_(ranked.subquery("ranked"))
        .where(exp.EQ(this=exp.column("position"), expression=sql.number(1)))
    )


def customer_metrics_select(
    recipes: list[MetricRecipe],
    tables: list[str],
    types: dict[str, str],
    as_of: datetime | None,
) -> exp.Select:
    """Select one row per customer of the first table, each metric in its usual type."""
    aliases = {index: f"q{index}" for index in range(len(tables))}
    query = exp.select(
        exp.alias_(_column("q0", CUSTOMER_COLUMN), CUSTOMER_COLUMN, quoted=True)
    )
    joined = {0}
    joins: list[tuple[exp.Expr, str]] = []
    for recipe in recipes:
        if recipe.kind == MODE:
            alias = f"mode_{len(joins)}"
            joins.append(
                (_mode_select(recipe, tables[recipe.query]).subquery(alias), alias)
            )
            value: exp.Expr = _column(alias, "value")
        else:
            alias = aliases[recipe.query]
            if recipe.query not in joined:
                joined.add(recipe.query)
                joins.append((exp.to_table(tables[recipe.query], alias=alias), alias))
            value = _metric_value(recipe, alias)
        query = query.select(
            exp.alias_(sql.cast(value, types[recipe.name]), recipe.name, quoted=True)
        )
    literal = (
        sql.cast(exp.Null(), "TIMESTAMPTZ")
        if as_of is None
        else sql.cast(exp.Literal.string(as_of.isoformat()), "TIMESTAMPTZ")
    )
    query = query.select(exp.alias_(literal, AS_OF_COLUMN, quoted=True))
    query = query.from_(exp.to_table(tables[0], alias="q0"))
    for source, alias in joins:
        on = exp.EQ(
            this=_column(alias, CUSTOMER_COLUMN),
            expression=_column("q0", CUSTOMER_COLUMN),
        )
        query = query.join(source, on=on, join_type="left")
    customer = _column("q0", CUSTOMER_COLUMN)
    return query.where(exp.Not(this=exp.Is(this=customer, expression=exp.Null())))
