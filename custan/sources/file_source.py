"""The built-in ``files`` source: the whole plan runs as one DuckDB query."""

from __future__ import annotations

import duckdb
from sqlglot import exp

from custan.compiler.fields import TRANSACTION_FIELDS
from custan.compiler.plan import Plan
from custan.errors import DataError
from custan.model.ruleset import Input
from custan.sources.files import FileReader


class FileSource:
    """Reads transactions from files and runs both stages where they lie."""

    def __init__(self, spec: Input, data_override: str | None = None) -> None:
        self.reader = FileReader(spec, data_override)

    def prepare(self, plan: Plan, connection: duckdb.DuckDBPyConnection) -> exp.Select:
        return plan.query(self.reader.relation(connection, fields=plan.fields_read()))

    def describe(self, plan: Plan) -> exp.Select:
        connection = duckdb.connect()
        try:
            return plan.query(
                self.reader.relation(connection, fields=plan.fields_read())
            )
        finally:
            connection.close()

    def explain_failure(
        self, connection: duckdb.DuckDBPyConnection, error: duckdb.Error
    ) -> DataError | None:
        """Find the first row whose value could not be converted, and name it.

        Returns None when every row converts, so the failure lies elsewhere.
        """
        tolerant = self.reader.relation(connection, strict=False, with_filename=True)
        raw_columns = self.reader.columns(connection)
        for name in ("amount", "created_at"):
            column_name = self.reader.field_column(name, raw_columns)
            if column_name is None or name in self.reader.spec.constants:
                continue
            found = self._first_bad_row(
                connection, tolerant, name, column_name, raw_columns
            )
            if found is not None:
                return found
        if isinstance(error, duckdb.OutOfRangeException):
            return None
        return self.reader.read_error(error)

    def _first_bad_row(
        self,
        connection,
        tolerant: exp.Select,
        name: str,
        column_name: str,
        raw_columns: list[str],
    ) -> DataError | None:
        field = TRANSACTION_FIELDS[name]
        raw = self.reader.raw_value(column_name, raw_columns)
        numbered = tolerant.copy()
        numbered = numbered.select(
            exp.alias_(raw, "raw_value"),
            # Rows count within each file, so a glob's errors name real rows.
            exp.alias_(
                exp.Window(
                    this=exp.Anonymous(this="row_number"),
                    partition_by=[exp.column("filename", "raw")],
                    over="OVER",
                ),
                "row",
            ),
        )

        query = (
            exp.select("filename", "raw_value", "row")
            .from_(numbered.subquery("checked"))
            .where(
                exp.Is(
                    this=exp.column(field.column, quoted=True),
                    expression=exp.Null(),
                )
            )
            .order_by("filename", "row")
            .limit(1)
        )
        row = connection.execute(query.sql("duckdb")).fetchone()
        if row is None:
            return None

        filename, value, number = row
        place = f"{filename}: {self._place(number)}: column '{column_name}' ({name})"
        if value is None or not str(value).strip():
            return DataError(f"{place}: the value is empty")
        kind = self._amount_hint() if name == "amount" else self._instant_hint()
        return DataError(f"{place}: cannot parse {value!r} as {kind}")

    def _place(self, number: int) -> str:
        """Row ``number`` and its line in the file, where lines match rows."""
        file_format = self.reader.files.format
        if file_format == "json":
            return f"record {number}"
        if file_format in ("jsonl", "parquet"):
            return f"row {number}" if file_format == "parquet" else f"line {number}"
        line = number + (1 if self.reader.spec.header else 0)
        return f"row {number} (line {line})"

    def _amount_hint(self) -> str:
        return (
            "a decimal amount (digits with an optional point, at most 8 decimal "
            "places and 30 digits before the point, such as 1234.50)"
        )

    def _instant_hint(self) -> str:
        date_format = self.reader.spec.date_format
        if date_format:
            return f"a timestamp in the format {date_format!r}"
        return (
            "a timestamp (ISO 8601, such as 2024-08-21 13:35:03 "
            "or 2024-08-21T13:35:03Z)"
        )
