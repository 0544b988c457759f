"""The typed model of a rules file.

Nothing after loading touches YAML: the compiler and the sources read these
dataclasses, and every node keeps the location it came from for messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from custan.errors import Location


@dataclass(frozen=True)
class Expr:
    """Expression text from the rules file and where it was written."""

    text: str
    location: Location


@dataclass
class Input:
    """An input of rows: files, the Payload API, or a plugin's source."""

    kind: str = "files"
    path: str | None = None
    format: str | None = None
    delimiter: str | None = None
    header: bool = True
    column_names: list[str] | None = None
    date_format: str | None = None
    time_zone: str = "UTC"
    columns: dict[str, str] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)
    url: str | None = None
    api_version: str | None = None
    key_env: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    include_all: bool = False
    base_dir: str = "."
    location: Location | None = None


@dataclass(frozen=True)
class Metric:
    """A per-customer aggregate of transactions."""

    name: str
    agg: str
    of: Expr | None
    where: Expr | None
    window: timedelta | None
    location: Location


@dataclass(frozen=True)
class Band:
    """One threshold: a value that compares true against ``bound`` gets ``result``."""

    result: Any
    operator: str
    bound: Decimal


@dataclass(frozen=True)
class Score:
    """Maps a value to an integer by fixed bands or by quantiles."""

    name: str
    of: Expr
    bands: list[Band]
    default: int | None
    quantiles: int | None
    better: str
    location: Location


@dataclass(frozen=True)
class Tier:
    """Maps a value to a level name by thresholds, first match wins."""

    name: str
    of: Expr
    levels: list[Band]
    default: str
    location: Location


@dataclass(frozen=True)
class Segment:
    """A named rule; the one without a condition is the default."""

    name: str
    when: Expr | None
    action: str | None
    location: Location


@dataclass
class Summary:
    """Values computed over the output rows and the lines that show them."""

    values: dict[str, Expr] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Matrix:
    """The grouped columns a table shows as its rows, columns and cells."""

    rows: str
    columns: str
    value: str


@dataclass
class Output:
    """The written result: columns, filter, order, limit, grouping, summary."""

    columns: list[str] | None = None
    where: Expr | None = None
    sort: list[tuple[str, bool]] = field(default_factory=list)
    limit: int | None = None
    group_by: list[str] | None = None
    values: dict[str, Expr] = field(default_factory=dict)
    matrix: Matrix | None = None
    summary: Summary = field(default_factory=Summary)
    decimals: int = 6
    location: Location | None = None


@dataclass
class RuleSet:
    """A validated rules file."""

    file: str
    name: str | None
    description: str | None
    requires: list[str]
    source: Input
    accounts: Input | None
    as_of: str
    as_of_location: Location
    time_zone: str
    filters: list[Expr]
    windows: list[timedelta]
    metrics: dict[str, Metric]
    derived: dict[str, Expr]
    scores: dict[str, Score]
    tiers: dict[str, Tier]
    segments: list[Segment]
    output: Output
    # Keys that split each customer's metrics row, such as one row per month.
    per: dict[str, Expr] = field(default_factory=dict)
    # Named constants that every expression may read.
    params: dict[str, Any] = field(default_factory=dict)
    # The allowed values of params that declare them.
    param_choices: dict[str, list[Any]] = field(default_factory=dict)
