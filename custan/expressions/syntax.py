"""Parse expression text into a SQLGlot tree, with limits on size and nesting.

Expressions use SQL syntax. The dialect below parses every function call as a
plain call, so the allow-list in ``functions.py`` alone decides what exists.
"""

from __future__ import annotations

from typing import ClassVar

import sqlglot
from sqlglot import exp, parser
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError

from custan.errors import Location, RulesError

MAX_NODES = 400
MAX_DEPTH = 64
# SQLGlot's parser recurses about 15 frames per parenthesis, so deeper text
# would exhaust Python's recursion limit before the tree could be checked.
MAX_PARENTHESES = 24


class RulesDialect(Dialect):
    """SQL expression syntax with no built-in function parsers."""

    class Parser(parser.Parser):
        FUNCTIONS: ClassVar[dict] = {}
        FUNCTION_PARSERS: ClassVar[dict] = {}
        NO_PAREN_FUNCTIONS: ClassVar[dict] = {}


def parse_expression(text: str, location: Location) -> exp.Expr:
    """Parse ``text`` or raise RulesError showing where the syntax fails."""
    _check_parentheses(text, location)
    try:
        tree = sqlglot.parse_one(text, dialect=RulesDialect)
    except RecursionError:
        raise RulesError(
            f"the expression nests deeper than {MAX_DEPTH} levels", location
        ) from None
    except ParseError as error:
        detail = error.errors[0] if error.errors else {}
        column = detail.get("col")
        reason = str(detail.get("description") or error).split(". Line")[0]
        raise RulesError(
            f"invalid expression: {reason}\n{underline(text, column)}", location
        ) from None
    except TokenError as error:
        raise RulesError(f"invalid expression: {error}", location) from None
    if tree is None:
        raise RulesError("the expression is empty", location)
    _check_size(tree, text, location)
    return tree


def underline(text: str, column: int | None, width: int = 1) -> str:
    """Show ``text`` with a caret under 1-based ``column`` of its first line."""
    first_line = text.splitlines()[0] if text else ""
    if column is None:
        return f"    {first_line}"
    column = max(1, min(column, len(first_line) + 1))
    return f"    {first_line}\n    {' ' * (column - 1)}{'^' * max(width, 1)}"


def _check_parentheses(text: str, location: Location) -> None:
    """Reject parentheses nested past MAX_PARENTHESES, outside quoted text."""
    depth = 0
    quote: str | None = None
    for character in text:
        if quote is not None:
            quote = None if character == quote else quote
        elif character in "'\"":
            quote = character
        elif character == "(":
            depth += 1
            if depth > MAX_PARENTHESES:
                raise RulesError(
                    f"the expression nests parentheses deeper than {MAX_PARENTHESES} "
                    "levels",
                    location,
                )
        elif character == ")":
            depth -= 1


def _check_size(tree: exp.Expr, text: str, location: Location) -> None:
    for count, node in enumerate(tree.walk(), start=1):
        if node.comments:
            # "t --5" would otherwise read as t with a comment, not t - (-5).
            raise RulesError(
                "comments (-- or /* */) are not allowed in expressions; "
                "write t - -5 as t - (-5)",
                location,
            )
        if count > MAX_NODES:
            raise RulesError(
                f"the expression is too large (more than {MAX_NODES} parts)", location
            )
        if node.depth > MAX_DEPTH:
            raise RulesError(
                f"the expression nests deeper than {MAX_DEPTH} levels", location
            )
