"""Serve the Payload query API over HTTP from DuckDB tables, for tests.

`PayloadServer` serves `GET /transactions`, `/accounts` and `/customers` on
127.0.0.1 with Payload's v1 or v2 shapes, and has switches to inject faults.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import csv
import hmac
import json
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

import duckdb
from sqlglot import exp

from custan.testing.payload_query import (
    Column,
    CompiledQuery,
    ListQuery,
    QueryCompiler,
    QueryError,
    Resource,
    kind_of_type,
    parse_query,
)

logger = logging.getLogger("custan.testing.payload_server")

PAYLOAD_V1_TIMESTAMP = "%Y-%m-%d %H:%M:%S"
ISO_8601_UTC = "%Y-%m-%dT%H:%M:%SZ"

TRANSACTION_COLUMNS = {
    "id": "VARCHAR",
    "type": "VARCHAR",
    "status": "VARCHAR",
    "amount": "DECIMAL(18,2)",
    "created_at": "TIMESTAMPTZ",
    "sender.account_id": "VARCHAR",
    "sender.method_id": "VARCHAR",
}
ACCOUNT_COLUMNS = {"id": "VARCHAR", "created_at": "TIMESTAMPTZ"}
TABLE_COLUMNS = {"transactions": TRANSACTION_COLUMNS, "accounts": ACCOUNT_COLUMNS}

# URL path -> (table, value of "object" in each returned row).
ENDPOINTS = {
    "transactions": ("transactions", "transaction"),
    "accounts": ("accounts", "account"),
    "customers": ("accounts", "customer"),
}

# error_type for each status, as the payload-api SDK maps them to its classes.
ERROR_TYPES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    # The SDK has no class for 405 and raises BadRequest for it either way.
    405: "BadRequest",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}


@dataclass(frozen=True)
class RequestRecord:
    """One served request, as the request log stores it."""

    method: str
    path: str
    query: str
    status: int
    rows: int
    bytes_sent: int

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path


@dataclass
class Response:
    """A response before it is written: status, JSON body text and headers."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    rows: int = 0


class FaultSwitches:
    """Faults that tests turn on while the server runs. Every method is thread-safe.

    Order per request: the delay, then `fail_always`, then a 429 burst, then a
    503 burst. Truncation applies only to responses that would have been 200.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Turn every fault off."""
        with self._lock:
            self._delay_seconds = 0.0
            self._always_status: int | None = None
            # Status -> [responses left, Retry-After seconds or None].
            self._bursts: dict[int, list[Any]] = {}
            self._truncations: list[str] = []

    def rate_limit(self, times: int, retry_after: int | None = None) -> None:
        """Respond to the next `times` requests with 429, with Retry-After if given.

        A later call replaces the burst that is left, and so does `unavailable`.
        """
        self._add_burst(429, times, retry_after)

    def unavailable(self, times: int, retry_after: int | None = None) -> None:
        """Respond to the next `times` requests with 503."""
        self._add_burst(503, times, retry_after)

    def slow(self, seconds: float) -> None:
        """Wait `seconds` before handling each request. Zero turns the delay off."""
        with self._lock:
            self._delay_seconds = seconds

    def truncate(self, times: int = 1, mode: str = "content_length") -> None:
        """Break the next `times` successful bodies.

        `content_length` announces more bytes than it sends and closes the
        connection. `cut_json` sends the first half of the JSON text.
        """
        if mode not in {"content_length", "cut_json"}:
            raise ValueError(
                f"Invalid truncation mode {mode!r}, expected content_length or cut_json"
            )
        with self._lock:
            self._truncations.extend([mode] * times)

    def fail_always(self, status: int | None) -> None:
        """Respond to every request with `status` until called with None."""
        with self._lock:
            self._always_status = status

    @property
    def delay_seconds(self) -> float:
        with self._lock:
            return self._delay_seconds

    def take_failure(self) -> tuple[int, int | None] | None:
        """Consume the next armed failure as (status, retry_after), if any."""
        with self._lock:
            if self._always_status is not None:
                return self._always_status, None
            # 429 goes first because a rate limiter responds before the service.
            for status in (429, 503):
                burst = self._bursts.get(status)
                if burst and burst[0] > 0:
                    burst[0] -= 1
                    return status, burst[1]
            return None

    def take_truncation(self) -> str | None:
        with self._lock:
            return self._truncations.pop(0) if self._truncations else None

    def _add_burst(self, status: int, times: int, retry_after: int | None) -> None:
        with self._lock:
            self._bursts[status] = [times, retry_after]


def encode_json(value: Any) -> str:
    """Serialize to JSON, writing Decimal values as numbers with their exact text."""
    if isinstance(value, dict):
        items = (f"{json.dumps(str(k))}:{encode_json(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(encode_json(item) for item in value) + "]"
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"Cannot encode {value} as a JSON number")
        return format(value, "f")
    return json.dumps(value)


def error_response(
    status: int,
    description: str,
    details: dict | None = None,
    error_type: str | None = None,
) -> Response:
    """Build Payload's error envelope, with both description keys SDKs read."""
    body = {
        "object": "error",
        "error_type": error_type or ERROR_TYPES.get(status, "BadRequest"),
        "error_description": description,
        "description": description,
        "details": details or {},
    }
    return Response(status, encode_json(body).encode())


def parse_version(header: str | None) -> int:
    """Read X-API-Version. `2`, `v2` and `v2.x` mean v2, and none or `v1*` means v1."""
    if header is None or not header.strip():
        return 1
    text = header.strip().lower().removeprefix("v")
    major = text.split(".", 1)[0]
    if major in {"1", "2"}:
        return int(major)
    raise QueryError(
        "BadRequest", f"Unsupported X-API-Version {header!r}, expected v1 or v2"
    )


def key_from_authorization(header: str | None) -> str | None:
    """Extract the API key from HTTP Basic (key as username) or Bearer auth."""
    if not header:
        return None
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0]


def nest(row: dict, key: tuple[str, ...], value: Any) -> None:
    for part in key[:-1]:
        row = row.setdefault(part, {})
    row[key[-1]] = value


def format_value(value: Any, timestamp_format: str) -> Any:
    """Convert a DuckDB value to what the JSON row carries."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime(timestamp_format)
    if isinstance(value, date):
        return value.isoformat()
    return value


def describe(connection, table: str) -> list[tuple[str, str]]:
    """Return (column name, DuckDB type name) for each column of `table`."""
    statement = exp.Describe(this=exp.to_table(table)).sql("duckdb")
    return [(row[0], row[1]) for row in connection.execute(statement).fetchall()]


def read_columns(connection, table: str) -> tuple[Column, ...]:
    rows = describe(connection, table)
    return tuple(Column(name, kind_of_type(type_name)) for name, type_name in rows)


def quoted(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def create_table(connection, table: str, columns: Mapping[str, str]) -> None:
    definitions = [
        exp.ColumnDef(this=quoted(name), kind=exp.DataType.build(type_name, "duckdb"))
        for name, type_name in columns.items()
    ]
    schema = exp.Schema(this=exp.to_table(table), expressions=definitions)
    connection.execute(exp.Create(kind="TABLE", this=schema).sql("duckdb"))


def insert_rows(connection, table: str, width: int, rows: list[tuple]) -> None:
    if not rows:
        return
    placeholders = exp.Tuple(expressions=[exp.Placeholder() for _ in range(width)])
    insert = exp.Insert(
        this=exp.to_table(table), expression=exp.Values(expressions=[placeholders])
    )
    connection.executemany(insert.sql("duckdb"), rows)


def conform_table(connection, table: str) -> None:
    """Cast the Payload columns of `table` to their types, keeping other columns.

    Raises:
        ValueError: if the table lacks one of the Payload columns.
    """
    present = [name for name, _ in describe(connection, table)]
    required = TABLE_COLUMNS[table]
    missing = [name for name in required if name not in present]
    if missing:
        raise ValueError(f"Table {table} is missing columns: {', '.join(missing)}")
    selections = []
    for name in present:
        column: exp.Expr = exp.Column(this=quoted(name))
        if name in required:
            column = exp.cast(column, exp.DataType.build(required[name], "duckdb"))
        selections.append(exp.alias_(column, quoted(name)))
    select = exp.select(*selections).from_(exp.to_table(table))
    create = exp.Create(
        kind="TABLE", this=exp.to_table(table), expression=select, replace=True
    )
    connection.execute(create.sql("duckdb"))


def infer_type(name: str, records: list[Mapping[str, Any]]) -> str:
    """Pick a column type for an extra record key: numbers become DECIMAL(18,2)."""
    values = [record[name] for record in records if record.get(name) is not None]
    if values and all(
        isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)
        for value in values
    ):
        return "DECIMAL(18,2)"
    return "VARCHAR"


def new_connection() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(":memory:")
    # Naive timestamps in the data and in filters are read as UTC.
    connection.execute("SET TimeZone = 'UTC'")
    return connection


def load_records(connection, table: str, records: Iterable[Mapping[str, Any]]) -> None:
    records = list(records)
    columns = dict(TABLE_COLUMNS[table])
    for record in records:
        for name in record:
            if name not in columns:
                columns[name] = infer_type(name, records)
    create_table(connection, table, columns)
    rows = [tuple(record.get(name) for name in columns) for record in records]
    insert_rows(connection, table, len(columns), rows)


def load_relation(connection, table: str, relation: duckdb.DuckDBPyRelation) -> None:
    types = {
        name: str(type_)
        for name, type_ in zip(relation.columns, relation.types, strict=True)
    }
    create_table(connection, table, types)
    insert_rows(connection, table, len(types), relation.fetchall())
    conform_table(connection, table)


def load_csv(connection, table: str, path: Path) -> None:
    with path.open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle), [])
    known = {
        name: TABLE_COLUMNS[table][name]
        for name in header
        if name in TABLE_COLUMNS[table]
    }
    relation = connection.read_csv(str(path), header=True, dtype=known)
    relation.create(table)
    conform_table(connection, table)


class PayloadServer:
    """A Payload API server on 127.0.0.1 that serves rows from DuckDB tables.

    Example:
        with PayloadServer.from_dir("tests/data/payload_server", key="k") as server:
            httpx.get(server.url + "transactions", auth=("k", ""))

    The server owns `connection`, which must hold a `transactions` table with
    Payload's column names and may hold `accounts`; the loaders build it.
    """

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        *,
        key: str,
        timestamp_format: str = PAYLOAD_V1_TIMESTAMP,
        port: int = 0,
    ) -> None:
        if not key:
            raise ValueError("key must be a non-empty API key")
        connection.execute("SET TimeZone = 'UTC'")
        tables = {row[0] for row in connection.execute("SHOW TABLES").fetchall()}
        if "transactions" not in tables:
            raise ValueError("The connection has no transactions table")
        if "accounts" not in tables:
            create_table(connection, "accounts", ACCOUNT_COLUMNS)
        self.timestamp_format = timestamp_format
        self.faults = FaultSwitches()
        self._connection = connection
        self._key = key
        self._port = port
        self._columns = {name: read_columns(connection, name) for name in TABLE_COLUMNS}
        self._lock = threading.Lock()
        self._log: list[RequestRecord] = []
        self._received = 0
        self._cache: dict[tuple, list[dict]] = {}
        self._aggregations_run = 0
        self._http: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"<PayloadServer url={self.url if self._http else None!r}>"

    @classmethod
    def from_dir(cls, directory: str | Path, **options: Any) -> PayloadServer:
        """Load `transactions.csv` and, if present, `accounts.csv` from a directory."""
        directory = Path(directory)
        connection = new_connection()
        load_csv(connection, "transactions", directory / "transactions.csv")
        if (directory / "accounts.csv").exists():
            load_csv(connection, "accounts", directory / "accounts.csv")
        return cls(connection, **options)

    @classmethod
    def from_records(
        cls,
        transactions: Iterable[Mapping[str, Any]],
        accounts: Iterable[Mapping[str, Any]] = (),
        **options: Any,
    ) -> PayloadServer:
        """Build the tables from dicts keyed by Payload column names.

        Keys beyond the Payload columns become extra columns, DECIMAL(18,2) when
        every value is a number and VARCHAR otherwise.
        """
        connection = new_connection()
        load_records(connection, "transactions", transactions)
        load_records(connection, "accounts", accounts)
        return cls(connection, **options)

    @classmethod
    def from_relations(
        cls,
        transactions: duckdb.DuckDBPyRelation,
        accounts: duckdb.DuckDBPyRelation | None = None,
        **options: Any,
    ) -> PayloadServer:
        """Copy DuckDB relations into the server's own in-memory database."""
        connection = new_connection()
        load_relation(connection, "transactions", transactions)
        if accounts is not None:
            load_relation(connection, "accounts", accounts)
        return cls(connection, **options)

    @classmethod
    def from_connection(
        cls, source: duckdb.DuckDBPyConnection, **options: Any
    ) -> PayloadServer:
        """Copy the `transactions` and `accounts` tables of another connection."""
        tables = {row[0] for row in source.execute("SHOW TABLES").fetchall()}
        accounts = source.table("accounts") if "accounts" in tables else None
        return cls.from_relations(source.table("transactions"), accounts, **options)

    @property
    def url(self) -> str:
        """Base URL with a trailing slash, as the payload-api SDK needs."""
        if self._http is None:
            raise RuntimeError("The server is not running. Call start() first.")
        return f"http://127.0.0.1:{self._http.server_address[1]}/"

    def start(self) -> Self:
        """Bind 127.0.0.1 (port 0 picks a free one) and serve in a daemon thread."""
        if self._http is not None:
            return self
        self._http = _HTTPServer(self, self._port)
        # A short poll interval makes stop() return quickly between tests.
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="payload-server",
            daemon=True,
        )
        self._thread.start()
        logger.info("Payload test server listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._http is None:
            return
        self._http.shutdown()
        self._http.server_close()
        if self._thread is not None:
            self._thread.join()
        logger.info("Payload test server stopped")
        self._http = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the request log, oldest first."""
        with self._lock:
            return list(self._log)

    @property
    def requests_received(self) -> int:
        """How many requests have arrived, counting those still being handled."""
        with self._lock:
            return self._received

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._log)

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    @property
    def aggregations_run(self) -> int:
        """How many grouped or aggregated selects ran; cached pages do not count."""
        with self._lock:
            return self._aggregations_run

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    def record_request(self, record: RequestRecord) -> None:
        """Append to the request log and log one line, which never contains the key."""
        with self._lock:
            self._log.append(record)
        logger.info(
            "%s %s -> %d rows=%d bytes=%d",
            record.method,
            record.target,
            record.status,
            record.rows,
            record.bytes_sent,
        )

    def handle(
        self, method: str, target: str, headers: Mapping[str, str] | Message
    ) -> Response:
        """Build the response to one request.

        `headers` must look names up case-insensitively, as `email.message.Message`
        does.
        """
        with self._lock:
            self._received += 1
        delay = self.faults.delay_seconds
        if delay:
            time.sleep(delay)
        if not self._is_authorized(headers.get("Authorization")):
            return error_response(
                401, "Invalid or missing API key. Send it as the Basic username."
            )
        failure = self.faults.take_failure()
        if failure is not None:
            return failure_response(*failure)
        url = urlsplit(target)
        segments = [segment for segment in url.path.split("/") if segment]
        if not segments or segments[0] not in ENDPOINTS or len(segments) > 2:
            return error_response(404, f"Not found: {url.path}")
        if method != "GET":
            return error_response(405, f"{method} is not supported; only GET is")
        try:
            return self._answer(segments, url.query, headers.get("X-API-Version"))
        except QueryError as error:
            return error_response(400, str(error), error.details, error.error_type)
        except duckdb.Error:
            logger.exception("Query failed for %s", url.path)
            return error_response(500, "The query failed in the server's database")

    def _answer(self, segments: list[str], query: str, version: str | None):
        table, object_name = ENDPOINTS[segments[0]]
        resource = Resource(
            table, object_name, self._columns[table], parse_version(version)
        )
        parsed = parse_query(parse_qsl(query, keep_blank_values=True))
        if len(segments) == 2:
            return self._read_one(resource, segments[1], parsed)
        rows = self._list(resource, parsed)
        body = encode_json({"object": "list", "values": rows})
        return Response(200, body.encode(), rows=len(rows))

    def _read_one(
        self, resource: Resource, object_id: str, query: ListQuery
    ) -> Response:
        lookup = ListQuery(fields=query.fields, id_equals=object_id)
        compiled = QueryCompiler(resource).compile(lookup)
        rows = self._run(compiled, resource)
        if not rows:
            return error_response(404, f"No {resource.object_name} with id {object_id}")
        return Response(200, encode_json(rows[0]).encode(), rows=1)

    def _list(self, resource: Resource, query: ListQuery) -> list[dict]:
        compiled = QueryCompiler(resource).compile(query)
        if not compiled.aggregated:
            return self._run(compiled, resource)
        cache_key = (resource, query.page_free_key())
        with self._lock:
            rows = self._cache.get(cache_key)
        if rows is None:
            rows = self._run(compiled, resource)
            with self._lock:
                self._cache[cache_key] = rows
                self._aggregations_run += 1
        end = None if query.limit is None else query.offset + query.limit
        return rows[query.offset : end]

    def _run(self, compiled: CompiledQuery, resource: Resource) -> list[dict]:
        # Each request thread runs on its own cursor, as DuckDB requires.
        with self._lock:
            cursor = self._connection.cursor()
        try:
            cursor.execute("SET TimeZone = 'UTC'")
            result = cursor.execute(compiled.select.sql(dialect="duckdb")).fetchall()
        finally:
            cursor.close()
        return [self._shape(values, compiled, resource) for values in result]

    def _shape(self, values: tuple, compiled: CompiledQuery, resource: Resource):
        # Grouped rows carry no "object", so the SDK returns them as plain dicts.
        row: dict[str, Any] = (
            {} if compiled.aggregated else {"object": resource.object_name}
        )
        for output, value in zip(compiled.outputs, values, strict=True):
            nest(row, output.key, format_value(value, self.timestamp_format))
        return row

    def _is_authorized(self, header: str | None) -> bool:
        presented = key_from_authorization(header)
        if presented is None:
            return False
        return hmac.compare_digest(presented.encode(), self._key.encode())


def failure_response(status: int, retry_after: int | None) -> Response:
    response = error_response(status, f"Injected failure with status {status}")
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "custan-payload-test"
    server: _HTTPServer

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Drop the default stderr line; PayloadServer.record_request logs instead."""

    def _serve(self) -> None:
        self._discard_body()
        app = self.server.app
        response = app.handle(self.command, self.path, self.headers)
        truncation = app.faults.take_truncation() if response.status == 200 else None
        body, declared = self._shape(response.body, truncation)
        url = urlsplit(self.path)
        record = RequestRecord(
            self.command,
            url.path,
            url.query,
            response.status,
            response.rows,
            len(body),
        )
        # Logged before the reply goes out, so a client that has its response
        # always finds the request in the log.
        app.record_request(record)
        self._write(response, body, declared)

    def _discard_body(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)

    def _shape(self, body: bytes, truncation: str | None) -> tuple[bytes, int]:
        """Return the bytes to send and the Content-Length to declare for them."""
        if truncation == "cut_json":
            body = body[: len(body) // 2]
            return body, len(body)
        if truncation == "content_length":
            # Promise more bytes than follow, then close, as a dropped link would.
            self.close_connection = True
            return body, len(body) + 64
        return body, len(body)

    def _write(self, response: Response, body: bytes, declared: int) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(declared))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, app: PayloadServer, port: int) -> None:
        super().__init__(("127.0.0.1", port), _RequestHandler)
        self.app = app


def main(argv: list[str] | None = None) -> int:
    """Serve a data directory until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m custan.testing.payload_server",
        description="Serve the Payload query API on 127.0.0.1 from CSV files.",
    )
    parser.add_argument(
        "--data", required=True, help="directory with transactions.csv, accounts.csv"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="TCP port to listen on (0 picks a free port)",
    )
    parser.add_argument("--key", required=True, help="API key that clients must send")
    parser.add_argument(
        "--iso-timestamps",
        action="store_true",
        help="write instants as ISO 8601 with Z instead of YYYY-MM-DD HH:MM:SS",
    )
    arguments = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    timestamp_format = (
        ISO_8601_UTC if arguments.iso_timestamps else PAYLOAD_V1_TIMESTAMP
    )
    server = PayloadServer.from_dir(
        arguments.data,
        key=arguments.key,
        port=arguments.port,
        timestamp_format=timestamp_format,
    )

    with server, contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
