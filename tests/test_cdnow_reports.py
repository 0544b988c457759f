"""The guide's reports on the real CDNOW log, checked against its published totals.

The log is rewritten with Payload's column names, so the shipped rules files
read it unchanged, and the expected values come from a plain Python pass over
the raw lines: 23,570 customers, 69,659 purchases, 2,500,315.63 dollars.
"""

from __future__ import annotations

import csv
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal

import pytest
from conftest import ROOT

MASTER = ROOT / "examples" / "cdnow" / "CDNOW_master.txt"
AS_OF = date(1998, 7, 1)


@pytest.fixture(scope="module")
def raw_customers():
    """Per customer: purchases, total and last purchase date, from the raw lines."""
    customers: dict[str, list] = {}
    with open(MASTER) as handle:
        next(handle)
        for line in handle:
            customer, day, _, value = line.split()
            when = date(int(day[:4]), int(day[4:6]), int(day[6:]))
            record = customers.setdefault(customer, [0, Decimal(0), when])
            record[0] += 1
            record[1] += Decimal(value)
            record[2] = max(record[2], when)
    return customers


@pytest.fixture(scope="module")
def payload_csv(tmp_path_factory, raw_customers):
    """The log as a Payload-shaped CSV: one processed payment per raw line."""
    path = tmp_path_factory.mktemp("cdnow") / "transactions.csv"
    with open(MASTER) as source, open(path, "w", newline="") as target:
        writer = csv.writer(target)
        writer.writerow(
            [
                "id",
                "type",
                "status",
                "amount",
                "created_at",
                "sender.account_id",
                "sender.method_id",
            ]
        )
        next(source)
        for number, line in enumerate(source, start=1):
            customer, day, _, value = line.split()
            instant = f"{day[:4]}-{day[4:6]}-{day[6:]}"
            writer.writerow(
                [f"cd{number}", "payment", "processed", value, instant, customer, ""]
            )
    return path


def run_csv(custan, rules: str, data, *extra: str) -> list[dict[str, str]]:
    outcome = custan(
        "run",
        ROOT / "rules" / rules,
        "--data",
        data,
        "--as-of",
        "1998-07-01",
        "--format",
        "csv",
        *extra,
    )
    assert outcome.code == 0, outcome.err
    return outcome.csv_rows()


def test_tiers_cover_every_customer(custan, payload_csv, raw_customers):
    rows = run_csv(custan, "tiers.yaml", payload_csv)
    assert len(rows) == 23570
    assert sum(Decimal(row["total"]) for row in rows) == Decimal("2500315.63")

    def tier(total: Decimal) -> str:
        for name, floor in (("Platinum", 10000), ("Gold", 5000), ("Silver", 1000)):
            if total >= floor:
                return name
        return "Bronze"

    expected = Counter(tier(record[1]) for record in raw_customers.values())
    assert Counter(row["tier"] for row in rows) == expected


def test_frequency_distribution_adds_up(custan, payload_csv, raw_customers):
    rows = run_csv(custan, "frequency.yaml", payload_csv)
    distribution = {int(row["purchases"]): int(row["customers"]) for row in rows}
    assert sum(distribution.values()) == 23570
    assert sum(count * customers for count, customers in distribution.items()) == 69659
    assert distribution == dict(Counter(record[0] for record in raw_customers.values()))


def test_value_activity_segments(custan, payload_csv, raw_customers):
    # Active means a purchase on or after as_of - 60 days, 1998-05-02.
    rows = run_csv(custan, "value_activity.yaml", payload_csv)
    start = AS_OF - timedelta(days=60)

    def segment(total: Decimal, last: date) -> str:
        high, active = total >= 5000, last >= start
        if high:
            return "Champions" if active else "At Risk"
        return "Promising" if active else "Hibernating"

    expected = Counter(segment(r[1], r[2]) for r in raw_customers.values())
    assert Counter(row["segment"] for row in rows) == expected
    assert sum(expected.values()) == 23570


def test_ltv_top_fifty(custan, payload_csv, raw_customers):
    rows = run_csv(custan, "ltv.yaml", payload_csv)
    ranked = sorted(raw_customers.items(), key=lambda item: (-item[1][1], item[0]))[:50]
    assert [row["customer_id"] for row in rows] == [customer for customer, _ in ranked]
    assert rows[0]["customer_id"] == "07592"
    assert rows[0]["total"] == "13990.93"
    assert rows[0]["purchases"] == "201"


def test_rfm_agrees_with_whitespace_reader(custan, payload_csv):
    # The same log read two ways: as Payload-shaped CSV through rules/rfm.yaml
    # and as the original text through examples/cdnow/rfm.yaml.
    converted = run_csv(custan, "rfm.yaml", payload_csv)
    original = custan(
        "run",
        ROOT / "examples" / "cdnow" / "rfm.yaml",
        "--as-of",
        "1998-07-01",
        "--format",
        "csv",
    )
    assert original.code == 0, original.err
    by_id = {row["customer_id"]: row for row in original.csv_rows()}
    assert len(converted) == len(by_id) == 23570
    for row in converted:
        other = by_id[row["customer_id"]]
        assert (row["r"], row["f"], row["m"], row["segment"]) == (
            other["r"],
            other["f"],
            other["m"],
            other["segment"],
        )
