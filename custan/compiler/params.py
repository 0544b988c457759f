"""Named constants of a rules file (``params``) and their command-line overrides.

A param is a literal that every expression may read by name, so a setting
such as the days in a time unit is written once and can be changed per run.
"""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal
from typing import Any

from sqlglot import exp

from custan.compiler.fields import RESERVED_NAMES, TRANSACTION_FIELDS
from custan.errors import Location, RulesError, UsageError
from custan.expressions.checker import Binding
from custan.expressions.types import Type
from custan.model.ruleset import RuleSet

_INTEGER = re.compile(r"^-?[0-9]+$")
_DECIMAL = re.compile(r"^-?[0-9]+\.[0-9]+$")


def param_bindings(params: dict[str, Any]) -> dict[str, Binding]:
    """Bind each param name to its literal SQL and type."""
    return {name: _literal(value) for name, value in params.items()}


def _literal(value: Any) -> Binding:
    if isinstance(value, bool):
        return Binding(Type.BOOLEAN, exp.Boolean(this=value))
    if isinstance(value, int):
        return Binding(Type.INTEGER, exp.Literal.number(value))
    if isinstance(value, Decimal):
        return Binding(Type.DECIMAL, exp.Literal.number(str(value)))
    if isinstance(value, float):
        # repr keeps the digits as written (0.1, not 0.1000000000000000055).
        return Binding(Type.DECIMAL, exp.Literal.number(repr(value)))
    return Binding(Type.TEXT, exp.Literal.string(str(value)))


def parse_override(text: str) -> tuple[str, str]:
    """Split ``name=value`` from --param; the value stays text for now."""
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
        raise UsageError(f"invalid --param {text!r}; write it as NAME=VALUE")
    return name.strip(), value.strip()


def _coerce(name: str, value: Any, declared: Any) -> Any:
    """Read an override as the type of the param's declared value.

    Text params keep the text as written, so --param code=007 stays '007'.
    Values passed from Python that already have a type are kept.
    """
    if not isinstance(value, str) or isinstance(declared, str):
        return value
    if isinstance(declared, bool):
        if value in ("true", "false"):
            return value == "true"
        expected = "true or false"
    elif isinstance(declared, int) and _INTEGER.match(value):
        return int(value)
    elif isinstance(declared, (int, float, Decimal)) and (
        _INTEGER.match(value) or _DECIMAL.match(value)
    ):
        return Decimal(value)
    else:
        expected = "a whole number" if isinstance(declared, int) else "a number"
    raise UsageError(f"--param {name}: {value!r} is not {expected}")


def with_overrides(rules: RuleSet, overrides: dict[str, Any] | None) -> RuleSet:
    """Return ``rules`` with params replaced by ``overrides``; each must be declared."""
    if not overrides:
        return rules
    for name in overrides:
        if name not in rules.params:
            declared = ", ".join(sorted(rules.params)) or "none"
            raise UsageError(
                f"--param {name}: {rules.file} declares no param '{name}'; "
                f"declared params: {declared}"
            )
    overrides = {
        name: _coerce(name, value, rules.params[name])
        for name, value in overrides.items()
    }
    for name, value in overrides.items():
        choices = rules.param_choices.get(name)
        if choices is not None and value not in choices:
            raise UsageError(
                f"--param {name}: {value!r} is not one of "
                f"{', '.join(map(str, choices))}"
            )
    return replace(rules, params={**rules.params, **overrides})


def check_param_names(rules: RuleSet) -> None:
    """Raise RulesError when a param reuses a field or a declared name."""
    reserved = {field.column for field in TRANSACTION_FIELDS.values()} | RESERVED_NAMES
    reserved |= set(TRANSACTION_FIELDS)
    for names in (rules.per, rules.metrics, rules.derived, rules.scores, rules.tiers):
        reserved |= set(names)
    for name in rules.params:
        if name in reserved:
            raise RulesError(
                f"param '{name}' reuses a field or a declared name; rename it",
                Location(rules.file, field=f"params.{name}"),
            )
