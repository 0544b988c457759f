"""Errors custan raises for bad rules, bad data and failed runs.

Every error a user can meet derives from ``CustanError`` and carries the exit
code the command line uses::

    CustanError
    ├── RulesError        exit 2: a rules file or the command line is wrong
    │   └── UsageError    exit 2: a command-line argument is wrong
    ├── DataError         exit 1: the data cannot be read or has a bad value
    └── RunError          exit 1: the engine or a source failed while running
        └── PluginError   exit 1: a plugin failed to import or raised in a hook
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """A place in a rules file: the file, a 1-based line and column, a field path."""

    file: str
    line: int | None = None
    column: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        place = self.file
        if self.line is not None:
            place += f":{self.line}"
            if self.column is not None:
                place += f":{self.column}"
        if self.field:
            place += f": {self.field}"
        return place


class CustanError(Exception):
    """Base of every error that the command line reports as one message."""

    exit_code = 1

    def __init__(self, message: str, location: Location | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = location

    def __str__(self) -> str:
        if self.location is None:
            return self.message
        return f"{self.location}: {self.message}"


class RulesError(CustanError):
    """A rules file is malformed, fails the schema, or names something undeclared."""

    exit_code = 2


class UsageError(RulesError):
    """A command-line argument is invalid."""


class DataError(CustanError):
    """The transaction data is missing, unreadable or contains an unparseable value."""

    exit_code = 1


class RunError(CustanError):
    """The engine or a source failed while running a valid rules file."""

    exit_code = 1


class PluginError(RunError):
    """A plugin failed to import, or raised inside one of its hooks."""
