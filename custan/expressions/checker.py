"""Check a parsed expression against the allow-list and compile it to SQL.

Only the node types handled below may appear. Each name must be declared in
the scope, each call must be in the function table, and the types must fit.
The result is a new SQLGlot tree built from checked parts only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from custan.errors import Location, RulesError
from custan.expressions.functions import (
    Call,
    FunctionError,
    FunctionTable,
    Typed,
)
from custan.expressions.sql import exact_divide, remainder
from custan.expressions.syntax import parse_expression, underline
from custan.expressions.types import Type, arithmetic_result, comparable, unify
from custan.model.ruleset import Expr

_COMPARISONS: dict[type[exp.Expr], type[exp.Expr]] = {
    exp.EQ: exp.EQ,
    exp.NEQ: exp.NEQ,
    exp.GT: exp.GT,
    exp.GTE: exp.GTE,
    exp.LT: exp.LT,
    exp.LTE: exp.LTE,
}
_ARITHMETIC: dict[type, str] = {
    exp.Add: "+",
    exp.Sub: "-",
    exp.Mul: "*",
    exp.Div: "/",
    exp.Mod: "%",
}


@dataclass(frozen=True)
class Binding:
    """A declared name: its type and the SQL that reads it."""

    type: Type
    node: exp.Expr


@dataclass
class Scope:
    """The names an expression may use and the functions it may call."""

    kind: str
    names: dict[str, Binding]
    functions: FunctionTable
    as_of: exp.Expr
    time_zone: str = "UTC"
    allow_aggregates: bool = False
    hidden: set[str] = field(default_factory=set)

    def lookup(self, name: str) -> Binding | None:
        return self.names.get(name)


class _Checker:
    def __init__(self, text: str, scope: Scope, location: Location) -> None:
        self.text = text
        self.scope = scope
        self.location = location
        self._found_aggregate = False

    def fail(self, message: str, node: exp.Expr | None = None) -> RulesError:
        column, width = _span(node)
        if column is None:
            return RulesError(f"{message}\n{underline(self.text, None)}", self.location)
        return RulesError(
            f"{message}\n{underline(self.text, column, width)}", self.location
        )

    def check(self, node: exp.Expr) -> Typed:
        handler = self._handlers().get(type(node))
        if handler is None:
            raise self.fail(f"{_describe(node)} is not allowed in rules", node)
        outer, self._found_aggregate = self._found_aggregate, False
        typed = handler(node)
        inner = self._found_aggregate or typed.aggregate
        self._found_aggregate = outer or inner
        # A node that contains an aggregate is an aggregate too, as in
        # CASE WHEN count(*) = 0 ..., sum(total) IS NULL or x BETWEEN min(a) AND max(a).
        if inner and not typed.aggregate:
            return Typed(typed.node, typed.type, aggregate=True)
        return typed

    def _handlers(self) -> dict[type, Callable[[Any], Typed]]:
        handlers: dict[type, Callable[[Any], Typed]] = {
            exp.Paren: lambda node: self._paren(node),
            exp.Literal: self._literal,
            exp.Boolean: lambda node: Typed(exp.Boolean(this=node.this), Type.BOOLEAN),
            exp.Null: lambda node: Typed(exp.Null(), Type.NULL),
            exp.Column: self._column,
            exp.And: self._logical,
            exp.Or: self._logical,
            exp.Not: self._not,
            exp.Neg: self._negate,
            exp.In: self._in,
            exp.Between: self._between,
            exp.Case: self._case,
            exp.Is: self._is,
            exp.Interval: self._interval,
            exp.DPipe: self._concat,
            exp.Anonymous: self._call,
        }
        for node_type in _COMPARISONS:
            handlers[node_type] = self._compare
        for node_type in _ARITHMETIC:
            handlers[node_type] = self._arithmetic
        return handlers

    def _paren(self, node: exp.Expr) -> Typed:
        inner = self.check(node.this)
        return Typed(exp.Paren(this=inner.node), inner.type, inner.aggregate)

    def _literal(self, node: exp.Literal) -> Typed:
        if node.is_string:
            return Typed(exp.Literal.string(node.this), Type.TEXT)
        text = node.this
        if any(mark in text for mark in "eE"):
            raise self.fail("write numbers without an exponent", node)
        value_type = Type.INTEGER if text.lstrip("-").isdigit() else Type.DECIMAL
        return Typed(exp.Literal.number(text), value_type)

    def _column(self, node: exp.Column) -> Typed:
        name = ".".join(part.name for part in node.parts)
        binding = self.scope.lookup(name)
        if binding is None or name in self.scope.hidden:
            known = ", ".join(
                sorted(n for n in self.scope.names if n not in self.scope.hidden)
            )
            raise self.fail(f"unknown name '{name}'; declared names: {known}", node)
        return Typed(binding.node.copy(), binding.type)

    def _boolean(self, node: exp.Expr, what: str) -> Typed:
        typed = self.check(node)
        if typed.type not in (Type.BOOLEAN, Type.NULL):
            raise self.fail(f"{what} must be a condition, not {typed.type}", node)
        return typed

    def _logical(self, node: exp.Expr) -> Typed:
        left = self._boolean(node.this, f"each side of {node.key.upper()}")
        right = self._boolean(node.expression, f"each side of {node.key.upper()}")
        built = type(node)(this=left.node, expression=right.node)
        return Typed(built, Type.BOOLEAN, left.aggregate or right.aggregate)

    def _not(self, node: exp.Not) -> Typed:
        inner = self._boolean(node.this, "the operand of NOT")
        return Typed(exp.Not(this=inner.node), Type.BOOLEAN, inner.aggregate)

    def _negate(self, node: exp.Neg) -> Typed:
        inner = self.check(node.this)
        if arithmetic_result("-", inner.type, inner.type) is None:
            raise self.fail(f"cannot negate {inner.type}", node)
        return Typed(exp.Neg(this=inner.node), inner.type, inner.aggregate)

    def _compare_types(self, left: Typed, right: Typed, node: exp.Expr) -> None:
        if not comparable(left.type, right.type):
            raise self.fail(f"cannot compare {left.type} with {right.type}", node)

    def _compare(self, node: exp.Expr) -> Typed:
        left = self.check(node.this)
        right = self.check(node.expression)
        self._compare_types(left, right, node)
        built = _COMPARISONS[type(node)](this=left.node, expression=right.node)
        return Typed(built, Type.BOOLEAN, left.aggregate or right.aggregate)

    def _arithmetic(self, node: exp.Expr) -> Typed:
        operator = _ARITHMETIC[type(node)]
        left = self.check(node.this)
        right = self.check(node.expression)
        result = arithmetic_result(operator, left.type, right.type)
        if result is None:
            raise self.fail(
                f"cannot apply {operator} to {left.type} and {right.type}", node
            )
        if operator == "/":
            built: exp.Expr = exact_divide(left.node, right.node)
        elif operator == "%":
            built = remainder(left.node, right.node)
        else:
            built = type(node)(this=left.node, expression=right.node)
        return Typed(built, result, left.aggregate or right.aggregate)

    def _in(self, node: exp.In) -> Typed:
        if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
            raise self.fail("IN takes a list of values, not a query", node)
        left = self.check(node.this)
        items = [self.check(item) for item in node.expressions]
        for item, source in zip(items, node.expressions, strict=True):
            self._compare_types(left, item, source)
        built = exp.In(this=left.node, expressions=[item.node for item in items])
        return Typed(built, Type.BOOLEAN, left.aggregate)

    def _between(self, node: exp.Between) -> Typed:
        value = self.check(node.this)
        low = self.check(node.args["low"])
        high = self.check(node.args["high"])
        self._compare_types(value, low, node)
        self._compare_types(value, high, node)
        built = exp.Between(this=value.node, low=low.node, high=high.node)
        return Typed(built, Type.BOOLEAN, value.aggregate)

    def _case(self, node: exp.Case) -> Typed:
        subject = self.check(node.this) if node.this else None
        branches: list[exp.If] = []
        results: list[Typed] = []
        for branch in node.args.get("ifs", []):
            if subject is None:
                condition = self._boolean(branch.this, "a WHEN condition")
            else:
                condition = self.check(branch.this)
                self._compare_types(subject, condition, branch)
            result = self.check(branch.args["true"])
            branches.append(exp.If(this=condition.node, true=result.node))
            results.append(result)
        default = node.args.get("default")
        default_typed = self.check(default) if default is not None else None
        if default_typed is not None:
            results.append(default_typed)
        common = unify([typed.type for typed in results])
        if common is None:
            kinds = ", ".join(sorted({str(typed.type) for typed in results}))
            raise self.fail(f"CASE branches mix types: {kinds}", node)
        built = exp.Case(
            this=subject.node if subject else None,
            ifs=branches,
            default=default_typed.node if default_typed else None,
        )
        return Typed(built, common, any(typed.aggregate for typed in results))

    def _is(self, node: exp.Is) -> Typed:
        if not isinstance(node.expression, exp.Null):
            raise self.fail("IS only tests for NULL", node)
        inner = self.check(node.this)
        return Typed(exp.Is(this=inner.node, expression=exp.Null()), Type.BOOLEAN)

    def _interval(self, node: exp.Interval) -> Typed:
        amount = node.this
        unit = node.args.get("unit")
        text = amount.this if isinstance(amount, exp.Literal) else None
        if text is None:
            raise self.fail(
                "an interval needs a literal amount, such as interval '90 days'", node
            )
        unit_name = unit.name.lower() if unit is not None else ""
        built = exp.Interval(
            this=exp.Literal.string(str(text)),
            unit=exp.var(unit_name.upper()) if unit_name else None,
        )
        return Typed(built, Type.INTERVAL)

    def _concat(self, node: exp.DPipe) -> Typed:
        call = exp.Anonymous(this="concat", expressions=[node.this, node.expression])
        return self._call(call)

    def _call(self, node: exp.Anonymous) -> Typed:
        name = str(node.this).lower()
        function = self.scope.functions.get(name)
        if function is None or self.scope.kind not in function.scopes:
            raise self.fail(self._unknown_function(name, function is not None), node)
        raw_args = list(node.expressions)
        if not function.min_args <= len(raw_args) <= function.max_args:
            expected = (
                str(function.min_args)
                if function.min_args == function.max_args
                else f"{function.min_args} to {function.max_args}"
            )
            raise self.fail(
                f"{name}() takes {expected} arguments, got {len(raw_args)}", node
            )
        if any(isinstance(arg, exp.Star) for arg in raw_args) and name != "count":
            raise self.fail(f"{name}() does not take *", node)
        args = [self.check(arg) for arg in raw_args if not isinstance(arg, exp.Star)]
        if function.aggregate and any(arg.aggregate for arg in args):
            raise self.fail(f"{name}() cannot take another aggregate", node)
        call = Call(name, self.scope.as_of, self.scope.time_zone, raw_args)
        try:
            return function.compile(args, call)
        except FunctionError as error:
            raise self.fail(str(error), node) from None

    def _unknown_function(self, name: str, exists_elsewhere: bool) -> str:
        if exists_elsewhere:
            return f"{name}() cannot be used in {self.scope.kind} expressions"
        names = sorted(
            known
            for known, function in self.scope.functions.functions.items()
            if self.scope.kind in function.scopes
        )
        return f"unknown function {name}(); available: {', '.join(names)}"


def _span(node: exp.Expr | None) -> tuple[int | None, int]:
    if node is None:
        return None, 1
    starts = []
    ends = []
    for part in node.walk():
        meta = part.meta if hasattr(part, "_meta") and part._meta else {}
        if "start" in meta:
            starts.append(meta["start"])
            ends.append(meta["end"])
    if not starts:
        return None, 1
    return min(starts) + 1, max(ends) - min(starts) + 1


def _describe(node: exp.Expr) -> str:
    if isinstance(node, (exp.Subquery, exp.Select)):
        return "a query"
    if isinstance(node, exp.Star):
        return "'*'"
    return f"'{node.sql()}' ({node.key})"


def compile_expression(expr: Expr, scope: Scope, expect: Type | None = None) -> Typed:
    """Parse, check and compile ``expr`` in ``scope``.

    Raises RulesError naming the file, line and field, with the fault underlined.
    """
    tree = parse_expression(expr.text, expr.location)
    checker = _Checker(expr.text, scope, expr.location)
    typed = checker.check(tree)
    if typed.aggregate and not scope.allow_aggregates:
        raise checker.fail(
            "aggregates such as sum() belong in output values or summary"
        )
    if expect is Type.BOOLEAN and typed.type not in (Type.BOOLEAN, Type.NULL):
        raise checker.fail(
            f"this must be a condition (true or false), not {typed.type}"
        )
    return typed
