"""The functions rule expressions may call, and how each compiles to SQL.

Plugins add entries through the ``register_functions`` hook; nothing outside
this table can be called from a rules file. The built-ins live in
``custan.expressions.builtins``, one module for each kind of function.
"""

from __future__ import annotations

from custan.expressions.builtins import BUILTIN_FUNCTIONS
from custan.expressions.calls import (
    ALL_SCOPES,
    CUSTOMER,
    GROUP,
    TRANSACTION,
    Call,
    Function,
    FunctionError,
    FunctionTable,
    Typed,
)


def builtin_table() -> FunctionTable:
    table = FunctionTable()
    for function in BUILTIN_FUNCTIONS:
        table.add(function)
    return table


__all__ = [
    "ALL_SCOPES",
    "BUILTIN_FUNCTIONS",
    "CUSTOMER",
    "GROUP",
    "TRANSACTION",
    "Call",
    "Function",
    "FunctionError",
    "FunctionTable",
    "Typed",
    "builtin_table",
]
