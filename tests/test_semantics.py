"""Edges of the engine's semantics: elapsed days, decimals, instants, ties."""

from __future__ import annotations

import json

import duckdb
from conftest import write_rules, write_transactions

RFM_SCORES = """
version: 1
source: {path: tx.csv}
filters: ["type = 'payment'", "status = 'processed'"]
metrics:
  last_purchase: {agg: max, of: created_at}
  purchases: {agg: count}
  total: {agg: sum, of: amount}
derived:
  days_since_last: days_since(last_purchase)
scores:
  r:
    of: days_since_last
    bands: [{below: 30, score: 5}, {below: 90, score: 4}]
    default: 1
  m:
    of: total
    bands: [{at_least: 1000, score: 3}]
    default: 1
"""


def by_customer(outcome) -> dict[str, dict[str, str]]:
    assert outcome.code == 0, outcome.err
    return {row["customer_id"]: row for row in outcome.csv_rows()}


def test_recency_edge_is_elapsed_time(tmp_path, custan):
    # as_of 2026-01-31T00:00Z. 29 days 23 hours before is 2026-01-01T01:00Z:
    # floor(29.96) = 29 < 30 scores 5. Exactly 30 days before scores 4.
    # A calendar-date count would call the first one 30 days.
    write_transactions(
        tmp_path,
        [
            (
                "t1",
                "payment",
                "processed",
                "5.00",
                "2026-01-01T01:00:00Z",
                "almost",
                "pm",
            ),
            (
                "t2",
                "payment",
                "processed",
                "5.00",
                "2026-01-01T00:00:00Z",
                "exactly",
                "pm",
            ),
        ],
    )
    rules = write_rules(tmp_path, RFM_SCORES)
    rows = by_customer(
        custan("run", rules, "--as-of", "2026-01-31T00:00:00Z", "--format", "csv")
    )
    assert rows["almost"]["days_since_last"] == "29"
    assert rows["almost"]["r"] == "5"
    assert rows["exactly"]["days_since_last"] == "30"
    assert rows["exactly"]["r"] == "4"


def test_many_cents_reach_threshold_exactly(tmp_path, custan):
    # 10,000 payments of 0.10 are exactly 1000.00, which reaches >= 1000.
    # In binary floating point the same sum is 1000.0000000001588.
    rows = [
        (f"t{i}", "payment", "processed", "0.10", "2026-01-01T00:00:00Z", "c", "pm")
        for i in range(10_000)
    ]
    write_transactions(tmp_path, rows)
    rules = write_rules(tmp_path, RFM_SCORES)
    result = by_customer(custan("run", rules, "--format", "csv"))
    assert result["c"]["total"] == "1000.00"
    assert result["c"]["m"] == "3"


def test_same_instant_in_different_offsets(tmp_path, custan):
    # All four rows are 2026-01-01T00:00:00 UTC, written four ways.
    text = """
version: 1
source: {path: tx.csv}
metrics:
  first: {agg: min, of: created_at}
  last: {agg: max, of: created_at}
  instants: {agg: count_distinct, of: created_at}
"""
    write_transactions(
        tmp_path,
        [
            ("t1", "payment", "processed", "1", "2026-01-01T00:00:00Z", "c", "pm"),
            ("t2", "payment", "processed", "1", "2025-12-31T19:00:00-05:00", "c", "pm"),
            ("t3", "payment", "processed", "1", "2026-01-01T05:30:00+05:30", "c", "pm"),
            ("t4", "payment", "processed", "1", "2026-01-01 00:00:00", "c", "pm"),
        ],
    )
    rules = write_rules(tmp_path, text)
    row = by_customer(custan("run", rules, "--format", "csv"))["c"]
    assert row["instants"] == "1"
    assert row["first"] == "2026-01-01T00:00:00Z"
    assert row["last"] == "2026-01-01T00:00:00Z"


def test_refunds_and_voided_payments_excluded(tmp_path, custan):
    # Only t1 and t4 are processed payments: 100.00 + 40.00.
    write_transactions(
        tmp_path,
        [
            ("t1", "payment", "processed", "100.00", "2026-01-01T00:00:00Z", "c", "pm"),
            ("t2", "refund", "processed", "100.00", "2026-01-02T00:00:00Z", "c", "pm"),
            ("t3", "payment", "voided", "500.00", "2026-01-03T00:00:00Z", "c", "pm"),
            ("t4", "payment", "processed", "40.00", "2026-01-04T00:00:00Z", "c", "pm"),
            ("t5", "payment", "declined", "900.00", "2026-01-05T00:00:00Z", "c", "pm"),
        ],
    )
    rules = write_rules(tmp_path, RFM_SCORES)
    row = by_customer(custan("run", rules, "--as-of", "2026-01-10", "--format", "csv"))[
        "c"
    ]
    assert row["purchases"] == "2"
    assert row["total"] == "140.00"
    assert row["last_purchase"] == "2026-01-04T00:00:00Z"


def test_rows_after_as_of_are_not_counted(tmp_path, custan):
    write_transactions(
        tmp_path,
        [
            ("t1", "payment", "processed", "10.00", "2026-01-01T00:00:00Z", "c", "pm"),
            ("t2", "payment", "processed", "99.00", "2026-02-01T00:00:00Z", "c", "pm"),
        ],
    )
    rules = write_rules(tmp_path, RFM_SCORES)
    row = by_customer(custan("run", rules, "--as-of", "2026-01-15", "--format", "csv"))[
        "c"
    ]
    assert row["total"] == "10.00"
    assert row["days_since_last"] == "14"


def test_latest_as_of_is_newest_row_of_source(tmp_path, custan):
    # The refund on 01-20 is the newest row, so as_of is 2026-01-20T00:00Z
    # even though filters drop it: the last purchase is 19 days before.
    write_transactions(
        tmp_path,
        [
            ("t1", "payment", "processed", "10.00", "2026-01-01T00:00:00Z", "c", "pm"),
            ("t2", "refund", "processed", "10.00", "2026-01-20T00:00:00Z", "c", "pm"),
        ],
    )
    rules = write_rules(tmp_path, RFM_SCORES)
    row = by_customer(custan("run", rules, "--format", "csv"))["c"]
    assert row["days_since_last"] == "19"


def test_average_is_exact_and_rounds_half_even(tmp_path, custan):
    # even: (0.02 + 0.03) / 2 = 0.025 is a tie and rounds to the even 0.02.
    # odd: (0.01 + 0.02) / 2 = 0.015 rounds to 0.02. thirds: 10.01 / 3 =
    # 3.33666... rounds to 3.34. A float average would give 0.025000000000000001.
    text = """
version: 1
source: {path: tx.csv}
metrics:
  average: {agg: avg, of: amount}
"""
    write_transactions(
        tmp_path,
        [
            ("t1", "payment", "processed", "0.02", "2026-01-01", "even", "pm"),
            ("t2", "payment", "processed", "0.03", "2026-01-01", "even", "pm"),
            ("t3", "payment", "processed", "0.01", "2026-01-01", "odd", "pm"),
            ("t4", "payment", "processed", "0.02", "2026-01-01", "odd", "pm"),
            ("t5", "payment", "processed", "3.00", "2026-01-01", "thirds", "pm"),
            ("t6", "payment", "processed", "3.00", "2026-01-01", "thirds", "pm"),
            ("t7", "payment", "processed", "4.01", "2026-01-01", "thirds", "pm"),
        ],
    )
    rules = write_rules(tmp_path, text)
    rows = by_customer(custan("run", rules, "--format", "csv"))
    assert rows["even"]["average"] == "0.02"
    assert rows["odd"]["average"] == "0.02"
    assert rows["thirds"]["average"] == "3.34"


def test_mode_first_last_ties_go_to_smallest(tmp_path, custan):
    # pm_b and pm_a are used twice each: the tie goes to pm_a. Two rows share
    # the earliest instant (amounts 7 and 5) and two the latest (9 and 8).
    text = """
version: 1
source: {path: tx.csv}
metrics:
  method: {agg: mode, of: sender.method_id}
  first_amount: {agg: first, of: amount}
  last_amount: {agg: last, of: amount}
"""
    write_transactions(
        tmp_path,
        [
            ("t1", "payment", "processed", "7.00", "2026-01-01", "c", "pm_b"),
            ("t2", "payment", "processed", "5.00", "2026-01-01", "c", "pm_b"),
            ("t3", "payment", "processed", "9.00", "2026-01-05", "c", "pm_a"),
            ("t4", "payment", "processed", "8.00", "2026-01-05", "c", "pm_a"),
            ("t5", "payment", "processed", "6.00", "2026-01-03", "c", "pm_c"),
        ],
    )
    rules = write_rules(tmp_path, text)
    row = by_customer(custan("run", rules, "--format", "csv"))["c"]
    assert row["method"] == "pm_a"
    assert row["first_amount"] == "5.00"
    assert row["last_amount"] == "8.00"


def test_quantile_scores_keep_ties_together(tmp_path, custan):
    # Totals 10, 20, 20, 20, 50 in 5 quantiles: bucket = 1 + 5*(rank-1)//5
    # with ranks 1, 2, 2, 2, 5 gives 1, 2, 2, 2, 5. The constant column
    # (one purchase each) puts everyone in bucket 1 instead of failing.
    text = """
version: 1
source: {path: tx.csv}
metrics:
  total: {agg: sum, of: amount}
  purchases: {agg: count}
scores:
  m: {of: total, quantiles: 5}
  low: {of: total, quantiles: 5, better: lower}
  f: {of: purchases, quantiles: 5}
"""
    amounts = {"a": "10", "b": "20", "c": "20", "d": "20", "e": "50"}
    write_transactions(
        tmp_path,
        [
            (f"t{name}", "payment", "processed", amount, "2026-01-01", name, "pm")
            for name, amount in amounts.items()
        ],
    )
    rules = write_rules(tmp_path, text)
    rows = by_customer(custan("run", rules, "--format", "csv"))
    assert [rows[n]["m"] for n in "abcde"] == ["1", "2", "2", "2", "5"]
    # Lower is better: ranks by descending total are 5, 2, 2, 2, 1.
    assert [rows[n]["low"] for n in "abcde"] == ["5", "2", "2", "2", "1"]
    assert {rows[n]["f"] for n in "abcde"} == {"1"}


def test_naive_timestamps_read_in_source_zone(tmp_path, custan):
    # 2026-07-01 20:00 in New York (EDT, UTC-4) is 2026-07-02T00:00Z; the row
    # with an explicit offset keeps it.
    text = """
version: 1
source: {path: tx.csv, time_zone: America/New_York}
metrics:
  first: {agg: min, of: created_at}
  last: {agg: max, of: created_at}
"""
    write_transactions(
        tmp_path,
        [
            ("t1", "payment", "processed", "1", "2026-07-01 20:00:00", "c", "pm"),
            ("t2", "payment", "processed", "1", "2026-07-03T00:00:00+00:00", "c", "pm"),
        ],
    )
    rules = write_rules(tmp_path, text)
    row = by_customer(custan("run", rules, "--format", "csv"))["c"]
    assert row["first"] == "2026-07-02T00:00:00Z"
    assert row["last"] == "2026-07-03T00:00:00Z"


def test_json_lines_nested_and_flat_keys(tmp_path, custan):
    # Payload v2 nests sender and writes status as {"value": ...}; v1-style
    # exports use flat dotted keys. Both read the same.
    records = [
        {
            "id": "t1",
            "type": "payment",
            "status": {"value": "processed"},
            "amount": 12.34,
            "created_at": "2026-01-01T00:00:00Z",
            "sender": {"account_id": "c", "method_id": "m"},
        },
        {
            "id": "t2",
            "type": "payment",
            "status": "processed",
            "amount": 0.1,
            "created_at": "2026-01-02T00:00:00Z",
            "sender.account_id": "c",
        },
    ]
    (tmp_path / "tx.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    text = RFM_SCORES.replace("tx.csv", "tx.jsonl")
    rules = write_rules(tmp_path, text)
    row = by_customer(custan("run", rules, "--format", "csv"))["c"]
    assert row["purchases"] == "2"
    assert row["total"] == "12.44"


def test_parquet_folder_source(tmp_path, custan):
    folder = tmp_path / "parts"
    folder.mkdir()
    connection = duckdb.connect()
    for part, amount in (("a", "1.10"), ("b", "2.20")):
        connection.execute(
            f"COPY (SELECT 't{part}' AS id, 'payment' AS type, 'processed' AS status, "
            f"{amount}::DECIMAL(10,2) AS amount, TIMESTAMPTZ '2026-01-01 00:00:00+00' "
            f"AS created_at, 'c' AS \"sender.account_id\") TO '{folder}/{part}.parquet'"
        )
    text = RFM_SCORES.replace("tx.csv", "parts")
    rules = write_rules(tmp_path, text)
    row = by_customer(custan("run", rules, "--format", "csv"))["c"]
    assert row["purchases"] == "2"
    assert row["total"] == "3.30"


def test_file_without_id_counts_every_row(tmp_path, custan):
    (tmp_path / "tx.csv").write_text(
        "customer,when,value\nc,2026-01-01,1.00\nc,2026-01-01,1.00\nc,2026-01-01,1.00\n"
    )
    text = """
version: 1
source:
  path: tx.csv
  columns: {sender.account_id: customer, created_at: when, amount: value}
  constants: {type: payment, status: processed}
metrics:
  purchases: {agg: count, of: id}
  ids: {agg: count_distinct, of: id}
"""
    rules = write_rules(tmp_path, text)
    row = by_customer(custan("run", rules, "--format", "csv"))["c"]
    assert row["purchases"] == "3"
    assert row["ids"] == "3"


def test_metric_window_and_where(tmp_path, custan):
    # as_of 2026-04-01T00:00Z; a 90-day window starts 2026-01-01T00:00Z,
    # inclusive: t2 (on the edge) and t3 count, t1 does not.
    text = """
version: 1
source: {path: tx.csv}
as_of: 2026-04-01
metrics:
  total: {agg: sum, of: amount}
  recent: {agg: sum, of: amount, window: 90 days}
  large: {agg: count, where: amount >= 100}
  refunds: {agg: sum, of: amount, where: "type = 'refund'"}
"""
    write_transactions(
        tmp_path,
        [
            ("t1", "payment", "processed", "10.00", "2025-12-31T23:59:59Z", "c", "pm"),
            ("t2", "payment", "processed", "100.00", "2026-01-01T00:00:00Z", "c", "pm"),
            ("t3", "payment", "processed", "1.00", "2026-03-01T00:00:00Z", "c", "pm"),
        ],
    )
    rules = write_rules(tmp_path, text)
    row = by_customer(custan("run", rules, "--format", "csv"))["c"]
    assert row["total"] == "111.00"
    assert row["recent"] == "101.00"
    assert row["large"] == "1"
    assert row["refunds"] == "0.00"


def test_unread_fields_need_no_column(tmp_path, custan):
    # No status, type or method column: rules that never read them still run,
    # and count(*) counts rows without generated ids.
    (tmp_path / "tx.csv").write_text(
        "sender.account_id,created_at,amount\nc,2026-01-01,2.50\nc,2026-01-02,2.50\n"
    )
    text = """
version: 1
source: {path: tx.csv}
metrics:
  purchases: {agg: count}
  total: {agg: sum, of: amount}
"""
    rules = write_rules(tmp_path, text)
    row = by_customer(custan("run", rules, "--format", "csv"))["c"]
    assert row["purchases"] == "2"
    assert row["total"] == "5.00"


def test_segment_by_score_cell_membership(tmp_path, custan):
    # r from recency, f from count: a bought 3 times 5 days before as_of
    # (r 5, f 3: cell '53'), b once 50 days before (r 4, f 1: cell '41').
    # Only '53' is in the Champions list; b falls to the default.
    text = """
version: 1
source: {path: tx.csv}
as_of: 2026-03-01
metrics:
  last_purchase: {agg: max, of: created_at}
  purchases: {agg: count}
derived:
  days_since_last: days_since(last_purchase)
scores:
  r: {of: days_since_last, bands: [{below: 30, score: 5}, {below: 90, score: 4}],
      default: 1}
  f: {of: purchases, bands: [{at_least: 3, score: 3}], default: 1}
derived_cells: {}
segments:
  - name: Champions
    when: rfm in ('55', '54', '53')
  - name: Others
"""
    text = text.replace("derived_cells: {}\n", "")
    text = text.replace(
        "  days_since_last: days_since(last_purchase)\n",
        "  days_since_last: days_since(last_purchase)\n  rfm: concat(r, f)\n",
    )
    write_transactions(
        tmp_path,
        [
            ("t1", "payment", "processed", "1", "2026-02-20", "a", "pm"),
            ("t2", "payment", "processed", "1", "2026-02-22", "a", "pm"),
            ("t3", "payment", "processed", "1", "2026-02-24", "a", "pm"),
            ("t4", "payment", "processed", "1", "2026-01-10", "b", "pm"),
        ],
    )
    rules = write_rules(tmp_path, text)
    rows = by_customer(custan("run", rules, "--format", "csv"))
    assert rows["a"]["rfm"] == "53"
    assert rows["a"]["segment"] == "Champions"
    assert rows["b"]["rfm"] == "41"
    assert rows["b"]["segment"] == "Others"


def test_small_amounts_keep_eight_places(tmp_path, custan):
    # 200 payments of 0.00004 are exactly 0.008, which rounds to 0.01. Read at
    # four places each would be 0.0000 and the total 0.00.
    rows = [
        (f"t{i}", "payment", "processed", "0.00004", "2026-01-01", "c", "pm")
        for i in range(200)
    ]
    write_transactions(tmp_path, rows)
    rules = write_rules(tmp_path, RFM_SCORES)
    row = by_customer(custan("run", rules, "--format", "csv"))["c"]
    assert row["total"] == "0.01"


def test_text_fields_are_trimmed(tmp_path, custan):
    # " payment " and " processed " pass the filters once trimmed, and the
    # customer " c " is the same customer as "c".
    write_transactions(
        tmp_path,
        [
            ("t1", " payment ", " processed ", "2.00", "2026-01-01", " c ", "pm"),
            ("t2", "payment", "processed", "3.00", "2026-01-02", "c", "pm"),
        ],
    )
    rules = write_rules(tmp_path, RFM_SCORES)
    row = by_customer(custan("run", rules, "--format", "csv"))["c"]
    assert row["purchases"] == "2"
    assert row["total"] == "5.00"


def test_bare_date_read_in_source_zone(tmp_path, custan):
    # 2026-07-01 means midnight in New York (EDT, UTC-4): 2026-07-01T04:00Z.
    # Its trailing "-01" is part of the date, not a UTC offset.
    text = """
version: 1
source: {path: tx.csv, time_zone: America/New_York}
time_zone: America/New_York
metrics:
  last: {agg: max, of: created_at}
derived:
  day: date_of(last)
"""
    write_transactions(
        tmp_path,
        [
            ("t1", "payment", "processed", "10.00", "2026-07-01", "c", "pm"),
        ],
    )
    rules = write_rules(tmp_path, text)
    row = by_customer(custan("run", rules, "--format", "csv"))["c"]
    assert row["last"] == "2026-07-01T04:00:00Z"
    assert row["day"] == "2026-07-01"
