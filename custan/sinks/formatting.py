"""Turn engine values into the text and JSON values sinks write.

Money is rounded half-even to cents only here, when it is written; other
decimals keep the output's ``decimals`` places. Instants are ISO 8601 in UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from custan.expressions.types import Type

CENT = Decimal("0.01")


def to_decimal(value: Any, places: int) -> Decimal:
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    return number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)


def plain_decimal(value: Decimal) -> str:
    """Decimal text without exponent and without trailing zeros after the point."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def format_instant(value: datetime | date) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        text = value.astimezone(UTC).isoformat()
        return text.replace("+00:00", "Z")
    return value.isoformat()


def format_value(value: Any, value_type: Type, decimals: int) -> Any:
    """A JSON-ready value: Decimal for numbers, str for instants, None for NULL."""
    if value is None:
        return None
    if value_type is Type.MONEY:
        return to_decimal(value, 2)
    if isinstance(value, bool):
        return value
    if value_type is Type.INTEGER and isinstance(value, (int, Decimal)):
        return int(value)
    if isinstance(value, (Decimal, float)):
        return Decimal(plain_decimal(to_decimal(value, decimals)))
    if isinstance(value, (datetime, date)):
        return format_instant(value)
    return value


def to_text(value: Any) -> str:
    """The CSV and table text of a formatted value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)
