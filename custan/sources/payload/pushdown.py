"""Compile a plan's metrics stage into Payload list queries grouped by customer.

Rules-file filters are SQL; the common shapes (a field against a literal, IN
lists, AND of those) become Payload filters such as ``status=processed`` or
``amount=>=100``. A plan whose metrics all fit becomes a few grouped queries.
For any other plan ``plan_pushdown`` returns None, and the source runs that
plan over fetched transactions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from sqlglot import exp

from custan.compiler.aggregates import MODE
from custan.compiler.fields import AS_OF_COLUMN, CUSTOMER_COLUMN
from custan.compiler.metrics_stage import CUSTOMER_METRICS, EVALUATION, PURCHASES
from custan.compiler.plan import Plan
from custan.errors import RulesError
from custan.expressions.syntax import parse_expression
from custan.model.ruleset import Expr, Metric, RuleSet

CUSTOMER_FIELD = "sender.account_id"
METHOD_FIELD = "sender.method_id"

# Payload's wire name of each canonical transaction field, per API version.
WIRE_NAMES = {
    "v2": {
        "id": "id",
        "type": "type",
        "status": "status",
        "amount": "amount",
        "created_at": "created_at",
        "sender.account_id": "sender[account_id]",
        "sender.method_id": "sender[method_id]",
    },
    "v1": {
        "id": "id",
        "type": "type",
        "status": "status",
        "amount": "amount",
        "created_at": "created_at",
        "sender.account_id": "customer_id",
        "sender.method_id": "payment_method_id",
    },
}
TEXT_FIELDS = frozenset(
    {"id", "type", "status", "sender.account_id", "sender.method_id"}
)
# Characters that Payload reads as operators at the start of a filter value.
OPERATOR_PREFIXES = ("!", "<", ">", "?")
_OPERATORS: dict[type[exp.Expr], str] = {
    exp.EQ: "",
    exp.NEQ: "!",
    exp.GT: ">",
    exp.GTE: ">=",
    exp.LT: "<",
    exp.LTE: "<=",
}
_FLIPPED: dict[type[exp.Expr], type[exp.Expr]] = {
    exp.EQ: exp.EQ,
    exp.NEQ: exp.NEQ,
    exp.GT: exp.LT,
    exp.GTE: exp.LTE,
    exp.LT: exp.GT,
    exp.LTE: exp.GTE,
}
# Rules-language calendar functions that a mode may count by, and the
# Payload function whose groups they are computed from.
CALENDAR_FUNCTIONS = {"day_of_week": "dayofweek", "hour": "hour"}


@dataclass(frozen=True)
class Filter:
    """One Payload filter on a canonical field: ``field=<operator><value>``."""

    field: str
    value: str


@dataclass(frozen=True)
class InstantFilter:
    """A bound on created_at relative to as_of, resolved once as_of is known."""

    operator: str
    before_as_of: timedelta = timedelta(0)

    def resolve(self, as_of: datetime) -> Filter:
        return Filter(
            "created_at", self.operator + wire_instant(as_of - self.before_as_of)
        )


Condition = Filter | InstantFilter


@dataclass
class GroupedQuery:
    """A query grouped by customer (and maybe more), with its aggregate fields."""

    conditions: tuple[Condition, ...]
    groups: tuple[str, ...] = (CUSTOMER_FIELD,)
    aggregates: list[tuple[str, str]] = field(default_factory=list)

    def add(self, function: str, field_name: str) -> int:
        """Add ``function(field_name)`` unless present; return its position."""
        aggregate = (function, field_name)
        if aggregate not in self.aggregates:
            self.aggregates.append(aggregate)
        return self.aggregates.index(aggregate)


@dataclass(frozen=True)
class MetricRecipe:
    """How to rebuild one metric from grouped results."""

    name: str
    kind: str  # sum, count, min, max, avg, mode
    query: int
    positions: tuple[int, ...] = ()
    calendar: str | None = None


@dataclass
class Pushdown:
    """The grouped queries of a plan. Query 0 returns every customer of the run."""

    queries: list[GroupedQuery]
    recipes: list[MetricRecipe]


def wire_instant(instant: datetime) -> str:
    """Format an instant as Payload writes them: UTC, ``YYYY-MM-DD HH:MM:SS``."""
    text = instant.strftime("%Y-%m-%d %H:%M:%S")
    if instant.microsecond:
        text += f".{instant.microsecond:06d}"
    return text


def translate_filter(expr: Expr) -> list[Filter] | None:
    """Translate the SQL condition ``expr`` to Payload filters, or return None."""
    try:
        tree = parse_expression(expr.text, expr.location)
    except RulesError:
        return None
    return _translate(tree)


def _translate(node: exp.Expr) -> list[Filter] | None:
    if isinstance(node, exp.Paren):
        return _translate(node.this)
    if isinstance(node, exp.And):
        left, right = _translate(node.this), _translate(node.expression)
        return None if left is None or right is None else left + right
    if type(node) in _OPERATORS:
        return _comparison(node)
    if isinstance(node, exp.In):
        return _in_list(node, negated=False)
    if isinstance(node, exp.Not) and isinstance(node.this, exp.In):
        return _in_list(node.this, negated=True)
    if isinstance(node, exp.Not) and isinstance(node.this, exp.Paren):
        inner = node.this.this
        if isinstance(inner, exp.In):
            return _in_list(inner, negated=True)
    return None


def _comparison(node: exp.Expr) -> list[Filter] | None:
    kind: type[exp.Expr] = type(node)
    field_name = field_of(node.this)
    literal = node.expression
    if field_name is None:
        field_name, literal, kind = field_of(node.expression), node.this, _FLIPPED[kind]
    if field_name is None:
        return None
    value = literal_text(field_name, literal)
    if value is None:
        return None
    if field_name in TEXT_FIELDS and kind not in (exp.EQ, exp.NEQ):
        # Payload's ordering of text is its database's collation, not DuckDB's.
        return None
    return [Filter(field_name, _OPERATORS[kind] + value)]


def _in_list(node: exp.In, negated: bool) -> list[Filter] | None:
    field_name = field_of(node.this)
    if field_name is None or node.args.get("query") or not node.expressions:
        return None
    values = [literal_text(field_name, item) for item in node.expressions]
    if any(value is None for value in values):
        return None
    if negated:
        # Repeated keys are joined by AND, so this reads "not a and not b".
        return [Filter(field_name, "!" + value) for value in values]  # type: ignore[operator]
    return [Filter(field_name, "|".join(values))]  # type: ignore[arg-type]


def field_of(node: exp.Expr) -> str | None:
    """Return the filterable canonical field that a column node names, or None."""
    if not isinstance(node, exp.Column):
        return None
    name = ".".join(part.name for part in node.parts)
    if name not in WIRE_NAMES["v2"] or name == "created_at":
        return None
    return name


def literal_text(field_name: str, node: exp.Expr) -> str | None:
    """Return the wire text of a literal compared with ``field_name``, or None."""
    negative = isinstance(node, exp.Neg)
    if negative:
        node = node.this
    if not isinstance(node, exp.Literal):
        return None
    if field_name in TEXT_FIELDS:
        if not node.is_string or negative:
            return None
        text = node.this
        unsafe = not text or text.startswith(OPERATOR_PREFIXES) or "|" in text
        return None if unsafe or text != text.strip() else text
    if node.is_string:
        return None
    try:
        number = Decimal(("-" if negative else "") + node.this)
    except InvalidOperation:
        return None
    return format(number, "f") if number.is_finite() else None


def plan_pushdown(plan: Plan) -> Pushdown | None:
    """Group the plan's metrics into Payload queries; None if one cannot be pushed."""
    rules = plan.rules
    if rules.accounts is not None or not has_known_stages(plan):
        return None
    base = global_conditions(rules)
    if base is None:
        return None
    queries = [GroupedQuery(tuple(base))]
    queries[0].add("count", "id")
    recipes = []
    for compiled in plan.metrics.metrics.values():
        recipe = _recipe(rules, compiled.metric, queries, base)
        if recipe is None:
            return None
        recipes.append(recipe)
    return Pushdown(queries, recipes)


def has_known_stages(plan: Plan) -> bool:
    """Check that stage one has only the steps rebuilt here from grouped results.

    A compiler feature that adds steps or columns (a join, per keys) makes
    the plan fall back to fetched transactions instead of giving wrong numbers.
    """
    metrics = plan.metrics.metrics
    if getattr(plan.rules, "per", None):
        return False
    levels = {item.level for item in metrics.values()}
    known = {EVALUATION, PURCHASES, CUSTOMER_METRICS}
    known |= {f"metrics_{level}" for level in range(1, max(levels, default=1) + 1)}
    known |= {
        f"mode_{name}" for name, item in metrics.items() if item.aggregate is None
    }
    ctes = dict(plan.metrics.ctes)
    if set(ctes) - known or CUSTOMER_METRICS not in ctes:
        return False
    columns = {node.alias_or_name for node in ctes[CUSTOMER_METRICS].expressions}
    return columns == {CUSTOMER_COLUMN, AS_OF_COLUMN, *metrics}


def global_conditions(rules: RuleSet) -> list[Condition] | None:
    conditions: list[Condition] = [InstantFilter("<=")]
    for expr in rules.filters:
        translated = translate_filter(expr)
        if translated is None:
            return None
        conditions += translated
    conditions += [InstantFilter(">=", span) for span in rules.windows]
    return conditions


def _metric_conditions(
    metric: Metric, base: list[Condition]
) -> tuple[Condition, ...] | None:
    conditions = list(base)
    if metric.where is not None:
        translated = translate_filter(metric.where)
        if translated is None:
            return None
        conditions += translated
    if metric.window is not None:
        conditions.append(InstantFilter(">=", metric.window))
    return tuple(conditions)


def _query_for(
    queries: list[GroupedQuery],
    conditions: tuple[Condition, ...],
    groups: tuple[str, ...] = (CUSTOMER_FIELD,),
) -> int:
    for index, query in enumerate(queries):
        if query.conditions == conditions and query.groups == groups:
            return index
    queries.append(GroupedQuery(conditions, groups))
    return len(queries) - 1


def _recipe(
    rules: RuleSet, metric: Metric, queries: list[GroupedQuery], base: list[Condition]
) -> MetricRecipe | None:
    conditions = _metric_conditions(metric, base)
    if conditions is None:
        return None
    of = _value_field(metric.of)
    if metric.agg == MODE:
        return _mode_recipe(rules, metric, queries, conditions)
    if metric.agg == "count":
        target = "id" if metric.of is None else of
        if target is None:
            return None
        index = _query_for(queries, conditions)
        return MetricRecipe(
            metric.name, "count", index, (queries[index].add("count", target),)
        )
    if of not in ("amount", "created_at") or metric.agg not in (
        "sum",
        "avg",
        "min",
        "max",
    ):
        return None
    if metric.agg in ("sum", "avg") and of != "amount":
        return None
    index = _query_for(queries, conditions)
    query = queries[index]
    positions: tuple[int, ...]
    if metric.agg == "avg":
        # The mean is sum / count, divided exactly here; Payload's avg is a float.
        positions = (query.add("sum", of), query.add("count", of))
    else:
        positions = (query.add(metric.agg, of),)
    return MetricRecipe(metric.name, metric.agg, index, positions)


def _value_field(expr: Expr | None) -> str | None:
    if expr is None:
        return None
    try:
        tree = parse_expression(expr.text, expr.location)
    except RulesError:
        return None
    if isinstance(tree, exp.Column):
        name = ".".join(part.name for part in tree.parts)
        return name if name in WIRE_NAMES["v2"] else None
    return None


def _calendar_part(expr: Expr | None) -> str | None:
    """Return ``day_of_week`` or ``hour`` when ``expr`` is that call on created_at."""
    if expr is None:
        return None
    try:
        tree = parse_expression(expr.text, expr.location)
    except RulesError:
        return None
    if not isinstance(tree, exp.Anonymous) or len(tree.expressions) != 1:
        return None
    name = str(tree.this).lower()
    argument = tree.expressions[0]
    if name not in CALENDAR_FUNCTIONS or not isinstance(argument, exp.Column):
        return None
    return name if argument.name == "created_at" and not argument.table else None


def _mode_recipe(
    rules: RuleSet,
    metric: Metric,
    queries: list[GroupedQuery],
    conditions: tuple[Condition, ...],
) -> MetricRecipe | None:
    if _value_field(metric.of) == METHOD_FIELD:
        index = _query_for(queries, conditions, (CUSTOMER_FIELD, METHOD_FIELD))
        return MetricRecipe(
            metric.name, MODE, index, (queries[index].add("count", "id"),)
        )
    part = _calendar_part(metric.of)
    # Payload's date functions read UTC; other zones need the transactions.
    if part is None or rules.time_zone.upper() != "UTC":
        return None
    groups = (CUSTOMER_FIELD, "dayofweek(created_at)", "hour(created_at)")
    index = _query_for(queries, conditions, groups)
    return MetricRecipe(
        metric.name, MODE, index, (queries[index].add("count", "id"),), calendar=part
    )
