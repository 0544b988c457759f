"""Order named definitions so that each comes after the names it reads."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlglot import exp

from custan.errors import Location, RulesError
from custan.expressions.syntax import parse_expression
from custan.model.ruleset import Expr


def referenced_names(expressions: Iterable[Expr]) -> set[str]:
    """Collect every name the expressions mention."""
    names: set[str] = set()
    for expr in expressions:
        tree = parse_expression(expr.text, expr.location)
        for column in tree.find_all(exp.Column):
            names.add(".".join(part.name for part in column.parts))
    return names


# Each level is one more select around the previous. Far deeper chains reach
# DuckDB's limit on expression depth, whose message a rules author cannot act on.
MAX_LEVELS = 100


def assign_levels(
    dependencies: dict[str, set[str]], locations: Mapping[str, Location | None]
) -> dict[str, int]:
    """Give each name a level one above the highest level it depends on.

    Names outside ``dependencies`` count as level 0 inputs. Raises RulesError
    on a cycle, naming the names in it.
    """
    levels: dict[str, int] = {}
    visiting: list[str] = []

    def visit(name: str) -> int:
        if name in levels:
            return levels[name]
        if name in visiting:
            cycle = visiting[visiting.index(name) :] + [name]
            raise RulesError(
                f"definitions refer to each other in a cycle: {' -> '.join(cycle)}",
                locations.get(name),
            )
        visiting.append(name)
        inner = [visit(dep) for dep in dependencies[name] if dep in dependencies]
        visiting.pop()
        levels[name] = 1 + max(inner, default=0)
        return levels[name]

    for name in dependencies:
        visit(name)
    deepest = max(levels, key=levels.__getitem__, default=None)
    if deepest is not None and levels[deepest] > MAX_LEVELS:
        raise RulesError(
            f"definitions build on each other more than {MAX_LEVELS} levels deep "
            f"(at '{deepest}'); combine some of them",
            locations.get(deepest),
        )
    return levels
