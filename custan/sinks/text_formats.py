"""The csv, json and jsonl sinks: rows only, with the output columns as keys."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from typing import Any, TextIO

from custan.engine import Result
from custan.expressions.types import Type


def _typed(text: str | None, value_type: Type) -> Any:
    if text is None:
        return None
    if value_type in (Type.MONEY, Type.DECIMAL):
        return Decimal(text)
    if value_type is Type.INTEGER:
        return int(text)
    if value_type is Type.BOOLEAN:
        return text == "true"
    return text


def formatted_rows(result: Result):
    """Yield each row as written values: Decimal numbers, ISO text instants.

    The values come from the same SQL formatting as the csv and json sinks,
    so every sink writes the same rounding.
    """
    types = [c.type for c in result.columns]
    for batch in result.text_batches():
        for row in batch:
            yield [_typed(text, t) for text, t in zip(row, types, strict=True)]


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
        for batch in result.text_batches():
            writer.writerows(batch)


class JsonLinesSink:
    name = "jsonl"

    def write(self, result: Result, stream: TextIO) -> None:
        for batch in result.json_batches():
            stream.writelines(line + "\n" for (line,) in batch)


class JsonSink:
    name = "json"

    def write(self, result: Result, stream: TextIO) -> None:
        stream.write("[")
        separator = "\n  "
        for batch in result.json_batches():
            for (line,) in batch:
                stream.write(separator + line)
                separator = ",\n  "
        stream.write("\n]\n" if separator != "\n  " else "]\n")
