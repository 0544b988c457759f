"""The command line: run formats, schema, sql, validate, limits."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
from conftest import ROOT, write_rules, write_transactions

RULES = """version: 1
source: {path: tx.csv}
metrics:
  total: {agg: sum, of: amount}
  last_purchase: {agg: max, of: created_at}
segments:
  - name: Big
    when: total >= 100
    action: Thank them
  - name: Small
output:
  sort: [-total]
  summary:
    values:
      customers: count(*)
      revenue: sum(total)
    lines: ["{customers} customers spent {revenue}"]
"""


def sample(folder):
    write_transactions(
        folder,
        [
            (
                "t1",
                "payment",
                "processed",
                "150.00",
                "2026-01-01T10:00:00+02:00",
                "a",
                "pm",
            ),
            ("t2", "payment", "processed", "20.50", "2026-01-02T00:00:00Z", "b", "pm"),
            ("t3", "payment", "processed", "20.50", "2026-01-03T00:00:00Z", "c", "pm"),
        ],
    )
    return write_rules(folder, RULES)


def test_csv_columns_and_order(tmp_path, custan):
    # Sorted by total descending; b and c tie at 20.50 and fall back to the id.
    outcome = custan("run", sample(tmp_path), "--format", "csv")
    assert outcome.code == 0
    assert outcome.out.splitlines() == [
        "customer_id,total,last_purchase,segment,action",
        "a,150.00,2026-01-01T08:00:00Z,Big,Thank them",
        "b,20.50,2026-01-02T00:00:00Z,Small,",
        "c,20.50,2026-01-03T00:00:00Z,Small,",
    ]


def test_json_numbers_are_exact(tmp_path, custan):
    outcome = custan("run", sample(tmp_path), "--format", "json")
    assert outcome.code == 0
    assert '"total": 150.00' in outcome.out
    rows = json.loads(outcome.out)
    assert [row["customer_id"] for row in rows] == ["a", "b", "c"]
    assert rows[1]["action"] is None


def test_jsonl_one_object_per_line(tmp_path, custan):
    outcome = custan("run", sample(tmp_path), "--format", "jsonl", "--limit", "2")
    lines = outcome.out.splitlines()
    assert len(lines) == 2
    assert json.loads(lines[0])["segment"] == "Big"


def test_table_shows_summary(tmp_path, custan):
    outcome = custan("run", sample(tmp_path))
    assert outcome.code == 0
    assert "3 customers spent 191.00" in outcome.out
    assert "as of 2026-01-03T00:00:00Z" in outcome.out


def test_output_format_from_suffix(tmp_path, custan):
    output = tmp_path / "rows.jsonl"
    outcome = custan("run", sample(tmp_path), "-o", output)
    assert outcome.code == 0
    assert len(output.read_text().splitlines()) == 3
    assert "wrote 3 rows" in outcome.err


def test_data_option_replaces_path(tmp_path, custan):
    rules = sample(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    write_transactions(
        other,
        [
            ("t9", "payment", "processed", "5.00", "2026-02-01", "z", "pm"),
        ],
    )
    outcome = custan("run", rules, "--data", other / "tx.csv", "--format", "csv")
    assert outcome.out.splitlines()[1:] == ["z,5.00,2026-02-01T00:00:00Z,Small,"]


def test_schema_is_valid_draft_2020_12(custan):
    outcome = custan("schema")
    schema = json.loads(outcome.out)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_sql_prints_one_query(tmp_path, custan):
    outcome = custan("sql", sample(tmp_path))
    assert outcome.code == 0
    assert outcome.out.startswith("WITH transactions AS (")
    assert "READ_CSV(" in outcome.out


def test_sql_in_postgres_dialect(tmp_path, custan):
    outcome = custan("sql", sample(tmp_path), "--dialect", "postgres")
    assert outcome.code == 0
    assert "CASE WHEN" in outcome.out


def test_validate_every_shipped_rules_file(custan):
    files = sorted(ROOT.glob("rules/*.yaml")) + sorted(ROOT.glob("examples/*/*.yaml"))
    assert files
    outcome = custan("validate", *files)
    assert outcome.code == 0, outcome.err


def test_console_script_runs_main_job():
    # The README's first command, through the installed entry point.
    completed = subprocess.run(
        [sys.executable, "-m", "custan", "run", "rules/rfm.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert "Champions" in completed.stdout
    assert "Lost" in completed.stdout
