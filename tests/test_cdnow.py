"""The CDNOW example on the real purchase log, checked against the raw lines."""

from __future__ import annotations

from decimal import Decimal

import pytest
from conftest import ROOT

RULES = ROOT / "examples" / "cdnow" / "rfm.yaml"


@pytest.fixture(scope="module")
def cdnow_rows(tmp_path_factory):
    import csv

    from custan.cli import main

    output = tmp_path_factory.mktemp("cdnow") / "rfm.csv"
    code = main(
        [
            "run",
            str(RULES),
            "--as-of",
            "1998-07-01",
            "--format",
            "csv",
            "-o",
            str(output),
            "-q",
        ]
    )
    assert code == 0
    with open(output, newline="") as handle:
        return {row["customer_id"]: row for row in csv.DictReader(handle)}


def test_cdnow_totals_match_published_figures(cdnow_rows):
    # The log's README: 69,659 transactions by 23,570 customers worth 2,500,315.63.
    assert len(cdnow_rows) == 23570
    assert sum(int(row["purchases"]) for row in cdnow_rows.values()) == 69659
    assert sum(Decimal(row["total"]) for row in cdnow_rows.values()) == Decimal(
        "2500315.63"
    )


def test_cdnow_customer_with_one_purchase(cdnow_rows):
    # Raw line: " 00001 19970101  1   11.77". 1997-01-01 to 1998-07-01 is
    # 365 + 181 = 546 days, so r = 1; one purchase f = 1; 11.77 gives m = 1.
    row = cdnow_rows["00001"]
    assert row["purchases"] == "1"
    assert row["total"] == "11.77"
    assert row["days_since_last"] == "546"
    assert (row["r"], row["f"], row["m"]) == ("1", "1", "1")
    assert row["segment"] == "Lost"


def test_cdnow_same_day_rows_count_twice(cdnow_rows):
    # Two raw lines on 1997-01-12: 12.00 and 77.00. They are two purchases
    # (89.00 in all), 535 days before 1998-07-01.
    row = cdnow_rows["00002"]
    assert row["purchases"] == "2"
    assert row["total"] == "89.00"
    assert row["days_since_last"] == "535"
    assert (row["r"], row["f"], row["m"]) == ("1", "2", "1")
    assert row["segment"] == "Lost"


def test_cdnow_recent_regular_is_loyal(cdnow_rows):
    # Six lines: 20.76 + 20.76 + 19.54 + 57.45 + 20.96 + 16.99 = 156.46.
    # Last on 1998-05-28: 31 days to 06-28, 3 more to 07-01 = 34, so r = 4;
    # 6 purchases give f = 3; r >= 4 and f >= 3 is Loyal Customers.
    row = cdnow_rows["00003"]
    assert row["purchases"] == "6"
    assert row["total"] == "156.46"
    assert row["last_purchase"] == "1998-05-28T00:00:00Z"
    assert row["days_since_last"] == "34"
    assert (row["r"], row["f"], row["m"]) == ("4", "3", "1")
    assert row["segment"] == "Loyal Customers"


def test_cdnow_top_customer_is_champion(cdnow_rows):
    # awk over the raw lines of 07592: 201 rows summing to 13990.93, last 19980629.
    row = cdnow_rows["07592"]
    assert row["purchases"] == "201"
    assert row["total"] == "13990.93"
    assert row["days_since_last"] == "2"
    assert (row["r"], row["f"], row["m"]) == ("5", "5", "5")
    assert row["segment"] == "Champions"


def test_cdnow_frequent_but_gone_needs_attention(cdnow_rows):
    # 19339: 56 rows summing to 6552.70, last 1997-04-11, which is
    # 365 + 30 + 31 + 20 = 446 days before 1998-07-01: r = 1, f = 5, m = 4.
    # Not recent, so the first rule that is true is f >= 3: Need Attention.
    row = cdnow_rows["19339"]
    assert row["purchases"] == "56"
    assert row["total"] == "6552.70"
    assert row["days_since_last"] == "446"
    assert (row["r"], row["f"], row["m"]) == ("1", "5", "4")
    assert row["segment"] == "Need Attention"
