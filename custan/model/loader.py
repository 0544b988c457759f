"""Load a rules file: parse the YAML, check it against the schema, build a RuleSet."""

from __future__ import annotations

import json
import os
import re
import zoneinfo
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from typing import Any

import duckdb
import jsonschema
from sqlglot import exp

from custan.compiler.fields import ACCOUNT_FIELDS, TRANSACTION_FIELDS
from custan.errors import Location, RulesError
from custan.model.ruleset import (
    Band,
    Expr,
    Input,
    Matrix,
    Metric,
    Output,
    RuleSet,
    Score,
    Segment,
    Summary,
    Tier,
)
from custan.model.yaml_source import Document, Path, format_path, parse_yaml

_DURATION = re.compile(r"^\s*(\d+)\s*(d|day|days|w|week|weeks|h|hour|hours)\s*$")
_UNIT_HOURS = {"d": 24, "day": 24, "days": 24, "w": 168, "week": 168, "weeks": 168}
_BAND_OPERATORS = {"below": "<", "at_most": "<=", "above": ">", "at_least": ">="}


@cache
def rules_schema() -> dict[str, Any]:
    """Return the JSON Schema (draft 2020-12) of rules files."""
    text = resources.files("custan.model").joinpath("schema.json").read_text()
    return json.loads(text)


def load_rules(path: str | os.PathLike[str]) -> RuleSet:
    """Read, validate and model the rules file at ``path``.

    Raises RulesError naming the file, line and field of the first problem.
    """
    file = os.fspath(path)
    try:
        with open(file, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise RulesError("rules file not found", Location(file)) from None
    except (OSError, UnicodeDecodeError) as error:
        raise RulesError(f"cannot read rules file: {error}", Location(file)) from None
    return parse_rules(text, file)


def parse_rules(text: str, file: str = "<rules>") -> RuleSet:
    """Validate and model rules given as YAML text."""
    document = parse_yaml(text, file)
    check_schema(document)
    return _build(document, os.path.dirname(os.path.abspath(file)))


def check_schema(document: Document) -> None:
    """Raise RulesError for the first schema violation, in file order."""
    validator = jsonschema.Draft202012Validator(rules_schema())
    errors = list(validator.iter_errors(document.data))
    if not errors:
        return
    # In file order; at one place a misspelt key explains a missing one.
    errors.sort(
        key=lambda error: (
            _line_of(document, tuple(error.absolute_path)),
            error.validator == "required",
        )
    )
    error = _most_specific(errors[0])
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties":
        # Point at the first unexpected key rather than at its parent.
        extra = [
            key
            for key in error.instance
            if key not in error.schema.get("properties", {})
        ]
        if extra:
            location = document.locate(path + (extra[0],))
            raise RulesError(
                _describe(error), replace(location, field=format_path(path))
            )
    raise RulesError(_describe(error), document.locate(path))


def _line_of(document: Document, path: Path) -> tuple[int, int]:
    location = document.locate(path)
    return (location.line or 0, location.column or 0)


def _most_specific(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    # oneOf failures nest the useful reason in their context; pick the deepest.
    if error.context:
        deepest = max(error.context, key=lambda sub: len(sub.absolute_path))
        if len(deepest.absolute_path) > len(error.absolute_path):
            return _most_specific(deepest)
    return error


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return f"unknown key {', '.join(map(repr, extra))}; expected one of: {allowed}"
    if error.validator == "oneOf" and "quantiles" in error.schema.get("properties", {}):
        return (
            "a score needs either bands with a default (a number for values no "
            "band matches) or quantiles, not both"
        )
    if error.validator == "maxLength":
        return (
            f"the text is longer than the limit of {error.validator_value} characters"
        )
    if error.validator == "required":
        return error.message.replace("is a required property", "is required")
    description = str(error.schema.get("description", ""))
    if error.validator == "pattern" and "span" in description:
        return f"{error.instance!r} is not a span such as '90 days' or '12 weeks'"
    if error.validator == "pattern" and "identifier" in description:
        return (
            f"{error.instance!r} is not a valid name; use lower-case letters, "
            "digits and _, starting with a letter or _"
        )
    if error.validator == "type" and error.validator_value == "string":
        return (
            f"{error.instance!r} is not text; put it in quotes, such as "
            f"'{error.instance}'"
        )
    if error.validator == "const" and list(error.absolute_path) == ["version"]:
        return f"unsupported version {error.instance!r}; this custan reads version 1"
    return _shorten(error.message)


def _shorten(message: str, limit: int = 300) -> str:
    """Cut a schema message that quotes a large value."""
    return message if len(message) <= limit else message[: limit - 1] + "…"


def parse_duration(text: str) -> timedelta:
    """Turn '90 days', '12 weeks' or '36 hours' into a timedelta."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"invalid span {text!r}")
    count, unit = int(match.group(1)), match.group(2)
    return timedelta(hours=count * _UNIT_HOURS.get(unit, 1))


def _build(document: Document, base_dir: str) -> RuleSet:
    data = document.data
    output = data.get("output", {})
    return RuleSet(
        file=document.file,
        name=data.get("name"),
        description=data.get("description"),
        requires=list(data.get("requires", [])),
        source=_input(document, ("source",), base_dir),
        accounts=_input(document, ("accounts",), base_dir)
        if "accounts" in data
        else None,
        as_of=str(data.get("as_of", "latest")),
        as_of_location=document.locate(("as_of", "<value>")),
        time_zone=_rules_time_zone(document),
        filters=_filters(document),
        windows=_windows(document),
        metrics=_metrics(document),
        derived={
            name: _expr(document, ("derived", name)) for name in data.get("derived", {})
        },
        scores=_scores(document),
        tiers=_tiers(document),
        segments=_segments(document),
        output=_output(document, output),
        per={name: _expr(document, ("per", name)) for name in data.get("per", {})},
        params=_params(document),
        param_choices={
            name: list(spec["choices"])
            for name, spec in data.get("params", {}).items()
            if isinstance(spec, dict)
        },
    )


def _expr(document: Document, path: Path) -> Expr:
    value = document.data
    for part in path:
        value = value[part]
    location = document.locate(path + ("<value>",))
    if path and isinstance(path[-1], int):
        location = document.locate(path)
    return Expr(
        str(value),
        Location(location.file, location.line, location.column, format_path(path)),
    )


def _params(document: Document) -> dict[str, Any]:
    """Each param's value; a param with choices must start at one of them."""
    values = {}
    for name, spec in document.data.get("params", {}).items():
        if isinstance(spec, dict):
            if spec["value"] not in spec["choices"]:
                raise RulesError(
                    f"{spec['value']!r} is not one of the choices "
                    f"{', '.join(map(str, spec['choices']))}",
                    document.locate(("params", name, "value", "<value>")),
                )
            spec = spec["value"]
        values[name] = spec
    return values


def _check_time_zone(document: Document, path: Path) -> None:
    name = _value_at(document, path)
    if name is None:
        return
    try:
        zoneinfo.ZoneInfo(str(name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise RulesError(
            f"unknown time zone {name!r}; use an IANA name such as UTC or "
            "America/New_York",
            document.locate(path + ("<value>",)),
        ) from None


def _check_date_format(document: Document, path: Path) -> None:
    date_format = _value_at(document, path)
    if date_format is None:
        return
    probe = exp.select(
        exp.Anonymous(
            this="try_strptime",
            expressions=[exp.Literal.string("2000"), exp.Literal.string(date_format)],
        )
    )
    try:
        duckdb.execute(probe.sql("duckdb"))
    except duckdb.Error:
        raise RulesError(
            f"invalid date_format {date_format!r}; use strftime codes such as %Y%m%d",
            document.locate(path + ("<value>",)),
        ) from None


def _check_fields(document: Document, path: Path, known: set[str]) -> None:
    """Mapped and constant fields must be fields, and not both at once."""
    section = document.data.get(path[0], {})
    columns = section.get("columns", {})
    constants = section.get("constants", {})
    for key in (*columns, *constants):
        where = "columns" if key in columns else "constants"
        if key not in known:
            raise RulesError(
                f"unknown field '{key}'; expected one of: {', '.join(sorted(known))}",
                document.locate(path + (where, key)),
            )
        if key in columns and key in constants:
            raise RulesError(
                f"field '{key}' is both mapped to a column and set as a constant; "
                "keep one",
                document.locate(path + ("constants", key)),
            )
    for key, value in constants.items():
        _check_constant(document, path + ("constants", key), key, value)


def _check_constant(document: Document, path: Path, key: str, value: Any) -> None:
    try:
        if key == "amount":
            Decimal(str(value))
        elif key == "created_at":
            datetime.fromisoformat(str(value))
    except (InvalidOperation, ValueError):
        kind = "a decimal amount" if key == "amount" else "an ISO 8601 instant"
        raise RulesError(
            f"constant {key} {value!r} is not {kind}",
            document.locate(path + ("<value>",)),
        ) from None


def _rules_time_zone(document: Document) -> str:
    _check_time_zone(document, ("time_zone",))
    return str(document.data.get("time_zone", "UTC"))


def _value_at(document: Document, path: Path) -> Any:
    value: Any = document.data
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _input(document: Document, path: Path, base_dir: str) -> Input:
    section = document.data.get(path[0], {})
    known = set(ACCOUNT_FIELDS if path[0] == "accounts" else TRANSACTION_FIELDS)
    _check_fields(document, path, known)
    _check_time_zone(document, path + ("time_zone",))
    _check_date_format(document, path + ("date_format",))
    fields = {
        key: value
        for key, value in section.items()
        if key in Input.__dataclass_fields__
    }
    return Input(**fields, base_dir=base_dir, location=document.locate(path))


def _filters(document: Document) -> list[Expr]:
    items = document.data.get("filters", [])
    return [
        _expr(document, ("filters", index))
        for index, item in enumerate(items)
        if isinstance(item, str)
    ]


def _windows(document: Document) -> list[timedelta]:
    items = document.data.get("filters", [])
    return [parse_duration(item["window"]) for item in items if isinstance(item, dict)]


def _metrics(document: Document) -> dict[str, Metric]:
    metrics = {}
    for name, spec in document.data["metrics"].items():
        path: Path = ("metrics", name)
        metrics[name] = Metric(
            name=name,
            agg=spec["agg"],
            of=_expr(document, path + ("of",)) if "of" in spec else None,
            where=_expr(document, path + ("where",)) if "where" in spec else None,
            window=parse_duration(spec["window"]) if "window" in spec else None,
            location=document.locate(path),
        )
    return metrics


def _bands(items: list[dict[str, Any]], result_key: str) -> list[Band]:
    bands = []
    for item in items:
        (key,) = [key for key in item if key in _BAND_OPERATORS]
        bound = Decimal(repr(item[key]))
        bands.append(Band(item[result_key], _BAND_OPERATORS[key], bound))
    return bands


def _scores(document: Document) -> dict[str, Score]:
    scores = {}
    for name, spec in document.data.get("scores", {}).items():
        path: Path = ("scores", name)
        scores[name] = Score(
            name=name,
            of=_expr(document, path + ("of",)),
            bands=_bands(spec.get("bands", []), "score"),
            default=spec.get("default"),
            quantiles=spec.get("quantiles"),
            better=spec.get("better", "higher"),
            location=document.locate(path),
        )
    return scores


def _tiers(document: Document) -> dict[str, Tier]:
    tiers = {}
    for name, spec in document.data.get("tiers", {}).items():
        path: Path = ("tiers", name)
        tiers[name] = Tier(
            name=name,
            of=_expr(document, path + ("of",)),
            levels=_bands(spec["levels"], "name"),
            default=spec["default"],
            location=document.locate(path),
        )
    return tiers


def _segments(document: Document) -> list[Segment]:
    items = document.data.get("segments", [])
    segments: list[Segment] = []
    for index, item in enumerate(items):
        path: Path = ("segments", index)
        when = _expr(document, path + ("when",)) if "when" in item else None
        last = index == len(items) - 1
        if when is None and not last:
            raise RulesError(
                "only the last segment may leave out 'when'; it is the default",
                document.locate(path),
            )
        if when is not None and last:
            raise RulesError(
                "the last segment is the default and takes no 'when'",
                document.locate(path + ("when",)),
            )
        if any(segment.name == item["name"] for segment in segments):
            raise RulesError(
                f"segment '{item['name']}' is declared twice",
                document.locate(path + ("name",)),
            )
        segments.append(
            Segment(item["name"], when, item.get("action"), document.locate(path))
        )
    return segments


# {name} inserts a summary value; {{ and }} stand for literal braces.
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


def _check_placeholders(document: Document, summary: Summary) -> None:
    for index, line in enumerate(summary.lines):
        if "{" in _PLACEHOLDER.sub("", line) or "}" in _PLACEHOLDER.sub("", line):
            raise RulesError(
                "a lone { or } in a summary line; write {{ or }} for a brace",
                document.locate(("output", "summary", "lines", index)),
            )
        for match in _PLACEHOLDER.finditer(line):
            name = match.group(1)
            if name is not None and name not in summary.values:
                known = ", ".join(sorted(summary.values)) or "none"
                raise RulesError(
                    f"{{{name}}} names no summary value; declared values: {known}",
                    document.locate(("output", "summary", "lines", index)),
                )


def _output(document: Document, output: dict[str, Any]) -> Output:
    path: Path = ("output",)
    section = output.get("summary", {})
    summary = Summary(
        values={
            name: _expr(document, path + ("summary", "values", name))
            for name in section.get("values", {})
        },
        lines=list(section.get("lines", [])),
    )
    _check_placeholders(document, summary)
    matrix = output.get("matrix")
    return Output(
        columns=output.get("columns"),
        where=_expr(document, path + ("where",)) if "where" in output else None,
        sort=[(key.lstrip("-"), key.startswith("-")) for key in output.get("sort", [])],
        limit=output.get("limit"),
        group_by=output.get("group_by"),
        values={
            name: _expr(document, path + ("values", name))
            for name in output.get("values", {})
        },
        matrix=Matrix(**matrix) if matrix else None,
        summary=summary,
        decimals=output.get("decimals", 6),
        location=document.locate(path),
    )
