"""Value types of the expression language and how they combine."""

from __future__ import annotations

import enum


class Type(enum.Enum):
    """The type of a name or an expression."""

    INTEGER = "integer"
    DECIMAL = "decimal"
    MONEY = "money"
    INSTANT = "instant"
    TEXT = "text"
    BOOLEAN = "boolean"
    INTERVAL = "interval"
    NULL = "null"

    def __str__(self) -> str:
        return self.value


NUMERIC = frozenset({Type.INTEGER, Type.DECIMAL, Type.MONEY})


def is_numeric(value_type: Type) -> bool:
    return value_type in NUMERIC or value_type is Type.NULL


def comparable(left: Type, right: Type) -> bool:
    """Tell whether two types may be compared with =, <, IN or BETWEEN."""
    if Type.NULL in (left, right):
        return True
    if left in NUMERIC and right in NUMERIC:
        return True
    return left is right


def unify(types: list[Type]) -> Type | None:
    """Return the common type of branches (CASE, coalesce), or None if they clash."""
    known = [value_type for value_type in types if value_type is not Type.NULL]
    if not known:
        return Type.NULL
    if all(value_type in NUMERIC for value_type in known):
        if all(value_type is Type.INTEGER for value_type in known):
            return Type.INTEGER
        if all(value_type in (Type.MONEY, Type.INTEGER) for value_type in known):
            return Type.MONEY if Type.MONEY in known else Type.INTEGER
        return Type.DECIMAL
    first = known[0]
    return first if all(value_type is first for value_type in known) else None


def arithmetic_result(operator: str, left: Type, right: Type) -> Type | None:
    """Return the type of ``left operator right``, or None when it is invalid."""
    if operator in "+-" and left is Type.INSTANT and right is Type.INTERVAL:
        return Type.INSTANT
    if operator == "+" and left is Type.INTERVAL and right is Type.INSTANT:
        return Type.INSTANT
    if not (is_numeric(left) and is_numeric(right)):
        return None
    if operator == "/":
        return (
            Type.MONEY
            if left is Type.MONEY and right is not Type.MONEY
            else Type.DECIMAL
        )
    if operator == "%" and left is Type.MONEY:
        # A remainder is measured like the dividend: 10.50 money % 3 is 1.50 money.
        return Type.MONEY
    if operator in "+-" and Type.MONEY in (left, right):
        return Type.MONEY
    if operator == "*" and (left is Type.MONEY) != (right is Type.MONEY):
        return Type.MONEY
    if left in (Type.INTEGER, Type.NULL) and right in (Type.INTEGER, Type.NULL):
        return Type.INTEGER
    return Type.DECIMAL
