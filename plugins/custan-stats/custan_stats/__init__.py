"""custan metrics for the spread of order values and the regularity of purchases.

Each is an ``Aggregate`` that compiles to DuckDB SQL, so it runs in the same
query as custan's built-in metrics and works in scores and segments alike.
"""

from __future__ import annotations

from decimal import Decimal

from sqlglot import exp

from custan.compiler.aggregates import Aggregate, call, filtered
from custan.expressions import sql
from custan.expressions.types import NUMERIC, Type
from custan.hookspecs import hookimpl

__version__ = "0.1.0"

# DuckDB's median and quantile_cont keep the argument's DECIMAL scale, so
# DECIMAL(18,2) cents would lose the half cent of an even-sized median.
# Nine places hold every interpolation between cents at percentiles given to
# two places exactly; money is rounded half-even to cents only when written.
EXACT_DECIMAL = "DECIMAL(38,9)"
# Standard deviations and ratios are irrational in general; DuckDB computes
# them in DOUBLE and custan shows them as decimals of this scale.
RATIO_DECIMAL = "DECIMAL(38,12)"

PERCENTILES = {
    "p25": "0.25",
    "p75": "0.75",
    "p90": "0.90",
    "p95": "0.95",
    "p99": "0.99",
}


def _money_or_decimal(value_type: Type) -> Type:
    return Type.MONEY if value_type is Type.MONEY else Type.DECIMAL


def _decimal(value_type: Type) -> Type:
    return Type.DECIMAL


def _median(value, condition):
    return filtered(call("median", sql.cast(value, EXACT_DECIMAL)), condition)


def _percentile(fraction: str):
    """Build quantile_cont at ``fraction``: linear interpolation between ranks."""

    def build(value, condition):
        exact = sql.cast(value, EXACT_DECIMAL)
        return filtered(call("quantile_cont", exact, sql.number(fraction)), condition)

    return build


def _stddev(value, condition):
    spread = filtered(call("stddev_samp", sql.cast(value, "DOUBLE")), condition)
    return sql.cast(spread, RATIO_DECIMAL)


def _gap_cv(value, condition):
    """Build stddev_samp(gaps) / avg(gaps) over the sorted instants of ``value``.

    A gap is the time from one purchase to the next, in microseconds. The
    result is NULL with fewer than two gaps, or when every gap is zero.
    """
    instants = filtered(call("list", call("epoch_us", value)), condition)
    times = call("list_sort", instants)
    gaps = _differences(times)
    spread = call("list_stddev_samp", gaps)
    mean = exp.Nullif(this=call("list_avg", gaps.copy()), expression=sql.number(0))
    ratio = exp.Div(this=spread, expression=mean)
    return sql.cast(ratio, RATIO_DECIMAL)


def _differences(times: exp.Expression) -> exp.Expression:
    """Build the list of each element minus the one before it."""
    length = call("len", times.copy())
    later = call("list_slice", times.copy(), sql.number(2), length)
    earlier = call(
        "list_slice",
        times.copy(),
        sql.number(1),
        exp.Sub(this=length.copy(), expression=sql.number(1)),
    )
    pair = exp.to_identifier("pair")
    # offset=1 marks the indexes as 1-based already, so SQLGlot keeps them as written.
    first = exp.Bracket(this=pair.copy(), expressions=[sql.number(1)], offset=1)
    second = exp.Bracket(this=pair.copy(), expressions=[sql.number(2)], offset=1)
    difference = exp.Lambda(
        this=exp.Sub(this=first, expression=second), expressions=[pair]
    )
    return call("list_transform", call("list_zip", later, earlier), difference)


STATS_AGGREGATES = [
    Aggregate(
        "median",
        _median,
        _money_or_decimal,
        accepts=NUMERIC,
        summary="middle value, or the mean of the two middle values",
    ),
    Aggregate(
        "stddev",
        _stddev,
        _decimal,
        accepts=NUMERIC,
        summary="sample standard deviation; NULL with fewer than two rows",
    ),
    *[
        Aggregate(
            name,
            _percentile(fraction),
            _money_or_decimal,
            accepts=NUMERIC,
            summary=f"{Decimal(fraction) * 100:.0f}th percentile, interpolated",
        )
        for name, fraction in PERCENTILES.items()
    ],
    Aggregate(
        "gap_cv",
        _gap_cv,
        _decimal,
        accepts=frozenset({Type.INSTANT}),
        summary="coefficient of variation of the gaps between instants",
    ),
]


@hookimpl
def register_metrics(register):
    for aggregate in STATS_AGGREGATES:
        register(aggregate)
