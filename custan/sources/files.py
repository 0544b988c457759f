"""Transactions from CSV, whitespace-aligned text, Parquet or JSON files.

The files are read by DuckDB where they lie. Every column is read as text and
converted by the query itself, so amounts never pass through binary floating
point and a bad value can be traced to its file and row.
"""

from __future__ import annotations

import csv
import glob
import json
import os
from dataclasses import dataclass

import duckdb
from sqlglot import exp

from custan.compiler.fields import ACCOUNT_FIELDS, MONEY_SQL_TYPE, TRANSACTION_FIELDS
from custan.errors import DataError
from custan.expressions import sql
from custan.model.ruleset import Input
from custan.sources.timestamps import parse_instant_sql

FORMATS_BY_EXTENSION = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "text",
    ".parquet": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
}
REQUIRED_FIELDS = ("amount", "created_at", "sender.account_id", "type", "status")
OPTIONAL_FIELDS = ("id", "sender.method_id")
RAW = "raw"


@dataclass(frozen=True)
class ResolvedFiles:
    """The files an input names, and their format."""

    pattern: str
    paths: list[str]
    format: str


def resolve_files(spec: Input, override: str | None = None) -> ResolvedFiles:
    """Find the files of an input; ``override`` replaces its path (from --data)."""
    if override is not None:
        path = override
    elif spec.path is not None:
        path = os.path.join(spec.base_dir, spec.path)
    else:
        raise DataError(
            "the source has no path; set source.path or pass --data", spec.location
        )
    file_format = spec.format
    if os.path.isdir(path):
        matches = sorted(
            os.path.join(path, name)
            for name in os.listdir(path)
            if os.path.splitext(name)[1].lower() in FORMATS_BY_EXTENSION
        )
        extensions = {os.path.splitext(match)[1].lower() for match in matches}
        if file_format is None and len(extensions) > 1:
            raise DataError(
                f"{path}: the folder mixes file types "
                f"({', '.join(sorted(extensions))}); set source.format"
            )
    elif not os.path.exists(path) and any(mark in path for mark in "*?["):
        matches = sorted(glob.glob(path))
    else:
        if not os.path.exists(path):
            raise DataError(f"{path}: data file not found")
        matches = [path]
    if not matches:
        raise DataError(f"{path}: no data files found")
    if file_format is None:
        extension = os.path.splitext(matches[0])[1].lower()
        file_format = FORMATS_BY_EXTENSION.get(extension, "csv")
    for match in matches:
        if not os.access(match, os.R_OK):
            raise DataError(f"{match}: data file is not readable")
    return ResolvedFiles(path, matches, file_format)


def _read_call(
    files: ResolvedFiles,
    spec: Input,
    with_filename: bool = False,
    skip_header: bool = True,
) -> exp.Expr:
    """The DuckDB table function that reads the files as text.

    Whitespace-aligned text is read one line per row; with a header, the
    first line of each file is skipped unless ``skip_header`` is False.
    """
    paths = exp.Array(expressions=[exp.Literal.string(p) for p in files.paths])

    def option(name: str, value: exp.Expr) -> exp.Expr:
        return exp.EQ(this=exp.column(name), expression=value)

    options: list[exp.Expr] = []
    if files.format == "csv":
        options.append(option("all_varchar", exp.true()))
        options.append(option("header", exp.Boolean(this=spec.header)))
        delimiter = spec.delimiter or _default_delimiter(files.paths[0])
        if delimiter:
            options.append(option("delim", exp.Literal.string(delimiter)))
        if spec.column_names:
            names = exp.Array(
                expressions=[exp.Literal.string(n) for n in spec.column_names]
            )
            options.append(option("names", names))
        function = "read_csv"
    elif files.format == "text" or spec.delimiter == "whitespace":
        columns = exp.Struct(
            expressions=[
                exp.PropertyEQ(
                    this=exp.Literal.string("line"),
                    expression=exp.Literal.string("VARCHAR"),
                )
            ]
        )
        options += [
            option("columns", columns),
            option("delim", exp.Literal.string("\x1f")),
            option("header", exp.false()),
            option("quote", exp.Literal.string("")),
            option("escape", exp.Literal.string("")),
            option("auto_detect", exp.false()),
        ]
        if spec.header and skip_header:
            options.append(option("skip", sql.number(1)))
        function = "read_csv"
    elif files.format == "parquet":
        function = "read_parquet"
    else:
        layout = "newline_delimited" if files.format == "jsonl" else "array"
        options.append(option("format", exp.Literal.string(layout)))
        function = "read_json_objects"
    if with_filename:
        options.append(option("filename", exp.true()))
    return exp.Anonymous(this=function, expressions=[paths, *options])


class FileReader:
    """Builds the relation of canonical transaction columns from files."""

    fields = TRANSACTION_FIELDS

    def __init__(self, spec: Input, override: str | None = None) -> None:
        self.spec = spec
        self.files = resolve_files(spec, override)
        self.text_layout = self.files.format == "text" or spec.delimiter == "whitespace"

    def columns(self, connection: duckdb.DuckDBPyConnection) -> list[str]:
        """Return the column names of the files, read without scanning the data."""
        empty = [path for path in self.files.paths if os.path.getsize(path) == 0]
        if empty:
            raise DataError(f"{empty[0]}: the data file is empty", self.spec.location)
        if self.text_layout:
            return self._text_column_names(connection)
        read = exp.select(exp.Star()).from_(_read_call(self.files, self.spec)).limit(1)
        try:
            cursor = connection.execute(read.sql("duckdb"))
            row = cursor.fetchone()
            names = [d[0] for d in cursor.description]
        except duckdb.Error as error:
            raise self.read_error(error) from None
        if self.files.format in ("jsonl", "json"):
            return self._json_keys(row)
        if self.files.format == "csv" and self.spec.header:
            self._check_header_width(names)
        return names

    def _check_header_width(self, names: list[str]) -> None:
        """Reject a file whose rows are wider than its header.

        DuckDB then reads the first row as the header, so the real cause
        would show up as a missing column named after a data value.
        """
        delimiter = self.spec.delimiter or _default_delimiter(self.files.paths[0])
        if delimiter is None:
            return
        with open(
            self.files.paths[0], encoding="utf-8-sig", errors="replace"
        ) as handle:
            header = next(csv.reader([handle.readline()], delimiter=delimiter), [])
        if header and len(header) != len(names):
            raise DataError(
                f"{self.files.paths[0]}: the header has {len(header)} fields but rows "
                f"have {len(names)}; check the rows for extra delimiters",
                self.spec.location,
            )

    def _text_column_names(self, connection: duckdb.DuckDBPyConnection) -> list[str]:
        if self.spec.column_names:
            return list(self.spec.column_names)
        if not self.spec.header:
            raise DataError(
                f"{self.files.pattern}: a file without a header needs "
                "source.column_names",
                self.spec.location,
            )
        read = (
            exp.select(exp.column("line"))
            .from_(_read_call(self.files, self.spec, skip_header=False))
            .limit(1)
        )
        try:
            row = connection.execute(read.sql("duckdb")).fetchone()
        except duckdb.Error as error:
            raise self.read_error(error) from None
        return (row[0] or "").split() if row else []

    def _json_keys(self, row: tuple | None) -> list[str]:
        """Keys of the first object, with dotted names for nested objects.

        Only the first record is parsed here, to learn the field names.
        """
        if row is None:
            return []
        first = json.loads(row[0])
        if not isinstance(first, dict):
            raise DataError(
                f"{self.files.pattern}: expected JSON objects, "
                f"found {type(first).__name__}",
                self.spec.location,
            )
        names = list(first)
        for key, value in first.items():
            if isinstance(value, dict):
                names += [f"{key}.{inner}" for inner in value]
        return names

    def read_error(self, error: duckdb.Error) -> DataError:
        return DataError(
            f"{self.files.pattern}: cannot read {self.files.format} data: "
            f"{_reason(str(error))}",
            self.spec.location,
        )

    def field_column(self, name: str, available: list[str]) -> str | None:
        """Return the file column that contains field ``name``, or None without one."""
        mapped = self.spec.columns.get(name)
        if mapped is not None:
            if mapped not in available:
                raise DataError(
                    f"{self.files.pattern}: column '{mapped}' (mapped to {name}) "
                    "not found; "
                    f"columns found: {', '.join(available)}",
                    self.spec.location,
                )
            return mapped
        return name if name in available else None

    def raw_value(self, column_name: str, available: list[str]) -> exp.Expr:
        """SQL reading ``column_name`` of the raw rows as text."""
        if self.text_layout:
            parts = exp.column("fields", RAW)
            index = available.index(column_name) + 1
            return exp.Bracket(
                this=parts, expressions=[exp.Literal.number(index)], offset=1
            )
        if self.files.format in ("jsonl", "json"):
            return _json_text(column_name)
        return sql.cast(exp.column(column_name, RAW, quoted=True), "VARCHAR")

    def relation(
        self,
        connection: duckdb.DuckDBPyConnection,
        strict: bool = True,
        with_filename: bool = False,
        fields: set[str] | None = None,
    ) -> exp.Select:
        """SELECT of the canonical fields, parsed and typed, from the files.

        With ``fields``, other fields are left out: they are neither parsed
        nor required, and rows get generated ids only when ``id`` is read.
        """
        available = self.columns(connection)
        projections = []
        for name, field in self.fields.items():
            if fields is not None and name not in fields:
                continue
            node = self._field_sql(name, available, strict)
            projections.append(exp.alias_(node, field.column, quoted=True))
        if with_filename:
            projections.append(exp.column("filename", RAW))
        source = _read_call(self.files, self.spec, with_filename)
        if self.text_layout:
            return exp.select(*projections).from_(_split_lines(source, with_filename))
        return exp.select(*projections).from_(_aliased(source))

    def _field_sql(self, name: str, available: list[str], strict: bool) -> exp.Expr:
        if name in self.spec.constants:
            return _constant(name, self.spec.constants[name])
        column_name = self.field_column(name, available)
        if column_name is None:
            return self._missing(name, available)
        raw = self.raw_value(column_name, available)
        if name == "status" and self.files.format in ("jsonl", "json"):
            raw = _json_status(column_name)
        text = _trimmed(raw)
        if name == "amount":
            converter = sql.cast if strict else _try_cast
            parsed = converter(text, MONEY_SQL_TYPE)
            # Typed Parquet columns need no check of how the number is written.
            pattern = None if self.files.format == "parquet" else AMOUNT_PATTERN
            return _required(text, parsed, pattern, strict)
        if name == "created_at":
            parsed = parse_instant_sql(
                text, self.spec.date_format, self.spec.time_zone, strict
            )
            return _required(text, parsed, None, strict)
        return text

    def _missing(self, name: str, available: list[str]) -> exp.Expr:
        if name == "id":
            # Without ids every row still counts once: number the rows.
            number = exp.Window(this=exp.Anonymous(this="row_number"), over="OVER")
            return sql.cast(number, "VARCHAR")
        if name in OPTIONAL_FIELDS:
            return sql.cast(exp.Null(), "VARCHAR")
        raise DataError(
            f"{self.files.pattern}: missing column '{name}'; columns found: "
            f"{', '.join(available) or 'none'}. Map it under source.columns or give "
            "it a value under source.constants",
            self.spec.location,
        )


# A plain decimal: digits with an optional point and at most 8 decimal places,
# so 1_000, 1e3 and 0.123456789 are rejected instead of read or rounded.
AMOUNT_PATTERN = r"[+-]?([0-9]+(\.[0-9]{0,8})?|\.[0-9]{1,8})"


def _default_delimiter(path: str) -> str | None:
    """',' for .csv and a tab for .tsv; other suffixes let DuckDB detect it.

    A fixed delimiter makes a row with a missing or extra field an error,
    where detection would read every row as one column.
    """
    suffix = os.path.splitext(path)[1].lower()
    return {".csv": ",", ".tsv": "\t"}.get(suffix)


def _reason(message: str) -> str:
    """Extract the part of a DuckDB read error that a user can act on."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if "Schema mismatch" in lines[0]:
        return (
            "the files do not share the same columns; read files with one "
            "layout at a time, or set source.format and source.columns"
        )
    if "sniffing" in lines[0]:
        return (
            "the rows do not share one layout: check that every row has as many "
            "fields as the header, or set source.delimiter"
        )
    # DuckDB's CSV errors give the line, then the raw line, then the cause.
    causes = [
        line
        for line in lines[1:3]
        if not line.startswith(("Original Line", "Possible Solution"))
    ]
    return "; ".join([lines[0], *causes[:1]])


def _trimmed(raw: exp.Expr) -> exp.Expr:
    """Text without surrounding blanks; an empty value becomes NULL."""
    text = exp.Anonymous(this="trim", expressions=[sql.cast(raw, "VARCHAR")])
    return exp.Nullif(this=text, expression=exp.Literal.string(""))


def _required(
    text: exp.Expr, parsed: exp.Expr, pattern: str | None, strict: bool
) -> exp.Expr:
    """``parsed``, unless ``text`` is empty or does not match ``pattern``.

    Strict SQL raises for such a row; tolerant SQL gives NULL, which is how
    FileSource.explain_failure finds the row to name.
    """
    bad: exp.Expr = exp.Is(this=text.copy(), expression=exp.Null())
    if pattern is not None:
        matches = exp.Anonymous(
            this="regexp_full_match",
            expressions=[text.copy(), exp.Literal.string(pattern)],
        )
        bad = exp.or_(bad, exp.Not(this=matches))
    if strict:
        failure: exp.Expr = exp.Anonymous(
            this="error", expressions=[exp.Literal.string("custan: invalid value")]
        )
    else:
        failure = exp.Null()
    return exp.Case(ifs=[exp.If(this=bad, true=failure)], default=parsed)


def _aliased(function: exp.Expr) -> exp.Table:
    """A table function in FROM, named ``raw``."""
    return exp.Table(this=function, alias=exp.TableAlias(this=exp.to_identifier(RAW)))


def _split_lines(source: exp.Expr, with_filename: bool) -> exp.Subquery:
    """Lines split once on runs of whitespace into a list named ``fields``."""
    line = exp.Anonymous(this="trim", expressions=[exp.column("line")])
    fields = exp.Anonymous(
        this="string_split_regex", expressions=[line, exp.Literal.string(r"\s+")]
    )
    columns: list[exp.Expr] = [exp.alias_(fields, "fields")]
    if with_filename:
        columns.append(exp.column("filename"))
    inner = exp.select(*columns).from_(source)
    return exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier(RAW)))


def _try_cast(node: exp.Expr, type_text: str) -> exp.Expr:
    return exp.TryCast(this=node, to=exp.DataType.build(type_text, dialect="duckdb"))


def _json_path(name: str) -> str:
    parts = name.split(".")
    return "$." + ".".join(f'"{part}"' for part in parts)


def _json_text(name: str) -> exp.Expr:
    """Read key ``name`` as text, nested or flat ("sender.account_id" as one key)."""
    json = exp.column("json", RAW)
    nested = exp.JSONExtractScalar(
        this=json, expression=exp.Literal.string(_json_path(name))
    )
    if "." not in name:
        return nested
    flat = exp.JSONExtractScalar(
        this=json.copy(), expression=exp.Literal.string(f'$."{name}"')
    )
    return exp.Coalesce(this=nested, expressions=[flat])


def _json_status(name: str) -> exp.Expr:
    """Payload v2 writes status as {"value": ...}; v1 writes plain text."""
    return exp.Coalesce(
        this=_json_text(f"{name}.value"), expressions=[_json_text(name)]
    )


def _constant(name: str, value) -> exp.Expr:
    text = exp.Literal.string(str(value))
    if name == "amount":
        return sql.cast(text, MONEY_SQL_TYPE)
    if name == "created_at":
        return sql.cast(text, "TIMESTAMPTZ")
    return text


class AccountReader(FileReader):
    """Builds the relation of account ids and signup instants from files."""

    fields = ACCOUNT_FIELDS

    def __init__(self, spec: Input, override: str | None = None) -> None:
        if override is None and spec.path is None:
            raise DataError(
                "the accounts input has no path; set accounts.path or pass --accounts",
                spec.location,
            )
        super().__init__(spec, override)

    def _missing(self, name: str, available: list[str]) -> exp.Expr:
        raise DataError(
            f"{self.files.pattern}: missing column '{name}' in the accounts; columns "
            f"found: {', '.join(available) or 'none'}. Map it under accounts.columns",
            self.spec.location,
        )
