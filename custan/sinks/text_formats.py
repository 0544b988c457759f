"""The csv, json and jsonl sinks: rows only, with the output columns as keys."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from typing import Any, TextIO

from custan.engine import Result
from custan.sinks.formatting import format_value, to_text


def formatted_rows(result: Result):
    """Yield each row as a list of JSON-ready values, in output order."""
    types = [c.type for c in result.columns]
    decimals = result.plan.rules.output.decimals
    for batch in result.batches():
        for row in batch:
            yield [
                format_value(v, t, decimals) for v, t in zip(row, types, strict=True)
            ]


def json_value(value: Any) -> str:
    """JSON text of a value; decimals keep their exact digits."""
    if isinstance(value, Decimal):
        return format(value, "f")
    return json.dumps(value, ensure_ascii=False)


def json_object(names: list[str], row: list[Any]) -> str:
    pairs = (
        f"{json.dumps(n)}: {json_value(v)}" for n, v in zip(names, row, strict=True)
    )
    return "{" + ", ".join(pairs) + "}"


class CsvSink:
    name = "csv"

    def write(self, result: Result, stream: TextIO) -> None:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow([c.name for c in result.columns])
        for row in formatted_rows(result):
            writer.writerow([to_text(v) for v in row])


class JsonLinesSink:
    name = "jsonl"

    def write(self, result: Result, stream: TextIO) -> None:
        names = [c.name for c in result.columns]
        for row in formatted_rows(result):
            stream.write(json_object(names, row) + "\n")


class JsonSink:
    name = "json"

    def write(self, result: Result, stream: TextIO) -> None:
        names = [c.name for c in result.columns]
        stream.write("[")
        separator = "\n  "
        for row in formatted_rows(result):
            stream.write(separator + json_object(names, row))
            separator = ",\n  "
        stream.write("\n]\n" if separator != "\n  " else "]\n")
