"""The canonical transaction fields (Payload's names) and their SQL columns."""

from __future__ import annotations

from dataclasses import dataclass

from custan.expressions.types import Type


@dataclass(frozen=True)
class Field:
    """A transaction field: its Payload name, its column in SQL, its type."""

    name: str
    column: str
    type: Type


TRANSACTION_FIELDS = {
    field.name: field
    for field in [
        Field("id", "id", Type.TEXT),
        Field("type", "type", Type.TEXT),
        Field("status", "status", Type.TEXT),
        Field("amount", "amount", Type.MONEY),
        Field("created_at", "created_at", Type.INSTANT),
        Field("sender.account_id", "customer_id", Type.TEXT),
        Field("sender.method_id", "method_id", Type.TEXT),
    ]
}

# The fields of an accounts file, joined to customers for signup cohorts.
ACCOUNT_FIELDS = {
    field.name: field
    for field in [
        Field("id", "id", Type.TEXT),
        Field("created_at", "created_at", Type.INSTANT),
    ]
}

# Amounts keep up to eight places inside the engine; output rounds to cents.
MONEY_SQL_TYPE = "DECIMAL(38,8)"
CUSTOMER_COLUMN = "customer_id"
AS_OF_COLUMN = "as_of"
RESERVED_NAMES = frozenset({CUSTOMER_COLUMN, AS_OF_COLUMN, "segment", "action"})
