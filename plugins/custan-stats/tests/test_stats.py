"""custan-stats metrics, run through custan's command line on a small CSV."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from custan.cli import main

TRANSACTIONS = """\
id,type,status,amount,created_at,sender.account_id,sender.method_id
t1,payment,processed,1.00,2024-01-01 00:00:00,acct_a,pm_a
t2,payment,processed,2.01,2024-01-03 00:00:00,acct_a,pm_a
t3,payment,processed,5.00,2024-01-04 00:00:00,acct_a,pm_a
t4,payment,processed,10.00,2024-01-08 00:00:00,acct_a,pm_a
t5,payment,processed,4.00,2024-01-02 00:00:00,acct_b,pm_b
t6,payment,processed,1.00,2024-01-01 00:00:00,acct_c,pm_c
t7,payment,processed,2.01,2024-01-02 00:00:00,acct_c,pm_c
t8,payment,processed,7.00,2024-01-03 00:00:00,acct_c,pm_c
"""

RULES = """\
version: 1
requires: [custan-stats]
source: {path: tx.csv}
metrics:
  middle: {agg: median, of: amount}
  spread: {agg: stddev, of: amount}
  high: {agg: p90, of: amount}
  low: {agg: p25, of: amount}
  regularity: {agg: gap_cv, of: created_at}
segments:
  - name: regular
    when: regularity < 0.5
  - name: irregular
    when: regularity >= 0.5
  - name: too few
output:
  columns: [middle, spread, high, low, regularity, segment]
"""


def run_csv(tmp_path: Path, capsys, rules: str = RULES) -> dict[str, dict[str, str]]:
    (tmp_path / "tx.csv").write_text(TRANSACTIONS)
    (tmp_path / "rules.yaml").write_text(rules)
    code = main(["run", str(tmp_path / "rules.yaml"), "--format", "csv"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    rows = csv.DictReader(io.StringIO(captured.out))
    return {row["customer_id"]: row for row in rows}


def test_median_keeps_half_cent(tmp_path, capsys):
    rows = run_csv(tmp_path, capsys)
    # acct_a: 1.00 2.01 5.00 10.00, so (2.01 + 5.00) / 2 = 3.505 exactly,
    # written half-even to cents: 3.50 (a DECIMAL(18,2) median gives 3.51).
    assert rows["acct_a"]["middle"] == "3.50"
    # acct_c: 1.00 2.01 7.00, so the middle value 2.01.
    assert rows["acct_c"]["middle"] == "2.01"
    assert rows["acct_b"]["middle"] == "4.00"


def test_percentiles_interpolate_exactly(tmp_path, capsys):
    rows = run_csv(tmp_path, capsys)
    # acct_a, 4 values: p90 sits at rank 1 + 3 * 0.9 = 3.7, so
    # 5.00 + 0.7 * (10.00 - 5.00) = 8.50.
    assert rows["acct_a"]["high"] == "8.50"
    # p25 at rank 1 + 3 * 0.25 = 1.75: 1.00 + 0.75 * (2.01 - 1.00) = 1.7575 -> 1.76.
    assert rows["acct_a"]["low"] == "1.76"
    # acct_c, 3 values: p25 at rank 1.5: 1.00 + 0.5 * 1.01 = 1.505 -> half-even 1.50.
    assert rows["acct_c"]["low"] == "1.50"


def test_stddev_is_sample_deviation(tmp_path, capsys):
    rows = run_csv(tmp_path, capsys)
    # acct_a: mean 18.01 / 4 = 4.5025; squared deviations sum to 48.950075;
    # / 3 = 16.316691667, whose square root is 4.039392 (6 places).
    assert rows["acct_a"]["spread"] == "4.039392"
    # One purchase has no sample deviation.
    assert rows["acct_b"]["spread"] == ""


def test_gap_cv_in_segments(tmp_path, capsys):
    rows = run_csv(tmp_path, capsys)
    # acct_a gaps 2, 1, 4 days: mean 7/3, sample sd sqrt(7/3) = 1.527525,
    # cv = 1.527525 / 2.333333 = 0.654654.
    assert rows["acct_a"]["regularity"] == "0.654654"
    assert rows["acct_a"]["segment"] == "irregular"
    # acct_c gaps 1, 1 day: sd 0, so cv 0.
    assert rows["acct_c"]["regularity"] == "0"
    assert rows["acct_c"]["segment"] == "regular"
    # acct_b has one purchase and no gaps.
    assert rows["acct_b"]["regularity"] == ""
    assert rows["acct_b"]["segment"] == "too few"


def test_median_usable_in_scores(tmp_path, capsys):
    rules = RULES.replace(
        "segments:",
        """\
scores:
  basket:
    of: middle
    bands:
      - {at_least: 3.505, score: 2}
    default: 1
segments:""",
    ).replace("columns: [middle,", "columns: [basket, middle,")
    rows = run_csv(tmp_path, capsys, rules)
    # The exact median 3.505 reaches the bound 3.505; a cent-rounded 3.50 would not.
    assert rows["acct_a"]["basket"] == "2"
    assert rows["acct_c"]["basket"] == "1"


def test_plugin_found_by_entry_point(capsys):
    code = main(["plugins", "--format", "json"])
    listed = {item["name"]: item for item in json.loads(capsys.readouterr().out)}
    assert code == 0
    assert listed["stats"]["distribution"] == "custan-stats"
    assert listed["stats"]["hooks"] == ["register_metrics"]
