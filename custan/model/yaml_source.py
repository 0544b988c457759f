"""Read YAML into plain Python values while keeping where each value was written.

PyYAML's composer gives nodes with marks. This module turns them into dicts and
lists plus a map from each value's path to its line and column, so that later
errors can point at the exact field in the rules file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from custan.errors import Location, RulesError

Path = tuple[str | int, ...]
# Far more values than any rules file needs, and few enough to check quickly.
MAX_VALUES = 100_000


class _RulesLoader(yaml.SafeLoader):
    """SafeLoader that keeps dates and times as text.

    Instants in rules files are parsed by custan (an unquoted 2026-04-01 would
    otherwise become a date object and fail the schema's string type).
    """


_RulesLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag != "tag:yaml.org,2002:timestamp"
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_SCALARS = _RulesLoader("")


@dataclass
class Document:
    """A parsed YAML document and the position of every value in it."""

    file: str
    data: Any
    marks: dict[Path, tuple[int, int]] = field(default_factory=dict)
    size: int = 0

    def locate(self, path: Path) -> Location:
        """Return the location of the value at ``path``, or of its nearest parent."""
        probe = tuple(path)
        while probe and probe not in self.marks:
            probe = probe[:-1]
        line, column = self.marks.get(probe, (None, None))
        # "<value>" selects a key's value rather than the key; it is no field.
        field = format_path(tuple(part for part in path if part != "<value>"))
        return Location(self.file, line, column, field or None)


def format_path(path: Path) -> str:
    """Format a path as ``scores.r.bands[0]``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def parse_yaml(text: str, file: str) -> Document:
    """Parse one YAML document; raise RulesError with the line of a syntax error."""
    try:
        node = yaml.compose(text, Loader=_RulesLoader)
    except RecursionError:
        raise RulesError("the YAML nests too deeply", Location(file)) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        problem = error.problem or error.context or "invalid YAML"
        raise RulesError(
            f"invalid YAML: {problem}", Location(file, line, column)
        ) from None
    except yaml.YAMLError as error:
        raise RulesError(f"invalid YAML: {error}", Location(file)) from None
    document = Document(file, None)
    if node is None:
        raise RulesError("the file is empty", Location(file, 1))
    try:
        document.data = _convert(node, (), document)
    except RecursionError:
        raise RulesError("the YAML nests too deeply", Location(file)) from None
    return document


def _convert(node: yaml.Node, path: Path, document: Document) -> Any:
    # Aliases repeat a node wherever they point, so a small file of nested
    # aliases can expand to billions of values; count every value visited.
    document.size += 1
    if document.size > MAX_VALUES:
        line = node.start_mark.line + 1
        raise RulesError(
            f"the file expands to more than {MAX_VALUES:,} values through its aliases",
            Location(document.file, line),
        )
    document.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        return _convert_mapping(node, path, document)
    if isinstance(node, yaml.SequenceNode):
        return [
            _convert(item, path + (index,), document)
            for index, item in enumerate(node.value)
        ]
    # Scalars go through the safe constructor so that 5 is an int and true a bool.
    return _SCALARS.construct_object(node, deep=True)


def _convert_mapping(node: yaml.MappingNode, path: Path, document: Document) -> dict:
    result: dict[str, Any] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            location = Location(document.file, key_node.start_mark.line + 1)
            raise RulesError("mapping keys must be plain text", location)
        key = str(key_node.value)
        if key in result:
            location = Location(
                document.file,
                key_node.start_mark.line + 1,
                key_node.start_mark.column + 1,
                format_path(path + (key,)),
            )
            raise RulesError(f"duplicate key '{key}'", location)
        result[key] = _convert(value_node, path + (key,), document)
        document.marks[path + (key,)] = (
            key_node.start_mark.line + 1,
            key_node.start_mark.column + 1,
        )
        document.marks[path + (key, "<value>")] = (
            value_node.start_mark.line + 1,
            value_node.start_mark.column + 1,
        )
    return result
