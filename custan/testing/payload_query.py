"""Parse Payload query strings and compile them to SQLGlot select trees.

The local Payload server uses this module to serve list requests. It reads
`fields`, `group_by`, `order_by`, `limit`, `offset` and filters, and binds
every request value into the tree as a literal node.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from sqlglot import exp

AGGREGATES = frozenset({"sum", "avg", "count", "min", "max", "count_distinct"})

# Result kind of each date function. The names and results follow MySQL, whose
# functions the Payload query language mirrors.
DATE_FUNCTIONS = {
    "year": "integer",
    "month": "integer",
    "monthname": "string",
    "day": "integer",
    "dayname": "string",
    "dayofweek": "integer",
    "dayofyear": "integer",
    "weekofyear": "integer",
    "hour": "integer",
    "minute": "integer",
    "second": "integer",
    "unix_timestamp": "integer",
}

NUMERIC_KINDS = frozenset({"number", "integer", "float"})

# v1 transactions expose the sender columns under these top-level names.
V1_TRANSACTION_ALIASES = {
    "customer_id": "sender.account_id",
    "payment_method_id": "sender.method_id",
}

_LIST_KEY = re.compile(r"^(fields|group_by|order_by)(?:\[(\d*)\])?$")
_CALL = re.compile(r"^([A-Za-z_]\w*)\((.*)\)$")
_PATH = re.compile(r"^[A-Za-z_]\w*(?:\[\w+\])*(?:\.\w+)*$")
# A `+` in a raw query string decodes to a space, which breaks a UTC offset.
_SPACED_OFFSET = re.compile(r"^(.*\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d:?\d\d)$")


class QueryError(Exception):
    """A request that the query language rejects, sent back as a 400 error."""

    def __init__(self, error_type: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.error_type = error_type
        self.details = details or {}


@dataclass(frozen=True)
class Path:
    """An attribute path such as `sender[account_id]`, stored as its parts."""

    parts: tuple[str, ...]

    def display(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class Call:
    """A function applied to one argument, such as `sum(amount)`."""

    name: str
    argument: Path | Call

    def display(self) -> str:
        return f"{self.name}({self.argument.display()})"


Term = Path | Call
STAR = Path(("*",))


@dataclass(frozen=True)
class Column:
    """A table column: its name (dots mark nesting) and its value kind."""

    name: str
    kind: str


@dataclass(frozen=True)
class ListQuery:
    """One parsed list request. Filters are (key, raw value) pairs, joined by AND.

    NOTE: with no `limit` every matching row is returned, because Payload's
    default and maximum page sizes are not documented.
    """

    fields: tuple[Term, ...] = ()
    group_by: tuple[Term, ...] = ()
    order_by: tuple[tuple[Term, bool], ...] = ()
    filters: tuple[tuple[Term, str], ...] = ()
    limit: int | None = None
    offset: int = 0
    id_equals: str | None = None

    def page_free_key(self) -> tuple:
        """Return a key equal for every page of the same query."""
        filters = tuple(sorted((term.display(), value) for term, value in self.filters))
        order = tuple(
            (term.display(), descending) for term, descending in self.order_by
        )
        fields = tuple(term.display() for term in self.fields)
        groups = tuple(term.display() for term in self.group_by)
        return (fields, groups, order, filters, self.id_equals)


@dataclass(frozen=True)
class Output:
    """A selected value: its SQL alias and the key path it takes in the JSON row."""

    alias: str
    key: tuple[str, ...]


@dataclass(frozen=True)
class CompiledQuery:
    """A select tree ready to run, and how to turn its rows into JSON objects."""

    select: exp.Select
    outputs: tuple[Output, ...]
    aggregated: bool


def kind_of_type(type_name: str) -> str:
    """Map a DuckDB column type name to the value kind used for filters."""
    upper = type_name.upper()
    if upper.startswith(("TIMESTAMP", "DATE")):
        return "timestamp"
    if upper.startswith(("DECIMAL", "NUMERIC", "DOUBLE", "FLOAT", "REAL")):
        return "number"
    if upper in {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UBIGINT"}:
        return "integer"
    return "string"


@dataclass(frozen=True)
class Resource:
    """A table as one API version shows it, such as `transactions` in v2."""

    table: str
    object_name: str
    columns: tuple[Column, ...]
    version: int

    def resolve(self, path: Path) -> Column:
        """Find the column that an attribute path names in this API version."""
        name = path.display()
        by_name = {column.name: column for column in self.columns}
        if self._is_transactions() and self.version == 1:
            if name in V1_TRANSACTION_ALIASES:
                return by_name[V1_TRANSACTION_ALIASES[name]]
            if name in V1_TRANSACTION_ALIASES.values():
                raise unknown_attribute(path.display())
        if self._is_transactions() and self.version == 2 and name == "status.value":
            name = "status"
        if name not in by_name:
            raise unknown_attribute(path.display())
        return by_name[name]

    def columns_under(self, path: Path) -> list[Column]:
        """List the columns that a path selects, so `sender` selects both fields."""
        prefix = path.display() + "."
        nested = [column for column in self.columns if column.name.startswith(prefix)]
        if nested and not (self._is_transactions() and self.version == 1):
            return nested
        return [self.resolve(path)]

    def object_key(self, column: Column) -> tuple[str, ...]:
        """Return where a column sits in a full object of this API version."""
        if self._is_transactions() and self.version == 1:
            for alias, target in V1_TRANSACTION_ALIASES.items():
                if column.name == target:
                    return (alias,)
        if self._is_transactions() and self.version == 2 and column.name == "status":
            return ("status", "value")
        return tuple(column.name.split("."))

    def _is_transactions(self) -> bool:
        return self.table == "transactions"


def unknown_attribute(name: str) -> QueryError:
    return QueryError(
        "InvalidAttributes", f"Unknown attribute: {name}", {name: "Unknown attribute"}
    )


def parse_term(text: str) -> Term:
    """Parse `amount`, `sender[account_id]` or `fn(path)` into a term."""
    text = text.strip()
    call = _CALL.match(text)
    if call:
        return Call(call.group(1).lower(), parse_term(call.group(2)))
    if text == "*":
        return STAR
    if _PATH.match(text):
        return Path(tuple(re.findall(r"\w+", text)))
    raise QueryError("BadRequest", f"Invalid attribute expression: {text!r}")


def split_top_level(text: str) -> list[str]:
    """Split a comma-joined list, keeping commas inside parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for character in text:
        if character == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        depth += {"(": 1, ")": -1}.get(character, 0)
        current.append(character)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def parse_query(pairs: list[tuple[str, str]]) -> ListQuery:
    """Build a ListQuery from decoded query-string pairs, in request order."""
    lists: dict[str, list[tuple[bool, int, int, str]]] = {
        "fields": [],
        "group_by": [],
        "order_by": [],
    }
    filters: list[tuple[Term, str]] = []
    limit, offset = None, 0
    for sequence, (key, value) in enumerate(pairs):
        list_key = _LIST_KEY.match(key)
        if list_key:
            index = list_key.group(2)
            # Indexed entries sort by index, and bare repeated keys keep their order.
            position = (not index, int(index or 0), sequence, value)
            lists[list_key.group(1)].append(position)
        elif key == "limit":
            limit = parse_count(key, value)
        elif key == "offset":
            offset = parse_count(key, value)
        else:
            filters.append((parse_term(key), value))
    fields, group_by, order_by = (
        [parse_term(text) for text in ordered_values(lists[name])]
        for name in ("fields", "group_by", "order_by")
    )
    return ListQuery(
        fields=tuple(fields),
        group_by=tuple(group_by),
        order_by=tuple(split_direction(term) for term in order_by),
        filters=tuple(filters),
        limit=limit,
        offset=offset,
    )


def ordered_values(entries: list[tuple[bool, int, int, str]]) -> list[str]:
    values = []
    for *_, value in sorted(entries):
        values.extend(split_top_level(value))
    return values


def parse_count(key: str, value: str) -> int:
    if not value.isdigit():
        raise QueryError(
            "BadRequest", f"Invalid {key}: {value!r}, expected a whole number >= 0"
        )
    return int(value)


def split_direction(term: Term) -> tuple[Term, bool]:
    """Unwrap `desc(x)` or `asc(x)` into (x, descending)."""
    if isinstance(term, Call) and term.name in {"desc", "asc"}:
        return term.argument, term.name == "desc"
    return term, False


def parse_instant(text: str) -> datetime:
    """Parse a filter date such as `2024-01-01` or ISO 8601 with an offset, as UTC."""
    repaired = _SPACED_OFFSET.sub(r"\1+\2", text.strip())
    try:
        instant = datetime.fromisoformat(repaired)
    except ValueError:
        raise QueryError(
            "BadRequest",
            f"Invalid date {text!r}, expected YYYY-MM-DD or YYYY-MM-DD HH:MM:SS",
        ) from None
    if instant.tzinfo is None:
        return instant.replace(tzinfo=UTC)
    return instant.astimezone(UTC)


def literal_for(kind: str, text: str) -> exp.Expr:
    """Bind a filter value as a literal node of the compared expression's kind."""
    if kind in NUMERIC_KINDS:
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise QueryError("BadRequest", f"Invalid number: {text!r}") from None
        if not number.is_finite():
            raise QueryError("BadRequest", f"Invalid number: {text!r}")
        return exp.Literal.number(str(number))
    if kind == "timestamp":
        instant = parse_instant(text).isoformat(sep=" ")
        return exp.cast(exp.Literal.string(instant), exp.DataType.build("TIMESTAMPTZ"))
    return exp.Literal.string(text)


def like_pattern(text: str) -> str:
    """Turn a Payload wildcard value (`*` matches anything) into a LIKE pattern."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


_COMPARISONS = (
    ("!", exp.NEQ),
    ("<=", exp.LTE),
    (">=", exp.GTE),
    ("<", exp.LT),
    (">", exp.GT),
)


class QueryCompiler:
    """Compile ListQuery objects against one resource into SQLGlot selects."""

    def __init__(self, resource: Resource):
        self.resource = resource

    def compile(self, query: ListQuery) -> CompiledQuery:
        """Build the select for a query.

        Aggregated selects carry no LIMIT or OFFSET, because the server slices
        pages out of the cached result.
        """
        select = exp.select().from_(exp.to_table(self.resource.table))
        for condition in self._conditions(query):
            select = select.where(condition)
        terms = [*query.fields, *query.group_by, *(t for t, _ in query.order_by)]
        if query.group_by or any(contains_aggregate(term) for term in terms):
            return self._compile_aggregated(select, query)
        return self._compile_plain(select, query)

    def _compile_plain(self, select: exp.Select, query: ListQuery) -> CompiledQuery:
        outputs = []
        for index, (expression, key) in enumerate(self._plain_outputs(query)):
            alias = f"c{index}"
            select = select.select(exp.alias_(expression, alias))
            outputs.append(Output(alias, key))
        for term, descending in query.order_by:
            expression, _ = self._expression(term, allow_aggregate=False)
            select = select.order_by(exp.Ordered(this=expression, desc=descending))
        if "id" in {column.name for column in self.resource.columns}:
            # A final key on id keeps pages stable when the request's keys tie.
            select = select.order_by(quoted_column("id"))
        if query.offset:
            select = select.offset(query.offset)
        if query.limit is not None:
            select = select.limit(query.limit)
        return CompiledQuery(select, tuple(outputs), aggregated=False)

    def _plain_outputs(self, query: ListQuery):
        """Yield (expression, key path) for each value of the returned objects."""
        fields = query.fields or (STAR,)
        for term in fields:
            if term == STAR:
                columns = list(self.resource.columns)
            elif isinstance(term, Path):
                columns = self.resource.columns_under(term)
            else:
                expression, _ = self._expression(term, allow_aggregate=False)
                yield expression, (term.display(),)
                continue
            for column in columns:
                yield quoted_column(column.name), self.resource.object_key(column)

    def _compile_aggregated(
        self, select: exp.Select, query: ListQuery
    ) -> CompiledQuery:
        groups = [self._expression(t, allow_aggregate=False)[0] for t in query.group_by]
        grouped_sql = {group.sql() for group in groups}
        outputs = []
        for index, term in enumerate(query.fields or query.group_by):
            if term == STAR:
                raise QueryError("BadRequest", "Cannot select * with group_by")
            expression, _ = self._expression(term, allow_aggregate=True)
            require_grouped(term, expression, grouped_sql)
            alias = f"c{index}"
            select = select.select(exp.alias_(expression, alias))
            outputs.append(Output(alias, (term.display(),)))
        if groups:
            select = select.group_by(*groups)
        for term, descending in query.order_by:
            expression, _ = self._expression(term, allow_aggregate=True)
            require_grouped(term, expression, grouped_sql)
            select = select.order_by(exp.Ordered(this=expression, desc=descending))
        for group in groups:
            select = select.order_by(group.copy())
        return CompiledQuery(select, tuple(outputs), aggregated=True)

    def _conditions(self, query: ListQuery) -> list[exp.Expr]:
        conditions: list[exp.Expr] = []
        if query.id_equals is not None:
            id_column = quoted_column(self.resource.resolve(Path(("id",))).name)
            conditions.append(
                exp.EQ(this=id_column, expression=exp.Literal.string(query.id_equals))
            )
        for term, value in query.filters:
            target, kind = self._expression(term, allow_aggregate=False)
            alternatives = [
                compare(target.copy(), kind, text) for text in value.split("|")
            ]
            conditions.append(exp.Paren(this=exp.or_(*alternatives)))
        return conditions

    def _expression(self, term: Term, allow_aggregate: bool) -> tuple[exp.Expr, str]:
        """Compile a term to (SQL expression, result kind)."""
        if isinstance(term, Path):
            if term == STAR:
                raise QueryError("BadRequest", "* is only valid in fields")
            column = self.resource.resolve(term)
            return quoted_column(column.name), column.kind
        if term.name in AGGREGATES:
            if not allow_aggregate or contains_aggregate(term.argument):
                raise QueryError(
                    "InvalidAttributes",
                    f"Aggregate {term.display()} is only valid in fields and order_by",
                    {term.display(): "Invalid use of aggregate"},
                )
            argument, kind = self._expression(term.argument, allow_aggregate=False)
            return aggregate(term, argument, kind)
        if term.name in DATE_FUNCTIONS:
            argument, kind = self._expression(term.argument, allow_aggregate)
            if kind != "timestamp":
                raise invalid_argument(term, "a date attribute")
            return date_function(term.name, argument), DATE_FUNCTIONS[term.name]
        raise QueryError(
            "InvalidAttributes",
            f"Unknown function: {term.name}",
            {term.display(): "Unknown function"},
        )


def quoted_column(name: str) -> exp.Column:
    return exp.Column(this=exp.to_identifier(name, quoted=True))


def contains_aggregate(term: Term) -> bool:
    if isinstance(term, Path):
        return False
    return term.name in AGGREGATES or contains_aggregate(term.argument)


def require_grouped(term: Term, expression: exp.Expr, grouped_sql: set[str]):
    """Reject a plain value in a grouped select unless the query groups by it."""
    if contains_aggregate(term) or expression.sql() in grouped_sql:
        return
    raise QueryError(
        "BadRequest",
        f"{term.display()} must be in group_by or wrapped in an aggregate",
        {term.display(): "Not grouped"},
    )


def invalid_argument(term: Call, needed: str) -> QueryError:
    return QueryError(
        "InvalidAttributes",
        f"Function {term.name} needs {needed}, got {term.argument.display()}",
        {term.display(): f"Needs {needed}"},
    )


def aggregate(term: Call, argument: exp.Expr, kind: str):
    """Build an aggregate node and the kind of value it returns."""
    if term.name in {"sum", "avg"} and kind not in NUMERIC_KINDS:
        raise invalid_argument(term, "a numeric attribute")
    if term.name == "sum":
        return exp.Sum(this=argument), "number" if kind != "float" else "float"
    if term.name == "avg":
        # NOTE: DuckDB averages DECIMAL as DOUBLE, so 1234.86 / 3 comes back as
        # 411.61999999999995, where MySQL would return a DECIMAL.
        return exp.Avg(this=argument), "float"
    if term.name == "count":
        return exp.Count(this=argument), "integer"
    if term.name == "count_distinct":
        return exp.Count(this=exp.Distinct(expressions=[argument])), "integer"
    if term.name == "min":
        return exp.Min(this=argument), kind
    return exp.Max(this=argument), kind


def date_function(name: str, argument: exp.Expr) -> exp.Expr:
    """Build a date function over a UTC timestamp with MySQL's result values."""
    if name == "dayofweek":
        # DuckDB numbers Sunday 0 through Saturday 6, and MySQL numbers them 1 to 7.
        weekday = exp.Anonymous(this="dayofweek", expressions=[argument])
        return exp.Paren(this=exp.Add(this=weekday, expression=exp.Literal.number(1)))
    if name == "unix_timestamp":
        seconds = exp.Floor(this=exp.Anonymous(this="epoch", expressions=[argument]))
        return exp.cast(seconds, exp.DataType.build("BIGINT"))
    # DuckDB's weekofyear is the ISO week, as MySQL's WEEKOFYEAR is.
    return exp.Anonymous(this=name, expressions=[argument])


def compare(target: exp.Expr, kind: str, text: str) -> exp.Expr:
    """Build one filter comparison from `<op><value>`, such as `>=100`."""
    if text.startswith("?"):
        # NOTE: matching is case-sensitive. Whether Payload's LIKE ignores case,
        # as MySQL's default collation does, is not documented.
        if kind != "string":
            target = exp.cast(target, exp.DataType.build("VARCHAR"))
        pattern = exp.Literal.string(like_pattern(text[1:]))
        like = exp.Like(this=target, expression=pattern)
        return exp.Escape(this=like, expression=exp.Literal.string("\\"))
    for operator, node in _COMPARISONS:
        if text.startswith(operator):
            value = literal_for(kind, text[len(operator) :])
            return node(this=target, expression=value)
    return exp.EQ(this=target, expression=literal_for(kind, text))
