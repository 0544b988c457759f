"""The parts every expression function is made of: its arguments, its call and
its entry in the function table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlglot import exp

from custan.expressions.types import NUMERIC, Type

TRANSACTION = "transaction"


CUSTOMER = "customer"


GROUP = "group"


ALL_SCOPES = frozenset({TRANSACTION, CUSTOMER, GROUP})


@dataclass(frozen=True)
class Typed:
    """A compiled SQL node, its type, and whether it aggregates rows."""

    node: exp.Expr
    type: Type
    aggregate: bool = False


@dataclass
class Call:
    """The context a function's compiler receives besides its arguments."""

    name: str
    as_of: exp.Expr
    time_zone: str
    literal_args: list[exp.Expr]

    def fail(self, message: str) -> None:
        raise FunctionError(f"{self.name}(): {message}")


class FunctionError(Exception):
    """A call has the wrong number or types of arguments."""


@dataclass(frozen=True)
class Function:
    """An allowed function: its arity, the scopes it works in, its compiler."""

    name: str
    compile: Callable[[list[Typed], Call], Typed]
    min_args: int
    max_args: int
    scopes: frozenset[str] = ALL_SCOPES
    summary: str = ""
    aggregate: bool = False


@dataclass
class FunctionTable:
    """Function name to definition; built-ins first, then plugins."""

    functions: dict[str, Function] = field(default_factory=dict)

    def add(self, function: Function) -> None:
        if function.name in self.functions:
            raise ValueError(f"function {function.name!r} is already registered")
        self.functions[function.name] = function

    def get(self, name: str) -> Function | None:
        return self.functions.get(name)


def require(
    call: Call, args: list[Typed], allowed: frozenset[Type] | set[Type], what: str
) -> None:
    for index, arg in enumerate(args, start=1):
        if arg.type not in allowed and arg.type is not Type.NULL:
            call.fail(f"argument {index} must be {what}, not {arg.type}")


def require_instants(args: list[Typed], call: Call) -> None:
    require(call, args, {Type.INSTANT}, "an instant")


def require_numbers(args: list[Typed], call: Call) -> None:
    require(call, args, NUMERIC, "a number")
