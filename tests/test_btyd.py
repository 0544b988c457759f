"""The lifetime-value model summary: hand-made rows and the CDNOW sample's figures."""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from conftest import ROOT

from custan.api import run

DATA = ROOT / "tests" / "data" / "cohorts"
BTYD = ROOT / "rules" / "btyd.yaml"
CDNOW = ROOT / "examples" / "cdnow" / "btyd.yaml"
SAMPLE = ROOT / "examples" / "cdnow" / "CDNOW_sample.txt"
CENT = Decimal("0.01")


def fixture_rows(custan, *extra: str) -> dict[str, dict[str, str]]:
    outcome = custan(
        "run", BTYD, "--data", DATA / "transactions.csv", "--format", "csv", *extra
    )
    assert outcome.code == 0, outcome.err
    return {row["customer_id"]: row for row in outcome.csv_rows()}


def test_btyd_rows_by_hand(custan):
    rows = fixture_rows(custan)
    # as_of is latest: t07 at 2024-04-15T09:00Z, so the last day is 2024-04-15.
    # acct_a buys on 01-06 (10.00), 01-20 (5.50) and 02-29 UTC (20.00): three
    # days. Recency 01-06 to 02-29 is 25 + 29 = 54 days; t to 04-15 is
    # 25 + 29 + 31 + 15 = 100; repeat days (5.50 + 20.00) / 2 = 12.75.
    assert rows["acct_a"] == {
        "customer_id": "acct_a",
        "frequency": "2",
        "recency": "54",
        "t": "100",
        "monetary_value": "12.75",
    }
    # acct_b: 02-02 (30.00) and 04-15 (12.25); 27 + 31 + 15 = 73 days apart.
    assert (rows["acct_b"]["recency"], rows["acct_b"]["t"]) == ("73", "73")
    assert rows["acct_b"]["monetary_value"] == "12.25"
    # acct_x: 01-15 (40.00) and 03-15 (60.00): 16 + 29 + 15 = 60 days; t is
    # 60 + 31 = 91 days to 04-15.
    assert (rows["acct_x"]["recency"], rows["acct_x"]["t"]) == ("60", "91")
    assert rows["acct_x"]["monetary_value"] == "60.00"


def test_btyd_same_day_purchases_collapse(custan):
    rows = fixture_rows(custan)
    # acct_c buys 3.00 and 2.00 on 02-15 and 8.00 on 03-11: two days, so one
    # repeat. Recency 14 + 11 = 25 days, t 14 + 31 + 15 = 60 days; the repeat
    # day's spend is 8.00 (the first day's 5.00 is not a repeat).
    assert rows["acct_c"]["frequency"] == "1"
    assert rows["acct_c"]["recency"] == "25"
    assert rows["acct_c"]["t"] == "60"
    assert rows["acct_c"]["monetary_value"] == "8.00"


def test_btyd_one_purchase_day(custan):
    rows = fixture_rows(custan)
    # acct_y bought once, on 04-01: no repeat, and 14 days before 04-15.
    assert rows["acct_y"]["frequency"] == "0"
    assert rows["acct_y"]["recency"] == "0"
    assert rows["acct_y"]["t"] == "14"
    assert rows["acct_y"]["monetary_value"] == "0.00"


def test_btyd_skips_non_purchases(custan):
    rows = fixture_rows(custan)
    # acct_d has one voided payment only; declined, voided and refunds never count.
    assert "acct_d" not in rows
    assert sorted(rows) == ["acct_a", "acct_b", "acct_c", "acct_x", "acct_y"]


def test_btyd_weeks_param(custan):
    rows = fixture_rows(custan, "--param", "time_unit=weeks")
    # acct_a: 54 / 7 = 7.714285… and 100 / 7 = 14.285714…, four places kept.
    assert rows["acct_a"]["recency"] == "7.7143"
    assert rows["acct_a"]["t"] == "14.2857"
    # Frequency and spend do not depend on the unit.
    assert rows["acct_a"]["frequency"] == "2"
    assert rows["acct_a"]["monetary_value"] == "12.75"


def test_btyd_time_unit_outside_choices(custan):
    outcome = custan("run", BTYD, "--param", "time_unit=week")
    assert outcome.code == 2
    assert "--param time_unit: 'week' is not one of days, weeks" in outcome.err


def test_btyd_unknown_param_rejected(custan):
    outcome = custan("run", BTYD, "--param", "weeks=7")
    assert outcome.code == 2
    assert "declares no param 'weeks'" in outcome.err


def summary_from_raw_lines() -> dict[str, tuple[int, int, int, Decimal]]:
    """Compute each sample customer's summary in plain Python from the file."""
    spend_by_day: dict[str, dict[date, Decimal]] = defaultdict(dict)
    with open(SAMPLE, encoding="ascii") as handle:
        for line in handle:
            _, customer, day, _, dollars = line.split()
            when = date(int(day[:4]), int(day[4:6]), int(day[6:]))
            if when >= date(1997, 10, 1):
                continue
            days = spend_by_day[customer]
            days[when] = days.get(when, Decimal(0)) + Decimal(dollars)
    end = date(1997, 9, 30)
    summary = {}
    for customer, days in spend_by_day.items():
        ordered = sorted(days)
        repeats = [days[day] for day in ordered[1:]]
        mean = sum(repeats) / len(repeats) if repeats else Decimal(0)
        summary[customer] = (
            len(ordered) - 1,
            (ordered[-1] - ordered[0]).days,
            (end - ordered[0]).days,
            mean.quantize(CENT, rounding=ROUND_HALF_EVEN),
        )
    return summary


@pytest.fixture(scope="module")
def cdnow_rows(tmp_path_factory):
    from custan.cli import main

    output = tmp_path_factory.mktemp("btyd") / "btyd.csv"
    assert main(["run", str(CDNOW), "--format", "csv", "-o", str(output), "-q"]) == 0
    with open(output, newline="") as handle:
        return {row["customer_id"]: row for row in csv.DictReader(handle)}


def test_cdnow_rows_match_raw_lines(cdnow_rows):
    expected = summary_from_raw_lines()
    # 2,357 customers, all of whom bought in the first quarter of 1997.
    assert len(cdnow_rows) == len(expected) == 2357
    for customer, (frequency, recency, t, monetary) in expected.items():
        row = cdnow_rows[customer]
        assert int(row["frequency"]) == frequency, customer
        assert int(row["recency"]) == recency, customer
        assert int(row["t"]) == t, customer
        assert Decimal(row["monetary_value"]) == monetary, customer


def test_cdnow_repeat_values_match_published_figures(cdnow_rows):
    # Fader, Hardie and Lee (2005): 946 repeat customers, mean 35, standard
    # deviation 30, minimum 3, maximum 300, all rounded to whole dollars.
    values = [
        Decimal(row["monetary_value"])
        for row in cdnow_rows.values()
        if int(row["frequency"]) > 0
    ]
    assert len(values) == 946
    assert round(statistics.mean(values)) == 35
    assert round(statistics.stdev(values)) == 30
    assert round(min(values)) == 3
    assert round(max(values)) == 300


def test_cdnow_summary_values_match_published_figures():
    result = run(CDNOW)
    try:
        summary = {item.name: item.value for item in result.summary}
    finally:
        result.close()
    assert summary["repeat_customers"] == 946
    assert round(summary["repeat_mean"]) == 35
    assert round(summary["repeat_stddev"]) == 30
    assert round(summary["repeat_min"]) == 3
    assert round(summary["repeat_max"]) == 300
    # The written values are rounded to cents, and the median of those is
    # 27.50, on the rounding edge. The two middle customers' exact repeat
    # values are 27.455 and 27.54, so the exact median 27.4975 rounds to 27.
    assert summary["repeat_median"] == Decimal("27.4975")
    assert round(summary["repeat_median"]) == 27


def grouped_rules(tmp_path, body: str):
    """Write a rules file over the fixture's purchases with ``body`` appended."""
    text = (
        "version: 1\n"
        f"source: {{path: {DATA / 'transactions.csv'}}}\n"
        "filters: [\"type = 'payment'\", \"status = 'processed'\"]\n"
    )
    path = tmp_path / "rules.yaml"
    path.write_text(text + body)
    return path


# Per customer, the fixture's purchases are: acct_a 3 purchases, 35.50;
# acct_b 2, 42.25; acct_c 3, 13.00; acct_x 2, 100.00; acct_y 1, 25.00.
PER_CUSTOMER = "metrics:\n  purchases: {agg: count}\n  spent: {agg: sum, of: amount}\n"


def test_min_by_max_by_break_ties(custan, tmp_path):
    rules = grouped_rules(
        tmp_path,
        PER_CUSTOMER + "output:\n"
        "  values:\n"
        "    fewest: min_by(spent, purchases)\n"
        "    most: max_by(spent, purchases)\n"
        "    most_buyer: max_by(customer_id, purchases)\n",
    )
    outcome = custan("run", rules, "--format", "csv")
    assert outcome.code == 0, outcome.err
    row = outcome.csv_rows()[0]
    # acct_y alone has the fewest purchases (1) and spent 25.00.
    assert row["fewest"] == "25.00"
    # acct_a and acct_c tie at 3 purchases; max_by takes the larger value:
    # 35.50 over 13.00, and 'acct_c' over 'acct_a'.
    assert row["most"] == "35.50"
    assert row["most_buyer"] == "acct_c"


def test_median_and_stddev(custan, tmp_path):
    rules = grouped_rules(
        tmp_path,
        PER_CUSTOMER + "output:\n"
        "  values:\n"
        "    middle: median(spent)\n"
        "    spread: stddev(spent)\n"
        "    middle_count: median(purchases)\n"
        "  decimals: 4\n",
    )
    outcome = custan("run", rules, "--format", "csv")
    assert outcome.code == 0, outcome.err
    row = outcome.csv_rows()[0]
    # Spends in order: 13.00, 25.00, 35.50, 42.25, 100.00; the middle one.
    assert row["middle"] == "35.50"
    # Mean 215.75 / 5 = 43.15; squared deviations 909.0225 + 329.4225 +
    # 58.5225 + 0.81 + 3231.9225 = 4529.70; / 4 = 1132.425; root 33.6515.
    assert row["spread"] == "33.6515"
    # Purchases 1, 2, 2, 3, 3: the middle one is 2.
    assert row["middle_count"] == "2"


def test_start_of_day_in_file_time_zone(custan, tmp_path):
    rules = grouped_rules(
        tmp_path,
        "time_zone: America/Sao_Paulo\n"
        "per:\n  day: start_of_day(created_at)\n"
        "metrics:\n  spent: {agg: sum, of: amount}\n"
        "output:\n  where: customer_id = 'acct_c'\n  columns: [day, spent]\n",
    )
    outcome = custan("run", rules, "--format", "csv")
    assert outcome.code == 0, outcome.err
    rows = [(row["day"], row["spent"]) for row in outcome.csv_rows()]
    # Sao Paulo is UTC-3 in 2024 (no daylight saving). t12 (18:00Z) and t13
    # (20:00Z) fall on 2024-02-15 there, which began at 03:00Z; t08 at
    # 2024-03-11T09:00Z is 06:00 local on 2024-03-11.
    assert rows == [
        ("2024-02-15T03:00:00Z", "5.00"),
        ("2024-03-11T03:00:00Z", "8.00"),
    ]


def test_param_types_and_override(custan, tmp_path):
    rules = grouped_rules(
        tmp_path,
        "params:\n"
        "  floor: 30\n"
        "  label: big\n"
        "  rate: 0.5\n"
        "  enabled: true\n" + PER_CUSTOMER + "derived:\n"
        "  kind: case when enabled and spent >= floor then label else 'small' end\n"
        "  half: spent * rate\n"
        "output:\n  columns: [kind, half]\n",
    )
    outcome = custan("run", rules, "--format", "csv")
    assert outcome.code == 0, outcome.err
    rows = {
        row["customer_id"]: (row["kind"], row["half"]) for row in outcome.csv_rows()
    }
    # acct_a spent 35.50 >= 30: big, half 17.75; acct_c spent 13.00: small.
    assert rows["acct_a"] == ("big", "17.75")
    assert rows["acct_c"] == ("small", "6.50")
    outcome = custan(
        "run",
        rules,
        "--format",
        "csv",
        "--param",
        "floor=40",
        "--param",
        "label=large",
        "--param",
        "rate=0.25",
    )
    assert outcome.code == 0, outcome.err
    rows = {
        row["customer_id"]: (row["kind"], row["half"]) for row in outcome.csv_rows()
    }
    # With floor 40, acct_a (35.50) is small and acct_b (42.25) is large;
    # a quarter of 35.50 is 8.875, written as 8.88 (half-even to cents).
    assert rows["acct_a"] == ("small", "8.88")
    assert rows["acct_b"] == ("large", "10.56")


def test_param_reusing_name_rejected(custan, tmp_path):
    rules = grouped_rules(tmp_path, "params:\n  spent: 1\n" + PER_CUSTOMER)
    outcome = custan("validate", rules)
    assert outcome.code == 2
    assert "param 'spent' reuses a field or a declared name" in outcome.err


def test_param_without_equals_rejected(custan):
    outcome = custan("run", BTYD, "--param", "time_unit")
    assert outcome.code == 2
    assert "write it as NAME=VALUE" in outcome.err


def test_text_param_keeps_digits(custan, tmp_path):
    # A text param given digits stays text: '007', not the number 7.
    derived = "derived:\n  tag: concat(label, '-x')\n"
    rules = grouped_rules(tmp_path, "params:\n  label: abc\n" + PER_CUSTOMER + derived)
    outcome = custan("run", rules, "--param", "label=007", "--format", "csv")
    assert outcome.code == 0, outcome.err
    assert {row["tag"] for row in outcome.csv_rows()} == {"007-x"}


def test_number_param_rejects_text(custan, tmp_path):
    rules = grouped_rules(tmp_path, "params:\n  floor: 40\n" + PER_CUSTOMER)
    outcome = custan("run", rules, "--param", "floor=abc")
    assert outcome.code == 2
    assert "--param floor: 'abc' is not a whole number" in outcome.err
