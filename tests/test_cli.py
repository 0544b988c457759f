"""The command line: run formats, schema, sql, validate, limits."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time

import duckdb
import jsonschema
from conftest import ROOT, write_rules, write_transactions

from custan.sinks import atomic
from custan.sinks.text_formats import CsvSink

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


def expected_csv_lines():
    # The rows of test_csv_columns_and_order, which sample() always writes.
    return [
        "customer_id,total,last_purchase,segment,action",
        "a,150.00,2026-01-01T08:00:00Z,Big,Thank them",
        "b,20.50,2026-01-02T00:00:00Z,Small,",
        "c,20.50,2026-01-03T00:00:00Z,Small,",
    ]


def leftover_temporaries(folder):
    return sorted(path.name for path in folder.glob(".custan-*"))


def test_output_through_symlink_writes_target(tmp_path, custan):
    rules = sample(tmp_path)
    target = tmp_path / "target.csv"
    target.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to("target.csv")
    outcome = custan("run", rules, "-o", link, "--format", "csv")
    assert outcome.code == 0, outcome.err
    assert link.is_symlink()
    assert os.readlink(link) == "target.csv"
    assert target.read_text().splitlines() == expected_csv_lines()
    assert leftover_temporaries(tmp_path) == []


def test_output_to_fifo_reaches_reader(tmp_path, custan):
    rules = sample(tmp_path)
    fifo = tmp_path / "rows.fifo"
    os.mkfifo(fifo)
    received: list[str] = []

    def read_fifo():
        with open(fifo, encoding="utf-8") as stream:
            received.append(stream.read())

    reader = threading.Thread(target=read_fifo, daemon=True)
    reader.start()
    outcome = custan("run", rules, "-o", fifo, "--format", "csv")
    reader.join(timeout=30)
    assert outcome.code == 0, outcome.err
    assert received[0].splitlines() == expected_csv_lines()
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def null_device(folder):
    """Return a character device that discards writes, safe to lose in a test.

    As root this is a private node with /dev/null's numbers (1, 3), so a broken
    sink replaces that node and never the system's /dev/null. Other users
    cannot replace /dev/null, so they use it.
    """
    path = folder / "null"
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        return "/dev/null"
    return str(path)


def test_output_to_dev_null_keeps_device(tmp_path, custan):
    device = null_device(tmp_path)
    outcome = custan("run", sample(tmp_path), "-o", device, "--format", "csv")
    assert outcome.code == 0, outcome.err
    assert stat.S_ISCHR(os.lstat(device).st_mode)
    assert outcome.err == f"wrote 3 rows to {device}\n"


def test_new_output_file_mode_follows_umask(tmp_path, custan):
    rules = sample(tmp_path)
    output = tmp_path / "out.csv"
    previous = os.umask(0o027)
    try:
        outcome = custan("run", rules, "-o", output)
    finally:
        os.umask(previous)
    assert outcome.code == 0, outcome.err
    # 0o666 with the umask's 0o027 bits cleared.
    assert stat.S_IMODE(output.stat().st_mode) == 0o640


def test_overwritten_output_keeps_mode(tmp_path, custan):
    rules = sample(tmp_path)
    output = tmp_path / "out.csv"
    output.write_text("old\n")
    output.chmod(0o644)
    # A umask of 0o077 would give a new file 0o600, so 0o644 can only be kept.
    previous = os.umask(0o077)
    try:
        outcome = custan("run", rules, "-o", output)
    finally:
        os.umask(previous)
    assert outcome.code == 0, outcome.err
    assert stat.S_IMODE(output.stat().st_mode) == 0o644
    assert output.read_text().splitlines() == expected_csv_lines()


def test_output_in_missing_folder_is_usage_error(tmp_path, custan):
    output = tmp_path / "nodir" / "out.csv"
    outcome = custan("run", sample(tmp_path), "-o", output)
    assert outcome.code == 2
    assert outcome.err == (
        f"error: cannot write the output file {output}: No such file or directory\n"
    )
    assert not output.parent.exists()


def test_output_to_folder_is_usage_error(tmp_path, custan):
    output = tmp_path / "outdir.csv"
    output.mkdir()
    outcome = custan("run", sample(tmp_path), "-o", output)
    assert outcome.code == 2
    assert (
        outcome.err == f"error: cannot write the output file {output}: Is a directory\n"
    )
    assert list(output.iterdir()) == []
    assert leftover_temporaries(tmp_path) == []


def test_output_permission_denied_is_usage_error(tmp_path, custan, monkeypatch):
    # Root ignores a read-only folder, so the refusal is injected where the
    # temporary file is created.
    def deny(folder):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(atomic, "_create_temporary", deny)
    output = tmp_path / "ro" / "out.csv"
    outcome = custan("run", sample(tmp_path), "-o", output)
    assert outcome.code == 2
    assert outcome.err == (
        f"error: cannot write the output file {output}: Permission denied\n"
    )
    assert "Traceback" not in outcome.err


def test_failed_write_leaves_no_file(tmp_path, custan, monkeypatch):
    def write_then_fail(self, result, stream):
        stream.write("customer_id\n")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(CsvSink, "write", write_then_fail)
    output = tmp_path / "out.csv"
    outcome = custan("run", sample(tmp_path), "-o", output)
    assert outcome.code == 1
    assert outcome.err == f"error: cannot write {output}: No space left on device\n"
    assert not output.exists()
    assert leftover_temporaries(tmp_path) == []


def test_sql_unknown_dialect_is_usage_error(tmp_path, custan):
    outcome = custan("sql", sample(tmp_path), "--dialect", "nosuch")
    assert outcome.code == 2
    prefix = "error: unknown SQL dialect 'nosuch'; choose one of "
    assert outcome.err.startswith(prefix)
    listed = outcome.err[len(prefix) :].strip().split(", ")
    assert "duckdb" in listed
    assert "postgres" in listed
    assert listed == sorted(listed)


def test_limit_beyond_64_bits_is_usage_error(tmp_path, custan):
    rules = sample(tmp_path)
    outcome = custan("run", rules, "--limit", "99999999999999999999")
    assert outcome.code == 2
    assert outcome.err == (
        "error: argument --limit: the limit must be at most 9223372036854775807 "
        "(see 'custan run --help')\n"
    )
    # 2**63 - 1, the largest limit DuckDB takes, keeps all three rows.
    outcome = custan("run", rules, "--limit", str(2**63 - 1), "--format", "csv")
    assert outcome.code == 0, outcome.err
    assert outcome.out.splitlines() == expected_csv_lines()


FORMATS = ("table", "csv", "json", "jsonl")


def test_closed_pipe_ends_quietly(tmp_path):
    rules = str(sample(tmp_path))
    commands = [["run", rules, "--format", name] for name in FORMATS]
    commands += [["plugins"], ["schema"], ["sql", rules]]
    for command in commands:
        # A pipe whose read end is closed before the run fails its first write.
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            completed = subprocess.run(
                [sys.executable, "-m", "custan", *command],
                stdout=write_end,
                stderr=subprocess.PIPE,
                text=True,
                timeout=120,
            )
        finally:
            os.close(write_end)
        assert completed.returncode == 0, command
        assert completed.stderr == "", command


def test_interrupt_during_query_exits_130(tmp_path):
    data = tmp_path / "big.csv"
    # Four million purchases by 400,000 customers keep the query busy for
    # seconds, long past the interrupt.
    purchases = """SELECT 't' || i AS id, 'payment' AS type, 'processed' AS status,
            (i % 10000) / 100 AS amount,
            TIMESTAMP '2026-01-01' + to_seconds(i % 20000000) AS created_at,
            'c' || (i % 400000) AS "sender.account_id", 'pm' AS "sender.method_id"
        FROM range(4000000) AS r(i)"""
    with duckdb.connect() as connection:
        connection.execute(f"COPY ({purchases}) TO '{data}' (HEADER)")
    output = tmp_path / "out.csv"
    process = subprocess.Popen(
        [sys.executable, "-m", "custan", "run", ROOT / "rules" / "rfm.yaml"]
        + ["--data", str(data), "-o", str(output)],
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1)
    process.send_signal(signal.SIGINT)
    _, errors = process.communicate(timeout=120)
    assert process.returncode == 130, errors
    assert errors.endswith("interrupted\n")
    assert "Traceback" not in errors
    assert not output.exists()


MATRIX_RULES = """version: 1
source: {path: tx.csv}
per:
  active_month: month_of(created_at)
metrics:
  purchases: {agg: count}
derived:
  spender: "'signature_customers'"
output:
  group_by: [spender, active_month]
  values:
    active_customers: count(*)
  matrix: {rows: spender, columns: active_month, value: active_customers}
"""


def test_wide_matrix_keeps_whole_labels(tmp_path, custan):
    # Customers a and b buy once a month for 18 months from 2025-01, so the
    # one row contains 2 in each of 18 month columns: too wide for 160 columns.
    rows = []
    for index in range(18):
        month = f"{2025 + index // 12}-{index % 12 + 1:02d}"
        for customer in "ab":
            created_at = f"{month}-15T12:00:00Z"
            rows.append((f"t{index}{customer}", "payment", "processed", "1.00"))
            rows[-1] += (created_at, customer, "pm")
    write_transactions(tmp_path, rows)
    outcome = custan("run", write_rules(tmp_path, MATRIX_RULES))
    assert outcome.code == 0, outcome.err
    assert "…" not in outcome.out
    assert max(len(line) for line in outcome.out.splitlines()) <= 160
    for index in range(18):
        assert f"{2025 + index // 12}-{index % 12 + 1:02d}" in outcome.out
    assert outcome.out.count("signature_customers") == 2
    assert outcome.out.count("spender \\ active_month") == 2
    assert len(re.findall(r"│ +2 ", outcome.out)) == 18


def test_output_to_stdout_link_appends(tmp_path):
    rules = sample(tmp_path)
    log = tmp_path / "log.txt"
    log.write_text("first\n")
    # A private link like /dev/stdout, so a sink that replaced links would only
    # replace this one.
    stdout = tmp_path / "stdout"
    stdout.symlink_to("/proc/self/fd/1")
    # Standard output opened for appending, as a shell's ">> log.txt" does.
    with open(log, "a") as stream:
        completed = subprocess.run(
            [sys.executable, "-m", "custan", "run", rules]
            + ["-o", str(stdout), "--format", "csv", "-q"],
            stdout=stream,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    assert completed.returncode == 0, completed.stderr
    assert log.read_text().splitlines() == ["first"] + expected_csv_lines()
    assert stdout.is_symlink()
    assert leftover_temporaries(tmp_path) == []


def test_table_prints_data_literally(tmp_path, custan):
    # Customer ids that look like rich markup or hold an escape character
    # are printed as written, not styled, swallowed or sent to the terminal.
    write_transactions(
        tmp_path,
        [
            ("t1", "payment", "processed", "5.00", "2026-01-01", "[/bold]", "pm"),
            ("t2", "payment", "processed", "6.00", "2026-01-01", "[red]x[/red]", "pm"),
            ("t3", "payment", "processed", "7.00", "2026-01-01", "a\x1b[2Jb", "pm"),
        ],
    )
    rules = write_rules(
        tmp_path, RULES.replace("{customers} customers", "[/x] {customers}")
    )
    outcome = custan("run", rules)
    assert outcome.code == 0, outcome.err
    assert "[/bold]" in outcome.out
    assert "[red]x[/red]" in outcome.out
    assert "a\\x1b[2Jb" in outcome.out
    assert "\x1b" not in outcome.out
    assert "[/x] 3 spent 18.00" in outcome.out


def test_sql_with_missing_data_fails_like_run(tmp_path, custan):
    rules = sample(tmp_path)
    outcome = custan("sql", rules, "--data", tmp_path / "nothere.csv")
    assert outcome.code == 1
    assert "nothere.csv: data file not found" in outcome.err
    assert outcome.out == ""


def test_sql_empty_dialect_rejected(tmp_path, custan):
    outcome = custan("sql", sample(tmp_path), "--dialect", "")
    assert outcome.code == 2
    assert "unknown SQL dialect ''" in outcome.err


def test_summary_braces_are_literal(tmp_path, custan):
    rules = sample(tmp_path)
    rules.write_text(
        RULES.replace('"{customers} customers', '"{{{customers}}} customers')
    )
    outcome = custan("run", rules)
    assert outcome.code == 0, outcome.err
    assert "{3} customers spent 191.00" in outcome.out
