"""The ``payload`` source: runs a rules file on transactions from the Payload API.

It takes the first of three routes that fits the plan, and all three give the
files source's numbers on the same data:
- sums, counts, min, max, avg and modes over simple filters: Payload groups
  them by customer, so one row per customer crosses the network;
- counts, sums and modes that read only the payment method, weekday or hour:
  Payload counts customer groups, expanded back into rows here (groups.py);
- anything else: the needed transaction fields are fetched page by page and
  the whole plan runs over them in DuckDB.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import duckdb
from sqlglot import exp

from custan.compiler.fields import (
    AS_OF_COLUMN,
    CUSTOMER_COLUMN,
    MONEY_SQL_TYPE,
    TRANSACTION_FIELDS,
)
from custan.compiler.metrics_stage import (
    CUSTOMER_METRICS,
    EVALUATION,
    PURCHASES,
    TRANSACTIONS,
)
from custan.compiler.plan import Plan, parse_instant
from custan.errors import DataError, RulesError, RunError
from custan.expressions import sql
from custan.model.ruleset import Input
from custan.sources.payload.client import (
    DEFAULT_VERSION,
    PayloadClient,
    RetryPolicy,
    Row,
)
from custan.sources.payload.groups import (
    GroupRoute,
    expanded_relation,
    plan_group_route,
)
from custan.sources.payload.progress import fetch_progress
from custan.sources.payload.pushdown import (
    CUSTOMER_FIELD,
    WIRE_NAMES,
    Condition,
    GroupedQuery,
    InstantFilter,
    Pushdown,
    plan_pushdown,
    translate_filter,
)
from custan.sources.payload.tables import (
    customer_metrics_select,
    first_invalid_value,
    insert_columns,
    sql_type_of,
)
from custan.sources.payload.urls import (
    DEFAULT_URL,
    invalid_url_message,
    redact_url,
    url_problem,
)

logger = logging.getLogger("custan.sources.payload")

DEFAULT_KEY_ENV = "PAYLOAD_API_KEY"
URL_ENV = "PAYLOAD_API_URL"
VERSION_ENV = "PAYLOAD_API_VERSION"
FETCHED_TABLE = "payload_transactions"
GROUPS_TABLE = "payload_groups"
TRANSACTION_RESOURCE = "transactions"
LATEST_FIELD = "max(created_at)"
ENVIRONMENT_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
MAX_SHOWN_VALUE_LENGTH = 40


@dataclass(frozen=True)
class PayloadSettings:
    """Connection settings for Payload. The key itself is read only when fetching.

    ``url_setting`` names where the URL came from, for error messages.
    """

    url: str
    api_version: str
    key_env: str
    url_setting: str = f"the environment variable {URL_ENV}"

    @classmethod
    def resolve(cls, spec: Input, environ: Mapping[str, str]) -> PayloadSettings:
        """Fill what the file leaves out from PAYLOAD_API_URL, PAYLOAD_API_VERSION."""
        key_env = spec.key_env or DEFAULT_KEY_ENV
        if not ENVIRONMENT_NAME.fullmatch(key_env):
            # The value is not shown: it may be a secret key typed in place of a name.
            raise RulesError(
                "source.key_env must name an environment variable, such as "
                f"{DEFAULT_KEY_ENV}, that contains the Payload secret key",
                # The message names the field, so the location gives only the line.
                spec.location and dataclasses.replace(spec.location, field=None),
            )
        if spec.url:
            url, url_setting = spec.url, "source.url of the rules file"
        else:
            url = environ.get(URL_ENV) or DEFAULT_URL
            url_setting = f"the environment variable {URL_ENV}"
        version = spec.api_version or environ.get(VERSION_ENV) or DEFAULT_VERSION
        major = version.strip().lower().removeprefix("v").split(".", 1)[0]
        if major not in ("1", "2"):
            setting = "source.api_version" if spec.api_version else VERSION_ENV
            raise RulesError(
                f"unsupported Payload API version {version!r} in {setting}; "
                "use v1 or v2",
                spec.location and dataclasses.replace(spec.location, field=None),
            )
        return cls(
            url=url,
            api_version=version,
            key_env=key_env,
            url_setting=url_setting,
        )

    def check_url(self) -> None:
        """Raise RunError unless the URL is an http:// or https:// URL with a host."""
        problem = url_problem(self.url)
        if problem is not None:
            raise RunError(invalid_url_message(self.url, problem, self.url_setting))

    @property
    def wire_names(self) -> dict[str, str]:
        major = self.api_version.strip().lower().removeprefix("v").split(".", 1)[0]
        return WIRE_NAMES["v1" if major == "1" else "v2"]


class PayloadSource:
    """Reads transactions, or per-customer aggregates of them, from the Payload API.

    Example:
        >>> source = PayloadSource(Input(kind="payload", url=url))  # doctest: +SKIP
        >>> result = run("rules/rfm.yaml", source=source)  # doctest: +SKIP

    Args:
        spec: the rules file's ``source`` section (url, api_version, key_env).
        progress: show rows fetched on standard error when it is a terminal.
        pushdown: let Payload aggregate when the plan allows; False always
            fetches transactions.
        environ: where the key and the defaults are read (``os.environ``).
    """

    def __init__(
        self,
        spec: Input,
        data_override: str | None = None,
        *,
        progress: bool = False,
        pushdown: bool = True,
        environ: Mapping[str, str] | None = None,
        retry: RetryPolicy | None = None,
        # NOTE: Payload documents no maximum page size; 5000 is a guess, and a
        # server that returns fewer rows per page makes the run fail loudly.
        page_size: int = 5000,
        max_in_flight: int = 4,
        timeout: float = 60.0,
    ) -> None:
        if data_override is not None:
            raise RulesError(
                "--data reads files; it cannot be used with a payload source"
            )
        self.environ = os.environ if environ is None else environ
        self.settings = PayloadSettings.resolve(spec, self.environ)
        self.progress = progress or bool(spec.options.get("progress"))
        self.pushdown = pushdown
        self.retry = retry
        self.page_size = page_size
        self.max_in_flight = max_in_flight
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"<PayloadSource url={redact_url(self.settings.url)!r}>"

    def prepare(self, plan: Plan, connection: duckdb.DuckDBPyConnection) -> exp.Select:
        pushdown, route = self._routes(plan)
        logger.info(
            "reading %s from Payload at %s: %s",
            plan.rules.file,
            redact_url(self.settings.url),
            _route_name(pushdown, route),
        )
        with self._client() as client, fetch_progress(self.progress) as report:
            as_of = self._resolve_as_of(plan, client, connection)
            if pushdown is not None:
                self._load_customer_metrics(
                    plan, pushdown, as_of, client, connection, report
                )
                return plan.rules_query()
            if route is not None:
                query = GroupedQuery(route.conditions, route.groups, route.aggregates)
                self._load_groups(query, as_of, client, connection, report)
                relation = expanded_relation(route, GROUPS_TABLE)
                return _without_purchase_filters(
                    _with_as_of(plan.query(relation), as_of)
                )
            self._load_transactions(plan, as_of, client, connection, report)
        relation = _fetched_relation(referenced_fields(plan))
        return _with_as_of(plan.query(relation), as_of)

    def describe(self, plan: Plan) -> exp.Select:
        pushdown, route = self._routes(plan)
        if pushdown is not None:
            return plan.rules_query()
        if route is not None:
            query = plan.query(expanded_relation(route, GROUPS_TABLE))
            return _without_purchase_filters(query)
        return plan.query(_fetched_relation(referenced_fields(plan)))

    def _routes(self, plan: Plan) -> tuple[Pushdown | None, GroupRoute | None]:
        """Pick per-customer aggregates, else expandable groups, else neither."""
        if not self.pushdown:
            return None, None
        pushdown = plan_pushdown(plan)
        if pushdown is not None:
            return pushdown, None
        return None, plan_group_route(plan)

    def _client(self) -> PayloadClient:
        self.settings.check_url()
        key_env = self.settings.key_env
        key = self.environ.get(key_env)
        if key is None:
            raise RunError(
                f"the environment variable {key_env} is not set; "
                "put the Payload secret key in it"
            )
        if not key.strip():
            raise RunError(
                f"the environment variable {key_env} is empty; "
                "put the Payload secret key in it"
            )
        return PayloadClient(
            self.settings.url,
            key,
            self.settings.api_version,
            self.settings.key_env,
            retry=self.retry,
            timeout=self.timeout,
            page_size=self.page_size,
            max_in_flight=self.max_in_flight,
            url_setting=self.settings.url_setting,
        )

    def _resolve_as_of(
        self, plan: Plan, client: PayloadClient, connection: duckdb.DuckDBPyConnection
    ) -> datetime | None:
        """Compute the evaluation instant, asking Payload for it under ``latest``."""
        if isinstance(plan.as_of, exp.Subquery):
            rows = client.fetch(TRANSACTION_RESOURCE, [("fields[0]", LATEST_FIELD)])
            text = value_at(rows[0], LATEST_FIELD) if rows else None
            if text is None:
                return None
            try:
                return parse_instant(str(text))
            except ValueError:
                raise DataError(
                    f"Payload returned {text!r} as the newest created_at, "
                    "which is not a timestamp"
                ) from None
        query = exp.select(
            exp.Anonymous(this="epoch_us", expressions=[plan.as_of.copy()])
        )
        (micros,) = connection.execute(query.sql("duckdb")).fetchall()[0]
        if micros is None:
            return None
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)

    def _load_customer_metrics(
        self,
        plan: Plan,
        pushdown: Pushdown,
        as_of: datetime | None,
        client: PayloadClient,
        connection: duckdb.DuckDBPyConnection,
        report: Callable[[str, int], None],
    ) -> None:
        for index, query in enumerate(pushdown.queries):
            columns = self._grouped_columns(query)
            _create_table(connection, _query_table(index), columns)
            if as_of is None:
                continue
            params = self._grouped_params(query, as_of)
            label = f"Payload customer aggregates {index + 1}/{len(pushdown.queries)}"
            self._fetch_into(
                client,
                connection,
                _query_table(index),
                columns,
                params,
                functools.partial(report, label),
            )
        select = customer_metrics_select(
            pushdown.recipes,
            [_query_table(i) for i in range(len(pushdown.queries))],
            _metric_types(plan, connection),
            as_of,
        )
        create = exp.Create(
            this=exp.to_table(CUSTOMER_METRICS),
            kind="TABLE",
            replace=True,
            expression=select,
        )
        connection.execute(create.sql("duckdb"))

    def _load_groups(
        self,
        query: GroupedQuery,
        as_of: datetime | None,
        client: PayloadClient,
        connection: duckdb.DuckDBPyConnection,
        report: Callable[[str, int], None],
    ) -> None:
        columns = self._grouped_columns(query)
        _create_table(connection, GROUPS_TABLE, columns)
        if as_of is None:
            return
        params = self._grouped_params(query, as_of)
        on_rows = functools.partial(report, "Payload transaction groups")
        self._fetch_into(client, connection, GROUPS_TABLE, columns, params, on_rows)

    def _grouped_columns(self, query: GroupedQuery) -> list[tuple[str, str, str]]:
        """(column, SQL type, response key) for each group and aggregate of a query."""
        columns = []
        for position, group in enumerate(query.groups):
            wire = self._wire(group)
            name = CUSTOMER_COLUMN if group == CUSTOMER_FIELD else f"g{position}"
            columns.append((name, sql_type_of(group), response_key(wire)))
        for position, (function, field_name) in enumerate(query.aggregates):
            wire = f"{function}({self._wire(field_name)})"
            columns.append(
                (f"a{position}", sql_type_of(field_name, function), response_key(wire))
            )
        return columns

    def _grouped_params(
        self, query: GroupedQuery, as_of: datetime
    ) -> list[tuple[str, str]]:
        params = self._filter_params(query.conditions, as_of)
        wires = [self._wire(group) for group in query.groups]
        wires += [
            f"{function}({self._wire(name)})" for function, name in query.aggregates
        ]
        params += [(f"fields[{i}]", wire) for i, wire in enumerate(wires)]
        for i, group in enumerate(query.groups):
            params.append((f"group_by[{i}]", self._wire(group)))
            params.append((f"order_by[{i}]", self._wire(group)))
        return params

    def _filter_params(self, conditions, as_of: datetime) -> list[tuple[str, str]]:
        params = []
        for condition in conditions:
            if isinstance(condition, InstantFilter):
                condition = condition.resolve(as_of)
            params.append((self._wire(condition.field), condition.value))
        return params

    def _wire(self, name: str) -> str:
        return self.settings.wire_names.get(name, name)

    def _load_transactions(
        self,
        plan: Plan,
        as_of: datetime | None,
        client: PayloadClient,
        connection: duckdb.DuckDBPyConnection,
        report: Callable[[str, int], None],
    ) -> None:
        needed = referenced_fields(plan)
        columns = [
            (field.column, _field_sql_type(name), response_key(self._wire(name)))
            for name, field in TRANSACTION_FIELDS.items()
            if name in needed
        ]
        _create_table(connection, FETCHED_TABLE, columns)
        if as_of is None:
            return
        params = self._filter_params(_fetch_conditions(plan), as_of)
        fields = [self._wire(name) for name in TRANSACTION_FIELDS if name in needed]
        params += [(f"fields[{i}]", wire) for i, wire in enumerate(fields)]
        params.append(("order_by[0]", "id"))
        self._fetch_into(
            client,
            connection,
            FETCHED_TABLE,
            columns,
            params,
            functools.partial(report, "Payload transactions"),
        )

    def _fetch_into(
        self,
        client: PayloadClient,
        connection: duckdb.DuckDBPyConnection,
        table: str,
        columns: list[tuple[str, str, str]],
        params: list[tuple[str, str]],
        on_rows: Callable[[int], None],
    ) -> None:
        for page in client.pages(TRANSACTION_RESOURCE, params, on_rows):
            raw = [[value_at(row, key) for row in page] for *_, key in columns]
            values = [[text_of(value) for value in column] for column in raw]
            try:
                insert_columns(connection, table, columns, values)
            except duckdb.DataError as error:
                invalid = _invalid_value_error(connection, columns, raw, values)
                if invalid is None:
                    raise
                raise invalid from error


def _invalid_value_error(
    connection: duckdb.DuckDBPyConnection,
    columns: list[tuple[str, str, str]],
    raw: list[list],
    values: list[list[str | None]],
) -> DataError | None:
    """Name the first response value that does not cast to its column's type."""
    for (_, type_text, key), raw_column, texts in zip(
        columns, raw, values, strict=True
    ):
        index = first_invalid_value(connection, type_text, texts)
        if index is not None:
            return DataError(
                f"Payload returned an invalid value for {key}: "
                f"{_shown_value(raw_column[index])}; expected {_type_name(type_text)}"
            )
    return None


def _shown_value(value) -> str:
    """Show a JSON value short enough for one line: strings quoted, numbers bare."""
    if isinstance(value, str):
        text = repr(value)
    elif isinstance(value, Decimal):
        text = str(value)
    else:
        text = json.dumps(value, default=str)
    if len(text) > MAX_SHOWN_VALUE_LENGTH:
        return text[:MAX_SHOWN_VALUE_LENGTH] + "..."
    return text


def _type_name(type_text: str) -> str:
    """Describe a column type in words, for messages about values that miss it."""
    parsed = exp.DataType.build(type_text, dialect="duckdb")
    if parsed.this == exp.DataType.Type.DECIMAL:
        precision, scale = (int(part.name) for part in parsed.expressions)
        return (
            f"a decimal number with at most {precision - scale} digits before the point"
        )
    if parsed.is_type(*exp.DataType.INTEGER_TYPES):
        return "a whole number"
    if parsed.is_type(*exp.DataType.TEMPORAL_TYPES):
        return "a timestamp"
    return f"a {type_text} value"


def _fetch_conditions(plan: Plan) -> list[Condition]:
    """Return the filters that every row the plan reads must pass.

    Only the ``purchases`` step applies the file's filters and as_of, so
    when another step reads the transactions too, nothing is filtered.
    """
    readers = [*plan.metrics.ctes, *plan.stage.ctes, ("output", plan.output.final)]
    for name, select in readers:
        tables = {table.name for table in select.find_all(exp.Table)}
        if TRANSACTIONS in tables and name not in (EVALUATION, PURCHASES):
            return []
    conditions: list[Condition] = [InstantFilter("<=")]
    conditions += [InstantFilter(">=", span) for span in plan.rules.windows]
    for expr in plan.rules.filters:
        # Each filter is one conjunct, so sending any subset keeps every needed row.
        conditions += translate_filter(expr) or []
    return conditions


def response_key(wire: str) -> str:
    """Return the response-row key of a wire expression, such as sender.account_id."""
    return wire.replace("][", ".").replace("[", ".").replace("]", "")


def value_at(row: Row, key: str):
    """Read ``key`` from a flat (``"sender.account_id"``) or nested row."""
    if key in row:
        value = row[key]
    else:
        value = row
        for part in key.split("."):
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
    if isinstance(value, dict):
        # Payload v2 writes status as {"value": "processed"}.
        return value.get("value")
    return value


def text_of(value) -> str | None:
    """Convert a JSON value to the text DuckDB casts; a Decimal keeps every digit."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if hasattr(value, "is_finite"):
        return format(value, "f")
    return str(value)


def referenced_fields(plan: Plan) -> set[str]:
    """List the transaction fields whose columns the plan's query reads.

    Reading the compiled query, not the rules file, keeps this right for
    every feature the compiler gains. A name that merely matches costs one
    extra field.
    """
    names = {column.name for column in plan.query().find_all(exp.Column)}
    needed = {"created_at", CUSTOMER_FIELD}
    needed |= {
        name for name, field in TRANSACTION_FIELDS.items() if field.column in names
    }
    return needed


def _field_sql_type(name: str) -> str:
    if name == "amount":
        return MONEY_SQL_TYPE
    if name == "created_at":
        return "TIMESTAMPTZ"
    return "VARCHAR"


def _query_table(index: int) -> str:
    return f"payload_aggregates_{index}"


def _create_table(
    connection: duckdb.DuckDBPyConnection,
    table: str,
    columns: list[tuple[str, str, str]],
) -> None:
    definitions = [
        exp.ColumnDef(
            this=exp.to_identifier(name, quoted=True),
            kind=exp.DataType.build(type_text, dialect="duckdb"),
        )
        for name, type_text, _ in columns
    ]
    schema = exp.Schema(this=exp.to_table(table), expressions=definitions)
    connection.execute(
        exp.Create(this=schema, kind="TABLE", replace=True).sql("duckdb")
    )


def _fetched_relation(needed: set[str]) -> exp.Select:
    """Select the canonical columns of the fetched table; unfetched ones are NULL."""
    projections = []
    for name, field in TRANSACTION_FIELDS.items():
        value: exp.Expr = exp.column(field.column, quoted=True)
        if name not in needed:
            value = sql.cast(exp.Null(), _field_sql_type(name))
        projections.append(exp.alias_(value, field.column, quoted=True))
    return exp.select(*projections).from_(FETCHED_TABLE)


def _metric_types(plan: Plan, connection: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Read the SQL type of each metric from the files route's query over no rows."""
    empty = exp.select(
        *[
            exp.alias_(
                sql.cast(exp.Null(), _field_sql_type(name)), field.column, quoted=True
            )
            for name, field in TRANSACTION_FIELDS.items()
        ]
    ).where(exp.false())
    query = exp.select(exp.Star()).from_(CUSTOMER_METRICS).limit(0)
    for name, select in [(TRANSACTIONS, empty), *plan.metrics.ctes]:
        query = query.with_(name, as_=select.copy())
    relation = connection.sql(query.sql("duckdb"))
    return {
        name: str(kind)
        for name, kind in zip(relation.columns, relation.types, strict=True)
    }


def _with_as_of(query: exp.Select, as_of: datetime | None) -> exp.Select:
    """Fix the evaluation instant, since the fetched rows are already filtered by it."""
    literal = _as_of_literal(as_of)
    for cte in query.args["with_"].expressions:
        if cte.alias == EVALUATION:
            cte.set("this", exp.select(exp.alias_(literal, AS_OF_COLUMN, quoted=True)))
    return query


def _route_name(pushdown: Pushdown | None, route: GroupRoute | None) -> str:
    if pushdown is not None:
        return f"{len(pushdown.queries)} queries grouped by customer"
    if route is not None:
        return "groups by " + ", ".join(route.groups) + ", expanded to rows"
    return "transactions"


def _without_purchase_filters(query: exp.Select) -> exp.Select:
    """Drop the purchases filter, because Payload applied it before grouping."""
    for cte in query.args["with_"].expressions:
        if cte.alias == PURCHASES:
            cte.this.set("where", None)
    return query


def _as_of_literal(as_of: datetime | None) -> exp.Expr:
    if as_of is None:
        return sql.cast(exp.Null(), "TIMESTAMPTZ")
    return sql.cast(exp.Literal.string(as_of.isoformat()), "TIMESTAMPTZ")
