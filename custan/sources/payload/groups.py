"""Rebuild transactions from Payload groups when metrics read only a few fields.

Metrics such as "the preferred payment method and how often it was used" or
"the busiest hour" read each transaction only through its payment method,
its weekday and hour, and its amount inside a sum. Payload can count and sum
the transactions of each customer, method, weekday and hour. Each group is
expanded back to as many rows as it counts, with the group's sum on its first
row and 0 on the others. Every such count, sum and mode then keeps its exact
value, so the plan's own query runs over these rows unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from custan.compiler.aggregates import MODE
from custan.compiler.fields import AS_OF_COLUMN, CUSTOMER_COLUMN, MONEY_SQL_TYPE
from custan.compiler.plan import Plan
from custan.errors import RulesError
from custan.expressions import sql
from custan.expressions.syntax import parse_expression
from custan.model.ruleset import Expr
from custan.sources.payload.pushdown import (
    CALENDAR_FUNCTIONS,
    CUSTOMER_FIELD,
    METHOD_FIELD,
    Condition,
    global_conditions,
    has_known_stages,
)

CALENDAR_GROUPS = ("dayofweek(created_at)", "hour(created_at)")
# 2024-01-01 was a Monday, so ISO weekday d falls on 2024-01-0d.
REFERENCE_MONDAY = "2024-01-01 00:00:00+00"


@dataclass(frozen=True)
class GroupRoute:
    """One grouped query whose rows expand back into transactions."""

    conditions: tuple[Condition, ...]
    by_method: bool
    by_calendar: bool
    sums_amount: bool

    @property
    def groups(self) -> tuple[str, ...]:
        groups = [CUSTOMER_FIELD]
        if self.by_method:
            groups.append(METHOD_FIELD)
        if self.by_calendar:
            groups += CALENDAR_GROUPS
        return tuple(groups)

    @property
    def aggregates(self) -> list[tuple[str, str]]:
        aggregates = [("count", "id")]
        if self.sums_amount:
            aggregates.append(("sum", "amount"))
        return aggregates


def plan_group_route(plan: Plan) -> GroupRoute | None:
    """Return the grouped query for a plan of counts, sums and modes, or None."""
    rules = plan.rules
    if rules.accounts is not None or not has_known_stages(plan):
        return None
    conditions = global_conditions(rules)
    if conditions is None:
        return None
    names = set(rules.metrics)
    uses: set[str] = set()
    for metric in rules.metrics.values():
        if metric.agg not in ("count", "sum", MODE) or metric.window is not None:
            return None
        if metric.agg == "sum":
            if metric.of is None or _column_name(metric.of) != "amount":
                return None
            uses.add("amount")
        elif not _reads_only_groups(metric.of, names, rules.time_zone, uses):
            return None
        if not _reads_only_groups(metric.where, names, rules.time_zone, uses):
            return None
    return GroupRoute(
        tuple(conditions),
        by_method=METHOD_FIELD in uses,
        by_calendar="calendar" in uses,
        sums_amount="amount" in uses,
    )


def _column_name(expr: Expr) -> str | None:
    tree = _parse(expr)
    if not isinstance(tree, exp.Column):
        return None
    return ".".join(part.name for part in tree.parts)


def _parse(expr: Expr) -> exp.Expr | None:
    try:
        return parse_expression(expr.text, expr.location)
    except RulesError:
        return None


def _reads_only_groups(
    expr: Expr | None, metrics: set[str], time_zone: str, uses: set[str]
) -> bool:
    """Check that ``expr`` reads transactions only through the grouped fields.

    Adds to ``uses`` the groups it needs: the method, or the calendar.
    """
    if expr is None:
        return True
    tree = _parse(expr)
    if tree is None:
        return False
    for column in tree.find_all(exp.Column):
        name = ".".join(part.name for part in column.parts)
        if name in metrics or name in (CUSTOMER_FIELD, AS_OF_COLUMN):
            continue
        if name == METHOD_FIELD:
            uses.add(METHOD_FIELD)
            continue
        call = column.parent
        calendar = (
            name == "created_at"
            and isinstance(call, exp.Anonymous)
            and str(call.this).lower() in CALENDAR_FUNCTIONS
            and len(call.expressions) == 1
            # Payload's hour and dayofweek read UTC.
            and time_zone.upper() == "UTC"
        )
        if not calendar:
            return False
        uses.add("calendar")
    return True


def expanded_relation(route: GroupRoute, table: str) -> exp.Select:
    """Select one row per transaction counted in the groups of ``table``.

    Columns follow ``grouped_columns``: customer_id, then g1 (method) or g1, g2
    (MySQL weekday, hour), then a0 (count) and a1 (sum of amount).
    """
    position = 1
    method: exp.Expr = sql.cast(exp.Null(), "VARCHAR")
    if route.by_method:
        method = exp.column(f"g{position}", "groups")
        position += 1
    created_at = sql.cast(exp.Literal.string(REFERENCE_MONDAY), "TIMESTAMPTZ")
    if route.by_calendar:
        created_at = exp.maybe_parse(
            f"TIMESTAMPTZ '{REFERENCE_MONDAY}'"
            f" + INTERVAL (((g{position} + 5) % 7)) DAY"
            f" + INTERVAL (g{position + 1}) HOUR",
            dialect="duckdb",
        )
    amount: exp.Expr = sql.cast(exp.Null(), MONEY_SQL_TYPE)
    if route.sums_amount:
        # The whole sum rides on the first row of each group, 0 on the rest.
        amount = exp.Case(
            ifs=[
                exp.If(
                    this=exp.EQ(this=exp.column("k"), expression=sql.number(0)),
                    true=sql.cast(exp.column("a1", "groups"), MONEY_SQL_TYPE),
                )
            ],
            default=sql.cast(sql.number(0), MONEY_SQL_TYPE),
        )
    rows = exp.select(
        exp.Star(),
        exp.alias_(
            exp.Anonymous(
                this="unnest",
                expressions=[
                    exp.Anonymous(
                        this="range", expressions=[exp.column("a0", "groups")]
                    )
                ],
            ),
            "k",
        ),
    ).from_(exp.to_table(table, alias="groups"))
    projections = {
        "id": sql.cast(exp.Null(), "VARCHAR"),
        "type": sql.cast(exp.Null(), "VARCHAR"),
        "status": sql.cast(exp.Null(), "VARCHAR"),
        "amount": amount,
        "created_at": created_at,
        CUSTOMER_COLUMN: exp.column(CUSTOMER_COLUMN, "groups"),
        "method_id": method,
    }
    select = exp.select(
        *[exp.alias_(node, name, quoted=True) for name, node in projections.items()]
    )
    customer = exp.column(CUSTOMER_COLUMN, "groups")
    return select.from_(rows.subquery("groups")).where(
        exp.Not(this=exp.Is(this=customer, expression=exp.Null()))
    )
